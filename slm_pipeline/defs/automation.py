"""Jobs and schedules: retrain the whole chain quarterly (and on demand)."""


import os

import dagster as dg

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
