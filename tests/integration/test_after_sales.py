"""Returns, replacement orders and credits on SQLite and PostgreSQL: a masked order is retrieved
first, in the same transaction; the new rows are archived and masked with the buyer 30 days after
that retrieval, and a later retrieval brings them back; quantities, amounts and unknown numbers
are refused without writing anything."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from shelflife.adapters.db.tables import Address, Base, Credit, Order, Return
from shelflife.bootstrap import App
from shelflife.domain.after_sales import parse_items
from shelflife.domain.errors import ArchiveUnavailable, InvalidInput, NotFound, UnknownOrder
from shelflife.domain.masking import MASKED_TEXT
from shelflife.services.after_sales import create_credit, create_replacement, create_return
from shelflife.services.importing import import_lines
from shelflife.services.inspection import show_order
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, order
from tests.support.fakes import UnreachableArchive

NR = "302-1234567-1234567"
INVOICE = f"RE-{NR}"
SHOP_NR = "10001"
MASKED_AT = T0 + days(31)
CREATED_AT = T0 + days(35)
REMASK_AT = CREATED_AT + days(31)
AGAIN_AT = REMASK_AT + days(1)
TWO_ITEMS = [
    {"sku": "BK-1", "title": "Notizbuch", "qty": 2, "price": "9.99"},
    {"sku": "PEN-2", "title": "Füller", "qty": 1, "price": "24.50"},
]


def _import(app: App, *records: dict[str, Any]) -> None:
    report = import_lines(app, [json.dumps(r, ensure_ascii=False) for r in records])
    assert report.refused == []


def _masked(app: App) -> None:
    _import(app, order(NR, shipped_at=T0, invoiced_at=T0, items=TWO_ITEMS))
    set_feature(app.ports(), "main", True, "ops")
    report = run_retention(app.ports(), MASKED_AT)
    assert (report.archived, report.masked) == (1, 1)


def _rows(app: App, query: Any) -> list[tuple[Any, ...]]:
    with app.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def _dump(app: App) -> dict[str, list[tuple[Any, ...]]]:
    return {
        t.name: _rows(app, select(t).order_by(*t.primary_key.columns))
        for t in Base.metadata.sorted_tables
    }


def test_a_return_on_a_masked_order_retrieves_it_first_and_shows_both(app: App) -> None:
    _masked(app)

    created = create_return(
        at(app, CREATED_AT).ports(), NR, {"BK-1": 1}, "Griff abgebrochen, Frau Mustermann", "anna"
    )

    shown = show_order(app.ports(), NR).model_dump(mode="json")
    assert (created.return_nr, created.retrieved) == (f"{NR}-RET1", True)
    assert shown["customer"]["first_name"] == "Erika"
    assert shown["returns"] == [
        {
            "return_nr": f"{NR}-RET1",
            "created_at": CREATED_AT.isoformat(),
            "created_by": "anna",
            "items": {"BK-1": 1},
            "reason": "Griff abgebrochen, Frau Mustermann",
        }
    ]
    assert [(h["event"], h["text"]) for h in shown["customer_history"]] == [
        ("masked", None),
        ("retrieved", f"Return {NR}-RET1: Griff abgebroche…"),
        ("return", f"Return {NR}-RET1: Griff abgebrochen, Frau Mustermann"),
    ]
    assert shown["retention"]["retrieved_at"] == CREATED_AT.isoformat()


def test_new_documents_are_masked_with_the_buyer_30_days_after_the_retrieval_and_come_back(
    app: App,
) -> None:
    _masked(app)
    ports = at(app, CREATED_AT).ports()
    create_return(ports, NR, {"BK-1": 1}, "Griff abgebrochen", "anna")
    create_replacement(ports, NR, {"BK-1": 1}, "Ersatz für Frau Mustermann", "anna")
    create_credit(ports, INVOICE, "9.99", "Kulanz Mustermann", "anna")

    report = run_retention(at(app, REMASK_AT).ports(), REMASK_AT)

    assert (report.archived, report.remasked) == (1, 1)
    assert _rows(app, select(Return.reason, Return.masked_at)) == [(MASKED_TEXT, REMASK_AT)]
    assert _rows(app, select(Credit.reason, Credit.billing_name)) == [(MASKED_TEXT, MASKED_TEXT)]
    replacement = select(Order.id).where(Order.order_nr_external == f"{NR}-R1")
    assert set(
        _rows(app, select(Address.city, Address.street).where(Address.order_id.in_(replacement)))
    ) == {(MASKED_TEXT, MASKED_TEXT)}
    with app.engine.connect() as conn:
        history = conn.execute(
            select(Base.metadata.tables["customer_history"].c.text).where(
                Base.metadata.tables["customer_history"].c.event.in_(
                    ["return", "replacement", "credit"]
                )
            )
        ).scalars()
        assert set(history) == {MASKED_TEXT}

    retrieve_order(at(app, AGAIN_AT).ports(), NR, "Nachfrage", "anna")

    shown = show_order(app.ports(), NR).model_dump(mode="json")
    assert [(r["return_nr"], r["reason"]) for r in shown["returns"]] == [
        (f"{NR}-RET1", "Griff abgebrochen")
    ]
    assert _rows(app, select(Credit.credit_nr, Credit.reason, Credit.billing_name)) == [
        (f"GS-{INVOICE}-1", "Kulanz Mustermann", "Erika Mustermann")
    ]
    again = show_order(app.ports(), f"{NR}-R1").model_dump(mode="json")
    assert again["replaces_order"] == NR
    assert {(a["kind"], a["city"]) for a in again["addresses"]} == {
        ("billing", "Köln"),
        ("shipping", "Köln"),
    }
    assert again["items"] == [{"sku": "BK-1", "title": "Notizbuch", "qty": 1, "price": "0.00"}]


def test_a_document_on_an_unmasked_buyer_is_archived_before_the_buyer_is_masked(app: App) -> None:
    _import(app, order(NR, shipped_at=T0, invoiced_at=T0, items=TWO_ITEMS))
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), T0 + days(29.5)).archived == 1

    created = create_return(at(app, T0 + days(30)).ports(), NR, {"PEN-2": 1}, "zu groß", "anna")
    report = run_retention(at(app, MASKED_AT).ports(), MASKED_AT)

    assert created.retrieved is False
    assert (report.archived, report.masked) == (1, 1)
    assert _rows(app, select(Return.reason)) == [(MASKED_TEXT,)]
    retrieve_order(at(app, CREATED_AT).ports(), NR, "Nachfrage", "anna")
    assert _rows(app, select(Return.reason)) == [("zu groß",)]


def test_a_credit_on_a_manual_invoice_still_masked_when_its_buyer_is_retrieved(app: App) -> None:
    """A manual invoice imported while its buyer was masked was never archived unmasked, so a
    retrieval leaves it masked; a credit against it needs no second retrieval of the order."""
    _masked(app)
    manual = {
        "type": "manual_invoice",
        "shop": "main",
        "customer_of_order": NR,
        "invoice_nr": "RE-M-1",
        "created_at": (MASKED_AT + days(1)).isoformat(),
        "total": "40.00",
    }
    _import(app, manual)
    retrieve_order(at(app, CREATED_AT).ports(), NR, "Rückfrage", "anna")
    later = CREATED_AT + days(2)

    created = create_credit(at(app, later).ports(), "RE-M-1", "5.00", "Kulanz", "ben")

    assert (created.credit_nr, created.retrieved) == ("GS-RE-M-1-1", False)
    shown = show_order(app.ports(), NR).model_dump(mode="json")
    assert shown["retention"]["retrieved_at"] == CREATED_AT.isoformat()  # re-mask not moved
    assert [h["event"] for h in shown["customer_history"]].count("retrieved") == 1


def test_a_shop_order_needs_no_retrieval(app: App) -> None:
    _import(app, order(SHOP_NR, shipped_at=T0, invoiced_at=T0, items=TWO_ITEMS))
    set_feature(app.ports(), "main", True, "ops")
    run_retention(app.ports(), MASKED_AT)

    ports = at(app, CREATED_AT).ports()
    results = [
        create_return(ports, SHOP_NR, {"BK-1": 2}, "defekt", "anna").retrieved,
        create_replacement(ports, SHOP_NR, {"PEN-2": 1}, "defekt", "anna").retrieved,
        create_credit(ports, f"RE-{SHOP_NR}", "19.98", "defekt", "anna").retrieved,
    ]

    assert results == [False, False, False]
    with app.ports().reader as reader:
        actions = [e.action for e in reader.audit.entries()]
    assert "order.retrieved" not in actions
    assert actions[-3:] == ["return.created", "replacement.created", "credit.created"]


def test_an_unreachable_archive_leaves_everything_as_it_was(app: App) -> None:
    _masked(app)
    before = _dump(app)
    app.archive = UnreachableArchive()
    ports = at(app, CREATED_AT).ports()

    with pytest.raises(ArchiveUnavailable):
        create_return(ports, NR, {"BK-1": 1}, "Griff abgebrochen", "anna")
    with pytest.raises(ArchiveUnavailable):
        create_replacement(ports, NR, {"BK-1": 1}, "Griff abgebrochen", "anna")
    with pytest.raises(ArchiveUnavailable):
        create_credit(ports, INVOICE, "1.00", "Kulanz", "anna")

    assert _dump(app) == before


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ("BK-1:3", "items: SKU 'BK-1': 3 asked for, but 1 of 2 ordered can still be returned"),
        ("XX-9:1", "items: SKU 'XX-9' is not on this order"),
        ("BK-1", "items: 'BK-1' is not SKU:QTY with a whole quantity, e.g. A-1:2"),
    ],
)
def test_quantities_beyond_what_is_left_are_refused(app: App, items: str, message: str) -> None:
    _import(app, order(SHOP_NR, shipped_at=T0, items=TWO_ITEMS))
    create_return(app.ports(), SHOP_NR, {"BK-1": 1}, "defekt", "anna")
    before = _dump(app)

    with pytest.raises(InvalidInput) as refused:
        create_return(app.ports(), SHOP_NR, parse_items(items), "defekt", "anna")

    assert str(refused.value) == message
    assert _dump(app) == before


def test_unknown_order_and_invoice_are_refused(app: App) -> None:
    _import(app, order(SHOP_NR, shipped_at=T0))

    with pytest.raises(UnknownOrder):
        create_return(app.ports(), "10002", {"BK-1": 1}, "defekt", "anna")
    with pytest.raises(UnknownOrder):
        create_replacement(app.ports(), "10002", {"BK-1": 1}, "defekt", "anna")
    with pytest.raises(NotFound) as refused:
        create_credit(app.ports(), "RE-404", "1.00", "defekt", "anna")
    assert str(refused.value) == "no invoice with number 'RE-404'; check the number"


def test_a_credit_cannot_exceed_what_is_left_of_the_invoice(app: App) -> None:
    _import(app, order(SHOP_NR, shipped_at=T0, invoiced_at=T0))
    create_credit(app.ports(), f"RE-{SHOP_NR}", "10.00", "Teil", "anna")

    with pytest.raises(InvalidInput) as refused:
        create_credit(app.ports(), f"RE-{SHOP_NR}", "10.00", "Rest", "anna")

    assert str(refused.value) == (
        "total: 10.00 is more than the 9.98 of the invoice's 19.98 not yet credited"
    )


def test_a_number_an_imported_order_holds_already_is_skipped(app: App) -> None:
    _import(app, order(SHOP_NR, shipped_at=T0), order(f"{SHOP_NR}-R1", shipped_at=T0))

    created = create_replacement(app.ports(), SHOP_NR, {"BK-1": 1}, "defekt", "anna")

    assert created.order_nr_external == f"{SHOP_NR}-R2"
