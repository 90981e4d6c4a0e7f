"""Measure PII detection: recall/precision per entity type on labeled sets, throughput vs vanilla Presidio.

The in-gazetteer labeled set is synthetic (pii_labeled_set.generate_labeled_set, re-exported here). Recall is
span-level with overlap matching: a gold span counts as protected when detected characters (of any PII type)
cover at least 80% of it; "strict" recall additionally requires a detection of the same type; "token" recall
requires every 3+ character word/number of the span to be covered (a surviving "Tampere" leaks even when 80%
is covered).

The synthetic set's names come from the same Faker lists the PERSON gazetteer loads, so this set measures
*in-gazetteer* recall. The out-of-gazetteer set (slm_pipeline/data/pii_out_of_gazetteer.jsonl, made once by
scripts/make_oog_pii_set.py) holds hand-written names checked against the detector's lexicon and non-English
Faker *address* data in local multi-line formats; `evaluate_split` reports both side by side.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import regex

from slm_pipeline.config import DIRECT_IDENTIFIERS, SUPPORT_IDENTIFIERS, AnonymizeConfig
from slm_pipeline.core.pii_labeled_set import generate_labeled_set

__all__ = ["evaluate", "evaluate_split", "generate_labeled_set", "load_out_of_gazetteer_set", "markdown_table",
           "split_table", "throughput", "VanillaPresidio"]

COVER = 0.8
OUT_OF_GAZETTEER_SET = Path(__file__).resolve().parents[1] / "data" / "pii_out_of_gazetteer.jsonl"
_TOKEN = regex.compile(r"[\p{L}\p{N}]{3,}")


# ---------------------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------------------


def _covered(mask: Sequence[bool], s: int, e: int) -> float:
    if e <= s:
        return 1.0
    return sum(mask[s:e]) / (e - s)


def evaluate(anonymizer, dataset: list[dict]) -> dict:
    """Per-type recall (any type / same type) and precision, overall direct recall, clean-untouched share.

    `anonymizer` needs `analyze_texts(list[str]) -> list[list[Finding-like]]` (entity_type/start/end).
    """
    texts = [d["text"] for d in dataset]
    t0 = time.perf_counter()
    found = anonymizer.analyze_texts(texts)
    seconds = time.perf_counter() - t0
    gold_n = defaultdict(int)
    hit_any = defaultdict(int)
    hit_same = defaultdict(int)
    hit_tok = defaultdict(int)
    pred_n = defaultdict(int)
    pred_tp = defaultdict(int)
    clean_total = clean_untouched = 0
    clean_fp_types = defaultdict(int)
    misses: list[dict] = []
    oog_total = oog_hit = 0
    gaz = getattr(anonymizer, "gazetteer_contains", None)
    for d, fs in zip(dataset, found, strict=False):
        text = d["text"]
        spans = d["spans"]
        mask_any = [False] * len(text)
        by_type: dict[str, list[bool]] = {}
        for f in fs:
            for i in range(f.start, min(f.end, len(text))):
                mask_any[i] = True
            m = by_type.setdefault(f.entity_type, [False] * len(text))
            for i in range(f.start, min(f.end, len(text))):
                m[i] = True
        if not spans:
            clean_total += 1
            if not fs:
                clean_untouched += 1
            for f in fs:
                clean_fp_types[f.entity_type] += 1
        for s, e, typ in spans:
            gold_n[typ] += 1
            ok = _covered(mask_any, s, e) >= COVER
            hit_any[typ] += ok
            same = by_type.get(typ)
            hit_same[typ] += bool(same) and _covered(same, s, e) >= COVER
            hit_tok[typ] += all(_covered(mask_any, s + a, s + b) == 1.0
                                for a, b in (m.span() for m in _TOKEN.finditer(text[s:e])))
            if not ok:
                misses.append({"type": typ, "value": text[s:e], "text": text})
            if typ == "PERSON" and gaz is not None and not gaz(text[s:e]):
                oog_total += 1
                oog_hit += ok
        for f in fs:
            pred_n[f.entity_type] += 1
            if any(f.start < e and s < f.end for s, e, _t in spans if _t == f.entity_type):
                pred_tp[f.entity_type] += 1
            elif any(f.start < e and s < f.end for s, e, _t in spans):
                pred_tp[f.entity_type] += 1  # overlaps gold PII of another type: still protective, not an FP
    per_type = {}
    for typ in sorted(set(gold_n) | set(pred_n)):
        per_type[typ] = {
            "gold": gold_n[typ],
            "recall": round(hit_any[typ] / gold_n[typ], 4) if gold_n[typ] else None,
            "recall_strict": round(hit_same[typ] / gold_n[typ], 4) if gold_n[typ] else None,
            "recall_tokens": round(hit_tok[typ] / gold_n[typ], 4) if gold_n[typ] else None,
            "predicted": pred_n[typ],
            "precision": round(pred_tp[typ] / pred_n[typ], 4) if pred_n[typ] else None,
        }
    direct_gold = sum(gold_n[t] for t in DIRECT_IDENTIFIERS)
    direct_hit = sum(hit_any[t] for t in DIRECT_IDENTIFIERS)
    all_pred = sum(pred_n.values())
    all_tp = sum(pred_tp.values())
    return {
        "per_type": per_type,
        "direct_recall": round(direct_hit / direct_gold, 4) if direct_gold else None,
        "direct_recall_strict": round(sum(hit_same[t] for t in DIRECT_IDENTIFIERS) / direct_gold, 4)
        if direct_gold else None,
        "precision": round(all_tp / all_pred, 4) if all_pred else None,
        "clean_untouched": round(clean_untouched / clean_total, 4) if clean_total else None,
        "clean_false_positive_types": dict(clean_fp_types),
        "person_out_of_gazetteer": {"n": oog_total, "recall": round(oog_hit / oog_total, 4) if oog_total else None},
        "n_texts": len(dataset),
        "seconds": round(seconds, 3),
        "misses": misses,
    }


def markdown_table(results: dict, baseline: dict | None = None, names: tuple[str, str] = ("ours", "vanilla")) -> str:
    """Markdown table of per-type recall/precision (optionally side by side with a baseline)."""
    a, b = names
    types = [t for t in DIRECT_IDENTIFIERS + SUPPORT_IDENTIFIERS if t in results["per_type"] or
             (baseline and t in baseline["per_type"])]

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}%"

    if baseline is None:
        lines = ["| entity | gold | recall | strict recall | precision |", "|---|---:|---:|---:|---:|"]
        for t in types:
            r = results["per_type"].get(t, {})
            lines.append(f"| {t} | {r.get('gold', 0)} | {pct(r.get('recall'))} | {pct(r.get('recall_strict'))} | "
                         f"{pct(r.get('precision'))} |")
        lines.append(f"| **direct identifiers** | | **{pct(results['direct_recall'])}** | "
                     f"{pct(results['direct_recall_strict'])} | {pct(results['precision'])} |")
        lines.append(f"\nPII-free sentences left untouched: {pct(results['clean_untouched'])}")
        return "\n".join(lines)
    lines = [f"| entity | gold | recall {a} | recall {b} | strict {a} | strict {b} | precision {a} | precision {b} |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for t in types:
        r = results["per_type"].get(t, {})
        q = baseline["per_type"].get(t, {})
        lines.append(f"| {t} | {r.get('gold', q.get('gold', 0))} | {pct(r.get('recall'))} | {pct(q.get('recall'))} | "
                     f"{pct(r.get('recall_strict'))} | {pct(q.get('recall_strict'))} | {pct(r.get('precision'))} | "
                     f"{pct(q.get('precision'))} |")
    lines.append(f"| **direct identifiers** | | **{pct(results['direct_recall'])}** | **{pct(baseline['direct_recall'])}** | "
                 f"{pct(results['direct_recall_strict'])} | {pct(baseline['direct_recall_strict'])} | "
                 f"{pct(results['precision'])} | {pct(baseline['precision'])} |")
    lines.append(f"\nPII-free sentences left untouched: {a} {pct(results['clean_untouched'])}, "
                 f"{b} {pct(baseline['clean_untouched'])}")
    return "\n".join(lines)


def load_out_of_gazetteer_set(path: str | Path | None = None) -> list[dict]:
    """The committed out-of-gazetteer labeled set: `{"text", "spans", "source"}` per line."""
    from .artifacts import read_jsonl

    return read_jsonl(Path(path) if path else OUT_OF_GAZETTEER_SET)


def evaluate_split(anonymizer, in_gazetteer: list[dict] | None = None,
                   out_of_gazetteer: list[dict] | None = None) -> dict:
    """`evaluate` on in-gazetteer text (generate_labeled_set, seed 2024: names/templates the detector knows) and on
    out-of-gazetteer text, with `by_type` = {type: {"in": recall, "out": recall}} (token recall alongside)."""
    ing = in_gazetteer if in_gazetteer is not None else generate_labeled_set(n_per_type=40, n_clean=0, seed=2024)
    oog = out_of_gazetteer if out_of_gazetteer is not None else load_out_of_gazetteer_set()
    r_in, r_out = evaluate(anonymizer, ing), evaluate(anonymizer, oog)
    by_type = {}
    for t in sorted(set(r_in["per_type"]) | set(r_out["per_type"])):
        a, b = r_in["per_type"].get(t, {}), r_out["per_type"].get(t, {})
        if a.get("gold") or b.get("gold"):
            by_type[t] = {"in": a.get("recall"), "out": b.get("recall"), "in_tokens": a.get("recall_tokens"),
                          "out_tokens": b.get("recall_tokens"), "n_in": a.get("gold", 0), "n_out": b.get("gold", 0)}
    return {"in_gazetteer": r_in, "out_of_gazetteer": r_out, "by_type": by_type,
            "direct_recall_in": r_in["direct_recall"], "direct_recall_out": r_out["direct_recall"]}


def split_table(split: dict) -> str:
    """Markdown: recall per type on in-gazetteer vs out-of-gazetteer text (80% cover / every token)."""
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}%"

    lines = ["| entity | n in | recall in | tokens in | n out | recall out | tokens out |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for t, v in split["by_type"].items():
        lines.append(f"| {t} | {v['n_in']} | {pct(v['in'])} | {pct(v['in_tokens'])} | {v['n_out']} | {pct(v['out'])} "
                     f"| {pct(v['out_tokens'])} |")
    lines.append(f"| **direct identifiers** | | **{pct(split['direct_recall_in'])}** | | | "
                 f"**{pct(split['direct_recall_out'])}** | |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# vanilla baseline and throughput
# ---------------------------------------------------------------------------------------------------------


class VanillaPresidio:
    """Presidio with its default recognizers and the same spaCy model, one `analyze` call per document."""

    def __init__(self, cfg: AnonymizeConfig | None = None, entities: list[str] | None = None,
                 score_threshold: float | None = None):
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import SpacyNlpEngine

        from slm_pipeline.core.anonymize import DEFAULT_SPACY_MODEL, make_offline

        make_offline()
        cfg = cfg or AnonymizeConfig()
        model = getattr(cfg, "spacy_model", DEFAULT_SPACY_MODEL)
        import spacy

        if not spacy.util.is_package(model):  # Presidio would otherwise try to download it
            raise RuntimeError(f"spaCy model {model!r} is not installed")
        self.engine = AnalyzerEngine(nlp_engine=SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}]))
        supported = set(self.engine.get_supported_entities("en"))
        self.entities = [e for e in (entities or cfg.entities) if e in supported] if entities != [] else None
        self.score_threshold = cfg.score_threshold if score_threshold is None else score_threshold

    def analyze_texts(self, texts: list[str]):
        from slm_pipeline.core.anonymize import Finding

        out = []
        for t in texts:
            res = self.engine.analyze(t, language="en", entities=self.entities, score_threshold=self.score_threshold)
            out.append([Finding(r.entity_type, r.start, r.end, r.score, t[r.start:r.end]) for r in res])
        return out


def throughput(texts: list[str], cfg: AnonymizeConfig | None = None, dataset: list[dict] | None = None,
               per_doc_ours: bool = True) -> dict:
    """docs/s of our batch pipeline vs a naive per-document `AnalyzerEngine.analyze` loop on vanilla Presidio
    defaults (same texts, same spaCy model), plus both pipelines' recall on the labeled set."""
    from slm_pipeline.core.anonymize import Anonymizer

    cfg = cfg or AnonymizeConfig()
    texts = list(texts)
    ours = Anonymizer(cfg)
    ours.analyze_texts(texts[:8])  # warm-up (lazy lexicons)
    t0 = time.perf_counter()
    ours.analyze_texts(texts)
    t_batch = time.perf_counter() - t0

    result = {"n_texts": len(texts), "batch_size": cfg.batch_size}
    if per_doc_ours:
        t0 = time.perf_counter()
        for t in texts:
            ours.analyzer.analyze(t, language="en", entities=list(cfg.entities), score_threshold=cfg.score_threshold)
        result["ours_per_doc_docs_per_s"] = round(len(texts) / (time.perf_counter() - t0), 1)

    vanilla_all = VanillaPresidio(cfg, entities=[])  # Presidio defaults: every entity, default threshold
    vanilla_all.engine.analyze(texts[0], language="en")
    t0 = time.perf_counter()
    for t in texts:
        vanilla_all.engine.analyze(t, language="en")
    t_vanilla = time.perf_counter() - t0

    result.update({
        "ours_batch_docs_per_s": round(len(texts) / t_batch, 1),
        "vanilla_per_doc_docs_per_s": round(len(texts) / t_vanilla, 1),
        "speedup_vs_vanilla": round(t_vanilla / t_batch, 2),
    })
    if per_doc_ours:
        result["speedup_vs_ours_per_doc"] = round(result["ours_batch_docs_per_s"] / result["ours_per_doc_docs_per_s"], 2)
    if dataset is not None:
        vanilla = VanillaPresidio(cfg)
        result["ours_eval"] = evaluate(ours, dataset)
        result["vanilla_eval"] = evaluate(vanilla, dataset)
        # text the detector was not written against (hand-written names, non-English address formats)
        oog = load_out_of_gazetteer_set()
        result["ours_eval_oog"] = evaluate(ours, oog)
        result["vanilla_eval_oog"] = evaluate(vanilla, oog)
    return result
