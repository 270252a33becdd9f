"""Retrieve -> history -> audit on in-memory fakes: what one retrieval commits, and that a
failure anywhere before the commit leaves nothing behind. No database; milliseconds."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shelflife.adapters.archive.segments import pack_segment, segment_key
from shelflife.adapters.keys.envelope import new_data_key, seal, seal_record
from shelflife.domain.errors import (
    ArchiveCorrupt,
    ArchiveUnavailable,
    KeyUnavailable,
    NotRetrievable,
    UnknownOrder,
)
from shelflife.domain.legal_retention import DocumentKind
from shelflife.domain.masking import MASKED_TEXT
from shelflife.domain.ports import ArchiveStore, CopyRef, Ports
from shelflife.domain.snapshot import CustomerSnapshot
from shelflife.services.retrieval import RATE_ALERT, RETRIEVED, retrieve_document, retrieve_order
from tests.support.fakes import (
    Counting,
    FakeCustomer,
    FakeData,
    FakeInvoice,
    FakeKeyProvider,
    FakeOrder,
    FakeUnitOfWork,
    InMemoryArchive,
    MissingKey,
    UnreachableArchive,
    fake_ports,
)

MASKED_AT = datetime(2026, 2, 1, 3, tzinfo=UTC)
NOW = MASKED_AT + timedelta(days=5)
NR, OTHER_NR = "302-1234567-1234567", "303-7654321-7654321"


def _masked_buyer(data: FakeData, archive: InMemoryArchive, cid: int, nr: str, name: str) -> None:
    """A masked buyer with one order and a sealed, recorded copy of its real name."""
    keys = FakeKeyProvider()
    data.customers[cid] = FakeCustomer(
        cid, last_name=MASKED_TEXT, masked_at=MASKED_AT, archived_revision=1
    )
    data.orders[cid * 10] = FakeOrder(cid * 10, nr, cid)
    snap = CustomerSnapshot(cid, 1)
    snap.add("customers", cid, {"last_name": name})
    data_key = new_data_key()
    blob = seal(data_key, keys.wrap(data_key), cid, 1, snap.to_bytes())
    key = f"customers/000000/{cid}-r000001-0000beef.slf"
    archive.put(key, blob)
    data.copies.append((cid, CopyRef(key, 1, hashlib.sha256(blob).hexdigest())))


def _ports(keys: FakeKeyProvider | MissingKey | None = None) -> tuple[Ports, FakeUnitOfWork]:
    store = InMemoryArchive()
    data = FakeData()
    _masked_buyer(data, store, 1, NR, "Müller")
    _masked_buyer(data, store, 2, OTHER_NR, "Schmidt")
    uow = FakeUnitOfWork(data)
    return fake_ports(uow, archive=store, keys=keys, now=NOW), uow


def test_retrieval_restores_the_buyer_writes_history_and_audit_and_commits_once() -> None:
    ports, uow = _ports()

    result = retrieve_order(ports, NR, "  Rücksendung ", "anna")

    data = uow.committed
    assert (result.order_nr, result.restored_rows, result.retrieved_at) == (NR, 1, NOW)
    assert uow.commits == 1
    buyer = data.customers[1]
    assert (buyer.last_name, buyer.retrieved_at, buyer.pii_revision) == ("Müller", NOW, 2)
    assert [(h.customer_id, h.order_id, h.at, h.event, h.user, h.text) for h in data.history] == [
        (1, 10, NOW, "retrieved", "anna", "Rücksendung")
    ]
    assert [(e.seq, e.actor, e.action, e.subject, dict(e.detail)) for e in data.audit] == [
        (1, "anna", RETRIEVED, NR, {"shop_id": 1, "reason": "Rücksendung", "restored": 1})
    ]
    assert data.customers[2].last_name == MASKED_TEXT


def test_an_unreachable_archive_leaves_nothing_committed() -> None:
    ports, uow = _ports()
    before = uow.committed
    unreachable = replace(ports, archive=UnreachableArchive())

    with pytest.raises(ArchiveUnavailable):
        retrieve_order(unreachable, NR, "Rücksendung", "anna")

    assert uow.commits == 0
    assert uow.committed is before
    assert (before.customers[1].last_name, before.history, before.audit) == (MASKED_TEXT, [], [])


def test_a_missing_master_key_stops_the_retrieval_before_the_transaction() -> None:
    ports, uow = _ports(keys=MissingKey())

    with pytest.raises(KeyUnavailable):
        retrieve_order(ports, NR, "Rücksendung", "anna")

    assert (uow.commits, uow.committed.history, uow.committed.audit) == (0, [], [])


def test_an_order_that_is_not_masked_is_not_retrievable_and_nothing_is_committed() -> None:
    ports, uow = _ports()
    uow.committed.customers[1].masked_at = None

    with pytest.raises(NotRetrievable, match="is not masked"):
        retrieve_order(ports, NR, "Rücksendung", "anna")

    assert (uow.commits, uow.committed.history, uow.committed.audit) == (0, [], [])


def test_two_retrievals_in_one_unit_of_work_commit_together() -> None:
    ports, uow = _ports()

    with ports.uow:
        retrieve_order(ports, NR, "Rücksendung", "anna")
        retrieve_order(ports, OTHER_NR, "Rücksendung", "anna")
        assert uow.commits == 0  # the inner commits leave the decision to this one
        ports.uow.commit()

    assert uow.commits == 1
    assert [c.last_name for c in uow.committed.customers.values()] == ["Müller", "Schmidt"]
    assert [e.subject for e in uow.committed.audit] == [NR, OTHER_NR]


def test_two_operations_in_one_unit_of_work_commit_not_at_all_when_the_second_fails() -> None:
    ports, uow = _ports()

    def return_of_two_orders() -> None:
        with ports.uow:
            retrieve_order(ports, NR, "Rücksendung", "anna")
            retrieve_order(ports, "999-0000000-0000000", "Rücksendung", "anna")
            ports.uow.commit()

    with pytest.raises(UnknownOrder):
        return_of_two_orders()

    assert uow.commits == 0
    assert (uow.committed.customers[1].last_name, uow.committed.audit) == (MASKED_TEXT, [])


def test_a_caller_cannot_commit_after_a_failed_inner_operation() -> None:
    ports, uow = _ports()

    with ports.uow:
        retrieve_order(ports, NR, "Rücksendung", "anna")
        with pytest.raises(UnknownOrder):
            retrieve_order(ports, "999-0000000-0000000", "Rücksendung", "anna")
        with pytest.raises(RuntimeError):
            ports.uow.commit()

    assert (uow.commits, uow.committed.audit) == (0, [])


def test_the_retrieval_past_the_hourly_limit_raises_one_alert() -> None:
    store, data = InMemoryArchive(), FakeData()
    more = ("304-1111111-1111111", "305-2222222-2222222")
    for cid, nr in enumerate((NR, OTHER_NR, *more), start=1):
        _masked_buyer(data, store, cid, nr, "Weber")
    uow = FakeUnitOfWork(data)
    ports = fake_ports(uow, archive=store, now=NOW)  # fake_ports' limit: 3 an hour
    for nr in (NR, OTHER_NR, *more):  # an order retrieved already is not retrieved again
        retrieve_order(ports, nr, "eins", "anna")

    actions = [(e.actor, e.action, e.subject) for e in uow.committed.audit]
    assert actions == [
        ("anna", RETRIEVED, NR),
        ("anna", RETRIEVED, OTHER_NR),
        ("anna", RETRIEVED, more[0]),
        ("anna", RETRIEVED, more[1]),
        ("shelflife", RATE_ALERT, "anna"),
    ]
    assert dict(uow.committed.audit[-1].detail) == {"retrievals_last_hour": 4, "limit": 3}


def _segment_buyer(data: FakeData, archive: ArchiveStore, cid: int, nr: str, name: str) -> None:
    """A masked buyer whose copy is a record in a segment, with its data key in the database."""
    keys = FakeKeyProvider()
    data_key = new_data_key()
    wrapped = keys.wrap(data_key)
    data.customers[cid] = FakeCustomer(
        cid,
        last_name=MASKED_TEXT,
        masked_at=MASKED_AT,
        archived_revision=1,
        data_key_wrapped=wrapped.blob,
        data_key_master_id=wrapped.master_key_id,
    )
    data.orders[cid * 10] = FakeOrder(cid * 10, nr, cid)
    snap = CustomerSnapshot(cid, 1)
    snap.add("customers", cid, {"last_name": name})
    record = seal_record(data_key, keys.key_id, cid, 1, snap.to_bytes())
    other = seal_record(new_data_key(), keys.key_id, cid + 1, 1, b"another buyer's record")
    records = [(cid + 1, 1, keys.key_id, other), (cid, 1, keys.key_id, record)]
    blob, (_, entry) = pack_segment(records, MASKED_AT)
    key = segment_key(MASKED_AT)
    archive.put(key, blob)
    data.copies.append((cid, CopyRef(key, 1, entry.sha256, entry.offset, entry.length)))


def test_a_segment_record_is_read_by_its_byte_range_and_opened_with_the_recorded_data_key() -> None:
    store = Counting(InMemoryArchive())
    data = FakeData()
    _segment_buyer(data, store, 5, NR, "Weiß")
    uow = FakeUnitOfWork(data)
    ((_, ref),) = data.copies

    result = retrieve_order(fake_ports(uow, archive=store, now=NOW), NR, "Rücksendung", "anna")

    assert result.restored_rows == 1
    assert uow.committed.customers[5].last_name == "Weiß"
    assert (store.gets, store.ranges) == ([], [(ref.object_key, ref.offset, ref.length)])


def test_a_segment_record_without_a_recorded_data_key_is_refused_and_changes_nothing() -> None:
    store = InMemoryArchive()
    data = FakeData()
    _segment_buyer(data, store, 5, NR, "Weiß")
    data.customers[5].data_key_wrapped = None
    uow = FakeUnitOfWork(data)

    with pytest.raises(ArchiveCorrupt, match="data key is not recorded"):
        retrieve_order(fake_ports(uow, archive=store, now=NOW), NR, "Rücksendung", "anna")

    assert (uow.commits, uow.committed.customers[5].last_name) == (0, MASKED_TEXT)


# -- by invoice or credit number ----------------------------------------------------------------


def test_manual_invoice_retrieves_its_buyer_through_the_newest_amazon_order() -> None:
    ports, uow = _ports()
    uow.committed.orders[11] = FakeOrder(11, "SHOP-1", 1, is_amazon=False, ordered_at=NOW)
    uow.committed.invoices[5] = FakeInvoice(5, "RE-M-1", 1, None, Decimal("9.99"))

    result = retrieve_document(ports, DocumentKind.INVOICE, "RE-M-1", "Steuer", "anna")

    data = uow.committed
    assert (result.order_nr, result.shop, uow.commits) == (NR, "berlin", 1)
    assert data.customers[1].last_name == "Müller"
    assert dict(data.audit[0].detail)["document"] == "invoice RE-M-1"
    assert (data.audit[0].action, data.audit[0].subject) == (RETRIEVED, NR)


def test_document_of_a_buyer_without_an_amazon_order_is_refused_and_nothing_commits() -> None:
    ports, uow = _ports()
    uow.committed.orders[10].is_amazon = False
    uow.committed.invoices[5] = FakeInvoice(5, "RE-M-1", 1, None, Decimal("9.99"))

    with pytest.raises(NotRetrievable) as refused:
        retrieve_document(ports, DocumentKind.INVOICE, "RE-M-1", "Steuer", "anna")

    assert str(refused.value) == (
        "invoice 'RE-M-1' belongs to a buyer without an Amazon order; its data is never masked"
    )
    assert (uow.commits, uow.committed.audit) == (0, [])
