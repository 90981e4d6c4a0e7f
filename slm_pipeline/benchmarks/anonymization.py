"""Anonymization throughput: our batch pipeline vs a per-document vanilla Presidio loop (core.pii_eval)."""

from __future__ import annotations

from ..config import PipelineConfig


def bench_anonymization(cfg: PipelineConfig, texts: list[str], labeled: list[dict] | None = None) -> dict:
    """docs/s ours (batch) vs vanilla per-doc Presidio on `texts`, recall of both on `labeled` (pii_eval)."""
    from ..core import pii_eval

    res = pii_eval.throughput(texts, cfg.anonymize, dataset=labeled, per_doc_ours=False)
    out = {k: res[k] for k in ("n_texts", "batch_size", "ours_batch_docs_per_s", "vanilla_per_doc_docs_per_s",
                               "speedup_vs_vanilla")}
    for side in ("ours", "vanilla"):
        ev = res.get(f"{side}_eval")
        if ev:
            out[f"{side}_direct_recall"] = ev["direct_recall"]
            out[f"{side}_precision"] = ev["precision"]
        oog = res.get(f"{side}_eval_oog")
        if oog:  # names/addresses from sources the detector does not load
            out[f"{side}_direct_recall_oog"] = oog["direct_recall"]
            out[f"{side}_recall_oog_by_type"] = {t: v["recall"] for t, v in oog["per_type"].items() if v["gold"]}
    return out
