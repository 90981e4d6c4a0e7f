"""Shared Dagster plumbing: the settings resource and small helpers every stage uses."""


import base64
import json
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, ValidationError

from ..config import ConfigError, PipelineConfig, _format_validation_error, load_config


class PipelineSettings(dg.ConfigurableResource):
    """Where the pipeline's declarative settings come from (slm_pipeline.yaml by default)."""

    config_file: str | None = None  # None -> $SLM_PIPELINE_CONFIG or ./slm_pipeline.yaml, then code defaults
    overrides_json: str = "{}"  # JSON object merged over the file, e.g. '{"train": {"max_steps": 5}}'

    def load(self) -> PipelineConfig:
        return load_config(self.config_file, json.loads(self.overrides_json or "{}"))


class AnonymizeOverrides(dg.Config):
    """Launchpad run config for anonymized_corpus; empty fields keep the YAML `anonymize` settings."""

    replacement: str | None = Field(
        None, description="'tag' (<PERSON_1>-style placeholders) or 'fake' (realistic fake values). Empty = YAML.")
    score_threshold: float | None = Field(
        None, description="Minimum recognizer score (0-1) to treat a span as PII. Empty = YAML.")


class TrainOverrides(dg.Config):
    """Launchpad run config for lora_adapter; empty fields keep the YAML `train` settings."""

    method: str | None = Field(None, description="'lora', 'qlora' (4-bit NF4 base) or 'dora'. Empty = YAML.")
    epochs: float | None = Field(None, description="Training epochs (> 0). Empty = YAML.")
    max_steps: int | None = Field(None, description="If > 0, stop after this many optimizer steps. Empty = YAML.")
    learning_rate: float | None = Field(None, description="Peak learning rate (> 0). Empty = YAML.")


class ExportOverrides(dg.Config):
    """Launchpad run config for quantized_model; empty fields keep the YAML `export` settings."""

    variants: list[str] | None = Field(
        None, description="Variants to write beside merged: nf4, int8, gguf-q8_0, gguf-q4_0. Empty = YAML.")


class EvalOverrides(dg.Config):
    """Launchpad run config for eval_report; empty fields keep the YAML `eval` settings."""

    max_gold: int | None = Field(None, description="Evaluate at most this many gold questions (0 = all). Empty = YAML.")
    max_new_tokens: int | None = Field(None, description="Greedy tokens generated per answer (>= 1). Empty = YAML.")
    variants: list[str] | None = Field(
        None, description="Models to evaluate, e.g. base, merged, nf4, merged@int8-weights (the merged model on "
        "that serve runtime). Empty = YAML.")


def with_overrides(cfg: PipelineConfig, section: str, overrides: dg.Config | dict | None) -> PipelineConfig:
    """`cfg` with the non-empty run-config `overrides` merged over `cfg.<section>`, validated like the YAML.

    Invalid values raise ConfigError naming the key, e.g. "train.method: Input should be 'lora', ...".
    """
    values = overrides.model_dump() if isinstance(overrides, dg.Config) else dict(overrides or {})
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return cfg
    data = cfg.model_dump()
    data[section] = {**data[section], **values}
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, f"run config (overrides of `{section}`)")) from None


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
