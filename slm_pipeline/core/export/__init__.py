"""Export: merge the LoRA adapter into the base, quantize, write GGUF + Ollama Modelfile, verify, manifest.

Layout written under `out_dir` (built in a temp folder beside it and renamed into place when complete):

    merged/                 standalone HF model (fp32 safetensors + tokenizer + chat template + generation config)
    nf4/                    bitsandbytes 4-bit NF4 (double quant), reloads with `from_pretrained(dir)`
    int8/                   bitsandbytes LLM.int8, reloads with `from_pretrained(dir)`
    gguf/model-q8_0.gguf    llama.cpp / Ollama file (Q8_0)
    gguf/model-q4_0.gguf    llama.cpp / Ollama file (Q4_0; embeddings kept Q8_0 by default)
    gguf/Modelfile          `ollama create <name> -f gguf/Modelfile`
    manifest.json           inputs, settings, sha256 of every file, sizes, agreement with merged, load times, serve commands

Every quantized variant is compared with the merged model (logits + greedy output). A variant that cannot be
built on this machine (e.g. an architecture the GGUF writer does not know) is recorded with a `skipped_reason`
instead of failing the whole export.

Package layout, one stage per module: common.py (errors, shared helpers), merge.py, bnb.py (bitsandbytes),
gguf_writer.py, modelfile.py (Ollama Modelfile + Go-template renderer), verify.py; this module runs them in
order (`export_model`) and re-exports their public names. Never imports dagster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...config import ExportConfig
from ..artifacts import atomic_dir, sha256_file, write_manifest
from .bnb import BNB_VARIANTS, _bnb_settings, _load_bnb, quantize_bnb
from .common import (
    ExportError,
    ModelfileError,
    UnsupportedArchitectureError,
    _dir_size,
    _free,
    _progress,
    _timed_load,
)
from .gguf_writer import GGUF_QTYPES, _load_gguf, gguf_support, write_gguf
from .merge import _merge, merge_adapter
from .modelfile import (
    parse_modelfile,
    render_go_template,
    render_modelfile,
    render_ollama_prompt,
    render_ollama_prompt_from_parts,
)
from .verify import DEFAULT_VERIFY_PROMPTS, _as_messages, _outputs, verify_gguf_in_llama_cpp, verify_variant

__all__ = [
    "ExportResult",
    "ExportError",
    "UnsupportedArchitectureError",
    "ModelfileError",
    "GGUF_QTYPES",
    "BNB_VARIANTS",
    "DEFAULT_VERIFY_PROMPTS",
    "merge_adapter",
    "quantize_bnb",
    "write_gguf",
    "gguf_support",
    "render_modelfile",
    "parse_modelfile",
    "render_go_template",
    "render_ollama_prompt",
    "render_ollama_prompt_from_parts",
    "verify_variant",
    "export_model",
]


@dataclass
class ExportResult:
    out_dir: Path
    # variant name ("merged", "nf4", "int8", "gguf-q8_0", "gguf-q4_0") -> {path, size_bytes, agreement metrics,
    # load_seconds, rss_delta_bytes, skipped_reason, ...}
    variants: dict[str, dict[str, Any]]
    manifest_path: Path
    seconds: float
    modelfile_path: Path | None = None
    serve_commands: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # in-process runtimes of the merged folder ("int8-weights") -> agreement metrics, as for variants
    runtimes: dict[str, dict[str, Any]] = field(default_factory=dict)


def _skipped(reason: str, settings: dict) -> dict:
    return {"path": None, "size_bytes": None, "load_seconds": None, "skipped_reason": reason, "settings": settings}


def _serve_commands(out_dir: Path, base_path: Path, adapter_path: Path, name: str, adapter_cfg: dict,
                    variants: dict, modelfile: Path | None) -> tuple[dict[str, str], list[str]]:
    cmds: dict[str, str] = {}
    notes: list[str] = []
    cmds["vllm_merged"] = f"vllm serve {out_dir / 'merged'} --served-model-name {name}"
    lora = f"vllm serve {base_path} --enable-lora --lora-modules {name}={adapter_path}"
    r = int(adapter_cfg.get("r") or 0)
    if r > 16:
        lora += f" --max-lora-rank {r}"  # vLLM's default max rank is 16
    cmds["vllm_lora"] = lora
    if adapter_cfg.get("use_dora"):
        notes.append("adapter is DoRA: vLLM's --enable-lora serves plain LoRA only; serve the merged model")
    if modelfile is not None:
        cmds["ollama"] = f"ollama create {name} -f {modelfile} && ollama run {name}"
    for key in ("gguf-q8_0", "gguf-q4_0"):
        v = variants.get(key) or {}
        if v.get("path"):  # also when only transformers could not reload it: llama.cpp may still
            cmds[f"llama_server_{key.split('-')[1]}"] = f"llama-server -m {v['path']} --port 8080"
    return cmds, notes


def export_model(base_path: str | Path, adapter_path: str | Path, out_dir: str | Path, cfg: ExportConfig,
                 system_prompt: str, inputs: dict, progress: Callable[[str], None] | None = None,
                 prompts: Sequence | None = None) -> ExportResult:
    """Merge, quantize (per cfg.variants), write GGUF + Modelfile, verify every variant vs merged, manifest.

    Everything is built in a temp folder beside `out_dir` and renamed to `out_dir` when complete.
    """
    from ..models import llama_cpp_available, load_model, pick_device

    t_start = time.perf_counter()
    base_path, adapter_path, out_dir = Path(base_path).resolve(), Path(adapter_path).resolve(), Path(out_dir)
    final = out_dir.resolve()
    device = pick_device()
    name = cfg.ollama_model_name
    max_new = cfg.verify_max_new_tokens
    temperature = cfg.modelfile_temperature
    q4_emb_q8 = cfg.gguf_q4_0_embeddings_q8
    verify_prompts = list(prompts) if prompts is not None else DEFAULT_VERIFY_PROMPTS[: cfg.verify_prompts]
    verify_prompts = [_as_messages(p, system_prompt) for p in verify_prompts]
    variants: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    modelfile_final: Path | None = None

    def final_path(tmp_root: Path, p: Path) -> str:
        return str(final / Path(p).relative_to(tmp_root))

    with atomic_dir(out_dir) as tmp:
        # 1. merge ---------------------------------------------------------------------------------------
        _progress(progress, f"Merging adapter {adapter_path.name} into {base_path.name} (fp32, CPU)")
        t0 = time.perf_counter()
        merge_info = _merge(base_path, adapter_path, tmp / "merged")
        adapter_cfg = merge_info["adapter_config"]
        from ..models import load_tokenizer

        tokenizer = load_tokenizer(tmp / "merged")
        reference, load_s, rss = _timed_load(lambda: load_model(tmp / "merged", device=device))
        variants["merged"] = {
            "path": final_path(tmp, tmp / "merged"), "size_bytes": _dir_size(tmp / "merged"),
            "load_seconds": round(load_s, 3), "rss_delta_bytes": rss, "build_seconds": round(time.perf_counter() - t0, 2),
            "settings": {"dtype": "float32"}, "skipped_reason": None,
            "merge_max_abs_logit_diff_vs_peft": merge_info["merge_max_abs_logit_diff_vs_peft"],
        }
        _progress(progress, f"Merged model saved ({variants['merged']['size_bytes'] / 1e6:.1f} MB); "
                            f"computing reference outputs on {len(verify_prompts)} prompts")
        ref_out = _outputs(reference, tokenizer, verify_prompts, max_new)

        def verify(key: str, loader: Callable[[], Any], path: Path, settings: dict, build_s: float):
            entry = {"path": final_path(tmp, path), "size_bytes": _dir_size(path), "settings": settings,
                     "build_seconds": round(build_s, 2), "skipped_reason": None}
            try:
                cand, ls, rss_d = _timed_load(loader)
            except Exception as e:  # the file exists but cannot be reloaded here
                entry["load_seconds"] = None
                entry["skipped_reason"] = f"written, but reload failed on {device}: {type(e).__name__}: {e}"
                variants[key] = entry
                return
            entry["load_seconds"], entry["rss_delta_bytes"] = round(ls, 3), rss_d
            _progress(progress, f"Verifying {key} against merged")
            try:
                entry.update(verify_variant(reference, cand, tokenizer, verify_prompts, max_new_tokens=max_new,
                                            reference_outputs=ref_out))
            except Exception as e:  # keep the artifact; say why it is unverified
                entry["verification_error"] = f"{type(e).__name__}: {e}"
                _progress(progress, f"Could not verify {key}: {entry['verification_error']}")
            variants[key] = entry
            del cand
            _free()

        # 2. bitsandbytes -------------------------------------------------------------------------------
        for kind in [v for v in cfg.variants if v in BNB_VARIANTS]:
            _progress(progress, f"Quantizing {kind} with bitsandbytes on {device}")
            t0 = time.perf_counter()
            try:
                quantize_bnb(tmp / "merged", tmp / kind, kind, device=device)
            except Exception as e:
                import shutil

                shutil.rmtree(tmp / kind, ignore_errors=True)
                variants[kind] = _skipped(
                    f"bitsandbytes could not quantize/save {kind} on {device}: {type(e).__name__}: {e}",
                    _bnb_settings(kind, device))
                _progress(progress, f"Skipped {kind}: {variants[kind]['skipped_reason']}")
                continue
            verify(kind, lambda k=kind: _load_bnb(tmp / k, device), tmp / kind, _bnb_settings(kind, device),
                   time.perf_counter() - t0)

        # 3. GGUF ---------------------------------------------------------------------------------------
        for key in [v for v in cfg.variants if v.startswith("gguf-")]:
            qtype = key.split("-", 1)[1]
            path = tmp / "gguf" / f"model-{qtype}.gguf"
            _progress(progress, f"Writing GGUF {qtype}")
            t0 = time.perf_counter()
            try:
                info = write_gguf(tmp / "merged", path, qtype, q4_0_embeddings_q8=q4_emb_q8, name=name)
            except (UnsupportedArchitectureError, ExportError) as e:
                variants[key] = _skipped(str(e), {"qtype": qtype})
                _progress(progress, f"Skipped {key}: {e}")
                continue
            notes.extend(n for n in info["notes"] if n not in notes)
            settings = {"qtype": qtype, "file_type": info["file_type"], "tensor_types": info["tensor_types"],
                        "arch": info["arch"], "tokenizer_pre": info["tokenizer_pre"],
                        "embeddings_q8_0": qtype == "q4_0" and q4_emb_q8,
                        "verified_with": "transformers gguf_file loader (de-quantized to fp32)"}
            verify(key, lambda p=path: _load_gguf(p, device), path, settings, time.perf_counter() - t0)
            if llama_cpp_available() and key in variants:  # the real consumer, when the optional extra is there
                _progress(progress, f"Verifying {key} in llama.cpp against merged")
                try:
                    variants[key].update(verify_gguf_in_llama_cpp(path, tokenizer, verify_prompts, ref_out, max_new))
                    settings["verified_with"] += " and llama.cpp (llama-cpp-python)"
                except Exception as e:
                    variants[key]["llama_cpp_error"] = f"{type(e).__name__}: {e}"

        # 4. in-process runtimes of the merged folder (nothing written: quantized when loaded) --------------
        runtimes: dict[str, dict[str, Any]] = {}
        if device == "cpu":
            from ..models import load_for_inference

            _progress(progress, "Verifying runtime int8-weights (merged, int8 weights at load) against merged")
            try:
                cand, ls, rss_d = _timed_load(lambda: load_for_inference(tmp / "merged", "cpu", "int8-weights"))
                runtimes["int8-weights"] = {
                    "of_variant": "merged", "load_seconds": round(ls, 3), "rss_delta_bytes": rss_d,
                    "how": "serve.runtime: int8-weights (or --runtime int8-weights)",
                    **verify_variant(reference, cand, tokenizer, verify_prompts, max_new_tokens=max_new,
                                     reference_outputs=ref_out)}
                del cand
                _free()
            except Exception as e:  # e.g. a torch build without the int8 weight matmul on this CPU
                runtimes["int8-weights"] = {"skipped_reason": f"{type(e).__name__}: {e}"}

        # 5. Modelfile ----------------------------------------------------------------------------------
        ggufs = [k for k in (f"gguf-{cfg.ollama_gguf}", "gguf-q8_0", "gguf-q4_0") if (variants.get(k) or {}).get("path")]
        modelfile_info: dict[str, Any] = {"path": None, "skipped_reason": None}
        if ggufs:
            gguf_name = Path(variants[ggufs[0]]["path"]).name
            try:
                ctx = getattr(reference.config, "max_position_embeddings", None)
                text = render_modelfile(tokenizer, system_prompt, gguf_name, temperature=temperature,
                                        num_ctx=min(int(ctx), 4096) if ctx else None)
                mf = tmp / "gguf" / "Modelfile"
                mf.write_text(text, encoding="utf-8")
                modelfile_final = final / "gguf" / "Modelfile"
                modelfile_info = {"path": str(modelfile_final), "gguf": gguf_name, "skipped_reason": None,
                                  "template_matches_hf_chat_template": True, "temperature": temperature}
            except ModelfileError as e:
                modelfile_info["skipped_reason"] = f"Modelfile not written: {e}"
                notes.append(modelfile_info["skipped_reason"])
        else:
            modelfile_info["skipped_reason"] = "no GGUF variant was written"

        reference = None  # free the merged model before hashing (the closure above is done with it)
        _free()

        # 6. manifest -----------------------------------------------------------------------------------
        serve, serve_notes = _serve_commands(final, base_path, adapter_path, name, adapter_cfg, variants,
                                             modelfile_final)
        notes.extend(serve_notes)
        files = {}
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                files[str(p.relative_to(tmp))] = {"sha256": sha256_file(p), "size_bytes": p.stat().st_size}
        seconds = time.perf_counter() - t_start
        write_manifest(
            tmp,
            stage="export",
            base_model={"path": str(base_path), "adapter_base_model_name_or_path":
                        adapter_cfg.get("base_model_name_or_path")},
            adapter={"path": str(adapter_path),
                     "version": inputs.get("adapter_version") or inputs.get("lora_adapter") or adapter_path.name,
                     "config": adapter_cfg},
            inputs=inputs,
            device=device,
            config=cfg.model_dump(),
            system_prompt=system_prompt,
            verify_prompts=verify_prompts,
            variants=variants,
            runtimes=runtimes,
            modelfile=modelfile_info,
            serve_commands=serve,
            files=files,
            notes=notes,
            seconds=round(seconds, 2),
        )
        _progress(progress, f"Export complete in {seconds:.1f}s: {', '.join(k for k, v in variants.items() if not v.get('skipped_reason'))}")

    return ExportResult(out_dir=final, variants=variants, manifest_path=final / "manifest.json",
                        seconds=time.perf_counter() - t_start, modelfile_path=modelfile_final,
                        serve_commands=serve, notes=notes, runtimes=runtimes)
