"""On-disk artifacts: atomic folders, JSONL, manifests, hashes.

Every asset writes one folder per version under `<artifacts_dir>/<asset>/<version>/`. The folder is built
under a temporary name beside it and renamed into place only when complete, so a crash never leaves a
half-written version that a later stage could pick up. A `latest` file names the newest version.

A version is either given (a hash of the inputs' versions, settings and code version) or, for a
content-addressed asset, computed from the files it wrote (`content_version`): see `version_folder`.
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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

__all__ = [
    "atomic_dir",
    "version_folder",
    "VersionFolder",
    "content_version",
    "version_of",
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
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def version_of(*parts) -> str:
    """Input-addressed version: the same parts (input versions, settings, code version) -> the same folder."""
    return sha256_json(parts)[:12]


def content_version(folder: Path, names: Sequence[str]) -> str:
    """Content-addressed version: a hash of the named files (or folders, recursively) inside `folder`."""
    h = hashlib.sha256()
    for name in names:
        p = Path(folder) / name
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            h.update(f"{f.relative_to(folder).as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()[:12]


@dataclass
class VersionFolder:
    """A version folder being built: write into `tmp`, add to `manifest`; `version`/`dir` are set when done."""

    tmp: Path
    manifest: dict = field(default_factory=dict)
    version: str | None = None
    dir: Path | None = None


@contextlib.contextmanager
def version_folder(root: Path, asset: str, version: str | None = None, content: Sequence[str] = (),
                   **manifest) -> Iterator[VersionFolder]:
    """Build `<root>/<version>/` atomically, with its manifest.json, and point `<root>/latest` at it.

    Give `version` (input-addressed), or `content`: the files whose hash becomes the version once written
    (content-addressed). On error nothing is left behind and `latest` is unchanged.
    """
    if (version is None) == (not content):
        raise ValueError("version_folder: give either version or content, not both or neither")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    folder = VersionFolder(Path(tempfile.mkdtemp(prefix=f".tmp-{asset}-", dir=root)), dict(manifest))
    try:
        yield folder
        folder.version = version or content_version(folder.tmp, content)
        write_manifest(folder.tmp, asset=asset, version=folder.version, **folder.manifest)
        folder.dir = root / folder.version
        _replace_dir(folder.tmp, folder.dir)
    except BaseException:
        shutil.rmtree(folder.tmp, ignore_errors=True)
        raise
    set_latest(root, folder.version)


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
