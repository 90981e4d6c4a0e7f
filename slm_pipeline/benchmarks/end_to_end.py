"""End to end: per-asset step durations of the latest Dagster run in DAGSTER_HOME (never runs the chain)."""

from __future__ import annotations

import os
from pathlib import Path


def end_to_end(dagster_home: Path | None = None) -> dict:
    """Per-asset step durations of the newest Dagster run of the whole chain that trained from scratch.

    A run whose lora_adapter resumed from a checkpoint (a re-run of the same inputs finishes in seconds) is not
    a full measurement; it is used, flagged, only when no other whole-chain run exists."""
    home = Path(dagster_home or os.environ.get("DAGSTER_HOME") or "")
    how = "run `make run` (or `slm-pipeline run`) once, then `make bench` again"
    if not home or not (home / "dagster.yaml").exists():
        return {"status": "no run", "note": f"no Dagster instance at {home or '$DAGSTER_HOME'}; {how}"}
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs(limit=50)  # newest first
    finished = [r for r in runs if r.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)]
    newest = resumed_chain = None  # newest run with steps; newest whole-chain run whose adapter resumed
    # No finished run yet: show the steps finished so far by the newest run (flagged as partial).
    for run in finished or runs[:1]:
        starts, steps, wall, resumed = {}, {}, [None, None], None
        for rec in instance.all_logs(run.run_id):
            ev = rec.dagster_event
            if ev is None:
                continue
            if ev.event_type == dg.DagsterEventType.RUN_START:
                wall[0] = rec.timestamp
            elif ev.event_type in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE):
                wall[1] = rec.timestamp
            elif rec.step_key and ev.event_type == dg.DagsterEventType.STEP_START:
                starts[rec.step_key] = rec.timestamp
            elif rec.step_key and ev.event_type == dg.DagsterEventType.STEP_SUCCESS and rec.step_key in starts:
                steps[rec.step_key] = round(rec.timestamp - starts[rec.step_key], 2)
            elif ev.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION and rec.step_key == "lora_adapter":
                value = ev.event_specific_data.materialization.metadata.get("resumed_from")
                resumed = getattr(value, "value", value)
        if not steps:
            continue
        timing = {"status": "ok" if finished else "partial", "run_id": run.run_id,
                  "run_status": run.status.value, "steps_s": steps, "sum_steps_s": round(sum(steps.values()), 1),
                  "run_wall_s": round(wall[1] - wall[0], 1) if None not in wall else None,
                  "failed_or_unfinished": sorted(set(starts) - set(steps))}
        newest = newest or timing
        if "eval_report" in steps:
            if resumed in (None, "-"):
                return timing  # the newest whole-chain run that trained from scratch
            resumed_chain = resumed_chain or {**timing, "note": (
                f"lora_adapter resumed from {resumed} in this run, so its time is not a full training; delete "
                "artifacts/lora_adapter/_checkpoints (or `make clean`), then `make run` for a full one")}
    if resumed_chain:
        return resumed_chain
    if newest:  # no whole-chain run: the newest run with steps, flagged
        return {**newest, "note": "no run of the whole chain (through eval_report) found; showing the newest run"}
    latest = f" (latest run {runs[0].run_id[:8]} is {runs[0].status.value})" if runs else ""
    return {"status": "no run", "note": f"no successful or partially successful run in {home}{latest}; {how}"}
