"""An invoice's or credit's PDF, rendered with fpdf2.

The bytes depend on the document alone: the PDF's creation date is the document's own date and
its producer a fixed name, so making the same document twice gives the same bytes. Text is set
in the PDF core font Helvetica (Windows-1252): nothing is read from the machine's fonts, so
every installation renders alike. A character outside Windows-1252 is printed without its
accents where Unicode can take them off (`ő` as `o`), a few letters with strokes by their base
letter (`ł` as `l`), anything else as `?`; the database keeps the exact text.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal
from zoneinfo import ZoneInfo

from fpdf import FPDF

from shelflife.domain.ports import DocumentPrint

PRODUCER = "shelflife"
ENCODING = "windows-1252"
TITLES = {"invoice": "Invoice", "credit": "Credit note"}
_STROKED = str.maketrans("ŁłĐđĦħıŦŧŊŋ", "LlDdHhiTtNn")
"""Letters whose stroke is part of the letter (Unicode does not decompose them)."""


def render_pdf(doc: DocumentPrint) -> bytes:
    """The document as an A4 PDF: shop, number, date, billing name and address, VAT ID, lines
    (an order invoice's items), net, tax and total."""
    pdf = FPDF(format="A4")
    pdf.core_fonts_encoding = ENCODING
    pdf.set_creation_date(doc.created_at)
    pdf.set_producer(PRODUCER)
    pdf.set_title(_printable(f"{TITLES[doc.kind]} {doc.number}"))
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()

    def line(text: str, size: int = 10, style: str = "") -> None:
        pdf.set_font("Helvetica", style=style, size=size)
        for part in _printable(text).split("\n"):
            # multi_cell wraps but costs ten times a cell: only for lines that need it
            if pdf.get_string_width(part) <= pdf.epw:
                pdf.cell(0, size * 0.5, part, new_x="LMARGIN", new_y="NEXT")
            else:
                pdf.multi_cell(0, size * 0.5, part, new_x="LMARGIN", new_y="NEXT")

    local = doc.created_at.astimezone(ZoneInfo(doc.time_zone)).date()
    line(doc.shop, 9)
    pdf.ln(4)
    for text in (doc.billing_name, doc.billing_address, doc.billing_country):
        if text:
            line(text)
    if doc.billing_vat_id:
        line(f"VAT ID: {doc.billing_vat_id}")
    pdf.ln(8)
    line(f"{TITLES[doc.kind]} {doc.number}", 14, "B")
    line(f"Date: {local.isoformat()}")
    if doc.order_nr:
        line(f"Order: {doc.order_nr}")
    if doc.invoice_nr:
        line(f"Corrects invoice: {doc.invoice_nr}")
    pdf.ln(4)
    for item in doc.lines:
        line(f"{item.qty} x {item.title} ({item.sku})  {_money(item.price, doc.currency)}")
    if doc.lines:
        pdf.ln(2)
    if doc.net is not None:
        line(f"Net: {_money(doc.net, doc.currency)}")
    if doc.tax is not None:
        line(f"Tax: {_money(doc.tax, doc.currency)}")
    line(f"Total: {_money(doc.total, doc.currency)}", 11, "B")
    return bytes(pdf.output())


def _money(amount: Decimal, currency: str) -> str:
    return f"{amount:.2f} {currency}"


def _printable(text: str) -> str:
    """Text the core font can print: as it is where Windows-1252 holds it, else without
    accents, else `?` per character."""
    out = []
    for char in text:
        if char in "\r\t":
            char = " "
        if char == "\n":
            out.append(char)
            continue
        try:
            char.encode(ENCODING)
            out.append(char)
            continue
        except UnicodeEncodeError:
            pass
        plain = char.translate(_STROKED)
        base = "".join(c for c in unicodedata.normalize("NFKD", plain) if c.isascii())
        out.append(base or "?")
    return "".join(out)
