"""`shelflife find`: which orders a number, an e-mail address, a name or a buyer reference
points to, with their retention state; for customer service, who has only one of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from shelflife.domain.errors import InvalidInput
from shelflife.domain.policy import Cutoffs, OrderFacts, order_state
from shelflife.domain.ports import Ports
from shelflife.domain.references import customer_ref, parse_customer_ref

MAX_LIMIT = 1000
MAX_QUERY_LENGTH = 254
"""The longest e-mail address a column holds; nothing longer can match."""


@dataclass(frozen=True)
class FoundOrder:
    order_nr_external: str
    shop: str
    time_zone: str
    channel: str
    customer: str
    ordered_at: str
    shipped_at: str | None
    cancelled_at: str | None
    state: str
    matched: str


@dataclass
class FindResult:
    query: str
    limit: int
    truncated: bool
    """More orders matched than `limit`; narrow the query."""
    orders: list[FoundOrder] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def find(ports: Ports, query: str, limit: int = 50, as_of: datetime | None = None) -> FindResult:
    """Orders by order, invoice or credit number (masked orders too), by buyer reference
    (`C<id>`), or by e-mail address or name in data that is not masked."""
    query = query.strip()
    if not query or len(query) > MAX_QUERY_LENGTH:
        raise InvalidInput(
            f"give an order, invoice or credit number, a buyer reference such as C42, an "
            f"e-mail address or a name (1 to {MAX_QUERY_LENGTH} characters)"
        )
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"the number of orders to list must be between 1 and {MAX_LIMIT}")
    now = as_of or ports.clock.now()
    with ports.reader as reader:
        rows, truncated = reader.orders.search(query, parse_customer_ref(query), limit)
        facts = reader.customers.facts(sorted({r.customer_id for r in rows}))
    result = FindResult(query, limit, truncated)
    for r in rows:
        cutoffs = Cutoffs.for_shop(now, ZoneInfo(r.time_zone))
        order = OrderFacts(r.shipped_at, r.cancelled_at, r.masked_at is not None)
        result.orders.append(
            FoundOrder(
                order_nr_external=r.order_nr_external,
                shop=r.shop,
                time_zone=r.time_zone,
                channel="amazon" if r.is_amazon else "shop",
                customer=customer_ref(r.customer_id),
                ordered_at=r.ordered_at.isoformat(),
                shipped_at=r.shipped_at.isoformat() if r.shipped_at else None,
                cancelled_at=r.cancelled_at.isoformat() if r.cancelled_at else None,
                state=order_state(facts[r.customer_id], order, r.is_amazon, cutoffs).value,
                matched=r.matched.value,
            )
        )
    return result
