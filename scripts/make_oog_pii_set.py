"""Generate the out-of-gazetteer PII labeled set (slm_pipeline/data/pii_out_of_gazetteer.jsonl). Run once; the
output is committed, so evaluation never depends on this script's randomness or Faker version.

Out of gazetteer means: no person-name token is in the name lists the detector loads (all of Faker's person
providers) and no street/city comes from a list the recognizers were written with. Names are hand-written from
many naming traditions and filtered against the detector's lexicon; streets, cities and postcodes come from
Faker *address* providers (which the detector does not load) of non-English locales, composed into multi-line
local formats with apartments, regions and countries; sentences are hand-written support messages that share
no template with the synthetic set (slm_pipeline/data/pii_eval_templates.yaml).

    .venv/bin/python scripts/make_oog_pii_set.py [--seed 14] [--out slm_pipeline/data/pii_out_of_gazetteer.jsonl]
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from faker import Faker

from slm_pipeline.core.anonymize.lexicons import _lexicon, _norm_word, _strip_accents

# Hand-written given names and surnames (Georgian, Armenian, Icelandic, Yoruba, Igbo, Maori, Basque, Welsh,
# Sami, Hungarian, Greek, Albanian, Tamil, Telugu, Filipino, Hawaiian, Amharic, Kazakh, Mongolian, Finnish,
# Estonian, Latvian, Slavic patronymics...); kept only when absent from the detector's name lists.
FIRST = """Faina Tamar Nino Ketevan Levani Zurab Anahit Gohar Tigran Vardan Sigrún Hrafnhildur Þórdís Guðrún
Eyvindur Ragnheiður Oluwaseun Adebayo Temitope Chidinma Obinna Nkechi Ngozi Ikenna Wiremu Aroha Tamati Mereana
Rangi Hinemoa Iker Ainhoa Unai Garazi Leire Xabier Iolo Rhiannon Gwenllian Dafydd Cerys Siôn Áile Máret Ánte
Biret Ildikó Zsófia Bence Csilla Gyöngyi Levente Eleftheria Stavros Paraskevi Theodoros Dritan Arbër Blerta
Mirela Valbona Kavitha Senthil Murugan Thenmozhi Lakshmanan Venkatesh Sravani Bayani Maricel Rowena Dalisay Leilani
Kealoha Makana Keoni Tsehay Abebe Selamawit Yohannes Aigerim Nurlan Dinara Yerlan Batbayar Oyunchimeg Sarangerel
Temuujin Aino Eino Helmi Väinö Tõnu Mirjam Kadri Margus Ilze Jānis Dace Aivars Rūta Yefim Svetozar Radomir Dobroslava
Bogumiła Wiesław Przemysław Fionnuala Caoimhe Niamh Saoirse Oisín Tadhg Ruairí Kallisto Anouk Wietske Sjoerd
Hidde Tjitske""".split()
LAST = """Yefremova Kónya Jughashvili Kvaratskhelia Beridze Tsereteli Hovhannisyan Sargsyan Mkrtchyan Ghukasyan
Þorsteinsdóttir Guðmundsson Ragnarsdóttir Sigurðardóttir Adeyemi Okonkwo Babatunde Ogunleye Nwachukwu Eze Ihejirika
Ngata Parata Tamihana Te Rangi Waititi Etxeberria Agirre Goikoetxea Urrutia Zubizarreta Llewellyn Prydderch Gruffydd
Vaughan-Thomas Aikio Somby Gaup Magga Sárközi Fekete-Szabó Vörösmarty Bárdossy Papadakis Karagiannis Theodorakopoulos
Hoxha Berisha Krasniqi Gashi Subramaniam Venkataraman Ramalingam Chinnaswamy Dimaculangan Macaraeg Bautista-Reyes
Kahananui Kealamakia Haile Gebremedhin Tesfaye Zhakupov Nurpeisova Baatar Ganbold Tserendorj Kallio Vähämäki
Heikkilä-Ojala Tamm Saar Kask Mägi Ozoliņš Bērziņš Kalniņa Zbrożek Wierzbicki Dąbrowska-Kuś Ní Bhriain Ó Súilleabháin
Mac Giolla Íosa Wijnaldum Hoekstra Tjeerdsma Bosgraaf Nieuwenhuizen""".split()


def out_of_gazetteer(name: str) -> bool:
    lex = _lexicon()
    for tok in re.split(r"[\s\-]+", name):
        low = _norm_word(tok)
        if len(low) < 2:
            continue
        if low in lex.first or low in lex.last or _strip_accents(low) in lex.first or \
                _strip_accents(low) in lex.last or low in lex.places or low in lex.narrow_common or low in lex.heads:
            return False
    return True


LOCALES = ["fi_FI", "hu_HU", "da_DK", "pt_PT", "pt_BR", "pl_PL", "cs_CZ", "sv_SE", "no_NO", "sk_SK", "sl_SI",
           "hr_HR", "id_ID", "nl_NL", "ro_RO"]
COUNTRY = {"fi_FI": "Finland", "hu_HU": "Hungary", "da_DK": "Denmark", "pt_PT": "Portugal", "pt_BR": "Brazil",
           "pl_PL": "Poland", "cs_CZ": "Czech Republic", "sv_SE": "Sweden", "no_NO": "Norway", "sk_SK": "Slovakia",
           "sl_SI": "Slovenia", "hr_HR": "Croatia", "id_ID": "Indonesia", "nl_NL": "Netherlands", "ro_RO": "Romania"}
# Estonian streets written by hand (Faker has no et_EE address provider)
ET_STREETS = ["Pärnu mnt", "Narva maantee", "Kalevipoja puiestee", "Lai tänav", "Vana-Kalamaja", "Tähe tänav",
              "Ropka tee", "Jõe põik", "Vaksali tänav", "Rüütli tänav"]
ET_CITIES = [("10141", "Tallinn"), ("50409", "Tartu"), ("80010", "Pärnu"), ("20308", "Narva"), ("41531", "Jõhvi")]


def address(rng: random.Random, loc: str, f: Faker) -> str:
    """A local-format address, 1-4 lines (the whole string is the labeled span)."""
    if loc == "et_EE":
        pc, city = rng.choice(ET_CITIES)
        street, num = rng.choice(ET_STREETS), f"{rng.randint(1, 120)}{rng.choice(['', '-' + str(rng.randint(1, 40))])}"
        return rng.choice([f"{street} {num}, {pc} {city}, Estonia", f"{street} {num}\n{pc} {city}\nEstonia",
                           f"{street} {num}, {city}"])
    street = f.street_name()
    num = str(rng.randint(1, 240))
    pc, city = f.postcode(), f.city()
    apt = rng.choice(["", "", f" Apt. {rng.randint(2, 990)}", f" {rng.choice('ABC')} {rng.randint(1, 40)}",
                      f", {rng.randint(1, 6)}. th."])
    country = COUNTRY[loc]
    if loc == "hu_HU":
        forms = [f"{pc} {city}, {street} {num}.", f"{city}\n{street} {num}.\n{pc}", f"{street} {num}.\n{pc} {city}"]
    elif loc == "pt_BR":
        uf = f.estado_sigla()
        forms = [f"{street}, {num} - {f.bairro()}\n{city} - {uf}\n{pc}", f"{street}, {num}, {city}/{uf}, {pc}"]
    elif loc == "id_ID":
        forms = [f"{street} No. {num}\n{city}, {f.administrative_unit()} {pc}", f"{street} No. {num}, {city}"]
    else:
        forms = [f"{street} {num}{apt}\n{pc} {city}\n{country}", f"{street} {num}{apt}, {pc} {city}",
                 f"{street} {num}{apt}\n{pc} {city}", f"{street} {num}, {city}, {country} {pc}",
                 f"{street} {num}{apt}"]
    return rng.choice(forms)


# {P} full name, {F} given, {L}/{L2}/{L3} surnames, {I} initial, {A} address; all hand-written for this set.
T_PERSON = [
    "{P} here, my bike wouldn't unlock at the depot this morning.",
    "Please forward this to {F} {I}. {L}'s manager, she handles refunds.",
    "The refund was approved by {P} on Tuesday, but I still haven't seen it.",
    "This troubleshooting guide was written by {L} and reviewed by {P}.",
    "Our story starts with the founders: {L}, {L2} and {L3}.",
    "I loved the {L} novel your agent recommended in the last chat.",
    "Can someone call me back? It's about {F} {L}'s account, she is my daughter.",
    "Spoke to {F} earlier and she said {L} would email me the invoice.",
    "cc: {P}, {F2} {L2}",
    "Kind regards,\n{P}\nFleet coordinator",
    "hi its {p}, the app keeps logging me out",
    "Photo by {P}. Used with permission.",
    "According to {L}, the charger was replaced last week.",
    "My colleague {P} booked the group ride for Friday.",
    "I am writing on behalf of my father, {P}, who cannot use the app.",
    "Was the complaint from {F} {I}. {L} ever answered?",
    "{L}'s team said the outage is fixed.",
    "Please ask {P} to confirm the transfer.",
    "Ticket reassigned to {F} by {P2}.",
    "The account holder is {P2}, not me.",
]
T_ADDRESS = [
    "Please send the replacement lock to:\n{A}",
    "My address changed, it is now {A}.",
    "Invoice address:\n{A}\nThank you!",
    "I live at {A} and the bike is parked outside.",
    "Deliver the helmet to {A} please, I'm home after 6.",
    "Shipping to\n{A}",
    "Could you update my billing address to {A}?",
    "The scooter was left near {A} yesterday evening.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--n-person", type=int, default=160)
    ap.add_argument("--n-address", type=int, default=160)
    ap.add_argument("--out", default="slm_pipeline/data/pii_out_of_gazetteer.jsonl")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    # 3+ letters: particles split off multi-word surnames ("Ó", "Te", "Ní") are not names on their own
    first = [n for n in dict.fromkeys(FIRST) if len(n) >= 3 and out_of_gazetteer(n)]
    last = [n for n in dict.fromkeys(LAST) if len(n) >= 3 and out_of_gazetteer(n)]
    print(f"given names {len(first)}/{len(FIRST)}, surnames {len(last)}/{len(LAST)} out of gazetteer")
    items = []

    def add(template: str, values: dict[str, str], etype: str, source: str) -> None:
        out, spans, pos = [], [], 0
        for m in re.finditer(r"\{(\w+)\}", template):
            out.append(template[pos:m.start()])
            start = sum(map(len, out))
            val = values[m.group(1)]
            out.append(val)
            if m.group(1) != "I":  # a lone initial is not a leak on its own
                spans.append([start, start + len(val), etype])
            pos = m.end()
        out.append(template[pos:])
        text = "".join(out)
        # "{F} {L}" and "{F} {I}. {L}" are one name: merge person spans joined by a space or an initial
        merged = []
        for s in spans:
            if merged and re.fullmatch(r" (?:[A-Z]\. )?", text[merged[-1][1]:s[0]]):
                merged[-1][1] = s[1]
            else:
                merged.append(s)
        items.append({"text": text, "spans": merged, "source": source})

    for _ in range(a.n_person):
        f1, f2 = rng.sample(first, 2)
        l1, l2, l3 = rng.sample(last, 3)
        t = rng.choice(T_PERSON)
        vals = {"P": f"{f1} {l1}", "P2": f"{f2} {l2}", "F": f1, "F2": f2, "L": l1, "L2": l2, "L3": l3,
                "I": rng.choice("ABDEGKMRST"), "p": f"{f1} {l1}".lower()}
        add(t, vals, "PERSON", "hand")
    locs = LOCALES + ["et_EE"]
    fakers = {loc: Faker(loc) for loc in LOCALES}
    for i, loc in enumerate(LOCALES):
        fakers[loc].seed_instance(a.seed + i)
    for _ in range(a.n_address):
        loc = rng.choice(locs)
        add(rng.choice(T_ADDRESS), {"A": address(rng, loc, fakers.get(loc))}, "STREET_ADDRESS", f"faker-address:{loc}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as fh:
        for it in items:
            fh.write(json.dumps(it, ensure_ascii=False) + "\n")
    print(f"wrote {len(items)} sentences to {a.out}")


if __name__ == "__main__":
    main()
