"""The smaller services on in-memory fakes: the feature switch and its audit entry, shop
settings, shipping, finding an order, listing runs, verifying the audit log, showing an order
and the compliance report. No database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shelflife.domain.audit import AUDIT_RETENTION
from shelflife.domain.errors import InvalidInput, UnknownShop
from shelflife.domain.ports import Ports
from shelflife.services.audit import recent_entries, verify_audit_log
from shelflife.services.inspection import compliance_report, show_order
from shelflife.services.pipeline import run_retention
from shelflife.services.runs import list_runs
from shelflife.services.search import find
from shelflife.services.shops import configure_shop, list_shops, set_feature, ship_order
from tests.support.fakes import (
    FakeCustomer,
    FakeData,
    FakeHistoryEntry,
    FakeOrder,
    FakeUnitOfWork,
    fake_ports,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
NR = "302-1234567-1234567"


def _ports() -> tuple[Ports, FakeUnitOfWork]:
    data = FakeData()
    data.customers[1] = FakeCustomer(1, closed_at=NOW - timedelta(days=5))
    data.orders[10] = FakeOrder(10, NR, 1, ordered_at=NOW - timedelta(days=7))
    uow = FakeUnitOfWork(data)
    return fake_ports(uow, now=NOW), uow


def test_switching_the_feature_records_who_and_when_and_audits_it_in_one_commit() -> None:
    ports, uow = _ports()

    assert set_feature(ports, "berlin", False, "sam") is True

    data = uow.committed
    assert (uow.commits, data.feature_changes) == (1, [(1, False, NOW, "sam")])
    assert [(e.actor, e.action, e.subject) for e in data.audit] == [
        ("sam", "feature.disabled", "berlin")
    ]
    assert [s.retention_enabled for s in list_shops(ports)] == [False]


def test_switching_the_feature_to_its_current_state_changes_and_audits_nothing() -> None:
    ports, uow = _ports()

    assert set_feature(ports, "berlin", True, "sam") is False

    assert (uow.commits, uow.committed.audit) == (0, [])


def test_an_unknown_shop_is_refused_and_nothing_is_committed() -> None:
    ports, uow = _ports()

    with pytest.raises(UnknownShop):
        set_feature(ports, "hamburg", True, "sam")

    assert uow.commits == 0


def test_shop_settings_are_changed_and_listed() -> None:
    ports, _uow = _ports()

    configure_shop(ports, "berlin", "Pacific/Auckland", "^[0-9]{3}-")

    (shop,) = list_shops(ports)
    assert (shop.name, shop.time_zone, shop.amazon_order_pattern) == (
        "berlin",
        "Pacific/Auckland",
        "^[0-9]{3}-",
    )


def test_a_shipment_before_the_order_is_refused_and_one_after_it_is_recorded() -> None:
    ports, uow = _ports()

    with pytest.raises(InvalidInput, match=r"^shipping time: it is before the order time$"):
        ship_order(ports, NR, NOW - timedelta(days=8))
    ship_order(ports, NR, NOW - timedelta(days=1))

    assert uow.committed.orders[10].shipped_at == NOW - timedelta(days=1)


def test_find_lists_an_order_by_its_number_with_its_state() -> None:
    ports, _uow = _ports()

    (found,) = find(ports, f"  {NR} ", as_of=NOW).orders

    assert (found.order_nr_external, found.shop, found.customer, found.matched) == (
        NR,
        "berlin",
        "C1",
        "order number",
    )
    assert found.state == "active"


def test_runs_are_listed_newest_first_with_their_status() -> None:
    ports, _uow = _ports()
    run_retention(ports, NOW)

    (run,) = list_runs(ports)

    assert (run.id, run.status, run.as_of, run.error) == (1, "finished", NOW.isoformat(), None)


def test_verify_reads_the_anchor_of_the_last_purge() -> None:
    ports, uow = _ports()
    set_feature(ports, "berlin", False, "sam")
    old = uow.committed.audit[0]
    later = fake_ports(uow, now=old.at + AUDIT_RETENTION + timedelta(days=1))

    run_retention(later, old.at + AUDIT_RETENTION + timedelta(days=1))

    assert [e.action for e in reversed(recent_entries(later))] == ["run.finished", "audit.purged"]
    check = verify_audit_log(later)
    assert (check.intact, check.checked) == (True, 2)


def test_show_presents_a_retrieved_order_read_only_with_its_remask_date_and_history() -> None:
    ports, uow = _ports()
    buyer = uow.committed.customers[1]
    buyer.masked_at, buyer.retrieved_at = NOW - timedelta(days=3), NOW - timedelta(days=1)
    uow.committed.history.append(
        FakeHistoryEntry(1, 10, NOW - timedelta(days=1), "retrieved", "anna", "Rücksendung")
    )

    shown = show_order(ports, NR, NOW).model_dump(mode="json")

    assert (shown["order_nr_external"], shown["shop"]) == (NR, "berlin")
    assert shown["customer"]["last_name"] == "Mustermann"
    retention = shown["retention"]
    assert (retention["state"], retention["read_only"]) == ("retrieved", True)
    assert retention["remask_due"] == "2026-03-30"
    assert shown["customer_history"] == [
        {
            "recorded_at": (NOW - timedelta(days=1)).isoformat(),
            "event": "retrieved",
            "user_name": "anna",
            "text": "Rücksendung",
        }
    ]


def test_the_compliance_report_files_a_buyer_unmasked_past_30_days_as_a_violation() -> None:
    ports, uow = _ports()
    uow.committed.customers[1].closed_at = NOW - timedelta(days=40)

    (entry,) = compliance_report(ports, NOW)

    assert (entry.finding.value, entry.shop, entry.customer, entry.orders) == (
        "violation",
        "berlin",
        "C1",
        [NR],
    )
