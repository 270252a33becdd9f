"""The nightly run's set-based selection of buyers to shred agrees with the per-buyer rule
(`legal_retention.still_kept`) on random buyers and documents, on SQLite and PostgreSQL, with
document dates crowded around new year in the shop's time zone."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select

from shelflife.adapters.db.tables import Credit, Customer, Invoice, Order, Shop
from shelflife.bootstrap import App
from shelflife.domain.legal_retention import DocumentKind, LegalRetention, still_kept
from tests.support.builders import T0

ZONE = ZoneInfo("America/New_York")
RULES = LegalRetention(invoice_years=10, credit_years=7, order_years=6)


def _near_new_year(rng: random.Random) -> datetime:
    year = rng.randrange(2012, 2031)
    new_year = datetime(year, 1, 1, tzinfo=ZONE).astimezone(UTC)
    return new_year + timedelta(minutes=rng.randrange(-180, 180))


def test_the_shred_selection_agrees_with_the_per_buyer_rule_on_random_data(app: App) -> None:
    rng = random.Random(20261130)
    expected_by_now: dict[datetime, list[int]] = {}
    with app.engine.begin() as conn:
        shop = conn.execute(
            insert(Shop)
            .values(
                name="ny",
                time_zone="America/New_York",
                amazon_order_pattern="x",
                retention_enabled=True,
                created_at=T0,
            )
            .returning(Shop.id)
        ).scalar_one()
        documents: dict[int, list[tuple[DocumentKind, str, datetime]]] = {}
        states: dict[int, tuple[bool, bool, bool]] = {}
        for n in range(80):
            masked, retrieved, keyed = rng.random() < 0.85, rng.random() < 0.1, rng.random() < 0.9
            cid = conn.execute(
                insert(Customer)
                .values(
                    shop_id=shop,
                    channel="amazon",
                    created_at=T0,
                    pii_revision=1,
                    archived_revision=1,
                    masked_at=T0 if masked else None,
                    retrieved_at=T0 if masked and retrieved else None,
                    data_key_wrapped=b"k" if keyed else None,
                    data_key_master_id="mk" if keyed else None,
                )
                .returning(Customer.id)
            ).scalar_one()
            states[cid] = (masked, masked and retrieved, keyed)
            documents[cid] = []
            for i in range(rng.randrange(0, 3)):
                made = _near_new_year(rng)
                nr = f"{n}-{i}"
                order_id = conn.execute(
                    insert(Order)
                    .values(
                        shop_id=shop,
                        customer_id=cid,
                        order_nr_external=nr,
                        is_amazon=True,
                        ordered_at=made,
                        created_at=made,
                        updated_at=made,
                    )
                    .returning(Order.id)
                ).scalar_one()
                documents[cid].append((DocumentKind.ORDER, nr, made))
                if rng.random() < 0.7:
                    invoiced = made + timedelta(minutes=rng.randrange(0, 240))
                    conn.execute(
                        insert(Invoice).values(
                            shop_id=shop,
                            customer_id=cid,
                            order_id=order_id,
                            invoice_nr=f"RE-{nr}",
                            created_at=invoiced,
                            total=Decimal("1.00"),
                        )
                    )
                    documents[cid].append((DocumentKind.INVOICE, f"RE-{nr}", invoiced))
                if rng.random() < 0.3:
                    credited = _near_new_year(rng)
                    conn.execute(
                        insert(Credit).values(
                            shop_id=shop,
                            customer_id=cid,
                            credit_nr=f"GS-{nr}",
                            created_at=credited,
                            total=Decimal("1.00"),
                        )
                    )
                    documents[cid].append((DocumentKind.CREDIT, f"GS-{nr}", credited))
        for _ in range(12):
            now = _near_new_year(rng) + timedelta(days=365 * rng.randrange(5, 12))
            expected_by_now[now] = [
                cid
                for cid, docs in documents.items()
                if states[cid][0]
                and not states[cid][1]
                and states[cid][2]
                and any(kind is DocumentKind.ORDER for kind, _nr, _made in docs)
                and not still_kept(RULES, docs, ZONE, now)
            ]
        assert conn.execute(select(Customer.id)).first() is not None

    for now, expected in expected_by_now.items():
        expired = {kind: RULES.expired_before(kind, now, ZONE) for kind in DocumentKind}
        with app.ports().reader as reader:
            selected = reader.customers.shred_due(shop, expired, 0, 10_000)
        assert selected == expected, now
    assert any(expected_by_now.values())
    assert any(len(e) < 40 for e in expected_by_now.values())
