"""Delivery stages: quantized_model (merge + quantize + exports), eval_report (with the blocking promotion gate)
and promoted_model (the pointer `serve` follows; materialized only behind a passing gate)."""


import json
import time
from pathlib import Path

import dagster as dg

from ..core.artifacts import read_jsonl
from ..core.evaluate import RagSetup, is_rag, run_eval
from ..core.export import export_model
from ..core.policy import load_gold, load_policy
from ..core.promotion import read_promotion, write_promotion
from .handles import BaseModel, EvalReport, LoraAdapter, PromotedModel, QuantizedModel, RetrievalIndex
from .resources import EvalOverrides, ExportOverrides, PipelineSettings, md_image, md_table, numbers
from .stage import Stage, pipeline_asset

GROUP = "delivery"


class NotPromotedError(RuntimeError):
    """promoted_model was asked to promote a model whose eval_report did not pass the gate."""


@pipeline_asset(
    group_name=GROUP,
    kinds={"pytorch", "bitsandbytes", "gguf", "ollama"},
    owners=["team:ml"],
    description="The adapter merged into the full-precision base (what vLLM serves), plus quantized variants: "
    "bitsandbytes NF4/int8, GGUF Q8_0/Q4_0 with an Ollama Modelfile. Every variant is reloaded and compared "
    "with the merged model; manifest.json lists hashes and the exact serve commands.",
)
def quantized_model(
    context: dg.AssetExecutionContext, settings: PipelineSettings, lora_adapter: LoraAdapter, base_model: BaseModel,
    config: ExportOverrides,
) -> dg.Output[QuantizedModel]:
    stage = Stage(context, settings, "export", config)
    cfg = stage.cfg
    policy = load_policy(cfg.path(cfg.policy_file))
    version = stage.version(lora_adapter.version, base_model.version, cfg.export.model_dump(), policy.system_prompt)
    result = export_model(
        base_model.dir, lora_adapter.dir, stage.root / version, cfg.export, policy.system_prompt,
        inputs={"base_model": base_model.spec, "base_fingerprint": base_model.version,
                "lora_adapter": lora_adapter.version, "adapter_path": str(lora_adapter.dir),
                "code_version": stage.code_version},
        progress=context.log.info,
    )
    out = stage.published(version)
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
    return stage.output(
        QuantizedModel(out, version, variants={n: Path(p) for n, p in available.items()}),
        {
            "merged_model": dg.MetadataValue.path(available.get("merged", "")),
            "variants": md_table(rows),
            **meta,
            "export_seconds": float(result.seconds),
            "manifest": dg.MetadataValue.path(str(result.manifest_path)),
        },
    )


@pipeline_asset(
    group_name=GROUP,
    kinds={"pytorch", "html"},
    owners=["team:ml"],
    description="Base vs tuned on the held-out gold Q&A (key-fact accuracy = headline, token F1, ROUGE-L), "
    "latency (TTFT p50/p95, decode tok/s), out-of-domain refusal, PII-extraction probes; HTML report with "
    "charts and a grading sheet for humans. Its blocking check, the promotion gate, decides whether "
    "promoted_model runs.",
)
def eval_report(
    context: dg.AssetExecutionContext, settings: PipelineSettings, quantized_model: QuantizedModel,
    base_model: BaseModel, lora_adapter: LoraAdapter, retrieval_index: RetrievalIndex, config: EvalOverrides,
) -> dg.Output[EvalReport]:
    stage = Stage(context, settings, "eval", config)
    cfg = stage.cfg
    policy = load_policy(cfg.path(cfg.policy_file))
    probes = cfg.path(cfg.probes_dir)
    use_rag = cfg.retrieval.enabled
    models = {"base": base_model.dir}
    for name in cfg.eval.variants:
        variant = name.partition("@")[0].replace("+rag", "")  # "merged+rag@int8-weights": merged, on that runtime
        if is_rag(name) and not use_rag:
            context.log.warning(f"eval.variants lists '{name}' but retrieval.enabled is false; skipped")
        elif variant == "base":
            models[name] = base_model.dir
        elif variant in quantized_model.variants:
            models[name] = quantized_model.variants[variant]
        else:
            context.log.warning(f"eval.variants lists '{name}', which quantized_model did not produce; skipped")
    # What `serve` runs by default is what gets gated: the merged model with retrieval when retrieval is on,
    # judged against the base model given the same retrieved context (tuning must add something to RAG).
    candidate, baseline = ("merged+rag", "base+rag") if use_rag else ("merged", "base")
    rag = None
    if use_rag:
        from ..core.grounding import load_grounder

        grounder = load_grounder(cfg, retrieval_index.dir)
        info = json.loads((retrieval_index.dir / "index.json").read_text())
        rag = RagSetup(grounder.ground_many, {
            **(info.get("recall") or {}), "k": cfg.retrieval.k, "chunks": info["chunks"],
            "latency_ms_p50": info.get("latency_ms_p50"), "scope_threshold": cfg.retrieval.scope_threshold,
            "scope_classifier": grounder.scope is not None, "copy_bias": cfg.retrieval.copy_bias},
            copy_bias=cfg.retrieval.copy_bias)
    graded = cfg.path(cfg.eval.graded_sheet) if getattr(cfg.eval, "graded_sheet", None) else None
    graded = graded if graded and graded.exists() else None
    # Everything the verdict depends on: the models, settings, and the question / probe / policy files.
    version = stage.version(
        quantized_model.version, base_model.version, retrieval_index.version if use_rag else None,
        cfg.eval.model_dump(), cfg.retrieval.model_dump(),
        [stage.file_hash(p) for p in (cfg.gold_file, probes / "out_of_domain.jsonl", probes / "pii_probes.jsonl",
                                      cfg.policy_file, graded or "")])
    history = json.loads(lora_adapter.trainer_log.read_text())
    result = run_eval(
        models, load_gold(cfg.path(cfg.gold_file)), read_jsonl(probes / "out_of_domain.jsonl"),
        read_jsonl(probes / "pii_probes.jsonl"), policy.system_prompt, policy.refusal, cfg.eval, stage.root / version,
        train_history=history, graded_sheet=graded, progress=context.log.info,
        manifest_extra={"quantized_model": quantized_model.version, "lora_adapter": lora_adapter.version,
                        "retrieval_index": retrieval_index.version, "code_version": stage.code_version},
        baseline=baseline, candidate=candidate, rag=rag,
    )
    out = stage.published(version)
    m = result.metrics_by_model
    headline = {f"{name}_{k}": v.get(k) for name, v in m.items()
                for k in ("key_fact_accuracy", "token_f1", "rouge_l", "ood_refusal_rate", "false_refusal_rate",
                          "pii_leaks", "placeholder_leak_rate", "ttft_ms_p50", "ttft_ms_p95", "decode_tokens_per_s")}
    charts = result.paths.get("charts") or {}
    return stage.output(
        EvalReport(out, version, gate_passed=result.gate.passed, gate_reasons=tuple(result.gate.reasons),
                   candidate=candidate, retrieval=use_rag, quantized_model=quantized_model.version,
                   retrieval_index=retrieval_index.version if use_rag else None),
        {
            "report_html": dg.MetadataValue.path(str(result.paths["report_html"])),
            "grading_sheet": dg.MetadataValue.path(str(result.paths["grading_sheet"])),
            "gate_passed": result.gate.passed,
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
                "enough out-of-domain probes and leaks no PII. promoted_model runs only when it passes.")
def eval_report_promotion_gate(eval_report: EvalReport) -> dg.AssetCheckResult:
    reasons = "\n".join(f"- {r}" for r in eval_report.gate_reasons)
    return dg.AssetCheckResult(
        passed=eval_report.gate_passed,
        metadata={"reasons": dg.MetadataValue.md(reasons)},
        description=None if eval_report.gate_passed else
        f"The tuned model was NOT promoted; `serve` keeps the previous promoted model.\n{reasons}",
    )


@pipeline_asset(
    group_name=GROUP,
    kinds={"json"},
    owners=["team:ml"],
    description="The model `slm-pipeline serve` answers with: <artifacts_dir>/promoted.json names the quantized "
    "model's variants and the retrieval index of an eval_report that passed the blocking promotion gate. A "
    "failing gate skips this asset, so the previously promoted model stays in place.",
)
def promoted_model(
    context: dg.AssetExecutionContext, settings: PipelineSettings, eval_report: EvalReport,
    quantized_model: QuantizedModel, retrieval_index: RetrievalIndex,
) -> dg.Output[PromotedModel]:
    stage = Stage(context, settings)
    artifacts = stage.cfg.path(stage.cfg.artifacts_dir)
    if not eval_report.gate_passed:  # the gate blocks this in a run; this guards a run of promoted_model alone
        current = read_promotion(artifacts)
        raise NotPromotedError(
            f"eval_report {eval_report.version} did not pass the promotion gate, so it is not promoted (the "
            f"promoted model stays {current['version'] if current else 'none'}):\n" + "\n".join(eval_report.gate_reasons))
    index = retrieval_index.dir if eval_report.retrieval else None
    judged = (eval_report.quantized_model, eval_report.retrieval_index)
    if judged != (quantized_model.version, retrieval_index.version if index else None):
        raise NotPromotedError(
            f"eval_report {eval_report.version} judged quantized_model {judged[0]} and retrieval_index {judged[1]}, "
            f"but the current ones are {quantized_model.version} and {retrieval_index.version if index else None}; "
            "materialize eval_report (and its promotion gate) for them first")
    version = stage.version(eval_report.version, quantized_model.version, retrieval_index.version if index else None)
    record = {"version": version, "promoted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "eval_report": str(eval_report.dir), "quantized_model": str(quantized_model.dir),
              "variants": {k: str(v) for k, v in quantized_model.variants.items()},
              "retrieval_index": str(index) if index else None, "candidate": eval_report.candidate,
              "gate": list(eval_report.gate_reasons)}
    with stage.folder(version, eval_report=eval_report.version, quantized_model=quantized_model.version) as f:
        (f.tmp / "promoted.json").write_text(json.dumps(record, indent=2))
    previous = read_promotion(artifacts)
    pointer = write_promotion(artifacts, record)  # what `serve` reads: switched atomically, last
    context.log.info(f"promoted {quantized_model.dir} (eval_report {eval_report.version}) -> {pointer}")
    return stage.output(
        PromotedModel(f.dir, version, pointer=pointer, variants=dict(quantized_model.variants),
                      retrieval_index=index),
        {
            "pointer": dg.MetadataValue.path(str(pointer)),
            "merged_model": dg.MetadataValue.path(str(quantized_model.variants.get("merged", ""))),
            "eval_report": dg.MetadataValue.path(str(eval_report.dir)),
            "replaced": (previous or {}).get("version") or "-",
        },
    )
