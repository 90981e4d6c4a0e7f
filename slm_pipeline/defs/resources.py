"""Shared Dagster plumbing: the settings resource and small helpers every stage uses."""


import base64
import json
from pathlib import Path
from typing import Any

import dagster as dg

from ..config import PipelineConfig, load_config
from ..core.artifacts import sha256_json


class PipelineSettings(dg.ConfigurableResource):
    """Where the pipeline's declarative settings come from (slm_pipeline.yaml by default)."""

    config_file: str | None = None  # None -> $SLM_PIPELINE_CONFIG or ./slm_pipeline.yaml, then code defaults
    overrides_json: str = "{}"  # JSON object merged over the file, e.g. '{"train": {"max_steps": 5}}'

    def load(self) -> PipelineConfig:
        return load_config(self.config_file, json.loads(self.overrides_json or "{}"))


def version_of(*parts: Any) -> str:
    """Content-addressed version: same inputs + settings + code version -> same folder."""
    return sha256_json(parts)[:12]


def asset_dir(cfg: PipelineConfig, asset: str) -> Path:
    return cfg.path(cfg.artifacts_dir) / asset


def md_table(rows: list[dict], columns: list[str] | None = None) -> dg.MetadataValue:
    if not rows:
        return dg.MetadataValue.md("_(none)_")
    columns = columns or list(rows[0])
    esc = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(esc(r.get(c, "")) for c in columns) + " |" for r in rows]
    return dg.MetadataValue.md("\n".join(lines))


def md_image(png: Path, alt: str) -> dg.MetadataValue:
    """Inline a PNG so the Dagster UI shows the plot right in the materialization's metadata."""
    data = base64.b64encode(Path(png).read_bytes()).decode()
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{data})")


def numbers(prefix: str, values: dict[str, Any]) -> dict[str, dg.MetadataValue]:
    """Numeric metadata (charts across runs in the UI), skipping None."""
    out = {}
    for k, v in values.items():
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, int):
            out[f"{prefix}{k}"] = dg.MetadataValue.int(v)
        elif isinstance(v, float):
            out[f"{prefix}{k}"] = dg.MetadataValue.float(v)
    return out
