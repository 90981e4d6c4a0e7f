"""The promoted-model pointer: `<artifacts_dir>/promoted.json`, the one place `serve` and retrieval look.

Only the `promoted_model` asset writes it, and only after eval_report's blocking promotion gate passed; a run
whose gate fails leaves it (and so what `serve` answers with) unchanged. Written atomically, so a reader sees
the previous promotion or the new one, never half of one. Format:

    {"version": "<promoted_model version>", "promoted_at": "...Z", "eval_report": "<folder>",
     "quantized_model": "<folder>", "variants": {"merged": "<folder>", ...}, "retrieval_index": "<folder>"|null,
     "candidate": "merged+rag", "gate": ["PASS ...", ...]}

This module never imports dagster.
"""

from __future__ import annotations

import json
from pathlib import Path

from .artifacts import atomic_write_text

__all__ = ["POINTER_NAME", "pointer_path", "read_promotion", "write_promotion", "promoted_model_path",
           "promoted_index_dir"]

POINTER_NAME = "promoted.json"


def pointer_path(artifacts_dir: str | Path) -> Path:
    return Path(artifacts_dir) / POINTER_NAME


def read_promotion(artifacts_dir: str | Path) -> dict | None:
    """The current promotion record, or None when nothing was promoted yet."""
    pointer = pointer_path(artifacts_dir)
    if not pointer.exists():
        return None
    try:
        return json.loads(pointer.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{pointer} is not valid JSON ({e.msg}); re-materialize promoted_model to rewrite it") from e


def write_promotion(artifacts_dir: str | Path, record: dict) -> Path:
    """Point `serve` at a new model (atomic replace)."""
    return atomic_write_text(pointer_path(artifacts_dir), json.dumps(record, indent=2, default=str))


def promoted_model_path(cfg, variant: str | None = None) -> Path:
    """The promoted model folder: `<artifacts_dir>/promoted.json` -> variants[variant] (default serve.variant)."""
    variant = variant or cfg.serve.variant
    artifacts = cfg.path(cfg.artifacts_dir)
    record = read_promotion(artifacts)
    if record is None:
        raise FileNotFoundError(
            f"no promoted model yet ({pointer_path(artifacts)} does not exist): the promoted_model asset writes it "
            "when eval_report's promotion gate passes. Run the pipeline, or serve a folder explicitly with "
            "`slm-pipeline serve --model PATH`."
        )
    variants = record.get("variants") or {}
    if variant not in variants:
        raise ValueError(f"{pointer_path(artifacts)} has no variant {variant!r} (it has: "
                         f"{', '.join(sorted(variants)) or 'none'}); set serve.variant or pass --model PATH")
    return Path(variants[variant])


def promoted_index_dir(artifacts_dir: str | Path) -> str | None:
    """The retrieval index the promoted model was evaluated with (None: none promoted, or retrieval was off)."""
    record = read_promotion(artifacts_dir)
    return record.get("retrieval_index") if record else None
