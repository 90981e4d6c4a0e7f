"""The feedback store of the retraining loop, on SQLAlchemy Core: an embedded SQLite file by default
(`<artifacts_dir>/feedback/feedback.db`), or a Postgres database (`feedback.database_url`) that several
`slm-pipeline serve` replicas, the Dagster sensors and the assets share.

Three tables:
- `completions`: every answer the serving API gave (`completion_id` = the OpenAI-style `id` of the response,
  the served model name, the last user question, the answer and the replica that served it). Questions are
  stored as asked: like `raw_corpus`, this is raw data; corrections are anonymized by the pipeline before they
  are trained on.
- `feedback`: one row per rating (autoincrement `id`, which is what `feedback_sensor` keeps as its cursor),
  with the completion's model/question/answer copied in, `rating`, its `scale` and an optional `correction`.
  Rating scales: `thumbs` (default): -1 = bad, +1 = good; `stars`: 1..5. A row is *negative* when it is a
  thumbs-down or has at most `negative_max_stars` stars (default 2). Negative rows and rows with a
  correction count toward the retrain threshold (`feedback.min_negative`).
- `questions`: each served user question, already anonymized by the caller, for the most-common-questions
  summary (`top_questions`). Never raw text.

The schema is created on first use and migrated on start (`slm_schema.version`; a version-1 SQLite file from
before the `replica` column is upgraded in place). No Dagster imports here.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

__all__ = [
    "DATABASE_URL_ENV",
    "DB_NAME",
    "FeedbackError",
    "FeedbackStore",
    "UnknownCompletionError",
    "feedback_db_path",
    "feedback_store_location",
    "normalize_question",
    "open_feedback_store",
    "redacted_location",
    "sqlalchemy_url",
]

DB_NAME = "feedback.db"
DATABASE_URL_ENV = "SLM_FEEDBACK_DATABASE_URL"
MAX_CORRECTION_CHARS = 20_000
SCALES = {"thumbs": (-1, 1), "stars": (1, 5)}
SCHEMA_VERSION = 2  # 1: the three tables; 2: completions.replica
# Postgres advisory-lock keys (any constant bigint): schema setup, and feedback inserts (see add_feedback).
_SCHEMA_LOCK, _FEEDBACK_LOCK = 0x534C4D01, 0x534C4D02

# Integer ids (SQLite needs INTEGER PRIMARY KEY for AUTOINCREMENT), BIGINT identities on Postgres.
_Id = sa.Integer().with_variant(sa.BigInteger(), "postgresql")
metadata = sa.MetaData()
completions = sa.Table(
    "completions", metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("completion_id", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("replica", sa.Text),  # schema version 2
    sqlite_autoincrement=True,
)
feedback = sa.Table(
    "feedback", metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("completion_id", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("rating", sa.Integer, nullable=False),
    sa.Column("scale", sa.Text, sa.CheckConstraint("scale IN ('thumbs', 'stars')"), nullable=False),
    sa.Column("negative", sa.Integer, sa.CheckConstraint("negative IN (0, 1)"), nullable=False),
    sa.Column("correction", sa.Text),
    sqlite_autoincrement=True,
)
questions = sa.Table(
    "questions", metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("normalized", sa.Text, nullable=False),
    sa.Index("questions_normalized", "normalized"),
    sqlite_autoincrement=True,
)
schema_table = sa.Table("slm_schema", metadata, sa.Column("version", sa.Integer, nullable=False))

_PLACEHOLDER = re.compile(r"<([A-Z_]+?)_\d+>")
_SPACE = re.compile(r"\s+")


class FeedbackError(ValueError):
    """A feedback value is invalid; the message says what is allowed."""


class UnknownCompletionError(LookupError):
    """Feedback names a completion id that the store has never seen."""

    def __init__(self, completion_id: str):
        super().__init__(
            f"unknown completion_id {completion_id!r}: send the `id` of a /v1/chat/completions response "
            "from this server"
        )
        self.completion_id = completion_id


def feedback_db_path(artifacts_dir: str | Path) -> Path:
    """Where the embedded store lives: `<artifacts_dir>/feedback/feedback.db`."""
    return Path(artifacts_dir) / "feedback" / DB_NAME


def feedback_store_location(cfg) -> str | Path:
    """The store a pipeline config names: `feedback.database_url` (already merged with $SLM_FEEDBACK_DATABASE_URL
    by load_config), else the embedded SQLite file under artifacts_dir."""
    return cfg.feedback.database_url or feedback_db_path(cfg.path(cfg.artifacts_dir))


def redacted_location(location: str | Path) -> str:
    """A store location fit for logs and metadata: a database URL without its password."""
    text = str(location)
    return sqlalchemy_url(text).render_as_string(hide_password=True) if "://" in text else text


def open_feedback_store(cfg, *, create: bool = True) -> FeedbackStore | None:
    """The config's store; with create=False, None when it does not exist yet (readers never create one)."""
    location = feedback_store_location(cfg)
    if create:
        return FeedbackStore(location, cfg.feedback.negative_max_stars)
    return FeedbackStore.open_existing(location, cfg.feedback.negative_max_stars)


def sqlalchemy_url(url: str) -> sa.URL:
    """A database URL as SQLAlchemy needs it: postgres:// and postgresql:// use the psycopg (3) driver.
    Raises ValueError naming the setting for anything but SQLite and Postgres."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise ValueError(f"feedback.database_url / ${DATABASE_URL_ENV}: {url!r} is not a database URL; use e.g. "
                         "postgresql://user:password@host:5432/slm_feedback or sqlite:////path/feedback.db") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise ValueError(f"feedback.database_url / ${DATABASE_URL_ENV}: unsupported database {parsed.drivername!r} "
                     "(the feedback store runs on postgresql:// or sqlite://)")


def normalize_question(text: str) -> str:
    """Key for counting questions: lower case, single spaces, no trailing punctuation, `<PERSON_2>` -> `<PERSON>`."""
    text = _PLACEHOLDER.sub(r"<\1>", text)
    return _SPACE.sub(" ", text).strip().rstrip("?!. ").lower()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _sqlite_engine(path: Path) -> Engine:
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})

    # pysqlite starts transactions lazily and never for DDL; SQLAlchemy's documented recipe makes every
    # transaction an explicit BEGIN, so a read-then-write (add_feedback) and the migration are atomic.
    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")  # readers never block the serving replica's writes

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    return engine


class FeedbackStore:
    """The feedback store. `FeedbackStore(path)` opens (creating if needed) an SQLite file; `FeedbackStore(url)`
    a database URL (postgresql://… or sqlite:///…). Thread-safe; `close()` releases the connection pool."""

    def __init__(self, location: str | Path, negative_max_stars: int = 2):
        self.negative_max_stars = negative_max_stars
        text = str(location)
        if "://" in text:
            url = sqlalchemy_url(text)
            self.path = Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None
        else:
            url, self.path = None, Path(location)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.engine = _sqlite_engine(self.path)
            self.location = str(self.path)
        else:
            # pre_ping: a replica outlives database restarts and idle-connection reaping by a pooler
            self.engine = sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
            self.location = url.render_as_string(hide_password=True)
        self.dialect = self.engine.dialect.name
        try:
            self._migrate()
        except sa.exc.OperationalError as e:
            self.engine.dispose()
            raise ConnectionError(f"cannot open the feedback store {self.location} (feedback.database_url / "
                                  f"${DATABASE_URL_ENV}): {str(e.orig or e).strip().splitlines()[0]}") from None

    @classmethod
    def open_existing(cls, location: str | Path, negative_max_stars: int = 2) -> FeedbackStore | None:
        """The store if it exists (an SQLite file, or a database that has the feedback table), else None."""
        text = str(location)
        if "://" not in text:
            return cls(location, negative_max_stars) if Path(location).exists() else None
        url = sqlalchemy_url(text)
        if url.get_backend_name() == "sqlite":
            return cls(location, negative_max_stars) if url.database and Path(url.database).exists() else None
        probe = sa.create_engine(url)
        try:
            with probe.connect() as con:
                exists = sa.inspect(con).has_table("feedback")
        finally:
            probe.dispose()
        return cls(location, negative_max_stars) if exists else None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FeedbackStore({self.location!r})"

    def _write(self):
        """A write transaction: BEGIN IMMEDIATE on SQLite (takes the write lock up front, no upgrade deadlock)."""
        return self.engine.connect().execution_options(write=True)

    def _migrate(self) -> None:
        """Create the tables, or bring an older store up to SCHEMA_VERSION, under a lock so that replicas starting
        at the same moment do it once."""
        with self._write() as con, con.begin():
            if self.dialect == "postgresql":
                con.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
            inspector = sa.inspect(con)
            had_tables = inspector.has_table("completions")
            version = None
            if inspector.has_table("slm_schema"):
                version = con.execute(sa.select(sa.func.max(schema_table.c.version))).scalar()
            metadata.create_all(con)  # only the missing tables (checkfirst)
            if version is None:
                version = 1 if had_tables else SCHEMA_VERSION
                con.execute(schema_table.insert().values(version=version))
            if version < 2:
                if "replica" not in {c["name"] for c in inspector.get_columns("completions")}:
                    con.execute(sa.text("ALTER TABLE completions ADD COLUMN replica TEXT"))
            if version < SCHEMA_VERSION:
                con.execute(schema_table.update().values(version=SCHEMA_VERSION))

    def schema_version(self) -> int:
        with self.engine.connect() as con:
            return int(con.execute(sa.select(sa.func.max(schema_table.c.version))).scalar())

    # -- serving side ------------------------------------------------------------------------------------

    def record_completion(self, completion_id: str, model: str, question: str, answer: str,
                          replica: str | None = None) -> None:
        """Remember an answer so feedback can refer to it by `completion_id` (from any replica)."""
        with self._write() as con, con.begin():
            con.execute(completions.insert().values(completion_id=completion_id, created_at=_now(), model=model,
                                                    question=question, answer=answer, replica=replica))

    def get_completion(self, completion_id: str) -> dict | None:
        with self.engine.connect() as con:
            row = con.execute(sa.select(completions).where(completions.c.completion_id == completion_id)
                              ).mappings().first()
        return dict(row) if row else None

    def add_feedback(self, completion_id: str, rating: int, correction: str | None = None,
                     scale: str = "thumbs") -> dict:
        """Store a rating (and optional corrected answer) for a completion; returns the new feedback row.

        Raises UnknownCompletionError for an id the store never recorded, FeedbackError for a bad value."""
        if not isinstance(completion_id, str) or not completion_id:
            raise FeedbackError("completion_id must be a non-empty string")
        if scale not in SCALES:
            raise FeedbackError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
        lo, hi = SCALES[scale]
        if isinstance(rating, bool) or not isinstance(rating, int) or not lo <= rating <= hi or (
                scale == "thumbs" and rating == 0):
            allowed = "-1 (bad) or 1 (good)" if scale == "thumbs" else "an integer from 1 to 5"
            raise FeedbackError(f"rating on the {scale!r} scale must be {allowed}, got {rating!r}")
        if correction is not None:
            if not isinstance(correction, str):
                raise FeedbackError("correction must be a string (the answer the model should have given)")
            correction = correction.strip() or None
            if correction and len(correction) > MAX_CORRECTION_CHARS:
                raise FeedbackError(f"correction is longer than {MAX_CORRECTION_CHARS} characters")
        negative = rating < 0 if scale == "thumbs" else rating <= self.negative_max_stars
        with self._write() as con, con.begin():
            if self.dialect == "postgresql":
                # Ids come from a sequence at INSERT time but become visible at COMMIT: two replicas could commit
                # id 11 before id 10, and feedback_sensor's cursor (the highest id seen) would skip 10 forever.
                # Serializing feedback inserts makes ids commit in order (feedback is a trickle; the lock is cheap).
                con.execute(sa.select(sa.func.pg_advisory_xact_lock(_FEEDBACK_LOCK)))
            comp = con.execute(sa.select(completions).where(completions.c.completion_id == completion_id)
                               ).mappings().first()
            if comp is None:
                raise UnknownCompletionError(completion_id)
            row = con.execute(feedback.insert().values(
                created_at=_now(), completion_id=completion_id, model=comp["model"], question=comp["question"],
                answer=comp["answer"], rating=rating, scale=scale, negative=int(negative), correction=correction,
            ).returning(*feedback.c)).mappings().one()
        return dict(row)

    def log_question(self, question: str) -> None:
        """Store an (already anonymized) user question for monitoring."""
        self.log_questions([question])

    def log_questions(self, texts: list[str]) -> None:
        """Store several (already anonymized) questions in one transaction."""
        rows = [{"created_at": _now(), "question": q.strip(), "normalized": normalize_question(q)} for q in texts]
        rows = [r for r in rows if r["normalized"]]
        if rows:
            with self._write() as con, con.begin():
                con.execute(questions.insert(), rows)

    # -- pipeline side -----------------------------------------------------------------------------------

    def _scalar(self, stmt) -> int:
        with self.engine.connect() as con:
            return int(con.execute(stmt).scalar() or 0)

    def last_feedback_id(self) -> int:
        return self._scalar(sa.select(sa.func.coalesce(sa.func.max(feedback.c.id), 0)))

    def new_feedback_since(self, cursor_id: int) -> list[dict]:
        """Feedback rows with id > cursor_id, oldest first."""
        with self.engine.connect() as con:
            rows = con.execute(sa.select(feedback).where(feedback.c.id > int(cursor_id)).order_by(feedback.c.id)
                               ).mappings().all()
        return [dict(r) for r in rows]

    def count_negative_since(self, cursor_id: int) -> int:
        """How many rows after cursor_id are negative ratings or carry a correction (each row counts once)."""
        return self._scalar(sa.select(sa.func.count()).select_from(feedback).where(
            feedback.c.id > int(cursor_id), sa.or_(feedback.c.negative == 1, feedback.c.correction.is_not(None))))

    def corrections_as_records(self, since_id: int = 0) -> list[dict]:
        """Corrections as corpus-style chat records (the latest correction per completion wins).

        Shape: {"id": "feedback-<n>", "source": "feedback", "kind": "feedback", "messages": [user question,
        assistant correction], "path": <store>, "line": None, "meta": {...}}. Not anonymized: run them through
        Anonymizer.anonymize_records before training."""
        latest = (sa.select(sa.func.max(feedback.c.id)).where(feedback.c.correction.is_not(None))
                  .group_by(feedback.c.completion_id))
        stmt = (sa.select(feedback).where(feedback.c.correction.is_not(None), feedback.c.id > int(since_id),
                                          feedback.c.id.in_(latest)).order_by(feedback.c.id))
        with self.engine.connect() as con:
            rows = con.execute(stmt).mappings().all()
        return [
            {"id": f"feedback-{r['id']}", "source": "feedback", "kind": "feedback",
             "messages": [{"role": "user", "content": r["question"]},
                          {"role": "assistant", "content": r["correction"]}],
             "path": self.location, "line": None,
             "meta": {"feedback_id": r["id"], "completion_id": r["completion_id"], "model": r["model"],
                      "rating": r["rating"], "scale": r["scale"], "created_at": r["created_at"]}}
            for r in rows
        ]

    def top_questions(self, n: int = 20) -> list[dict]:
        """Most frequent questions (by normalized text): [{"question", "count", "last_seen"}], most common first."""
        q2 = questions.alias("q2")
        example = (sa.select(q2.c.question).where(q2.c.normalized == questions.c.normalized)
                   .order_by(q2.c.id.desc()).limit(1).scalar_subquery())
        count, last_seen = sa.func.count().label("count"), sa.func.max(questions.c.created_at).label("last_seen")
        stmt = (sa.select(questions.c.normalized, count, last_seen, example.label("example"))
                .group_by(questions.c.normalized).order_by(count.desc(), last_seen.desc()).limit(int(n)))
        with self.engine.connect() as con:
            rows = con.execute(stmt).mappings().all()
        return [{"question": r["example"], "normalized": r["normalized"], "count": int(r["count"]),
                 "last_seen": r["last_seen"]} for r in rows]

    def stats(self) -> dict[str, int]:
        count = sa.func.count()
        with self.engine.connect() as con:
            one = lambda stmt: int(con.execute(stmt).scalar() or 0)  # noqa: E731
            return {
                "completions": one(sa.select(count).select_from(completions)),
                "feedback": one(sa.select(count).select_from(feedback)),
                "negative": one(sa.select(count).select_from(feedback).where(feedback.c.negative == 1)),
                "corrections": one(sa.select(count).select_from(feedback).where(feedback.c.correction.is_not(None))),
                "questions": one(sa.select(count).select_from(questions)),
                "distinct_questions": one(sa.select(sa.func.count(sa.distinct(questions.c.normalized)))),
            }
