"""The retraining loop's automation: feedback store, feedback and corpus sensors, quarterly schedule, and the
feedback corrections that reach instruction_pairs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest
import yaml

from slm_pipeline.config import load_config
from slm_pipeline.core.feedback import (
    FeedbackStore,
    UnknownCompletionError,
    feedback_db_path,
    normalize_question,
)
from slm_pipeline.definitions import defs
from slm_pipeline.defs.automation import (
    corpus_change_sensor,
    feedback_sensor,
    quarterly_retrain_schedule,
    retrain_job,
)
from slm_pipeline.defs.resources import PipelineSettings


def write_settings(tmp_path: Path, **sections) -> PipelineSettings:
    doc = {"artifacts_dir": str(tmp_path / "artifacts"), "corpus": {"corpus_dir": str(tmp_path / "corpus")}}
    doc.update(sections)
    path = tmp_path / "slm_pipeline.yaml"
    path.write_text(yaml.safe_dump(doc))
    (tmp_path / "corpus").mkdir(exist_ok=True)
    return PipelineSettings(config_file=str(path))


def evaluate(sensor, settings: PipelineSettings, instance, cursor: str | None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"settings": settings})
    return sensor.evaluate_tick(ctx)


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def store_for(settings: PipelineSettings) -> FeedbackStore:
    cfg = settings.load()
    return FeedbackStore(feedback_db_path(cfg.path(cfg.artifacts_dir)))


def add_completions(store: FeedbackStore, n: int, start: int = 0) -> list[str]:
    ids = [f"chatcmpl-{start + i}" for i in range(n)]
    for i, cid in enumerate(ids):
        store.record_completion(cid, "slm-support", f"How do I unlock bike {start + i}?", "No idea.")
    return ids


# ------------------------------------------------------------------------------------------------ store


def test_feedback_store_round_trip(tmp_path):
    store = FeedbackStore(tmp_path / "fb" / "feedback.db")
    a, b, c = add_completions(store, 3)
    assert store.add_feedback(a, 1)["negative"] == 0
    assert store.add_feedback(b, -1)["negative"] == 1
    assert store.add_feedback(c, 4, scale="stars")["negative"] == 0
    assert store.add_feedback(c, 2, scale="stars")["negative"] == 1
    store.add_feedback(a, 1, correction="  Scan the QR code on the handlebar.  ")  # positive, but a correction
    store.add_feedback(b, -1, correction="An older correction.")
    store.add_feedback(b, -1, correction="Open the app and tap Unlock.")
    assert store.count_negative_since(0) == 5
    assert [r["id"] for r in store.new_feedback_since(5)] == [6, 7]
    assert store.count_negative_since(5) == 2
    assert store.last_feedback_id() == 7
    recs = store.corrections_as_records()
    # latest correction per completion; corpus-record shape
    assert [r["id"] for r in recs] == ["feedback-5", "feedback-7"]
    assert recs[1]["messages"] == [{"role": "user", "content": "How do I unlock bike 1?"},
                                   {"role": "assistant", "content": "Open the app and tap Unlock."}]
    assert recs[0]["kind"] == recs[0]["source"] == "feedback" and recs[0]["line"] is None
    assert recs[0]["path"] == str(store.path) and recs[0]["meta"]["completion_id"] == a
    with pytest.raises(UnknownCompletionError, match="unknown completion_id 'nope'"):
        store.add_feedback("nope", -1)
    for bad in (0, 2, True, "1"):
        with pytest.raises(ValueError, match="rating"):
            store.add_feedback(a, bad)
    with pytest.raises(ValueError, match="rating"):
        store.add_feedback(a, 6, scale="stars")


def test_top_questions_normalize_and_count(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.db")
    for q in ["How do I unlock a bike?", "how do I  unlock a bike", "Where is <PERSON_1>'s refund?",
              "Where is <PERSON_2>'s refund?", "How do I unlock a bike?", "What is a day pass?"]:
        store.log_question(q)
    top = store.top_questions(2)
    assert [(t["normalized"], t["count"]) for t in top] == [("how do i unlock a bike", 3),
                                                            ("where is <person>'s refund", 2)]
    assert normalize_question("  Hi <ORDER_ID_12>!! ") == "hi <order_id>"
    assert store.stats()["distinct_questions"] == 3


# --------------------------------------------------------------------------------------------- sensors


def test_feedback_sensor_skips_fires_once_and_keeps_its_cursor(tmp_path, instance):
    settings = write_settings(tmp_path, feedback={"min_negative": 3})
    first = evaluate(feedback_sensor, settings, instance, None)
    assert not first.run_requests and "no feedback store yet" in first.skip_message

    store = store_for(settings)
    ids = add_completions(store, 6)
    store.add_feedback(ids[0], -1)
    store.add_feedback(ids[1], 1)  # positive: does not count
    store.add_feedback(ids[2], 1, correction="Tap Unlock in the app.")  # a correction counts
    tick = evaluate(feedback_sensor, settings, instance, None)
    assert not tick.run_requests and tick.skip_message.startswith("2 of 3")
    assert tick.cursor is None  # below N the cursor stays, so negatives add up

    store.add_feedback(ids[3], -1)
    tick = evaluate(feedback_sensor, settings, instance, None)
    assert len(tick.run_requests) == 1
    req = tick.run_requests[0]
    assert req.run_key == "feedback-1-4" and req.job_name in (None, "retrain_job")
    assert req.tags["slm/trigger"] == "feedback" and req.tags["slm/corrections"] == "1"
    assert tick.cursor == "4"

    # Same feedback, persisted cursor: never fires again.
    again = evaluate(feedback_sensor, settings, instance, tick.cursor)
    assert not again.run_requests and again.skip_message.startswith("0 of 3")
    store.add_feedback(ids[4], -1)
    store.add_feedback(ids[5], -1)
    tick2 = evaluate(feedback_sensor, settings, instance, tick.cursor)
    assert not tick2.run_requests and tick2.skip_message.startswith("2 of 3")
    assert tick2.cursor == tick.cursor  # unchanged while below N
    store.add_feedback(ids[5], 1, correction="Use the app.")
    tick3 = evaluate(feedback_sensor, settings, instance, tick.cursor)
    assert [r.run_key for r in tick3.run_requests] == ["feedback-5-7"] and tick3.cursor == "7"


def test_feedback_sensor_cursor_round_trips_on_a_persistent_instance(tmp_path):
    """The cursor a tick returns is what the daemon stores and hands to the next tick (a plain feedback id)."""
    settings = write_settings(tmp_path, feedback={"min_negative": 1})
    store = store_for(settings)
    (cid,) = add_completions(store, 1)
    store.add_feedback(cid, -1)
    with dg.instance_for_test() as inst:
        ctx = dg.build_sensor_context(instance=inst, cursor=None, resources={"settings": settings})
        result = feedback_sensor.evaluate_tick(ctx)
        assert [r.run_key for r in result.run_requests] == ["feedback-1-1"]
        # the next tick gets the stored cursor (as the daemon passes it) and skips
        ctx2 = dg.build_sensor_context(instance=inst, cursor=result.cursor, resources={"settings": settings})
        assert feedback_sensor.evaluate_tick(ctx2).skip_message.startswith("0 of 1")


def test_corpus_change_sensor_baseline_then_fires_on_add_change_delete(tmp_path, instance):
    settings = write_settings(tmp_path)
    corpus = tmp_path / "corpus"
    (corpus / "docs").mkdir()
    (corpus / "docs" / "a.md").write_text("# A\n\n## One\n\nText one.\n")
    (corpus / "faq.csv").write_text("question,answer\nQ?,A long enough answer.\n")
    (corpus / ".hidden").write_text("ignored")

    base = evaluate(corpus_change_sensor, settings, instance, None)
    assert not base.run_requests and base.skip_message.startswith("baseline recorded: 2 files")
    cursor = base.cursor

    same = evaluate(corpus_change_sensor, settings, instance, cursor)
    assert not same.run_requests and "unchanged" in same.skip_message

    # touched but identical content: no run, cursor refreshed
    os.utime(corpus / "faq.csv", ns=(1, 1))
    touched = evaluate(corpus_change_sensor, settings, instance, cursor)
    assert not touched.run_requests and "unchanged" in touched.skip_message
    cursor = touched.cursor
    assert json.loads(cursor)["files"]["faq.csv"][1] == 1

    (corpus / "docs" / "b.md").write_text("# B\n\n## Two\n\nText two.\n")
    added = evaluate(corpus_change_sensor, settings, instance, cursor)
    (req,) = added.run_requests
    assert req.run_key.startswith("corpus-") and req.tags["slm/added"] == "1"
    assert "added: docs/b.md" in req.tags["slm/corpus_changes"]
    cursor = added.cursor
    assert not evaluate(corpus_change_sensor, settings, instance, cursor).run_requests  # no double fire

    (corpus / "docs" / "a.md").write_text("# A\n\n## One\n\nText one, revised.\n")
    changed = evaluate(corpus_change_sensor, settings, instance, cursor)
    (req2,) = changed.run_requests
    assert req2.tags["slm/changed"] == "1" and "changed: docs/a.md" in req2.tags["slm/corpus_changes"]
    assert req2.run_key != req.run_key
    cursor = changed.cursor

    (corpus / "faq.csv").unlink()
    deleted = evaluate(corpus_change_sensor, settings, instance, cursor)
    (req3,) = deleted.run_requests
    assert req3.tags["slm/deleted"] == "1" and "deleted: faq.csv" in req3.tags["slm/corpus_changes"]
    assert not evaluate(corpus_change_sensor, settings, instance, deleted.cursor).run_requests


def test_corpus_change_sensor_missing_folder_skips(tmp_path, instance):
    settings = write_settings(tmp_path, corpus={"corpus_dir": str(tmp_path / "nope")})
    tick = evaluate(corpus_change_sensor, settings, instance, None)
    assert not tick.run_requests and "does not exist" in tick.skip_message


def test_schedule_and_sensors_target_retrain_job():
    ctx = dg.build_schedule_context(scheduled_execution_time=None)
    result = quarterly_retrain_schedule.evaluate_tick(ctx)
    assert len(result.run_requests) == 1
    assert quarterly_retrain_schedule.cron_schedule == "0 3 1 1,4,7,10 *"
    assert quarterly_retrain_schedule.job_name == "retrain_job"
    assert quarterly_retrain_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    for s in (feedback_sensor, corpus_change_sensor):
        assert s.job_name == retrain_job.name
        assert s.default_status == dg.DefaultSensorStatus.STOPPED and s.minimum_interval_seconds == 60
    assert {s.name for s in defs.sensors} >= {"feedback_sensor", "corpus_change_sensor"}
    assert load_config(None).feedback.min_negative == 5


# ----------------------------------------------------------------------------- corrections reach training


def test_feedback_corrections_become_anonymized_instruction_pairs(tmp_path, tiny_model_dir):
    from slm_pipeline.config import PROJECT_ROOT
    from slm_pipeline.core.artifacts import read_jsonl

    assets = PROJECT_ROOT / "assets"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "faq.csv").write_text("question,answer\n" + "".join(
        f'"How long does step {i} take?","Step {i} takes about {i} minutes in the app."\n' for i in range(8)))
    settings = write_settings(
        tmp_path, base_model=str(tiny_model_dir), policy_file=str(assets / "policy.yaml"),
        gold_file=str(assets / "gold" / "gold_qa.jsonl"), anonymize={"canaries_file": None},
        pairs={"min_train_samples": 1, "eval_fraction": 0.0, "language_check": False},
    )
    store = store_for(settings)
    (cid,) = add_completions(store, 1)
    store.add_feedback(cid, -1, correction="Call Ottoline Brackenbury at +44 20 7946 0123. "
                                           "Support can unlock a stuck bike remotely from the app.")
    selection = ["raw_corpus", "anonymized_corpus", "retrieval_index", "instruction_pairs", "base_model"]
    result = dg.materialize([*defs.assets, *defs.asset_checks], selection=selection,
                            resources={"settings": settings}, raise_on_error=False)
    assert result.success
    mat = [e for e in result.get_asset_materialization_events()
           if e.asset_key.to_user_string() == "instruction_pairs"][0].event_specific_data.materialization
    assert mat.metadata["feedback_corrections"].value == 1
    pairs_root = tmp_path / "artifacts" / "instruction_pairs"
    train = read_jsonl(pairs_root / (pairs_root / "latest").read_text().strip() / "train.jsonl")
    fb = [s for s in train if s["source"] == "feedback"]
    assert len(fb) == 1
    answer = fb[0]["messages"][-1]["content"]
    # anonymized, and the sentence that needed a placeholder is not a training target (no tags are learnt)
    assert "Ottoline" not in answer and "7946" not in answer and "<PERSON_1>" not in answer
    assert answer == "Support can unlock a stuck bike remotely from the app."
