"""Tax fields kept by choice: a shop may keep the buyer's VAT ID, postcode and region on its
invoices and credits unmasked under a recorded legal basis; everything else is masked as before,
the archive holds every value, and retrieval restores them all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from shelflife.adapters.db.tables import Address, Credit, Customer, Invoice
from shelflife.bootstrap import App
from shelflife.domain.errors import InvalidInput, UnknownShop
from shelflife.services.audit import recent_entries
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import list_shops, set_feature, set_tax_fields
from tests.integration.test_no_residue_in_database_files import DatabaseFiles, database_files
from tests.support.builders import T0, at, days, lines, make_app, order

__all__ = ["database_files"]  # the fixture, imported for pytest

BASIS = "reverse-charge records (UStG §14a)"


def tax_order(nr: str, shop: str, tag: str) -> dict[str, Any]:
    """An Amazon order with an invoice and a credit; every value carries `tag` so that the
    two shops' buyers differ, and the VAT IDs and postcodes are distinctive."""
    data = order(nr, shipped_at=T0 + days(1), invoiced_at=T0 + days(1), suffix=tag)
    data["shop"] = shop
    data["customer"]["vat_id"] = f"DE{tag}1111111"
    data["billing_address"].update(
        zip=f"5{tag}147", state=f"Nordrhein{tag}", vat_id=f"DE{tag}8765432"
    )
    data["credits"] = [
        {
            "credit_nr": f"GS-{nr}",
            "invoice_nr": f"RE-{nr}",
            "created_at": (T0 + days(1)).isoformat(),
            "total": "5.00",
            "net": "4.20",
            "tax": "0.80",
        }
    ]
    return data


KEEPING = tax_order("302-1111111-1111111", "main", "71")
MASKING = tax_order("302-2222222-2222222", "outlet", "93")


def imported(app: App) -> None:
    report = import_lines(app, lines(KEEPING, MASKING))
    assert (report.created, report.refused) == (2, [])
    for shop in ("main", "outlet"):
        set_feature(app.ports(), shop, True, "test")


def masked(app: App) -> None:
    assert run_retention(at(app, T0 + days(30)).ports(), T0 + days(30)).archived == 2
    assert run_retention(at(app, T0 + days(32)).ports(), T0 + days(32)).masked == 2


BILLING_COLUMNS = (
    "billing_name",
    "billing_address",
    "billing_zip",
    "billing_state",
    "billing_country",
    "billing_vat_id",
)


def documents(app: App, table: type[Any], nr: str) -> dict[str, Any]:
    number = Invoice.invoice_nr if table is Invoice else Credit.credit_nr
    with app.engine.connect() as conn:
        row = conn.execute(select(table.__table__).where(number == nr)).one()
    return {k: getattr(row, k) for k in BILLING_COLUMNS}


def test_a_kept_vat_id_and_postcode_stay_while_names_street_and_email_are_masked(
    database_url: str, tmp_path: Path, database_files: DatabaseFiles
) -> None:
    app, _clock = make_app(database_url, tmp_path / "home")
    try:
        imported(app)
        set_tax_fields(app.ports(), "main", ["zip", "vat_id"], BASIS, "anna")
        masked(app)

        kept = {
            "billing_name": "***",
            "billing_address": "***",
            "billing_zip": "571147",
            "billing_state": "***",
            "billing_country": "DE",
            "billing_vat_id": "DE718765432",
        }
        assert documents(app, Invoice, "RE-302-1111111-1111111") == kept
        assert documents(app, Credit, "GS-302-1111111-1111111") == kept
        every_masked = kept | {"billing_zip": "***", "billing_vat_id": "***"}
        assert documents(app, Invoice, "RE-302-2222222-2222222") == every_masked | {
            "billing_zip": "***"
        }
        with app.engine.connect() as conn:
            assert set(conn.execute(select(Customer.vat_id)).scalars()) == {"***"}
            assert set(conn.execute(select(Address.vat_id).where(Address.kind == "billing"))
                       .scalars()) == {"***"}  # fmt: skip

        raw = b"".join(database_files().values())
        assert raw.count(b"DE718765432") > 0
        assert raw.count(b"571147") > 0
        for gone in ("DE938765432", "593147", "Nordrhein71", "Nordrhein93", "DE711111111"):
            assert gone.encode() not in raw, gone
        for tag in ("71", "93"):
            for value in (
                f"Erika{tag}",
                f"Heidestraße{tag}",
                f"rechnung.mustermann@example.org{tag}",
            ):
                assert value.encode() not in raw, value
    finally:
        app.close()


def test_by_default_masking_covers_the_tax_fields_too(database_url: str, tmp_path: Path) -> None:
    app, _clock = make_app(database_url, tmp_path / "home")
    try:
        imported(app)
        masked(app)

        for nr in ("302-1111111-1111111", "302-2222222-2222222"):
            assert documents(app, Invoice, f"RE-{nr}") == {
                "billing_name": "***",
                "billing_address": "***",
                "billing_zip": "***",
                "billing_state": "***",
                "billing_country": "DE",
                "billing_vat_id": "***",
            }
    finally:
        app.close()


def test_retrieval_restores_every_field_of_a_shop_that_keeps_tax_fields(
    database_url: str, tmp_path: Path
) -> None:
    app, _clock = make_app(database_url, tmp_path / "home")
    try:
        imported(app)
        set_tax_fields(app.ports(), "main", ["vat_id", "zip", "state"], BASIS, "anna")
        masked(app)

        retrieve_order(
            at(app, T0 + days(33)).ports(), "302-1111111-1111111", "Steuerprüfung", "anna"
        )

        restored = {
            "billing_name": "Erika71 Mustermann71",
            "billing_address": "Heidestraße71 1771\n571147 Köln71",
            "billing_zip": "571147",
            "billing_state": "Nordrhein71",
            "billing_country": "DE",
            "billing_vat_id": "DE718765432",
        }
        assert documents(app, Invoice, "RE-302-1111111-1111111") == restored
        assert documents(app, Credit, "GS-302-1111111-1111111") == restored
        with app.engine.connect() as conn:
            vat_ids = conn.execute(
                select(Customer.vat_id).where(Customer.masked_at.is_not(None))
                .order_by(Customer.id)
            ).scalars().all()  # fmt: skip
        assert vat_ids == ["DE711111111", "***"]
    finally:
        app.close()


def test_keeping_tax_fields_needs_a_basis_and_is_audited(database_url: str, tmp_path: Path) -> None:
    app, clock = make_app(database_url, tmp_path / "home")
    try:
        imported(app)
        for basis in (None, "", "   "):
            with pytest.raises(InvalidInput, match="legal basis: required"):
                set_tax_fields(app.ports(), "main", ["vat_id"], basis, "anna")
        with pytest.raises(InvalidInput, match=r"tax fields: \?, street not among"):
            set_tax_fields(app.ports(), "main", ["street", "Erika Mustermann"], BASIS, "anna")
        with pytest.raises(UnknownShop):
            set_tax_fields(app.ports(), "nowhere", ["zip"], BASIS, "anna")
        assert [s.kept_tax_fields for s in list_shops(app.ports())] == [(), ()]

        view = set_tax_fields(app.ports(), "main", ["state", "vat_id"], f"  {BASIS} ", "anna")
        cleared = set_tax_fields(app.ports(), "main", [], None, "ben")

        assert (view.kept_tax_fields, view.tax_fields_basis) == (("vat_id", "state"), BASIS)
        assert (cleared.kept_tax_fields, cleared.tax_fields_basis) == ((), None)
        entries = [e for e in recent_entries(app.ports()) if e.action == "shop.tax_fields"]
        assert [(e.at, e.actor, e.subject, dict(e.detail)) for e in reversed(entries)] == [
            (clock.now(), "anna", "main", {"kept": "vat_id,state", "basis": BASIS}),
            (clock.now(), "ben", "main", {"kept": None, "basis": None}),
        ]
    finally:
        app.close()


def test_a_document_added_to_a_masked_order_takes_no_vat_id_from_the_line(
    database_url: str, tmp_path: Path
) -> None:
    """A re-import adds the new credit already masked: its billing copy comes from the stored,
    masked rows, never from the line's fresh VAT ID."""
    app, _clock = make_app(database_url, tmp_path / "home")
    try:
        imported(app)
        masked(app)
        again = tax_order("302-2222222-2222222", "outlet", "93")
        again["billing_address"]["vat_id"] = None  # only the customer block carries one
        again["customer"]["vat_id"] = "DE935555555"
        again["credits"].append(
            {"credit_nr": "GS-late", "created_at": (T0 + days(40)).isoformat(), "total": "1.00"}
        )

        report = import_lines(at(app, T0 + days(40)), lines(again))

        assert (report.pii_ignored_masked, report.refused) == (1, [])
        assert documents(app, Credit, "GS-late") == {
            "billing_name": "***",
            "billing_address": "***\n*** ***",  # joined from the masked address parts
            "billing_zip": "***",
            "billing_state": "***",
            "billing_country": "DE",
            "billing_vat_id": "***",
        }
    finally:
        app.close()
