"""Import of order JSON Lines: good lines land, bad lines are reported by number, never by value."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from shelflife.adapters.db.bulk_orders import create_orders, existing_orders
from shelflife.adapters.db.engine import CANNOT_CONNECT, database_error
from shelflife.adapters.db.order_writer import OrderWriter, Outcome
from shelflife.bootstrap import App
from shelflife.domain.errors import DatabaseBusy, InvalidInput
from shelflife.domain.records import (
    ManualDocumentRecord,
    OrderRecord,
    RecordError,
    parse_line,
)
from shelflife.services.documents import (
    ImportReportDocument,
    LineNoticeDocument,
    LineProblemDocument,
    NoticeSummary,
)
from shelflife.services.pdfs import issue_pending_pdfs_or_warn

Record = OrderRecord | ManualDocumentRecord


log = logging.getLogger(__name__)

PII_IGNORED_MASKED = "pii_ignored_masked"
NOTICE_MESSAGES = {
    PII_IGNORED_MASKED: "order is masked: personal data in this line was ignored, status updated",
}
"""Notice kinds and their one message: notices are summarised by kind, so each kind says one
thing whatever line it is about."""


@dataclass(frozen=True)
class LineProblem:
    """A refused line: its number and what is wrong with it (never a value from it)."""

    line: int
    message: str


@dataclass(frozen=True)
class LineNotice:
    """A line that was imported, with something the operator should know about it."""

    line: int
    kind: str

    @property
    def message(self) -> str:
        return NOTICE_MESSAGES[self.kind]


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    pii_ignored_masked: int = 0
    pdfs_made: int = 0
    """Invoice and credit PDFs made into the document store after the lines were written."""
    refused: list[LineProblem] = field(default_factory=list)
    notices: list[LineNotice] = field(default_factory=list)

    @property
    def lines_refused(self) -> int:
        return len(self.refused)

    def notice_summary(self) -> list[NoticeSummary]:
        """One entry per kind of notice: how many lines got it, and what it says."""
        counts = Counter(n.kind for n in self.notices)
        return [
            NoticeSummary(kind=kind, lines=count, message=NOTICE_MESSAGES[kind])
            for kind, count in sorted(counts.items())
        ]

    def document(self) -> ImportReportDocument:
        """The `--json` report (and the API's); its shape is documented in docs/cli.md."""
        return ImportReportDocument(
            created=self.created,
            updated=self.updated,
            unchanged=self.unchanged,
            pii_ignored_masked=self.pii_ignored_masked,
            pdfs_made=self.pdfs_made,
            refused=self.lines_refused,
            problems=[LineProblemDocument(line=p.line, message=p.message) for p in self.refused],
            notices=[
                LineNoticeDocument(line=n.line, kind=n.kind, message=n.message)
                for n in self.notices
            ],
            notice_summary=self.notice_summary(),
        )


def import_lines(
    app: App, lines: Iterable[str | bytes], batch_size: int | None = None
) -> ImportReport:
    """Import JSON Lines; each batch of `batch_size` lines is one transaction.

    Lines may be bytes (a file read as it is): each is decoded on its own, so one line in another
    encoding is refused alone. New orders of a batch are inserted set-based; updates, manual
    documents and any batch whose bulk insert the database refuses go line by line, each in its
    own savepoint, so one bad line never takes good lines down with it.
    """
    report = ImportReport()
    size = batch_size or app.settings.batch_size
    identity = app.keys.identity_digest
    with app.engine.connect() as conn:
        writer = OrderWriter(conn, identity, app.clock.now())
        batch: list[tuple[int, Record]] = []
        keys: set[tuple[str, str]] = set()
        for number, raw in enumerate(lines, start=1):
            record = _read(number, raw, report)
            if record is None:
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
    # The new invoices' and credits' PDFs (and any an earlier import could not make).
    report.pdfs_made = issue_pending_pdfs_or_warn(app.ports())
    # Parse errors are found before database refusals of the same batch: report in line order.
    report.refused.sort(key=lambda p: p.line)
    report.notices.sort(key=lambda n: n.line)
    log.info(
        "import: %d created, %d updated, %d unchanged, %d refused",
        report.created,
        report.updated,
        report.unchanged,
        report.lines_refused,
    )
    return report


_BOM = "\ufeff".encode()


def _read(number: int, raw: str | bytes, report: ImportReport) -> Record | None:
    """The line's record; None for a blank line or a refused one (then added to the report)."""
    line = raw.rstrip(b"\r\n") if isinstance(raw, bytes) else raw.rstrip("\r\n")
    if number == 1:  # editors on Windows start UTF-8 files with a byte-order mark
        line = line.removeprefix(_BOM) if isinstance(line, bytes) else line.removeprefix("\ufeff")
    if not line.strip():
        return None
    try:
        return parse_line(line)
    except RecordError as exc:
        report.refused.append(LineProblem(number, str(exc)))
    except Exception as exc:  # a defect in parsing must cost this line only, never the batch
        report.refused.append(
            LineProblem(number, f"could not be read (unexpected {type(exc).__name__})")
        )
    return None


def _flush(
    conn: Connection, writer: OrderWriter, batch: list[tuple[int, Record]], report: ImportReport
) -> None:
    if not batch:
        return
    with conn.begin():
        orders = [r for _, r in batch if isinstance(r, OrderRecord)]
        known = existing_orders(writer, orders)
        new = [r for r in orders if (r.shop, r.order_nr_external) not in known]
        # Refused by the per-line path below, with its message: never created in bulk.
        guarded = writer.manual_orders_of_amazon_buyers(new)
        known |= {(r.shop, r.order_nr_external) for i, r in enumerate(new) if i in guarded}
        new = [r for i, r in enumerate(new) if i not in guarded]
        savepoint = conn.begin_nested()
        try:
            create_orders(writer, new)
            savepoint.commit()
            bulk_done = True
        except SQLAlchemyError as exc:  # pinned on its line by the per-line path below
            _stop_if_database_unavailable(exc)
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


def _stop_if_database_unavailable(exc: SQLAlchemyError) -> None:
    """A lock not granted in time or a lost connection is no fault of the line: the import
    stops (this batch rolls back, earlier batches stay) and a rerun completes it."""
    failure = database_error(exc)
    if isinstance(failure, DatabaseBusy) or (
        failure is not None and str(failure) == CANNOT_CONNECT
    ):
        raise failure from None


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
    except SQLAlchemyError as exc:
        # Any other refusal of this line; only the error's type is shown, as library messages
        # can carry the statement's parameters (PII).
        _stop_if_database_unavailable(exc)
        savepoint.rollback()
        writer.shops.clear()
        report.refused.append(
            LineProblem(number, f"the database refused this line ({type(exc).__name__})")
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
        report.notices.append(LineNotice(number, PII_IGNORED_MASKED))
    else:
        report.refused.append(
            LineProblem(
                number,
                "order was retrieved and is read-only: personal data changes refused "
                "(status fields were updated)",
            )
        )
