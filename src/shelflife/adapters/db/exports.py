"""The accounting export's SQL: documents of a period, the export records, and the count of
documents that will be masked without ever having been exported (set-based, per shop)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, literal, select, union_all, update
from sqlalchemy.orm import aliased

from shelflife.adapters.db import retention
from shelflife.adapters.db.tables import Credit, Customer, Export, Invoice, Shop
from shelflife.domain.policy import Cutoffs
from shelflife.domain.ports import AccountingRow, ExportRecord


def _documents(shop_id: int, start: datetime, end: datetime) -> Any:
    parts = []
    for kind, model, number, ref in (
        ("invoice", Invoice, Invoice.invoice_nr, literal(None, Invoice.invoice_nr.type)),
        ("credit", Credit, Credit.credit_nr, select(Invoice.invoice_nr)
         .where(Invoice.id == Credit.invoice_id).scalar_subquery()),
    ):  # fmt: skip
        parts.append(
            select(
                literal(kind).label("kind"),
                model.id,
                number.label("number"),
                ref.label("invoice_nr"),
                Shop.name.label("shop"),
                model.created_at,
                model.billing_name,
                model.billing_country,
                model.billing_vat_id,
                model.net,
                model.tax,
                model.total,
                model.currency,
                model.masked_at,
            )
            .join(Shop, Shop.id == model.shop_id)
            .where(model.shop_id == shop_id, model.created_at >= start, model.created_at < end)
        )
    return union_all(*parts).subquery()


def accounting_rows(
    conn: Connection, shop_id: int, start: datetime, end: datetime
) -> list[AccountingRow]:
    docs = _documents(shop_id, start, end)
    query = select(docs).order_by(docs.c.created_at, docs.c.kind.desc(), docs.c.number)
    return [
        AccountingRow(
            kind=r.kind,
            id=r.id,
            number=r.number,
            invoice_nr=r.invoice_nr,
            shop=r.shop,
            created_at=r.created_at,
            customer_name=r.billing_name,
            country=r.billing_country,
            vat_id=r.billing_vat_id,
            net=r.net,
            tax=r.tax,
            gross=r.total,
            currency=r.currency,
            masked=r.masked_at is not None,
        )
        for r in conn.execute(query)
    ]


def mark_exported(conn: Connection, rows: Sequence[AccountingRow], at: datetime) -> None:
    kinds: tuple[tuple[str, type[Invoice] | type[Credit]], ...] = (
        ("invoice", Invoice),
        ("credit", Credit),
    )
    for kind, model in kinds:
        ids = [r.id for r in rows if r.kind == kind]
        for i in range(0, len(ids), 1000):
            conn.execute(
                update(model)
                .where(retention._among(conn, model.id, ids[i : i + 1000]))
                .values(exported_at=at)
            )


def record(conn: Connection, export: ExportRecord) -> None:
    conn.execute(insert(Export).values(**export.__dict__))


def last(conn: Connection, kind: str) -> ExportRecord | None:
    row = conn.execute(
        select(
            Export.kind,
            Export.shop,
            Export.period_from,
            Export.period_to,
            Export.file_sha256,
            Export.rows,
            Export.created_at,
            Export.created_by,
        )
        .where(Export.kind == kind)
        .order_by(Export.created_at.desc(), Export.id.desc())
        .limit(1)
    ).first()
    return None if row is None else ExportRecord(**row._asdict())


def unexported_due(conn: Connection, shop_id: int, cutoffs: Cutoffs) -> int:
    """Documents that the mask step would mask by `cutoffs` (the SQL twin of `can_mask`,
    archive aside), still unmasked and never exported: one COUNT per table."""
    ready = retention.mask_ready_condition(shop_id, cutoffs)
    total = 0
    due = select(Customer.id).where(ready)
    models: tuple[type[Invoice] | type[Credit], ...] = (Invoice, Credit)
    for model in models:
        doc = aliased(model)  # the condition's own invoice and credit tests stay uncorrelated
        total += int(
            conn.execute(
                select(func.count())
                .select_from(doc)
                .where(
                    doc.customer_id.in_(due),
                    doc.masked_at.is_(None),
                    doc.exported_at.is_(None),
                )
            ).scalar_one()
        )
    return total
