"""Precision on technical text and the leak check's report: PII-free configs/logs/commands stay unchanged, the
policy's product name and `anonymize.allow` are never PII, non-public IPs are kept, and a real product's docs
(../shared/corpora/syncthing-docs) plus chats with planted PII come out with every planted value gone and every
technical fact intact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from slm_pipeline.config import AnonymizeConfig, PipelineConfig
from slm_pipeline.core.anonymize import (
    AllowList,
    Anonymizer,
    PiiLeakError,
    find_leaks,
    format_leaks,
    load_canaries,
    non_public_ip,
    pipeline_anonymizer,
    record_texts,
)
from slm_pipeline.core.corpus import load_corpus

DATA = Path(__file__).parent / "data"
SYNCTHING = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "syncthing-docs"


@pytest.fixture(scope="module")
def anon() -> Anonymizer:
    return Anonymizer(AnonymizeConfig(canaries_file=None))


def test_technical_text_without_pii_is_unchanged(anon):
    recs = [json.loads(line) for line in (DATA / "technical_no_pii.jsonl").read_text().splitlines()]
    out, report = Anonymizer(anon.cfg, anon.analyzer, allow=["Syncthing"]).anonymize_records(recs)
    changed = [(r["id"], r["text"], o["text"]) for r, o in zip(recs, out, strict=True) if r["text"] != o["text"]]
    assert changed == [], changed
    assert report.entity_counts == {}


@pytest.mark.parametrize("value,kept", [
    ("127.0.0.1", True), ("0.0.0.0", True), ("::", True), ("::1", True), ("0.0.0.0/0", True), ("10.20.30.40", True),
    ("172.16.0.0/12", True), ("192.168.0.123", True), ("192.0.2.42", True), ("198.51.100.7", True),
    ("203.0.113.200", True), ("100.64.0.0/10", True), ("100.100.7.9", True), ("100.128.0.1", False),
    ("2001:db8::23:42", True), ("fe80::1%eth0", True), ("ff12::8384", True),
    ("81.2.69.142", False), ("125.190.151.7", False), ("2a00:1450:4001:81b::200e", False), ("not an ip", False),
])
def test_non_public_ip(value, kept):
    assert non_public_ip(value) is kept


def test_public_ips_replaced_non_public_kept_by_setting(anon):
    text = "Blocked from 81.2.69.142 while the GUI on 127.0.0.1:8384 and 192.0.2.42 worked."
    assert anon.anonymize_texts([text]) == ["Blocked from <IP_ADDRESS_1> while the GUI on 127.0.0.1:8384 and "
                                            "192.0.2.42 worked."]
    strict = Anonymizer(AnonymizeConfig(canaries_file=None, keep_non_public_ips=False), anon.analyzer)
    assert strict.anonymize_texts([text]) == ["Blocked from <IP_ADDRESS_1> while the GUI on <IP_ADDRESS_2>:8384 "
                                              "and <IP_ADDRESS_3> worked."]


@pytest.mark.parametrize("text", [
    "systemctl enable syncthing@myuser.service", "it pins suture@v3.0.2 and lodash@4.17.21",
    "bind as %s@ad.example.com", "proxy http://user:password@proxy.example.com:8080",
])
def test_technical_at_strings_are_not_emails(anon, text):
    assert anon.analyze_texts([text]) == [[]]


def test_real_emails_still_replaced(anon):
    assert anon.anonymize_texts(["mail jb@kvin.kastelo.net or ops@corp.internal"]) == [
        "mail <EMAIL_ADDRESS_1> or <EMAIL_ADDRESS_2>"]


@pytest.mark.parametrize("text,kept", [
    ("The default is 32768 KiB (32 MiB).", "32768"), ("Set it to 16384 on small devices.", "16384"),
    ("Request 65536 Bytes at most.", "65536"),
])
def test_numbers_are_postcodes_only_in_address_context(anon, text, kept):
    assert kept in anon.anonymize_texts([text])[0]


def test_postcodes_in_address_context_still_found(anon):
    out = anon.anonymize_texts(["My zip code is 94103.", "Ship to 12 Rue de Rivoli, 75001 Paris"])
    assert "94103" not in out[0] and "75001" not in out[1]


def test_allow_list_terms_and_regexes(anon):
    text = "Ask Mirela Baciu about the Kestrel Vault and ticket-7781-XZ."
    base = anon.analyze_texts([text])[0]
    assert any(f.entity_type == "PERSON" for f in base)
    a = Anonymizer(AnonymizeConfig(canaries_file=None, allow=["mirela baciu", r"re:ticket-\d+-[A-Z]+"]),
                   anon.analyzer)
    assert a.anonymize_texts([text]) == [text]
    # a person span that ends in an allowed term is trimmed, not dropped
    b = Anonymizer(AnonymizeConfig(canaries_file=None), anon.analyzer, allow=["Syncthing"])
    assert AllowList(["Syncthing"]).spans("syncthing and SYNCTHING") == [(0, 9), (14, 23)]
    assert "Syncthing" in b.anonymize_texts(["Ubuntu Syncthing by Maria Lopez"])[0]
    with pytest.raises(ValueError, match=r"anonymize.allow\[0\]"):
        Anonymizer(AnonymizeConfig(canaries_file=None, allow=["re:("]), anon.analyzer)


def test_replacement_and_leak_check_agree_on_case(anon):
    # a mistaken one-word detection is replaced only as written, and its lower-case path form is no leak
    text = "Syncthing keeps state in ~/.local/state/syncthing and logs to syncthing.log."
    out, report = anon.anonymize_records([{"id": "d", "text": text}])
    assert report.leaks == [] and "~/.local/state/syncthing" in out[0]["text"]
    # a real name is replaced in any case in prose, and a surviving one is still a leak
    out, report = anon.anonymize_records([{"id": "c", "messages": [
        {"role": "user", "content": "hi, Maria Lopez here"}, {"role": "assistant", "content": "thanks maria!"}]}])
    assert report.leaks == [] and "maria" not in json.dumps(out).lower()
    leaks = find_leaks([("c", "thanks MARIA!")], [("PERSON", "Maria", "SpacyRecognizer")])
    assert [(x["type"], x["value"], x["found_by"]) for x in leaks] == [("PERSON", "Ma… (5 chars)", "SpacyRecognizer")]
    assert find_leaks([("c", "see /home/maria/.config")], [("PERSON", "Maria")]) == []
    # dictionary words that are also names only count capitalized (as replacement treats them)
    assert find_leaks([("c", "the mark is here")], [("PERSON", "Mark")]) == []
    assert find_leaks([("c", "ask Mark")], [("PERSON", "Mark")]) != []


def test_leak_report_names_value_place_detector_and_fix(anon, tmp_path):
    canaries = tmp_path / "c.yaml"
    canaries.write_text("canaries:\n  - {type: PERSON, value: xqzzy wuvbo}\n  - {type: IP_ADDRESS, value: 192.0.2.9}\n")
    a = Anonymizer(AnonymizeConfig(canaries_file=str(canaries)), anon.analyzer)
    recs = [{"id": "docs/a.md", "source": "docs/a.md", "line": None,
             "text": "# Title\n\nsome text\nthe words xqzzy wuvbo stay here, and 192.0.2.9 too."}]
    _, report = a.anonymize_records(recs)
    by_type = {x["type"]: x for x in report.leaks}
    person = by_type["PERSON"]
    assert (person["file"], person["line"], person["value"], person["found_by"]) == (
        "docs/a.md", 4, "xq… (11 chars)", "canary")
    assert "no PERSON recognizer detected" in person["fix"]
    assert "keep_non_public_ips" in by_type["IP_ADDRESS"]["fix"]
    msg = format_leaks(report.leaks)
    assert "docs/a.md line 4" in msg and "xqzzy" not in msg and "Traceback" not in msg
    err = PiiLeakError(report.leaks)
    assert str(err) == msg and err.leaks == report.leaks
    assert "xqzzy" not in json.dumps(report.to_dict())


def test_pipeline_anonymizer_allows_policy_company(tmp_path):
    policy = tmp_path / "policy.yaml"
    shutil.copy(DATA / "syncthing_policy.yaml", policy)
    cfg = PipelineConfig(policy_file=str(policy), anonymize=AnonymizeConfig(canaries_file="assets/canaries.yaml"))
    a = pipeline_anonymizer(cfg)
    assert a.allow.spans("Syncthing") == [(0, 9)]
    assert Path(a.cfg.canaries_file).is_absolute()


@pytest.mark.skipif(not SYNCTHING.is_dir(), reason="../shared/corpora/syncthing-docs not present")
def test_syncthing_docs_and_planted_chats_end_to_end(tmp_path):
    """The acceptance run of issue 14, default settings with only the paths set."""
    corpus = tmp_path / "corpus"
    shutil.copytree(SYNCTHING, corpus)
    (corpus / "chats").mkdir()
    shutil.copy(DATA / "syncthing_chats_planted.jsonl", corpus / "chats" / "chats.jsonl")
    cfg = PipelineConfig(policy_file=str(DATA / "syncthing_policy.yaml"),
                         anonymize=AnonymizeConfig(canaries_file=str(DATA / "syncthing_planted_canaries.yaml")))
    records = load_corpus(cfg.corpus, corpus).records
    out, report = pipeline_anonymizer(cfg).anonymize_records(records)
    assert report.leaks == [], format_leaks(report.leaks)
    blob = "\n".join(t for r in out for t in record_texts(r))
    for etype, value, _ in load_canaries(DATA / "syncthing_planted_canaries.yaml"):
        assert value not in blob, (etype, value)
    for kept in ("127.0.0.1", "0.0.0.0", "Syncthing", "syncthing@myuser.service", "suture@v3.0.2", "v1.27.12",
                 "1.27.3", "8384", "22000", "21027", "22067", "32768", "16384", "192.0.2.42", "2001:db8::23:42",
                 "~/.local/state/syncthing"):
        assert kept in blob, kept
    # the product's name is never a person, and its docs lose only a handful of spans
    counts = report.entity_counts
    assert counts.get("IP_ADDRESS", 0) <= 4 and counts.get("POSTCODE", 0) == 0 and counts.get("EMAIL_ADDRESS", 0) <= 4


@pytest.mark.parametrize("text", [
    # "X & Y" firms and coordinated shop possessives
    "Smith & Nephew reported strong results on Monday.",
    "Sainsbury's and Morrison's cut prices this week.",
    "We bought snacks at Ben & Jerry's before the demo.",
    # a capitalized word followed by a version number (or a year) is a product or language
    "Ruby 3.3 and Elixir 1.16 were benchmarked on macOS Ventura 13.6.",
    "The team migrated the parser to Ada 2012 last spring.",
    # scp-style git remotes are logins on a host, not mailboxes
    "git push git@gitlab.example.org:team/infra.git main",
    # a link-speed log line is not a street
    "eth0: Link is Up 100 Mbps Half Duplex",
    # organisations by what they do or by "everyone at"
    "Happy holidays from all of us at Vantor!",
    "Zara and Uniqlo opened five new stores in Lisbon.",
    "Louis Vuitton posted record sales in the second quarter.",
    # numbered lines that are no address block
    "Release notes\nVersion 2.4\n2024 Roadmap\nGermany",
    "Chapter 12\nSection 3\n2048 Bytes",
    "Room 101\nBuilding 4\n1200 Users",
    "We counted Build 3, 4000 Users online.",
    "Address:\nKestrel 4\nDone soon",
    "Gartner's report and Deloitte's analysis were discussed.",
])
def test_brands_products_and_logs_are_not_pii(anon, text):
    assert anon.anonymize_texts([text])[0] == text


@pytest.mark.parametrize("text", [
    # a lone given name that is also a dictionary word needs person context
    "Server restarted at 04:00 (pid 2231).",
    "We tunnel traffic over Tor when travelling.",
    "Pascal trailed behind in the benchmark.",
    # a word after a number is a unit; places listed with places; title-case lines; key combos
    "Throughput 940 Mbit, jitter 3 ms.",
    "Leeds, Halifax and Wakefield reported flooding on Tuesday.",
    "|Network Settings Dialog Screenshot|",
    "Hit Alt+Tab, then Ctrl+Shift+Esc to open the task manager.",
    # number groups that are no phone: an ISBN-13, decimals, the tail of a tracking code
    "ISBN 978-1-4028-9462-6 (paperback), 320 pages.",
    "load average: 0.52 0.61 0.70",
    "FedEx ref 7Q 9K2 48B 21 7735 9042 in transit.",
    # config values under a "name" key
    "- name: install redis\n  apt: name=redis state=present",
    "spec:\n  name: orders-worker",
    # lower-case nouns before verbs stay words
    "the proxy server is down and newer builds fail",
])
def test_technical_words_and_number_groups_are_not_pii(anon, text):
    assert anon.anonymize_texts([text])[0] == text


def test_allowed_term_leaves_no_lone_word_behind(anon):
    out = Anonymizer(anon.cfg, anon.analyzer, allow=["Vantor"]).anonymize_texts(
        ["The official Fedora Vantor packages are signed."])[0]
    assert out == "The official Fedora Vantor packages are signed."


def test_order_id_is_replaced_whole(anon):
    out = anon.anonymize_texts(["Order ORD-2023-004512 left the warehouse."])[0]
    assert out == "Order <ORDER_ID_1> left the warehouse."


def test_two_people_joined_by_ampersand_are_still_people(anon):
    out = anon.anonymize_texts(["Thanks again, Maria & Tomasz, for hosting us."])[0]
    assert "Maria" not in out and "Tomasz" not in out


@pytest.mark.parametrize("text", [
    # a word the same text uses with a version makes it a product everywhere, and its list a list of products
    "We compared Grace, Maya and Nova for the render farm and picked Maya 2025 for its scripting.",
    # a capitalized word before a technical noun is a tool, a technique or a library
    "Rosalind pipelines rebuild the images nightly, and Hamming distance ranks the matches.",
    "The Sophie plugin exports every chart to PDF, and the Sophie Anderson plugin signs it.",
    # the object of a tool verb in a technical clause, with a list and a parallel preposition
    "Our release builds run with Clara and Flora on the CI runners.",
    "Metrics are collected by Stella on the edge nodes and by Vera for the batch jobs.",
    "The mobile app is written in Dart; Lucy is used for the charts.",
    # firms by the roles only firms take in a deal
    "Evelyn Hart and Julius Baer were named joint bookrunners on the bond.",
])
def test_tools_techniques_and_firms_named_like_people_are_kept(anon, text):
    assert anon.anonymize_texts([text])[0] == text


@pytest.mark.parametrize("text, gone", [
    # the same contexts with a person: a possessive, a title, no technical clause, a verb after an auxiliary
    ("The Grace pipeline failed, so Dr. Grace Okonkwo restarted it.", ["Okonkwo"]),
    ("Please ask Maria Lopez; she used Maria's laptop for the tests.", ["Lopez"]),
    ("Your refund was handled by Clara yesterday.", ["Clara"]),
    ("Did Carmen build the new release?", ["Carmen"]),
])
def test_tool_rules_leave_people_alone(anon, text, gone):
    out = anon.anonymize_texts([text])[0]
    for value in gone:
        assert value not in out, out



# -- third pass: shapes from a company knowledge base (own examples, not the labeled sets' words) -------------


@pytest.mark.parametrize("text", [
    # a mod-97-valid string with the wrong length for its country, and one of mixed case, are no IBAN
    "The kit GB13 COIN CELL FOR YEARS ships boxed.",
    "Order the GB21 BATTERY that lasts 12 months.",
    # a config "name" whose value has lower-case words is a step, not a person
    "jobs:\n  docs:\n    steps:\n      - name: Vet kustomizations\n        run: make vet",
    "- name: Bump semver tags\n  uses: actions/checkout@v4",
    # after a place preposition: unknown words, or a particle inside and no given name first, are a place
    "Our studio moved to a loft near Bairro do Avelar in May.",
    "The new office is in Vila Nova de Gaia, close to the river.",
    "Our warehouse is near Quinta do Anjo, by the motorway.",
])
def test_company_docs_shapes_are_not_pii(anon, text):
    assert anon.anonymize_texts([text])[0] == text


def test_real_ibans_still_found_in_either_case(anon):
    for iban in ("GB82 WEST 1234 5698 7654 32", "gb82 west 1234 5698 7654 32", "GB82WEST12345698765432"):
        out = anon.anonymize_texts([f"Please pay to {iban} by Friday."])[0]
        assert out == "Please pay to <IBAN_CODE_1> by Friday.", out


def _ner_person_kept(text: str, word: str) -> bool:
    """Whether a single-word PERSON finding over `word` (as spaCy's NER gives one) survives the product rules."""
    from slm_pipeline.core.anonymize.allow import _drop_product_and_brand_names
    from slm_pipeline.core.anonymize.findings import Finding

    s = text.index(word)
    return bool(_drop_product_and_brand_names(text, [Finding("PERSON", s, s + len(word), 0.85, word, "SpacyRecognizer")]))


@pytest.mark.parametrize("text, word", [
    # a product noun after the word (a known name needs the customer's possessive)
    ("Move your photos to your own Wrenly profile before the trial ends.", "Wrenly"),
    ("Sign in to the same Quillbit account on both phones.", "Quillbit"),
    ("Cancel your Hale subscription from the app.", "Hale"),
    # a series digit and a model number
    ("Recommended: a Vortek 7 5800 processor and 16 GB RAM.", "Vortek"),
    # a menu path in brackets right after it
    ("If sound crackles, turn off spatial audio for Brindle (Settings → Audio → Spatial) and restart.", "Brindle"),
    # the subject of what software does, or asked whether it installs/updates
    ("Why does Vorlund install a background service on first launch?", "Vorlund"),
    ("After the last patch Quillbit keeps freezing on the loading screen.", "Quillbit"),
    ("Does Quillbit sync my notes between devices?", "Quillbit"),
    # only a service asks for your credentials
    ("Will Haverly ever text me and ask for my one-time code? Never.", "Haverly"),
    # a list holding several-word members with acronyms or camelCase words
    ("Sign-on works with Zorba, Contoso Identity ID, Fabrikam Directory and PingFederate.", "Zorba"),
    # a list whose members carry a bracketed note
    ("Tiers: Copper (badge), Silver (+ frame), Gold (+ banner), Zenith (+ title).", "Zenith"),
])
def test_product_contexts_drop_a_single_word_person(text, word):
    assert not _ner_person_kept(text, word)


@pytest.mark.parametrize("text, word", [
    ("I closed the Jensen account yesterday.", "Jensen"),          # a client's account: no possessive
    ("Did Olumide update the invoice?", "Olumide"),                 # people update things too
    ("Will Maria ever ask for my password?", "Maria"),              # a known given name
    ("Invited: Zorba, Maria Lopez and Contoso ID.", "Zorba"),       # a list with a person in it
    ("A gift for Olumide (my nephew) is on the desk.", "Olumide"),  # a bracket without a menu path
])
def test_product_contexts_keep_people(text, word):
    assert _ner_person_kept(text, word)


@pytest.mark.parametrize("text, gone", [
    # the same shapes with people: a name in a config, names next to a place preposition
    ("team:\n  - name: Olumide Bankole\n    role: admin", ["Bankole"]),
    ("I met Cornelius Obi near the entrance, then saw Olumide Bankole in Lisbon.", ["Obi", "Bankole"]),
    ("The parcel was left at Joana do Rosário's house.", ["Rosário"]),
    ("I had lunch with Maria da Silva in Porto.", ["Silva"]),
])
def test_company_docs_rules_leave_people_alone(anon, text, gone):
    out = anon.anonymize_texts([text])[0]
    for value in gone:
        assert value not in out, out


_BRAND_RECORDS = ["Your monthly Torvane bill is issued on the 1st.", "DNS: the router uses Torvane's resolvers by default.",
                  "Torvane Fiber is now available in three new neighbourhoods.", "Data on all Torvane home plans is unlimited.",
                  "Restart the Torvane router if the light is red."]


def test_brand_word_recurring_across_the_corpus_is_kept_and_reported(anon):
    off = Anonymizer(anon.cfg.model_copy(update={"discover_terms": False}), anon.analyzer)
    assert sum(o != t for o, t in zip(off.anonymize_texts(_BRAND_RECORDS), _BRAND_RECORDS, strict=True)) >= 2
    out, report = anon.anonymize_records([{"id": str(i), "text": t} for i, t in enumerate(_BRAND_RECORDS)])
    assert [r["text"] for r in out] == _BRAND_RECORDS
    assert report.corpus_terms == {"Torvane": 5}


@pytest.mark.parametrize("usage", ["Ms. Oyelaran called back.", "cc: Paraskevi Oyelaran, Tomasz Wrona",
                                   "Founders: Kónya, Oyelaran and Vasquez.", "Signed: T. Oyelaran"])
def test_recurring_word_used_like_a_name_once_stays_a_name(anon, usage):
    texts = ["Oyelaran wants a refund.", "Refund for Oyelaran approved.", "Oyelaran emailed again about it.",
             "I spoke with Oyelaran yesterday.", "Oyelaran will collect it.", usage]
    off = Anonymizer(anon.cfg.model_copy(update={"discover_terms": False}), anon.analyzer).anonymize_texts(texts)
    assert anon.anonymize_texts(texts) == off
    assert "Oyelaran" not in off[-1]
    assert "Oyelaran" not in anon.anonymize_records([{"id": str(i), "text": t} for i, t in enumerate(texts)])[1].corpus_terms


def test_a_name_the_corpus_calls_a_bot_is_kept_unless_someone_greets_it(anon):
    bot = ["Ask Wynne, our chat assistant, about your plan.", "Wynne can now answer billing questions."]
    assert anon.anonymize_texts(bot) == bot
    greeted = anon.anonymize_texts([*bot, "Hi Wynne, thanks for the help!"])
    assert not any("Wynne" in t for t in greeted)


def test_words_after_an_allowed_brand_are_its_product_not_a_person(anon):
    text = "New this week: Kiko Miso Salmon Bowl, ready in 15 minutes."
    assert Anonymizer(anon.cfg, anon.analyzer, allow=["Kiko"]).anonymize_texts([text]) == [text]
    for person in ("Kiko Maria Lopez ordered two bowls.", "Kiko Okafor ordered two bowls."):
        assert Anonymizer(anon.cfg, anon.analyzer, allow=["Kiko"]).anonymize_texts([person])[0] != person
