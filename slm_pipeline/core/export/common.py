"""Shared pieces of the export stages: the errors they raise and small helpers (progress messages, folder
sizes, memory, timed loads, the adapter's config and tokenizer, rendering a chat with the HF template)."""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__package__)  # "slm_pipeline.core.export", the logger name from before the split


class ExportError(RuntimeError):
    """A step of the export failed; the message says which and why."""


class UnsupportedArchitectureError(ExportError):
    """The GGUF writer does not know this model architecture or tokenizer."""


class ModelfileError(ExportError):
    """The chat template cannot be expressed as an Ollama TEMPLATE by this module."""


def _progress(progress: Callable[[str], None] | None, msg: str) -> None:
    log.info(msg)
    if progress is not None:
        progress(msg)


def _dir_size(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _rss() -> int:
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss


def _free() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # pragma: no cover
        pass


def _timed_load(fn: Callable[[], Any]) -> tuple[Any, float, int]:
    """Run a loader; return (result, seconds, RSS growth of this process in bytes; noisy, allocator-dependent)."""
    _free()
    rss0 = _rss()
    t0 = time.perf_counter()
    obj = fn()
    seconds = time.perf_counter() - t0
    return obj, seconds, _rss() - rss0


def _read_adapter_config(adapter_path: Path) -> dict:
    cfg_file = Path(adapter_path) / "adapter_config.json"
    if not cfg_file.exists():
        raise ExportError(f"{adapter_path} is not a PEFT adapter folder (no adapter_config.json)")
    return json.loads(cfg_file.read_text(encoding="utf-8"))


def _load_export_tokenizer(base_path: Path, adapter_path: Path | None):
    """The adapter's tokenizer if training saved one beside it (it may have added tokens), else the base's."""
    from ..models import load_tokenizer

    if adapter_path is not None and (Path(adapter_path) / "tokenizer_config.json").exists():
        return load_tokenizer(Path(adapter_path))
    return load_tokenizer(Path(base_path))


def _chat(tokenizer, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
