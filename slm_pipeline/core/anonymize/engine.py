"""Anonymizer: batched analysis, replacement, leak check; pipeline_anonymizer and the JSONL entry point."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from presidio_analyzer import (
    AnalyzerEngine,
    RecognizerResult,
)

from slm_pipeline.config import AnonymizeConfig
from slm_pipeline.core.anonymize.allow import AllowList, _drop_non_pii
from slm_pipeline.core.anonymize.analyzer import _NER_ENTITIES, build_analyzer
from slm_pipeline.core.anonymize.common import LANG, log
from slm_pipeline.core.anonymize.corpus_terms import discover_terms
from slm_pipeline.core.anonymize.findings import Finding, _propagate, _resolve
from slm_pipeline.core.anonymize.lexicons import _lexicon, _norm_word, activate, use_vocabulary
from slm_pipeline.core.anonymize.pseudonyms import _apply, _PseudonymMap
from slm_pipeline.core.anonymize.recognizers.address_blocks import extend_address_blocks
from slm_pipeline.core.anonymize.recognizers.name_structure import coordinated_names
from slm_pipeline.core.anonymize.recognizers.names import _WORD
from slm_pipeline.core.anonymize.recognizers.ner import _clean_person_span, _ner_segments
from slm_pipeline.core.anonymize.verification import (
    AnonymizationReport,
    find_leaks,
    format_leaks,
    load_canaries,
    record_texts,
)
from slm_pipeline.core.artifacts import write_jsonl

# ---------------------------------------------------------------------------------------------------------
# Anonymizer
# ---------------------------------------------------------------------------------------------------------

_MAX_CHUNK = 100_000


def _chunks(text: str) -> list[tuple[int, str]]:
    """Split very long texts at newlines so spaCy never sees more than _MAX_CHUNK characters."""
    if len(text) <= _MAX_CHUNK:
        return [(0, text)]
    out = []
    pos = 0
    while pos < len(text):
        end = min(pos + _MAX_CHUNK, len(text))
        if end < len(text):
            cut = text.rfind("\n", pos + _MAX_CHUNK // 2, end)
            if cut == -1:
                cut = text.rfind(" ", pos + _MAX_CHUNK // 2, end)
            end = cut + 1 if cut != -1 else end
        out.append((pos, text[pos:end]))
        pos = end
    return out


def _snippet(text: str, s: int, e: int, width: int = 60) -> str:
    """Window around a replacement, cut at whitespace so no token (or tag) is cut in half."""
    a = max(0, s - width)
    b = min(len(text), e + width)
    if a > 0:
        sp = text.find(" ", a, s)
        a = sp + 1 if sp != -1 else a
    if b < len(text):
        sp = text.rfind(" ", e, b)
        b = sp if sp != -1 else b
    return ("…" if a > 0 else "") + text[a:b].replace("\n", " ") + ("…" if b < len(text) else "")


class Anonymizer:
    """Batch PII detection (spaCy nlp.pipe + Presidio recognizers) and consistent pseudonymization."""

    def __init__(self, cfg: AnonymizeConfig | None = None, analyzer: AnalyzerEngine | None = None, *,
                 allow: Iterable[str] = ()):
        """`allow`: terms never treated as PII on top of cfg.allow (pipeline_anonymizer passes the company)."""
        self.cfg = cfg or AnonymizeConfig()
        self._allow_entries = [*getattr(self.cfg, "allow", []), *allow]
        self.allow = AllowList(self._allow_entries)
        self._vocabulary = use_vocabulary(getattr(self.cfg, "vocabulary_file", None))
        self.analyzer = analyzer or build_analyzer(self.cfg)
        self.entities = list(self.cfg.entities)
        self._engine = self.analyzer.nlp_engine
        self._nlp = self._engine.nlp[LANG]
        self._lex = _lexicon()
        ner_ents = set(self.entities) & _NER_ENTITIES
        # Gated NER: run spaCy's NER only on sentences with capitalized words that no other recognizer explained.
        # Only valid when PERSON is the sole NER-backed entity (other NER labels need every sentence).
        self._gated = bool(getattr(self.cfg, "ner_gating", True)) and ner_ents == {"PERSON"}
        if not ner_ents:
            self._gated = False
        self._faker = None
        if self.cfg.replacement == "fake":
            from faker import Faker

            self._faker = Faker("en_US")

    def version_inputs(self) -> dict:
        """What decides the output beyond `cfg` itself, for the anonymized corpus's version: every allowed term
        (the policy's company included) and the vocabulary file's content (editing it re-anonymizes)."""
        vocab = Path(self._vocabulary).read_text(encoding="utf-8") if self._vocabulary else None
        return {"allow": self._allow_entries, "vocabulary": vocab}

    # -- detection --------------------------------------------------------------------------------------

    def _analyze_raw(self, texts: list[str]) -> list[list[Finding]]:
        """Presidio analysis of every text in one pass.

        spaCy runs over all texts with nlp.pipe (batch_size from config). With `ner_gating` (default) the pipe
        is the tokenizer only and the statistical NER runs afterwards, again batched, on just the sentences
        that still contain an unexplained capitalized word; recall is the same as running NER everywhere.
        Texts longer than 100k characters are analyzed in chunks split at newlines."""
        activate(self._vocabulary)  # another Anonymizer in this process may have switched it
        pieces: list[tuple[int, int, str]] = []  # (text index, offset, chunk)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"text #{i} is {type(t).__name__}, expected str")
            if t.strip():
                pieces.extend((i, off, ch) for off, ch in _chunks(t))
        out: list[list[Finding]] = [[] for _ in texts]
        thr = self.cfg.score_threshold
        bs = self.cfg.batch_size
        if not self._gated:
            docs = self._nlp.pipe((p[2] for p in pieces), batch_size=bs)
        else:  # tokenizer only; NER runs below on the sentences that still need it
            docs = self._nlp.tokenizer.pipe((p[2] for p in pieces), batch_size=bs)
        ner_jobs: list[tuple[int, int, int]] = []  # (piece index, segment start, segment end)
        for k, ((i, off, chunk), doc) in enumerate(zip(pieces, docs, strict=False)):
            art = self._engine._doc_to_nlp_artifact(doc, LANG)
            results = self.analyzer.analyze(
                text=chunk, language=LANG, entities=self.entities, nlp_artifacts=art, score_threshold=thr
            )
            out[i].extend(
                Finding(r.entity_type, r.start + off, r.end + off, float(r.score), chunk[r.start:r.end],
                        (r.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_NAME_KEY, ""))
                for r in results
            )
            if self._gated:
                ner_jobs.extend((k, s, e) for s, e in _ner_segments(chunk, results, self._lex))
        if ner_jobs:
            seg_docs = self._nlp.pipe((pieces[k][2][s:e] for k, s, e in ner_jobs), batch_size=bs)
            for (k, s, _e), sdoc in zip(ner_jobs, seg_docs, strict=False):
                i, off, chunk = pieces[k]
                for ent in sdoc.ents:
                    if ent.label_ not in ("PERSON", "PER"):
                        continue
                    span = _clean_person_span(chunk, s + ent.start_char, s + ent.end_char, self._lex)
                    if span is None:
                        continue
                    a, b = span
                    out[i].append(Finding("PERSON", a + off, b + off, 0.85, chunk[a:b], "SpacyRecognizer"))
        return out

    def analyze_texts(self, texts: list[str]) -> list[list[Finding]]:
        """Findings per text (overlaps merged; repeated values found again within the same text); the texts are
        one corpus for brand-word discovery (corpus_terms.py)."""
        texts = list(texts)
        allow, _ = self._corpus_allow(texts)
        raw = self._analyze_raw(texts)
        return [self._finish([t], [fs], allow)[0] for t, fs in zip(texts, raw, strict=False)]

    def _corpus_allow(self, texts: list[str]) -> tuple[AllowList, dict[str, int]]:
        """The allow-list for this corpus: the configured one plus its brand words (anonymize.discover_terms),
        and those words with the records they occur in."""
        activate(self._vocabulary)
        terms = discover_terms(texts) if getattr(self.cfg, "discover_terms", True) else {}
        return (AllowList([*self._allow_entries, *terms]) if terms else self.allow), terms

    def _finish(self, texts: list[str], per_text: list[list[Finding]], allow: AllowList) -> list[list[Finding]]:
        keep_ips = getattr(self.cfg, "keep_non_public_ips", True)
        activate(self._vocabulary)
        # drop technical/brand shapes, grow address blocks, add names coordinated with a detected person
        per_text = [_drop_non_pii(t, fs, keep_ips) for t, fs in zip(texts, per_text, strict=False)]
        # (allowed terms go first too, so no name is coordinated with an allowed product)
        per_text = [allow.apply(t, coordinated_names(t, allow.apply(t, extend_address_blocks(t, fs))))
                    for t, fs in zip(texts, per_text, strict=False)]
        resolved = [_resolve(t, fs) for t, fs in zip(texts, per_text, strict=False)]
        if getattr(self.cfg, "propagate", True):
            resolved = _propagate(texts, resolved, self._lex)
            resolved = [_resolve(t, allow.apply(t, fs)) for t, fs in zip(texts, resolved, strict=False)]
        return resolved

    # -- replacement ------------------------------------------------------------------------------------

    def _seed(self, key: str) -> int:
        return int(hashlib.sha256(f"{getattr(self.cfg, 'seed', 0)}:{key}".encode()).hexdigest()[:12], 16)

    def anonymize_texts(self, texts: list[str]) -> list[str]:
        """Anonymize each text independently (its own pseudonym numbering)."""
        texts = list(texts)
        found = self.analyze_texts(texts)
        out = []
        for t, fs in zip(texts, found, strict=False):
            pmap = _PseudonymMap(self.cfg.replacement, self._faker, self._seed(t), (f.text for f in fs))
            out.append(_apply(t, fs, pmap)[0])
        return out

    def anonymize_records(
        self, records: list[dict], progress: Callable[[int, int], None] | None = None
    ) -> tuple[list[dict], AnonymizationReport]:
        """Anonymize `text` and/or every `messages[*].content` of each record with one pseudonym map per record.

        Returns new records (inputs are not modified) and a report whose leak check verified that no detected
        value and no canary survives in the output.
        """
        t0 = time.perf_counter()
        total = len(records)
        canaries = load_canaries(self.cfg.canaries_file)
        report = AnonymizationReport(n_records=total, n_canaries=len(canaries))
        allow, report.corpus_terms = self._corpus_allow([t for rec in records if isinstance(rec, dict)
                                                         for t in record_texts(rec)])
        counts: Counter = Counter()
        out_records: list[dict] = []
        chunk = max(self.cfg.batch_size * 4, 64)
        n_examples = getattr(self.cfg, "n_examples", 5)
        for b0 in range(0, total, chunk):
            batch = records[b0:b0 + chunk]
            # flatten every text of the batch: (record index in batch, slot) -> text
            slots: list[tuple[int, object]] = []
            texts: list[str] = []
            for ri, rec in enumerate(batch):
                if not isinstance(rec, dict):
                    raise TypeError(f"record #{b0 + ri} is {type(rec).__name__}, expected a dict")
                if isinstance(rec.get("text"), str):
                    slots.append((ri, "text"))
                    texts.append(rec["text"])
                msgs = rec.get("messages")
                if isinstance(msgs, list):
                    for mi, msg in enumerate(msgs):
                        if isinstance(msg, dict) and isinstance(msg.get("content"), str):
                            slots.append((ri, mi))
                            texts.append(msg["content"])
            raw = self._analyze_raw(texts)
            by_rec: dict[int, list[int]] = {}
            for k, (ri, _slot) in enumerate(slots):
                by_rec.setdefault(ri, []).append(k)
            for ri, rec in enumerate(batch):
                new = json.loads(json.dumps(rec, ensure_ascii=False, default=str))  # deep copy, JSON-safe
                ks = by_rec.get(ri, [])
                rtexts = [texts[k] for k in ks]
                found = self._finish(rtexts, [raw[k] for k in ks], allow)
                rid = str(rec.get("id", b0 + ri))
                raw_values = [(f.entity_type, f.text, f.source) for fs in found for f in fs]
                where = {"file": rec.get("source"), "line": rec.get("line")}
                pmap = _PseudonymMap(self.cfg.replacement, self._faker, self._seed(rid + "|" + "".join(rtexts)[:200]),
                                     (v[1] for v in raw_values))
                new_texts = []
                for k, t, fs in zip(ks, rtexts, found, strict=False):
                    anon, spans = _apply(t, fs, pmap)
                    new_texts.append(anon)
                    slot = slots[k][1]
                    if slot == "text":
                        new["text"] = anon
                    else:
                        new["messages"][slot]["content"] = anon
                    for f in fs:
                        counts[f.entity_type] += 1
                    if spans and len(report.examples) < n_examples:
                        snippet = _snippet(anon, *spans[0])
                        if not find_leaks([("x", snippet)], raw_values + canaries):
                            report.examples.append(snippet)
                report.n_values_checked += len(raw_values)
                report.leaks.extend(find_leaks(((rid, t, where) for t in new_texts), raw_values + canaries))
                report.n_texts += len(rtexts)
                out_records.append(new)
            if progress:
                progress(min(b0 + len(batch), total), total)
        # one leak entry per (record, type, value) is enough for the report
        seen = set()
        dedup = []
        for leak in report.leaks:
            k = (leak["record_id"], leak["type"], leak["value"], leak["found_by"])
            if k not in seen:
                seen.add(k)
                dedup.append(leak)
        report.leaks = dedup
        report.entity_counts = dict(sorted(counts.items()))
        report.seconds = round(time.perf_counter() - t0, 3)
        report.texts_per_second = round(report.n_texts / report.seconds, 1) if report.seconds > 0 else 0.0
        if report.leaks:
            log.warning("%s", format_leaks(report.leaks))
        return out_records, report

    def gazetteer_contains(self, name: str) -> bool:
        """True if every token of `name` is in the first/last-name gazetteer (for generalization metrics)."""
        toks = [_norm_word(w.rstrip(".")) for w in _WORD.findall(name)]
        return bool(toks) and all(self._lex.is_name(t) for t in toks)


def pipeline_anonymizer(cfg) -> Anonymizer:
    """The corpus anonymizer as the pipeline runs it, from a PipelineConfig: `cfg.anonymize`, with the policy's
    company/product name allowed (it is never a person) and canaries_file/vocabulary_file resolved against the
    project root."""
    from slm_pipeline.core.policy import load_policy

    policy_path = cfg.path(cfg.policy_file)
    allow = [load_policy(policy_path).company] if policy_path.exists() else []
    acfg = cfg.anonymize
    for key in ("canaries_file", "vocabulary_file"):
        if getattr(acfg, key):
            acfg = acfg.model_copy(update={key: str(cfg.path(getattr(acfg, key)))})
    return Anonymizer(acfg, allow=allow)


# ---------------------------------------------------------------------------------------------------------
# JSONL entry point (used by the CLI)
# ---------------------------------------------------------------------------------------------------------


def anonymize_jsonl(in_path: str | Path, out_path: str | Path, cfg: AnonymizeConfig | None = None,
                    anonymizer: Anonymizer | None = None) -> dict:
    """Each line `{"text": ...}` -> the same object with `text` anonymized, same order, written atomically.

    Returns the AnonymizationReport as a JSON-ready dict (entity counts, throughput, leak check). A malformed
    line raises ValueError naming `file:line`; nothing is written then."""
    in_path = Path(in_path)
    records: list[dict] = []
    with open(in_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{in_path}:{lineno}: malformed JSON: {e.msg}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{in_path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            if not isinstance(obj.get("text"), str):
                raise ValueError(f"{in_path}:{lineno}: missing string field 'text'")
            records.append(obj)
    anon = anonymizer or Anonymizer(cfg or AnonymizeConfig())
    out, report = anon.anonymize_records(records)
    write_jsonl(Path(out_path), out)
    return report.to_dict()
