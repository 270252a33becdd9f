"""`shelflife find`: which orders a number, an e-mail address, a name or a buyer reference
points to, with their retention state; for customer service, who has only one of them."""

from __future__ import annotations

import enum
from datetime import datetime
from zoneinfo import ZoneInfo

from shelflife.domain.errors import InvalidInput
from shelflife.domain.policy import Cutoffs, OrderFacts, order_state
from shelflife.domain.ports import Ports
from shelflife.domain.references import customer_ref, parse_customer_ref
from shelflife.services.documents import FindResult, FoundOrder

MAX_LIMIT = 1000
MAX_QUERY_LENGTH = 254
"""The longest e-mail address a column holds; nothing longer can match."""


class SearchBy(enum.StrEnum):
    """What a query is: anything `find` understands, only a number, or only personal data."""

    ANYTHING = "anything"
    NUMBER = "number"
    PERSONAL_DATA = "personal data"


def find(
    ports: Ports,
    query: str,
    limit: int = 50,
    as_of: datetime | None = None,
    by: SearchBy = SearchBy.ANYTHING,
) -> FindResult:
    """Orders by order, invoice or credit number (masked orders too), by buyer reference
    (`C<id>`), or by e-mail address or name in data that is not masked. `by` narrows it to
    numbers (order, invoice, credit) or to e-mail addresses and names."""
    query = query.strip()
    if not query or len(query) > MAX_QUERY_LENGTH:
        raise InvalidInput(
            f"give an order, invoice or credit number, a buyer reference such as C42, an "
            f"e-mail address or a name (1 to {MAX_QUERY_LENGTH} characters)"
        )
    if "\x00" in query:
        raise InvalidInput("the search must not contain NUL characters")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"the number of orders to list must be between 1 and {MAX_LIMIT}")
    now = as_of or ports.clock.now()
    with ports.reader as reader:
        rows, truncated = reader.orders.search(
            query,
            parse_customer_ref(query) if by is SearchBy.ANYTHING else None,
            limit,
            numbers=by is not SearchBy.PERSONAL_DATA,
            personal_data=by is not SearchBy.NUMBER,
        )
        facts = reader.customers.facts(sorted({r.customer_id for r in rows}))
    result = FindResult(query=query, limit=limit, truncated=truncated)
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
