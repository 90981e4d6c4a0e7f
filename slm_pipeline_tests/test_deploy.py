"""deploy/ is loaded and validated by the libraries that will run it, without a cluster or GPUs:
accelerate configs by accelerate's launcher, Kubernetes manifests against the Kubernetes API models, the
instance configs against Dagster's schema, the K8sRunLauncher constructed from its config, and the pod the k8s
executor would start for lora_adapter built by dagster-k8s (with its GPU request)."""

from __future__ import annotations

import json
import shlex
import textwrap
from pathlib import Path

import click
import dagster as dg
import pytest
import yaml

from slm_pipeline.config import PROJECT_ROOT, PipelineConfig
from slm_pipeline.core import distributed
from slm_pipeline.defs import scale_out

DEPLOY = PROJECT_ROOT / "deploy"
ACCELERATE = {"ddp.yaml": "MULTI_GPU", "fsdp.yaml": "FSDP", "deepspeed_zero3.yaml": "DEEPSPEED"}


# ------------------------------------------------------------------------------------------ accelerate


def _header(path: Path) -> list[str]:
    """The leading comment block, '#' stripped, backslash-continued lines joined."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[2:] if line.startswith("# ") else line[1:])
    return "\n".join(lines).replace("\\\n", " ").splitlines()


def _header_command(path: Path) -> list[str]:
    """The `accelerate launch ...` command written in the header."""
    found = [line.strip() for line in _header(path) if line.strip().startswith("accelerate launch")]
    assert found, f"{path.name}: no `accelerate launch` command in the header"
    return shlex.split(found[0])


def _header_settings(path: Path) -> dict:
    """The slm_pipeline.yaml snippet of the header: the lines after '...slm_pipeline.yaml:' up to 'By hand'."""
    lines = _header(path)
    start = next(i for i, line in enumerate(lines) if line.rstrip().endswith("slm_pipeline.yaml:")) + 1
    end = next(i for i, line in enumerate(lines) if line.startswith("By hand"))
    return yaml.safe_load(textwrap.dedent("\n".join(lines[start:end])))


@pytest.mark.parametrize("name", sorted(ACCELERATE))
def test_accelerate_config_passes_accelerates_own_launch_validation(name):
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import constants
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    path = DEPLOY / "accelerate" / name
    command = _header_command(path)
    assert command[:2] == ["accelerate", "launch"] and f"deploy/accelerate/{name}" in command
    parser = launch_command_parser()
    args = parser.parse_args(command[2:])  # the documented command line, as accelerate parses it
    assert args.module and args.training_script == "slm_pipeline.core.distributed"
    worker = distributed.build_parser().parse_args(args.training_script_args)
    assert worker.base and worker.pairs and worker.out and worker.config
    args, defaults, _ = _validate_launch_command(args)  # reads the file (unknown keys fail here)
    assert str(defaults.distributed_type).endswith(ACCELERATE[name])
    options = {a.dest for a in parser._actions}
    if defaults.fsdp_config:
        unknown = set(defaults.fsdp_config) - options
        assert not unknown, f"{name}: fsdp_config keys accelerate does not know: {unknown}"
        fsdp = defaults.fsdp_config
        assert fsdp["fsdp_sharding_strategy"] in constants.FSDP_SHARDING_STRATEGY
        assert fsdp["fsdp_auto_wrap_policy"] in constants.FSDP_AUTO_WRAP_POLICY
        assert fsdp["fsdp_backward_prefetch"] in constants.FSDP_BACKWARD_PREFETCH
        assert fsdp["fsdp_state_dict_type"] in constants.FSDP_STATE_DICT_TYPE
        env = prepare_multi_gpu_env(args)
        assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "true"
    elif defaults.deepspeed_config:
        unknown = set(defaults.deepspeed_config) - options
        assert not unknown, f"{name}: deepspeed_config keys accelerate does not know: {unknown}"
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as launch_command does
        _, env = prepare_deepspeed_cmd_env(args)
        assert env["ACCELERATE_USE_DEEPSPEED"] == "true" and env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == "3"
        assert env["ACCELERATE_DEEPSPEED_ZERO3_INIT"] == "true"
    else:
        assert prepare_multi_gpu_env(args)["ACCELERATE_MIXED_PRECISION"] == "bf16"
    # The settings shown in the header are real settings, and name this file.
    settings = _header_settings(path)
    cfg = PipelineConfig.model_validate(settings)
    assert cfg.train.launcher_config == f"deploy/accelerate/{name}" and cfg.train.processes > 1
    assert distributed.resolve_launcher_config(cfg.train.launcher_config) == path


def test_lora_adapter_launches_through_a_shipped_config(tmp_path):
    cmd = distributed.launch_command(PipelineConfig.model_validate(
        {"train": {"processes": 4, "launcher_config": "deploy/accelerate/fsdp.yaml"}}).train, tmp_path / "job.json")
    from accelerate.commands.launch import launch_command_parser

    args = launch_command_parser().parse_args(cmd[3:])
    assert args.config_file == str(DEPLOY / "accelerate" / "fsdp.yaml") and args.num_processes == 4


# ------------------------------------------------------------------------------------------ instance configs


def _instance_config(text: str, tmp_path: Path) -> dict:
    """Validate a dagster.yaml against Dagster's instance schema (what DagsterInstance.get() does first)."""
    from dagster._core.instance.config import dagster_instance_config

    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(text)
    config, _ = dagster_instance_config(str(home))
    return config


PG_ENV = {"DAGSTER_PG_HOST": "db", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "dagster",
          "DAGSTER_PG_PASSWORD": "secret", "DAGSTER_PG_DB": "dagster"}


def test_postgres_instance_config_is_valid(tmp_path, monkeypatch):
    for k, v in PG_ENV.items():
        monkeypatch.setenv(k, v)
    config = _instance_config((DEPLOY / "postgres" / "dagster.yaml").read_text(), tmp_path)
    db = config["storage"]["postgres"]["postgres_db"]
    assert db["scheme"] == "postgresql+psycopg2" and db["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    from dagster._config import process_config
    from dagster._core.storage.config import pg_config
    from dagster_postgres.utils import pg_url_from_config

    resolved = process_config(pg_config(), config["storage"]["postgres"]).value
    assert pg_url_from_config(resolved) == "postgresql+psycopg2://dagster:secret@db:5432/dagster"


# ------------------------------------------------------------------------------------------ Kubernetes


def _k8s_docs() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _strict_k8s(type_name: str, value, where: str):
    """Build a kubernetes client model from manifest JSON, rejecting keys the API type does not have."""
    import kubernetes.client.models as models

    if type_name.startswith("list["):
        assert isinstance(value, list), f"{where}: expected a list"
        return [_strict_k8s(type_name[5:-1], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if type_name.startswith(("dict(", "dict[")):  # 'dict(str, str)' or 'dict[str, str]' by client version
        assert isinstance(value, dict), f"{where}: expected a mapping"
        inner = type_name[5:-1].split(",", 1)[1].strip()
        return {k: _strict_k8s(inner, v, f"{where}.{k}") for k, v in value.items()}
    if type_name == "str":
        assert isinstance(value, str), f"{where}: expected a string, got {value!r}"
        return value
    if type_name == "int":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: expected an integer"
        return value
    if type_name == "bool":
        assert isinstance(value, bool), f"{where}: expected true/false"
        return value
    if type_name in ("object", "float", "datetime", "date"):
        return value
    cls = getattr(models, type_name)
    assert isinstance(value, dict), f"{where}: expected a {type_name} mapping"
    by_json = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    unknown = set(value) - set(by_json)
    assert not unknown, f"{where}: {type_name} has no field(s) {sorted(unknown)}"
    kwargs = {by_json[k]: _strict_k8s(cls.openapi_types[by_json[k]], v, f"{where}.{k}") for k, v in value.items()}
    return cls(**kwargs)  # the client's own checks: required fields, enum values


def test_kubernetes_manifests_are_valid_api_objects():
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    objects = {}
    for fname, doc in _k8s_docs():
        kind = f"V1{doc['kind']}"
        assert doc["apiVersion"].split("/")[-1] == "v1", f"{fname}: {doc['apiVersion']}"
        obj = _strict_k8s(kind, doc, f"{fname}:{doc['kind']}/{doc['metadata']['name']}")
        assert doc["metadata"].get("namespace", kustomization["namespace"]) == kustomization["namespace"]
        objects[(doc["kind"], doc["metadata"]["name"])] = obj
    # Everything a pod refers to exists in the manifests.
    for (kind, name), obj in objects.items():
        if kind not in ("Deployment", "StatefulSet"):
            continue
        spec = obj.spec.template.spec
        if spec.service_account_name:
            assert ("ServiceAccount", spec.service_account_name) in objects, name
        for v in spec.volumes or []:
            if v.config_map:
                assert ("ConfigMap", v.config_map.name) in objects, f"{name}: {v.config_map.name}"
            if v.persistent_volume_claim:
                assert ("PersistentVolumeClaim", v.persistent_volume_claim.claim_name) in objects
        for c in spec.containers:
            for e in c.env_from or []:
                assert ("ConfigMap", e.config_map_ref.name) in objects
            for e in c.env or []:
                if e.value_from and e.value_from.secret_key_ref:
                    ref = e.value_from.secret_key_ref
                    assert ref.key in objects[("Secret", ref.name)].string_data, f"{name}: {ref.name}/{ref.key}"
    assert ("Service", "slm-pipeline-code") in objects  # workspace.yaml points at it


def _dagster_cli(name: str):
    from dagster._cli import cli
    from dagster._daemon.cli import cli as daemon_cli
    from dagster_webserver.cli import cli as webserver_cli

    return {"dagster": cli, "dagster-daemon": daemon_cli, "dagster-webserver": webserver_cli}[name]


def _parse_cli(command: click.Command, argv: list[str]) -> dict:
    """Parse argv with the real click command (unknown options, bad values and missing files fail)."""
    args = list(argv)
    while isinstance(command, click.Group):
        ctx = command.make_context(command.name, args)
        _, command, args = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
    return command.make_context(command.name, args).params


def test_kubernetes_pods_run_valid_dagster_commands(tmp_path):
    from dagster._core.workspace.config_schema import ensure_workspace_config

    instance = {d["metadata"]["name"]: d for _, d in _k8s_docs() if d["kind"] == "ConfigMap"}["dagster-instance"]
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(instance["data"]["workspace.yaml"])
    ensure_workspace_config(yaml.safe_load(workspace.read_text()), str(tmp_path))
    commands = []
    for _, doc in _k8s_docs():
        if doc["kind"] == "Deployment":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                commands.append(c["command"])
                probe = c.get("readinessProbe", {}).get("exec")
                if probe:
                    commands.append(probe["command"])
    assert len(commands) == 4
    for argv in commands:
        argv = [str(workspace) if a.endswith("workspace.yaml") else a for a in argv]
        params = _parse_cli(_dagster_cli(argv[0]), argv[1:])
        if argv[1:3] == ["code-server", "start"]:
            assert params["module_name"] == "slm_pipeline.definitions" and params["port"] == 4000


@pytest.fixture
def in_cluster(tmp_path, monkeypatch):
    """What a pod sees: service-account token and CA files, and the API server address (never contacted)."""
    import kubernetes
    import kubernetes.config.incluster_config as incluster

    (tmp_path / "token").write_text("test-token")
    (tmp_path / "ca.crt").write_text("test-ca")
    monkeypatch.setattr(incluster, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    default = kubernetes.client.Configuration.get_default_copy()
    yield
    kubernetes.client.Configuration.set_default(default)


def test_k8s_run_launcher_and_the_gpu_pod_of_lora_adapter(in_cluster, tmp_path, monkeypatch):
    """The instance config of deploy/k8s builds a K8sRunLauncher; the Job that the k8s executor would create for
    the lora_adapter step (built by dagster-k8s from the launcher and the asset's op tags) requests the GPU."""
    from dagster._core.launcher import RunLauncher
    from dagster._serdes.config_class import ConfigurableClassData
    from dagster_k8s import K8sRunLauncher
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import construct_dagster_k8s_job, get_user_defined_k8s_config

    from slm_pipeline.definitions import defs

    for k, v in PG_ENV.items():
        monkeypatch.setenv(k, v)
    configmap = {d["metadata"]["name"]: d for _, d in _k8s_docs() if d["kind"] == "ConfigMap"}
    config = _instance_config(configmap["dagster-instance"]["data"]["dagster.yaml"], tmp_path)
    assert config["storage"]["postgres"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    section = config["run_launcher"]
    launcher = ConfigurableClassData(section["module"], section["class"], yaml.safe_dump(section["config"])) \
        .rehydrate(as_type=RunLauncher)
    assert isinstance(launcher, K8sRunLauncher)
    assert launcher.job_namespace == "slm-pipeline" and launcher.env_config_maps == ["slm-pipeline-env"]

    tags = defs.resolve_assets_def("lora_adapter").op.tags
    assert json.loads(tags["dagster-k8s/config"])["container_config"]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    run = dg.DagsterRun(job_name="retrain_job", run_id="0123abcd")
    # As K8sStepHandler does for a step: the run's context from the launcher, merged with the step's op tags.
    context = K8sContainerContext.create_for_run(run, launcher, include_run_tags=False).merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(tags)))
    job_config = context.get_k8s_job_config(job_image="registry.example.com/slm-pipeline:latest",
                                            run_launcher=launcher)
    job = construct_dagster_k8s_job(job_config=job_config, args=["dagster", "api", "execute_step"],
                                    job_name="dagster-step-x", pod_name="dagster-step-x", component="step_worker",
                                    user_defined_k8s_config=context.run_k8s_config, labels={"dagster/op": "lora_adapter"},
                                    env_vars=[])
    pod = job.spec.template.spec
    [container] = pod.containers
    assert container.resources.limits == {"nvidia.com/gpu": "1"}
    assert [(t.key, t.effect) for t in pod.tolerations] == [("nvidia.com/gpu", "NoSchedule")]
    assert {(m.name, m.mount_path) for m in container.volume_mounts} >= {("data", "/data")}
    assert {v.persistent_volume_claim.claim_name for v in pod.volumes if v.persistent_volume_claim} == {"slm-data"}
    assert [e.config_map_ref.name for e in container.env_from] == ["slm-pipeline-env"]
    password = next(e for e in container.env if e.name == "DAGSTER_PG_PASSWORD")
    assert password.value_from.secret_key_ref.name == "dagster-postgresql"
    assert pod.service_account_name == "dagster" and context.namespace == "slm-pipeline"
    # Any other step: no GPU.
    plain = K8sContainerContext.create_for_run(run, launcher, include_run_tags=False)
    assert not (plain.run_k8s_config.container_config or {}).get("resources")


# ------------------------------------------------------------------------------------------ executors


def test_executor_switch_and_gpu_tags():
    from dagster_celery import celery_executor
    from dagster_k8s import k8s_job_executor

    from slm_pipeline.definitions import defs

    assert defs.resolve_job_def("retrain_job").executor_def is dg.in_process_executor  # the local default
    assert scale_out.executor_from_env({}) is dg.in_process_executor
    assert scale_out.executor_from_env({"SLM_PIPELINE_EXECUTOR": "multiprocess"}) is dg.multiprocess_executor
    assert scale_out.executor_from_env({"SLM_PIPELINE_EXECUTOR": "k8s"}) is k8s_job_executor
    celery = scale_out.executor_from_env({"SLM_PIPELINE_EXECUTOR": "celery"})
    assert celery.name == "celery" and celery is not celery_executor
    with pytest.raises(ValueError, match="SLM_PIPELINE_EXECUTOR='ray'.*in_process, multiprocess, celery, k8s"):
        scale_out.executor_from_env({"SLM_PIPELINE_EXECUTOR": "ray"})
    assert scale_out.training_op_tags({"SLM_PIPELINE_TRAIN_GPUS": "0"}) == {}
    four = scale_out.training_op_tags({"SLM_PIPELINE_TRAIN_GPUS": "4"})
    assert four["dagster-k8s/config"]["container_config"]["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    with pytest.raises(ValueError, match="SLM_PIPELINE_TRAIN_GPUS"):
        scale_out.training_op_tags({"SLM_PIPELINE_TRAIN_GPUS": "all"})
    from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG

    queued = scale_out.training_op_tags({"SLM_PIPELINE_TRAIN_QUEUE": "gpu", "SLM_PIPELINE_TRAIN_GPUS": "0"})
    assert queued == {DAGSTER_CELERY_QUEUE_TAG: "gpu"}


def test_celery_worker_config_matches_the_executor(monkeypatch):
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv("SLM_CELERY_BROKER_URL", "redis://redis.internal:6379/0")
    worker = get_validated_config(str(DEPLOY / "celery" / "celery.yaml"))
    assert worker["broker"] == worker["backend"] == "redis://redis.internal:6379/0"
    assert worker["config_source"] == scale_out.CELERY_CONFIG_SOURCE
