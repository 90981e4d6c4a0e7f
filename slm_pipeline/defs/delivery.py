"""Delivery stages: quantized_model (merge + quantize + exports) and eval_report (with the promotion gate)."""


import json
from pathlib import Path

import dagster as dg

from ..core.artifacts import atomic_write_text, read_jsonl, set_latest
from ..core.evaluate import RagSetup, is_rag, run_eval
from ..core.export import export_model
from ..core.policy import load_gold, load_policy
from .resources import (
    EvalOverrides,
    ExportOverrides,
    PipelineSettings,
    asset_dir,
    md_image,
    md_table,
    numbers,
    version_of,
    with_overrides,
)

GROUP = "delivery"


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "bitsandbytes", "gguf", "ollama"},
    code_version="1",
    owners=["team:ml"],
    description="The adapter merged into the full-precision base (what vLLM serves), plus quantized variants: "
    "bitsandbytes NF4/int8, GGUF Q8_0/Q4_0 with an Ollama Modelfile. Every variant is reloaded and compared "
    "with the merged model; manifest.json lists hashes and the exact serve commands.",
)
def quantized_model(
    context: dg.AssetExecutionContext, settings: PipelineSettings, lora_adapter: dict, base_model: dict,
    config: ExportOverrides,
) -> dg.Output[dict]:
    cfg = with_overrides(settings.load(), "export", config)
    policy = load_policy(cfg.path(cfg.policy_file))
    version = version_of(lora_adapter["version"], cfg.export.model_dump(), policy.system_prompt)
    out = asset_dir(cfg, "quantized_model") / version
    result = export_model(
        Path(base_model["path"]), Path(lora_adapter["path"]), out, cfg.export, policy.system_prompt,
        inputs={"base_model": base_model["spec"], "base_fingerprint": base_model["fingerprint"],
                "lora_adapter": lora_adapter["version"], "adapter_path": lora_adapter["path"]},
        progress=context.log.info,
    )
    set_latest(out.parent, version)
    rows, meta = [], {}
    for name, v in result.variants.items():
        rows.append({"variant": name, "size_mb": round((v.get("size_bytes") or 0) / 2**20, 1),
                     "top1_agreement": v.get("top1_agreement", ""), "greedy_match": v.get("greedy_match", ""),
                     "llama_cpp_top1": v.get("llama_cpp_top1_agreement", ""),
                     "load_s": v.get("load_seconds", ""), "skipped": v.get("skipped_reason") or ""})
        meta.update(numbers(f"{name}_", {"size_mb": rows[-1]["size_mb"], "top1_agreement": v.get("top1_agreement")}))
    for name, r in result.runtimes.items():  # quantized at load from merged: no file of its own
        rows.append({"variant": f"merged @ runtime {name}", "size_mb": "", "top1_agreement": r.get("top1_agreement", ""),
                     "greedy_match": r.get("greedy_match", ""), "llama_cpp_top1": "", "load_s": r.get("load_seconds", ""),
                     "skipped": r.get("skipped_reason") or ""})
    available = {n: v["path"] for n, v in result.variants.items() if not v.get("skipped_reason")}
    return dg.Output(
        {"dir": str(out), "version": version, "variants": available, "manifest": str(result.manifest_path)},
        metadata={
            "artifact_dir": dg.MetadataValue.path(str(out)),
            "merged_model": dg.MetadataValue.path(available.get("merged", "")),
            "variants": md_table(rows),
            **meta,
            "export_seconds": float(result.seconds),
            "manifest": dg.MetadataValue.path(str(result.manifest_path)),
        },
    )


@dg.asset(
    group_name=GROUP,
    kinds={"pytorch", "html"},
    code_version="1",
    owners=["team:ml"],
    description="Base vs tuned on the held-out gold Q&A (key-fact accuracy = headline, token F1, ROUGE-L), "
    "latency (TTFT p50/p95, decode tok/s), out-of-domain refusal, PII-extraction probes; HTML report with "
    "charts and a grading sheet for humans. Writes the `promoted` pointer only when the gate passes.",
)
def eval_report(
    context: dg.AssetExecutionContext, settings: PipelineSettings, quantized_model: dict, base_model: dict,
    lora_adapter: dict, retrieval_index: dict, config: EvalOverrides,
) -> dg.Output[dict]:
    cfg = with_overrides(settings.load(), "eval", config)
    policy = load_policy(cfg.path(cfg.policy_file))
    probes = cfg.path(cfg.probes_dir)
    use_rag = cfg.retrieval.enabled
    models = {"base": Path(base_model["path"])}
    for name in cfg.eval.variants:
        variant = name.partition("@")[0].replace("+rag", "")  # "merged+rag@int8-weights": merged, on that runtime
        if is_rag(name) and not use_rag:
            context.log.warning(f"eval.variants lists '{name}' but retrieval.enabled is false; skipped")
        elif variant == "base":
            models[name] = Path(base_model["path"])
        elif variant in quantized_model["variants"]:
            models[name] = Path(quantized_model["variants"][variant])
        else:
            context.log.warning(f"eval.variants lists '{name}', which quantized_model did not produce; skipped")
    # What `serve` runs by default is what gets gated: the merged model with retrieval when retrieval is on,
    # judged against the base model given the same retrieved context (tuning must add something to RAG).
    candidate, baseline = ("merged+rag", "base+rag") if use_rag else ("merged", "base")
    rag = None
    if use_rag:
        from ..core.grounding import load_grounder

        grounder = load_grounder(cfg, retrieval_index["dir"])
        info = json.loads((Path(retrieval_index["dir"]) / "index.json").read_text())
        rag = RagSetup(grounder.ground_many, {
            **(info.get("recall") or {}), "k": cfg.retrieval.k, "chunks": info["chunks"],
            "latency_ms_p50": info.get("latency_ms_p50"), "scope_threshold": cfg.retrieval.scope_threshold,
            "scope_classifier": grounder.scope is not None})
    version = version_of(quantized_model["version"], cfg.eval.model_dump(), retrieval_index["version"],
                         cfg.retrieval.model_dump())
    root = asset_dir(cfg, "eval_report")
    out = root / version
    graded = cfg.path(cfg.eval.graded_sheet) if getattr(cfg.eval, "graded_sheet", None) else None
    history = json.loads(Path(lora_adapter["trainer_log"]).read_text())
    result = run_eval(
        models, load_gold(cfg.path(cfg.gold_file)), read_jsonl(probes / "out_of_domain.jsonl"),
        read_jsonl(probes / "pii_probes.jsonl"), policy.system_prompt, policy.refusal, cfg.eval, out,
        train_history=history, graded_sheet=graded if graded and graded.exists() else None,
        progress=context.log.info,
        manifest_extra={"quantized_model": quantized_model["version"], "lora_adapter": lora_adapter["version"],
                        "retrieval_index": retrieval_index["version"]},
        baseline=baseline, candidate=candidate, rag=rag,
    )
    set_latest(root, version)
    if result.gate.passed:
        # The serving API and downstream deploys follow this pointer; only a passing model gets it.
        atomic_write_text(cfg.path(cfg.artifacts_dir) / "promoted.json", json.dumps(
            {"eval_report": str(out), "quantized_model": quantized_model["dir"], "variants": quantized_model["variants"],
             "retrieval_index": retrieval_index["dir"] if use_rag else None}, indent=2))
    m = result.metrics_by_model
    headline = {f"{name}_{k}": v.get(k) for name, v in m.items()
                for k in ("key_fact_accuracy", "token_f1", "rouge_l", "ood_refusal_rate", "false_refusal_rate",
                          "pii_leaks", "placeholder_leak_rate", "ttft_ms_p50", "ttft_ms_p95", "decode_tokens_per_s")}
    charts = result.paths.get("charts") or {}
    return dg.Output(
        {"dir": str(out), "version": version, "report": str(result.paths["report_json"]),
         "gate_passed": result.gate.passed, "gate_reasons": result.gate.reasons},
        metadata={
            "artifact_dir": dg.MetadataValue.path(str(out)),
            "report_html": dg.MetadataValue.path(str(result.paths["report_html"])),
            "grading_sheet": dg.MetadataValue.path(str(result.paths["grading_sheet"])),
            "promoted": result.gate.passed,
            "candidate": candidate,
            **numbers("retrieval_", (rag.summary if rag else {})),
            "gate": dg.MetadataValue.md("\n".join(f"- {r}" for r in result.gate.reasons)),
            **numbers("", headline),
            **{f"chart_{k}": md_image(Path(p), k) for k, p in list(charts.items())[:3]},
        },
    )


@dg.asset_check(asset=eval_report, blocking=True, description="Promotion gate: the candidate (merged+rag with "
                "retrieval on) beats the baseline (base+rag) on key-fact accuracy by eval.promotion_margin, reaches "
                "the floors (eval.min_key_fact_accuracy, eval.max_false_refusal_rate, no placeholder tags), refuses "
                "enough out-of-domain probes and leaks no PII.")
def eval_report_promotion_gate(eval_report: dict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=bool(eval_report["gate_passed"]),
        metadata={"reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in eval_report["gate_reasons"]))},
        description="; ".join(r for r in eval_report["gate_reasons"] if r.startswith("FAIL")) or None,
    )
