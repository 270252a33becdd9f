"""Duplicates and merge on in-memory fakes: what one merge commits and records, and that a
refused merge leaves nothing behind. No database; milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shelflife.domain.errors import Conflict, NotFound
from shelflife.services.customers import find_duplicates, merge_customers
from tests.support.fakes import FakeCustomer, FakeData, FakeOrder, FakeUnitOfWork, fake_ports

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _alike(*customers: FakeCustomer) -> FakeUnitOfWork:
    data = FakeData()
    for c in customers:
        data.customers[c.id] = c
        data.orders[c.id * 10] = FakeOrder(c.id * 10, f"302-0000000-{c.id:07d}", c.id)
    return FakeUnitOfWork(data)


def test_records_alike_are_grouped_and_archived_ones_left_out() -> None:
    uow = _alike(
        FakeCustomer(1),
        FakeCustomer(2, company=" "),  # spaces only: the same as no company
        FakeCustomer(3, archived_revision=1),
        FakeCustomer(4, city=None),
        FakeCustomer(5, channel="shop"),
        FakeCustomer(6, channel="shop"),
    )
    groups = find_duplicates(fake_ports(uow)).groups
    assert [(g.channel, g.customers, g.orders) for g in groups] == [
        ("amazon", ["C1", "C2"], [1, 1]),
        ("shop", ["C5", "C6"], [1, 1]),
    ]
    assert uow.commits == 0


def test_a_merge_moves_the_orders_records_it_once_and_commits_once() -> None:
    uow = _alike(FakeCustomer(1), FakeCustomer(2))

    result = merge_customers(fake_ports(uow, now=NOW), "C1", "C2", "anna")

    assert (result.kept, result.merged, result.orders_moved) == ("C1", "C2", 1)
    data = uow.committed
    assert sorted(data.customers) == [1]
    assert data.customers[1].pii_revision == 2
    assert {o.customer_id for o in data.orders.values()} == {1}
    assert [(h.customer_id, h.event, h.user, h.text) for h in data.history] == [
        (1, "merged", "anna", "customer C2 merged into this one")
    ]
    assert [(e.actor, e.action, e.subject) for e in data.audit] == [
        ("anna", "customer.merged", "C1")
    ]
    assert uow.commits == 1


@pytest.mark.parametrize(
    ("other", "error"),
    [
        (FakeCustomer(2, archived_revision=1), Conflict),
        (FakeCustomer(2, masked_at=NOW), Conflict),
        (FakeCustomer(2, shop_id=2), Conflict),
        (FakeCustomer(2, channel="shop"), Conflict),
    ],
)
def test_a_refused_merge_commits_nothing(other: FakeCustomer, error: type[Exception]) -> None:
    uow = _alike(FakeCustomer(1), other)
    before = (sorted(uow.committed.customers), len(uow.committed.audit))

    with pytest.raises(error):
        merge_customers(fake_ports(uow), "C1", "C2", "anna")

    assert (sorted(uow.committed.customers), len(uow.committed.audit)) == before
    assert uow.commits == 0


def test_merging_an_unknown_customer_commits_nothing() -> None:
    uow = _alike(FakeCustomer(1))
    with pytest.raises(NotFound, match="customer C9 does not exist"):
        merge_customers(fake_ports(uow), "C9", "C1", "anna")
    assert uow.commits == 0
