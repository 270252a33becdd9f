"""Returns, replacements and credits on in-memory fakes: a masked order is retrieved in the same
transaction as the new document; a failing archive or key leaves nothing behind; the
quantities and amounts a request may ask for. No database; milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shelflife.domain.after_sales import OrderedLine, parse_amount, parse_items, retrieval_reason
from shelflife.domain.errors import (
    ArchiveUnavailable,
    InvalidInput,
    KeyUnavailable,
    NotFound,
    UnknownOrder,
)
from shelflife.domain.masking import MASKED_TEXT
from shelflife.domain.ports import ArchiveStore, Ports
from shelflife.services.after_sales import create_credit, create_replacement, create_return
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import RETRIEVED
from tests.support.fakes import (
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

SHIPPED = datetime(2026, 1, 10, 12, tzinfo=UTC)
NIGHT = SHIPPED + timedelta(days=31)
LATER = NIGHT + timedelta(days=2)
LINES = [
    OrderedLine("A-1", "Mug", 2, Decimal("9.90")),
    OrderedLine("B-2", "Plate", 1, Decimal("14.00")),
]


def _masked_shop() -> tuple[FakeUnitOfWork, InMemoryArchive]:
    """One Amazon buyer with order 302-1 (and invoice RE-1 of 23.80), archived and masked."""
    data = FakeData()
    data.customers[1] = FakeCustomer(1, closed_at=SHIPPED, last_name="Buyer1")
    data.orders[1] = FakeOrder(1, "302-1", 1, shipped_at=SHIPPED, lines=list(LINES))
    data.invoices[1] = FakeInvoice(1, "RE-1", 1, 1, Decimal("23.80"))
    uow, archive = FakeUnitOfWork(data), InMemoryArchive()
    run_retention(fake_ports(uow, archive=archive, now=NIGHT), NIGHT)
    assert uow.committed.customers[1].last_name == MASKED_TEXT
    return uow, archive


def _ports_later(
    uow: FakeUnitOfWork,
    archive: ArchiveStore,
    keys: FakeKeyProvider | MissingKey | None = None,
) -> Ports:
    return fake_ports(uow, archive=archive, keys=keys, now=LATER)


def test_a_return_on_a_masked_order_retrieves_it_and_both_commit_together() -> None:
    uow, archive = _masked_shop()
    commits = uow.commits

    created = create_return(
        _ports_later(uow, archive), "302-1", {"A-1": 1}, "Broken handle", "anna"
    )

    data = uow.committed
    assert uow.commits == commits + 1
    assert (created.return_nr, created.retrieved, created.items) == ("302-1-RET1", True, {"A-1": 1})
    assert data.customers[1].last_name == "Buyer1"
    assert data.customers[1].retrieved_at == LATER
    assert [(d.kind, d.nr, d.reason, d.items) for d in data.documents] == [
        ("return", "302-1-RET1", "Broken handle", {"A-1": 1})
    ]
    assert [(h.event, h.text) for h in data.history if h.at == LATER] == [
        ("retrieved", "Return 302-1-RET1: Broken handle"),
        ("return", "Return 302-1-RET1: Broken handle"),
    ]
    assert [(e.action, e.subject) for e in data.audit[-2:]] == [
        (RETRIEVED, "302-1"),
        ("return.created", "302-1-RET1"),
    ]
    assert data.audit[-2].detail["reason"] == "Return 302-1-RET1: Broken handle"


@pytest.mark.parametrize(
    ("archive_of", "keys"),
    [
        (lambda real: UnreachableArchive(), None),
        (lambda real: real, MissingKey()),
    ],
    ids=["archive unreachable", "key missing"],
)
def test_a_failing_retrieval_creates_nothing(archive_of: object, keys: MissingKey | None) -> None:
    uow, archive = _masked_shop()
    before = uow.committed
    ports = _ports_later(uow, archive_of(archive), keys)  # type: ignore[operator]

    with pytest.raises((ArchiveUnavailable, KeyUnavailable)):
        create_return(ports, "302-1", {"A-1": 1}, "Broken handle", "anna")
    with pytest.raises((ArchiveUnavailable, KeyUnavailable)):
        create_replacement(ports, "302-1", {"A-1": 1}, "Broken handle", "anna")
    with pytest.raises((ArchiveUnavailable, KeyUnavailable)):
        create_credit(ports, "RE-1", "5.00", "Goodwill", "anna")

    assert uow.committed is before
    assert uow.committed.documents == []
    assert sorted(uow.committed.orders) == [1]
    assert uow.committed.customers[1].last_name == MASKED_TEXT


def test_a_replacement_is_a_new_order_of_the_buyer_linked_to_the_original() -> None:
    uow, archive = _masked_shop()

    created = create_replacement(_ports_later(uow, archive), "302-1", {"B-2": 1}, "Lost", "anna")

    data = uow.committed
    new = data.orders[2]
    assert (created.order_nr_external, created.replaces_order, created.retrieved) == (
        "302-1-R1",
        "302-1",
        True,
    )
    assert (new.nr, new.customer_id, new.replaces, new.is_amazon) == ("302-1-R1", 1, 1, True)
    assert new.lines == [OrderedLine("B-2", "Plate", 1, Decimal("0.00"))]
    assert data.audit[-2].detail["reason"] == "Replacement 302-1-R1: Lost"


def test_a_credit_on_an_invoice_of_a_masked_order_retrieves_the_order() -> None:
    uow, archive = _masked_shop()

    created = create_credit(_ports_later(uow, archive), "RE-1", "5", "Goodwill", "anna")

    data = uow.committed
    assert (created.credit_nr, created.total, created.retrieved) == ("GS-RE-1-1", "5.00", True)
    assert data.customers[1].last_name == "Buyer1"
    assert [(d.kind, d.nr, d.total) for d in data.documents] == [
        ("credit", "GS-RE-1-1", Decimal("5.00"))
    ]
    assert data.audit[-2].detail["reason"] == "Credit GS-RE-1-1: Goodwill"


def test_a_second_document_on_a_retrieved_order_retrieves_nothing_again() -> None:
    uow, archive = _masked_shop()
    create_return(_ports_later(uow, archive), "302-1", {"A-1": 1}, "Broken", "anna")
    revision = uow.committed.customers[1].pii_revision

    created = create_return(_ports_later(uow, archive), "302-1", {"A-1": 1}, "Broken too", "anna")

    assert (created.return_nr, created.retrieved) == ("302-1-RET2", False)
    assert [e.action for e in uow.committed.audit].count(RETRIEVED) == 1
    assert uow.committed.customers[1].pii_revision == revision + 1


def test_an_unmasked_order_needs_no_retrieval_but_raises_the_buyers_revision() -> None:
    data = FakeData()
    data.customers[1] = FakeCustomer(1, channel="shop", last_name="Buyer1")
    data.orders[1] = FakeOrder(1, "10001", 1, is_amazon=False, lines=list(LINES))
    uow = FakeUnitOfWork(data)

    created = create_return(fake_ports(uow, now=LATER), "10001", {"B-2": 1}, "Wrong size", "anna")

    assert created.retrieved is False
    assert [e.action for e in uow.committed.audit] == ["return.created"]
    assert uow.committed.customers[1].pii_revision == 2


def test_quantities_count_earlier_returns_and_replacements_separately() -> None:
    uow, archive = _masked_shop()
    ports = _ports_later(uow, archive)
    create_return(ports, "302-1", {"A-1": 2}, "Broken", "anna")

    with pytest.raises(
        InvalidInput, match=r"SKU 'A-1': 1 asked for, but 0 of 2 ordered can still be returned"
    ):
        create_return(ports, "302-1", {"A-1": 1}, "Again", "anna")
    created = create_replacement(ports, "302-1", {"A-1": 2}, "Broken", "anna")

    assert created.order_nr_external == "302-1-R1"
    with pytest.raises(InvalidInput, match=r"0 of 2 ordered can still be replaced"):
        create_replacement(ports, "302-1", {"A-1": 1}, "Again", "anna")


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ("C-3:1", "SKU 'C-3' is not on this order"),
        ("A-1:3", "3 asked for, but 2 of 2 ordered can still be returned"),
        ("A-1:1,A-1:2", "3 asked for, but 2 of 2"),
        ("A-1", "'A-1' is not SKU:QTY"),
        ("A-1:0", "quantity of at least 1"),
        ("A-1:-1", "'A-1:-1' is not SKU:QTY"),
        ("", "give 1 to 100 items"),
    ],
)
def test_bad_items_are_refused_before_anything_is_written(items: str, message: str) -> None:
    uow, archive = _masked_shop()
    before = uow.committed

    with pytest.raises(InvalidInput, match=message):
        create_return(_ports_later(uow, archive), "302-1", parse_items(items), "Broken", "anna")

    assert uow.committed is before


def test_a_credit_is_refused_above_what_is_left_of_the_invoice() -> None:
    uow, archive = _masked_shop()
    ports = _ports_later(uow, archive)
    create_credit(ports, "RE-1", "20.00", "Goodwill", "anna")

    with pytest.raises(InvalidInput, match=r"3.81 is more than the 3.80"):
        create_credit(ports, "RE-1", "3.81", "More", "anna")
    assert create_credit(ports, "RE-1", "3.80", "Rest", "anna").credit_nr == "GS-RE-1-2"


def test_a_number_an_imported_order_holds_already_is_skipped() -> None:
    uow, archive = _masked_shop()
    uow.committed.orders[2] = FakeOrder(2, "302-1-R1", 1, shipped_at=SHIPPED)

    created = create_replacement(_ports_later(uow, archive), "302-1", {"A-1": 1}, "Lost", "anna")

    assert created.order_nr_external == "302-1-R2"


def test_unknown_order_and_invoice_are_not_found() -> None:
    uow, archive = _masked_shop()
    ports = _ports_later(uow, archive)

    with pytest.raises(UnknownOrder):
        create_return(ports, "302-9", {"A-1": 1}, "Broken", "anna")
    with pytest.raises(NotFound, match="no invoice with number 'RE-9'"):
        create_credit(ports, "RE-9", "1.00", "Goodwill", "anna")


@pytest.mark.parametrize(
    ("text", "message"),
    [("0", "must be above 0"), ("1.234", "at most two decimal"), ("abc", "is not an amount"),
     ("NaN", "must be above 0"), ("-5", "must be above 0")],
)  # fmt: skip
def test_credit_totals_are_positive_amounts_in_cents(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_amount(text)


@pytest.mark.parametrize(
    "items", [{}, {"A-1": 0}, {" ": 1}, {f"S{n}": 1 for n in range(101)}], ids=str
)
def test_items_given_as_a_mapping_are_checked_like_text(items: dict[str, int]) -> None:
    uow, archive = _masked_shop()

    with pytest.raises(InvalidInput, match=r"^items: "):
        create_return(_ports_later(uow, archive), "302-1", items, "Broken", "anna")


def test_items_of_one_sku_named_twice_add_up() -> None:
    assert parse_items(" A-1:1 , B-2:2,A-1:3") == {"A-1": 4, "B-2": 2}


def test_a_retrieval_reason_is_cut_to_fifty_characters_with_an_ellipsis() -> None:
    reason = retrieval_reason(
        "Return", "303-1234567-1234567-RET1", "the handle broke off in transit"
    )

    assert reason == "Return 303-1234567-1234567-RET1: the handle broke…"
    assert len(reason) == 50
    assert retrieval_reason("Credit", "GS-RE-1-1", "Goodwill") == "Credit GS-RE-1-1: Goodwill"
