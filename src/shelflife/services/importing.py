"""Import of order JSON Lines: good lines land, bad lines are reported by number, never by value."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DataError, IntegrityError

from shelflife.adapters.db.bulk_orders import create_orders, existing_orders
from shelflife.adapters.db.order_writer import OrderWriter, Outcome
from shelflife.bootstrap import App
from shelflife.domain.errors import InvalidInput
from shelflife.domain.records import (
    ManualDocumentRecord,
    OrderRecord,
    RecordError,
    parse_record,
)

Record = OrderRecord | ManualDocumentRecord


log = logging.getLogger(__name__)


@dataclass
class LineProblem:
    line: int
    message: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    pii_ignored_masked: int = 0
    refused: list[LineProblem] = field(default_factory=list)
    notices: list[LineProblem] = field(default_factory=list)

    @property
    def lines_refused(self) -> int:
        return len(self.refused)

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "pii_ignored_masked": self.pii_ignored_masked,
            "refused": self.lines_refused,
            "problems": [{"line": p.line, "message": p.message} for p in self.refused],
            "notices": [{"line": p.line, "message": p.message} for p in self.notices],
        }


def import_lines(app: App, lines: Iterable[str], batch_size: int | None = None) -> ImportReport:
    """Import JSON Lines; each batch of `batch_size` lines is one transaction.

    New orders of a batch are inserted set-based; updates, manual documents and any batch whose
    bulk insert hits a database conflict go line by line, each in its own savepoint, so one bad
    line never takes good lines down with it.
    """
    report = ImportReport()
    size = batch_size or app.settings.batch_size
    identity = app.keys.identity_digest
    with app.engine.connect() as conn:
        writer = OrderWriter(conn, identity, app.clock.now())
        batch: list[tuple[int, Record]] = []
        keys: set[tuple[str, str]] = set()
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                record = parse_record(json.loads(raw.rstrip("\r\n")))
            except json.JSONDecodeError as exc:
                report.refused.append(
                    LineProblem(number, f"invalid JSON at column {exc.colno}: {exc.msg}")
                )
                continue
            except RecordError as exc:
                report.refused.append(LineProblem(number, str(exc)))
                continue
            if isinstance(record, OrderRecord):
                key = (record.shop, record.order_nr_external)
                if key in keys:  # the same order twice in a batch: apply the first one first
                    _flush(conn, writer, batch, report)
                    batch, keys = [], set()
                keys.add(key)
            batch.append((number, record))
            if len(batch) >= size:
                _flush(conn, writer, batch, report)
                batch, keys = [], set()
        _flush(conn, writer, batch, report)
    # Parse errors are found before database refusals of the same batch: report in line order.
    report.refused.sort(key=lambda p: p.line)
    report.notices.sort(key=lambda p: p.line)
    log.info(
        "import: %d created, %d updated, %d unchanged, %d refused",
        report.created,
        report.updated,
        report.unchanged,
        report.lines_refused,
    )
    return report


def _flush(
    conn: Connection, writer: OrderWriter, batch: list[tuple[int, Record]], report: ImportReport
) -> None:
    if not batch:
        return
    with conn.begin():
        orders = [r for _, r in batch if isinstance(r, OrderRecord)]
        known = existing_orders(writer, orders)
        new = [r for r in orders if (r.shop, r.order_nr_external) not in known]
        savepoint = conn.begin_nested()
        try:
            create_orders(writer, new)
            savepoint.commit()
            bulk_done = True
        except (IntegrityError, DataError):
            savepoint.rollback()
            writer.shops.clear()
            bulk_done = False
        for number, record in batch:
            if (
                bulk_done
                and isinstance(record, OrderRecord)
                and (record.shop, record.order_nr_external) not in known
            ):
                _count(report, number, Outcome.CREATED)
                continue
            _apply_one(conn, writer, number, record, report)


def _apply_one(
    conn: Connection, writer: OrderWriter, number: int, record: Record, report: ImportReport
) -> None:
    savepoint = conn.begin_nested()
    try:
        if isinstance(record, OrderRecord):
            outcome = writer.apply(record)
        else:
            outcome = writer.apply_manual(record)
        savepoint.commit()
    except InvalidInput as exc:
        savepoint.rollback()
        writer.shops.clear()
        report.refused.append(LineProblem(number, str(exc)))
        return
    except IntegrityError:
        savepoint.rollback()
        writer.shops.clear()
        report.refused.append(
            LineProblem(
                number,
                "conflicts with stored data (an invoice or credit number already "
                "belongs to another order of this shop)",
            )
        )
        return
    except DataError:
        # A value the database cannot store; the database's message would quote it.
        savepoint.rollback()
        writer.shops.clear()
        report.refused.append(
            LineProblem(number, "a value cannot be stored by the database (check encodings)")
        )
        return
    _count(report, number, outcome)


def _count(report: ImportReport, number: int, outcome: Outcome) -> None:
    if outcome is Outcome.CREATED:
        report.created += 1
    elif outcome is Outcome.UPDATED:
        report.updated += 1
    elif outcome is Outcome.UNCHANGED:
        report.unchanged += 1
    elif outcome is Outcome.PII_IGNORED_MASKED:
        report.pii_ignored_masked += 1
        report.notices.append(
            LineProblem(
                number, "order is masked: personal data in this line was ignored, status updated"
            )
        )
    else:
        report.refused.append(
            LineProblem(
                number,
                "order was retrieved and is read-only: personal data changes refused "
                "(status fields were updated)",
            )
        )
