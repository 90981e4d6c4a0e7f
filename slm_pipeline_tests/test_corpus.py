import json
from pathlib import Path

import pytest

from slm_pipeline.config import CorpusConfig
from slm_pipeline.core.corpus import CorpusError, load_corpus, preview_markdown


def write(root: Path, rel: str, content: str | bytes) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


def jsonl(*objs) -> str:
    return "\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs) + "\n"


GOOD_CHAT = {"id": "c1", "messages": [{"role": "user", "content": "My bike is broken."},
                                      {"role": "assistant", "content": "Sorry to hear that, let me help."}]}


def error_for(tmp_path: Path, rel: str, content, cfg: CorpusConfig | None = None) -> str:
    write(tmp_path, rel, content)
    with pytest.raises(CorpusError) as e:
        load_corpus(cfg or CorpusConfig(), tmp_path)
    return str(e.value)


# ------------------------------------------------------------------------------------------------ readers


def test_markdown_and_txt_docs(tmp_path):
    write(tmp_path, "docs/returns.md", "# Returns Policy\n\n## Window\nYou have 30 days.\n")
    write(tmp_path, "docs/care_guide.txt", "Keep the chain oiled.\n")
    write(tmp_path, ".hidden.md", "# ignored")
    res = load_corpus(CorpusConfig(), tmp_path)
    assert [r["id"] for r in res.records] == ["docs/care_guide.txt", "docs/returns.md"]
    txt, md = res.records
    assert md["kind"] == "doc" and md["source"] == "docs/returns.md"
    assert md["meta"]["title"] == "Returns Policy"
    assert md["text"].startswith("# Returns Policy") and "30 days" in md["text"]
    assert md["path"] == str((tmp_path / "docs/returns.md").resolve())
    assert txt["meta"]["title"] == "Care guide"
    assert res.stats["by_kind"] == {"doc": 2}
    assert res.stats["by_source"] == {"docs/care_guide.txt": 1, "docs/returns.md": 1}
    assert res.stats["total_chars"] == len(md["text"]) + len(txt["text"])
    assert res.problems == []


def test_faq_csv_default_and_custom_columns(tmp_path):
    write(tmp_path, "faq/a.csv", 'question,answer,category\nHow long is the warranty?,"Two years, parts and labour.",warranty\n')
    res = load_corpus(CorpusConfig(), tmp_path)
    (rec,) = res.records
    assert rec["kind"] == "faq" and rec["id"] == "faq/a.csv#1" and rec["line"] == 2
    assert rec["messages"] == [{"role": "user", "content": "How long is the warranty?"},
                               {"role": "assistant", "content": "Two years, parts and labour."}]
    assert rec["meta"] == {"category": "warranty"}

    write(tmp_path, "faq/a.csv", "Q,A\nWhere are you?,In Berlin.\n")
    res = load_corpus(CorpusConfig(faq_question_column="Q", faq_answer_column="A"), tmp_path)
    assert res.records[0]["messages"][1]["content"] == "In Berlin."


def test_faq_missing_column_names_columns_and_setting(tmp_path):
    msg = error_for(tmp_path, "faq.csv", "q,a\nx,y\n")
    assert "faq.csv" in msg and "columns found: q, a" in msg and "corpus.faq_question_column" in msg


def test_chats_messages_and_turns_schemas(tmp_path):
    write(tmp_path, "chats/a.jsonl", jsonl(
        GOOD_CHAT,
        {"messages": [{"role": "system", "content": "Be nice."}, {"role": "human", "content": "Hi"},
                      {"role": "gpt", "content": "Hello!"}], "channel": "email"},
    ))
    write(tmp_path, "chats/b.jsonl", jsonl(
        {"id": "t1", "turns": [{"speaker": "customer", "text": "Where is my order?"},
                               {"speaker": "agent", "text": "It ships tomorrow."},
                               {"speaker": "support", "text": "Anything else?"}]},
    ))
    res = load_corpus(CorpusConfig(), tmp_path)
    a1, a2, b1 = res.records
    assert a1["id"] == "c1" and a1["kind"] == "chat" and a1["line"] == 1
    assert a2["id"] == "chats/a.jsonl#2" and a2["meta"] == {"channel": "email"}
    assert [m["role"] for m in a2["messages"]] == ["system", "user", "assistant"]
    assert [m["role"] for m in b1["messages"]] == ["user", "assistant", "assistant"]
    assert b1["messages"][0]["content"] == "Where is my order?"
    assert res.stats["by_kind"] == {"chat": 3}


def test_hf_datasets_on_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"text": ["# Guide\n\n## Brakes\nCheck them monthly."], "title": ["Guide"]}) \
        .save_to_disk(str(tmp_path / "hf_docs"))
    datasets.Dataset.from_dict({"messages": [GOOD_CHAT["messages"]]}).save_to_disk(str(tmp_path / "hf_chats"))
    datasets.Dataset.from_dict({"question": ["Do you ship abroad?"], "answer": ["Only within the EU."]}) \
        .save_to_disk(str(tmp_path / "hf_faq"))
    res = load_corpus(CorpusConfig(), tmp_path)
    by_kind = {r["kind"]: r for r in res.records}
    assert by_kind["chat"]["id"] == "hf_chats#1" and by_kind["chat"]["messages"][1]["role"] == "assistant"
    assert by_kind["doc"]["meta"]["title"] == "Guide" and "monthly" in by_kind["doc"]["text"]
    assert by_kind["faq"]["messages"][0]["content"] == "Do you ship abroad?"
    assert len(res.records) == 3  # arrow/state files inside the folders are not read as corpus files


def test_preview_markdown(tmp_path):
    write(tmp_path, "a.md", "# T\n\n" + "word | " * 50)
    write(tmp_path, "c.jsonl", jsonl(GOOD_CHAT))
    res = load_corpus(CorpusConfig(), tmp_path)
    md = preview_markdown(res.records)
    lines = md.splitlines()
    assert lines[0] == "| id | kind | source | preview |" and len(lines) == 4
    assert "\\|" in lines[2] and "…" in lines[2]
    assert "user: My bike is broken." in lines[3]


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "rel, content, expected",
    [
        ("chats.jsonl", jsonl(GOOD_CHAT, '{"id": "x", "messages": ['), ["chats.jsonl:2", "malformed JSON"]),
        ("chats.jsonl", jsonl(GOOD_CHAT, {"id": "x", "text": "hi"}), ["chats.jsonl:2", "no 'messages' or 'turns'"]),
        ("chats.jsonl", jsonl({"messages": [{"role": "robot", "content": "x"}]}), ["chats.jsonl:1", "unknown role"]),
        ("chats.jsonl", jsonl({"messages": [{"role": "user", "content": " "}]}), ["chats.jsonl:1", "empty"]),
        ("chats.jsonl", jsonl({"turns": [{"speaker": "customer", "text": "hello?"}]}),
         ["chats.jsonl:1", "no assistant turn"]),
        ("chats.jsonl", jsonl(GOOD_CHAT, GOOD_CHAT), ["chats.jsonl:2", "duplicate id 'c1'"]),
        ("faq.csv", "question,answer\nA?,B.\nC?,D.,extra\n", ["faq.csv:3", "row 2 has 3 fields"]),
        ("faq.csv", "question,answer\nA?,\n", ["faq.csv:2", "empty 'answer'"]),
        ("faq.csv", "question,answer\n\n", ["faq.csv", "no rows"]),
        ("empty.md", "  \n", ["empty.md", "empty"]),
        ("notes.pdf", "%PDF", ["notes.pdf", "not a readable PDF", "re-export it"]),
        ("slides.key", "x", ["slides.key", "unsupported file type '.key'", ".docx", ".jsonl"]),
        ("img.md", b"# x\nab\x00cd", ["img.md:2", "binary"]),
        ("latin.md", "# Café\nok\n".encode("latin-1"), ["latin.md:1", "byte offset 5", "UTF-8", "iconv"]),
    ],
)
def test_malformed_inputs_name_file_and_line(tmp_path, rel, content, expected):
    msg = error_for(tmp_path, rel, content)
    for part in expected:
        assert part in msg


def test_file_over_size_limit(tmp_path):
    msg = error_for(tmp_path, "big.md", "x" * 2000, CorpusConfig(max_file_mb=0.001))
    assert "big.md" in msg and "corpus.max_file_mb" in msg


def test_missing_and_empty_corpus_dir(tmp_path):
    with pytest.raises(CorpusError, match="corpus.corpus_dir"):
        load_corpus(CorpusConfig(), tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    write(tmp_path, "empty/.DS_Store", "junk")
    with pytest.raises(CorpusError, match="corpus.corpus_dir"):
        load_corpus(CorpusConfig(), tmp_path / "empty")


def test_skip_mode_collects_problems_and_keeps_good_records(tmp_path):
    write(tmp_path, "chats.jsonl", jsonl(GOOD_CHAT, "not json", {"id": "c2", "messages": []},
                                         {**GOOD_CHAT, "id": "c3"}))
    write(tmp_path, "faq.csv", "question,answer\nA?,\nOk?,Fine.\n")
    write(tmp_path, "bin.md", b"\x00\x01")
    write(tmp_path, "latin.txt", "caf\xe9".encode("latin-1"))
    res = load_corpus(CorpusConfig(on_bad_record="skip"), tmp_path)
    assert [r["id"] for r in res.records] == ["c1", "c3", "faq.csv#2"]
    where = sorted((Path(p["path"]).name, p["line"]) for p in res.problems)
    assert where == [("bin.md", 1), ("chats.jsonl", 2), ("chats.jsonl", 3), ("faq.csv", 2), ("latin.txt", 1)]
    assert all(p["error"] for p in res.problems)
    assert res.stats["n_problems"] == 5
    assert res.stats["skipped_by_reason"] == {"binary": 1, "bad_record": 3, "not_utf8": 1}


def test_skip_mode_with_nothing_usable_still_fails(tmp_path):
    write(tmp_path, "bin.md", b"\x00\x01")
    with pytest.raises(CorpusError, match="No usable records"):
        load_corpus(CorpusConfig(on_bad_record="skip"), tmp_path)
