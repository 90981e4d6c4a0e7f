"""Dagster entry point (workspace.yaml loads this module)."""

import dagster as dg

from .defs import automation, data, delivery, monitoring, training
from .defs.resources import PipelineSettings
from .defs.scale_out import executor_from_env

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([data, training, delivery, monitoring]),
    asset_checks=dg.load_asset_checks_from_modules([data, training, delivery]),
    jobs=[automation.retrain_job],
    schedules=[automation.quarterly_retrain_schedule],
    sensors=[automation.feedback_sensor, automation.corpus_change_sensor],
    resources={"settings": PipelineSettings()},
    # Local default: one process, so torch and the models are imported once, not per step. Scale-out
    # (multiprocess, celery, k8s) is chosen by $SLM_PIPELINE_EXECUTOR: see defs/scale_out.py and deploy/.
    executor=executor_from_env(),
)
