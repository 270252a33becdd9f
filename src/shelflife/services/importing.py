"""Import of order JSON Lines: good lines land, bad lines are reported by number, never by value."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError

from shelflife.adapters.db.order_writer import OrderWriter, Outcome
from shelflife.bootstrap import App
from shelflife.domain.errors import InvalidInput
from shelflife.domain.records import OrderRecord, RecordError, parse_record


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
    """Apply each line in its own savepoint; commit every `batch_size` lines."""
    report = ImportReport()
    size = batch_size or app.settings.batch_size
    now = app.clock.now()
    identity = app.keys.identity_digest
    pending = 0
    conn = app.engine.connect()
    try:
        tx = conn.begin()
        writer = OrderWriter(conn, identity, now)
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                record = parse_record(json.loads(raw))
            except json.JSONDecodeError as exc:
                report.refused.append(
                    LineProblem(number, f"invalid JSON at column {exc.colno}: {exc.msg}")
                )
                continue
            except RecordError as exc:
                report.refused.append(LineProblem(number, str(exc)))
                continue
            savepoint = conn.begin_nested()
            try:
                if isinstance(record, OrderRecord):
                    outcome = writer.apply(record)
                else:
                    outcome = writer.apply_manual(record)
                savepoint.commit()
            except InvalidInput as exc:
                savepoint.rollback()
                report.refused.append(LineProblem(number, str(exc)))
                continue
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
                continue
            _count(report, number, outcome)
            pending += 1
            if pending >= size:
                tx.commit()
                tx = conn.begin()
                pending = 0
        tx.commit()
    finally:
        conn.close()
    return report


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
