"""The optional teacher: an LLM behind any OpenAI-compatible endpoint writes question/answer pairs per document chunk.

    teacher = open_teacher(cfg.teacher, cache_file, company=policy.company, log=print)
    result = build_pairs(records, policy, gold, cfg.pairs, teacher=teacher)   # samples with source "teacher"
    teacher.stats.as_dict()                                                   # requests, cache hits, drops
    teacher.close()

Per chunk: the prompt (pairs_prompt.j2) asks for up to teacher.pairs_per_chunk pairs as JSON (client.py sends it
at temperature 0, retrying with backoff); the answer is cached on disk by (model, prompt, chunk, N) (cache.py),
so a re-run with the same inputs sends no request; it is parsed leniently (prompt.py), and every pair goes
through the filter pass (filters.py). A rejected pair comes back as a TeacherPair with `drop` set, so
build_pairs reports it as "teacher_<reason>" next to its own drops. Chunks missing from the cache are asked
teacher.concurrency at a time, with a progress line (% and ETA). An endpoint that cannot be used stops the build
with TeacherUnavailable naming the URL and the fix. Never imports dagster.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from slm_pipeline.config import TeacherConfig

from ..pairs import TeacherPair, TeacherStop
from ..progress import Progress
from .cache import AnswerCache, cache_key
from .client import ChatClient, TeacherRejected, TeacherResponseError, TeacherUnavailable
from .filters import PairFilter
from .prompt import TEMPLATE_FILE, PromptTemplate, parse_pairs

__all__ = ["LLMTeacher", "TeacherStats", "TeacherUnavailable", "default_cache_file", "open_teacher", "teacher_settings",
           "AnswerCache", "ChatClient", "PairFilter", "PromptTemplate", "parse_pairs"]


@dataclass
class TeacherStats:
    chunks: int = 0  # chunks asked about
    cache_hits: int = 0  # answered from the cache
    cache_misses: int = 0  # had to be asked
    requests: int = 0  # HTTP requests sent, retries included
    malformed: int = 0  # answers with no JSON pairs in them
    rejected: int = 0  # requests the endpoint refused (HTTP 400/413/422)
    pairs_proposed: int = 0  # pairs the model wrote (up to pairs_per_chunk per chunk)
    pairs_passed_filter: int = 0
    filtered: dict[str, int] = field(default_factory=dict)  # filter drop reason -> pairs

    def as_dict(self) -> dict:
        return asdict(self)


class LLMTeacher:
    """The `Teacher` build_pairs takes: `teacher(title, section)` for one chunk, `teacher.many(chunks)` for all."""

    def __init__(self, client: ChatClient, cache: AnswerCache, template: PromptTemplate | None = None,
                 company: str = "the company", pairs_per_chunk: int = 3, concurrency: int = 4,
                 pair_filter: PairFilter | None = None, log: Callable[[str], None] | None = None):
        self.client, self.cache, self.company = client, cache, company
        self.template = template or PromptTemplate.load()
        self.n, self.concurrency = pairs_per_chunk, concurrency
        self.filter = pair_filter or PairFilter()
        self.log = log
        self.stats = TeacherStats()
        self._filtered: Counter[str] = Counter()

    def __call__(self, title: str, section: str) -> list[TeacherPair]:
        (answer,) = self.many([(title, section)])
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def many(self, chunks: list[tuple[str, str]]) -> list[list[TeacherPair] | Exception]:
        """Pairs (some marked dropped by the filter) or the error, per (title, section), in order."""
        messages = [self.template.messages(self.company, title, section, self.n) for title, section in chunks]
        keys = [cache_key(self.client.model, m, self.client.max_tokens) for m in messages]
        answers: dict[str, str | Exception] = {}
        for k in dict.fromkeys(keys):
            if (hit := self.cache.get(k)) is not None:
                answers[k] = hit
        todo = [k for k in dict.fromkeys(keys) if k not in answers]  # each distinct question asked once
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        misses = sum(k not in answers for k in keys)
        self.stats.chunks += len(chunks)
        self.stats.cache_hits += len(keys) - misses
        self.stats.cache_misses += misses
        if todo:
            self._ask(todo, [messages[first[k]] for k in todo], answers, len(chunks))
        self.stats.requests = self.client.requests
        out = [self._pairs(answers[k], section) for k, (_, section) in zip(keys, chunks, strict=True)]
        self.stats.filtered = dict(self._filtered)
        return out

    def _ask(self, keys: list[str], messages: list[list[dict]], answers: dict, n_chunks: int) -> None:
        if self.log:
            self.log(f"teacher: asking {self.client.model} at {self.client.url} about {len(keys)} of {n_chunks} "
                     f"chunks ({n_chunks - len(keys)} answered from the cache), {self.concurrency} at a time")
        progress = Progress(len(keys), self.log, "teacher: chunks answered")
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="teacher")
        try:
            pending = {pool.submit(self.client.complete, m): k for k, m in zip(keys, messages, strict=True)}
            while pending:
                done, _ = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in done:
                    k = pending.pop(fut)
                    try:
                        text = fut.result()
                    except TeacherStop:
                        raise
                    except TeacherRejected as e:
                        self.stats.rejected += 1
                        answers[k] = e
                    else:
                        self.cache.put(k, self.client.model, text)  # here, in one thread: SQLite wants that
                        answers[k] = text
                    progress.step()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self.stats.requests = self.client.requests

    def _pairs(self, answer: str | Exception, section: str) -> list[TeacherPair] | Exception:
        if isinstance(answer, Exception):
            return answer
        try:
            pairs, _ = parse_pairs(answer)
        except TeacherResponseError as e:
            self.stats.malformed += 1
            return e
        out = []
        for q, a in pairs[:self.n]:
            rejected = self.filter.check(q, a, section)
            if rejected:
                self._filtered[rejected[0]] += 1
            out.append(TeacherPair(q, a, rejected))
        self.stats.pairs_proposed += len(out)
        self.stats.pairs_passed_filter += sum(p.drop is None for p in out)
        return out

    def close(self) -> None:
        self.client.close()
        self.cache.close()


def default_cache_file(artifacts_dir: Path) -> Path:
    return Path(artifacts_dir) / "teacher_cache.sqlite"


def teacher_settings(cfg: TeacherConfig) -> dict:
    """What decides the teacher's pairs, for the asset manifest: endpoint, model, prompt, N, filter."""
    if not cfg.enabled:
        return {"enabled": False}
    return {"enabled": True, "url": cfg.url, "model": cfg.model, "pairs_per_chunk": cfg.pairs_per_chunk,
            "prompt_sha": PromptTemplate.load().sha, "max_answer_words": cfg.max_answer_words,
            "min_grounding": cfg.min_grounding}


def open_teacher(cfg: TeacherConfig, cache_file: str | Path, company: str = "the company",
                 log: Callable[[str], None] | None = None, settings_file: str = "slm_pipeline.yaml",
                 backoff_s: float = 1.0) -> LLMTeacher:
    """The teacher the `teacher` settings describe (cfg.enabled is the caller's to check)."""
    if not cfg.url or not cfg.model:
        raise TeacherUnavailable(f"teacher.url and teacher.model must be set in {settings_file} to use a teacher")
    api_key = None
    if cfg.api_key_env:
        api_key = os.environ.get(cfg.api_key_env)
        if not api_key:
            raise TeacherUnavailable(
                f"teacher.api_key_env in {settings_file} names the environment variable ${cfg.api_key_env}, which "
                "is not set: export it with the endpoint's API key, or clear teacher.api_key_env for a local server")
    client = ChatClient(cfg.url, cfg.model, api_key, cfg.timeout_s, cfg.max_retries, backoff_s=backoff_s,
                        fix_hint=f"teacher.url in {settings_file}")
    return LLMTeacher(client, AnswerCache(cache_file), PromptTemplate.load(TEMPLATE_FILE), company,
                      cfg.pairs_per_chunk, cfg.concurrency, PairFilter(cfg.max_answer_words, cfg.min_grounding), log)
