"""Findings: overlap resolution, value matching (same regexes for replacement and leak check), propagation."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import regex as re

from slm_pipeline.core.anonymize.common import ALNUM_TYPES, DIGIT_TYPES
from slm_pipeline.core.anonymize.lexicons import _TITLES, _Lexicon, _lexicon, _norm_word, _rx
from slm_pipeline.core.anonymize.recognizers.names import _WORD

# ---------------------------------------------------------------------------------------------------------
# Findings, overlap resolution, propagation
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    entity_type: str
    start: int
    end: int
    score: float
    text: str
    source: str = ""  # recognizer that found it (named in leak reports)


def _resolve(text: str, cands: list[Finding]) -> list[Finding]:
    """Merge overlapping detections into single spans.

    Overlapping spans form a cluster; the cluster keeps the union of their characters (so nothing detected
    leaks) and the type of the best member: among members covering >= 80% of the union, the highest score;
    otherwise the highest score overall. An address containing a postcode or a street name that NER called a
    person is therefore one STREET_ADDRESS.
    """
    if not cands:
        return []
    cands = sorted(cands, key=lambda f: (f.start, -f.end))
    clusters: list[list[Finding]] = []
    end = -1
    for f in cands:
        if clusters and f.start < end:
            clusters[-1].append(f)
            end = max(end, f.end)
        else:
            clusters.append([f])
            end = f.end
    out = []
    for cl in clusters:
        s = min(f.start for f in cl)
        e = max(f.end for f in cl)
        union = e - s
        whole = [f for f in cl if f.start == s and f.end == e and f.score >= 0.5]
        big = [f for f in cl if (f.end - f.start) >= 0.8 * union]
        best = max(whole or big or cl, key=lambda f: (f.score, f.end - f.start))
        score = max(f.score for f in cl)
        out.append(Finding(best.entity_type, s, e, round(score, 3), text[s:e], best.source))
    return out


def _value_key(etype: str, value: str) -> str:
    if etype in DIGIT_TYPES:
        d = _rx(r"\D").sub("", value)
        return d if len(d) >= 6 else _norm_ws(value)
    if etype in ALNUM_TYPES:
        return _rx(r"[\W_]").sub("", value).upper()
    return _norm_ws(value)


def _norm_ws(s: str) -> str:
    return _rx(r"\s+").sub(" ", s.replace("’", "'")).strip().casefold()


@lru_cache(maxsize=20_000)
def _occurrence_regex(value: str, case_sensitive: bool = False) -> re.Pattern | None:
    value = value.strip()
    if len(value) < 3:
        return None
    parts = [re.escape(p) for p in value.split()]
    body = r"\s+".join(parts)
    pre = r"(?<![\w])" if value[0].isalnum() else ""
    post = r"(?![\w])" if value[-1].isalnum() else ""
    return re.compile(pre + body + post, 0 if case_sensitive else re.I)


# A one-word name inside a path, URL, option or identifier ("~/.local/state/syncthing", "--mark", "maria.cfg") is
# not that name in prose. Replacement (propagation) and the leak check share this matcher so they always agree.
_TECH_PRE = r"(?<![\w/\\~@.:=%$]|\w-|--)"
_TECH_POST = r"(?![\w/\\@]|[.:=\-][\w/])"


@lru_cache(maxsize=20_000)
def _single_name_regex(word: str, case_sensitive: bool) -> re.Pattern:
    return re.compile(_TECH_PRE + re.escape(word) + _TECH_POST, 0 if case_sensitive else re.I)


@lru_cache(maxsize=1)
def _common_english_names() -> frozenset[str]:
    """en_US first/last names: dictionary entries that are names first ("Maria", "John"), unlike "Server"."""
    from faker.providers.person.en_US import Provider

    return frozenset(n.lower() for n in [*Provider.first_names, *Provider.last_names])


def _value_regex(etype: str, value: str) -> re.Pattern | None:
    """How further occurrences of a detected value are found, for propagation and for the leak check alike.

    One-word names match as prose words only (not inside paths/identifiers); a word from the name lists that is
    no everyday word ("Maria", "MARIA", "maria") in any case, any other word ("Mark", "Server", "Syncthing")
    only as written where it was detected (so a mistaken detection does not spread to "config" or "syncthing")."""
    value = value.strip().replace("’", "'")
    if etype == "PERSON" and len(value) >= 3 and " " not in value and value[0].isalnum() and value[-1].isalnum():
        lex = _lexicon()
        low = _norm_word(value)
        any_case = lex.is_name(low) and low not in lex.narrow_common and low not in lex.ambiguous and \
            low not in lex.places and (low not in lex.dictionary or low in _common_english_names())
        return _single_name_regex(value, not any_case)
    return _occurrence_regex(value)


def _propagate(texts: list[str], per_text: list[list[Finding]], lex: _Lexicon) -> list[list[Finding]]:
    """Find further occurrences of detected values in the same group of texts (a record's turns).

    Multi-word person names also propagate their distinctive tokens ("Maria Lopez" -> later "Thanks Maria").
    """
    values: dict[tuple[str, str], Finding] = {}
    for fs in per_text:
        for f in fs:
            values.setdefault((f.entity_type, f.text.strip()), f)
            if f.entity_type == "PERSON":
                for w in _WORD.findall(f.text):
                    w = w.rstrip(".")
                    lw = _norm_word(w)
                    if len(w) >= 3 and w[:1].isupper() and lw not in lex.narrow_common and \
                            not _rx(rf"(?:{_TITLES})").fullmatch(w) and lw not in lex.places:
                        values.setdefault(("PERSON", w), f)
    if not values:
        return per_text
    lowered = [t.lower().replace("’", "'") for t in texts]
    found_low = [f.text.lower().replace("’", "'") for fs in per_text for f in fs]
    pats = []
    for (etype, val), f in values.items():
        lv = val.lower().replace("’", "'")
        if sum(t.count(lv) for t in lowered) <= sum(x.count(lv) for x in found_low):
            continue  # every occurrence is already inside a detection
        rx = _value_regex(etype, val)
        if rx is not None:
            pats.append((etype, rx, f.score, f.source))
    out = []
    for text, fs in zip(texts, per_text, strict=False):
        new = list(fs)
        taken = [(f.start, f.end) for f in fs]
        for etype, rx, score, source in pats:
            for m in rx.finditer(text):
                s, e = m.span()
                if any(s < te and ts < e for ts, te in taken):
                    continue
                new.append(Finding(etype, s, e, round(score * 0.95, 3), text[s:e], source))
                taken.append((s, e))
        out.append(sorted(new, key=lambda f: f.start))
    return out


