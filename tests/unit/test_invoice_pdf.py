"""The invoice and credit PDF: the same document always gives the same bytes, and the page
prints what the document holds (text the core font cannot print, without its accents)."""

from __future__ import annotations

import re
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from shelflife.adapters.documents.pdf import render_pdf
from shelflife.domain.ports import DocumentPrint, PrintedLine

INVOICE = DocumentPrint(
    kind="invoice",
    id=7,
    customer_id=3,
    number="RE-2026-0042",
    shop="main",
    time_zone="Europe/Berlin",
    created_at=datetime(2026, 3, 31, 22, 30, tzinfo=UTC),  # 1 April in Berlin
    order_nr="302-1234567-1234567",
    invoice_nr=None,
    billing_name="Łukasz Müller",
    billing_address="Heidestraße 17\n51147 Köln",
    billing_country="DE",
    billing_vat_id="DE123456789",
    lines=(PrintedLine("BK-1", "Kochbuch", 2, Decimal("9.99")),),
    net=Decimal("16.79"),
    tax=Decimal("3.19"),
    total=Decimal("19.98"),
    currency="EUR",
)


def _page_text(pdf: bytes) -> str:
    """The decompressed content stream of the (single) page, as Windows-1252 text."""
    streams = re.findall(rb"stream\n(.*?)\nendstream", pdf, flags=re.DOTALL)
    text = "".join(zlib.decompress(s).decode("cp1252") for s in streams if s[:1] == b"x")
    return text.replace("\\(", "(").replace("\\)", ")")


def test_the_same_document_gives_the_same_bytes() -> None:
    assert render_pdf(INVOICE) == render_pdf(replace(INVOICE))


def test_the_pdf_is_dated_by_the_document_not_by_the_clock() -> None:
    pdf = render_pdf(INVOICE)

    assert pdf.startswith(b"%PDF-1.")
    assert b"/CreationDate (D:20260331223000Z)" in pdf


def test_the_page_prints_the_document() -> None:
    text = _page_text(render_pdf(INVOICE))

    for printed in (
        "Invoice RE-2026-0042",
        "Date: 2026-04-01",
        "Order: 302-1234567-1234567",
        "Lukasz Müller",
        "Heidestraße 17",
        "51147 Köln",
        "VAT ID: DE123456789",
        "2 x Kochbuch (BK-1)  9.99 EUR",
        "Net: 16.79 EUR",
        "Tax: 3.19 EUR",
        "Total: 19.98 EUR",
    ):
        assert f"({printed})" in text, printed


def test_a_credit_names_the_invoice_it_corrects() -> None:
    credit = replace(
        INVOICE, kind="credit", number="GS-1", invoice_nr="RE-2026-0042", lines=(), net=None
    )

    text = _page_text(render_pdf(credit))

    assert "(Credit note GS-1)" in text
    assert "(Corrects invoice: RE-2026-0042)" in text
    assert "Net:" not in text


def test_characters_without_a_latin_form_print_as_question_marks() -> None:
    text = _page_text(render_pdf(replace(INVOICE, billing_name="李 Ωmega")))

    assert "(? ?mega)" in text


def test_different_documents_give_different_bytes() -> None:
    assert render_pdf(INVOICE) != render_pdf(replace(INVOICE, total=Decimal("19.99")))
