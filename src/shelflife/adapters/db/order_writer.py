"""Writes one import record: creates or updates an order and its buyer, set-wise per table.

Every PII change bumps the buyer's `pii_revision`, which is what the mask step compares with
the revision of the newest verified archive copy.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, exists, insert, or_, select, update

from shelflife.adapters.db.tables import (
    Address,
    AddressHistory,
    Credit,
    Customer,
    Invoice,
    Order,
    OrderItem,
    Shop,
)
from shelflife.domain.buyer_link import (
    MANUAL_ORDER_FOR_AMAZON_BUYER,
    buyer_link,
    is_relay_email,
)
from shelflife.domain.customer_merge import (
    BUYER_FIELDS,
    buyer_values,
    merge_buyer,
    order_key,
    sources_from_json,
    sources_to_json,
)
from shelflife.domain.errors import InvalidInput
from shelflife.domain.masking import MASK_PROFILE
from shelflife.domain.policy import DEFAULT_AMAZON_ORDER_PATTERN, DEFAULT_TIME_ZONE
from shelflife.domain.records import (
    ADDRESS_KEYS,
    PAYMENT_KEYS,
    Document,
    ManualDocumentRecord,
    OrderRecord,
    address_line,
    full_name,
    is_amazon_order_number,
)

ADDRESS_PII = (*(f.column for f in MASK_PROFILE["addresses"]), "country")
ORDER_TEXTS = tuple(f.column for f in MASK_PROFILE["orders"])


class Outcome(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    PII_IGNORED_MASKED = "pii_ignored_masked"
    PII_REFUSED_RETRIEVED = "pii_refused_retrieved"


@dataclass
class ShopInfo:
    id: int
    pattern: str


@dataclass
class OrderWriter:
    """Applies import records inside the caller's transaction; never commits."""

    conn: Connection
    identity_digest: Callable[[str], str]
    now: datetime
    shops: dict[str, ShopInfo] = field(default_factory=dict)

    def known_shop(self, name: str) -> ShopInfo | None:
        """The stored shop of this name, or None: for looking before writing, so that a line
        refused later never leaves a new shop behind."""
        if name in self.shops:
            return self.shops[name]
        row = self.conn.execute(
            select(Shop.id, Shop.amazon_order_pattern).where(Shop.name == name)
        ).first()
        if row is None:
            return None
        info = ShopInfo(row.id, row.amazon_order_pattern)
        self.shops[name] = info
        return info

    def shop(self, name: str, create: bool = True) -> ShopInfo:
        known = self.known_shop(name)
        if known is not None:
            return known
        if not create:
            raise InvalidInput(f"shop {name!r} does not exist")
        shop_id = self.conn.execute(
            insert(Shop)
            .values(
                name=name,
                time_zone=DEFAULT_TIME_ZONE,
                amazon_order_pattern=DEFAULT_AMAZON_ORDER_PATTERN,
                retention_enabled=False,
                created_at=self.now,
            )
            .returning(Shop.id)
        ).scalar_one()
        info = ShopInfo(shop_id, DEFAULT_AMAZON_ORDER_PATTERN)
        self.shops[name] = info
        return info

    # -- orders -------------------------------------------------------------------------------

    def apply(self, rec: OrderRecord) -> Outcome:
        shop = self.shop(rec.shop)
        query = (
            select(
                Order.id, Order.customer_id, Order.masked_at, Order.is_amazon, Customer.retrieved_at
            )
            .join(Customer, Customer.id == Order.customer_id)
            .where(Order.shop_id == shop.id, Order.order_nr_external == rec.order_nr_external)
        )
        existing = self.conn.execute(query).first()
        if existing is None:
            self._create(rec, shop)
            return Outcome.CREATED
        if self.lock_customer(existing.customer_id):
            existing = self.conn.execute(query).one()  # re-read: a mask may have just committed
        return self._update(rec, shop, existing)

    def lock_customer(self, customer_id: int) -> bool:
        """Hold the buyer's row until commit so that a concurrent mask cannot interleave with
        this change. SQLite needs nothing: BEGIN IMMEDIATE already serialises writers."""
        if self.conn.dialect.name != "postgresql":
            return False
        self.conn.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update())
        return True

    def manual_orders_of_amazon_buyers(self, records: Sequence[OrderRecord]) -> set[int]:
        """Indexes of the records that are manual (non-Amazon) orders for a buyer whose data
        came from Amazon: the customer number names an Amazon buyer of the shop (unmasked, by
        its identity digest, or masked, by its link), or an e-mail is an Amazon relay address.
        One query per shop, whatever the number of records."""
        refused: set[int] = set()
        wanted: dict[str, dict[int, tuple[str, str | None]]] = {}
        amazon: dict[str, list[OrderRecord]] = {}  # Amazon buyers these records create
        for index, rec in enumerate(records):
            shop = self.known_shop(rec.shop)  # a new shop is created by a stored line only
            pattern = DEFAULT_AMAZON_ORDER_PATTERN if shop is None else shop.pattern
            if is_amazon_order_number(rec.order_nr_external, pattern):
                amazon.setdefault(rec.shop, []).append(rec)
                continue
            if any(is_relay_email(e) for e in _emails(rec)):
                refused.add(index)
                continue
            number = rec.customer.get("customer_nr_external")
            if isinstance(number, str) and number.strip():
                key = number.strip().lower()
                wanted.setdefault(rec.shop, {})[index] = (
                    self.identity_digest(f"amazon|{key}"),
                    buyer_link(self.identity_digest, number, ()),
                )
        for shop_name, by_index in wanted.items():
            digests = {d for d, _ in by_index.values()}
            links = {link for _, link in by_index.values() if link is not None}
            stored = self.known_shop(shop_name)
            rows = (
                []
                if stored is None
                else self.conn.execute(
                    select(Customer.identity_digest, Customer.buyer_link).where(
                        Customer.shop_id == stored.id,
                        Customer.channel == "amazon",
                        or_(
                            Customer.identity_digest.in_(digests),
                            Customer.buyer_link.in_(links),
                        ),
                    )
                ).all()
            )
            known = {r.identity_digest for r in rows} | {r.buyer_link for r in rows}
            known |= {self.buyer_digest(r, "amazon") for r in amazon.get(shop_name, ())}
            refused.update(i for i, (d, link) in by_index.items() if {d, link} & known - {None})
        return refused

    def _create(self, rec: OrderRecord, shop: ShopInfo) -> None:
        if self.manual_orders_of_amazon_buyers([rec]):
            raise InvalidInput(MANUAL_ORDER_FOR_AMAZON_BUYER)
        is_amazon = is_amazon_order_number(rec.order_nr_external, shop.pattern)
        customer_id = self._customer_for(rec, shop.id, "amazon" if is_amazon else "shop")
        order_id = self.conn.execute(
            insert(Order)
            .values(
                shop_id=shop.id,
                customer_id=customer_id,
                order_nr_external=rec.order_nr_external,
                is_amazon=is_amazon,
                ordered_at=rec.ordered_at,
                shipped_at=rec.shipped_at,
                cancelled_at=rec.cancelled_at,
                created_at=self.now,
                updated_at=self.now,
                **{k: rec.texts.get(k) for k in ORDER_TEXTS},
            )
            .returning(Order.id)
        ).scalar_one()
        addresses = [dict(_address_values(rec, "billing"), kind="billing")]
        if rec.has_shipping_address:
            addresses.append(dict(_address_values(rec, "shipping"), kind="shipping"))
        self.conn.execute(
            insert(Address),
            [dict(a, customer_id=customer_id, order_id=order_id) for a in addresses],
        )
        if rec.items:
            self.conn.execute(
                insert(OrderItem),
                [
                    {
                        "order_id": order_id,
                        "position": i,
                        "sku": it.sku,
                        "title": it.title,
                        "qty": it.qty,
                        "price": it.price,
                    }
                    for i, it in enumerate(rec.items, 1)
                ],
            )
        billing = _billing_copy(addresses[0], _vat_id(rec))
        self._add_documents(
            shop.id, customer_id, order_id, rec.invoices, rec.credits, billing, None
        )

    def buyer_digest(self, rec: OrderRecord, channel: str) -> str | None:
        """The keyed hash that identifies the order's buyer, or None when the line names none:
        the customer number, else the customer e-mail, else the billing e-mail. A blank value
        (as padded exports write) is absent: the next one is tried."""
        for value in (
            rec.customer.get("customer_nr_external"),
            rec.customer.get("email"),
            rec.billing_address.get("email"),
        ):
            if isinstance(value, str) and value.strip():
                return self.identity_digest(f"{channel}|{value.strip().lower()}")
        return None

    def buyer_link(self, rec: OrderRecord, channel: str) -> str | None:
        """The link that survives masking (domain/buyer_link.py); Amazon buyers only, as only
        they are masked."""
        if channel != "amazon":
            return None
        number = rec.customer.get("customer_nr_external")
        return buyer_link(self.identity_digest, number, _emails(rec))

    def _customer_for(self, rec: OrderRecord, shop_id: int, channel: str) -> int:
        digest = self.buyer_digest(rec, channel)
        link = self.buyer_link(rec, channel)
        incoming = buyer_values(rec)
        if digest is not None:
            # FOR UPDATE on PostgreSQL: a buyer masked meanwhile loses its digest and drops out.
            row = self.conn.execute(
                select(Customer.__table__)
                .where(
                    Customer.shop_id == shop_id,
                    Customer.channel == channel,
                    Customer.identity_digest == digest,
                )
                .with_for_update()
            ).first()
            if row is not None:
                values, sources = merge_buyer(
                    row._asdict(), sources_from_json(row.pii_sources), incoming, order_key(rec)
                )
                changed = {k: v for k, v in values.items() if getattr(row, k) != v}
                # Bumped even when the buyer's own values stay: the new order's rows are PII.
                self.conn.execute(
                    update(Customer)
                    .where(Customer.id == row.id)
                    .values(
                        pii_revision=Customer.pii_revision + 1,
                        pii_sources=sources_to_json(sources),
                        buyer_link=row.buyer_link or link,
                        **changed,
                    )
                )
                return int(row.id)
        values, sources = merge_buyer({}, {}, incoming, order_key(rec))
        return int(
            self.conn.execute(
                insert(Customer)
                .values(
                    shop_id=shop_id,
                    channel=channel,
                    identity_digest=digest,
                    buyer_link=link,
                    created_at=self.now,
                    pii_revision=1,
                    pii_sources=sources_to_json(sources),
                    **values,
                )
                .returning(Customer.id)
            ).scalar_one()
        )

    def _update(self, rec: OrderRecord, shop: ShopInfo, existing: Any) -> Outcome:
        order_id, customer_id = existing.id, existing.customer_id
        is_masked = existing.masked_at is not None
        is_retrieved = not is_masked and existing.retrieved_at is not None
        status_changed = self._update_status(rec, shop, order_id, customer_id, is_masked)
        pii_diff, sources = self._pii_differences(rec, order_id, customer_id)
        if is_masked:  # masked values are placeholders: neither PII nor provenance is merged
            return Outcome.PII_IGNORED_MASKED if pii_diff else self._status(status_changed)
        if not pii_diff:
            if sources is not None:  # provenance is not PII: recorded without a new revision
                self._set_sources(customer_id, sources)
            return self._status(status_changed)
        if is_retrieved:
            return Outcome.PII_REFUSED_RETRIEVED
        if not existing.is_amazon and self.manual_orders_of_amazon_buyers([rec]):
            # A manual order's new data must not come from Amazon either: its shop customer is
            # never masked. Refused as a whole (status included), as a new such order is.
            raise InvalidInput(MANUAL_ORDER_FOR_AMAZON_BUYER)
        self._write_pii(pii_diff, order_id, customer_id)
        if sources is not None:
            self._set_sources(customer_id, sources)
        return Outcome.UPDATED

    @staticmethod
    def _status(changed: bool) -> Outcome:
        return Outcome.UPDATED if changed else Outcome.UNCHANGED

    def _set_sources(self, customer_id: int, sources: str | None) -> None:
        self.conn.execute(
            update(Customer).where(Customer.id == customer_id).values(pii_sources=sources)
        )

    def _update_status(
        self, rec: OrderRecord, shop: ShopInfo, order_id: int, customer_id: int, is_masked: bool
    ) -> bool:
        current = self.conn.execute(
            select(Order.shipped_at, Order.cancelled_at).where(Order.id == order_id)
        ).one()
        changed = False
        # A shipment or cancellation once recorded (by an import or `shelflife ship`) is never
        # cleared by a line without one: exports often lag behind, and clearing a shipment
        # would stop the buyer's retention clock for good. A different time replaces it.
        shipped_at = rec.shipped_at or current.shipped_at
        cancelled_at = rec.cancelled_at or current.cancelled_at
        if (current.shipped_at, current.cancelled_at) != (shipped_at, cancelled_at):
            self.conn.execute(
                update(Order)
                .where(Order.id == order_id)
                .values(shipped_at=shipped_at, cancelled_at=cancelled_at, updated_at=self.now)
            )
            changed = True
        known_invoices = dict(
            self.conn.execute(
                select(Invoice.invoice_nr, Invoice.id).where(
                    Invoice.shop_id == shop.id, Invoice.order_id == order_id
                )
            ).all()
        )
        known_credits = dict(
            self.conn.execute(
                select(Credit.credit_nr, Credit.id).where(
                    Credit.shop_id == shop.id, Credit.order_id == order_id
                )
            ).all()
        )
        for table, docs, known in (
            (Invoice, rec.invoices, known_invoices),
            (Credit, rec.credits, known_credits),
        ):
            for doc in docs:
                if doc.number in known:
                    result = self.conn.execute(
                        update(table)
                        .where(
                            table.id == known[doc.number],
                            (table.created_at != doc.created_at)
                            | (table.total != doc.total)
                            | table.net.is_distinct_from(doc.net)
                            | table.tax.is_distinct_from(doc.tax)
                            | (table.currency != doc.currency),
                        )
                        .values(**document_amounts(doc))
                    )
                    changed = changed or result.rowcount > 0
        new_invoices = tuple(d for d in rec.invoices if d.number not in known_invoices)
        new_credits = tuple(d for d in rec.credits if d.number not in known_credits)
        if new_invoices or new_credits:
            billing_row = self.conn.execute(
                select(Address.__table__).where(
                    Address.order_id == order_id, Address.kind == "billing"
                )
            ).one_or_none()
            # Stored values only, as for the address: a masked buyer's copy stays masked.
            stored_vat_id = self.conn.execute(
                select(Customer.vat_id).where(Customer.id == customer_id)
            ).scalar_one_or_none()
            billing = _billing_copy(
                {c: getattr(billing_row, c) for c in ADDRESS_PII} if billing_row else {},
                stored_vat_id,
            )
            self._add_documents(
                shop.id,
                customer_id,
                order_id,
                new_invoices,
                new_credits,
                billing,
                self.now if is_masked else None,
            )
            changed = True
        # A known credit whose invoice was not stored when it came (its line names it each
        # time) is linked once the invoice is there, instead of losing the reference for good.
        for doc in rec.credits:
            if doc.invoice_nr and doc.number in known_credits:
                result = self.conn.execute(
                    update(Credit)
                    .where(
                        Credit.id == known_credits[doc.number],
                        Credit.invoice_id.is_(None),
                        exists().where(
                            Invoice.shop_id == shop.id, Invoice.invoice_nr == doc.invoice_nr
                        ),
                    )
                    .values(
                        invoice_id=select(Invoice.id)
                        .where(Invoice.shop_id == shop.id, Invoice.invoice_nr == doc.invoice_nr)
                        .scalar_subquery()
                    )
                )
                changed = changed or result.rowcount > 0
        return changed

    def _add_documents(
        self,
        shop_id: int,
        customer_id: int,
        order_id: int | None,
        invoices: tuple[Document, ...],
        credits: tuple[Document, ...],
        billing: Mapping[str, str | None],
        masked_at: datetime | None,
    ) -> None:
        if not invoices and not credits:
            return
        ids: dict[str, int] = {}
        if invoices:
            rows = self.conn.execute(
                insert(Invoice).returning(Invoice.id, Invoice.invoice_nr),
                [
                    {
                        "shop_id": shop_id,
                        "customer_id": customer_id,
                        "order_id": order_id,
                        "invoice_nr": d.number,
                        **document_amounts(d),
                        "masked_at": masked_at,
                        **billing,
                    }
                    for d in invoices
                ],
            )
            ids = {r.invoice_nr: r.id for r in rows}
        refs = {d.invoice_nr for d in credits if d.invoice_nr and d.invoice_nr not in ids}
        if refs:
            found = self.conn.execute(
                select(Invoice.invoice_nr, Invoice.id).where(
                    Invoice.shop_id == shop_id, Invoice.invoice_nr.in_(refs)
                )
            )
            ids.update({r.invoice_nr: r.id for r in found})
        if credits:
            self.conn.execute(
                insert(Credit),
                [
                    {
                        "shop_id": shop_id,
                        "customer_id": customer_id,
                        "order_id": order_id,
                        "invoice_id": ids.get(d.invoice_nr or ""),
                        "credit_nr": d.number,
                        **document_amounts(d),
                        "masked_at": masked_at,
                        **billing,
                    }
                    for d in credits
                ],
            )
        if masked_at is None:
            self._bump(customer_id)

    def _bump(self, customer_id: int) -> None:
        self.conn.execute(
            update(Customer)
            .where(Customer.id == customer_id)
            .values(pii_revision=Customer.pii_revision + 1)
        )

    def _pii_differences(
        self, rec: OrderRecord, order_id: int, customer_id: int
    ) -> tuple[dict[str, Any], str | None]:
        """What the line would change in PII, and the buyer's new provenance (JSON) when that
        changes (None when it stays)."""
        diff: dict[str, Any] = {}
        cust = (
            self.conn.execute(
                select(*[getattr(Customer, c) for c in BUYER_FIELDS], Customer.pii_sources).where(
                    Customer.id == customer_id
                )
            )
            .one()
            ._asdict()
        )
        merged, sources = merge_buyer(
            cust, sources_from_json(cust["pii_sources"]), buyer_values(rec), order_key(rec)
        )
        changed = {k: v for k, v in merged.items() if cust[k] != v}
        if changed:
            diff["customer"] = changed
        new_sources = sources_to_json(sources)
        order = (
            self.conn.execute(
                select(*[getattr(Order, c) for c in ORDER_TEXTS]).where(Order.id == order_id)
            )
            .one()
            ._asdict()
        )
        texts = {k: rec.texts.get(k) for k in ORDER_TEXTS if order.get(k) != rec.texts.get(k)}
        if texts:
            diff["order"] = texts
        addresses = {
            a.kind: a
            for a in self.conn.execute(
                select(Address.__table__).where(Address.order_id == order_id)
            ).all()
        }
        for kind in ("billing", "shipping"):
            row = addresses.get(kind)
            if row is None:
                if kind == "billing" or rec.has_shipping_address:
                    diff[f"new:{kind}"] = _address_values(rec, kind)
                continue
            given = _given_address_values(rec, kind)
            changes = {k: (getattr(row, k), v) for k, v in given.items() if getattr(row, k) != v}
            if changes:
                diff[f"address:{row.id}"] = changes
        return diff, (new_sources if new_sources != cust["pii_sources"] else None)

    def _write_pii(self, diff: dict[str, Any], order_id: int, customer_id: int) -> None:
        if "customer" in diff:
            self.conn.execute(
                update(Customer).where(Customer.id == customer_id).values(**diff["customer"])
            )
        if "order" in diff:
            self.conn.execute(
                update(Order)
                .where(Order.id == order_id)
                .values(updated_at=self.now, **diff["order"])
            )
        history = []
        for key, changes in diff.items():
            if key.startswith("new:"):
                self.conn.execute(
                    insert(Address).values(
                        customer_id=customer_id, order_id=order_id, kind=key[4:], **changes
                    )
                )
            elif key.startswith("address:"):
                address_id = int(key.split(":")[1])
                self.conn.execute(
                    update(Address)
                    .where(Address.id == address_id)
                    .values(**{k: new for k, (_old, new) in changes.items()})
                )
                history += [
                    {
                        "address_id": address_id,
                        "customer_id": customer_id,
                        "recorded_at": self.now,
                        "field": k,
                        "old_value": _text(old),
                    }
                    for k, (old, _new) in changes.items()
                    if old not in (None, "")
                ]
        if history:
            self.conn.execute(insert(AddressHistory), history)
        self._bump(customer_id)

    # -- manual documents ---------------------------------------------------------------------

    def apply_manual(self, rec: ManualDocumentRecord) -> Outcome:
        shop = self.shop(rec.shop, create=False)
        row = self.conn.execute(
            select(Order.customer_id, Customer.masked_at, Customer.retrieved_at)
            .join(Customer, Customer.id == Order.customer_id)
            .where(Order.shop_id == shop.id, Order.order_nr_external == rec.customer_of_order)
        ).first()
        if row is None:
            raise InvalidInput(
                f"customer_of_order: no order {rec.customer_of_order!r} in shop {rec.shop!r}"
            )
        if self.lock_customer(row.customer_id):
            row = self.conn.execute(
                select(Order.customer_id, Customer.masked_at, Customer.retrieved_at)
                .join(Customer, Customer.id == Order.customer_id)
                .where(Order.shop_id == shop.id, Order.order_nr_external == rec.customer_of_order)
            ).one()
        table = Invoice if rec.kind == "manual_invoice" else Credit
        number_col = Invoice.invoice_nr if table is Invoice else Credit.credit_nr
        exists = self.conn.execute(
            select(table.id).where(table.shop_id == shop.id, number_col == rec.document.number)
        ).first()
        if exists is not None:
            return Outcome.UNCHANGED
        cust = self.conn.execute(
            select(Customer.__table__).where(Customer.id == row.customer_id)
        ).one()
        billing = {
            "billing_name": cust.name or cust.company,
            "billing_address": _postal(cust.address, cust.zip, cust.city),
            "billing_zip": cust.zip,
            "billing_state": cust.state,
            "billing_country": cust.country,
            "billing_vat_id": cust.vat_id,
        }
        is_masked = row.masked_at is not None and row.retrieved_at is None
        docs = (rec.document,)
        self._add_documents(
            shop.id,
            row.customer_id,
            None,
            docs if table is Invoice else (),
            docs if table is Credit else (),
            billing,
            self.now if is_masked else None,
        )
        return Outcome.CREATED


def _emails(rec: OrderRecord) -> tuple[object, object]:
    return rec.customer.get("email"), rec.billing_address.get("email")


def _given_address_values(rec: OrderRecord, kind: str) -> dict[str, Any]:
    """The values of the order's address row that the line gives, for a re-import: an address
    or payment object missing from the line keeps what is stored, and so does a missing birth
    date; a present object replaces the stored values, empty fields included."""
    values = _address_values(rec, kind)
    if kind == "shipping":
        return values if rec.has_shipping_address else {}
    given: dict[str, Any] = {}
    if rec.has_billing_address:
        given |= {k: v for k, v in values.items() if k not in (*PAYMENT_KEYS, "birth_date")}
    if rec.has_payment:
        given |= {k: values[k] for k in PAYMENT_KEYS}
    if values["birth_date"] is not None:
        given["birth_date"] = values["birth_date"]
    return given


def _address_values(rec: OrderRecord, kind: str) -> dict[str, Any]:
    a = rec.billing_address if kind == "billing" else rec.shipping_address
    values: dict[str, Any] = dict.fromkeys(ADDRESS_PII)
    values |= {k: a.get(k) for k in ADDRESS_KEYS}
    values["name"] = full_name(a.get("first_name"), a.get("last_name"))
    values["address"] = address_line(a.get("street"), a.get("house_nr"))
    if kind == "billing":
        # The order's payment lives on its billing address, as the spec's ACard* fields do.
        values |= {k: rec.payment.get(k) for k in PAYMENT_KEYS}
        values["birth_date"] = rec.customer.get("birth_date")
    return values


def _billing_copy(address: Mapping[str, Any], vat_id: str | None) -> dict[str, str | None]:
    """Invoices carry the billing name and address as printed; that copy is PII too. The
    postcode, region, country and VAT ID are kept apart as well: a shop may keep some of them
    unmasked for its tax records. The VAT ID is the billing address's, else the buyer's."""
    return {
        "billing_name": address.get("name") or address.get("company"),
        "billing_address": _postal(address.get("address"), address.get("zip"), address.get("city")),
        "billing_zip": address.get("zip"),
        "billing_state": address.get("state"),
        "billing_country": address.get("country"),
        "billing_vat_id": address.get("vat_id") or vat_id,
    }


def _vat_id(rec: OrderRecord) -> str | None:
    value = rec.customer.get("vat_id")
    return value if isinstance(value, str) and value else None


def document_amounts(d: Document) -> dict[str, Any]:
    """An invoice's or credit's date and amounts as stored (`total` is the gross amount)."""
    return {
        "created_at": d.created_at,
        "total": d.total,
        "net": d.net,
        "tax": d.tax,
        "currency": d.currency,
    }


def _postal(line: str | None, zip_code: str | None, city: str | None) -> str | None:
    place = " ".join(p for p in (zip_code, city) if p)
    joined = "\n".join(p for p in (line, place) if p)
    return joined or None


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)
