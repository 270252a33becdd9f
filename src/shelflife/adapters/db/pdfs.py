"""The SQL behind `PdfRepository`: which invoices and credits need a PDF, which PDFs an archive
copy must hold, which leave the document store (masked) or come back (retrieved), and the
invoices export's selection. Batch methods issue a fixed number of statements per call."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, text, update
from sqlalchemy.orm import aliased

from shelflife.adapters.db import retention
from shelflife.adapters.db.retention import _among
from shelflife.adapters.db.tables import Credit, Customer, Invoice, Order, OrderItem, Shop
from shelflife.domain.errors import InvalidInput, NotFound
from shelflife.domain.policy import Cutoffs
from shelflife.domain.ports import DocumentPrint, LeavingPdf, PdfRef, PrintedLine

Model = type[Invoice] | type[Credit]
MODELS: dict[str, Model] = {"invoice": Invoice, "credit": Credit}


def _number(model: Model) -> Any:
    return Invoice.invoice_nr if model is Invoice else Credit.credit_nr


def _ref_columns(kind: str) -> tuple[Any, ...]:
    model = MODELS[kind]
    return (
        model.id,
        model.customer_id,
        _number(model).label("number"),
        Shop.name.label("shop"),
        model.created_at,
        model.pdf_sha256,
        model.pdf_stored,
        model.masked_at,
    )


def _ref(kind: str, row: Any) -> PdfRef:
    masked = row.masked_at is not None
    return PdfRef(
        kind=kind,
        id=row.id,
        customer_id=row.customer_id,
        number=row.number,
        shop=row.shop,
        created_at=row.created_at,
        sha256=None if masked else row.pdf_sha256,
        stored=bool(row.pdf_stored),
        masked=masked,
    )


def _refs(conn: Connection, kind: str, *where: Any, limit: int | None = None) -> list[PdfRef]:
    model = MODELS[kind]
    query = (
        select(*_ref_columns(kind))
        .join(Shop, Shop.id == model.shop_id)
        .where(*where)
        .order_by(model.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return [_ref(kind, r) for r in conn.execute(query)]


class SqlPdfs:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def pending(
        self, kind: str, after_id: int, limit: int, among: Sequence[int] | None = None
    ) -> list[DocumentPrint]:
        model = MODELS[kind]
        if among is not None and not among:
            return []
        if model is Invoice:
            corrects: Any = Invoice.invoice_nr.label("invoice_nr")  # unused for invoices
            query = select(Invoice.id, Invoice.order_id)
        else:
            original = aliased(Invoice)
            corrects = (
                select(original.invoice_nr)
                .where(original.id == Credit.invoice_id)
                .scalar_subquery()
                .label("invoice_nr")
            )
            query = select(Credit.id, Credit.order_id)
        rows = self.conn.execute(
            query.add_columns(
                model.customer_id,
                _number(model).label("number"),
                Shop.name.label("shop"),
                Shop.time_zone,
                model.created_at,
                Order.order_nr_external,
                corrects,
                model.billing_name,
                model.billing_address,
                model.billing_country,
                model.billing_vat_id,
                model.net,
                model.tax,
                model.total,
                model.currency,
            )
            .join(Shop, Shop.id == model.shop_id)
            .outerjoin(Order, Order.id == model.order_id)
            .where(model.pdf_sha256.is_(None), model.masked_at.is_(None), model.id > after_id)
            .where(*([] if among is None else [_among(self.conn, model.id, among)]))
            .order_by(model.id)
            .limit(limit)
        ).all()
        lines: dict[int, list[PrintedLine]] = {}
        order_ids = sorted({r.order_id for r in rows if r.order_id is not None})
        if model is Invoice and order_ids:
            for item in self.conn.execute(
                select(OrderItem.order_id, OrderItem.sku, OrderItem.title, OrderItem.qty)
                .add_columns(OrderItem.price)
                .where(_among(self.conn, OrderItem.order_id, order_ids))
                .order_by(OrderItem.order_id, OrderItem.position, OrderItem.id)
            ):
                lines.setdefault(item.order_id, []).append(
                    PrintedLine(item.sku, item.title, item.qty, item.price)
                )
        return [
            DocumentPrint(
                kind=kind,
                id=r.id,
                customer_id=r.customer_id,
                number=r.number,
                shop=r.shop,
                time_zone=r.time_zone,
                created_at=r.created_at,
                order_nr=r.order_nr_external,
                invoice_nr=r.invoice_nr if model is Credit else None,
                billing_name=r.billing_name,
                billing_address=r.billing_address,
                billing_country=r.billing_country,
                billing_vat_id=r.billing_vat_id,
                lines=tuple(lines.get(r.order_id, ())) if r.order_id is not None else (),
                net=r.net,
                tax=r.tax,
                total=r.total,
                currency=r.currency,
            )
            for r in rows
        ]

    def record_made(self, made: Sequence[tuple[DocumentPrint, str]]) -> None:
        for kind, model in MODELS.items():
            rows = [{"doc_id": p.id, "digest": d} for p, d in made if p.kind == kind]
            if rows:
                self.conn.execute(
                    update(model)
                    .where(model.id == bindparam("doc_id"))
                    .values(pdf_sha256=bindparam("digest"), pdf_stored=True),
                    rows,
                )

    def of_customers(self, ids: Sequence[int]) -> dict[int, list[PdfRef]]:
        found: dict[int, list[PdfRef]] = {cid: [] for cid in ids}
        if not ids:
            return found
        for kind, model in MODELS.items():
            for ref in _refs(
                self.conn,
                kind,
                _among(self.conn, model.customer_id, ids),
                model.masked_at.is_(None),
            ):
                found[ref.customer_id].append(ref)
        return found

    def leaving(self, limit: int) -> list[LeavingPdf]:
        """Masked documents whose PDF is still in the document store, claimed for this
        transaction. On PostgreSQL the rows are locked and rows another worker claimed are
        skipped: workers side by side each ran this after every batch, picked the same rows
        and updated them in different orders (their plans differ with the batch's size), and
        PostgreSQL broke the deadlock by failing one worker's run."""
        found: list[LeavingPdf] = []
        for kind, model in MODELS.items():
            query = (
                select(model.id)
                # Spelled as the partial index ix_*_pdf_leaving is, so that SQLite uses it:
                # `pdf_stored IS 1` or `= 1` is another expression to its planner, which then
                # scanned every invoice for each batch (0.4 s at 1,300,000 invoices).
                .where(text(f"{model.__tablename__}.pdf_stored"), model.masked_at.is_not(None))
                .order_by(model.id)
                .limit(limit - len(found))
            )
            if self.conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = self.conn.execute(query).scalars()
            found += [LeavingPdf(kind, doc_id) for doc_id in ids]
            if len(found) >= limit:
                break
        return found

    def _set_stored(self, refs: Sequence[PdfRef | LeavingPdf], stored: bool) -> None:
        for kind, model in MODELS.items():
            ids = [r.id for r in refs if r.kind == kind]
            if ids:
                self.conn.execute(
                    update(model).where(_among(self.conn, model.id, ids)).values(pdf_stored=stored)
                )

    def mark_removed(self, pdfs: Sequence[LeavingPdf]) -> None:
        self._set_stored(pdfs, False)

    def mark_stored(self, refs: Sequence[PdfRef]) -> None:
        self._set_stored(refs, True)

    def returning(self, customer_id: int) -> list[PdfRef]:
        found: list[PdfRef] = []
        for kind, model in MODELS.items():
            found += _refs(
                self.conn,
                kind,
                model.customer_id == customer_id,
                model.masked_at.is_(None),
                model.pdf_sha256.is_not(None),
                model.pdf_stored.is_(False),
            )
        return found

    def find(self, kind: str, number: str, shop: str | None = None) -> PdfRef:
        model = MODELS[kind]
        missing = NotFound(f"no {kind} with number {number!r}; check the number")
        if "\x00" in number or (shop is not None and "\x00" in shop):
            raise missing
        where = [_number(model) == number]
        if shop is not None:
            where.append(Shop.name == shop)
        found = _refs(self.conn, kind, *where, limit=2)
        if not found:
            raise missing
        if len(found) > 1:
            raise InvalidInput(
                f"{kind} number {number!r} exists in several shops; name the shop as well"
            )
        return found[0]

    def of_period(self, shop_id: int, start: datetime, end: datetime) -> list[PdfRef]:
        found: list[PdfRef] = []
        for kind, model in MODELS.items():
            found += _refs(
                self.conn,
                kind,
                model.shop_id == shop_id,
                model.created_at >= start,
                model.created_at < end,
            )
        return sorted(found, key=lambda r: (r.created_at, r.kind != "invoice", r.number))

    def mark_exported(self, refs: Sequence[PdfRef], at: datetime) -> None:
        for kind, model in MODELS.items():
            ids = [r.id for r in refs if r.kind == kind]
            for i in range(0, len(ids), 1000):
                self.conn.execute(
                    update(model)
                    .where(_among(self.conn, model.id, ids[i : i + 1000]))
                    .values(pdf_exported_at=at)
                )

    def unexported_due(self, shop_id: int, cutoffs: Cutoffs) -> int:
        """The SQL twin of `can_mask` (archive aside), as the accounting export's count."""
        due = select(Customer.id).where(retention.mask_ready_condition(shop_id, cutoffs))
        total = 0
        for model in MODELS.values():
            doc = aliased(model)  # the condition's own invoice and credit tests stay uncorrelated
            total += int(
                self.conn.execute(
                    select(func.count())
                    .select_from(doc)
                    .where(
                        doc.customer_id.in_(due),
                        doc.masked_at.is_(None),
                        doc.pdf_exported_at.is_(None),
                    )
                ).scalar_one()
            )
        return total
