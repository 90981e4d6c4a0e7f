"""The test Postgres server fixture itself works: a real server answers SQL."""

import pytest


def test_postgres_server_answers_sql(postgres_server):
    sqlalchemy = pytest.importorskip("sqlalchemy")
    url = postgres_server.create_database("fixture_check")
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("select 1 + 1")).scalar() == 2
    engine.dispose()
