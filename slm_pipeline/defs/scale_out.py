"""Scale-out switches of the Dagster layer, set by environment (deploy/), not code.

- `SLM_PIPELINE_EXECUTOR` picks how the steps of a run execute (read when the code location loads; set it
  for the code server / `dagster dev` and, for Celery, for the workers too):
    in_process   (default) every step in the run's process: torch and the models are imported once
    multiprocess every step in its own process on the run's machine (independent steps run side by side)
    celery       every step is a Celery task on a worker (dagster-celery); broker and result backend URL
                 (Redis) in SLM_CELERY_BROKER_URL, the same value the workers get (deploy/celery/)
    k8s          every step is a Kubernetes Job (dagster-k8s k8s_job_executor), configured from the
                 K8sRunLauncher in the instance (deploy/k8s/)
- `SLM_PIPELINE_TRAIN_GPUS` (default 1): GPUs the lora_adapter step requests when it runs as its own
  Kubernetes pod (op tag `dagster-k8s/config`); 0 = none. Match it to train.processes.
- `SLM_PIPELINE_TRAIN_QUEUE` (default: none): Celery queue for the lora_adapter step (op tag
  `dagster-celery/queue`), so that only workers started with `-q <queue>` (on GPU machines) take it.
"""

import os
from collections.abc import Mapping

import dagster as dg

EXECUTOR_ENV = "SLM_PIPELINE_EXECUTOR"
EXECUTORS = ("in_process", "multiprocess", "celery", "k8s")
BROKER_ENV = "SLM_CELERY_BROKER_URL"
# Redis re-delivers a task nobody acknowledged within the visibility timeout (default 1 h) to another worker.
# Tasks are acknowledged when a worker takes them, but one waiting in a worker's prefetch during a long training
# step is not: without this it could run twice. Same value in deploy/celery/celery.yaml for the workers.
CELERY_CONFIG_SOURCE = {"broker_transport_options": {"visibility_timeout": 86400, "max_retries": 3}}
TRAIN_GPUS_ENV = "SLM_PIPELINE_TRAIN_GPUS"
TRAIN_QUEUE_ENV = "SLM_PIPELINE_TRAIN_QUEUE"


def executor_from_env(env: Mapping[str, str] | None = None) -> dg.ExecutorDefinition:
    env = os.environ if env is None else env
    name = env.get(EXECUTOR_ENV, "").strip() or "in_process"
    if name == "in_process":
        return dg.in_process_executor
    if name == "multiprocess":
        return dg.multiprocess_executor
    if name == "celery":
        try:
            from dagster_celery import celery_executor
        except ImportError:
            raise ImportError(f"{EXECUTOR_ENV}=celery needs dagster-celery: pip install -e '.[celery]'") from None
        # The URL by env var name, resolved when a run starts: it never ends up in the job snapshot or the UI.
        return celery_executor.configured(
            {"broker": {"env": BROKER_ENV}, "backend": {"env": BROKER_ENV}, "config_source": CELERY_CONFIG_SOURCE},
            name="celery",
        )
    if name == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError:
            raise ImportError(f"{EXECUTOR_ENV}=k8s needs dagster-k8s: pip install -e '.[k8s]'") from None
        return k8s_job_executor
    raise ValueError(f"{EXECUTOR_ENV}={name!r} is not an executor; use one of {', '.join(EXECUTORS)}")


def training_op_tags(env: Mapping[str, str] | None = None) -> dict:
    """Op tags of lora_adapter: its GPUs as Kubernetes resources (read by dagster-k8s only) and its Celery queue
    (read by dagster-celery only); inert for the other executors."""
    env = os.environ if env is None else env
    tags = {}
    if env.get(TRAIN_QUEUE_ENV, "").strip():
        tags["dagster-celery/queue"] = env[TRAIN_QUEUE_ENV].strip()
    raw = env.get(TRAIN_GPUS_ENV, "1").strip() or "1"
    if not raw.isdigit():
        raise ValueError(f"{TRAIN_GPUS_ENV}={raw!r}: expected a whole number of GPUs (0 = none)")
    gpus = int(raw)
    if gpus == 0:
        return tags
    return tags | {"dagster-k8s/config": {
        # Extended resources are requested through limits (a request, if given, must equal the limit).
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}},
        # GPU node pools are usually tainted so that only pods asking for GPUs land there.
        "pod_spec_config": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                             "effect": "NoSchedule"}]},
    }}
