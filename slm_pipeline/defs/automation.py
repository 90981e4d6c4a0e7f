"""Jobs, schedules and sensors: retrain the whole chain quarterly, on feedback, and when the corpus changes.

All three are STOPPED by default: switch them on in the UI (Automation); `make ui` (`dagster dev`) runs the
daemon that evaluates them.

- `quarterly_retrain_schedule`: 03:00 on the first day of each quarter (zone: $SLM_PIPELINE_TIMEZONE, UTC).
- `feedback_sensor`: cursor = id of the last feedback row already handed to a retrain run. When at least
  `feedback.min_negative` rows after it are negative ratings or corrections, it requests `retrain_job` with
  run key `feedback-<first id>-<last id>` and moves the cursor to the last id, so the same feedback never
  triggers twice; otherwise it skips saying how many of N have arrived (the cursor stays, so they add up).
- `corpus_change_sensor`: cursor = JSON fingerprint of the corpus folder (relative path -> size, mtime,
  sha256; content is re-hashed only for files whose size or mtime changed). Added/changed/deleted files
  request `retrain_job` with run key `corpus-<content hash>` and tags listing what changed. The FIRST
  evaluation only records the baseline (turning the sensor on does not start a retrain by itself); a file
  that was only touched (same content) just updates the cursor.
"""


import json
import os
from pathlib import Path

import dagster as dg

from ..core.artifacts import sha256_file, sha256_json
from ..core.feedback import feedback_store_location, open_feedback_store
from .resources import PipelineSettings

SENSOR_INTERVAL_S = 60

retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=dg.AssetSelection.all(),
    description="Materialize the whole chain: corpus -> anonymization -> pairs -> adapter -> exports -> eval.",
)

quarterly_retrain_schedule = dg.ScheduleDefinition(
    name="quarterly_retrain_schedule",
    job=retrain_job,
    cron_schedule="0 3 1 1,4,7,10 *",  # 03:00 on the first day of each quarter
    execution_timezone=os.environ.get("SLM_PIPELINE_TIMEZONE", "UTC"),
    default_status=dg.DefaultScheduleStatus.STOPPED,  # turn on in the UI (Automation tab) once you trust it
    description="Quarterly refresh of the model on the current corpus and collected feedback.",
)


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests a retrain once feedback.min_negative new negative ratings or corrections arrived in "
    "the feedback store written by `slm-pipeline serve` (feedback.database_url, shared by every replica; else "
    "<artifacts_dir>/feedback/feedback.db).",
)
def feedback_sensor(context: dg.SensorEvaluationContext, settings: PipelineSettings) -> dg.SensorResult:
    cfg = settings.load()
    store = open_feedback_store(cfg, create=False)
    if store is None:
        return dg.SensorResult(skip_reason=f"no feedback store yet ({feedback_store_location(cfg)})")
    with store:
        cursor = int(context.cursor or 0)
        need = cfg.feedback.min_negative
        n = store.count_negative_since(cursor)
        if n < need:
            return dg.SensorResult(
                skip_reason=f"{n} of {need} negative ratings/corrections since feedback id {cursor}")
        rows = store.new_feedback_since(cursor)
    first, last = rows[0]["id"], rows[-1]["id"]
    corrections = sum(r["correction"] is not None for r in rows)
    context.log.info(f"feedback {first}..{last}: {n} negative ratings/corrections (>= {need}); requesting a retrain")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(
            run_key=f"feedback-{first}-{last}",
            tags={"slm/trigger": "feedback", "slm/feedback_ids": f"{first}-{last}",
                  "slm/negative_or_corrected": str(n), "slm/corrections": str(corrections)},
        )],
        cursor=str(last),
    )


def corpus_fingerprint(root: Path, previous: dict | None = None) -> dict:
    """{relative path: [size, mtime_ns, sha256]} of every file under root (dot files/folders skipped, like the
    corpus reader). Files whose size and mtime match `previous` keep their previous hash (not re-read)."""
    previous = previous or {}
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except FileNotFoundError:  # deleted while walking
                continue
            rel = path.relative_to(root).as_posix()
            old = previous.get(rel)
            same = old and old[0] == st.st_size and old[1] == st.st_mtime_ns
            files[rel] = [st.st_size, st.st_mtime_ns, old[2] if same else sha256_file(path)]
    return files


def _content_hash(files: dict) -> str:
    return sha256_json(sorted((rel, v[2]) for rel, v in files.items()))


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Requests a retrain when files are added to, changed in or deleted from corpus.corpus_dir. "
    "The first evaluation records the baseline only.",
)
def corpus_change_sensor(context: dg.SensorEvaluationContext, settings: PipelineSettings) -> dg.SensorResult:
    cfg = settings.load()
    root = cfg.path(cfg.corpus.corpus_dir)
    if not root.is_dir():
        return dg.SensorResult(skip_reason=f"corpus folder {root} does not exist (corpus.corpus_dir)")
    prev = json.loads(context.cursor) if context.cursor else None
    files = corpus_fingerprint(root, prev["files"] if prev else None)
    digest = _content_hash(files)
    cursor = json.dumps({"root": str(root), "hash": digest, "files": files}, sort_keys=True)
    if prev is None or prev.get("root") != str(root):
        return dg.SensorResult(skip_reason=f"baseline recorded: {len(files)} files in {root} (hash {digest[:12]})",
                               cursor=cursor)
    old = prev["files"]
    added = sorted(set(files) - set(old))
    deleted = sorted(set(old) - set(files))
    changed = sorted(r for r in set(files) & set(old) if files[r][2] != old[r][2])
    if not (added or deleted or changed):
        return dg.SensorResult(skip_reason=f"corpus unchanged ({len(files)} files, hash {digest[:12]})",
                               cursor=cursor)
    summary = "; ".join(f"{what}: {', '.join(names[:10])}{' …' if len(names) > 10 else ''}"
                        for what, names in (("added", added), ("changed", changed), ("deleted", deleted)) if names)
    context.log.info(f"corpus changed ({summary}); requesting a retrain")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(
            run_key=f"corpus-{digest[:16]}",
            tags={"slm/trigger": "corpus_change", "slm/corpus_hash": digest[:16],
                  "slm/added": str(len(added)), "slm/changed": str(len(changed)), "slm/deleted": str(len(deleted)),
                  "slm/corpus_changes": summary[:1000]},
        )],
        cursor=cursor,
    )
