"""STREET_ADDRESS and POSTCODE: US/UK/EU street patterns, unit/secondary lines, city/postcode lines."""

from __future__ import annotations

import regex as re
from presidio_analyzer import (
    RecognizerResult,
)

from slm_pipeline.core.anonymize.lexicons import (
    _COUNTRY_NAMES,
    _RISKY_SUFFIXES,
    _SUFFIX_ALT,
    _US_STATES,
    _Lexicon,
    _lexicon,
    _rx,
)
from slm_pipeline.core.anonymize.recognizers.base import _OurRecognizer, _RegexRecognizer
from slm_pipeline.core.anonymize.recognizers.names import _singular

# ---------------------------------------------------------------------------------------------------------
# POSTCODE
# ---------------------------------------------------------------------------------------------------------

_UK_PC = r"(?:GIR[ ]?0AA|[A-PR-UWYZ](?:[A-HK-Y]?\d[A-Z\d]?|\d[A-HJKSTUW])[ \t]?\d[ABD-HJLNP-UW-Z]{2})"
_STATE_ALT = "|".join(sorted(_US_STATES))


class PostcodeRecognizer(_RegexRecognizer):
    ENTITY = "POSTCODE"
    # Postcode words only: with "code", "area" or "delivery" any 5-digit number ("default is 32768") was a postcode.
    CONTEXT = ["zip", "zipcode", "postcode", "postal", "plz", "cp", "postleitzahl", "postcodes", "zips", "eircode",
               "cep"]
    PATTERNS = [
        (rf"\b{_UK_PC}\b", 0.65, 0, 0),
        (rf"\b(?:{_STATE_ALT}),?[ \t]+(?P<v>\d{{5}}(?:-\d{{4}})?)\b", 0.6, "v", 0),
        (r"\b\d{5}-\d{4}\b", 0.4, 0, 0),
        (r"\b[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z][ \t]?\d[ABCEGHJ-NPRSTV-Z]\d\b", 0.5, 0, 0),
        (r"(?<![\w.,\-])(?P<v>\d{5})[ \t]+(?=[\p{Lu}][\p{Ll}])", 0.3, "v", 0),  # "75008 Paris" (city checked)
        (r"(?<![\w.,\-$€£])\d{5}(?![\w\-]|[.,]\d)", 0.05, 0, 0),  # bare ZIP: only with context words
        (r"\b\d{4}[ \t]?[A-Z]{2}\b", 0.05, 0, 0),  # NL: only with context words
        (r"\b\d{2}-\d{3}\b", 0.05, 0, 0),  # PL: only with context words
    ]

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        res = super().analyze(text, entities, nlp_artifacts)
        lex = _lexicon()
        keep = []
        for r in res:
            if r.score == 0.3:  # "75008 Paris": the next word must look like a place, not "75008 Bikes"/"32768 KiB"
                nxt = _rx(r"[ \t]+([\p{L}\-]+)").match(text[r.end:])
                w = nxt.group(1) if nxt else ""
                if not w or w.lower() in lex.narrow_common or w.lower() in lex.dictionary or \
                        any(c.isupper() for c in w[1:]):
                    if w.lower() not in lex.places:
                        continue
                # and the number must stand where a postcode does: line start, after a comma, or a known city
                if w.lower() not in lex.places and not _rx(r"(?:^|[,\n])[ \t]*$").search(text[max(0, r.start - 3):r.start]):
                    continue
                r.score = 0.45
            keep.append(r)
        return keep


# ---------------------------------------------------------------------------------------------------------
# STREET_ADDRESS
# ---------------------------------------------------------------------------------------------------------


_NUM = r"\d{1,6}[A-Za-z]?(?:[\-/]\d{1,5}[A-Za-z]?)?"
_DIRW = r"(?:N|S|E|W|NE|NW|SE|SW|N\.|S\.|E\.|W\.|North|South|East|West)"
_NWORD = r"(?:[\p{Lu}][\p{L}\p{M}'’\-]*\.?|\d{1,3}(?:st|nd|rd|th)|[\p{Lu}]\.)"
_US_CORE = re.compile(
    rf"(?<![\w\-.]){_NUM},?[ \t]+(?:{_DIRW}[ \t]+)?(?P<name>(?:{_NWORD}[ \t]+){{0,3}}?{_NWORD})[ \t]+"
    rf"(?P<suf>(?i:{_SUFFIX_ALT}))(?![\w])(?P<dot>\.)?(?:[ \t]+{_DIRW}(?![\w]))?"
)
_US_LOWER = re.compile(
    rf"(?<![\w\-.]){_NUM}[ \t]+(?P<name>(?:[a-z][a-z'\-]+[ \t]+){{0,2}}[a-z][a-z'\-]+)[ \t]+"
    r"(?P<suf>street|avenue|road|lane|drive|boulevard|st\.|ave\.|rd\.|blvd\.)(?![\w])"
)

_UNIT_STREET = re.compile(
    rf"(?<![\w\-.])(?:(?i:flat|studio|apartment|apt\.?|unit|suite|plot|lot|block|blk\.?)[ \t]+"
    rf"(?:\d{{1,4}}[A-Za-z]?|[A-Z])[ \t]*[,\n][ \t]*){{1,3}}"
    rf"(?P<name>(?:{_NWORD}[ \t]+){{0,3}}?{_NWORD})[ \t]+(?P<suf>(?i:{_SUFFIX_ALT}))(?![\w])\.?"
)

_EU_TYPE_ANY = (  # street-type words of FR/ES/IT/PT/PL/CA that are not English words
    r"rue|calle|carrer|carrera|transversal|avenida|avda\.?|paseo|pasaje|pasadizo|glorieta|traves[ií]a|callej[oó]n|rambla|viale|piazza|"
    r"piazzale|vicolo|contrada|lungomare|lungotevere|rua|pra[çc]a|travessa|alameda|ladeira|rodovia|ulica|ul\.|"
    r"aleja|plac|osiedle|all[ée]e|impasse|chemin|quai|faubourg|carretera|calzada|cerrada|privada|circuito|"
    r"andador|prolongaci[oó]n|perif[ée]rico|urbanizaci[oó]n|cañada|incrocio|stretto|rotonda|salita|viela|"
    r"trecho|quadra|viaduto|vereda|chácara|chacara|condomínio|loteamento|residencial|esplanada|"
    r"strada|str\.|drumul|bulevardul|calea|aleea|[șs]oseaua|splaiul|intrarea|pia[țt]a|fund[ăa]tura|"
    r"pl\.|al\.|os\.|ulice|n[áa]m[ěe]st[íi]|t[řr][íi]da|utca|[úu]t|t[ée]r|"
    r"vul\.|vulytsia|vulytsya|ulitsa|prosp\.|prospekt|prospekt|pr-t|provulok|pereulok|shosse|naberezhna"  # UA/RU
)
_EU_TYPE_CAP = (  # also English words: only when capitalized
    r"Via|Vial|Corso|Largo|Strada|Borgo|Canale|Estrada|Boulevard|Avenue|Place|Plaza|Square|Route|Passage|Cours|"
    r"Voie|Camino|Ronda|Cuesta|Acceso|Diagonal|Retorno|Corredor|Bd|Av\.?|Al\.|R\.|C\.|C/|Praia|Col[ôo]nia|Vila|"
    r"Setor|Rond-Point|Avinguda|Passeig|Rúa|Vía|Jardim|Parque|Campo|Lago|Lagoa|Largo|Morro|Quinta|Bairro|"
    r"Fazenda|Conjunto|Distrito|Núcleo|Recanto|Sítio|Trevo|Vale|Piano|Vicolo"
)
_EU_TYPE_FR_LOWER = r"avenue|boulevard|place|cours|route|passage|square|voie|sentier|chemin|impasse|quai|all[ée]e"
_CONNECT = (
    r"de[ \t]+la|de[ \t]+las|de[ \t]+los|della|delle|dello|degli|dei|del|de|di|da|do|dos|das|du|des|la|le|les|y|e|"
    r"van|von|der|den|am|al|do|na|no"
)
_EU_NAME = (
    rf"(?:(?:{_CONNECT})[ \t]+)?(?:[dlDL]['’])?{_NWORD}"
    rf"(?:[ \t]+(?:(?:{_CONNECT})[ \t]+)?(?:[dlDL]['’])?{_NWORD}){{0,3}}"
)
# number first (FR/BE/CA style): "12 Rue de Rivoli", "23, rue Victoire Perrier", "81 avenue Dufour"
_EU_A = re.compile(
    rf"(?<![\w\-.]){_NUM}(?:[ \t]*(?i:bis|ter|quater))?,?[ \t]+(?:(?i:{_EU_TYPE_ANY}|{_EU_TYPE_FR_LOWER})|{_EU_TYPE_CAP})[ \t]+{_EU_NAME}"
)
# type, name, then number (ES/IT/PT/PL): "Calle Mayor 12", "Viale Sermonti, 13", "R. Cruz, 93"
_EU_B = re.compile(
    rf"(?<![\w\-.])(?:(?i:{_EU_TYPE_ANY})|{_EU_TYPE_CAP}|{_EU_TYPE_FR_LOWER})[ \t]+{_EU_NAME},?[ \t]+"
    rf"(?:(?:(?i:n[º°o]|nr)\.?[ \t]*)?\d{{1,5}}[a-zA-Z]?(?:[\-/]\d{{1,4}}[a-zA-Z]?)?|[Ss]/[Nn])(?![\w]|-\d)"
)
# no number, unmistakable type word: "rue Clémence Samson", "avenue Foch"
_EU_C = re.compile(
    rf"(?<![\w\-.])(?:(?i:rue|calle|rua|viale|piazza|ulica|aleja|avenida|travessa|pra[çc]a|all[ée]e|impasse|"
    rf"chemin|quai|calzada|privada|cerrada|pasaje|paseo|glorieta|callej[oó]n|traves[ií]a)|avenue|boulevard)"
    rf"[ \t]+{_EU_NAME}"
)
_COMPOUND = (
    r"straße|strasse|str\.|weg|allee|platz|gasse|ring|damm|ufer|steig|pfad|chaussee|markt|graben|kamp|stieg|"
    r"zeile|gracht|straat|laan|plein|singel|kade|dijk|dreef|steeg|vägen|väg|gatan|gata|torget|gränd|stigen|backen|"
    r"leden|vej|gade|veien|vegen|gate|katu|tie|kuja|utca|ulice|brink|hof|berg|feld|tor|wall|bogen|stra[ßs]e|"
    r"boulevard|baan|plantsoen|erf|oord|kwartier|haven|veld|bulevardi|väylä|kaari|tori|ranta|rinne|polku|"
    r"allé|stræde|vænge|plads|torv|gränd|vägen|sgade|svej|gasse"
)
# house number with an optional range/addition: "12a", "12-14", "452-III" (Dutch floor), "7-hs" (ground floor)
_HNUM = r"\d{1,4}[ \t]?[a-zA-Z]?(?:[ \t]*[\-/][ \t]*(?:\d{1,4}[a-zA-Z]?|[IVX]{1,4}|hs|bis|[A-Za-z]))?(?![\w])"
_DE_A = re.compile(
    rf"(?<![\w\-.])(?:[\p{{Lu}}][\p{{L}}\p{{M}}]*[\-‐])*[\p{{Lu}}][\p{{L}}\p{{M}}\-]*?(?i:{_COMPOUND})\.?[ \t]+{_HNUM}"
)
_DE_B = re.compile(
    rf"(?<![\w\-.])(?:[\p{{Lu}}][\p{{L}}\p{{M}}\-]*[ \t]){{1,2}}(?:Straße|Strasse|Str\.|Weg|Allee|Platz|Gasse|Ring|"
    rf"Damm|Ufer|Chaussee|Markt|Steig|Pfad|Laan|Straat|Plein|Kade|Gracht|Vej|Gade|Gatan|Vägen|Allé|Plads|Torv|"
    rf"Stræde|Boulevard|Bulevardi|Tie|Katu)[ \t]+{_HNUM}"
)
_TR = re.compile(
    r"(?<![\w\-.])(?:[\p{Lu}][\p{L}\p{M}\-]*[ \t]){1,3}(?:Cad\.|Caddesi|Cd\.|Sok\.|Sokak|Sokağı|Sk\.|Bulvarı|Blv\.|"
    r"Mah\.|Mahallesi)[ \t]*(?:(?i:no)[ \t]*[:.]?[ \t]*)?\d{1,5}[a-zA-Z]?(?:[ \t]*(?:/|(?i:d|daire)[ \t]*[:.]?)[ \t]*\d{1,4})?"
)
# "PO Box 8812", "P.O. Box 40231-00100", "Postfach 10 11 12", "Apartado 123", "Caixa Postal 45"
_PO_BOX = re.compile(
    r"(?<![\w\-.])(?:(?i:p\.?[ \t]?o\.?[ \t]?box|post[ \t]+office[ \t]+box|private[ \t]+bag|locked[ \t]+bag)|Postfach|Apartado|"
    r"Caixa[ \t]+Postal|Casilla|Boîte[ \t]+postale|BP|Skrytka[ \t]+pocztowa)[ \t]+\d{1,6}(?:[ \t\-]\d{2,6}){0,2}(?![\w])"
)
_DE_C = re.compile(
    r"(?<![\w\-.])(?:Am|An der|An den|Auf der|Auf dem|Im|In der|In den|Zum|Zur|Unter den|Hinter der|Vor dem|"
    r"Op de|Aan de|In de|Op het|Na|Pod|Nad|Při|Ke|Ve|Za)[ \t]+[\p{Lu}][\p{L}\p{M}\-]+[ \t]+\d{1,3}[a-z]?(?![\w])"
)

# "Křížkovského 7, 319 08 Zbiroh": any capitalized street name + house number, when a postcode + city follows
_GENERIC_PC_STREET = re.compile(
    r"(?<![\w\-.,])[\p{Lu}][\p{L}\p{M}\-]+(?:[ \t](?:[\p{Lu}][\p{L}\p{M}\-]+|"
    r"(?!(?:at|is|on|in|to|of|and|or|the|for|by|was|are|has|had|its|it|we|you|via|per|vs)\b)\p{Ll}{2,4}\.?)){0,2}"
    r"[ \t]+\d{1,4}[a-zA-Z]?"  # a short lower-case street type may stand inside: "Tartu mnt 16", "Pärnu mnt. 5"
    r"(?:[/\-]\d{1,4}[a-zA-Z]?)?"
    r"(?=(?:,[ \t]*(?:\d{1,2}(?:st|nd|rd|th|\.)[ \t]+(?i:floor|fl\.?|stock|étage|etage|piso|andar|kat)|(?i:leil|apt|flat|"
    r"unit|floor|fl|et|piso|andar|apto|whg|top|stan|lgh|d)\.?:?[ \t]*[\w\-]{1,6}))?"
    r"(?:,?[ \t]+|,?[ \t]*\n[ \t]*)(?:\d{5}-\d{3}|\d{5}|\d{4}[ \t]?[A-Z]{2}|\d{4}-\d{3}|\d{3}[ \t]\d{2}|\d{2}-\d{3}|"
    r"\d{4}|\d{6})[ \t]+\p{Lu}"
    r"|[ \t]*\n[ \t]*[\p{Lu}][\p{L}\p{M}\-]+[ \t]+\d{5,7}(?![\w]))"
)
_CITY = (
    r"[\p{Lu}][\p{L}\p{M}'’.\-]+(?:[ \t]+(?:(?:de|du|des|la|le|am|an|der|upon|on|sur|en|di|del|da|do|dos|im|bei|"
    r"ob|y|in|the)[ \t]+)?[\p{Lu}][\p{L}\p{M}'’.\-]+){0,3}"
)
_SEP = r"(?:[ \t]*,[ \t]*|[ \t]*\n[ \t]*|[ \t]+[\-–/|][ \t]+|[ \t]+)"
_EU_PC = (r"(?:[A-Z]{1,2}[\- ])?(?:\d{5}-\d{3}|\d{5}|\d{4}[ \t]?[A-Z]{2}|\d{4}-\d{3}|\d{3}[ \t]\d{2}|\d{2}-\d{3}|"
          r"\d{4}|\d{6}|\d{8})")
_AU_STATE = r"(?:NSW|VIC|QLD|WA|SA|TAS|ACT|NT)"
_SECONDARY = re.compile(
    r"(?:[ \t]*,[ \t]*|[ \t]+|[ \t]+,[ \t]*)(?:\d{1,2}(?:st|nd|rd|th)[ \t]+(?i:floor)(?![\w])|(?i:apt\.?|apartment|suite|ste\.?|unit|flat|floor|fl\.?|room|rm\.?|bldg\.?|building|"
    r"piso|puerta|planta|appartamento|app\.?|interno|int\.?|scala|andar|apto\.?|bloco|étage|etage|bâtiment|bât\.?|"
    r"whg\.?|wohnung|tür|top|stiege|box|po box|edif\.?|edificio|depto\.?|departamento|dpto\.?|interior|piano|"
    r"esc\.?|escalera|leil\.?|lgh\.?|lejl\.?|stan|kat|office|kv\.?|kvartira|of\.|#)[ \t]*#?[ \t]*[\w\-]{1,6}(?![\w]))"
)
_EXT_SEGMENTS = [
    ("city_state_zip", re.compile(rf"{_SEP}(?P<city>{_CITY}),?[ \t]+(?P<st>[A-Z]{{2}})[ \t]+\d{{5}}(?:-\d{{4}})?(?![\w])")),
    ("state_zip", re.compile(rf"{_SEP}(?P<st>[A-Z]{{2}}),?[ \t]+\d{{5}}(?:-\d{{4}})?(?![\w])")),
    ("au_state_pc", re.compile(rf"{_SEP}(?:{_CITY},?[ \t]+)?{_AU_STATE},?[ \t]+\d{{4}}(?![\w])")),
    ("city_pin", re.compile(rf"{_SEP}{_CITY}[ \t]*-[ \t]*\d{{6}}(?![\w])")),
    ("br_state", re.compile(r"[ \t]+/[ \t]+[A-Z]{2}(?![\w])")),
    ("uk_pc", re.compile(rf"{_SEP}{_UK_PC}(?![\w])")),
    ("city_pc_lower", re.compile(rf"{_SEP}[a-z]{{3,}}(?:[ \t][a-z]{{3,}})?,?[ \t]+(?i:{_UK_PC})(?![\w])")),
    ("uk_pc_lower", re.compile(rf"{_SEP}(?i:{_UK_PC})(?![\w])")),
    ("pc_city", re.compile(rf"{_SEP}{_EU_PC},?[ \t]+(?:(?:da|de|do|das|dos)[ \t]+)?{_CITY}(?:[ \t]+\([A-Z]{{2}}\))?")),
    ("city_pc", re.compile(rf"{_SEP}(?P<city>{_CITY}),?[ \t]+(?:{_UK_PC}|\d{{4,7}}|\d{{3}}[ \t]\d{{2}})(?![\w]|-\d)")),
    ("pc", re.compile(rf"{_SEP}(?:\d{{5}}(?:-\d{{4}})?|\d{{4}}-\d{{3}}|\d{{2}}-\d{{3}})(?![\w]|-\d)")),
    ("province", re.compile(r"[ \t]*\([A-Z]{2}\)")),
    ("city", re.compile(rf"(?:[ \t]*,[ \t]*|[ \t]*\n[ \t]*)(?P<city>{_CITY})(?![\w])")),
    ("country", re.compile(rf"[ \t]*,[ \t]*(?:{_COUNTRY_NAMES})(?![\w])")),
]
_PRE_UNIT = re.compile(
    r"(?<![\w.])(?:(?i:flat|apartment|apt\.?|unit|suite|studio|room|house|building|bldg\.?|floor|h\.?[ ]?no\.?|no\.|"
    r"plot|lot|block|blk\.?)[ \t]*#?[ \t]*[\w\-/]{1,5}|\d{1,3}(?:st|nd|rd|th)[ \t]+(?i:floor))[ \t]*,?[ \t]*\Z"
)
_ADDR_TRIGGER = re.compile(
    r"(?i)\b(?:(?:my|the|our|new|old|billing|shipping|delivery|home|postal|mailing|street|registered|office|"
    r"work|correct|current)[ \t]+)?address(?:[ \t]+(?:is|was|on file|on the account))?[ \t]*[:\-]?[ \t]*"
    r"|\b(?:live|living|reside|residing|located|based|staying)[ \t]+(?:at|in)[ \t]+"
    r"|\b(?:ship(?:ped|ping)?|deliver(?:ed|y)?|send|sent|mail(?:ed)?|post(?:ed)?|forward(?:ed)?|moved|move|"
    r"return(?:ed)?)[ \t]+(?:it[ \t]+|them[ \t]+|this[ \t]+|that[ \t]+|the[ \t]+\w+[ \t]+|everything[ \t]+)?"
    r"(?:to|at)[ \t]+"
)
_ADDR_FREE = re.compile(r"[^\n!?;]{4,90}")
_ADDR_CUT = re.compile(r"(?<![A-Z][a-z]?)\.(?:[ \t]|$)|\b(?:and|but|because|since|please|thanks|thank|so|which|"
                       r"where|when|if|or|by|before|after|until|asap|tomorrow|today)\b")


class StreetAddressRecognizer(_OurRecognizer):
    """US/UK/EU street addresses, extended over unit, city, state, postcode and country."""

    ENTITY = "STREET_ADDRESS"
    CONTEXT = ["address", "live", "lives", "living", "ship", "shipping", "deliver", "delivery", "street", "apartment"]

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        lex = _lexicon()
        out: list[RecognizerResult] = []
        spans: list[tuple[int, int, float]] = []
        has_digit = any(c.isdigit() for c in text)
        if has_digit:
            unit_led = {m.start() for m in _UNIT_STREET.finditer(text)}
            for m in list(_US_CORE.finditer(text)) + list(_UNIT_STREET.finditer(text)):
                name_words = m.group("name").split()
                suf = m.group("suf").lower()
                words_low = [w.lower().strip(".") for w in name_words]
                if suf in _RISKY_SUFFIXES and m.start() not in unit_led and \
                        self._extend_left(text, m.start()) == m.start() and \
                        all(w in lex.narrow_common or w.isdigit() for w in words_low):
                    # "2 Day Pass" is a product; "3786 Ball Burg Suite 997, ..., NH 78496" is an address
                    if not (_SECONDARY.match(text, m.end()) or self._extend_right(text, m.end(), lex)[1] > 0):
                        continue
                if all(w in lex.stop for w in words_low):
                    continue
                spans.append((m.start(), m.end(), 0.75))
            for m in _US_LOWER.finditer(text):
                words = m.group("name").split()
                if any(w in lex.stop for w in words):
                    continue
                spans.append((m.start(), m.end(), 0.5))
            for rx, sc in ((_EU_A, 0.7), (_EU_B, 0.7), (_DE_A, 0.7), (_DE_B, 0.7), (_DE_C, 0.6),
                           (_GENERIC_PC_STREET, 0.6), (_TR, 0.65), (_PO_BOX, 0.7)):
                for m in rx.finditer(text):
                    if rx is _GENERIC_PC_STREET:  # "Build 3, 4000 Users": the word after the number is no city
                        city = _rx(r"[^\p{Lu}]*\d[ \t]+([\p{L}\p{M}\-]+)").match(text, m.end())
                        low = city.group(1).lower() if city else ""
                        if low not in lex.places and (low in lex.narrow_common or _singular(low, lex)):
                            continue
                    spans.append((m.start(), m.end(), sc))
        for m in _EU_C.finditer(text):
            spans.append((m.start(), m.end(), 0.5))
        if not has_digit:  # "Av Simões, S/N" (sem número)
            for m in _EU_B.finditer(text):
                spans.append((m.start(), m.end(), 0.6))
        # resolve overlaps among our own core matches (keep longest), then extend each
        spans.sort(key=lambda x: (x[0], -(x[1] - x[0])))
        merged: list[list] = []
        for s, e, sc in spans:
            if merged and s < merged[-1][1]:
                if e > merged[-1][1]:
                    merged[-1][1] = e
                merged[-1][2] = max(merged[-1][2], sc)
                continue
            merged.append([s, e, sc])
        covered_to = -1
        for s, e, sc in merged:
            if s < covered_to:
                continue
            s = self._extend_left(text, s)
            e, bonus = self._extend_right(text, e, lex)
            covered_to = e
            out.append(self._result(s, e, min(sc + bonus, 0.95), "street address"))
        # context-anchored free-form addresses ("my address is H.No. 669, Sehgal Nagar, Berhampur 500080")
        if has_digit:
            for t in _ADDR_TRIGGER.finditer(text):
                fm = _ADDR_FREE.match(text, t.end())
                if not fm:
                    continue
                seg = fm.group(0)
                if _rx(r"[<>=\"{}\[\]`]").search(seg):
                    continue  # markup or code (address="192.168.0.20:22000"), not a postal address
                cut = _ADDR_CUT.search(seg)
                if cut:
                    seg = seg[:cut.start()]
                seg = seg.rstrip(" \t,.-")
                if len(seg) < 6 or not _rx(r"\d").search(seg) or not (
                        _rx(r"\p{Lu}").search(seg) or _rx(rf"(?i)\b(?:{_EU_TYPE_ANY}|{_SUFFIX_ALT})\b|#[ \t]*\d").search(seg)):
                    continue
                if not (_rx(r"[\d#]").match(seg) or _rx(rf"(?i)\b(?:{_SUFFIX_ALT}|{_EU_TYPE_ANY})\b").search(seg)
                        or _rx(rf"\b{_UK_PC}\b|\b\d{{5,6}}\b|\b\d{{4}}[ ]?[A-Z]{{2}}\b").search(seg)):
                    continue
                s = t.end()
                out.append(self._result(s, s + len(seg), 0.55, "address after context phrase"))
        return out

    @staticmethod
    def _extend_left(text: str, s: int) -> int:
        m = _PRE_UNIT.search(text[max(0, s - 40):s])
        return s - len(m.group(0)) if m else s

    @staticmethod
    def _extend_right(text: str, e: int, lex: _Lexicon) -> tuple[int, float]:
        bonus = 0.0
        for _ in range(3):
            m = _SECONDARY.match(text, e)
            if not m:
                break
            e = m.end()
        for _ in range(5):
            matched = False
            if _rx(r"(?<![\w.,])\d{4,5}$").search(text[max(0, e - 6):e]):  # "..., 76613" then the city
                m = re.compile(rf"[ \t]+{_CITY}").match(text, e)
                if m and not all(w.lower() in lex.narrow_common for w in _rx(r"[\p{L}]+").findall(m.group(0))):
                    e = m.end()
                    bonus = 0.1
                    continue
            for kind, rx in _EXT_SEGMENTS:
                m = rx.match(text, e)
                if not m:
                    continue
                if "st" in m.groupdict() and m.group("st") and m.group("st") not in _US_STATES:
                    continue
                if m.groupdict().get("city"):
                    city_words = [w.lower() for w in _rx(r"[\p{L}]+").findall(m.group("city"))]
                    if all(w in lex.narrow_common and w not in lex.places for w in city_words):
                        continue
                if kind == "city":
                    # a bare city only after a comma/newline, and only if what follows does not continue a clause
                    nxt = text[m.end():m.end() + 2]
                    if nxt[:1].isalnum():
                        continue
                e = m.end()
                if kind not in ("city", "country", "province"):
                    bonus = 0.1
                matched = True
                break
            if not matched:
                break
        return e, bonus


