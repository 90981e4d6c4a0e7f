"""One place for the asset skeleton: settings, version, folder, manifest, `latest` pointer, Output.

    @pipeline_asset(group_name=..., description=...)
    def thing(context, settings: PipelineSettings, upstream: Upstream) -> dg.Output[Thing]:
        stage = Stage(context, settings)
        with stage.folder(stage.version(upstream.version, stage.cfg.thing.model_dump())) as f:
            write(f.tmp / "thing.json")
        return stage.output(Thing(f.dir, f.version), {"rows": 3})

- `pipeline_asset` is `dg.asset` with a code version derived from the code (core/versions.py): the function
  and the core modules it uses. Dagster marks the asset stale when it changes.
- A version is input-addressed (`stage.version(...)`: code version + upstream versions + settings + other
  inputs' content) or content-addressed (`stage.folder(content=[...])`: a hash of the files written). Either
  way it is also the Dagster data version (`stage.output`), so an upstream whose data changed marks the assets
  that read it stale in the UI, and one that re-materialized to the same content does not.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from ..config import PipelineConfig
from ..core.artifacts import VersionFolder, set_latest, sha256_file, version_folder, version_of
from ..core.versions import code_version
from .handles import Artifact
from .resources import PipelineSettings, with_overrides


def pipeline_asset(**asset_kwargs):
    """`dg.asset(...)` whose `code_version` is derived from the decorated function and the core code it uses."""

    def decorate(fn):
        return dg.asset(code_version=code_version(fn), **asset_kwargs)(fn)

    return decorate


class Stage:
    """One materialization of one asset.

    `cfg`: the settings, with the run config (Launchpad) of `section` merged over them when given;
    `root`: `<artifacts_dir>/<asset>`; `code_version`: this asset's derived code version.
    """

    def __init__(self, context: dg.AssetExecutionContext, settings: PipelineSettings, section: str | None = None,
                 overrides: dg.Config | None = None):
        self.context = context
        self.log = context.log
        self.asset = context.asset_key.to_user_string()
        cfg = settings.load()
        self.cfg: PipelineConfig = with_overrides(cfg, section, overrides) if section else cfg
        self.code_version = context.assets_def.code_versions_by_key.get(context.asset_key) or ""
        self.root = self.cfg.path(self.cfg.artifacts_dir) / self.asset

    def version(self, *parts: Any) -> str:
        """Input-addressed version: this asset's code version + `parts` (upstream versions, settings, ...)."""
        return version_of(self.code_version, *parts)

    def file_hash(self, path: str | Path) -> str | None:
        """Content hash of an input file that is not an asset (gold set, probes), for `version`."""
        p = self.cfg.path(path)
        return sha256_file(p)[:16] if p.is_file() else None

    @contextlib.contextmanager
    def folder(self, version: str | None = None, content: tuple[str, ...] | list[str] = (),
               **manifest: Any) -> Iterator[VersionFolder]:
        """Build `<root>/<version>/` atomically with its manifest.json (code version included), then `latest`."""
        with version_folder(self.root, self.asset, version, content, code_version=self.code_version,
                            **manifest) as f:
            yield f
        self.log.info(f"{self.asset} {f.version} -> {f.dir}")

    def published(self, version: str) -> Path:
        """For core functions that write their own version folder atomically (export, evaluation)."""
        set_latest(self.root, version)
        return self.root / version

    def output(self, handle: Artifact, metadata: dict[str, Any] | None = None) -> dg.Output:
        """The handle downstream assets receive, with its version as the Dagster data version."""
        return versioned_output(handle, handle.version,
                                {"artifact_dir": dg.MetadataValue.path(str(handle.dir)), **(metadata or {})})


def versioned_output(value: Any, version: str, metadata: dict[str, Any]) -> dg.Output:
    """dg.Output reporting `version` as the Dagster data version (what the UI compares to mark stale assets)."""
    with warnings.catch_warnings():  # Output(data_version=...) is marked beta; it is how Dagster takes one
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(value, data_version=dg.DataVersion(version), metadata=metadata)
