"""Documents that are not Markdown, converted to Markdown so every later stage sees one format.

  - .html/.htm, .docx, .pptx: Microsoft's `markitdown` (mammoth for Word, python-pptx for slides, markdownify
    for HTML); all local, no model or network. Page chrome (<nav>, <footer>, scripts) is removed from HTML
    first, and the <main>/<article> element is used when there is one. Word paragraphs in a code style
    (Code, HTML Preformatted, Source Code, ...) become fenced code, so a `# comment` in them is never a heading;
    a document that uses Word's Title style gets it as `# Title` and its Heading N one level below.
  - .rst: docutils renders HTML (Sphinx roles such as :ref:`text <target>` keep their text; raw and include
    directives are disabled), then markitdown turns it into Markdown like any other web page.
  - .pdf: pdfminer.six (what markitdown reads PDFs with) with its layout analysis, because markitdown's PDF text
    has no headings: lines set in a font clearly larger than the body text become headings (largest = `#`),
    monospaced lines become fenced code, lines repeated on most pages (running headers, footers) and bare page
    numbers are left out. A PDF without a text layer (empty, or scanned pages that are only images) is an error
    that says to OCR it.

`to_markdown(path)` returns (markdown, title or None); failures raise ConversionError with the fix. Never
imports dagster.
"""

from __future__ import annotations

import io
import re
import statistics
import zipfile
from collections import Counter
from pathlib import Path

__all__ = ["CONVERTED_EXTENSIONS", "ConversionError", "to_markdown"]

CONVERTED_EXTENSIONS = (".html", ".htm", ".rst", ".pdf", ".docx", ".pptx")
# Formats we are asked for that need converting to a supported one first.
LEGACY_HINTS = {".doc": ".docx", ".ppt": ".pptx", ".rtf": ".docx", ".odt": ".docx", ".xhtml": ".html"}

# Word paragraph styles that hold code (built-in and common template names).
_DOCX_CODE_STYLES = ("Code", "HTML Preformatted", "Source Code", "Macro Text", "Plain Text", "Code Block",
                     "Preformatted Text")


class ConversionError(ValueError):
    """The file could not be turned into text; the message says why and what to do."""


def to_markdown(path: Path) -> tuple[str, str | None]:
    """Markdown text of a document (see module docstring) and its title if the format has one separately."""
    ext = path.suffix.lower()
    data = path.read_bytes()
    if ext == ".pdf":
        return _pdf_to_markdown(data), _pdf_title(data)
    if ext in (".html", ".htm"):
        return _html_to_markdown(data)
    if ext == ".rst":
        return _rst_to_markdown(data, path)
    if ext == ".docx":
        return _docx_to_markdown(data)
    if ext == ".pptx":
        return _pptx_to_markdown(data)
    raise ConversionError(f"no converter for {ext!r}")


# ---------------------------------------------------------------------------------------------- markitdown


def _markitdown(data: bytes, ext: str, **options) -> tuple[str, str | None]:
    from markitdown import MarkItDown, StreamInfo

    try:
        # Built-in converters only: plugins could reach out to services; nothing here needs a model or network.
        result = MarkItDown(enable_plugins=False).convert_stream(io.BytesIO(data), stream_info=StreamInfo(extension=ext),
                                                                 **options)
    except Exception as e:  # noqa: BLE001 - markitdown wraps parser errors of every kind
        kind = {".docx": "Word (.docx)", ".pptx": "PowerPoint (.pptx)"}.get(ext, "HTML")
        raise ConversionError(f"not a readable {kind} file ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                              "open and re-save it, or export it as Markdown/PDF") from None
    text = re.sub(r"<!--.*?-->", "", result.markdown, flags=re.DOTALL)  # slide-number comments etc.
    return text, (result.title or None)


def _html_to_markdown(data: bytes) -> tuple[str, str | None]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup(["nav", "footer", "script", "style", "noscript", "template", "form"]):
        tag.decompose()
    main = soup.find("main") or soup.find("article")
    body = str(main) if main is not None else str(soup.body or soup)
    text, _ = _markitdown(f"<html><body>{body}</body></html>".encode(), ".html")
    return text, title


def _docx_to_markdown(data: bytes) -> tuple[str, str | None]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            xml = z.read("word/document.xml").decode("utf-8", "replace")
            styles = z.read("word/styles.xml").decode("utf-8", "replace") if "word/styles.xml" in z.namelist() else ""
    except (zipfile.BadZipFile, KeyError) as e:
        raise ConversionError(f"not a readable Word (.docx) file ({e}); open and re-save it in Word or "
                              "LibreOffice (an old .doc must be saved as .docx)") from None
    rules = [f"p[style-name='{s}'] => pre:separator('\\n')" for s in _DOCX_CODE_STYLES]
    # Style ids differ from names ("Title" is usually id Title); look the Title style's id up to be sure.
    title_id = re.search(r'w:styleId="([^"]+)"[^>]*>\s*<w:name w:val="Title"', styles)
    if re.search(rf'<w:pStyle w:val="{re.escape(title_id.group(1) if title_id else "Title")}"', xml):
        rules += ["p[style-name='Title'] => h1:fresh", "p[style-name='Subtitle'] => p:fresh"]
        rules += [f"p[style-name='Heading {n}'] => h{n + 1}:fresh" for n in range(1, 6)]
    text, _ = _markitdown(data, ".docx", style_map="\n".join(rules))
    core = re.search(r"<dc:title>([^<]+)</dc:title>", _zip_text(data, "docProps/core.xml"))
    return text, core.group(1).strip() if core else None


def _pptx_to_markdown(data: bytes) -> tuple[str, str | None]:
    text, _ = _markitdown(data, ".pptx")
    core = re.search(r"<dc:title>([^<]+)</dc:title>", _zip_text(data, "docProps/core.xml"))
    return text, core.group(1).strip() if core else None


def _zip_text(data: bytes, member: str) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return z.read(member).decode("utf-8", "replace")
    except (zipfile.BadZipFile, KeyError):
        return ""


# ---------------------------------------------------------------------------------------------- reStructuredText

# Sphinx roles (docutils alone does not know them); each renders as its text, "text <target>" as "text".
_SPHINX_ROLES = ("ref", "doc", "term", "any", "numref", "download", "keyword", "option", "envvar", "token",
                 "program", "command", "file", "samp", "guilabel", "menuselection", "kbd", "abbr", "dfn", "mailheader",
                 "makevar", "manpage", "mimetype", "newsgroup", "regexp", "py:func", "py:class", "py:meth", "func",
                 "class", "meth", "mod", "attr", "data", "const", "exc", "obj", "setting", "stconf:opt")
_rst_ready = False


def _register_sphinx_markup() -> None:
    """Teach docutils the common Sphinx roles and directives once, so a Sphinx project's pages convert."""
    global _rst_ready
    if _rst_ready:
        return
    from docutils import nodes
    from docutils.parsers.rst import Directive, directives, roles
    from docutils.parsers.rst.directives.admonitions import BaseAdmonition

    def text_role(name, rawtext, text, lineno, inliner, options=None, content=None):
        shown = re.sub(r"\s*<[^>]*>$", "", text).lstrip("~!") or text
        node = nodes.literal if name in ("option", "envvar", "file", "samp", "program", "command", "kbd") \
            else nodes.inline
        return [node(rawtext, shown)], []

    for role in _SPHINX_ROLES:
        roles.register_local_role(role, text_role)

    class Skip(Directive):  # navigation/indexing markup: no text for a reader
        has_content, optional_arguments, final_argument_whitespace = True, 1, True
        option_spec = None

        def run(self):
            return []

    class SeeAlso(BaseAdmonition):
        node_class = nodes.admonition

        def run(self):
            self.arguments = ["See also"]
            self.options["class"] = ["seealso"]
            return super().run()

    class Versioned(Directive):  # versionadded/versionchanged/deprecated: "New in version 1.2: text"
        required_arguments, optional_arguments, final_argument_whitespace, has_content = 1, 1, True, True

        def run(self):
            label = {"versionadded": "New in version", "versionchanged": "Changed in version",
                     "deprecated": "Deprecated since version"}[self.name]
            words = " ".join([self.arguments[0], *(self.arguments[1:] or [])])
            para = nodes.paragraph(text=f"{label} {words}")
            out = [para]
            if self.content:
                box = nodes.container()
                self.state.nested_parse(self.content, self.content_offset, box)
                out += box.children
            return out

    for name in ("toctree", "index", "only", "highlight", "tabularcolumns", "automodule", "autoclass",
                 "autofunction", "literalinclude", "glossary-skip", "currentmodule", "module"):
        directives.register_directive(name, Skip)
    directives.register_directive("seealso", SeeAlso)
    for name in ("versionadded", "versionchanged", "deprecated"):
        directives.register_directive(name, Versioned)
    _rst_ready = True


def _rst_to_markdown(data: bytes, path: Path) -> tuple[str, str | None]:
    import docutils.core
    import docutils.utils

    _register_sphinx_markup()
    try:
        source = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConversionError(f"not valid UTF-8 (byte offset {e.start}); re-encode the file as UTF-8") from None
    settings = {"report_level": 5, "halt_level": 5, "file_insertion_enabled": False, "raw_enabled": False,
                "syntax_highlight": "none", "output_encoding": "unicode", "embed_stylesheet": False,
                "stylesheet_path": "", "input_encoding": "unicode", "warning_stream": io.StringIO()}
    try:
        html = docutils.core.publish_string(source, source_path=str(path), writer="html5",
                                            settings_overrides=settings)
    except (docutils.utils.SystemMessage, Exception) as e:  # noqa: BLE001 - docutils raises many kinds
        raise ConversionError(f"reStructuredText could not be parsed ({type(e).__name__}: {e}); fix the markup "
                              "or export the page as HTML/Markdown") from None
    text, _ = _html_to_markdown(_docutils_html_for_markdown(html))
    return text, None


def _docutils_html_for_markdown(html: str) -> bytes:
    """docutils' HTML with inline literals as <code> (so they stay `code`) and admonitions as "**Note:** text"."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for span in soup.select("span.literal"):
        span.name = "code"
        span.attrs = {}
    for box in soup.select(".admonition"):
        label = box.select_one(".admonition-title")
        first = label.find_next_sibling("p") if label else None
        if label is None or first is None:
            continue
        strong = soup.new_tag("strong")
        strong.string = label.get_text(strip=True).rstrip(":") + ":"
        first.insert(0, " ")
        first.insert(0, strong)
        label.decompose()
    return str(soup).encode()


# ---------------------------------------------------------------------------------------------- PDF

_MONO = re.compile(r"courier|mono|consol|menlo|code|inconsolata|typewriter", re.IGNORECASE)
_PAGE_NUMBER = re.compile(r"^(page\s+)?\d+(\s*(/|of)\s*\d+)?$", re.IGNORECASE)


def _pdf_lines(data: bytes) -> tuple[list[list[dict]], int]:
    """Text lines per page ({"text", "size", "mono", "box"}) and the number of images seen."""
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTChar, LTFigure, LTImage, LTTextContainer, LTTextLine
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from pdfminer.pdfparser import PDFSyntaxError

    pages: list[list[dict]] = []
    images = 0

    def count_images(el) -> int:
        if isinstance(el, LTImage):
            return 1
        return sum(count_images(c) for c in el) if isinstance(el, LTFigure) else 0

    try:
        for page_no, page in enumerate(extract_pages(io.BytesIO(data), laparams=LAParams())):
            lines: list[dict] = []
            for box_no, el in enumerate(page):
                images += count_images(el)
                if not isinstance(el, LTTextContainer):
                    continue
                for line in el:
                    if not isinstance(line, LTTextLine):
                        continue
                    chars = [c for c in line if isinstance(c, LTChar) and c.get_text().strip()]
                    text = line.get_text().strip()
                    if not chars or not text:
                        continue
                    mono = sum(bool(_MONO.search(c.fontname)) for c in chars) > len(chars) / 2
                    lines.append({"text": text, "size": round(statistics.median(c.size for c in chars), 1),
                                  "mono": mono, "box": (page_no, box_no), "chars": len(chars)})
            pages.append(lines)
    except (PDFPasswordIncorrect, PDFEncryptionError):
        raise ConversionError("the PDF is password-protected; save an unprotected copy into the corpus folder") \
            from None
    except PDFSyntaxError as e:
        raise ConversionError(f"not a readable PDF ({e}); re-export it, or remove it from the corpus folder") from None
    return pages, images


def _pdf_to_markdown(data: bytes) -> str:
    pages, images = _pdf_lines(data)
    n_chars = sum(ln["chars"] for page in pages for ln in page)
    if n_chars == 0:
        what = (f"its {len(pages)} page(s) hold {images} image(s) and no text, so it is probably a scan"
                if images else f"its {len(pages)} page(s) hold no text")
        raise ConversionError(
            f"no text layer: {what}. Run OCR on it first (e.g. `ocrmypdf in.pdf out.pdf`, or 'Recognize text' in "
            "your PDF tool), or export the original document as PDF with text, DOCX or Markdown; or remove it from "
            "the corpus folder")
    # Running headers/footers: the same line on most pages of a document with a few pages.
    per_page = Counter(t for page in pages for t in {ln["text"] for ln in page})
    repeated = {t for t, n in per_page.items() if len(pages) >= 3 and n > len(pages) / 2}
    lines = [ln for page in pages for ln in page
             if ln["text"] not in repeated and not _PAGE_NUMBER.match(ln["text"])]

    sizes: Counter = Counter()
    for ln in lines:
        if not ln["mono"]:
            sizes[ln["size"]] += ln["chars"]
    body = sizes.most_common(1)[0][0] if sizes else 0.0
    heading_sizes = sorted({s for s in sizes if s > body * 1.1}, reverse=True)[:6]  # 10% larger: a heading
    level = {s: i + 1 for i, s in enumerate(heading_sizes)}

    blocks: list[tuple[str, list[str]]] = []  # (kind, lines): kind = "h<level>" | "p" | "code"
    prev = None
    for ln in lines:
        kind = "code" if ln["mono"] else f"h{level[ln['size']]}" if ln["size"] in level else "p"
        key = (kind, ln["box"])
        if prev is not None and blocks and blocks[-1][0] == kind and (kind == "code" or key == prev):
            blocks[-1][1].append(ln["text"])
        else:
            blocks.append((kind, [ln["text"]]))
        prev = key
    out = []
    for kind, texts in blocks:
        if kind == "code":
            out.append("```\n" + "\n".join(texts) + "\n```")
        elif kind.startswith("h"):
            out.append("#" * int(kind[1:]) + " " + " ".join(texts))
        else:
            out.append(_join_lines(texts))
    return "\n\n".join(out) + "\n"


def _join_lines(lines: list[str]) -> str:
    """A paragraph's lines as one line, mending words hyphenated across a line break."""
    text = ""
    for line in lines:
        if text.endswith("-") and line[:1].islower() and len(text) > 1 and text[-2].isalpha():
            text = text[:-1] + line
        else:
            text = f"{text} {line}" if text else line
    return text


def _pdf_title(data: bytes) -> str | None:
    from pdfminer.pdfdocument import PDFDocument
    from pdfminer.pdfparser import PDFParser
    from pdfminer.psparser import PSLiteral

    try:
        doc = PDFDocument(PDFParser(io.BytesIO(data)))
        for info in doc.info:
            value = info.get("Title")
            if isinstance(value, bytes):
                value = value.decode("utf-16" if value.startswith(b"\xfe\xff") else "latin-1", "replace")
            if isinstance(value, str) and value.strip() and not isinstance(value, PSLiteral):
                return value.strip()
    except Exception:  # noqa: BLE001 - metadata is optional; the text decides the title otherwise
        return None
    return None
