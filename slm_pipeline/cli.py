"""`slm-pipeline` command line: run the pipeline, anonymize files, chat with a model."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from .config import PROJECT_ROOT, RUNTIMES, ConfigError, load_config

# `slm-pipeline run` exit status when every step that ran succeeded but a blocking check (the PII-leak check,
# the promotion gate) stopped the assets below it; 1 means a step failed with an error.
EXIT_BLOCKED = 3


def _dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists() and (PROJECT_ROOT / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def cmd_run(args) -> int:
    """Materialize every asset (or a selection) in this process, recorded in DAGSTER_HOME's event log."""
    cfg = load_config(args.config)  # fail fast on bad settings, before Dagster starts
    if not cfg.path(cfg.corpus.corpus_dir).is_dir():
        raise ConfigError(
            f"corpus.corpus_dir = '{cfg.corpus.corpus_dir}' is not a folder ({cfg.path(cfg.corpus.corpus_dir)}); "
            f"point it at your documents/FAQ/chats folder in {cfg.settings_file}"
        )
    home = _dagster_home()
    import dagster as dg

    from .definitions import defs
    from .defs.resources import PipelineSettings

    try:
        job = dg.define_asset_job("cli_run", selection=args.select or dg.AssetSelection.all())
    except dg.DagsterError as e:  # an unparsable selection
        print(f"--select {args.select!r}: {e}. Use Dagster's selection syntax, e.g. 'raw_corpus+' (it and "
              "everything downstream), 'key:raw_corpus or key:anonymized_corpus', '+instruction_pairs'.",
              file=sys.stderr)
        return 2
    run_defs = dg.Definitions(
        assets=defs.assets, asset_checks=defs.asset_checks, jobs=[job], executor=dg.in_process_executor,
        resources={"settings": PipelineSettings(config_file=args.config, overrides_json=args.overrides or "{}")},
    )
    job_def = run_defs.resolve_job_def("cli_run")
    result = job_def.execute_in_process(
        instance=dg.DagsterInstance.get(), raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": args.log_level}}}},
    )
    print(f"\nDagster run {result.run_id} ({'success' if result.success else 'FAILED'}); event log in {home}")
    materialized = set()
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        materialized.add(mat.asset_key)
        where = mat.metadata.get("artifact_dir")
        print(f"  {mat.asset_key.to_user_string():<20} {where.value if where else ''}")
    blocked = []  # failed blocking checks: a verdict on the data or the model, explained by the check itself
    for check in result.get_asset_check_evaluations():
        warn = not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        print(f"  check {check.check_name:<36} {'passed' if check.passed else 'WARNING' if warn else 'FAILED'}")
        if warn and check.description:  # e.g. too much corpus text lost: loud, but the run goes on
            print(f"\n  WARNING: {check.description}\n")
        if not check.passed and check.blocking:
            blocked.append(check)
    for check in blocked:
        print(f"\n{check.check_name} failed on {check.asset_key.to_user_string()}:\n{check.description or ''}")
    if blocked:
        planned = job_def.asset_layer.selected_asset_keys
        skipped = sorted(k.to_user_string() for k in planned - materialized)
        print(f"\nNot materialized (a blocking check stopped them): {', '.join(skipped) or 'none'}")
    # A step that failed only because its blocking check failed was explained above; others are errors.
    errors = [e for e in result.all_events
              if e.is_step_failure and e.step_failure_data.error.cls_name != "DagsterAssetCheckFailedError"]
    for e in errors:
        err = e.step_failure_data.error
        while err.cause is not None:  # Dagster wraps ours: the innermost error says what and how
            err = err.cause
        print(f"\n{e.step_key} failed: {err.message.strip()}", file=sys.stderr)
    if errors or (not result.success and not blocked):
        return 1
    if blocked:
        return EXIT_BLOCKED
    print("\nOpen the UI with `make ui` to see lineage, metadata and plots.")
    return 0


def cmd_anonymize(args) -> int:
    from .core.anonymize import anonymize_jsonl, format_leaks, pipeline_anonymizer

    cfg = load_config(args.config)
    stats = anonymize_jsonl(Path(args.input), Path(args.output), anonymizer=pipeline_anonymizer(cfg))
    print(json.dumps(stats, indent=2, default=str) if stats else f"wrote {args.output}")
    if stats.get("corpus_terms"):
        print("kept as this corpus's own brand words: " + ", ".join(stats["corpus_terms"]) + " (if one of them is "
              "a person's name, set anonymize.discover_terms: false)", file=sys.stderr)
    if stats.get("leaks"):
        print(f"\n{format_leaks(stats['leaks'])}\n{args.output} still contains them.", file=sys.stderr)
        return 1
    return 0


def cmd_chat(args) -> int:
    """Minimal terminal chat with a model folder (merged model or base) or GGUF file, answering as `serve` does:
    the policy system prompt, retrieved excerpts, no refusal start for in-scope questions, copy-biased decoding."""
    from .core.engines import load_engine
    from .core.grounding import load_grounder
    from .core.policy import load_policy

    cfg = load_config(args.config, {"retrieval": {"enabled": False}} if args.no_retrieval else None)
    system = load_policy(cfg.path(cfg.policy_file)).system_prompt
    grounder = load_grounder(cfg, args.index)
    engine = load_engine(Path(args.model), system, args.runtime or cfg.serve.runtime)
    if grounder is not None:
        engine.ground_with(grounder.refusal_text, cfg.retrieval.copy_bias)
    messages = [{"role": "system", "content": system}]
    print("Type a question (empty line to quit).")
    while (q := input("> ").strip()):
        messages.append({"role": "user", "content": q})
        grounded = grounder.ground(messages) if grounder else None
        if grounded is not None and grounded.refusal is not None:
            answer = grounded.refusal
        else:
            answer = engine.generate(grounded.messages if grounded else messages, args.max_new_tokens,
                                     suppress_start=engine.refusal_start if grounded and grounded.in_scope else None,
                                     copy_from=grounded.excerpts() if grounded else None).text
        print(answer)
        if grounded is not None and grounded.hits:
            print("  sources: " + "; ".join(f"{h.chunk.label} ({h.score:.2f})" for h in grounded.hits))
        messages.append({"role": "assistant", "content": answer})
    return 0


def cmd_serve(args) -> int:
    """OpenAI-compatible HTTP API over the promoted model (or --model, or --upstream-url); feedback goes to the
    feedback store (feedback.database_url, else the SQLite file)."""
    from .core.serve import build_server
    from .core.serving.logs import configure_logging

    configure_logging()
    overrides: dict = {"retrieval": {"enabled": False}} if args.no_retrieval else {}
    serve = {k: v for k, v in (("upstream_url", args.upstream_url), ("upstream_model", args.upstream_model),
                               ("max_concurrent", args.max_concurrent), ("max_queue", args.max_queue),
                               ("threads", args.threads))
             if v is not None}
    if serve:
        overrides["serve"] = serve
    if args.database_url:
        overrides["feedback"] = {"database_url": args.database_url}
    cfg = load_config(args.config, overrides)
    token = args.token or os.environ.get("SLM_SERVE_TOKEN") or None
    server = build_server(cfg, args.model, host=args.host, port=args.port, token=token, runtime=args.runtime,
                          index_dir=args.index)
    host = server.server_address[0]
    if not token and host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {host} without a token; set SLM_SERVE_TOKEN or --token", file=sys.stderr)
    q = server.state.queue
    print(f"Serving {server.backend.describe()} as '{server.model_name}' on {server.url}/v1 "
          f"({'bearer token required' if token else 'no token'}; {q.capacity} generation(s) at once, "
          f"{q.max_waiting} waiting; feedback store {server.store.location}); Ctrl+C to stop.", flush=True)
    server.serve_forever()
    return 0


def cmd_bench(args) -> int:
    """Measured speed of every stage side by side with the naive way (see slm_pipeline/bench.py)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from .bench import markdown, run_bench

    cfg = load_config(args.config)
    _dagster_home()
    skip = {name for name in ("training", "anonymization", "inference", "retrieval", "serving", "end_to_end")
            if getattr(args, f"skip_{name}")}
    res = run_bench(cfg, Path(args.out), skip=skip, train_tokens=args.train_tokens, prompts=args.prompts,
                    max_new_tokens=args.max_new_tokens, serving_clients=args.serving_clients,
                    serving_seconds=args.serving_seconds, serving_threads=args.threads)
    print("\n" + markdown(res))
    print(f"\nwrote {Path(args.out) / 'bench.json'} and {Path(args.out) / 'bench.md'}")
    return 0


def cmd_config(args) -> int:
    print(json.dumps(load_config(args.config).model_dump(), indent=2))
    return 0


def _retrieval_args(p) -> None:
    p.add_argument("--index", help="retrieval index folder (default: the promoted model's, else the latest "
                                   "artifacts/retrieval_index)")
    p.add_argument("--no-retrieval", action="store_true",
                   help="answer closed-book, without retrieved context (retrieval.enabled: false)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slm-pipeline", description=__doc__)
    parser.add_argument("--config", help="settings YAML (default: $SLM_PIPELINE_CONFIG or ./slm_pipeline.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="materialize the whole pipeline (or --select a subset)")
    p.add_argument("--select", help="Dagster asset selection, e.g. 'raw_corpus+' or 'instruction_pairs'")
    p.add_argument("--log-level", default="INFO", help="console log level (DEBUG shows every Dagster event)")
    p.add_argument("--overrides", help='JSON settings merged over the file, e.g. \'{"train": {"max_steps": 5}}\'')
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("anonymize", help="anonymize a JSONL file of {\"text\": ...} lines")
    p.add_argument("input")
    p.add_argument("output")
    p.set_defaults(func=cmd_anonymize)

    p = sub.add_parser("chat", help="chat in the terminal with a model folder")
    p.add_argument("model", help="e.g. artifacts/quantized_model/<version>/merged")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--runtime", choices=RUNTIMES, help="default serve.runtime (int8-weights: ~3x faster on a CPU)")
    _retrieval_args(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("serve", help="OpenAI-compatible HTTP API over the promoted model (collects feedback)")
    p.add_argument("--model", help="model folder to serve (default: the promoted model, see serve.variant)")
    p.add_argument("--host", help="bind address (default serve.host = 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default serve.port = 8000)")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (default: $SLM_SERVE_TOKEN, else none)")
    p.add_argument("--runtime", choices=RUNTIMES, help="default serve.runtime (int8-weights: ~3x faster on a CPU)")
    p.add_argument("--upstream-url", help="forward generation to this OpenAI-compatible engine, e.g. "
                   "http://127.0.0.1:8001/v1 (vLLM, llama-server, Ollama; serve.upstream_url); API key from "
                   "$SLM_UPSTREAM_API_KEY")
    p.add_argument("--upstream-model", help="model name at the upstream engine (default serve.upstream_model, "
                   "else serve.model_name)")
    p.add_argument("--database-url", help="feedback store URL shared by replicas, e.g. "
                   "postgresql://user@db/slm_feedback (default: feedback.database_url / $SLM_FEEDBACK_DATABASE_URL, "
                   "else artifacts/feedback/feedback.db)")
    p.add_argument("--max-concurrent", type=int, help="generations at once (serve.max_concurrent; 0 = auto)")
    p.add_argument("--max-queue", type=int, help="requests waiting for a generation before 429 (serve.max_queue)")
    p.add_argument("--threads", type=int, help="torch CPU threads (serve.threads; 0 = all cores; 1 on a busy "
                   "shared machine)")
    _retrieval_args(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bench", help="benchmark training/anonymization/inference/retrieval side by side with the "
                       "naive way (bench.json/.md)")
    p.add_argument("--out", default=".", help="folder for bench.json and bench.md (default: current dir)")
    p.add_argument("--train-tokens", type=int, default=3000, help="real (non-pad) training tokens per side")
    p.add_argument("--prompts", type=int, default=6,
                   help="prompts per inference variant (and gold questions for TTFT with vs without context)")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads, also of the serving replicas (0 = torch default)")
    p.add_argument("--serving-clients", type=int, default=8,
                   help="concurrent clients of the in-process serving load test (the API-layer runs use 4x)")
    p.add_argument("--serving-seconds", type=float, default=20.0, help="seconds each serving load test runs")
    for name in ("training", "anonymization", "inference", "retrieval", "serving", "end-to-end"):
        p.add_argument(f"--skip-{name}", action="store_true", help=f"skip the {name} section" + (
            " (search latency/recall, TTFT with vs without context, training tok/s on RAFT samples)"
            if name == "retrieval" else " (load test of `serve` replicas: requests/s, latency, 429s)"
            if name == "serving" else ""))
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("config", help="print the effective settings")
    p.set_defaults(func=cmd_config)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, ValueError, OSError) as e:  # FileNotFoundError, ConnectionError (feedback store), port taken
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
