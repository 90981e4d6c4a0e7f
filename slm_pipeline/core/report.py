"""Report: the charts (matplotlib on an Agg canvas, no pyplot global state) and the self-contained HTML page
rendered from the Jinja2 template `slm_pipeline/templates/eval_report.html.j2` (autoescaped; charts embedded as
base64 PNG).

This module never imports dagster.
"""

from __future__ import annotations

import base64
from functools import cache
from pathlib import Path

from .metrics import HEADLINE_METRIC

__all__: list[str] = []

TEMPLATE = "eval_report.html.j2"
_TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


# --------------------------------------------------------------------------------------------------------------
# Charts (matplotlib, Agg canvas; no pyplot global state)
# --------------------------------------------------------------------------------------------------------------

_CHART_METRICS = [
    (HEADLINE_METRIC, "key-fact acc."), ("key_fact_fraction", "facts found"), ("token_f1", "token F1"),
    ("rouge_l", "ROUGE-L"), ("embedding_similarity", "embedding sim."), ("ood_refusal_rate", "OOD refusal"),
    ("false_refusal_rate", "false refusal (lower)"), ("pii_leak_rate", "PII leak (lower)"),
]


def _new_figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _ordered(metrics: dict, baseline: str, candidate: str) -> list[str]:
    ok = [m for m, v in metrics.items() if v.get("status") == "ok"]
    head = [m for m in (baseline, candidate) if m in ok]
    return head + [m for m in ok if m not in head]


def _write_charts(folder: Path, metrics: dict, rows: list[dict], history: list[dict] | None, baseline: str,
                  candidate: str) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    names = _ordered(metrics, baseline, candidate)
    out: dict[str, Path] = {}
    if names:
        keys = [(k, lbl) for k, lbl in _CHART_METRICS if any(metrics[n].get(k) is not None for n in names)]
        fig = _new_figure(max(7.0, 1.3 * len(keys) + 2), 4.2)
        ax = fig.add_subplot()
        width = 0.8 / len(names)
        for i, n in enumerate(names):
            vals = [metrics[n].get(k) or 0.0 for k, _ in keys]
            xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(keys))]
            bars = ax.bar(xs, vals, width, label=n)
            ax.bar_label(bars, labels=[f"{v:.2f}" for v in vals], fontsize=7, padding=1)
        ax.set_xticks(range(len(keys)), [lbl for _, lbl in keys], rotation=20, ha="right", fontsize=8)
        ax.set_ylim(0, 1.12)
        ax.set_ylabel("score (0-1)")
        ax.set_title("Quality and safety by model")
        ax.legend(fontsize=8)
        fig.tight_layout()
        out["metrics"] = folder / "metrics.png"
        fig.savefig(out["metrics"])

        fig = _new_figure(9, 3.8)
        ax1, ax2 = fig.subplots(1, 2)
        data = [[r["ttft_ms"] for r in rows if r["model"] == n and r.get("ttft_ms") is not None] for n in names]
        ax1.boxplot([d or [0.0] for d in data], tick_labels=names, showmeans=True)
        for i, d in enumerate(data, 1):
            ax1.scatter([i] * len(d), d, s=8, alpha=0.5)
        ax1.set_ylabel("ms")
        ax1.set_title("Time to first token (per prompt)")
        rates = [metrics[n]["latency"].get("decode_tok_s_mean") or 0.0 for n in names]
        bars = ax2.bar(names, rates, color="tab:green")
        ax2.bar_label(bars, labels=[f"{v:.1f}" for v in rates], fontsize=8)
        ax2.set_ylabel("tokens / s")
        ax2.set_title("Mean decode speed")
        fig.tight_layout()
        out["latency"] = folder / "ttft.png"
        fig.savefig(out["latency"])

        graded = [n for n in names if metrics[n].get("human_n_graded")]
        if graded:
            fig = _new_figure(6, 3.5)
            ax = fig.add_subplot()
            w = 0.8 / len(graded)
            for i, n in enumerate(graded):
                vals = [metrics[n].get("human_helpfulness") or 0, metrics[n].get("human_accuracy") or 0]
                bars = ax.bar([j + (i - (len(graded) - 1) / 2) * w for j in range(2)], vals, w, label=n)
                ax.bar_label(bars, labels=[f"{v:.2f}" for v in vals], fontsize=8)
            ax.set_xticks([0, 1], ["helpfulness", "accuracy"])
            ax.set_ylim(0, 5.5)
            ax.set_title("Human grades (mean, 1-5)")
            ax.legend(fontsize=8)
            fig.tight_layout()
            out["human"] = folder / "human_grades.png"
            fig.savefig(out["human"])

    train = [(h.get("step", i), h["loss"]) for i, h in enumerate(history or []) if h.get("loss") is not None]
    evals = [(h.get("step", i), h["eval_loss"]) for i, h in enumerate(history or []) if h.get("eval_loss") is not None]
    if train or evals:
        fig = _new_figure(7, 3.8)
        ax = fig.add_subplot()
        if train:
            ax.plot(*zip(*train, strict=True), label="train loss", marker=".")
        if evals:
            ax.plot(*zip(*evals, strict=True), label="eval loss", marker="o")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title("Training loss")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        out["training_loss"] = folder / "training_loss.png"
        fig.savefig(out["training_loss"])
    return out


# --------------------------------------------------------------------------------------------------------------
# HTML report
# --------------------------------------------------------------------------------------------------------------

_TABLE_COLUMNS = [
    (HEADLINE_METRIC, "key-fact accuracy"), ("key_fact_fraction", "facts found"), ("token_f1", "token F1"),
    ("rouge_l", "ROUGE-L"), ("embedding_similarity", "embedding sim."), ("ood_refusal_rate", "OOD refusal"),
    ("false_refusal_rate", "false refusal"), ("pii_leaks", "PII leaks"), ("human_helpfulness", "human helpful."),
    ("human_accuracy", "human acc."),
]
_LATENCY_KEYS = ("ttft_ms_p50", "ttft_ms_p95", "decode_tok_s_mean", "prompt_tokens_mean", "new_tokens_mean")
_CHART_TITLES = {"metrics": "Metrics by model", "latency": "Latency", "human": "Human grades",
                 "training_loss": "Training loss"}
_SECTIONS = (("gold", "Gold questions"), ("ood", "Out-of-domain probes"), ("pii", "PII probes"))


def _fmt(v, nd=3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def _text(x) -> str:
    return "" if x is None else str(x)


@cache
def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES_DIR), autoescape=True,
                             trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["fmt"] = _fmt
    env.filters["text"] = _text
    return env


def _sections(rows: list[dict], names: list[str]) -> list[dict]:
    """Per-prompt tables: one row per prompt id, one cell per model (None where that model has no answer)."""
    by = {(r["model"], r["kind"], r["id"]): r for r in rows}
    out = []
    for kind, title in _SECTIONS:
        first: dict[str, dict] = {}
        for r in rows:
            if r["kind"] == kind:
                first.setdefault(r["id"], r)
        if not first:
            continue
        items = [{"id": i, "question": first[i]["question"], "reference": first[i].get("reference"),
                  "cells": [by.get((n, kind, i)) for n in names]} for i in first]
        out.append({"kind": kind, "title": title, "items": items})
    return out


def _render_html(report: dict, charts: dict[str, Path], history: list[dict] | None) -> str:
    """The self-contained report page. `report` is eval_report.json's content (its optional "retrieval" dict of
    numbers gets its own table; gold rows with a "sources" list show them under the answer)."""
    metrics = report["models"]
    names = _ordered(metrics, report["baseline"], report["candidate"])
    cols = [(k, lbl) for k, lbl in _TABLE_COLUMNS if any(metrics[n].get(k) is not None for n in names)]
    metric_rows = []
    for n in names:
        m = metrics[n]
        cells = []
        for k, _ in cols:
            v = m.get(k)
            if k == "pii_leaks" and v is not None:
                v = f"{v}/{m.get('n_pii')}"
            cells.append(v)
        metric_rows.append((n, cells))
    latency_rows = [(n, [metrics[n]["latency"][k] for k in _LATENCY_KEYS] + [metrics[n].get("load_seconds")])
                    for n in names]
    chart_items = [{"key": key, "title": _CHART_TITLES.get(key, key),
                    "b64": base64.b64encode(Path(path).read_bytes()).decode("ascii")} for key, path in charts.items()]
    retrieval = report.get("retrieval") or {}
    return _environment().get_template(TEMPLATE).render(
        report=report,
        gate=report["gate"],
        names=names,
        cols=cols,
        metric_rows=metric_rows,
        latency_rows=latency_rows,
        failed={n: m for n, m in metrics.items() if m.get("status") != "ok"},
        charts=chart_items,
        history_without_loss=bool(history) and "training_loss" not in charts,
        retrieval=retrieval if isinstance(retrieval, dict) else {},
        sections=_sections(report["rows"], names),
    )
