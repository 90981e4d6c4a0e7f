"""Data stages: raw_corpus -> anonymized_corpus -> instruction_pairs, with their checks.

Thin layer: reading, anonymizing and pair building live in slm_pipeline.core; here we only decide where
outputs go, log progress and attach metadata.
"""


import json

import dagster as dg

from ..core.anonymize import find_leaks, format_leaks, load_canaries, pipeline_anonymizer, record_texts
from ..core.artifacts import read_jsonl, write_jsonl
from ..core.corpus import load_corpus, preview_markdown
from ..core.pairs import build_pairs, token_length_histogram_markdown, validate_sample
from ..core.policy import load_gold, load_policy
from ..core.progress import Progress
from ..core.teacher import teacher_settings
from .handles import AnonymizedCorpus, BaseModel, InstructionPairs, RawCorpus, RetrievalIndex
from .resources import AnonymizeOverrides, PipelineSettings, md_table, numbers
from .stage import Stage, pipeline_asset

GROUP = "data"


def coverage_metadata(cov: dict) -> dict:
    """Dagster metadata of a core/coverage.py report: share reached, lost words by reason, biggest losses."""
    return {
        "text_share": dg.MetadataValue.float(cov["share"]),
        "text_lost_words": cov["lost_words"],
        "text_lost_by_reason": dg.MetadataValue.json(cov["lost_by_reason"]),
        "text_biggest_losses": md_table(cov["biggest_losses"] or [{"source": "none", "section": "", "words": 0}]),
        **({"text_loss_warning": dg.MetadataValue.md(f"**Warning:** {cov['warning']}")} if cov["warning"] else {}),
    }


def coverage_check(cov: dict, **also: dict) -> dg.AssetCheckResult:
    """A non-blocking WARN check: passes while at most corpus.max_text_loss of the text is lost."""
    return dg.AssetCheckResult(
        passed=cov["warning"] is None, severity=dg.AssetCheckSeverity.WARN, description=cov["warning"],
        metadata={**coverage_metadata(cov), "max_text_loss": cov["max_text_loss"],
                  **{f"text_share_{k}": v["share"] for k, v in also.items()}},
    )


@pipeline_asset(
    group_name=GROUP,
    kinds={"python", "jsonl"},
    owners=["team:data"],
    description="Documents (.md/.txt/.rst/.html/.pdf/.docx/.pptx), FAQ (.csv) and chat transcripts (.jsonl) read "
    "from the corpus folder, validated and normalized to one record per document / FAQ row / chat. Contains raw "
    "PII. Version: a hash of the records.",
)
def raw_corpus(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.Output[RawCorpus]:
    stage = Stage(context, settings)
    cfg = stage.cfg
    corpus_dir = cfg.path(cfg.corpus.corpus_dir)
    result = load_corpus(cfg.corpus, corpus_dir)
    with stage.folder(content=["records.jsonl"], corpus_dir=str(corpus_dir), stats=result.stats,
                      config=cfg.corpus.model_dump()) as f:
        write_jsonl(f.tmp / "records.jsonl", result.records)
        write_jsonl(f.tmp / "problems.jsonl", result.problems)
    for p in result.problems:
        context.log.warning(f"skipped {p['path']}:{p.get('line')}: {p['error']}")
    context.log.info(f"{len(result.records)} records from {corpus_dir}")
    return stage.output(
        RawCorpus(f.dir, f.version),
        {
            "records": len(result.records),
            "skipped_bad_records": len(result.problems),
            "skipped_by_reason": dg.MetadataValue.json(result.stats["skipped_by_reason"]),
            "total_chars": result.stats["total_chars"],
            "by_kind": dg.MetadataValue.json(result.stats["by_kind"]),
            "by_source": dg.MetadataValue.json(result.stats["by_source"]),
            "preview": dg.MetadataValue.md(preview_markdown(result.records)),
        },
    )


@pipeline_asset(
    group_name=GROUP,
    kinds={"presidio", "spacy", "jsonl"},
    owners=["team:data"],
    description="raw_corpus with PII replaced: Presidio on spaCy en_core_web_sm plus our recognizers for "
    "addresses, international phones, order/account ids and postcodes; consistent pseudonyms per record. "
    "Version: a hash of the anonymized records, so any change in what the anonymizer writes reaches every "
    "asset below it.",
)
def anonymized_corpus(
    context: dg.AssetExecutionContext, settings: PipelineSettings, raw_corpus: RawCorpus,
    config: AnonymizeOverrides,
) -> dg.Output[AnonymizedCorpus]:
    stage = Stage(context, settings, "anonymize", config)
    cfg = stage.cfg
    records = read_jsonl(raw_corpus.records)
    anonymizer = pipeline_anonymizer(cfg)  # the policy's company name is never PII
    shown = Progress(len(records), context.log.info, "anonymized", every_s=0, unit="records")
    clean, report = anonymizer.anonymize_records(records, progress=lambda done, _total: shown.step(done - shown.done))
    with stage.folder(content=["records.jsonl"], raw_corpus=raw_corpus.version,
                      config=cfg.anonymize.model_dump()) as f:
        write_jsonl(f.tmp / "records.jsonl", clean)
        (f.tmp / "pii_report.json").write_text(json.dumps(report.to_json(), indent=2))
    context.log.info(
        f"{report.n_texts} texts, {sum(report.entity_counts.values())} PII spans replaced "
        f"({report.texts_per_second:.1f} texts/s), leaks after verification: {len(report.leaks)}"
    )
    if report.corpus_terms:
        context.log.info("kept as the corpus's own brand words (anonymize.discover_terms): "
                         + ", ".join(f"{w} ({n} records)" for w, n in report.corpus_terms.items()))
    return stage.output(
        AnonymizedCorpus(f.dir, f.version),
        {
            "records": len(clean),
            "pii_spans_replaced": sum(report.entity_counts.values()),
            "leaks": len(report.leaks),
            "texts_per_second": float(report.texts_per_second),
            **numbers("pii_", dict(report.entity_counts)),
            "entity_counts": dg.MetadataValue.json(dict(report.entity_counts)),
            "brand_words_kept": dg.MetadataValue.json(dict(report.corpus_terms)),
            "examples": md_table([{"anonymized example": e} for e in report.examples[:8]]),
        },
    )


@dg.asset_check(asset=anonymized_corpus, blocking=True, description="No planted canary and no PII value the "
                "analyzer found in raw_corpus may appear in the anonymized output.")
def anonymized_corpus_no_pii_leak(settings: PipelineSettings,
                                  anonymized_corpus: AnonymizedCorpus) -> dg.AssetCheckResult:
    cfg = settings.load()
    report = json.loads(anonymized_corpus.report.read_text())
    records = read_jsonl(anonymized_corpus.records)
    canary_file = cfg.path(cfg.anonymize.canaries_file) if cfg.anonymize.canaries_file else None
    canaries = load_canaries(canary_file) if canary_file and canary_file.exists() else []
    texts = [(r["id"], t) for r in records for t in record_texts(r)]
    canary_leaks = find_leaks(texts, canaries)
    seen = {(x["record_id"], x["type"], x.get("value")) for x in report["leaks"]}
    leaks = report["leaks"] + [x for x in canary_leaks if (x["record_id"], x["type"], x.get("value")) not in seen]
    return dg.AssetCheckResult(
        passed=not leaks,
        metadata={
            "canaries_checked": len(canaries),
            "raw_values_checked": report.get("n_values_checked", 0),
            "leaks": len(leaks),
            "leaked": dg.MetadataValue.json(leaks[:20]),
        },
        description=None if not leaks else format_leaks(leaks) + "\nNothing downstream of anonymized_corpus ran; "
        "the full list is under `leaks` in its pii_report.json.",
    )


@pipeline_asset(
    group_name=GROUP,
    kinds={"lancedb", "python"},
    owners=["team:data"],
    description="Chunks of anonymized_corpus (FAQ rows; document sections by heading path, long ones split with "
    "overlap) embedded with retrieval.embedding_model, domain-tuned first on the corpus's own questions "
    "(retrieval.tune_epochs), into an embedded LanceDB table, with a bm25s lexical index beside it. "
    "instruction_pairs, eval_report and `slm-pipeline serve` retrieve from it.",
)
def retrieval_index(
    context: dg.AssetExecutionContext, settings: PipelineSettings, anonymized_corpus: AnonymizedCorpus
) -> dg.Output[RetrievalIndex]:
    from ..core.retrieval import index_corpus

    stage = Stage(context, settings)
    cfg = stage.cfg
    records = read_jsonl(anonymized_corpus.records)  # only anonymized text enters the index
    gold = load_gold(cfg.path(cfg.gold_file))  # for the recall metadata only: not part of the version
    policy = load_policy(cfg.path(cfg.policy_file))
    out_of_scope = policy.out_of_scope_examples  # scope classifier negatives
    version = stage.version(anonymized_corpus.version, out_of_scope, policy.company,  # company: tuning questions
                            cfg.retrieval.model_dump(exclude={"enabled", "min_score", "answer_score",
                                                              "scope_threshold", "oracle_share",
                                                              "paraphrase_share",
                                                              "context_views", "copy_bias"}))
    with stage.folder(version, anonymized_corpus=anonymized_corpus.version, config=cfg.retrieval.model_dump()) as f:
        info = index_corpus(records, cfg.retrieval, f.tmp, gold, progress=context.log.info,
                            out_of_scope=out_of_scope, max_text_loss=cfg.corpus.max_text_loss, company=policy.company)
    recall = info.get("recall", {})
    context.log.info(f"{info['chunks']} chunks indexed; gold fact recall {recall}")
    coverage = info["coverage"]
    if coverage["warning"]:
        context.log.warning(coverage["warning"])
    return stage.output(
        RetrievalIndex(f.dir, f.version, chunks=info["chunks"]),
        {
            "chunks": info["chunks"],
            "chunks_by_kind": dg.MetadataValue.json(info["chunking"]["by_kind"]),
            "skipped_by_reason": dg.MetadataValue.json(info["chunking"]["skipped_by_reason"]),
            **coverage_metadata(coverage),
            "embedding_model": info["embedding_spec"],
            "embedding_dim": info["dim"],
            "index_mb": round(sum(p.stat().st_size for p in f.dir.rglob("*") if p.is_file()) / 2**20, 2),
            "latency_ms_p50": info.get("latency_ms_p50", 0.0),
            **numbers("gold_", recall),
            **_tuning_metadata(info.get("tuning")),
            **numbers("scope_", info.get("scope") or {}),
        },
    )


def _tuning_metadata(tuning: dict | None) -> dict:
    """Embedder tuning as the UI shows it: pairs by source, loss per epoch, time, and the untuned model's recall."""
    if not tuning:
        return {"embedder_tuned": False}
    return {"embedder_tuned": True, "tuning_pairs": tuning["pairs"],
            "tuning_pairs_by_source": dg.MetadataValue.json(tuning["pairs_by_source"]),
            "tuning_loss_by_epoch": dg.MetadataValue.json(tuning["loss_by_epoch"]),
            "tuning_seconds": tuning["seconds"], **numbers("untuned_gold_", tuning.get("untuned_recall") or {})}


@pipeline_asset(
    group_name=GROUP,
    kinds={"huggingface", "jsonl"},
    owners=["team:data"],
    description="Chat-formatted instruction samples from FAQ rows, chats, document chunks (the index's), optionally "
    "a teacher LLM's question/answer pairs per chunk (teacher.enabled; filtered, cached) and refusal examples; "
    "with retrieval on, each system message carries the chunks retrieval_index returns for the question (RAFT: "
    "the answer's own chunk in retrieval.oracle_share of samples, distractors only in the rest), in the template "
    "`serve` uses. Assistant targets never contain anonymization tags; deduplicated, length-filtered, "
    "gold-leak-guarded, split into train/eval. Saved as JSONL and as a Hugging Face dataset. Version: a hash of "
    "train.jsonl and eval.jsonl, which keys lora_adapter's checkpoints.",
)
def instruction_pairs(
    context: dg.AssetExecutionContext, settings: PipelineSettings, anonymized_corpus: AnonymizedCorpus,
    base_model: BaseModel, retrieval_index: RetrievalIndex,
) -> dg.Output[InstructionPairs]:
    from datasets import Dataset, DatasetDict

    from ..core.coverage import pairs_coverage
    from ..core.feedback import open_feedback_store
    from ..core.models import load_tokenizer

    stage = Stage(context, settings)
    cfg = stage.cfg
    policy = load_policy(cfg.path(cfg.policy_file))
    gold = load_gold(cfg.path(cfg.gold_file))
    records = read_jsonl(anonymized_corpus.records)
    # Reviewer corrections collected by `slm-pipeline serve` become training records, anonymized like the corpus;
    # a record whose anonymization leaves a detected value behind is left out.
    feedback: list[dict] = []
    store = open_feedback_store(cfg, create=False) if cfg.feedback.include_corrections else None
    if store is not None:  # the SQLite file or the Postgres database `serve` writes (feedback.database_url)
        with store:
            corrections = store.corrections_as_records()
        if corrections:
            feedback, fb_report = pipeline_anonymizer(cfg).anonymize_records(corrections)
            leaked = {x["record_id"] for x in fb_report.leaks}
            feedback = [r for r in feedback if r["id"] not in leaked]
            context.log.info(f"{len(feedback)} feedback corrections added ({len(leaked)} left out: PII leak check)")
    records = records + feedback
    tokenizer = load_tokenizer(base_model.dir)

    def count_tokens(messages: list[dict]) -> int:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    contextualize, trim_context, raft_report = None, None, {}
    if cfg.retrieval.enabled:
        from ..core.raft import contextualize as raft_context
        from ..core.retrieval import open_index

        index = open_index(retrieval_index.dir, cfg.retrieval)

        def contextualize(samples: list[dict]) -> list[dict]:
            out, report = raft_context(samples, index, policy, cfg.retrieval, cfg.train.seed)
            raft_report.update(report)
            return out

        def trim_context(sample: dict) -> dict | None:
            from ..core.retrieval import without_weakest_excerpt

            return without_weakest_excerpt(sample, index.by_id, policy.system_prompt, policy.company)

    pairs_cfg = cfg.pairs
    if pairs_cfg.include_refusals is None:  # auto: the scope classifier refuses when retrieval is on
        pairs_cfg = pairs_cfg.model_copy(update={"include_refusals": not cfg.retrieval.enabled})
    teacher = None
    if cfg.teacher.enabled:  # an LLM endpoint writes extra pairs per doc chunk; cached, so re-runs do not ask again
        from ..core.teacher import default_cache_file, open_teacher

        cache_file = cfg.path(cfg.teacher.cache_file) if cfg.teacher.cache_file else default_cache_file(
            cfg.path(cfg.artifacts_dir))
        teacher = open_teacher(cfg.teacher, cache_file, company=policy.company, log=context.log.info,
                               settings_file=cfg.settings_file)
    try:
        result = build_pairs(records, policy, gold, pairs_cfg, count_tokens=count_tokens, seed=cfg.train.seed,
                             teacher=teacher, contextualize=contextualize, trim_context=trim_context,
                             chunk_words=cfg.retrieval.chunk_words, overlap_words=cfg.retrieval.overlap_words)
    finally:
        if teacher is not None:
            teacher.close()
    result.report["retrieval_context"] = raft_report or None
    teacher_report = _teacher_report(teacher, result.report)
    result.report["teacher"] = teacher_report
    coverage = pairs_coverage(records[:len(records) - len(feedback)], result, cfg.retrieval.chunk_words,
                              cfg.retrieval.overlap_words, cfg.corpus.max_text_loss, pairs_cfg.include_docs,
                              pairs_cfg.include_chats)
    result.report["coverage"] = coverage
    train = [s for s in result.samples if s["split"] == "train"]
    evals = [s for s in result.samples if s["split"] == "eval"]
    with stage.folder(content=["train.jsonl", "eval.jsonl"], anonymized_corpus=anonymized_corpus.version,
                      base_model=base_model.version, retrieval_index=retrieval_index.version,
                      config=cfg.pairs.model_dump(), teacher=teacher_settings(cfg.teacher),
                      feedback_corrections=len(feedback)) as f:
        write_jsonl(f.tmp / "train.jsonl", train)
        write_jsonl(f.tmp / "eval.jsonl", evals)
        write_jsonl(f.tmp / "dropped.jsonl", result.dropped)
        (f.tmp / "report.json").write_text(json.dumps(result.report, indent=2))
        DatasetDict({"train": Dataset.from_list(train), "eval": Dataset.from_list(evals)}).save_to_disk(
            str(f.tmp / "hf_dataset")
        )
    rep = result.report
    context.log.info(f"{rep['n_train']} train / {rep['n_eval']} eval samples; dropped {rep['dropped']}; made "
                     f"shorter to fit: {rep['fitted']}; corpus text reaching a training sample: "
                     f"{coverage['training']['share']:.1%}, the index or a sample: {coverage['either']['share']:.1%}")
    if coverage["training"]["warning"]:
        context.log.warning(coverage["training"]["warning"])
    if teacher is not None:
        tr = teacher_report
        context.log.info(f"teacher: {tr['pairs_written']} pairs in the samples ({tr['pairs_proposed']} proposed, "
                         f"filtered {tr['filtered_by_reason'] or 'none'}, {tr['malformed']} malformed answers); "
                         f"cache {tr['cache_hits']} hits / {tr['cache_misses']} misses, {tr['requests']} requests")
    lengths = list(result.token_counts.values())
    return stage.output(
        InstructionPairs(f.dir, f.version, n_train=rep["n_train"], n_eval=rep["n_eval"]),
        {
            "train_samples": rep["n_train"],
            "eval_samples": rep["n_eval"],
            "dropped": sum(rep["dropped"].values()),
            "dropped_by_reason": dg.MetadataValue.json(rep["dropped"]),
            "fitted_by_reason": dg.MetadataValue.json(rep["fitted"]),
            "kept_by_source": dg.MetadataValue.json(rep["kept_by_source"]),
            **coverage_metadata(coverage["training"]),
            "text_share_index_or_training": coverage["either"]["share"],
            "gold_leaks_dropped": rep["gold_leaks_dropped"],
            "retrieval_context": dg.MetadataValue.json(raft_report or {"enabled": False}),
            "feedback_corrections": len(feedback),
            "teacher": dg.MetadataValue.json(teacher_report),
            **(numbers("teacher_", teacher_report) if teacher is not None else {}),
            **({"teacher_filtered_by_reason": dg.MetadataValue.json(teacher_report["filtered_by_reason"])}
               if teacher is not None else {}),
            **numbers("tokens_", rep["token_lengths"] or {}),
            "token_length_histogram": dg.MetadataValue.md(token_length_histogram_markdown(lengths)),
            "preview": md_table(
                [{"id": s["id"], "source": s["source"], "context": ", ".join(s.get("context_ids", [])),
                  "user": s["messages"][1]["content"][:80],
                  "assistant": s["messages"][2]["content"][:80]} for s in train[:6]]
            ),
        },
    )


def _teacher_report(teacher, report: dict) -> dict:
    """Metadata of the teacher's part in a build: pairs written, drops by reason, cache, requests."""
    if teacher is None:
        return {"enabled": False}
    stats = teacher.stats.as_dict()
    return {"enabled": True, "model": teacher.client.model, "url": teacher.client.url,
            "pairs_written": report["kept_by_source"].get("teacher", 0),
            "filtered_by_reason": {k.removeprefix("teacher_"): v for k, v in report["dropped"].items()
                                   if k.startswith("teacher_")},
            **{k: v for k, v in stats.items() if k != "filtered"}}


@dg.asset_check(asset=instruction_pairs, blocking=True, description="Every sample has the chat schema "
                "(system prompt first, alternating turns, ends with the assistant) and there are enough to train.")
def instruction_pairs_schema(settings: PipelineSettings,
                             instruction_pairs: InstructionPairs) -> dg.AssetCheckResult:
    cfg = settings.load()
    policy = load_policy(cfg.path(cfg.policy_file))
    problems = []
    for path in (instruction_pairs.train, instruction_pairs.eval):
        for s in read_jsonl(path):
            problems += [f"{s.get('id')}: {p}" for p in validate_sample(s, policy.system_prompt)]
    enough = instruction_pairs.n_train >= cfg.pairs.min_train_samples
    return dg.AssetCheckResult(
        passed=not problems and enough,
        metadata={"invalid_samples": len(problems), "train_samples": instruction_pairs.n_train,
                  "min_train_samples": cfg.pairs.min_train_samples,
                  "problems": dg.MetadataValue.json(problems[:20])},
    )


@dg.asset_check(asset=retrieval_index, description="At most corpus.max_text_loss of the FAQ and document text may be "
                "missing from the index's chunks (WARN: names the biggest losses; does not stop the run).")
def retrieval_index_text_coverage(retrieval_index: RetrievalIndex) -> dg.AssetCheckResult:
    info = json.loads((retrieval_index.dir / "index.json").read_text())
    return coverage_check(info["coverage"])


@dg.asset_check(asset=instruction_pairs, description="At most corpus.max_text_loss of the corpus text may reach no "
                "training sample (WARN: names the biggest losses and what to change; does not stop the run).")
def instruction_pairs_text_coverage(instruction_pairs: InstructionPairs) -> dg.AssetCheckResult:
    report = json.loads((instruction_pairs.dir / "report.json").read_text())
    return coverage_check(report["coverage"]["training"], either=report["coverage"]["either"])
