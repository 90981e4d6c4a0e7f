"""What assets pass each other: small typed handles to a versioned artifact folder, never the data itself.

Each handle names the folder (`dir`), its `version` (also the asset's Dagster data version) and the few facts a
downstream asset needs without opening files. The files inside are properties, so the contract between two
assets is this module, not a dict you learn by reading both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Artifact:
    """One version of an asset: `<artifacts_dir>/<asset>/<version>/`."""

    dir: Path
    version: str

    @property
    def manifest(self) -> Path:
        return self.dir / "manifest.json"


@dataclass(frozen=True)
class RawCorpus(Artifact):
    @property
    def records(self) -> Path:
        return self.dir / "records.jsonl"


@dataclass(frozen=True)
class AnonymizedCorpus(Artifact):
    @property
    def records(self) -> Path:
        return self.dir / "records.jsonl"

    @property
    def report(self) -> Path:
        return self.dir / "pii_report.json"


@dataclass(frozen=True)
class RetrievalIndex(Artifact):
    chunks: int = 0


@dataclass(frozen=True)
class InstructionPairs(Artifact):
    n_train: int = 0
    n_eval: int = 0

    @property
    def train(self) -> Path:
        return self.dir / "train.jsonl"

    @property
    def eval(self) -> Path:
        return self.dir / "eval.jsonl"


@dataclass(frozen=True)
class BaseModel(Artifact):
    """The base weights as a plain HF folder; `version` is their fingerprint (the folder is a cache)."""

    spec: str = ""


@dataclass(frozen=True)
class LoraAdapter(Artifact):
    method: str = "lora"
    base_eval_loss: float | None = None
    final_eval_loss: float | None = None

    @property
    def trainer_log(self) -> Path:
        return self.dir / "trainer_log.json"


@dataclass(frozen=True)
class QuantizedModel(Artifact):
    variants: dict[str, Path] = field(default_factory=dict)  # variant name -> folder (or .gguf file)


@dataclass(frozen=True)
class EvalReport(Artifact):
    gate_passed: bool = False
    gate_reasons: tuple[str, ...] = ()
    candidate: str = "merged"
    retrieval: bool = False  # whether the candidate answered with retrieved context
    quantized_model: str = ""  # the versions it judged: only they may be promoted on its verdict
    retrieval_index: str | None = None

    @property
    def report(self) -> Path:
        return self.dir / "eval_report.json"


@dataclass(frozen=True)
class PromotedModel(Artifact):
    pointer: Path = Path()  # <artifacts_dir>/promoted.json, what `serve` reads
    variants: dict[str, Path] = field(default_factory=dict)
    retrieval_index: Path | None = None
