"""Customer records as a whole: which look like the same person, and merging them.

Both leave archived and masked buyers alone, as the marketplace's rules require: their data is
in the archive, and mixing records would leave copies that describe nobody.
"""

from __future__ import annotations

from shelflife.domain.duplicates import DuplicateCandidate, check_merge, duplicate_key
from shelflife.domain.errors import InvalidInput
from shelflife.domain.ports import Ports
from shelflife.domain.references import customer_ref, parse_customer_ref
from shelflife.services.documents import DuplicateGroup, DuplicatesReport, MergeResult


def find_duplicates(ports: Ports, shop: str | None = None) -> DuplicatesReport:
    """Groups of customer records that are probably one person; names no personal data, only
    references, so that the list can be shared and logged."""
    report = DuplicatesReport()
    with ports.reader as reader:
        for candidates in reader.customers.duplicate_groups(shop):
            by_key: dict[tuple[str, tuple[str, ...]], list[DuplicateCandidate]] = {}
            for c in candidates:
                key = duplicate_key(c.person)
                if key is not None:
                    by_key.setdefault((c.channel, key), []).append(c)
            for (channel, _key), members in by_key.items():
                if len(members) > 1:
                    report.groups.append(
                        DuplicateGroup(
                            shop=members[0].shop,
                            channel=channel,
                            customers=[customer_ref(m.customer_id) for m in members],
                            orders=[m.orders for m in members],
                        )
                    )
    return report


def merge_customers(ports: Ports, keep: str, other: str, actor: str) -> MergeResult:
    """Move `other`'s orders, addresses, documents and history to `keep` and delete `other`;
    refused when either is archived or masked, or they belong to different shops or channels.
    Recorded in the kept customer's history and in the audit log."""
    keep_id, other_id = _customer_id(keep, "keep"), _customer_id(other, "other")
    now = ports.clock.now()
    with ports.uow as uow:
        first, second = sorted((keep_id, other_id))  # one lock order: two merges never deadlock
        locked = {
            first: uow.customers.merge_candidate(first),
            second: uow.customers.merge_candidate(second),
        }
        check_merge(locked[keep_id], locked[other_id])
        moved = uow.customers.merge(keep_id, other_id)
        uow.history.add(
            keep_id,
            None,
            now,
            "merged",
            actor,
            f"customer {customer_ref(other_id)} merged into this one",
        )
        uow.audit.append(
            now,
            actor,
            "customer.merged",
            customer_ref(keep_id),
            {"merged": customer_ref(other_id), "orders_moved": moved},
        )
        uow.commit()
    return MergeResult(
        kept=customer_ref(keep_id), merged=customer_ref(other_id), orders_moved=moved
    )


def _customer_id(reference: str, which: str) -> int:
    customer_id = parse_customer_ref(reference)
    if customer_id is None:
        raise InvalidInput(f"{which}: give a buyer reference such as C42")
    return customer_id
