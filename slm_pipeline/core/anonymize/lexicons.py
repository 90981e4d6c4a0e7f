"""Word lists and the name/dictionary lexicon the recognizers share.

Generic lists ship as package data (data/lexicon.yaml); the domain vocabulary (product and trade words that are
capitalized but never people, e.g. a bike-share's "Day Pass", "Dock", "Helmet") is configuration:
AnonymizeConfig.vocabulary_file, default assets/anonymize_vocabulary.yaml."""

from __future__ import annotations

import importlib
import pkgutil
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import regex as re
import yaml

from slm_pipeline.core.anonymize.common import DEFAULT_SPACY_MODEL, log

_DATA = yaml.safe_load((Path(__file__).parent / "data" / "lexicon.yaml").read_text(encoding="utf-8"))


def _words(key: str, doc: dict | None = None) -> list[str]:
    """A list from the YAML: whitespace-separated words (folded string) or a list of phrases."""
    v = (_DATA if doc is None else doc).get(key) or []
    return v.split() if isinstance(v, str) else [str(x) for x in v]


def _alt(phrases: list[str]) -> str:
    """Literal phrases as a regex alternation, in file order."""
    return "|".join(re.escape(p) for p in phrases)


_CURATED_COMMON = frozenset(_words("common_words"))
_HEAD_NOUNS = frozenset(_words("head_nouns"))
_PLACES = frozenset(_words("places"))
_US_STATES = set(_words("us_states"))
_US_STATE_NAMES = _alt(sorted(_words("us_state_names"), key=len, reverse=True))
_COUNTRY_NAMES = _alt(_words("country_names"))
_NAME_PARTICLES = set(_words("name_particles"))
_TITLE_LIST = _words("titles")
_TITLES = _alt(_TITLE_LIST)
_NAME_SUFFIXES = _alt(_words("name_suffixes"))
_STREET_SUFFIX_WORDS = _words("street_suffix_words")
_STREET_SUFFIX_ABBR = _words("street_suffix_abbr")
# Suffixes that are also ordinary product/transport words: need a non-common street name word.
_RISKY_SUFFIXES = set(_words("risky_street_suffixes"))
_SUFFIX_ALT = "|".join(sorted(set(_STREET_SUFFIX_WORDS) | set(_STREET_SUFFIX_ABBR), key=len, reverse=True))
_SURNAME_HEADS = set(_words("surname_heads"))
_DETERMINERS = set(_words("determiners"))
_PLACE_PREFIXES = set(_words("place_prefixes"))
_UNIT_TYPES = set(_words("systemd_unit_types"))


# ---------------------------------------------------------------------------------------------------------
# Domain vocabulary (configuration)
# ---------------------------------------------------------------------------------------------------------

_VOCAB_KEYS = ("common_words", "head_nouns")
_ACTIVE_VOCABULARY: str | None = None


def load_vocabulary(path: str | Path) -> tuple[frozenset[str], frozenset[str]]:
    """(common words, head nouns) of a domain vocabulary YAML, lower-cased; errors name the file and key."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: not valid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise ValueError(f"{p}: expected a mapping with keys {', '.join(_VOCAB_KEYS)}")
    unknown = set(doc) - set(_VOCAB_KEYS)
    if unknown:
        raise ValueError(f"{p}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(_VOCAB_KEYS)}")
    return tuple(frozenset(w.lower() for w in _words(k, doc)) for k in _VOCAB_KEYS)  # type: ignore[return-value]


def use_vocabulary(path: str | Path | None) -> str | None:
    """Select the domain vocabulary that `_lexicon()` includes and return its key for `activate`. The setting is
    process-wide because the recognizers, propagation and the leak check must agree on which words are never
    names; an Anonymizer re-activates its own before each run. A missing file is a warning (generic lists only),
    so running from another directory degrades precision instead of failing."""
    resolved = None
    if path:
        p = Path(path).expanduser().resolve()
        if p.exists():
            resolved = str(p)
            load_vocabulary(resolved)  # fail on a malformed file now, not mid-run
        else:
            log.warning("anonymize vocabulary_file %s not found; using the built-in word lists only", path)
    activate(resolved)
    return resolved


def activate(key: str | None) -> None:
    global _ACTIVE_VOCABULARY
    _ACTIVE_VOCABULARY = key


def active_vocabulary() -> str | None:
    return _ACTIVE_VOCABULARY


@cache
def _rx(pattern: str, flags: int = 0) -> re.Pattern:
    """Compiled-pattern cache (the regex module's own cache lookup is slow on hot paths)."""
    return re.compile(pattern, flags)


def _norm_word(w: str) -> str:
    return w.lower().replace("’", "'")


def _strip_accents(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


_LATIN_NAME = re.compile(r"^[\p{Latin}'’\-. ]+$")


@lru_cache(maxsize=1)
def _name_gazetteer() -> tuple[frozenset[str], frozenset[str]]:
    """(first names, last names) from all of Faker's Latin-script person providers, lower-cased."""
    import faker.providers.person as person_pkg

    first: set[str] = set()
    last: set[str] = set()
    for mod in pkgutil.iter_modules(person_pkg.__path__):
        try:
            prov = importlib.import_module(f"faker.providers.person.{mod.name}").Provider
        except Exception:  # pragma: no cover - a broken locale must not break anonymization
            continue
        for attr in dir(prov):
            if attr.startswith("_") or "name" not in attr:
                continue
            is_first = attr.startswith("first") or "first_name" in attr or "romanized" in attr and "first" in attr
            is_last = attr.startswith("last") or "last_name" in attr or attr.endswith("last_names")
            if not (is_first or is_last):
                continue
            vals = getattr(prov, attr)
            if isinstance(vals, dict):
                vals = list(vals.keys())
            if not isinstance(vals, (list, tuple)):
                continue
            target = first if is_first else last
            for v in vals:
                if not isinstance(v, str) or not _LATIN_NAME.match(v):
                    continue
                for part in _rx(r"[\s\-]+").split(v.strip()):
                    part = part.strip(".")
                    if len(part) < 2 or part.lower() in _NAME_PARTICLES:
                        continue
                    low = _norm_word(part)
                    target.add(low)
                    target.add(_strip_accents(low))
    return frozenset(first), frozenset(last - first)


@lru_cache(maxsize=1)
def _wordnet_words(model_name: str = DEFAULT_SPACY_MODEL) -> frozenset[str]:
    """English dictionary words from the spaCy model's lemmatizer index (WordNet), lower-cased."""
    return _wordnet_pos(model_name)[0]


@lru_cache(maxsize=1)
def _wordnet_non_nouns(model_name: str = DEFAULT_SPACY_MODEL) -> frozenset[str]:
    """Dictionary verbs/adjectives/adverbs ("mark", "sunny", "grace"): a name that is one of these is ambiguous,
    while noun-only entries ("maria", "paris") are usually proper names."""
    return _wordnet_pos(model_name)[1]


@lru_cache(maxsize=1)
def _wordnet_pos(model_name: str = DEFAULT_SPACY_MODEL) -> tuple[frozenset[str], frozenset[str]]:
    try:
        import spacy
        from spacy.lookups import Lookups

        base = spacy.util.get_package_path(model_name)
        paths = list(base.glob("*/lemmatizer/lookups")) + list(base.glob("lemmatizer/lookups"))
        if not paths:
            return frozenset(), frozenset()
        idx = Lookups().from_disk(paths[0]).get_table("lemma_index")
        words: set[str] = set()
        non_nouns: set[str] = set()
        for pos in ("noun", "verb", "adj", "adv"):
            ws = {w for w in idx.get(pos, []) if w.isalpha()}
            words |= ws
            if pos != "noun":
                non_nouns |= ws
        return frozenset(words), frozenset(non_nouns)
    except Exception:  # pragma: no cover
        log.warning("could not load WordNet index from %s; using the built-in word lists only", model_name)
        return frozenset(), frozenset()


@dataclass(frozen=True)
class _Lexicon:
    first: frozenset[str]
    last: frozenset[str]
    narrow_common: frozenset[str]   # frequent English words incl. support vocabulary
    broad_common: frozenset[str]    # + dictionary words that are not names
    heads: frozenset[str]
    places: frozenset[str]
    stop: frozenset[str]
    ambiguous: frozenset[str]       # names that are also everyday words ("Mark", "Grace", "Will", "Young")
    dictionary: frozenset[str]      # every WordNet lemma (names included)

    def is_name(self, low: str) -> bool:
        return low in self.first or low in self.last


def _lexicon() -> _Lexicon:
    """The lexicon with the active domain vocabulary (see use_vocabulary)."""
    return _lexicon_for(_ACTIVE_VOCABULARY)


@lru_cache(maxsize=4)
def _lexicon_for(vocabulary: str | None) -> _Lexicon:
    from faker.providers.lorem.en_US import Provider as LoremProvider
    from spacy.lang.en.stop_words import STOP_WORDS

    domain_common, domain_heads = load_vocabulary(vocabulary) if vocabulary else (frozenset(), frozenset())
    first, last = _name_gazetteer()
    stop = frozenset(w.lower() for w in STOP_WORDS) | {"im", "i'm", "ive", "dont", "cant", "thats", "its"}
    narrow = _CURATED_COMMON | domain_common | frozenset(LoremProvider.word_list) | stop
    names = first | last
    broad = narrow | frozenset(w for w in _wordnet_words() if w not in names)
    heads = _HEAD_NOUNS | domain_heads | frozenset(_STREET_SUFFIX_WORDS)
    places = _PLACES
    ambiguous = (names & (narrow | heads)) | (names & _wordnet_non_nouns())
    return _Lexicon(first, last, narrow, broad, heads, places, stop, ambiguous, _wordnet_words())
