"""Duplicates and merge on SQLite and PostgreSQL: archived and masked buyers are never offered
nor merged, Amazon's shared identity and empty fields never make duplicates, and a merged
buyer is archived, masked and retrieved as one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from shelflife.adapters.db.tables import Address, Customer, CustomerHistory, Invoice, Order
from shelflife.bootstrap import App
from shelflife.domain.errors import Conflict, InvalidInput, NotFound
from shelflife.services.audit import recent_entries, verify_audit_log
from shelflife.services.customers import find_duplicates, merge_customers
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, lines, order


def _buyer(
    nr: str,
    customer_nr: str,
    *,
    shop: str = "main",
    shipped_at: datetime | None = T0,
    **fields: str | None,
) -> dict[str, Any]:
    """An order of a buyer with its own customer number; `fields` override the buyer's name,
    company, city and postcode (None leaves a field out)."""
    unknown = set(fields) - {"first_name", "last_name", "company", "city", "zip"}
    assert not unknown, unknown
    data = order(nr, shop=shop, shipped_at=shipped_at)
    data["customer"]["customer_nr_external"] = customer_nr
    for section, keys in (
        ("customer", ("first_name", "last_name", "company")),
        ("billing_address", ("first_name", "last_name", "company", "city", "zip")),
    ):
        for key in keys:
            if key in fields and fields[key] is None:
                data[section].pop(key, None)
            elif key in fields:
                data[section][key] = fields[key]
    return data


def _ref(app: App, nr: str) -> str:
    with app.engine.connect() as conn:
        query = select(Order.customer_id).where(Order.order_nr_external == nr)
        return f"C{conn.execute(query).scalar_one()}"


def _import(app: App, *orders: dict[str, Any]) -> None:
    report = import_lines(app, lines(*orders))
    assert report.refused == [], report.refused


def test_records_with_the_same_name_city_postcode_company_and_shop_are_one_group(
    app: App,
) -> None:
    _import(
        app,
        _buyer("302-0000001-0000001", "K1"),
        _buyer("302-0000002-0000002", "K2"),
        _buyer("302-0000003-0000003", "K3", company="Andere GmbH"),
        _buyer("302-0000004-0000004", "K4", shop="second"),
        _buyer("302-0000005-0000005", "K5", first_name="Erik"),
        _buyer("302-0000006-0000006", "K6"),
    )
    groups = find_duplicates(app.ports()).groups

    assert [(g.shop, g.channel, g.customers, g.orders) for g in groups] == [
        (
            "main",
            "amazon",
            [
                _ref(app, "302-0000001-0000001"),
                _ref(app, "302-0000002-0000002"),
                _ref(app, "302-0000006-0000006"),
            ],
            [1, 1, 1],
        )
    ]
    assert find_duplicates(app.ports(), shop="second").groups == []


def test_amazons_shared_identity_empty_fields_and_other_channels_never_make_duplicates(
    app: App,
) -> None:
    sarl = ("Amazon Business", "EU SARL", "Luxembourg")
    _import(
        app,
        _buyer("302-0000001-0000001", "K1", first_name=sarl[0], last_name=sarl[1], city=sarl[2]),
        _buyer("302-0000002-0000002", "K2", first_name=sarl[0], last_name=sarl[1], city=sarl[2]),
        _buyer("302-0000003-0000003", "K3", company="Amazon Business EU SARL"),
        _buyer("302-0000004-0000004", "K4", company="Amazon Business EU SARL"),
        _buyer("302-0000005-0000005", "K5", city=None, zip=None),
        _buyer("302-0000006-0000006", "K6", city=None, zip=None),
        _buyer("SHOP-7", "K7"),  # a shop order: another channel than the Amazon buyer K8
        _buyer("302-0000008-0000008", "K8"),
    )
    assert find_duplicates(app.ports()).groups == []


def test_archived_and_masked_buyers_are_never_offered_as_duplicates(app: App) -> None:
    _import(app, _buyer("302-0000001-0000001", "K1"), _buyer("302-0000002-0000002", "K2"))
    set_feature(app.ports(), "main", True, "test")
    _import(app, _buyer("302-0000003-0000003", "K3", shipped_at=None))
    assert len(find_duplicates(app.ports()).groups[0].customers) == 3

    run_retention(at(app, T0 + days(29) + days(0.5)).ports())  # K1, K2 archived, not yet masked
    assert find_duplicates(app.ports()).groups == []

    run_retention(at(app, T0 + days(31)).ports())  # masked
    assert find_duplicates(app.ports()).groups == []


def test_merge_moves_orders_documents_and_history_and_is_recorded(app: App) -> None:
    first = _buyer("302-0000001-0000001", "K1")
    second = _buyer("302-0000002-0000002", "K2")
    second["invoices"] = [{"invoice_nr": "RE-2", "created_at": T0.isoformat(), "total": "9.99"}]
    _import(app, first, second)
    keep, other = _ref(app, "302-0000001-0000001"), _ref(app, "302-0000002-0000002")

    result = merge_customers(app.ports(), keep, other, "anna")

    assert (result.kept, result.merged, result.orders_moved) == (keep, other, 1)
    with app.engine.connect() as conn:
        owners = conn.execute(select(Order.order_nr_external, Order.customer_id)).all()
        invoice_owner = conn.execute(select(Invoice.customer_id)).scalar_one()
        assert f"C{invoice_owner}" == keep
        assert {nr: f"C{cid}" for nr, cid in owners} == {
            "302-0000001-0000001": keep,
            "302-0000002-0000002": keep,
        }
        assert conn.execute(select(func.count()).select_from(Customer)).scalar_one() == 1
        history = conn.execute(
            select(CustomerHistory.event, CustomerHistory.user_name, CustomerHistory.text)
        ).all()
        assert ("merged", "anna", f"customer {other} merged into this one") in history
    entry = recent_entries(app.ports(), 1)[0]
    assert (entry.actor, entry.action, entry.subject) == ("anna", "customer.merged", keep)
    assert entry.detail == {"merged": other, "orders_moved": 1}
    assert verify_audit_log(app.ports()).intact
    assert find_duplicates(app.ports()).groups == []


def test_a_merged_buyer_is_archived_masked_and_retrieved_as_one(app: App) -> None:
    moved = _buyer("302-0000002-0000002", "K2")
    moved["shipping_address"] = moved["shipping_address"] | {"street": "Umzugsweg"}
    _import(app, _buyer("302-0000001-0000001", "K1"), moved)
    keep, other = _ref(app, "302-0000001-0000001"), _ref(app, "302-0000002-0000002")
    merge_customers(app.ports(), keep, other, "a")
    set_feature(app.ports(), "main", True, "test")

    report = run_retention(at(app, T0 + days(31)).ports())
    assert (report.archived, report.masked) == (1, 1)

    retrieve_order(at(app, T0 + days(32)).ports(), "302-0000002-0000002", "Rückfrage", "anna")
    with app.engine.connect() as conn:
        streets = (
            conn.execute(
                select(Address.street)
                .join(Order, Order.id == Address.order_id)
                .where(Order.order_nr_external == "302-0000002-0000002")
            )
            .scalars()
            .all()
        )
    assert "Umzugsweg" in streets


def test_merge_is_refused_for_an_archived_or_masked_buyer_and_changes_nothing(app: App) -> None:
    _import(app, _buyer("302-0000001-0000001", "K1"))
    set_feature(app.ports(), "main", True, "test")
    _import(app, _buyer("302-0000002-0000002", "K2", shipped_at=None))
    archived, fresh = _ref(app, "302-0000001-0000001"), _ref(app, "302-0000002-0000002")
    run_retention(at(app, T0 + days(29) + days(0.5)).ports())
    before = recent_entries(app.ports(), 1)

    for keep, other in ((fresh, archived), (archived, fresh)):
        with pytest.raises(
            Conflict, match=f"customer {archived} is archived; its data cannot be merged"
        ):
            merge_customers(app.ports(), keep, other, "anna")

    run_retention(at(app, T0 + days(31)).ports())  # now masked
    with pytest.raises(Conflict, match="cannot be merged"):
        merge_customers(app.ports(), fresh, archived, "anna")
    with app.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Customer)).scalar_one() == 2
    assert [e.action for e in recent_entries(app.ports(), 5)].count("customer.merged") == 0
    assert before


@pytest.mark.parametrize(
    ("keep", "other", "error", "message"),
    [
        ("C1", "C1", InvalidInput, "two different customers"),
        ("42", "C1", InvalidInput, "keep: give a buyer reference"),
        ("C1", "Erika", InvalidInput, "other: give a buyer reference"),
        ("C1", "C999", NotFound, "customer C999 does not exist"),
    ],
)
def test_merge_of_unknown_or_malformed_references_is_refused(
    app: App, keep: str, other: str, error: type[Exception], message: str
) -> None:
    _import(app, _buyer("302-0000001-0000001", "K1"))
    assert _ref(app, "302-0000001-0000001") == "C1"
    with pytest.raises(error, match=message):
        merge_customers(app.ports(), keep, other, "anna")


def test_merge_across_shops_or_channels_is_refused(app: App) -> None:
    _import(
        app,
        _buyer("302-0000001-0000001", "K1"),
        _buyer("302-0000002-0000002", "K2", shop="second"),
        _buyer("SHOP-3", "K3"),
    )
    amazon, elsewhere, shop_buyer = (
        _ref(app, n) for n in ("302-0000001-0000001", "302-0000002-0000002", "SHOP-3")
    )
    with pytest.raises(Conflict, match="different shops"):
        merge_customers(app.ports(), amazon, elsewhere, "anna")
    with pytest.raises(Conflict, match="Amazon buyer and the other a shop customer"):
        merge_customers(app.ports(), amazon, shop_buyer, "anna")
