"""Shop settings: the retention feature switch (off until enabled), time zone, Amazon pattern."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shelflife.domain.errors import InvalidInput, UnknownShop
from shelflife.domain.masking import TAX_FIELDS
from shelflife.domain.policy import check_not_in_future
from shelflife.domain.ports import Ports, ShopSettings
from shelflife.domain.records import AMAZON_PATTERN_FLAGS

ShopView = ShopSettings
"""A shop as listed: name, time zone, Amazon order pattern, whether retention is on, and the
tax fields kept on its invoices and credits with their legal basis."""
_FIELD_NAME = re.compile(r"[a-z_]{1,20}")


def list_shops(ports: Ports) -> list[ShopView]:
    with ports.reader as reader:
        return reader.shops.all()


def set_feature(ports: Ports, shop: str, enabled: bool, user: str) -> bool:
    """Switch retention for a shop and record who did it; returns whether anything changed.

    Recorded at the clock's now, never at a given instant: the record says when it happened."""
    with ports.uow as uow:
        row = uow.shops.by_name(shop)
        if row is None:
            raise UnknownShop(shop)
        if row.retention_enabled == enabled:
            return False
        now = ports.clock.now()
        uow.shops.switch_feature(row.id, enabled, now, user)
        uow.audit.append(now, user, "feature.enabled" if enabled else "feature.disabled", shop)
        uow.commit()
        return True


TAX_FIELDS_CHANGED = "shop.tax_fields"
MAX_BASIS = 500


def check_tax_fields(keep: Sequence[str], basis: str | None) -> tuple[frozenset[str], str]:
    """The fields to keep and the trimmed legal basis, or `InvalidInput` saying what is wrong:
    the web page checks a choice with it before asking for confirmation."""
    unknown = sorted(set(keep) - set(TAX_FIELDS))
    if unknown:
        shown = ", ".join(u if _FIELD_NAME.fullmatch(u) else "?" for u in unknown)
        raise InvalidInput(f"tax fields: {shown} not among {', '.join(TAX_FIELDS)}")
    kept = frozenset(keep)
    reason = (basis or "").strip()
    if kept and not reason:
        raise InvalidInput("legal basis: required when keeping tax fields, e.g. the law or rule")
    if len(reason) > MAX_BASIS:
        raise InvalidInput(f"legal basis: longer than {MAX_BASIS} characters")
    if kept and any(ch in reason for ch in "\x00\r\n\x1b"):
        raise InvalidInput("legal basis: one line of text without control characters")
    return kept, reason


def set_tax_fields(
    ports: Ports, shop: str, keep: Sequence[str], basis: str | None, user: str
) -> ShopView:
    """Keep exactly these tax fields of the shop's invoices and credits unmasked from the next
    masking on, under a legal basis that is recorded; an empty `keep` clears the choice (and
    the basis), so masking covers them again. Values masked before stay masked; the archive
    holds them. Audited: who, when, which fields and the basis."""
    kept, reason = check_tax_fields(keep, basis)
    with ports.uow as uow:
        row = uow.shops.by_name(shop)
        if row is None:
            raise UnknownShop(shop)
        uow.shops.set_tax_fields(row.id, kept, reason if kept else None)
        ordered = [name for name in TAX_FIELDS if name in kept]
        uow.audit.append(
            ports.clock.now(),
            user,
            TAX_FIELDS_CHANGED,
            shop,
            {"kept": ",".join(ordered) or None, "basis": reason if kept else None},
        )
        view = next(s for s in uow.shops.all() if s.name == shop)
        uow.commit()
        return view


def configure_shop(
    ports: Ports, shop: str, time_zone: str | None, amazon_pattern: str | None
) -> None:
    """Change how days are counted or how Amazon orders are recognised for future imports."""
    values: dict[str, str] = {}
    if time_zone is not None:
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(
                f"time zone: {time_zone!r} is not an IANA time zone such as Europe/Berlin"
            ) from None
        values["time_zone"] = time_zone
    if amazon_pattern is not None:
        try:
            re.compile(amazon_pattern, AMAZON_PATTERN_FLAGS)
        except (re.error, ValueError) as exc:  # ValueError: an inline (?u) against ASCII
            raise InvalidInput(
                f"Amazon order pattern: not a valid regular expression ({exc})"
            ) from None
        values["amazon_order_pattern"] = amazon_pattern
    if not values:
        raise InvalidInput("nothing to change: give a time zone, an Amazon order pattern, or both")
    with ports.uow as uow:
        if not uow.shops.configure(shop, values):
            raise UnknownShop(shop)
        uow.commit()


def ship_order(ports: Ports, order_nr: str, at: datetime, shop: str | None = None) -> None:
    """Record a shipment that has happened: a future one would start the 30 days late."""
    check_not_in_future("shipping time", at, ports.clock.now())
    with ports.uow as uow:
        order = uow.orders.find(order_nr, shop)
        if at < order.ordered_at:
            raise InvalidInput("shipping time: it is before the order time")
        uow.orders.ship(order.id, at)
        uow.commit()
