"""PII anonymization: recognizers, pseudonym consistency, leak verification, JSONL I/O, offline operation."""

from __future__ import annotations

import json
import socket

import pytest
import yaml

from slm_pipeline.config import AnonymizeConfig
from slm_pipeline.core import anonymize as anon_mod
from slm_pipeline.core.anonymize import (
    AnonymizationReport,
    Anonymizer,
    Finding,
    anonymize_jsonl,
    find_leaks,
    load_canaries,
    record_texts,
)


@pytest.fixture(scope="module")
def anon() -> Anonymizer:
    return Anonymizer(AnonymizeConfig(canaries_file=None))


@pytest.fixture(scope="module")
def fake_anon(anon) -> Anonymizer:
    return Anonymizer(AnonymizeConfig(canaries_file=None, replacement="fake"), analyzer=anon.analyzer)


def spans(anon: Anonymizer, text: str) -> list[tuple[str, str]]:
    return [(f.entity_type, f.text) for f in anon.analyze_texts([text])[0]]


def detected(anon: Anonymizer, text: str, value: str, etype: str | None = None) -> bool:
    """True if `value` (a substring of text) is fully covered by one finding (of `etype` if given)."""
    s = text.index(value)
    e = s + len(value)
    return any(f.start <= s and e <= f.end and (etype is None or f.entity_type == etype)
               for f in anon.analyze_texts([text])[0])


# ------------------------------------------------------------------------------------------------ recognizers


@pytest.mark.parametrize("text,value", [
    ("I live at 221 Baker Street now.", "221 Baker Street"),
    ("Ship to 1600 Elm Ave, Apt 4B, Springfield, IL 62704 please", "1600 Elm Ave, Apt 4B, Springfield, IL 62704"),
    ("Flat 3, 12 Rue de Rivoli, 75001 Paris", "Flat 3, 12 Rue de Rivoli, 75001 Paris"),
    ("Meine Adresse: Friedrichstraße 123, 10117 Berlin", "Friedrichstraße 123, 10117 Berlin"),
    ("Send it to Calle Mayor 12, 28013 Madrid.", "Calle Mayor 12, 28013 Madrid"),
    ("The bike is at Via Giuseppe Garibaldi 15", "Via Giuseppe Garibaldi 15"),
    ("Deliver to 77763 Tony Village Suite 690 tomorrow", "77763 Tony Village Suite 690"),
    ("my address is 12 oak lane, bristol bs1 4dj", "12 oak lane, bristol bs1 4dj"),
    ("Prinsengracht 263, 1016 GV Amsterdam", "Prinsengracht 263, 1016 GV Amsterdam"),
    ("Home: 10 Downing St, London SW1A 2AA", "10 Downing St, London SW1A 2AA"),
])
def test_street_address_formats(anon, text, value):
    assert detected(anon, text, value, "STREET_ADDRESS"), spans(anon, text)


def test_address_containing_postcode_is_one_span(anon):
    fs = anon.analyze_texts(["Ship to 1600 Elm Ave, Springfield, IL 62704 today"])[0]
    assert [f.entity_type for f in fs] == ["STREET_ADDRESS"]


@pytest.mark.parametrize("text", [
    "I bought 2 Day Passes for the weekend.",
    "Bike 4521 at Central Station has a flat tyre.",
    "Dock 5 Central Station is full after 5pm.",
    "Penny Lane dock is out of service.",
    "The Green Line stops at Park Street.",
])
def test_address_negatives(anon, text):
    assert not [t for t, _ in spans(anon, text) if t == "STREET_ADDRESS"], spans(anon, text)


@pytest.mark.parametrize("phone", [
    "+44 20 7946 0321", "07700 900123", "+49 30 1234567", "(415) 555-0182", "415.555.0199", "+1-212-555-0147",
    "+33 1 42 68 53 00", "+44 (0)20 7946 0958", "030/1234567", "001-477-683-5337x40681", "+46 (0)8 080 636 08",
    "+90(008)0636083", "(0161) 496 0123",
])
def test_phone_formats(anon, phone):
    text = f"You can reach me on {phone} after six."
    assert detected(anon, text, phone, "PHONE_NUMBER"), spans(anon, text)


@pytest.mark.parametrize("text", [
    "It happened on 2024-05-12 at 10:30.",
    "The e-bike costs $1,299.00 or 1 299 SEK monthly.",
    "Ticket 2024-05-17-0042 was closed.",
    "Update to version 3.2.1 of the app.",
    "Order ORD-123456 arrived.",
])
def test_phone_negatives(anon, text):
    assert not [t for t, _ in spans(anon, text) if t == "PHONE_NUMBER"], spans(anon, text)


@pytest.mark.parametrize("text,value,etype", [
    ("Where is order ORD-123456?", "ORD-123456", "ORDER_ID"),
    ("my order number is 48213377", "48213377", "ORDER_ID"),
    ("Status of order #552211 please", "552211", "ORDER_ID"),
    ("Please close ACC-774411.", "ACC-774411", "ACCOUNT_ID"),
    ("My account number is 12345678.", "12345678", "ACCOUNT_ID"),
    ("customer ID 99887766 has two cards", "99887766", "ACCOUNT_ID"),
    ("My postcode is SW1A 1AA.", "SW1A 1AA", "POSTCODE"),
    ("zip code 94103 is not accepted", "94103", "POSTCODE"),
    ("Do you deliver to K1A 0B1?", "K1A 0B1", "POSTCODE"),
    ("IBAN DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00", "IBAN_CODE"),
    ("iban fr76 3000 6000 0112 3456 7890 189", "fr76 3000 6000 0112 3456 7890 189", "IBAN_CODE"),
    ("GB29NWBK60161331926819 is mine", "GB29NWBK60161331926819", "IBAN_CODE"),
    ("card 4111-1111-1111-1111 declined", "4111-1111-1111-1111", "CREDIT_CARD"),
    ("mastercard 2221 0012 3412 3450 works", "2221 0012 3412 3450", "CREDIT_CARD"),
    ("amex 3782 822463 10005", "3782 822463 10005", "CREDIT_CARD"),
    ("My SSN is 123-45-6789.", "123-45-6789", "US_SSN"),
    ("social security number 123 45 6789", "123 45 6789", "US_SSN"),
    ("ssn: 078051120", "078051120", "US_SSN"),
    ("from 2a00:1450:4001:81b::200e and 192.168.1.20", "2a00:1450:4001:81b::200e", "IP_ADDRESS"),
    ("blocked from 81.2.69.160 and 192.168.1.20", "81.2.69.160", "IP_ADDRESS"),
    ("My driver's license number is D1234567.", "D1234567", "US_DRIVER_LICENSE"),
    ("DL# S530-460-71-012-0", "S530-460-71-012-0", "US_DRIVER_LICENSE"),
    ("driving licence no. 123 456 789", "123 456 789", "US_DRIVER_LICENSE"),
    ("write to maria dot lopez at gmail dot com", "maria dot lopez at gmail dot com", "EMAIL_ADDRESS"),
    ("Contact support@loopbike.example today", "support@loopbike.example", "EMAIL_ADDRESS"),
])
def test_identifier_recognizers(anon, text, value, etype):
    assert detected(anon, text, value, etype), spans(anon, text)


@pytest.mark.parametrize("text", [
    "Your booking reference is valid for 30 days.",
    "Account settings are under Profile.",
    "We are open 09:00-17:00, Monday to Friday.",
    "The Day Pass costs $12.50 and lasts 24 hours.",
    "Bike #4521 needs a new chain.",
])
def test_identifier_negatives(anon, text):
    assert spans(anon, text) == []


@pytest.mark.parametrize("text,value", [
    ("Hello, my name is Oluwaseun Adeyemi and I can't log in.", "Oluwaseun Adeyemi"),
    ("my name is john smith and my bike is stuck", "john smith"),
    ("This is Priya, the app crashed again.", "Priya"),
    ("Hi Siobhán, thanks for the help!", "Siobhán"),
    ("Thanks,\nBjörn Andersson", "Björn Andersson"),
    ("Dear Mr. Okafor, your refund is on its way.", "Mr. Okafor"),
    ("Dr. Ingrid Bergström approved the booking.", "Dr. Ingrid Bergström"),
    ("customer Kwame Mensah called twice", "Kwame Mensah"),
    ("Please ask Mohammed Al-Farsi at reception.", "Mohammed Al-Farsi"),
    ("Yesterday Nguyễn Thị Mai lost a helmet.", "Nguyễn Thị Mai"),
    ("José Luis Rodríguez García will pick up the bike.", "José Luis Rodríguez García"),
    ("-- Anna-Lena Schmidt", "Anna-Lena Schmidt"),
    ("The rental was under Emily Clarke's profile.", "Emily Clarke"),
    ("send the receipt to ines contreras please", "ines contreras"),
])
def test_person_recall(anon, text, value):
    assert detected(anon, text, value), spans(anon, text)


@pytest.mark.parametrize("text", [
    "Open the LoopBike app and choose Report Issue.",
    "The Day Pass is cheaper than the Annual Pass.",
    "Victoria Station and Central Station are our busiest hubs.",
    "Mark the bike as damaged in the app.",
    "Grace period for returns is 15 minutes.",
    "Will the app work on Android 14?",
    "We now operate in Paris, Berlin and Austin.",
    "Hi team, thanks for contacting LoopBike Support!",
    "It took 25 min from Canal Street to Liberty Plaza.",
    "Apple Pay and Google Pay are accepted.",
    "The ride from San Francisco to New York was long.",
])
def test_person_negatives(anon, text):
    assert spans(anon, text) == []


def test_streets_with_person_names_are_addresses(anon):
    fs = anon.analyze_texts(["Please deliver to 42 Maria Lopez Street."])[0]
    assert [f.entity_type for f in fs] == ["STREET_ADDRESS"]


def test_gated_ner_matches_full_ner(anon):
    """Skipping NER for sentences without unexplained capitalized words must not change what is found."""
    full = Anonymizer(AnonymizeConfig(canaries_file=None, ner_gating=False), analyzer=anon.analyzer)
    texts = ["Yesterday Cornelius Obi lost a helmet near the river path.", "Kwame said the dock is broken.",
             "The Day Pass costs $5 at Central Station.", "Hi, this is Maria Lopez from 221 Baker Street."]
    g = [[f.text for f in fs] for fs in anon.analyze_texts(texts)]
    u = [[f.text for f in fs] for fs in full.analyze_texts(texts)]
    assert g == u


def test_analyzer_usable_on_its_own(anon):
    res = anon.analyzer.analyze("Call Maria Lopez at +44 20 7946 0321", language="en", score_threshold=0.35)
    assert {"PERSON", "PHONE_NUMBER"} <= {r.entity_type for r in res}


# --------------------------------------------------------------------------------------------- pseudonyms


CHAT = {
    "id": "chat-1", "source": "chats.jsonl", "kind": "chat", "channel": "web",
    "messages": [
        {"role": "user", "content": "Hi, I'm Maria Lopez. Call me on +44 20 7946 0321 or maria.lopez@example.com."},
        {"role": "assistant", "content": "Thanks Maria! Is +44 20 7946 0321 still your number, Ms. Lopez?"},
        {"role": "user", "content": "Yes. My husband John Baker rents too; his email is jbaker@example.org."},
        {"role": "assistant", "content": "Noted, Maria and John. Refund for ORD-123456 is on its way."},
    ],
}


def test_tag_mode_consistent_across_turns(anon):
    out, report = anon.anonymize_records([CHAT])
    msgs = [m["content"] for m in out[0]["messages"]]
    assert "<PERSON_1>" in msgs[0] and "<PHONE_NUMBER_1>" in msgs[0] and "<EMAIL_ADDRESS_1>" in msgs[0]
    assert msgs[1].count("<PERSON_1>") == 2 and "<PHONE_NUMBER_1>" in msgs[1]
    assert "<PERSON_2>" in msgs[2] and "<EMAIL_ADDRESS_2>" in msgs[2]
    assert "<PERSON_1>" in msgs[3] and "<PERSON_2>" in msgs[3] and "<ORDER_ID_1>" in msgs[3]
    for raw in ("Maria", "Lopez", "John", "Baker", "7946", "example.com", "ORD-123456"):
        assert all(raw not in m for m in msgs), raw
    assert report.leaks == [] and report.n_records == 1 and report.n_texts == 4
    assert report.entity_counts["PERSON"] >= 5


def test_input_not_mutated_and_keys_preserved(anon):
    before = json.dumps(CHAT, sort_keys=True)
    out, _ = anon.anonymize_records([CHAT])
    assert json.dumps(CHAT, sort_keys=True) == before
    assert out[0]["channel"] == "web" and out[0]["id"] == "chat-1" and out[0]["kind"] == "chat"
    assert [m["role"] for m in out[0]["messages"]] == [m["role"] for m in CHAT["messages"]]


def test_numbering_is_per_record(anon):
    recs = [{"id": "a", "text": "Call Maria Lopez."}, {"id": "b", "text": "Call John Baker."}]
    out, _ = anon.anonymize_records(recs)
    assert out[0]["text"] == "Call <PERSON_1>." and out[1]["text"] == "Call <PERSON_1>."


def test_fake_mode_consistent_and_deterministic(fake_anon):
    out1, rep = fake_anon.anonymize_records([CHAT])
    out2, _ = fake_anon.anonymize_records([CHAT])
    assert out1 == out2  # seeded per record
    msgs = [m["content"] for m in out1[0]["messages"]]
    for raw in ("Maria", "Lopez", "John Baker", "7946 0321", "maria.lopez@example.com", "ORD-123456"):
        assert all(raw not in m for m in msgs), raw
    assert "<" not in "".join(msgs)  # realistic values, not tags
    full_fake = msgs[0].split("I'm ")[1].split(".")[0]
    first, last = full_fake.split()[0], full_fake.split()[-1]
    assert f"Thanks {first}!" in msgs[1] and f"Ms. {last}?" in msgs[1]
    phone = next(w for w in msgs[0].split() if w.startswith("+1-202-555-"))
    assert phone.rstrip(".") in msgs[1]
    assert rep.leaks == []


def test_anonymize_texts_independent(anon, fake_anon):
    out = anon.anonymize_texts(["Call Maria on 07700 900123", "", "No PII here."])
    assert out == ["Call <PERSON_1> on <PHONE_NUMBER_1>", "", "No PII here."]
    fo = fake_anon.anonymize_texts(["Call Maria on 07700 900123"])[0]
    assert "Maria" not in fo and "900123" not in fo


def test_record_texts():
    assert record_texts(CHAT)[0].startswith("Hi, I'm Maria") and len(record_texts(CHAT)) == 4
    assert record_texts({"text": "a", "messages": [{"role": "user", "content": "b"}, {"role": "x"}]}) == ["a", "b"]


def test_progress_and_report(anon):
    calls = []
    recs = [{"id": str(i), "kind": "faq", "text": f"Question {i} from Maria Lopez"} for i in range(300)]
    out, report = anon.anonymize_records(recs, progress=lambda d, t: calls.append((d, t)))
    assert len(out) == 300 and calls[-1] == (300, 300) and len(calls) >= 2
    assert isinstance(report, AnonymizationReport) and report.texts_per_second > 0
    assert report.examples and all("Maria" not in e and "Lopez" not in e for e in report.examples)
    json.dumps(report.to_dict())


# ---------------------------------------------------------------------------------------------- leak checks

CANARIES = [
    ("PERSON", "Zebulon Quarrington"),
    ("EMAIL_ADDRESS", "canary.zq@example.net"),
    ("PHONE_NUMBER", "+44 20 7946 0999"),
    ("STREET_ADDRESS", "4417 Quarry Hollow Road"),
    ("CREDIT_CARD", "4000 0566 5566 5556"),
    ("IBAN_CODE", "DE44 5001 0517 5407 3249 31"),
    ("US_SSN", "219-09-9999"),
    ("IP_ADDRESS", "81.2.69.177"),  # public: documentation/private ranges are kept (keep_non_public_ips)
    ("US_DRIVER_LICENSE", "Q7654321"),
    ("ORDER_ID", "ORD-904417"),
    ("ACCOUNT_ID", "ACC-551207"),
    ("POSTCODE", "EC1A 1BB"),
]
CANARY_TEXT = {
    "PERSON": "This is {v}, I need help.",
    "EMAIL_ADDRESS": "Mail me at {v}.",
    "PHONE_NUMBER": "Ring {v} tonight.",
    "STREET_ADDRESS": "Ship to {v}.",
    "CREDIT_CARD": "Charge card {v}.",
    "IBAN_CODE": "Refund to {v}.",
    "US_SSN": "SSN {v}.",
    "IP_ADDRESS": "Blocked from {v}.",
    "US_DRIVER_LICENSE": "driver's license {v}",
    "ORDER_ID": "Order {v} is late.",
    "ACCOUNT_ID": "Close {v}.",
    "POSTCODE": "My postcode is {v}.",
}


def test_canaries_never_survive(anon, tmp_path):
    path = tmp_path / "canaries.yaml"
    path.write_text(yaml.safe_dump({"canaries": [{"type": t, "value": v} for t, v in CANARIES]}))
    cfg = AnonymizeConfig(canaries_file=str(path))
    a = Anonymizer(cfg, analyzer=anon.analyzer)
    recs = [{"id": f"r{i}", "kind": "chat", "messages": [
        {"role": "user", "content": CANARY_TEXT[t].format(v=v)},
        {"role": "assistant", "content": "Thanks, noted."}]} for i, (t, v) in enumerate(CANARIES)]
    recs.append({"id": "doc", "kind": "doc", "text": " ".join(CANARY_TEXT[t].format(v=v) for t, v in CANARIES)})
    out, report = a.anonymize_records(recs)
    blob = json.dumps(out, ensure_ascii=False)
    for _t, v in CANARIES:
        assert v not in blob
    assert report.leaks == [] and report.n_canaries == len(CANARIES)
    assert find_leaks([("x", blob)], CANARIES) == []


def test_undetected_canary_is_reported_without_value(anon, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"canaries": [{"type": "SECRET", "value": "xylophone-kumquat"}]}))
    a = Anonymizer(AnonymizeConfig(canaries_file=str(path)), analyzer=anon.analyzer)
    _, report = a.anonymize_records([{"id": "r9", "source": "chats/x.jsonl", "line": 7,
                                      "text": "the code word is xylophone-kumquat"}])
    assert len(report.leaks) == 1
    leak = report.leaks[0]
    assert (leak["record_id"], leak["type"], leak["file"], leak["line"]) == ("r9", "SECRET", "chats/x.jsonl", 7)
    assert leak["value"] == "xy… (17 chars)" and leak["found_by"] == "canary" and "canary" in leak["fix"]
    assert "kumquat" not in json.dumps(report.to_dict())


def test_find_leaks_normalization():
    texts = [("a", "Card: 4111 1111 1111 1111, call +44 20 7946 0321"), ("b", "Hello   MARIA\n lopez!"),
             ("c", "nothing here"), ("d", "iban de89370400440532013000")]
    values = [("CREDIT_CARD", "4111-1111-1111-1111"), ("PHONE_NUMBER", "+44 (20) 7946-0321"),
              ("PERSON", "Maria Lopez"), ("IBAN_CODE", "DE89 3704 0044 0532 0130 00"), ("PERSON", "Li")]
    leaks = find_leaks(texts, values)
    got = {(x["record_id"], x["type"]) for x in leaks}
    assert {("a", "CREDIT_CARD"), ("a", "PHONE_NUMBER"), ("b", "PERSON"), ("d", "IBAN_CODE")} == got
    # word boundaries: "Ann" must not match inside "Annual"
    assert find_leaks([("x", "Annual Pass")], [("PERSON", "Ann")]) == []
    # values are masked, never written out
    assert all(set(x) >= {"record_id", "type", "value", "line", "found_by", "fix"} for x in leaks)
    assert "Lopez" not in json.dumps(leaks) and "4111" not in json.dumps(leaks)


def test_load_canaries(tmp_path):
    assert load_canaries(tmp_path / "missing.yaml") == []
    assert load_canaries(None) == []
    p = tmp_path / "c.yaml"
    p.write_text("canaries:\n  - {type: PERSON, value: Zed Q}\n")
    assert load_canaries(p) == [("PERSON", "Zed Q", "canary")]
    p.write_text("canaries: 5\n")
    with pytest.raises(ValueError, match="c.yaml"):
        load_canaries(p)


# ------------------------------------------------------------------------------------------------- JSONL


def test_anonymize_jsonl_order_and_keys(anon, tmp_path):
    src = tmp_path / "in.jsonl"
    rows = [{"text": f"Row {i}: call Maria Lopez on 07700 90012{i}", "n": i} for i in range(5)]
    rows.insert(2, {"text": "no pii at all", "n": 99})
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    dst = tmp_path / "out" / "out.jsonl"
    report = anonymize_jsonl(src, dst, anonymizer=anon)
    got = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [g["n"] for g in got] == [r["n"] for r in rows]
    assert got[2]["text"] == "no pii at all"
    assert all("Maria" not in g["text"] and "<PERSON_1>" in g["text"] for g in got if g["n"] != 99)
    assert report["n_records"] == 6 and report["leaks"] == [] and report["entity_counts"]["PERSON"] == 5
    json.dumps(report)


@pytest.mark.parametrize("bad,msg", [
    ('{"text": "ok"}\n{"text": broken\n', "in.jsonl:2: malformed JSON"),
    ('{"text": "ok"}\n[1, 2]\n', "in.jsonl:2: expected a JSON object"),
    ('{"text": "ok"}\n\n{"body": "x"}\n', "in.jsonl:3: missing string field 'text'"),
])
def test_anonymize_jsonl_malformed_line(anon, tmp_path, bad, msg):
    src = tmp_path / "in.jsonl"
    src.write_text(bad)
    with pytest.raises(ValueError) as e:
        anonymize_jsonl(src, tmp_path / "out.jsonl", anonymizer=anon)
    assert msg in str(e.value)
    assert not (tmp_path / "out.jsonl").exists()


# ------------------------------------------------------------------------------------------------ offline


def test_runs_with_network_blocked(anon, monkeypatch):
    attempts = []

    def blocked(*args, **kwargs):
        attempts.append(args)
        raise OSError("network blocked in test")

    monkeypatch.setattr(socket.socket, "connect", blocked)
    monkeypatch.setattr(socket.socket, "connect_ex", blocked)
    monkeypatch.setattr(socket, "getaddrinfo", blocked)
    monkeypatch.setattr(socket, "create_connection", blocked)
    # a fresh offline extractor, initialised while the network is blocked
    monkeypatch.setattr(anon_mod.common, "_OFFLINE_DONE", False)  # the guard lives in common.py
    anon_mod.make_offline()
    fs = anon.analyze_texts(["Write to maria.lopez@example.co.uk or call 07700 900123, Maria."])[0]
    assert {"EMAIL_ADDRESS", "PHONE_NUMBER", "PERSON"} <= {f.entity_type for f in fs}
    from presidio_analyzer.predefined_recognizers import EmailRecognizer
    assert EmailRecognizer().validate_result("someone@mail.example.co.uk") is True
    assert attempts == []


def test_finding_is_small_dataclass():
    f = Finding("PERSON", 0, 5, 0.9, "Maria")
    assert f.entity_type == "PERSON" and f.text == "Maria"


# ---------------------------------------------------------------------------------------------------------
# International address blocks and names with initials
# ---------------------------------------------------------------------------------------------------------

def _survivors(out: str, words: list[str]) -> list[str]:
    import re as _re

    return [w for w in words if _re.search(rf"(?<!\w){_re.escape(w)}(?!\w)", out, _re.I)]


@pytest.mark.parametrize("text,gone", [
    # unit/floor tail, "postcode city" line and a country line belong to the street line above them
    ("Deliver to:\nAgnieszka Nowak\nul. Długa 15 m. 4\n80-827 Gdańsk\nPolska", ["Długa", "Gdańsk", "Polska"]),
    ("Rua das Flores 88, 1.º Esq.\n4050-262 Porto\nPortugal", ["Esq", "4050", "Portugal"]),
    ("Calle de Alcalá 120, 3º B\n28009 Madrid\nEspaña", ["Alcalá", "28009", "España"]),
    ("Kelly Moran\n45 Birch Lane\nSuite 300\nAlbany, NY 12207\nUSA", ["Suite", "Albany", "USA"]),
    ("Sipho Dlamini\nPlot 14, Kgale View\nGaborone\nBotswana", ["Plot", "Kgale", "Gaborone", "Botswana"]),
    # a street line without a street-type word, recognised by the postcode/city line under it
    ("Recipient: Sato Kenji\n1-2-3 Ebisu, Shibuya-ku\nTokyo 150-0013\nJapan", ["Ebisu", "Shibuya", "Japan"]),
    ("Mária Kovács\nRákóczi út 12.\n1072 Budapest\nMagyarország", ["Rákóczi", "1072", "Magyarország"]),
    # after an address cue the first line with a house number is the street, even without a postcode line
    ("Recipient: Tomás Ferreyra\nItuzaingó 1520\nMontevideo", ["Ituzaingó", "1520", "Montevideo"]),
    # a short lower-case street type inside the street name, then "postcode city" on the same line
    ("it's Sirje Tamm, Narva mnt 7-12, 10117 Tallinn, by the back door", ["Narva", "mnt", "10117", "Tallinn"]),
    # comma-separated on one line: unit, district, city, state, postcode
    ("Please ship to Av. Paulista 1578, conj. 42, Bela Vista, São Paulo - SP, 01310-200",
     ["conj", "Bela", "Vista", "01310"]),
])
def test_international_address_blocks_are_one_span(anon, text, gone):
    out = anon.anonymize_texts([text])[0]
    assert _survivors(out, gone) == [], out


def test_address_block_stops_at_a_phone_line(anon):
    fs = anon.analyze_texts(["Kelly Moran\n45 Birch Lane\nAlbany, NY 12207\n(518) 555-0142"])[0]
    street = [f for f in fs if f.entity_type == "STREET_ADDRESS"]
    assert street and "555" not in street[0].text
    assert any(f.entity_type == "PHONE_NUMBER" for f in fs)


@pytest.mark.parametrize("text,names", [
    ("Approved by M. T. Okonjo and signed by R.K. Bhattacharya.", ["Okonjo", "Bhattacharya"]),
    ("Checked by: P. Novotná", ["Novotná"]),
    ("Minutes taken by L. de Groot; tasks assigned to van Leeuwen and Visser.", ["Groot", "Leeuwen", "Visser"]),
    ("Lindqvist told Haraldsen the build was green.", ["Lindqvist", "Haraldsen"]),
    ("Priya: done. Tomasz: testing.", ["Priya", "Tomasz"]),
    ("Amaru and Thandiwe Nkosi arrived late.", ["Amaru", "Nkosi"]),
    ("my son Hunter is sick today", ["Hunter"]),
    ("Interview panel: Okwuosa, Mäkinen.", ["Okwuosa", "Mäkinen"]),
    # coordinated with a detected person
    ('Message from Oksana Melnyk to Bakhyt: "see you at six"', ["Oksana", "Melnyk", "Bakhyt"]),
    ("I was with Sarah Jones and Nkechi at the airport.", ["Sarah", "Jones", "Nkechi"]),
])
def test_names_with_initials_lists_and_speakers(anon, text, names):
    out = anon.anonymize_texts([text])[0]
    assert _survivors(out, names) == [], out


def test_florida_style_driver_license_with_context(anon):
    out = anon.anonymize_texts(["Driver: FL license K612-804-55-913-2 on file"])[0]
    assert "K612" not in out


def test_address_tail_stops_at_sentence_end_and_keeps_names_separate(anon):
    text = "Kelly Moran, 45 Birch Lane, Albany, NY 12207. Thanks, Kelly"
    fs = anon.analyze_texts([text])[0]
    street = [f for f in fs if f.entity_type == "STREET_ADDRESS"]
    assert street and street[0].text.endswith("12207")
    assert [f.text for f in fs if f.entity_type == "PERSON"] == ["Kelly Moran", "Kelly"]
