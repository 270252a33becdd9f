"""Returns, replacement orders and credits, retrieving a masked order by themselves.

Customer service cannot process a return for a buyer whose name and address are `***`: for a
masked order (or an invoice of one) the order is retrieved first, in the same transaction as
the new document, with the document named as the retrieval's reason. Either both happen or
neither: an unreachable archive or a missing key creates nothing. The new rows belong to the
buyer, so the buyer's PII revision goes up: the next nightly run archives them, and they are
masked with the buyer (30 days after the retrieval, or at the buyer's first masking).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal

from shelflife.domain.after_sales import (
    OrderedLine,
    check_credit_total,
    check_items,
    check_quantities,
    check_reason,
    credit_nr,
    parse_amount,
    replacement_nr,
    retrieval_reason,
    return_nr,
)
from shelflife.domain.errors import InvalidInput, NotRetrievable
from shelflife.domain.ports import OrderRef, Ports, UnitOfWork
from shelflife.services.documents import (
    CreditCreated,
    ItemDocument,
    ReplacementCreated,
    ReturnCreated,
)
from shelflife.services.pdfs import issue_pending_pdfs_or_warn
from shelflife.services.retrieval import retrieve_order

log = logging.getLogger(__name__)

RETURN_CREATED = "return.created"
REPLACEMENT_CREATED = "replacement.created"
CREDIT_CREATED = "credit.created"

REPLACEMENT_PRICE = Decimal("0.00")
"""A replacement ships what the buyer has paid for already: its lines cost nothing."""


def _check_user(user: str) -> str:
    user = user.strip()
    if not user or len(user) > 100:
        raise InvalidInput("user: give the name of the person creating it (1 to 100 characters)")
    return user


def _retrieve_if_masked(
    ports: Ports,
    uow: UnitOfWork,
    masked: bool,
    order_nr: str | None,
    shop: str,
    reason: str,
    user: str,
) -> bool:
    """Retrieve the order inside the caller's transaction when its rows are masked. A masked
    invoice whose order is retrieved already (one imported while its buyer was masked, never
    archived unmasked) needs no second retrieval: that would restore nothing of it."""
    if not masked:
        return False
    if order_nr is None:
        raise NotRetrievable("the invoice's buyer has no order to retrieve it through")
    if not uow.after_sales.order_masked(uow.orders.find(order_nr, shop).id):
        return False
    retrieve_order(ports, order_nr, reason, user, shop=shop)
    return True


def _load_keys_if_masked(ports: Ports, masked: bool) -> None:
    """Load the key provider before the write transaction when a retrieval will need it: the
    provider checks the key against the database on another connection, which on SQLite would
    wait for this transaction's own write lock."""
    if masked:
        ports.keys  # noqa: B018 - loaded for its check, cached by the provider


def _order_masked(ports: Ports, order_nr: str, shop: str | None) -> bool:
    with ports.reader as reader:
        return reader.after_sales.order_masked(reader.orders.find(order_nr, shop).id)


def _free(
    numbered: Callable[[int], str], kind: str, shop_id: int, earlier: int, uow: UnitOfWork
) -> str:
    """The next number after the `earlier` documents of its kind that no row of the shop holds
    yet (an imported document or order may already carry it)."""
    n = earlier + 1
    while uow.after_sales.number_taken(kind, shop_id, numbered(n)):
        n += 1
    return numbered(n)


def _shop_name(uow: UnitOfWork, shop_id: int) -> str:
    return next(s.name for s in uow.shops.every() if s.id == shop_id)


def create_return(
    ports: Ports,
    order_nr: str,
    items: Mapping[str, int],
    reason: str,
    user: str,
    shop: str | None = None,
) -> ReturnCreated:
    """Record goods coming back against an order, at most what is left to return per SKU."""
    wanted = check_items(items)
    reason = check_reason(reason)
    user = _check_user(user)
    _load_keys_if_masked(ports, _order_masked(ports, order_nr, shop))
    now = ports.clock.now()
    with ports.uow as uow:
        order = uow.orders.find(order_nr, shop)
        docs = uow.after_sales
        ordered = {line.sku: line.qty for line in docs.lines(order.id)}
        check_quantities(wanted, ordered, docs.returned(order.id), "returned")
        number = _free(
            lambda n: return_nr(order_nr, n),
            "return",
            order.shop_id,
            docs.count_returns(order.id),
            uow,
        )
        shop_name, retrieved = _retrieve_order_if_masked(
            ports, uow, order, order_nr, "Return", number, reason, user
        )
        docs.add_return(order, number, now, user, reason, wanted)
        _record(
            uow, order, now, user, "return", RETURN_CREATED, number, reason, order_nr, retrieved
        )
        uow.commit()
    log.info("return %s created by %s (order retrieved: %s)", number, user, retrieved)
    return ReturnCreated(
        return_nr=number,
        order_nr_external=order_nr,
        shop=shop_name,
        items=dict(wanted),
        reason=reason,
        created_at=now.isoformat(),
        created_by=user,
        retrieved=retrieved,
    )


def create_replacement(
    ports: Ports,
    order_nr: str,
    items: Mapping[str, int],
    reason: str,
    user: str,
    shop: str | None = None,
) -> ReplacementCreated:
    """A new order `<order>-R<n>` of the same buyer that ships these items again, to the
    original's addresses, at most what is left to replace per SKU."""
    wanted = check_items(items)
    reason = check_reason(reason)
    user = _check_user(user)
    _load_keys_if_masked(ports, _order_masked(ports, order_nr, shop))
    now = ports.clock.now()
    with ports.uow as uow:
        original = uow.orders.find(order_nr, shop)
        docs = uow.after_sales
        lines = {line.sku: line for line in docs.lines(original.id)}
        check_quantities(
            wanted,
            {s: line.qty for s, line in lines.items()},
            docs.replaced(original.id),
            "replaced",
        )
        number = _free(
            lambda n: replacement_nr(order_nr, n),
            "order",
            original.shop_id,
            docs.count_replacements(original.id),
            uow,
        )
        shop_name, retrieved = _retrieve_order_if_masked(
            ports, uow, original, order_nr, "Replacement", number, reason, user
        )
        shipped = [
            OrderedLine(sku, lines[sku].title, qty, REPLACEMENT_PRICE)
            for sku, qty in wanted.items()
        ]
        new_id = docs.add_replacement(original, number, now, shipped)
        _record(
            uow,
            original,
            now,
            user,
            "replacement",
            REPLACEMENT_CREATED,
            number,
            reason,
            order_nr,
            retrieved,
            new_id,
        )
        uow.commit()
    log.info("replacement %s created by %s (order retrieved: %s)", number, user, retrieved)
    return ReplacementCreated(
        order_nr_external=number,
        replaces_order=order_nr,
        shop=shop_name,
        items=[
            ItemDocument(sku=line.sku, title=line.title, qty=line.qty, price=str(line.price))
            for line in shipped
        ],
        reason=reason,
        created_at=now.isoformat(),
        created_by=user,
        retrieved=retrieved,
    )


def create_credit(
    ports: Ports, invoice_nr: str, total: str, reason: str, user: str, shop: str | None = None
) -> CreditCreated:
    """A credit `GS-<invoice>-<n>` against an invoice, at most what is not yet credited."""
    amount = parse_amount(total)
    reason = check_reason(reason)
    user = _check_user(user)
    with ports.reader as reader:
        masked = reader.after_sales.find_invoice(invoice_nr, shop).masked
    _load_keys_if_masked(ports, masked)
    now = ports.clock.now()
    with ports.uow as uow:
        docs = uow.after_sales
        invoice = docs.find_invoice(invoice_nr, shop)
        check_credit_total(amount, invoice.total, docs.credited(invoice.id))
        number = _free(
            lambda n: credit_nr(invoice.invoice_nr, n),
            "credit",
            invoice.shop_id,
            docs.count_credits(invoice.id),
            uow,
        )
        retrieved = _retrieve_if_masked(
            ports,
            uow,
            invoice.masked,
            invoice.order_nr,
            invoice.shop,
            retrieval_reason("Credit", number, reason),
            user,
        )
        docs.add_credit(invoice, number, now, user, reason, amount)
        uow.history.add(
            invoice.customer_id, invoice.order_id, now, "credit", user, f"Credit {number}: {reason}"
        )
        docs.buyer_changed(invoice.customer_id)
        uow.audit.append(
            now,
            user,
            CREDIT_CREATED,
            number,
            {
                "invoice": invoice.invoice_nr,
                "shop_id": invoice.shop_id,
                "retrieved": int(retrieved),
            },
        )
        uow.commit()
    issue_pending_pdfs_or_warn(ports)  # the credit's PDF into the document store
    log.info("credit %s created by %s (order retrieved: %s)", number, user, retrieved)
    return CreditCreated(
        credit_nr=number,
        invoice_nr=invoice.invoice_nr,
        order_nr_external=invoice.order_nr if invoice.order_id is not None else None,
        shop=invoice.shop,
        total=str(amount),
        reason=reason,
        created_at=now.isoformat(),
        created_by=user,
        retrieved=retrieved,
    )


def _retrieve_order_if_masked(
    ports: Ports,
    uow: UnitOfWork,
    order: OrderRef,
    order_nr: str,
    label: str,
    number: str,
    reason: str,
    user: str,
) -> tuple[str, bool]:
    """The order's shop name, and whether the order had to be retrieved for the document."""
    shop_name = _shop_name(uow, order.shop_id)
    retrieved = _retrieve_if_masked(
        ports,
        uow,
        uow.after_sales.order_masked(order.id),
        order_nr,
        shop_name,
        retrieval_reason(label, number, reason),
        user,
    )
    return shop_name, retrieved


def _record(
    uow: UnitOfWork,
    order: OrderRef,
    now: datetime,
    user: str,
    event: str,
    action: str,
    number: str,
    reason: str,
    order_nr: str,
    retrieved: bool,
    order_id: int | None = None,
) -> None:
    """The buyer's history names the document and its reason (PII, masked with the buyer);
    the buyer's revision goes up so that the new rows are archived before any masking; the
    audit entry names the document, never the reason."""
    label = event.capitalize()
    uow.history.add(
        order.customer_id, order_id or order.id, now, event, user, f"{label} {number}: {reason}"
    )
    uow.after_sales.buyer_changed(order.customer_id)
    uow.audit.append(
        now,
        user,
        action,
        number,
        {"order": order_nr, "shop_id": order.shop_id, "retrieved": int(retrieved)},
    )
