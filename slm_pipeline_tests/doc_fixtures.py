"""One small document in every format the corpus reader converts, built in the test (no binary fixtures):
Markdown (the twin the others must match), HTML, reStructuredText, PDF (fpdf2), DOCX (python-docx), PPTX."""

from __future__ import annotations

from pathlib import Path

TITLE = "Returns Policy"
INTRO = "You can return any bike within 30 days of delivery. Bring the receipt to any LoopBike shop."
REFUNDS = "Refunds reach your card within 5 business days after we receive the bike."
CODE = ["# restart the refund service", "systemctl restart refunds"]
CREDIT = "Store credit never expires and works in every shop."
EXCHANGES = "Exchanges for another size are free of charge."

MARKDOWN = f"""# {TITLE}

{INTRO}

## Refunds

{REFUNDS}

```
{CODE[0]}
{CODE[1]}
```

### Store credit

{CREDIT}

## Exchanges

{EXCHANGES}
"""

HTML = f"""<!DOCTYPE html><html><head><title>{TITLE} | LoopBike</title></head><body>
<nav><a href="/">Home</a> <a href="/help">Help</a></nav>
<main><h1>{TITLE}</h1><p>{INTRO}</p>
<h2>Refunds</h2><p>{REFUNDS}</p><pre><code>{CODE[0]}
{CODE[1]}</code></pre>
<h3>Store credit</h3><p>{CREDIT}</p>
<h2>Exchanges</h2><p>{EXCHANGES}</p></main>
<footer>Copyright LoopBike</footer></body></html>"""

RST = f"""{'=' * len(TITLE)}
{TITLE}
{'=' * len(TITLE)}

{INTRO}

Refunds
=======

{REFUNDS}

.. code-block:: sh

   {CODE[0]}
   {CODE[1]}

Store credit
------------

{CREDIT}

Exchanges
=========

{EXCHANGES}
"""


def write_pdf(path: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()

    def para(font: str, size: int, text: str) -> None:
        pdf.set_font(font, size=size)
        pdf.multi_cell(0, size * 0.6, text=text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(size * 0.5)

    para("helvetica", 20, TITLE)
    para("helvetica", 11, INTRO)
    para("helvetica", 16, "Refunds")
    para("helvetica", 11, REFUNDS)
    para("courier", 10, "\n".join(CODE))
    para("helvetica", 13, "Store credit")
    para("helvetica", 11, CREDIT)
    para("helvetica", 16, "Exchanges")
    para("helvetica", 11, EXCHANGES)
    pdf.output(str(path))
    return path


def write_docx(path: Path) -> Path:
    import docx
    from docx.enum.style import WD_STYLE_TYPE

    d = docx.Document()
    d.add_heading(TITLE, 1)
    d.add_paragraph(INTRO)
    d.add_heading("Refunds", 2)
    d.add_paragraph(REFUNDS)
    code = d.styles.add_style("Code", WD_STYLE_TYPE.PARAGRAPH)
    code.font.name = "Courier New"
    for line in CODE:
        d.add_paragraph(line, style=code)
    d.add_heading("Store credit", 3)
    d.add_paragraph(CREDIT)
    d.add_heading("Exchanges", 2)
    d.add_paragraph(EXCHANGES)
    d.save(str(path))
    return path


def write_scanned_pdf(path: Path) -> Path:
    """A PDF whose only page is an image (what a scanner writes): no text layer."""
    from fpdf import FPDF
    from PIL import Image

    img = path.with_suffix(".png")
    Image.new("RGB", (200, 100), "white").save(img)
    pdf = FPDF()
    pdf.add_page()
    pdf.image(str(img), x=10, y=10, w=100)
    pdf.output(str(path))
    img.unlink()
    return path


def write_empty_pdf(path: Path) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.output(str(path))
    return path
