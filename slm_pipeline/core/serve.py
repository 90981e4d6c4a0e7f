"""`slm-pipeline serve`: an OpenAI-compatible HTTP API over the promoted model (or a model folder / GGUF file, or
an upstream OpenAI-compatible engine), with retrieval grounding, auth, limits, feedback capture and an
anonymized question log. This module assembles a replica from the pipeline config (`build_server`); the HTTP
stack is in core/serving/ (FastAPI + uvicorn; endpoints and error codes in core/serving/app.py).

Why FastAPI on uvicorn: an asyncio server holds many slow clients (streams, queued requests) without a thread
each, /health and auth errors are answered on the event loop while generation runs in a worker thread (or at
the upstream engine), and it is the stack vLLM's own OpenAI server uses.

Generation: in-process (transformers for a model folder, llama.cpp for a .gguf), at most `serve.max_concurrent`
at once (1 in-process) with up to `serve.max_queue` waiting (more get 429 + Retry-After; waiting longer than
`serve.queue_timeout_s` gets 503); or forwarded to `serve.upstream_url` (vLLM, llama-server, Ollama).

Retrieval (retrieval.enabled, the default): each question is searched in the retrieval index and the hits go
into the system message, the template the model was fine-tuned on (core/grounding.py); an off-topic question
gets the policy refusal without generation. Responses carry an extra top-level `sources` field.

Replicas are stateless: several `serve` processes behind a load balancer share one feedback store
(`feedback.database_url`, Postgres); feedback for an answer may reach any replica.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from slm_pipeline.config import PipelineConfig
from slm_pipeline.core.engines import (  # noqa: F401 - engines are re-exported for callers of serve
    ApiError,
    ChatEngine,
    Generation,
    LlamaCppChatEngine,
    _TrimmedStream,
    load_engine,
)
from slm_pipeline.core.feedback import open_feedback_store
from slm_pipeline.core.grounding import load_grounder
from slm_pipeline.core.promotion import promoted_model_path  # the pointer lives in one module
from slm_pipeline.core.serving.backends import LocalBackend
from slm_pipeline.core.serving.questions import QuestionLog
from slm_pipeline.core.serving.server import ChatServer
from slm_pipeline.core.serving.upstream import API_KEY_ENV, UpstreamBackend

__all__ = [
    "ApiError",
    "ChatEngine",
    "ChatServer",
    "LlamaCppChatEngine",
    "QuestionLog",
    "build_server",
    "promoted_model_path",
]

log = logging.getLogger(__name__)




def build_server(cfg: PipelineConfig, model_path: str | Path | None = None, *, host: str | None = None,
                 port: int | None = None, token: str | None = None, log_questions: bool | None = None,
                 runtime: str | None = None, index_dir: str | Path | None = None) -> ChatServer:
    """Everything `slm-pipeline serve` needs: the generation backend (the promoted model by default, or
    serve.upstream_url), policy system prompt, feedback store (feedback.database_url or the SQLite file), retrieval
    and the question log with the pipeline's anonymizer. Binds the socket; call serve_forever() or start()."""
    from .policy import load_policy

    upstream = cfg.serve.upstream_url
    if upstream and model_path:
        raise ValueError(f"--model {model_path} and serve.upstream_url ({upstream}) both say where answers come "
                         "from; pass one (the upstream engine loads the model itself)")
    if cfg.serve.threads:
        import torch

        torch.set_num_threads(cfg.serve.threads)
    policy_file = cfg.path(cfg.policy_file)
    system_prompt = load_policy(policy_file).system_prompt if policy_file.exists() else None
    grounder = load_grounder(cfg, index_dir)
    if upstream:
        backend = UpstreamBackend(upstream, cfg.serve.upstream_model or cfg.serve.model_name, system_prompt,
                                  api_key=os.environ.get(API_KEY_ENV) or None, timeout_s=cfg.serve.upstream_timeout_s)
    else:
        model = Path(model_path) if model_path else promoted_model_path(cfg)
        engine = load_engine(model, system_prompt, runtime or cfg.serve.runtime)
        if grounder is not None:
            engine.ground_with(grounder.refusal_text, cfg.retrieval.copy_bias)
        backend = LocalBackend(engine)
    store = open_feedback_store(cfg)
    qlog = None
    if cfg.feedback.log_questions if log_questions is None else log_questions:
        def make_anonymizer():
            from .anonymize import pipeline_anonymizer

            return pipeline_anonymizer(cfg)  # the corpus's setup: company allowed, vocabulary/canaries resolved

        qlog = QuestionLog(store, make_anonymizer)
    try:
        return ChatServer(backend, store, cfg.serve, host=host, port=port, token=token, question_log=qlog,
                          grounder=grounder)
    except BaseException:
        if qlog is not None:
            qlog.close()
        store.close()
        raise
