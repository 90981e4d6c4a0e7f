"""PERSON from the name gazetteer, capitalization runs and context triggers ("my name is", "here")."""

from __future__ import annotations

from functools import lru_cache

import regex as re
from presidio_analyzer import (
    RecognizerResult,
)

from slm_pipeline.core.anonymize.lexicons import (
    _DETERMINERS,
    _NAME_PARTICLES,
    _NAME_SUFFIXES,
    _PLACE_PREFIXES,
    _SURNAME_HEADS,
    _TITLES,
    _alt,
    _Lexicon,
    _lexicon,
    _lexicon_for,
    _norm_word,
    _rx,
    _strip_accents,
    _words,
    active_vocabulary,
)
from slm_pipeline.core.anonymize.recognizers.base import _OurRecognizer

# ---------------------------------------------------------------------------------------------------------
# PERSON
# ---------------------------------------------------------------------------------------------------------

_WORD = re.compile(r"[\p{L}\p{M}]+(?:['’\-][\p{L}\p{M}]+)*\.?")
_SURNAME_SUFFIX = re.compile(rf"(?:{_alt(_words('surname_suffixes'))})$")
_CAMEL_OK = re.compile(r"^(?:Mc|Mac|O['’]|D['’]|De|Di|Da|La|Le|Van|Von|Fitz|St)[\p{Lu}]")


def _singular(low: str, lex: _Lexicon) -> str | None:
    """Dictionary base form of a plural / -ed / -ing word ("cycles" -> "cycle"), if any."""
    if len(low) < 4:
        return None
    cands = []
    if low.endswith("ies"):
        cands.append(low[:-3] + "y")
    if low.endswith("es"):
        cands.append(low[:-2])
    if low.endswith("s") and not low.endswith("ss"):
        cands.append(low[:-1])
    if low.endswith("ed"):
        cands += [low[:-2], low[:-1]]
    if low.endswith("ing"):
        cands += [low[:-3], low[:-3] + "e"]
        if len(low) > 5 and low[-4] == low[-5]:
            cands.append(low[:-4])  # "cancelling" -> "cancel"
    if low.endswith("ed") and len(low) > 4 and low[-3] == low[-4]:
        cands.append(low[:-3])  # "cancelled" -> "cancel"
    for c in cands:
        if len(c) >= 3 and (c in lex.dictionary or c in lex.narrow_common):
            return c
    return None


def _token_class(word: str, lex: _Lexicon) -> str:
    vocab = active_vocabulary()
    return _token_class_cached(word, vocab) if lex is _lexicon_for(vocab) else _token_class_uncached(word, lex)


@lru_cache(maxsize=200_000)
def _token_class_cached(word: str, vocabulary: str | None) -> str:
    return _token_class_uncached(word, _lexicon_for(vocabulary))


def _token_class_uncached(word: str, lex: _Lexicon) -> str:
    """F first name, L last name, A name that is also a common word, P place, C common, U unknown name-like,
    X product-like (camelCase), l lower-case word, K all-caps."""
    w = word.rstrip(".")
    if len(w) > 3 and w[-2:] in ("'s", "’s"):
        w = w[:-2]
    if not w:
        return "C"
    if not w[0].isupper():
        return "l"
    if len(w) > 1 and w.isupper():
        return "K"
    rest = w[1:]
    if any(c.isupper() for c in rest) and not _CAMEL_OK.match(w) and "-" not in w and "'" not in w and "’" not in w:
        return "X"
    low = _norm_word(w)
    if low in lex.stop or _rx(r"'(?:ve|ll|re|d|m|t)$|n't$").search(low):
        return "C"  # stop words and contractions ("I've", "They're") are never names
    if "-" in low and all(len(p) == 1 or p in lex.narrow_common or
                          ((p in lex.dictionary or _singular(p, lex)) and p not in lex.first and p not in lex.last)
                          for p in low.split("-") if p):
        return "C"  # "E-bike", "Pay-as-you-go", "Out-of-station"
    parts = [p for p in _rx(r"[\-]").split(low) if p]
    if low in lex.places:
        return "P"
    in_first = low in lex.first or _strip_accents(low) in lex.first
    in_last = low in lex.last or _strip_accents(low) in lex.last or (
        len(parts) > 1 and any(p in lex.last or p in lex.first for p in parts))
    if low in lex.narrow_common or low in lex.heads:
        return "A" if (in_first or in_last) else "C"
    if low in lex.ambiguous:
        return "A"
    base = _singular(low, lex)
    if base and (in_first or in_last):
        return "A"  # "Fares", "Banks", "Rivers": also the plural of an everyday word
    if in_first:
        return "F"
    if in_last:
        return "L"
    if low in lex.broad_common or _singular(low, lex):
        return "C"
    if len(w) < 2 or any(ch.isdigit() for ch in w):
        return "C"
    if len(low) >= 6 and _SURNAME_SUFFIX.search(low):
        return "L"  # "Björnsson", "Papadopoulos": a surname by its ending
    return "U"


def _name_runs(text: str) -> list[list[tuple[int, int, str]]]:
    """Runs of capitalized words separated by single spaces (particles like 'van', 'de' allowed inside)."""
    runs: list[list[tuple[int, int, str]]] = []
    cur: list[tuple[int, int, str]] = []
    prev_end = -1
    for m in _WORD.finditer(text):
        word = m.group(0)
        s, e = m.start(), m.end()
        if word.endswith(".") and len(word) > 4:  # sentence end glued to a word
            word, e = word[:-1], e - 1
        gap = text[prev_end:s] if prev_end >= 0 else None
        cap = word[:1].isupper()
        particle = word.lower() in _NAME_PARTICLES and not cap
        adjacent = gap is not None and _rx(r"[ \t]{1,2}").fullmatch(gap or "") is not None
        if cur and adjacent and (cap or particle):
            cur.append((s, e, word))
        else:
            if cur:
                runs.append(cur)
            cur = [(s, e, word)] if cap else []
        prev_end = e
        if word.endswith(".") or word[-2:] in ("'s", "’s"):
            if cur:
                runs.append(cur)
            cur = []
            prev_end = -1
    if cur:
        runs.append(cur)
    # drop trailing particles
    out = []
    for r in runs:
        while r and not r[-1][2][:1].isupper():
            r = r[:-1]
        if r:
            out.append(r)
    return out


# 'Javier Hall', 'Emma Park': a head noun that is also a surname (data/lexicon.yaml) after a clear first name.
def _surname_head_ok(first_word: str, last_word: str, lex: _Lexicon) -> bool:
    return _norm_word(last_word.rstrip(".")) in _SURNAME_HEADS and _token_class(first_word, lex) == "F"


_TITLE_BEFORE = re.compile(rf"(?:\b(?:{_TITLES})\.?[ \t]+)+$")
_SUFFIX_AFTER = re.compile(rf"^,?[ \t]+(?:{_NAME_SUFFIXES})\.?(?![\w])")


def _extend_person(text: str, s: int, e: int) -> tuple[int, int]:
    if text[max(s, e - 2):e] in ("'s", "’s") and e - 2 > s:
        e -= 2  # possessive: "Lopez's" -> "Lopez"
    m = _TITLE_BEFORE.search(text[max(0, s - 30):s])
    if m:
        s -= len(m.group(0))
    m = _SUFFIX_AFTER.match(text[e:e + 12])
    if m:
        e += m.end()
    return s, e


def _score_name_tokens(classes: list[str]) -> float:
    """Gazetteer score for a run of capitalized tokens (no context)."""
    n = len(classes)
    strong = {"F", "L"}
    if n == 1:
        return {"F": 0.6, "L": 0.3}.get(classes[0], 0.0)
    first, last = classes[0], classes[-1]
    if any(c in ("C", "X") for c in classes):
        return 0.0
    namey = [c in ("F", "L", "A", "P") for c in classes]
    if first in ("F", "A", "P") and last in ("F", "L", "A", "P") and all(namey):
        return 0.85 if any(c in strong for c in classes) else 0.3
    if first == "F" and last == "U":
        return 0.75
    if n == 2 and first == "A" and last == "U":
        return 0.5
    if first in ("U", "L") and last in ("L", "F"):
        return 0.6
    if first in ("F", "L") or last in ("F", "L"):
        return 0.55
    if all(c == "U" for c in classes):
        return 0.5  # "Cornelius Obi": two capitalized words that are neither dictionary words nor places
    return 0.0


_LOCATIVE_BEFORE = re.compile(r"(?i:\b(?:near|in|at|around|opposite|outside|behind|beside|towards|across)[ \t]+)$")
_CAP_RUN = re.compile(r"[\p{Lu}][\p{L}\p{M}'’\-]*(?:[ \t]+(?:(?:(?:"
                      + "|".join(sorted((re.escape(p) for p in _NAME_PARTICLES if p.islower()), key=len, reverse=True))
                      + r")[ \t]+)?[\p{Lu}][\p{L}\p{M}'’\-]*))*")


def _place_after_locative(text: str, s: int, e: int, lex: _Lexicon) -> bool:
    """'near Cais do Sodré', 'in Campo de Ourique', 'at Bairro do Avelar': after a place preposition, the
    capitalized run around text[s:e] is a place if its words are all unknown, or if it has a particle inside
    ('do', 'de', 'da') and does not start with a known given name ('with Joana do Rosário' stays a person)."""
    a = s
    while True:  # walk left over capitalized words and particles to the start of the run
        m = _rx(r"(?:[\p{Lu}][\p{L}\p{M}'’\-]*|[\p{Ll}]{1,4})[ \t]+$").search(text, max(0, a - 30), a)
        if not m or (m.group(0)[:1].islower() and _norm_word(m.group(0).strip()) not in _NAME_PARTICLES):
            break
        a = m.start()
    while a < s and not text[a].isupper():
        a += 1
    if not _LOCATIVE_BEFORE.search(text, max(0, a - 12), a):
        return False
    run = _CAP_RUN.match(text, a)
    words = run.group(0).split() if run else text[s:e].split()
    caps = [w for w in words if w[:1].isupper()]
    cls = [_token_class(w, lex) for w in caps]
    if all(c == "U" for c in cls):
        return True
    return len(caps) < len(words) and all(_norm_word(w) in _NAME_PARTICLES for w in words if not w[:1].isupper()) \
        and cls[0] != "F"


class PersonGazetteerRecognizer(_OurRecognizer):
    """First/last names from Faker's name lists (all Latin-script locales), capitalized, with guards against
    common words, places, products ("LoopBike") and streets/products ("Baker Street", "Day Pass")."""

    ENTITY = "PERSON"
    CONTEXT = [
        "mr", "mrs", "ms", "miss", "dr", "customer", "client", "agent", "colleague", "spoke", "called", "contact",
        "regards", "thanks", "dear", "hi", "hello", "hey", "sincerely", "cheers", "signed", "named", "manager",
        "technician", "rider", "husband", "wife", "son", "daughter", "friend", "mom", "dad", "mother", "father",
        "brother", "sister", "cardholder", "holder", "recipient", "surname", "firstname", "lastname", "fullname",
    ]

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        lex = _lexicon()
        out = self._lowercase_names(text, lex)
        for run in _name_runs(text):
            toks = [t for t in run if t[2][:1].isupper()]
            # all-caps names: "JOHN SMITH"
            if all(t[2].isupper() and len(t[2]) > 1 for t in toks):
                if 2 <= len(toks) <= 3:
                    cls = [_token_class(t[2].title(), lex) for t in toks]
                    if cls[0] in ("F",) and cls[-1] in ("L", "F"):
                        out.append(self._result(toks[0][0], toks[-1][1], 0.7, "all-caps name in gazetteer"))
                continue
            if len(run) >= 2 and _norm_word(run[0][2]) in _PLACE_PREFIXES:
                continue  # "San Francisco", "New Jeffreymouth", "Fort Worth"
            prev = text[max(0, run[0][0] - 5):run[0][0]]
            if _rx(r"(?i)\b(?:the|a|an|our|your|its)[ \t]$").search(prev) or \
                    _norm_word(run[0][2]) in _DETERMINERS:
                continue  # "the Hudson Yards", "The Specialized Turbo Vado", "Our Amsterdam Centraal hub"
            classes = [_token_class(t[2], lex) for t in run]
            # split the run at common/product/caps words; each piece is scored on its own
            pieces: list[list[int]] = [[]]
            for i, c in enumerate(classes):
                if c in ("C", "X", "K"):
                    pieces.append([])
                else:
                    pieces[-1].append(i)
            for piece in pieces:
                idx = [i for i in piece if classes[i] != "l"]
                if not idx:
                    continue
                # a piece that ends right before a head noun is a place/product/street ("Maria Street")
                last_i = piece[-1]
                if last_i + 1 < len(run) and _norm_word(run[last_i + 1][2].rstrip(".")) in lex.heads:
                    continue
                last_word = run[last_i][2]
                possessive = last_word[-2:] in ("'s", "’s")
                nxt = _rx(r"[ \t]+([\p{L}]+)").match(text[run[last_i][1]:])
                if possessive and nxt and nxt.group(1)[:1].isupper():
                    continue  # "King's Cross", "McDonald's Restaurant": a place or business
                if not possessive and nxt and _norm_word(nxt.group(1)) in lex.heads and last_i + 1 >= len(run):
                    continue
                # a piece ending in a head noun is a place/product ("Canal Street", "Liberty Plaza")
                if _norm_word(run[last_i][2].rstrip(".")) in lex.heads and not (
                        len(idx) >= 2 and _surname_head_ok(run[idx[0]][2], run[last_i][2], lex)):
                    continue
                # split over-long pieces into windows of at most 4 tokens
                while idx:
                    chunk, idx = idx[:4], idx[4:]
                    cls = [classes[i] for i in chunk]
                    score = _score_name_tokens(cls)
                    if len(cls) == 1 and cls[0] == "F":
                        w = run[chunk[0]][2]
                        if len(w.rstrip(".")) < 3:
                            score = 0.0
                        if _norm_word(w.rstrip(".")) in lex.dictionary:
                            # "Server listening", "Pascal came last", "over Tor": a lone given name that is also a
                            # dictionary word needs person context (greeting, title, verb of talking: the context
                            # and structure recognizers) or spaCy's NER, which still sees the sentence
                            score = 0.0
                    if score <= 0:
                        continue
                    s, e = run[chunk[0]][0], run[chunk[-1]][1]
                    if _place_after_locative(text, s, e, lex):
                        continue
                    if text[e - 1] == ".":
                        e -= 1
                    s, e = _extend_person(text, s, e)
                    out.append(self._result(s, e, score, "name gazetteer " + "".join(cls)))
        return out


    def _lowercase_names(self, text: str, lex: _Lexicon) -> list[RecognizerResult]:
        """All-lower-case chats: 2-3 consecutive words that are all gazetteer names and none a dictionary word
        ("send it to ines contreras")."""
        out = []
        run: list[tuple[int, int, str]] = []
        prev_end = -1

        def flush():
            while run and run[-1][2] in _NAME_PARTICLES:
                run.pop()
            if len([r for r in run if r[2] not in _NAME_PARTICLES]) >= 2:
                first, last = _norm_word(run[0][2]), _norm_word(run[-1][2])
                if any(p in lex.first for p in first.split("-")) and (last in lex.last or last in lex.first or
                                           any(p in lex.last for p in last.split("-"))):
                    out.append(self._result(run[0][0], run[-1][1], 0.6, "lower-case full name in gazetteer"))

        for m in _WORD.finditer(text):
            w = m.group(0).rstrip(".")
            low = _norm_word(w)
            parts = low.split("-")
            ok = (w.islower() and len(w) >= 3 and low not in lex.broad_common and low not in lex.stop
                  and all(p in lex.first or p in lex.last for p in parts))
            adjacent = prev_end >= 0 and _rx(r"[ \t]{1,2}").fullmatch(text[prev_end:m.start()]) is not None
            if run and adjacent and low in _NAME_PARTICLES and len(run) < 3:
                run.append((m.start(), m.start() + len(w), low))  # "stephany das neves"
                prev_end = m.start() + len(w)
                continue
            if ok and (adjacent or not run) and len(run) < 4:
                run.append((m.start(), m.start() + len(w), w))
            else:
                flush()
                run = [(m.start(), m.start() + len(w), w)] if ok else []
            prev_end = m.start() + len(w) if ok else -1
            if m.group(0).endswith("."):
                flush()
                run = []
                prev_end = -1
        flush()
        return out


# a "name" key of a config file: indented or a list item (YAML), or key=value
_CONFIG_NAME_KEY = re.compile(r"(?:(?:^|\n)(?:[ \t]+|[ \t]*-[ \t]+)name[ \t]*:|(?<![\w])name=)[ \t]*$")
_NAME_TOKEN = r"[\p{L}\p{M}]+(?:['’\-][\p{L}\p{M}]+)*"
_TRIGGERS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"(?i)\bmy[ \t]+(?:full[ \t]+|first[ \t]+|last[ \t]+|sur)?name(?:['’]s|[ \t]+is|[ \t]*:|[ \t]+was)"
                r"[ \t]+"), "strong"),
    (re.compile(r"(?i)\bname[ \t]+on[ \t]+(?:the[ \t]+)?[\p{L}]+(?:[ \t]+[\p{L}]+)?[ \t]*:[ \t]*"), "strong"),
    (re.compile(r"(?im)(?:^|[\n;,(]|\b)(?:full[ \t]+|first[ \t]+|last[ \t]+|sur|customer[ \t]+|account[ \t]+holder[ \t]+|"
                r"card[ \t]*holder[ \t]+|contact[ \t]+|recipient[ \t]+)?name[ \t]*[:=][ \t]*"), "strong"),
    (re.compile(r"(?i)\b(?:call[ \t]+me|i(?:['’]m|[ \t]+am)[ \t]+called|signed[ \t]*,?|sincerely[ \t]*,?|"
                r"yours[ \t]+truly[ \t]*,?|name[ \t]+on[ \t]+the[ \t]+(?:card|account|booking|order)[ \t]+(?:is|was)"
                r"|spelled|surname[ \t]+is|first[ \t]+name[ \t]+is|last[ \t]+name[ \t]+is)[ \t]+"), "strong"),
    (re.compile(r"(?<![\w])(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Sir|Dame|Madam|Mme|Mlle|Herr|Frau|Sr|Sra|Srta|Dott|"
                r"Dott\.ssa|Sig|Sig\.ra|Rev|Capt|Mevr|Dhr|Pani|Pan)\.?[ \t]+"), "title"),
    (re.compile(r"(?i)\b(?:hi|hello|hey|dear|hiya|heya|greetings|good[ \t]+(?:morning|afternoon|evening)|"
                r"morning|evening|bonjour|hola|hallo|ciao|salut|namaste)[ \t]*,?[ \t]+"), "medium"),
    (re.compile(r"(?i)\b(?:kind[ \t]+regards|best[ \t]+regards|warm[ \t]+regards|best[ \t]+wishes|many[ \t]+thanks|"
                r"all[ \t]+the[ \t]+best|take[ \t]+care|talk[ \t]+soon|much[ \t]+appreciated|appreciate[ \t]+it|"
                r"(?:thank[ \t]+you|thanks|thx|ty)(?:[ \t]+(?:so[ \t]+much|very[ \t]+much|a[ \t]+lot|again|a[ \t]+million))?|"
                r"cheers|regards|best|sincerely|yours|br|love)"
                r"[ \t]*[,!.\-–—:]*[ \t]*(?:\n[ \t]*)?"), "closing"),
    (re.compile(r"(?i)\b(?:i['’]m|i[ \t]+am|im)[ \t]+"), "intro"),
    (re.compile(r"(?i)\b(?:is[ \t]+(?:this|that)|this[ \t]+is|it['’]s|it[ \t]+is|here[ \t]+is|here['’]s|"
                r"my[ \t]+(?:friend|colleague|wife|husband|son|daughter|brother|sister|mother|father|mom|mum|dad|"
                r"partner|boss|manager|neighbou?r|flatmate|roommate)(?:[ \t]+is)?)[ \t]+"), "medium"),
    (re.compile(r"(?i)\b(?:customer|client|caller|passenger|rider|member|subscriber|user|agent|representative|rep|"
                r"advisor|adviser|technician|engineer|driver|courier|manager|supervisor|colleague|coworker|co-worker|"
                r"wife|husband|son|daughter|brother|sister|mother|father|mom|mum|dad|friend|partner|boss|tenant|"
                r"landlord|neighbou?r|cardholder|holder|recipient|sender|guest|employee|owner|named|called|nickname|"
                r"user[ \t]*name|nome|nom|nombre)[ \t]*:?[ \t]+(?:named[ \t]+|called[ \t]+|is[ \t]+)?"), "medium"),
    (re.compile(r"(?i)\b(?:spoke|speak|speaking|talked|talk|talking|chatted|chatting|met|meet|emailed|messaged|call|phone|ring|rang|"
                r"texted|contacted|asked|ask|thank|thanked|tell|told|let|cc|cc['’]d|ping|pinged|inform|informed|"
                r"according[ \t]+to|assisted[ \t]+by|helped[ \t]+by|handled[ \t]+by|signed[ \t]+by|approved[ \t]+by|"
                r"forward(?:ed)?(?:[ \t]+(?:this|it))?[ \t]+to|(?:re)?assign(?:ed)?(?:[ \t]+(?:this|it))?[ \t]+to|"
                r"escalate(?:d)?(?:[ \t]+(?:this|it))?[ \t]+to|transfer(?:red)?(?:[ \t]+(?:me|this|it))?[ \t]+to|"
                r"on[ \t]+behalf[ \t]+of|c/o|attn:?|attention:?|fao|for[ \t]+the[ \t]+attention[ \t]+of|"
                r"married[ \t]+to|son[ \t]+of|daughter[ \t]+of)[ \t]+(?:to[ \t]+|with[ \t]+|for[ \t]+)?"), "medium"),
    (re.compile(r"(?m)^[ \t]*(?:--|—|–|-|~)[ \t]*"), "signature"),
    (re.compile(r"(?i)\b(?:from|by|with|for|and|or)[ \t]+"), "weak"),
]


# "Kasia here", "Tom from LoopBike here", "Maria Lopez speaking"
_POST_NAME = re.compile(
    r"(?:(?<=^[ \t]*)|(?<=[.!?,;:][ \t]{1,3})|(?<=\n[ \t]*))"
    r"(?P<name>[\p{Lu}][\p{L}\p{M}'’\-]+(?:[ \t]+[\p{Lu}][\p{L}\p{M}'’\-]+){0,2})"
    r"(?=[ \t]+(?:here|speaking)\b|[ \t]+from[ \t]+[^.!?\n]{1,40}?[ \t]+(?:here|speaking)\b)",
    re.M,
)


def _take_name(text: str, pos: int, kind: str, lex: _Lexicon) -> tuple[int, int, list[str]] | None:
    """Read up to 4 name tokens starting at pos; returns (start, end, classes) or None."""
    toks: list[tuple[int, int, str, str]] = []
    i = pos
    n = len(text)
    while len(toks) < 4 and i < n:
        m = _rx(_NAME_TOKEN).match(text, i)
        if not m:
            break
        w = m.group(0)
        c = _token_class(w, lex)
        low = _norm_word(w)
        if c == "l":
            if low in _NAME_PARTICLES and toks:
                pass
            elif kind == "strong" and low not in lex.broad_common and low not in lex.stop and len(low) > 1:
                c = "F" if low in lex.first else ("L" if low in lex.last else "U")
            elif kind in ("medium", "closing", "intro") and low in lex.first and low not in lex.narrow_common and \
                    low not in lex.ambiguous and not _singular(low, lex) and not toks:
                c = "F"
            else:
                break
        if c in ("X", "K"):
            break
        if low.rstrip(".") in lex.heads and c != "F":
            if toks and c in ("A", "L") and toks[-1][3] in ("U", "F", "L") and (
                    kind in ("strong", "title", "intro", "signature", "closing") or
                    _surname_head_ok(toks[0][2], w, lex)):
                toks.append((m.start(), m.end(), w, c))  # "I'm Joon-ho Park": a surname, not a park
                break
            return None  # "from Liberty Plaza", "this is Central Station"
        if c == "C" and not (kind in ("title", "strong") and not toks and w[:1].isupper() and low not in lex.narrow_common):
            # "I'm Petre Pop": a capitalized dictionary word right after a name-like token continues the name
            if not (toks and toks[-1][3] in ("U", "F", "L") and w[:1].isupper() and low not in lex.narrow_common):
                break
            if kind not in ("title", "strong", "intro") and [t[3] for t in toks] == ["U"]:
                return None  # "now called Resilio Sync", "switched to Acme Cloud": an unknown word + a noun is a product
        if w[-2:] in ("'s", "’s"):
            nxt = _rx(r"[ \t]+([\p{L}])").match(text, m.end())
            if nxt and nxt.group(1).isupper():
                return None  # "King's Cross"
            toks.append((m.start(), m.end() - 2, w[:-2], c))
            break
        toks.append((m.start(), m.end(), w, c))
        j = m.end()
        sp = _rx(r"[ \t]{1,2}").match(text[j:])
        if not sp:
            break
        i = j + sp.end()
    while toks and toks[-1][2].lower() in _NAME_PARTICLES and not toks[-1][2][:1].isupper():
        toks.pop()
    if not toks:
        return None
    # stop before a head noun: "Hi Central Station team" / "this is Baker Street"
    nxt = _rx(r"[ \t]+([\p{L}]+)").match(text[toks[-1][1]:])
    if nxt and _norm_word(nxt.group(1)) in lex.heads:
        return None
    return toks[0][0], toks[-1][1], [t[3] for t in toks]


class PersonContextRecognizer(_OurRecognizer):
    """Names introduced by context: "my name is X", "Hi X,", "Thanks, X", "Mr. X", "customer X Y", signatures."""

    ENTITY = "PERSON"

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        lex = _lexicon()
        out = []
        for rx, kind in _TRIGGERS:
            for t in rx.finditer(text):
                got = _take_name(text, t.end(), kind, lex)
                if not got:
                    continue
                s, e, cls = got
                if text[e - 1] == "." and not _rx(rf"(?:{_NAME_SUFFIXES})\.$").search(text[s:e]):
                    e -= 1
                after = text[e:e + 2]
                score = 0.0
                namey = [c for c in cls if c in ("F", "L", "A", "U", "P")]
                if kind == "strong" and (not namey or any(w[:1].islower() and w not in _NAME_PARTICLES
                                                     for w in text[s:e].split())) and \
                        _CONFIG_NAME_KEY.search(text, max(0, t.start() - 40), t.end()):
                    continue  # "  name: billing-api", "- name: Lint manifests", "apt: name=nginx": a config value
                if not namey and kind in ("strong", "title") and text[s:s + 1].isupper():
                    namey = ["U"]  # "Ms MacLeod", "name on the bell: Haddad": a surname that is also a dictionary entry
                if not namey:
                    continue
                if kind not in ("strong", "title") and len(cls) > 1 and \
                        _norm_word(text[s:e].split()[0]) in _PLACE_PREFIXES:
                    continue  # "from San Francisco", "to New York"
                if kind in ("strong", "title"):
                    score = 0.85
                elif kind in ("medium", "signature", "closing", "intro", "post"):
                    if kind in ("closing", "signature") and not _rx(
                            r"^(?:$|[\n.!,?:;)\-—]|[ \t]*$|[ \t]*\n)").match(after):
                        continue
                    if all(c == "P" for c in namey) and not (
                            kind in ("closing", "signature", "medium", "intro", "post") and len(namey) == 1
                            and _norm_word(text[s:e].rstrip(".")) in lex.first
                            and _rx(r"^(?:$|[\n.!,?:;)]|[ \t]*\n)").match(after)):
                        continue
                    if len(namey) == 1 and namey[0] == "A" and not _rx(r"^(?:$|[\n.!,?:;)]|[ \t]*\n)").match(after) \
                            and not (kind in ("medium", "intro") and _rx(r"[ \t]+(?:from|here|speaking)\b").match(text, e)):
                        continue  # "this is Bill from accounting" is a name, "this is Bill payment" is not
                    score = 0.75
                else:  # weak triggers need gazetteer evidence
                    if not any(c in ("F",) for c in cls) and not (len(cls) > 1 and any(c == "L" for c in cls)):
                        continue
                    score = 0.6
                if kind == "signature" and not _rx(r"^[ \t]*(?:$|\n)").match(text[e:e + 3]):
                    continue
                s2, e2 = _extend_person(text, s, e)
                if kind == "title":
                    s2 = t.start()
                out.append(self._result(s2, e2, score, f"name after {kind} context"))
        for m in _POST_NAME.finditer(text):
            cls = [_token_class(w, lex) for w in m.group("name").split()]
            if any(c in ("C", "X", "K", "l") for c in cls) or all(c == "P" for c in cls):
                continue
            out.append(self._result(m.start("name"), m.end("name"), 0.75, "name before 'here'/'speaking'"))
        return out


