"""Versions that tell the truth: derived code versions, content-addressed data versions reported to Dagster,
checkpoints keyed by the data they train on, and promotion as an asset behind the blocking gate."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest
from test_pipeline import ASSETS, materialize, planted_corpus, write_config

from slm_pipeline.config import load_config
from slm_pipeline.core.artifacts import version_folder
from slm_pipeline.core.versions import code_modules, code_version
from slm_pipeline.definitions import defs

CHAIN = ["raw_corpus", "anonymized_corpus", "retrieval_index", "instruction_pairs", "base_model", "lora_adapter",
         "quantized_model", "eval_report", "promoted_model"]
BELOW_ANONYMIZED = ["retrieval_index", "instruction_pairs", "lora_adapter", "quantized_model", "eval_report"]
LENIENT_GATE = {"promotion_margin": -1.0, "min_ood_refusal_rate": 0.0, "min_key_fact_accuracy": 0.0,
                "max_false_refusal_rate": 1.0}  # a random tiny model passes: nothing to beat, no floor


# ----------------------------------------------------------------------------------- code versions (unit)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    st = path.stat()  # a later mtime even on coarse clocks: the digest cache is keyed by (path, mtime, size)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_code_version_follows_the_code_it_uses_not_comments_or_other_modules(tmp_path, monkeypatch):
    pkg = tmp_path / "verpkg"
    _write(pkg / "__init__.py", "")
    _write(pkg / "core" / "__init__.py", "")
    _write(pkg / "core" / "a.py", "def run():\n    from .b import rate  # imported lazily\n    return rate()\n")
    _write(pkg / "core" / "b.py", '"""Rates."""\nfrom .lex import WORDS\n\ndef rate():\n    return 0.5 * len(WORDS)\n')
    _write(pkg / "core" / "lex" / "__init__.py", "WORDS = ['a']\n")
    _write(pkg / "core" / "lex" / "words.yaml", "- bike\n")
    _write(pkg / "core" / "unused.py", "X = 1\n")
    defs_py = "from .core.a import run\n\n\ndef _twice():\n    return 2 * run()\n\n\ndef asset_fn():\n    return _twice()\n"
    _write(pkg / "defs.py", defs_py)
    monkeypatch.syspath_prepend(str(tmp_path))
    from verpkg.defs import asset_fn  # written by this test

    def version():
        return code_version(asset_fn, package="verpkg.core")

    names = [n for n, _ in code_modules(asset_fn, package="verpkg.core")]
    assert names == ["verpkg.core.a", "verpkg.core.b", "verpkg.core.lex", "verpkg.core.lex/words.yaml"]
    v0 = version()
    _write(pkg / "core" / "b.py", '"""Rates, reworded."""\nfrom .lex import WORDS\n\n\ndef rate():  # comment\n'
           '    return 0.5 * len(WORDS)\n')
    assert version() == v0  # docstring, comment and blank lines are not behaviour
    _write(pkg / "core" / "unused.py", "X = 2\n")
    assert version() == v0  # a module the asset never reaches
    _write(pkg / "core" / "b.py", '"""Rates."""\nfrom .lex import WORDS\n\ndef rate():\n    return 0.6 * len(WORDS)\n')
    v1 = version()
    assert v1 != v0  # a transitively imported module changed what it computes
    _write(pkg / "core" / "lex" / "words.yaml", "- bicycle\n")
    v2 = version()
    assert v2 not in (v0, v1)  # data shipped in a package it imports
    _write(pkg / "defs.py", defs_py.replace("2 * run()", "3 * run()"))  # a helper beside the asset function
    for name in [m for m in sys.modules if m.startswith("verpkg")]:
        del sys.modules[name]
    from verpkg.defs import asset_fn
    assert version() not in (v0, v1, v2)
    for name in [m for m in sys.modules if m.startswith("verpkg")]:
        del sys.modules[name]


def test_every_asset_has_a_code_version_derived_from_its_code():
    repo = defs.get_repository_def()
    versions = {k.to_user_string(): a.code_versions_by_key[k] for k, a in repo.assets_defs_by_key.items()}
    assert set(CHAIN) <= set(versions)
    assert all(v and len(v) == 12 and v != "1" for v in versions.values()), versions
    assert len(set(versions.values())) == len(versions)  # each asset's own function counts
    lora = repo.assets_defs_by_key[dg.AssetKey("lora_adapter")]
    modules = {n for n, _ in code_modules(lora.op.compute_fn.decorated_fn)}
    assert {"slm_pipeline.core.train", "slm_pipeline.core.models"} <= modules
    assert not any(m.startswith("slm_pipeline.defs") or m == "slm_pipeline.config" for m in modules)


def test_version_folder_is_content_addressed_and_atomic(tmp_path):
    root = tmp_path / "thing"
    with version_folder(root, "thing", content=["data.txt"], note="first") as f:
        (f.tmp / "data.txt").write_text("same")
        (f.tmp / "timing.json").write_text("1.0")  # not part of the content hash
    with version_folder(root, "thing", content=["data.txt"]) as g:
        (g.tmp / "data.txt").write_text("same")
        (g.tmp / "timing.json").write_text("2.0")
    assert f.version == g.version and (root / "latest").read_text().strip() == f.version
    assert json.loads((g.dir / "manifest.json").read_text())["version"] == g.version
    with pytest.raises(RuntimeError), version_folder(root, "thing", content=["data.txt"]) as h:
        (h.tmp / "data.txt").write_text("other")
        raise RuntimeError("crash while writing")
    assert sorted(p.name for p in root.iterdir()) == sorted([f.version, "latest"])  # nothing half-written


# --------------------------------------------------------------------------- the pipeline on a tiny corpus


def small_config(tmp_path: Path, model: Path, **sections) -> Path:
    """The planted tiny corpus with 3 gold questions and 3 + 3 probes: a whole-graph run in well under a minute."""
    small = tmp_path / "small"
    for src, n in ((ASSETS / "gold" / "gold_qa.jsonl", 3), (ASSETS / "probes" / "out_of_domain.jsonl", 3),
                   (ASSETS / "probes" / "pii_probes.jsonl", 3)):
        dst = small / src.relative_to(ASSETS)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text("".join(src.read_text().splitlines(True)[:n]))
    corpus = tmp_path / "corpus"
    if not corpus.exists():
        planted_corpus(corpus)
    sections = {"gold_file": str(small / "gold" / "gold_qa.jsonl"), "probes_dir": str(small / "probes"),
                "export": {"variants": []}, **sections}
    sections["eval"] = {"latency_prompts": 1, **sections.get("eval", {})}
    return write_config(tmp_path, model, corpus_dir=corpus, **sections)


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


def data_versions(instance) -> dict[str, str]:
    """The data version Dagster recorded at each asset's latest materialization."""
    out = {}
    for name in CHAIN:
        event = instance.get_latest_materialization_event(dg.AssetKey(name))
        if event is not None:
            out[name] = event.asset_materialization.tags["dagster/data_version"]
    return out


def latest_metadata(instance, name: str) -> dict:
    mat = instance.get_latest_materialization_event(dg.AssetKey(name)).asset_materialization
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def stale_status(instance) -> dict[str, tuple[str, list[str]]]:
    """What the Dagster UI shows: each asset's staleStatus and stale causes, through its GraphQL API."""
    from dagster._core.test_utils import in_process_test_workspace
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster_graphql.test.utils import execute_dagster_graphql

    query = "{ assetNodes { assetKey { path } staleStatus staleCauses { key { path } reason } } }"
    origin = LoadableTargetOrigin(module_name="slm_pipeline.definitions", attribute="defs")
    with in_process_test_workspace(instance, origin) as context:
        nodes = execute_dagster_graphql(context, query).data["assetNodes"]
    return {"/".join(n["assetKey"]["path"]): (n["staleStatus"], sorted(
        f"{'/'.join(c['key']['path'])} {c['reason']}" for c in n["staleCauses"])) for n in nodes}


def test_anonymizer_change_reaches_every_version_below_it_and_the_gate_keeps_the_promoted_model(
        tmp_path, tiny_model_dir, instance, monkeypatch):
    from slm_pipeline.core.anonymize.engine import Anonymizer
    from slm_pipeline.core.serve import promoted_model_path

    cfg = small_config(tmp_path, tiny_model_dir, eval=LENIENT_GATE)
    first = materialize(cfg, instance=instance)
    assert first.success, [e.step_key for e in first.all_events if e.is_step_failure]
    v1 = data_versions(instance)
    assert set(v1) == set(CHAIN)
    art = tmp_path / "artifacts"
    for name in CHAIN[:-1]:  # every version folder is the data version Dagster recorded
        assert (art / name / v1[name]).is_dir() or name == "base_model", name
    served = promoted_model_path(load_config(cfg))
    assert served == art / "quantized_model" / v1["quantized_model"] / "merged"
    ckpt_root = art / "lora_adapter" / "_checkpoints"
    assert [p.name for p in ckpt_root.iterdir()] == [v1["lora_adapter"]]
    assert {s for s, _ in stale_status(instance).values()} == {"FRESH"}

    # (2) Unchanged inputs: the same versions, and the adapter resumes from its last checkpoint.
    again = materialize(cfg, ["raw_corpus", "anonymized_corpus", "instruction_pairs", "lora_adapter"], instance)
    assert again.success
    assert data_versions(instance) == v1
    assert latest_metadata(instance, "lora_adapter")["resumed_from"].endswith(f"{v1['lora_adapter']}/checkpoint-2")

    # (1) A fix in the anonymizer changes what it writes (monkeypatched here: no file of code changes).
    real = Anonymizer.anonymize_records

    def fixed(self, records, *args, **kwargs):
        clean, report = real(self, records, *args, **kwargs)
        return [json.loads(json.dumps(r).replace("minutes", "min")) for r in clean], report

    monkeypatch.setattr(Anonymizer, "anonymize_records", fixed)
    assert materialize(cfg, ["raw_corpus", "anonymized_corpus"], instance).success
    v2 = data_versions(instance)
    assert v2["raw_corpus"] == v1["raw_corpus"] and v2["anonymized_corpus"] != v1["anonymized_corpus"]
    # (5) Dagster itself (its GraphQL API, what the UI shows) marks the assets that read it as stale. Staleness
    # is per edge: lora_adapter turns stale once instruction_pairs has new content, not before.
    stale = stale_status(instance)
    assert stale["raw_corpus"][0] == stale["anonymized_corpus"][0] == stale["base_model"][0] == "FRESH"
    for name in ("retrieval_index", "instruction_pairs"):
        assert stale[name] == ("STALE", ["anonymized_corpus has a new data version"]), stale[name]
    assert stale["lora_adapter"][0] == "FRESH"
    assert materialize(cfg, ["retrieval_index", "instruction_pairs"], instance).success
    stale = stale_status(instance)
    assert stale["lora_adapter"] == ("STALE", ["instruction_pairs has a new data version"])
    assert stale["eval_report"][0] == "STALE" and stale["retrieval_index"][0] == "FRESH"

    # The rest of the chain on the new data, now judged by a gate the new model cannot pass.
    cfg = small_config(tmp_path, tiny_model_dir, eval={**LENIENT_GATE, "min_key_fact_accuracy": 1.0})
    rest = materialize(cfg, ["lora_adapter", "quantized_model", "eval_report", "promoted_model"], instance)
    v3 = data_versions(instance)
    for name in BELOW_ANONYMIZED:
        assert v3[name] != v1[name], f"{name} kept its version on other data"
    # lora_adapter trained anew in a checkpoint folder of its own: it never resumed the old data's checkpoint.
    meta = latest_metadata(instance, "lora_adapter")
    assert meta["resumed_from"] == "-" and meta["steps"] == 2
    assert sorted(p.name for p in ckpt_root.iterdir()) == sorted([v1["lora_adapter"], v3["lora_adapter"]])
    manifest = json.loads((art / "lora_adapter" / v3["lora_adapter"] / "manifest.json").read_text())
    assert manifest["instruction_pairs"] == v3["instruction_pairs"]

    # (4) The gate failed: promoted_model did not run, the pointer is untouched and `serve` keeps the old model.
    checks = {e.check_name: e.passed for e in rest.get_asset_check_evaluations()}
    assert checks["eval_report_promotion_gate"] is False
    assert "promoted_model" not in {e.asset_key.to_user_string() for e in rest.get_asset_materialization_events()}
    assert v3["promoted_model"] == v1["promoted_model"]
    assert promoted_model_path(load_config(cfg)) == served and served.is_dir()
    stale = stale_status(instance)
    assert stale["promoted_model"] == ("STALE", [f"{name} has a new data version" for name in (  # held back
        "eval_report", "quantized_model", "retrieval_index")]), stale["promoted_model"]
    assert stale["eval_report"][0] == "FRESH"
    # Materializing promoted_model on its own (e.g. from the UI) refuses too.
    alone = materialize(cfg, ["promoted_model"], instance)
    assert not alone.success
    (failure,) = [e for e in alone.all_events if e.is_step_failure]
    assert "did not pass the promotion gate" in failure.step_failure_data.error.to_string()
    assert promoted_model_path(load_config(cfg)) == served


def test_crash_mid_training_resumes_from_the_last_checkpoint(tmp_path, tiny_model_dir, instance, monkeypatch):
    from slm_pipeline.defs import training

    cfg = small_config(tmp_path, tiny_model_dir, train={"max_steps": 4, "save_steps": 1})
    real = training.train_adapter

    def crashes_after_step_2(*args, **kwargs):
        real(*args, **kwargs, stop_after_steps=2)  # checkpoint-2 is on disk, like after a power cut at step 3
        raise RuntimeError("simulated crash during training")

    monkeypatch.setattr(training, "train_adapter", crashes_after_step_2)
    crashed = materialize(cfg, CHAIN[:6], instance)
    assert not crashed.success
    root = tmp_path / "artifacts" / "lora_adapter"
    (version,) = [p.name for p in (root / "_checkpoints").iterdir()]
    assert sorted(p.name for p in root.iterdir()) == ["_checkpoints"]  # no half-written adapter, no latest
    assert (root / "_checkpoints" / version / "checkpoint-2").is_dir()

    monkeypatch.setattr(training, "train_adapter", real)
    resumed = materialize(cfg, ["lora_adapter"], instance)  # its inputs come from the crashed run's storage
    assert resumed.success
    meta = latest_metadata(instance, "lora_adapter")
    assert meta["resumed_from"].endswith(f"{version}/checkpoint-2") and meta["steps"] == 4
    assert data_versions(instance)["lora_adapter"] == version
    assert (root / version / "adapter_model.safetensors").exists()


def test_promoted_model_promotes_only_what_a_passing_gate_judged(tmp_path):
    """The asset alone (direct invocation): it refuses a failed verdict and a verdict on other versions."""
    from slm_pipeline.core.promotion import read_promotion
    from slm_pipeline.defs.delivery import NotPromotedError, promoted_model
    from slm_pipeline.defs.handles import EvalReport, QuantizedModel, RetrievalIndex
    from slm_pipeline.defs.resources import PipelineSettings

    cfg = tmp_path / "slm_pipeline.yaml"
    cfg.write_text(f"artifacts_dir: {tmp_path / 'artifacts'}\n")
    settings = PipelineSettings(config_file=str(cfg))
    quantized = QuantizedModel(tmp_path / "q1", "q1", variants={"merged": tmp_path / "q1" / "merged"})
    index = RetrievalIndex(tmp_path / "i1", "i1")
    verdict = EvalReport(tmp_path / "e1", "e1", gate_passed=True, gate_reasons=("PASS all",), candidate="merged+rag",
                         retrieval=True, quantized_model="q1", retrieval_index="i1")

    def promote(report, model=quantized):
        return promoted_model(context=dg.build_asset_context(), settings=settings, eval_report=report,
                              quantized_model=model, retrieval_index=index)

    out = promote(verdict)
    record = read_promotion(tmp_path / "artifacts")
    assert record["variants"] == {"merged": str(tmp_path / "q1" / "merged")}
    assert record["retrieval_index"] == str(tmp_path / "i1") and record["version"] == out.value.version
    assert (tmp_path / "artifacts" / "promoted_model" / out.value.version / "promoted.json").exists()
    other = QuantizedModel(tmp_path / "q2", "q2", variants={"merged": tmp_path / "q2" / "merged"})
    with pytest.raises(NotPromotedError, match="judged quantized_model q1"):
        promote(verdict, other)  # quantized_model re-materialized since eval_report judged it
    failed = EvalReport(tmp_path / "e2", "e2", gate_passed=False, gate_reasons=("FAIL key_fact_accuracy",),
                        retrieval=True, quantized_model="q2", retrieval_index="i1")
    with pytest.raises(NotPromotedError, match=f"promoted model stays {record['version']}"):
        promote(failed, other)
    assert read_promotion(tmp_path / "artifacts") == record
