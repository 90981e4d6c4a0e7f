"""Curation of instruction samples: anonymization tags out of answers, quality filters, gold-leak guard, dedup.

core/pairs.py runs these in order over its candidates and reports every drop with a reason (see its docstring);
core/teacher.py reuses the word helpers and the tag pattern for its own filter pass. Never imports dagster.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable

import numpy as np

from slm_pipeline.config import PairsConfig

__all__ = [
    "PLACEHOLDER",
    "STOPWORDS",
    "GoldIndex",
    "MinHashLSH",
    "content_words",
    "dedup",
    "normalize",
    "prose",
    "quality_problem",
    "scrub_placeholders",
    "shingles",
    "word_list",
]

STOPWORDS = frozenset(
    "a about above after again against all am an and any are as at be because been before being below between "
    "both but by can could did do does doing down during each few for from further had has have having he her "
    "here hers him his how i if in into is it its itself just me more most my no nor not now of off on once only "
    "or other our out over own same she should so some such than that the their them then there these they this "
    "those through to too under until up very was we were what when where which while who whom why will with "
    "would you your yours".split()
)

_WORD = re.compile(r"[a-z0-9]+")
_MERSENNE = np.uint64((1 << 61) - 1)


# ---------------------------------------------------------------------------------------------- placeholders

# An anonymization tag as core/anonymize writes it: <PERSON_1>, <IP_ADDRESS_2>, ...
PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_\d+>")
_SELF_INTRO = re.compile(r"[,;]?\s*(?:this is|my name is|i am|i'm|it's)\s+<PERSON_\d+>(?:\s+(?:here|speaking))?"
                         r"|[,;]?\s*<PERSON_\d+>\s+(?:here|speaking)", re.IGNORECASE)
_VOCATIVE = re.compile(r"\s*,\s*<PERSON_\d+>(?=\s*(?:[.!?]|$))", re.MULTILINE)
_SIGN_OFF = re.compile(r"^\s*(?:(?:best|regards|kind regards|best regards|cheers|thanks|thank you|sincerely)\s*[,!.-]?"
                       r"\s*)?<PERSON_\d+>[\s.!]*$", re.IGNORECASE)
_SENTENCES = re.compile(r"(?<=[.!?])\s+")


def _scrub_answer(text: str) -> str:
    """The answer without anonymization tags: self-introductions ("this is <PERSON_2>"), vocatives ("Enjoy the
    ride, <PERSON_1>!" -> "Enjoy the ride!") and sign-off lines lose the name; any other sentence that still
    needs a tag, greetings included ("Hi <PERSON_1>, thanks for your message."), is dropped."""
    text = _SELF_INTRO.sub("", text)
    # "Best, <PERSON_2>" / "<PERSON_2>" alone on a line goes; "Enjoy the ride, <PERSON_1>!" -> "Enjoy the ride!"
    text = _VOCATIVE.sub("", "\n".join(line for line in text.split("\n") if not _SIGN_OFF.match(line)))
    kept = []
    for line in text.split("\n"):
        out = []
        for sent in _SENTENCES.split(line.strip().lstrip(",;.!? ")):
            if PLACEHOLDER.search(sent):
                # A greeting ("Hi <PERSON_1>!", "Hello <PERSON_1> from the support team.") goes: kept without
                # the name it taught answers that open with small talk; so does any other sentence needing a tag.
                continue
            out.append(sent)
        kept.append(" ".join(x for x in out if x.strip()))
    return re.sub(r"[ \t]{2,}", " ", re.sub(r"\n{3,}", "\n\n", "\n".join(kept))).strip()


def scrub_placeholders(sample: dict) -> dict:
    """`sample` with no anonymization tag in any assistant turn (see _scrub_answer). A turn left empty ends the
    conversation before its question; with no exchange left, messages is just the system message."""
    msgs = [sample["messages"][0]]
    turns = sample["messages"][1:]
    for i in range(0, len(turns) - 1, 2):
        user, answer = turns[i], turns[i + 1]
        if user["role"] != "user" or answer["role"] != "assistant":
            msgs += turns[i:]  # not a plain exchange: left to the schema check, which reports it
            break
        clean = answer["content"]
        if PLACEHOLDER.search(clean):
            clean = _scrub_answer(clean)
            if len(clean) < 2 or not any(ch.isalpha() for ch in clean):
                break
        msgs += [user, {**answer, "content": clean}]
    return {**sample, "messages": msgs}


# ---------------------------------------------------------------------------------------------- filters


def word_list(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def normalize(text: str) -> str:
    return " ".join(word_list(text))


def _contents(sample: dict, role: str) -> list[str]:
    return [m["content"] for m in sample["messages"] if m["role"] == role]


_CODE_BLOCK = re.compile(r"^\s*(```|~~~).*?^\s*\1[^\n]*$|`[^`\n]+`", re.MULTILINE | re.DOTALL)


def prose(text: str) -> str:
    """`text` without code (fenced blocks, `inline code`): commands and configs are no language."""
    return _CODE_BLOCK.sub(" ", text)


def quality_problem(sample: dict, cfg: PairsConfig) -> tuple[str, str] | None:
    users, answers = _contents(sample, "user"), _contents(sample, "assistant")
    if not users or not answers:
        return "no_exchange", "no user question followed by an assistant answer"
    if any(not c.strip() for c in users + answers):
        return "empty", "a message is empty"
    longest = max(len(a.strip()) for a in answers)
    if longest < cfg.min_answer_chars:
        return "answer_too_short", f"longest answer has {longest} chars < min_answer_chars={cfg.min_answer_chars}"
    if sum(c.isalpha() for c in " ".join(users)) < 3:
        return "garbage", "question has almost no letters"
    # Judged on the prose only: a code block is neither garbage nor a foreign language.
    text = prose("\n".join(users + answers))
    letters = sum(c.isalpha() for c in text)
    visible = sum(not c.isspace() for c in text)
    if letters < 0.5 * visible:
        return "garbage", f"mostly non-alphabetic ({letters} letters in {visible} characters)"
    if cfg.language_check:
        ascii_letters = sum(c.isascii() and c.isalpha() for c in text)
        if ascii_letters < 0.8 * letters:
            return "non_english", f"only {ascii_letters / letters:.0%} of letters are Latin a-z"
        words = word_list(text)
        stop_share = sum(w in STOPWORDS for w in words) / max(len(words), 1)
        # English prose is ~40% stopwords; other Latin-script languages share almost none with this list.
        if len(words) >= 12 and stop_share < 0.1:
            return "non_english", f"only {stop_share:.0%} English stopwords in {len(words)} words"
    return None


def content_words(text: str) -> frozenset[str]:
    # Stopwords make unrelated questions look alike ("how do I ..."); fall back to all words for tiny questions.
    words = word_list(text)
    return frozenset(w for w in words if w not in STOPWORDS) or frozenset(words)


class GoldIndex:
    """Finds training questions equal or near-equal (content-word Jaccard) to a gold eval question."""

    def __init__(self, questions: list[str], threshold: float):
        self.questions = questions
        self.threshold = threshold
        self.exact = {normalize(q): i for i, q in enumerate(questions)}
        self.sets = [content_words(q) for q in questions]
        self.by_word: dict[str, list[int]] = defaultdict(list)  # inverted index: only compare gold sharing a word
        for i, s in enumerate(self.sets):
            for w in s:
                self.by_word[w].append(i)

    def leak(self, sample: dict) -> tuple[str, str] | None:
        for question in _contents(sample, "user"):
            norm = normalize(question)
            if norm in self.exact:
                return "gold_leak", f"question equals gold question {self.questions[self.exact[norm]]!r}"
            words = content_words(question)
            shared = Counter(i for w in words for i in self.by_word.get(w, ()))
            for i, inter in shared.items():
                jaccard = inter / (len(words) + len(self.sets[i]) - inter)
                if jaccard >= self.threshold:
                    return "gold_leak", f"question {jaccard:.2f} similar to gold question {self.questions[i]!r}"
        return None


# ---------------------------------------------------------------------------------------------- dedup


def _dedup_text(sample: dict) -> str:
    # Refusal answers are identical by design; compare refusals by their question only.
    roles = ("user",) if sample["source"] == "refusal" else ("user", "assistant")
    return "\n".join(m["content"] for m in sample["messages"] if m["role"] in roles)


def shingles(text: str, k: int = 3) -> frozenset[str]:
    words = word_list(text)
    if len(words) <= k:
        return frozenset([" ".join(words)])
    return frozenset(" ".join(words[i:i + k]) for i in range(len(words) - k + 1))


class MinHashLSH:
    """Near-duplicate finder: MinHash signatures bucketed by LSH bands propose candidates, exact Jaccard on the
    shingle sets confirms them. Bands are chosen so a pair at the threshold is proposed with >= 99% chance."""

    def __init__(self, threshold: float, num_perm: int = 128, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, _MERSENNE, size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, _MERSENNE, size=num_perm, dtype=np.uint64)
        self.threshold = threshold
        self.rows = max(r for r in range(1, num_perm + 1)
                        if r == 1 or 1 - (1 - threshold ** r) ** (num_perm // r) >= 0.99)
        self.bands = num_perm // self.rows
        self.buckets: list[dict[bytes, list[int]]] = [defaultdict(list) for _ in range(self.bands)]
        self.keys: list[str] = []
        self.sets: list[frozenset[str]] = []

    def _band_keys(self, shingle_set: frozenset[str]) -> list[bytes]:
        hv = np.fromiter((zlib.crc32(s.encode()) for s in shingle_set), dtype=np.uint64, count=len(shingle_set))
        # Universal hashing a*x+b mod p; uint64 wrap-around is fine, it is still a fixed random permutation-like map.
        sig = ((np.outer(self.a, hv) + self.b[:, None]) % _MERSENNE).min(axis=1)
        r = self.rows
        return [sig[i * r:(i + 1) * r].tobytes() for i in range(self.bands)]

    def query(self, shingle_set: frozenset[str]) -> tuple[str, float] | None:
        """The first stored key whose set has Jaccard >= threshold with `shingle_set`, and that Jaccard."""
        candidates = sorted({i for band, key in enumerate(self._band_keys(shingle_set))
                             for i in self.buckets[band].get(key, ())})
        for i in candidates:
            other = self.sets[i]
            jaccard = len(shingle_set & other) / len(shingle_set | other)
            if jaccard >= self.threshold:
                return self.keys[i], jaccard
        return None

    def add(self, key: str, shingle_set: frozenset[str]) -> None:
        idx = len(self.keys)
        self.keys.append(key)
        self.sets.append(shingle_set)
        for band, bkey in enumerate(self._band_keys(shingle_set)):
            self.buckets[band][bkey].append(idx)


def dedup(samples: list[dict], threshold: float, drop: Callable) -> list[dict]:
    """Keep the first of each group of exact / near-duplicate samples (input order)."""
    first_seen: dict[str, str] = {}
    lsh = MinHashLSH(threshold)
    kept = []
    for s in samples:
        text = _dedup_text(s)
        norm = normalize(text)
        if norm in first_seen:
            drop(s, "exact_duplicate", f"same text as {first_seen[norm]}")
            continue
        first_seen[norm] = s["id"]
        sh = shingles(text)
        match = lsh.query(sh)
        if match:
            drop(s, "near_duplicate", f"Jaccard {match[1]:.2f} with {match[0]}")
            continue
        lsh.add(s["id"], sh)
        kept.append(s)
    return kept
