"""Looking at the data: one order with its retention state, and the compliance report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from shelflife.domain.masking import MASK_PROFILE
from shelflife.domain.policy import (
    ARCHIVE_AFTER_DAYS,
    MASK_AFTER_DAYS,
    REMASK_AFTER_DAYS,
    CustomerFacts,
    Cutoffs,
    Finding,
    Hold,
    OrderFacts,
    compliance_finding,
    compliance_reasons,
    due_on,
    expected_mask_date,
    holds,
    order_state,
    retry_at,
)
from shelflife.domain.ports import Ports
from shelflife.domain.references import customer_ref
from shelflife.services.documents import (
    ArchiveProblemDocument,
    ComplianceEntryDocument,
    ComplianceReport,
    OrderDocument,
)


def _json(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "is_finite"):
        return str(value)
    return value


def _row(obj: Any, columns: list[str]) -> dict[str, object]:
    return {c: _json(getattr(obj, c)) for c in columns}


def show_order(
    ports: Ports, order_nr: str, as_of: datetime | None = None, shop: str | None = None
) -> OrderDocument:
    now = as_of or ports.clock.now()
    with ports.reader as reader:
        records = reader.orders.records(order_nr, shop)
    order, customer, facts, shop_row = records.order, records.customer, records.facts, records.shop
    zone = ZoneInfo(shop_row.time_zone)
    cutoffs = Cutoffs.for_shop(now, zone)
    order_facts = OrderFacts(order.shipped_at, order.cancelled_at, order.masked_at is not None)
    state = order_state(facts, order_facts, order.is_amazon, cutoffs)
    # A shop order is never archived nor masked: it has no such dates.
    closed = order_facts.closed_at if order.is_amazon else None
    retention: dict[str, object] = {
        "state": state.value,
        "amazon": order.is_amazon,
        "feature_enabled": shop_row.retention_enabled,
        "archive_due": _json(due_on(closed, ARCHIVE_AFTER_DAYS, zone)) if closed else None,
        "mask_due": _json(due_on(closed, MASK_AFTER_DAYS, zone)) if closed else None,
        "archived_at": _json(customer.archived_at),
        "archive_current": facts.archive_is_current,
        "archive_failed_at": _json(customer.archive_failed_at),
        "archive_retry_at": _json(retry_at(customer.archive_failed_at, zone))
        if customer.archive_failed_at
        else None,
        # A retrieved order's rows are unmasked again; it still shows when it was masked.
        "masked_at": _json(order.masked_at or customer.masked_at),
        "retrieved_at": _json(customer.retrieved_at),
        "remask_due": _json(due_on(customer.retrieved_at, REMASK_AFTER_DAYS, zone))
        if customer.retrieved_at
        else None,
        "read_only": facts.is_retrieved,
        # The buyer's, not this order's: every order and document of the buyer counts.
        "expected_mask_date": _json_date(expected_mask_date(facts, cutoffs, zone))
        if order.is_amazon
        else None,
    }
    if order.is_amazon and not facts.is_masked and not facts.is_retrieved:
        retention["mask_blocked_by"] = [
            r for r in compliance_reasons(facts, cutoffs) if not r.endswith("next run")
        ]
        retention["held_by"] = _held_by(holds(facts, cutoffs, zone))
    customer_cols = [f.column for f in MASK_PROFILE["customers"]] + ["country"]
    address_cols = ["kind"] + [f.column for f in MASK_PROFILE["addresses"]] + ["country"]
    document = {
        "shop": shop_row.name,
        "time_zone": shop_row.time_zone,
        "order_nr_external": order.order_nr_external,
        "ordered_at": _json(order.ordered_at),
        "shipped_at": _json(order.shipped_at),
        "cancelled_at": _json(order.cancelled_at),
        **_row(order, [f.column for f in MASK_PROFILE["orders"]]),
        "customer": {
            "ref": customer_ref(customer.id),
            "channel": customer.channel,
            **_row(customer, customer_cols),
        },
        "addresses": [_row(a, address_cols) for a in records.addresses],
        "items": [_row(i, ["sku", "title", "qty", "price"]) for i in records.items],
        "invoices": [
            dict(
                _row(i, [*DOCUMENT_COLUMNS, "invoice_nr"]),
                manual=i.order_id is None,
            )
            for i in records.invoices
        ],
        "credits": [
            dict(
                _row(c, [*DOCUMENT_COLUMNS, "credit_nr"]),
                manual=c.order_id is None,
            )
            for c in records.credits
        ],
        "customer_history": [
            _row(h, ["recorded_at", "event", "user_name", "text"]) for h in records.history
        ],
        "retention": retention,
        "other_orders": [_other_order(o, facts, cutoffs) for o in records.other_orders],
        "returns": [
            dict(
                _row(r, ["return_nr", "created_at", "created_by", "reason"]),
                items=json.loads(r.items),
            )
            for r in records.returns
        ],
        "replaces_order": records.replaces_order,
        "linked_orders": [
            dict(
                _other_order(o, records.linked_facts[o.customer_id], cutoffs),
                customer=customer_ref(o.customer_id),
            )
            for o in records.linked_orders
        ],
    }
    return OrderDocument.model_validate(document)


DOCUMENT_COLUMNS = [
    "created_at",
    "total",
    "net",
    "tax",
    "currency",
    *(f.column for f in MASK_PROFILE["invoices"]),
    "billing_country",
]


def _other_order(row: Any, facts: CustomerFacts, cutoffs: Cutoffs) -> dict[str, object]:
    """Another order of the same buyer, with its own state: customer service sees at a glance
    which of the buyer's orders are masked, retrieved or still open."""
    order_facts = OrderFacts(row.shipped_at, row.cancelled_at, row.masked_at is not None)
    return {
        **_row(row, ["order_nr_external", "ordered_at", "shipped_at", "cancelled_at"]),
        "state": order_state(facts, order_facts, row.is_amazon, cutoffs).value,
    }


@dataclass
class ComplianceEntry:
    """One overdue buyer: a violation (something is wrong) or a hold (a legal reason)."""

    finding: Finding
    shop: str
    customer: str
    """The buyer's reference (`C<id>`), which `shelflife find` accepts."""
    orders: list[str]
    reasons: list[str]
    since: str
    """The first local day past a 30-day limit."""
    expected_mask_date: str | None
    held_by: list[dict[str, str | None]] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    """The reasons without order and document numbers, to count buyers by reason."""

    def document(self) -> ComplianceEntryDocument:
        return ComplianceEntryDocument.model_validate(
            {
                "shop": self.shop,
                "customer": self.customer,
                "orders": self.orders,
                "reasons": self.reasons,
                "since": self.since,
                "expected_mask_date": self.expected_mask_date,
                "held_by": self.held_by,
            }
        )


def compliance_document(
    entries: Sequence[ComplianceEntry],
    warnings: Sequence[str] = (),
    archive_problems: Sequence[ArchiveProblemDocument] = (),
) -> ComplianceReport:
    """The report as `shelflife compliance --json` prints it: violations, then holds, the
    archive's open integrity problems (services/integrity.py) and the export warnings
    (services/exports.py)."""
    return ComplianceReport(
        violations=[e.document() for e in entries if e.finding is Finding.VIOLATION],
        holds=[e.document() for e in entries if e.finding is Finding.HOLD],
        archive_problems=list(archive_problems),
        warnings=list(warnings),
    )


def _held_by(holds: Sequence[Hold]) -> list[dict[str, str | None]]:
    return [
        {
            "reason": h.blocker.value,
            "kind": h.kind,
            "number": h.number,
            "until": _json_date(h.ends_on),
        }
        for h in holds
    ]


def _json_date(day: date | None) -> str | None:
    return day.isoformat() if day else None


def compliance_report(
    ports: Ports, as_of: datetime | None = None, batch: int = 1000
) -> list[ComplianceEntry]:
    """Every Amazon buyer whose PII is unmasked more than 30 days after a shipment, filed as a
    violation or a hold by `policy.compliance_finding`, in shop and buyer order."""
    now = as_of or ports.clock.now()
    entries: list[ComplianceEntry] = []
    with ports.reader as reader:
        for shop in reader.shops.every():
            zone = ZoneInfo(shop.time_zone)
            cutoffs = Cutoffs.for_shop(now, zone)
            after = 0
            while ids := reader.customers.overdue_candidates(shop.id, cutoffs, after, batch):
                after = ids[-1]
                facts = reader.customers.facts(ids)
                for cid in ids:
                    entry = compliance_entry(shop.name, cid, facts[cid], cutoffs, zone)
                    if entry is not None:
                        entries.append(entry)
    return entries


def compliance_entry(
    shop: str, customer_id: int, facts: CustomerFacts, cutoffs: Cutoffs, zone: ZoneInfo
) -> ComplianceEntry | None:
    """One buyer's line of the report; None when the buyer is not overdue."""
    found = compliance_finding(facts, cutoffs, zone)
    if found is None:
        return None
    return ComplianceEntry(
        finding=found.finding,
        shop=shop,
        customer=customer_ref(customer_id),
        orders=[o.number or "" for o in facts.orders],
        reasons=list(found.reasons),
        since=found.since.isoformat(),
        expected_mask_date=_json_date(found.expected_mask_date),
        held_by=_held_by(found.holds),
        blockers=list(found.blockers),
    )
