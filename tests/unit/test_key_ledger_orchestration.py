"""The key ledger in the nightly run, its rewrite after a re-wrap, shredding and erasure, on
in-memory fakes. No database; milliseconds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shelflife.adapters.archive.ledger import ledger_key, read_ledger
from shelflife.domain.errors import (
    ArchiveUnavailable,
    Conflict,
    InvalidInput,
    NotFound,
    NotRetrievable,
)
from shelflife.domain.ports import LedgerEntry, Ports, WrappedKey
from shelflife.services.ledger import erase_customer, rewrite_ledgers
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from tests.support.fakes import (
    FailingPut,
    FakeCustomer,
    FakeData,
    FakeInvoice,
    FakeKeyProvider,
    FakeOrder,
    FakeUnitOfWork,
    InMemoryArchive,
    fake_ports,
)

SHIPPED = datetime(2026, 1, 10, 12, tzinfo=UTC)
NIGHT = SHIPPED + timedelta(days=31)
LATER = datetime(2037, 1, 1, 12, tzinfo=UTC)
"""Past the end of 2036: invoices and orders of 2026 are no longer kept."""


def _ports(
    *ids: int, ledger: InMemoryArchive | FailingPut | None = None, now: datetime = NIGHT
) -> Ports:
    data = FakeData()
    for cid in ids:
        data.customers[cid] = FakeCustomer(cid, closed_at=SHIPPED, last_name=f"Buyer{cid}")
        data.orders[cid] = FakeOrder(cid, f"302-000000{cid}-0000000", cid)
        data.invoices[cid] = FakeInvoice(cid, f"RE-{cid}", cid, cid, Decimal("9.99"))
    return fake_ports(FakeUnitOfWork(data), ledger=ledger or InMemoryArchive(), now=now)


def _data(ports: Ports) -> FakeData:
    assert isinstance(ports.uow, FakeUnitOfWork)
    return ports.uow.committed


def _ledger(ports: Ports) -> dict[str, list[LedgerEntry]]:
    assert isinstance(ports.ledger, InMemoryArchive)
    return {
        key: read_ledger(key.removeprefix("ledger/").removesuffix(".keys"), data)
        for key, data in ports.ledger.objects.items()
    }


def _later(ports: Ports) -> Ports:
    """The same data and stores, with the clock at LATER."""
    assert isinstance(ports.uow, FakeUnitOfWork)
    return fake_ports(ports.uow, archive=ports.archive, ledger=ports.ledger, now=LATER)


def test_each_archived_segment_gets_a_ledger_object_with_its_buyers_wrapped_keys() -> None:
    ports = _ports(1, 2)  # batch size 2: one segment

    run_retention(ports, NIGHT)

    data = _data(ports)
    (segment,) = data.segments
    keys = {
        c.id: WrappedKey("fake-master", c.data_key_wrapped or b"") for c in data.customers.values()
    }
    assert _ledger(ports) == {
        ledger_key(segment.object_key): [LedgerEntry(1, 1, keys[1]), LedgerEntry(2, 1, keys[2])]
    }


def test_a_ledger_that_cannot_be_written_fails_the_whole_segment_and_masks_nobody() -> None:
    ports = _ports(1, 2, ledger=FailingPut(InMemoryArchive()))

    report = run_retention(ports, NIGHT)

    assert (report.archived, report.archive_failed, report.masked) == (0, 2, 0)
    assert report.archive_failure_reasons == [
        "key ledger failing test double: archive offline (test double)"
    ]
    assert {c.archived_revision for c in _data(ports).customers.values()} == {None}


def test_rewriting_the_ledgers_after_a_rewrap_writes_the_databases_new_keys() -> None:
    ports = _ports(1, 2)
    run_retention(ports, NIGHT)
    data = _data(ports)
    old, new = FakeKeyProvider(), FakeKeyProvider("new-master")
    for c in data.customers.values():  # what a rotation does in the database
        wrapped = new.wrap(old.unwrap(WrappedKey("fake-master", c.data_key_wrapped or b"")))
        c.data_key_wrapped, c.data_key_master_id = wrapped.blob, wrapped.master_key_id

    written = rewrite_ledgers(ports, [data.segments[0].object_key])

    assert written == 1
    assert [(e.customer_id, e.key.master_key_id) for e in next(iter(_ledger(ports).values()))] == [
        (1, "new-master"),
        (2, "new-master"),
    ]


def test_erasing_a_buyer_removes_its_key_from_the_database_and_the_ledger_only() -> None:
    ports = _ports(1, 2)
    run_retention(ports, NIGHT)

    erased = erase_customer(_later(ports), "C1", "Art. 17", "dpo")

    data = _data(ports)
    assert (erased.customer, erased.erased_at) == ("C1", LATER)
    assert (data.customers[1].data_key_wrapped, data.customers[1].shredded_at) == (None, LATER)
    assert data.customers[2].data_key_wrapped is not None
    assert [[e.customer_id for e in entries] for entries in _ledger(ports).values()] == [[2]]
    assert [(h.customer_id, h.event, h.text) for h in data.history if h.event == "shredded"] == [
        (1, "shredded", "erasure")
    ]


def test_a_segment_whose_every_buyer_is_shredded_keeps_an_empty_ledger_object() -> None:
    ports = _ports(1)
    run_retention(ports, NIGHT)

    erase_customer(_later(ports), "C1", "Art. 17", "dpo")

    assert list(_ledger(ports).values()) == [[]]


def test_a_ledger_that_cannot_be_rewritten_leaves_the_buyer_unshredded() -> None:
    ledger = InMemoryArchive()
    ports = _ports(1, ledger=ledger)
    run_retention(ports, NIGHT)
    assert isinstance(ports.uow, FakeUnitOfWork)
    broken = fake_ports(
        ports.uow,
        archive=ports.archive,
        ledger=FailingPut(ledger),
        now=LATER,
    )

    with pytest.raises(ArchiveUnavailable) as failed:
        erase_customer(broken, "C1", "Art. 17", "dpo")

    assert str(failed.value) == "key ledger failing test double: archive offline (test double)"
    assert _data(ports).customers[1].data_key_wrapped is not None
    assert _data(ports).customers[1].shredded_at is None


def test_erasure_names_the_document_the_law_keeps_longest() -> None:
    ports = _ports(1)
    run_retention(ports, NIGHT)

    with pytest.raises(Conflict) as refused:
        erase_customer(ports, "C1", "Art. 17", "dpo")

    assert str(refused.value) == (
        "buyer C1 cannot be erased: the law keeps its invoice RE-1 until the end of 2036 "
        "(2 document(s) still within legal retention)"
    )


@pytest.mark.parametrize(
    ("customer", "reason", "error", "message"),
    [
        ("42", "x", InvalidInput, "customer: give a buyer reference such as C42"),
        ("C1", " ", InvalidInput, "reason: say why the buyer is erased (1 to 200 characters)"),
        ("C9", "x", NotFound, "no buyer C9 (test double)"),
    ],
)
def test_erasure_refuses_bad_input(
    customer: str, reason: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as refused:
        erase_customer(_ports(1, now=LATER), customer, reason, "dpo")

    assert str(refused.value) == message


def test_a_second_erasure_says_when_the_first_one_shredded() -> None:
    ports = _ports(1)
    run_retention(ports, NIGHT)
    erase_customer(_later(ports), "C1", "Art. 17", "dpo")

    with pytest.raises(Conflict) as refused:
        erase_customer(_later(ports), "C1", "Art. 17", "dpo")

    assert str(refused.value) == "buyer C1 was shredded on 2037-01-01 already"


def test_the_nightly_run_shreds_only_when_every_document_is_past_its_retention() -> None:
    ports = _ports(1, 2)
    run_retention(ports, NIGHT)
    _data(ports).invoices[2] = replace(
        _data(ports).invoices[2], created_at=datetime(2027, 6, 1, tzinfo=UTC)
    )

    report = run_retention(_later(ports), LATER)

    assert report.shredded == 1
    assert [c.shredded_at for c in _data(ports).customers.values()] == [LATER, None]


def test_retrieving_an_order_of_a_shredded_buyer_is_refused_with_the_date() -> None:
    ports = _ports(1)
    run_retention(ports, NIGHT)
    erase_customer(_later(ports), "C1", "Art. 17", "dpo")

    with pytest.raises(NotRetrievable) as refused:
        retrieve_order(_later(ports), "302-0000001-0000000", "Kunde fragt", "agent")

    assert str(refused.value) == (
        "order '302-0000001-0000000' cannot be retrieved: its buyer's archived data was "
        "shredded on 2037-01-01 (its archive key was destroyed)"
    )


def test_a_buyer_without_orders_cannot_be_erased_because_its_retention_cannot_be_judged() -> None:
    ports = _ports(1)
    run_retention(ports, NIGHT)
    data = _data(ports)
    data.orders.clear()
    data.invoices.clear()

    with pytest.raises(Conflict) as refused:
        erase_customer(_later(ports), "C1", "Art. 17", "dpo")

    assert str(refused.value) == (
        "buyer C1 has no orders in the database (e.g. a buyer brought back by an archive "
        "recovery), so the legal retention of its documents cannot be judged; import its "
        "orders first"
    )
