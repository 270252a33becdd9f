"""Shop settings: the retention feature switch (off until enabled), time zone, Amazon pattern."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import insert, select, update

from shelflife.adapters.db import audit_log
from shelflife.adapters.db.reading import find_order
from shelflife.adapters.db.tables import Order, Shop, ShopFeatureChange
from shelflife.bootstrap import App
from shelflife.domain.errors import InvalidInput, UnknownShop
from shelflife.domain.policy import check_not_in_future


@dataclass(frozen=True)
class ShopView:
    name: str
    time_zone: str
    amazon_order_pattern: str
    retention_enabled: bool


def list_shops(app: App) -> list[ShopView]:
    with app.read_engine.connect() as conn:
        return [
            ShopView(r.name, r.time_zone, r.amazon_order_pattern, r.retention_enabled)
            for r in conn.execute(select(Shop.__table__).order_by(Shop.name)).all()
        ]


def set_feature(app: App, shop: str, enabled: bool, user: str) -> bool:
    """Switch retention for a shop and record who did it; returns whether anything changed.

    Recorded at the clock's now, never at a given instant: the record says when it happened."""
    with app.engine.begin() as conn:
        row = conn.execute(select(Shop.id, Shop.retention_enabled).where(Shop.name == shop)).first()
        if row is None:
            raise UnknownShop(shop)
        if bool(row.retention_enabled) == enabled:
            return False
        now = app.clock.now()
        conn.execute(update(Shop).where(Shop.id == row.id).values(retention_enabled=enabled))
        conn.execute(
            insert(ShopFeatureChange).values(
                shop_id=row.id, enabled=enabled, changed_at=now, changed_by=user
            )
        )
        audit_log.append(
            conn, now, user, "feature.enabled" if enabled else "feature.disabled", shop
        )
        return True


def configure_shop(app: App, shop: str, time_zone: str | None, amazon_pattern: str | None) -> None:
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
            re.compile(amazon_pattern)
        except re.error as exc:
            raise InvalidInput(
                f"Amazon order pattern: not a valid regular expression ({exc})"
            ) from None
        values["amazon_order_pattern"] = amazon_pattern
    if not values:
        raise InvalidInput("nothing to change: give a time zone, an Amazon order pattern, or both")
    with app.engine.begin() as conn:
        if conn.execute(update(Shop).where(Shop.name == shop).values(**values)).rowcount == 0:
            raise UnknownShop(shop)


def ship_order(app: App, order_nr: str, at: datetime, shop: str | None = None) -> None:
    """Record a shipment that has happened: a future one would start the 30 days late."""
    check_not_in_future("shipping time", at, app.clock.now())
    with app.engine.begin() as conn:
        order = find_order(conn, order_nr, shop)
        if at < order.ordered_at:
            raise InvalidInput("shipping time: it is before the order time")
        conn.execute(update(Order).where(Order.id == order.id).values(shipped_at=at, updated_at=at))
