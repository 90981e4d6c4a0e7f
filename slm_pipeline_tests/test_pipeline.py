"""Dagster layer: definitions load, bad settings fail fast, PII canaries never pass the data stages, and the
whole graph materializes end to end on a tiny model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import pytest
import yaml

from slm_pipeline.bench import end_to_end
from slm_pipeline.config import PROJECT_ROOT, ConfigError, load_config
from slm_pipeline.core.artifacts import read_jsonl
from slm_pipeline.core.models import ModelResolutionError, resolve_base_model
from slm_pipeline.definitions import defs
from slm_pipeline.defs.resources import PipelineSettings

ASSETS = PROJECT_ROOT / "assets"
EXPECTED_ASSETS = {"raw_corpus", "anonymized_corpus", "retrieval_index", "instruction_pairs", "base_model",
                   "lora_adapter", "quantized_model", "eval_report"}  # + promoted_model, behind the gate


def write_config(tmp_path: Path, base_model: Path, corpus_dir: Path = ASSETS / "corpus", **sections) -> Path:
    doc = {
        "base_model": str(base_model),
        "artifacts_dir": str(tmp_path / "artifacts"),
        "gold_file": str(ASSETS / "gold" / "gold_qa.jsonl"),
        "probes_dir": str(ASSETS / "probes"),
        "policy_file": str(ASSETS / "policy.yaml"),
        "corpus": {"corpus_dir": str(corpus_dir)},
        "anonymize": {"canaries_file": str(ASSETS / "canaries.yaml")},
        "pairs": {"min_train_samples": 5},
        "train": {"max_steps": 2, "batch_size": 2, "max_seq_len": 256, "save_steps": 1, "precision": "fp32"},
        "export": {"variants": ["gguf-q8_0"], "verify_prompts": 1},
        "eval": {"max_gold": 2, "max_new_tokens": 4, "variants": ["base+rag", "merged+rag"]},
    }
    for key, value in sections.items():  # a section's keys are merged; a top-level setting is replaced
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / "slm_pipeline.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def materialize(config: Path, selection: str | None = None, instance=None):
    assets = defs.assets
    checks = defs.asset_checks
    return dg.materialize(
        [*assets, *checks], selection=selection, resources={"settings": PipelineSettings(config_file=str(config))},
        instance=instance, raise_on_error=False,
    )


def test_definitions_load_with_expected_assets_checks_and_automation():
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert EXPECTED_ASSETS | {"promoted_model"} <= keys
    # promotion is downstream of eval_report, behind its blocking gate
    assert dg.AssetKey("eval_report") in repo.asset_graph.get(dg.AssetKey("promoted_model")).parent_keys
    checks = {c.name: c for c in repo.asset_graph.asset_check_keys}
    assert {"anonymized_corpus_no_pii_leak", "eval_report_promotion_gate", "instruction_pairs_schema"} <= set(checks)
    assert defs.resolve_job_def("retrain_job")
    assert defs.resolve_schedule_def("quarterly_retrain_schedule").cron_schedule == "0 3 1 1,4,7,10 *"


def test_unknown_setting_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lerning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"train\.lerning_rate: unknown setting"):
        load_config(bad)
    bad.write_text("train:\n  method: sft\n")
    with pytest.raises(ConfigError, match=r"train\.method.*'lora', 'qlora' or 'dora'"):
        load_config(bad)


def test_paths_in_a_settings_file_resolve_against_its_folder_and_errors_name_it(tmp_path, monkeypatch):
    folder = tmp_path / "company"
    (folder / "docs").mkdir(parents=True)
    (folder / "models" / "my-embedder").mkdir(parents=True)
    settings = folder / "settings.yaml"
    settings.write_text("artifacts_dir: out\ncorpus:\n  corpus_dir: docs\nbase_model: HuggingFaceTB/SmolLM2-135M\n"
                        "retrieval:\n  embedding_model: ./models/my-embedder\n")
    monkeypatch.chdir(tmp_path)  # not the settings file's folder, not the project
    cfg = load_config("company/settings.yaml")
    assert cfg.path(cfg.corpus.corpus_dir) == folder / "docs"
    assert cfg.path(cfg.artifacts_dir) == folder / "out"
    assert cfg.retrieval.embedding_model == str(folder / "models" / "my-embedder")
    assert cfg.base_model == "HuggingFaceTB/SmolLM2-135M"  # a hub id stays a hub id
    assert cfg.path(cfg.policy_file) == PROJECT_ROOT / "assets" / "policy.yaml"  # not set there: the default
    assert cfg.settings_file == "company/settings.yaml"
    # Errors name the file actually used, and a missing settings file is an error, not silently the defaults.
    settings.write_text("train:\n  epochs: -1\n")
    with pytest.raises(ConfigError, match=r"company/settings\.yaml"):
        load_config("company/settings.yaml")
    with pytest.raises(ConfigError, match=r"nope\.yaml \(--config\) does not exist"):
        load_config("nope.yaml")
    # Inside the project, paths stay as written (asset versions do not depend on where the checkout is).
    assert load_config(PROJECT_ROOT / "slm_pipeline.yaml").corpus.corpus_dir == "assets/corpus"


def test_unknown_base_model_fails_with_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelResolutionError, match="embedded:smollm2-135m-instruct"):
        resolve_base_model("embedded:gpt-17", tmp_path)
    with pytest.raises(ModelResolutionError, match="HF_HUB_OFFLINE"):
        resolve_base_model("no-such-org/no-such-model", tmp_path)
    with pytest.raises(ModelResolutionError, match="config.json"):
        resolve_base_model(str(tmp_path), tmp_path)


def test_missing_corpus_dir_fails_fast_naming_the_setting(tmp_path, tiny_model_dir, capsys):
    from slm_pipeline.cli import main

    cfg = write_config(tmp_path, tiny_model_dir, corpus_dir=tmp_path / "nope")
    assert main(["--config", str(cfg), "run"]) == 2
    assert "corpus.corpus_dir" in capsys.readouterr().err


CANARIES = {
    "PERSON": "Ottoline Brackenbury",
    "EMAIL_ADDRESS": "ottoline.brackenbury@example.com",
    "PHONE_NUMBER": "+44 20 7946 0123",
    "STREET_ADDRESS": "12 Quillfeather Road, Leeds LS6 2QR",
    "CREDIT_CARD": "4111 1111 1111 1111",
    "IBAN_CODE": "DE89 3704 0044 0532 0130 00",
    "US_SSN": "512-44-9031",
    "IP_ADDRESS": "81.2.69.23",
    "ORDER_ID": "ORD-553201",
}


def planted_corpus(root: Path) -> Path:
    c = CANARIES
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "pricing.md").write_text(
        "# Pricing\n\n## Day pass\n\nA Day Pass costs 4.50 euros and lasts 24 hours.\n\n"
        f"## Contact\n\nOur billing lead {c['PERSON']} answers at {c['EMAIL_ADDRESS']}.\n"
    )
    (root / "faq.csv").write_text(
        "question,answer\n"
        + "".join(f'"How long does question {i} take?","It takes {i} minutes to resolve topic {i}."\n'
                  for i in range(8))
        + f'"Who handles refunds?","Refunds are handled by {c["PERSON"]}, phone {c["PHONE_NUMBER"]}."\n'
    )
    chat = {"id": "chat-1", "messages": [
        {"role": "user", "content": f"Hi, I'm {c['PERSON']}. My order {c['ORDER_ID']} was charged twice to card "
                                    f"{c['CREDIT_CARD']}. I live at {c['STREET_ADDRESS']}."},
        {"role": "assistant", "content": f"Sorry about that, {c['PERSON'].split()[0]}! I've refunded the duplicate "
                                         "charge; it shows within 5 to 7 business days."},
        {"role": "user", "content": f"Please send it to IBAN {c['IBAN_CODE']} instead. SSN {c['US_SSN']}, my IP "
                                    f"was {c['IP_ADDRESS']}."},
        {"role": "assistant", "content": "We can only refund to the original card, and please never share your "
                                         "social security number with us."},
    ]}
    (root / "chats.jsonl").write_text(json.dumps(chat) + "\n")
    return root


def _all_text(path: Path) -> str:
    return "\n".join(p.read_text() for p in path.rglob("*.jsonl"))


def test_planted_canaries_never_reach_anonymized_corpus_or_pairs(tmp_path, tiny_model_dir):
    corpus = planted_corpus(tmp_path / "corpus")
    cfg = write_config(tmp_path, tiny_model_dir, corpus_dir=corpus)
    result = materialize(cfg, selection=["raw_corpus", "anonymized_corpus", "retrieval_index", "instruction_pairs",
                                         "base_model"])
    assert result.success
    art = tmp_path / "artifacts"
    raw = _all_text(art / "raw_corpus")
    assert all(v in raw for v in CANARIES.values())  # planted for real
    for asset in ("anonymized_corpus", "instruction_pairs"):
        text = _all_text(art / asset)
        leaked = [k for k, v in CANARIES.items() if v in text or v.replace(" ", "") in text]
        assert not leaked, f"{asset} leaks {leaked}"
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["anonymized_corpus_no_pii_leak"] and checks["instruction_pairs_schema"]
    assert checks["retrieval_index_text_coverage"] and checks["instruction_pairs_text_coverage"]


def test_a_run_losing_corpus_text_warns_in_the_cli_and_the_ui_naming_the_loss(tmp_path, tiny_model_dir, capsys,
                                                                              monkeypatch):
    from slm_pipeline.cli import main

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    corpus = planted_corpus(tmp_path / "corpus")
    french = " ".join(["Le vélo se range dans un endroit sec et la batterie se charge chaque semaine en hiver."] * 12)
    (corpus / "docs" / "entretien.md").write_text(f"# Bike care\n\n## Winter care\n\n{french}\n")
    cfg = write_config(tmp_path, tiny_model_dir, corpus_dir=corpus)
    assert main(["--config", str(cfg), "run", "--select", "*instruction_pairs"]) == 0  # a warning, not a failure
    out = capsys.readouterr().out
    assert "check instruction_pairs_text_coverage" in out and "WARNING" in out
    warning = out.split("WARNING: ", 1)[1]
    assert warning.startswith("Only ") and "docs/entretien.md › Winter care" in warning and "non_english" in warning
    assert "check retrieval_index_text_coverage        passed" in out  # the index keeps that text

    record = dg.DagsterInstance.get().get_latest_materialization_event(dg.AssetKey("instruction_pairs"))  # as the UI
    meta = record.asset_materialization.metadata
    assert meta["text_share"].value < 0.9 and meta["text_lost_by_reason"].value["non_english"] > 100
    assert "entretien.md" in meta["text_loss_warning"].value


def test_cli_reports_a_failed_blocking_check_and_what_it_held_back(tmp_path, tiny_model_dir, capsys, monkeypatch):
    """No special case per check: the CLI prints any failed blocking check's verdict and what did not run."""
    from slm_pipeline.cli import EXIT_BLOCKED, main

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    corpus = planted_corpus(tmp_path / "corpus")
    canaries = tmp_path / "canaries.yaml"  # "Day Pass" is no PII, so it survives: a planted leak
    canaries.write_text("canaries:\n  - {type: PERSON, value: Day Pass}\n")
    cfg = write_config(tmp_path, tiny_model_dir, corpus_dir=corpus, anonymize={"canaries_file": str(canaries)})
    code = main(["--config", str(cfg), "run", "--log-level", "WARNING",
                 "--select", "key:raw_corpus or key:anonymized_corpus or key:retrieval_index"])
    out = capsys.readouterr().out
    assert code == EXIT_BLOCKED, out
    assert re.search(r"check anonymized_corpus_no_pii_leak\s+FAILED", out)
    assert "PII leak check failed: 1 value(s) survived anonymization" in out and "canary" in out
    assert "Not materialized (a blocking check stopped them): retrieval_index" in out
    assert not (tmp_path / "artifacts" / "retrieval_index").exists()


def test_whole_graph_end_to_end_on_tiny_model(tmp_path, tiny_model_dir, monkeypatch, capsys):
    from slm_pipeline.cli import EXIT_BLOCKED, main

    cfg = write_config(tmp_path, tiny_model_dir)
    home = tmp_path / "dagster_home"  # a persistent instance, so `make bench` can read the run back
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.get()
    # `slm-pipeline run`, the default: the whole graph. A random tiny model cannot beat anything, so the
    # promotion gate fails, which blocks promoted_model (the pointer `serve` follows) and nothing else.
    assert main(["--config", str(cfg), "run", "--log-level", "WARNING"]) == EXIT_BLOCKED
    out = capsys.readouterr().out
    (result,) = instance.get_runs(limit=1)
    materialized = {k for k in EXPECTED_ASSETS | {"promoted_model"}
                    if (e := instance.get_latest_materialization_event(dg.AssetKey(k))) and e.run_id == result.run_id}
    assert materialized == EXPECTED_ASSETS
    for check, verdict in (("anonymized_corpus_no_pii_leak", "passed"), ("instruction_pairs_schema", "passed"),
                           ("eval_report_promotion_gate", "FAILED")):
        assert re.search(rf"check {check}\s+{verdict}", out), out
    assert "The tuned model was NOT promoted" in out and "FAIL key_fact_accuracy" in out
    assert "Not materialized (a blocking check stopped them): promoted_model" in out
    art = tmp_path / "artifacts"
    assert not (art / "promoted.json").exists()
    for asset in EXPECTED_ASSETS - {"base_model"}:
        latest = (art / asset / "latest").read_text().strip()
        assert (art / asset / latest / "manifest.json").exists(), asset
    adapter = art / "lora_adapter" / (art / "lora_adapter" / "latest").read_text().strip()
    assert (adapter / "adapter_model.safetensors").exists() and (adapter / "loss_curve.png").exists()
    report = art / "eval_report" / (art / "eval_report" / "latest").read_text().strip()
    assert (report / "report.html").exists()
    pairs = art / "instruction_pairs" / (art / "instruction_pairs" / "latest").read_text().strip()
    sample = read_jsonl(pairs / "train.jsonl")[0]
    assert sample["messages"][0]["role"] == "system" and "help center" in sample["messages"][0]["content"]
    evaluated = json.loads((report / "eval_report.json").read_text())
    assert evaluated["candidate"] == "merged+rag" and evaluated["retrieval"]["recall_at_1"] is not None
    assert all(r["sources"] for r in evaluated["rows"] if r["model"].endswith("+rag"))
    mat = instance.get_latest_materialization_event(dg.AssetKey("lora_adapter")).asset_materialization
    assert {"final_eval_loss", "loss_curve", "tokens_per_second"} <= set(mat.metadata)

    # `make bench` end-to-end section: per-asset seconds of this whole-chain run ...
    e2e = end_to_end(home)
    assert e2e["run_id"] == result.run_id and e2e.get("note") is None
    assert {"lora_adapter", "quantized_model", "eval_report"} <= set(e2e["steps_s"]) and e2e["run_wall_s"] > 0
    # ... and a re-run of the same inputs (the adapter resumes from its last checkpoint in seconds) does not
    # replace it as the measurement.
    again = materialize(cfg, instance=instance)
    resumed = instance.get_latest_materialization_event(dg.AssetKey("lora_adapter")).asset_materialization
    assert resumed.metadata["resumed_from"].value != "-" and again.run_id != result.run_id
    assert end_to_end(home)["run_id"] == result.run_id


def test_default_path_does_not_log_the_bitsandbytes_optional_kernel_warning():
    """bitsandbytes (on AVX512-BF16 CPUs) logs that an optional hub-fetched kernel package is missing; a user can
    do nothing about it and we never install it (no network at run time)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import slm_pipeline, bitsandbytes, peft"], capture_output=True,
                          text=True, timeout=300, cwd=PROJECT_ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "kernels-community" not in proc.stderr
