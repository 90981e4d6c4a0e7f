"""Ingestion of converted formats: HTML, reStructuredText, PDF, DOCX and PPTX files become the same doc records
as their Markdown twin; PDFs without a text layer and legacy formats get errors that say what to do."""

from __future__ import annotations

import pytest
from doc_fixtures import HTML, MARKDOWN, RST, TITLE, write_docx, write_empty_pdf, write_pdf, write_scanned_pdf

from slm_pipeline.config import CorpusConfig
from slm_pipeline.core.chunking import chunk_record, split_markdown
from slm_pipeline.core.corpus import CorpusError, load_corpus

WRITERS = {
    "html": lambda p: p.write_text(HTML, encoding="utf-8"),
    "rst": lambda p: p.write_text(RST, encoding="utf-8"),
    "pdf": write_pdf,
    "docx": write_docx,
}


def squash(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_converted_document_is_the_same_record_as_its_markdown_twin(tmp_path, fmt):
    (tmp_path / "twin.md").write_text(MARKDOWN, encoding="utf-8")
    WRITERS[fmt](tmp_path / f"policy.{fmt}")
    twin, doc = load_corpus(CorpusConfig(), tmp_path).records  # sorted: policy.* < twin.md
    doc, twin = (doc, twin) if twin["id"] == "twin.md" else (twin, doc)
    assert doc["id"] == f"policy.{fmt}" and doc["kind"] == "doc" and doc["meta"] == {"title": TITLE, "format": fmt}
    assert twin["meta"]["title"] == doc["meta"]["title"] == TITLE
    assert squash(doc["text"]) == squash(twin["text"])
    sections = [(path, squash(body)) for path, body in split_markdown(doc["text"], TITLE)]
    assert sections == [(path, squash(body)) for path, body in split_markdown(twin["text"], TITLE)]
    assert [p for p, _ in sections] == [[], ["Refunds"], ["Refunds", "Store credit"], ["Exchanges"]]
    # The code block stays code: its "# restart ..." line is neither the title nor a heading.
    refunds = dict((tuple(p), b) for p, b in sections)[("Refunds",)]
    assert "``` # restart the refund service systemctl restart refunds ```" in refunds
    assert [c.chunk.label for c in chunk_record(doc)] == [c.chunk.label for c in chunk_record(twin)]


def test_pptx_slides_become_a_doc_titled_by_the_first_slide(tmp_path):
    from pptx import Presentation

    deck = Presentation()
    for title, body in [("Battery care", "Charge the battery indoors."), ("Storage", "Keep it dry in winter.")]:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
    deck.save(str(tmp_path / "deck.pptx"))
    (rec,) = load_corpus(CorpusConfig(), tmp_path).records
    assert rec["meta"] == {"title": "Battery care", "format": "pptx"}
    assert "Slide number" not in rec["text"] and "Keep it dry in winter." in rec["text"]
    assert [p for p, _ in split_markdown(rec["text"], "Battery care")] == [[], ["Storage"]]


@pytest.mark.parametrize("writer, what", [(write_scanned_pdf, "1 image(s) and no text, so it is probably a scan"),
                                          (write_empty_pdf, "hold no text")])
def test_pdf_without_text_layer_names_the_file_and_says_to_ocr_it(tmp_path, writer, what):
    writer(tmp_path / "scan.pdf")
    (tmp_path / "ok.md").write_text(MARKDOWN, encoding="utf-8")
    with pytest.raises(CorpusError) as e:
        load_corpus(CorpusConfig(), tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "scan.pdf") in msg and "no text layer" in msg and what in msg and "ocrmypdf" in msg

    res = load_corpus(CorpusConfig(on_bad_record="skip"), tmp_path)  # skip mode: reported, the rest is read
    assert [r["id"] for r in res.records] == ["ok.md"]
    assert res.problems[0]["path"] == str(tmp_path / "scan.pdf") and "OCR" in res.problems[0]["error"]
    assert res.stats["skipped_by_reason"] == {"unreadable_document": 1}


def test_broken_and_legacy_files_say_what_to_do(tmp_path):
    (tmp_path / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0 legacy word")
    with pytest.raises(CorpusError, match=r"old\.doc.*Save it as \.docx"):
        load_corpus(CorpusConfig(), tmp_path)
    (tmp_path / "old.doc").unlink()
    (tmp_path / "broken.docx").write_bytes(b"not a zip")
    with pytest.raises(CorpusError, match=r"broken\.docx: not a readable Word \(\.docx\) file"):
        load_corpus(CorpusConfig(), tmp_path)


def test_code_comments_never_name_a_document(tmp_path):
    (tmp_path / "setup.md").write_text("```sh\n# install the tool\napt install loop\n```\n\n# Setup Guide\n\nDone.\n")
    (tmp_path / "notes.txt").write_text("```\n# only code here\n```\n")
    notes, setup = load_corpus(CorpusConfig(), tmp_path).records
    assert setup["meta"]["title"] == "Setup Guide" and notes["meta"]["title"] == "Notes"


def test_sphinx_markup_in_rst_keeps_its_text(tmp_path):
    (tmp_path / "conf.rst").write_text(
        "Configuration\n=============\n\nSee :ref:`the GUI page <gui>` and set :option:`--home`.\n\n"
        ".. versionadded:: 1.2\n\n.. note::\n\n   Restart after editing.\n\n.. toctree::\n\n   gui\n   cli\n",
        encoding="utf-8")
    (rec,) = load_corpus(CorpusConfig(), tmp_path).records
    text = rec["text"]
    assert rec["meta"]["title"] == "Configuration"
    assert "See the GUI page and set `--home`." in text and ":ref:" not in text and "<gui>" not in text
    assert "New in version 1.2" in text and "**Note:** Restart after editing." in text
    assert "cli" not in text.split("Restart after editing.")[1]  # the toctree is navigation, not text
