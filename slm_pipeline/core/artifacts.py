"""On-disk artifacts: atomic folders, JSONL, manifests, hashes.

Every asset writes one folder per version under `<artifacts_dir>/<asset>/<version>/`. The folder is built
under a temporary name beside it and renamed into place only when complete, so a crash never leaves a
half-written version that a later stage could pick up. A `latest` file names the newest version.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

__all__ = [
    "atomic_dir",
    "atomic_write_text",
    "write_jsonl",
    "read_jsonl",
    "sha256_file",
    "sha256_json",
    "write_manifest",
    "library_versions",
    "set_latest",
    "latest_version_dir",
]


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temp folder; on success it replaces `final`, on error it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_jsonl(path: Path, records: Iterable[dict]) -> int:
    """Write records atomically, one JSON object per line; returns the count."""
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    return len(lines)


def read_jsonl(path: Path) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{lineno}: malformed JSON: {e.msg}") from e
    return out


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def library_versions(names: Iterable[str] = ("torch", "transformers", "peft", "bitsandbytes", "presidio-analyzer",
                                             "spacy", "gguf", "dagster")) -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_manifest(folder: Path, **fields) -> Path:
    """Write `manifest.json`: what went in (versions, hashes, config), timings, library versions."""
    doc = {"created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields,
           "libraries": library_versions()}
    return atomic_write_text(Path(folder) / "manifest.json", json.dumps(doc, indent=2, default=str))


def set_latest(asset_dir: Path, version: str) -> None:
    atomic_write_text(Path(asset_dir) / "latest", version + "\n")


def latest_version_dir(asset_dir: Path) -> Path | None:
    pointer = Path(asset_dir) / "latest"
    if not pointer.exists():
        return None
    d = Path(asset_dir) / pointer.read_text().strip()
    return d if d.exists() else None
