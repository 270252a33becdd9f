"""Exports before masking: the accounting CSV of a period, recorded and audited, and the
warnings the dashboard and `compliance` show when exports fall behind the masking."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from shelflife.domain.errors import InvalidInput, UnknownShop
from shelflife.domain.policy import Cutoffs, local_date, start_of_local_day
from shelflife.domain.ports import AccountingRow, ExportRecord, Ports, UnitOfWork

ACCOUNTING = "accounting"
EXPORTED = "export.accounting"
STALE_AFTER = timedelta(days=14)
"""The last accounting export is stale when older than this."""
WARN_DAYS_AHEAD = 7
"""Documents masked within this many days and never exported are counted."""
HEADER = (
    "type",
    "number",
    "invoice_nr",
    "date",
    "shop",
    "customer_name",
    "country",
    "vat_id",
    "net",
    "tax",
    "gross",
    "currency",
    "masked",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""A cell starting with one of these is a formula to a spreadsheet: buyer-typed names are
prefixed with an apostrophe so that opening the file runs nothing (OWASP "CSV injection")."""


@dataclass(frozen=True)
class ExportResult:
    data: bytes
    rows: int
    sha256: str
    masked_rows: int


def _cell(value: str | None) -> str:
    if value is None:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _amount(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.2f}"


def accounting_csv(rows: Sequence[AccountingRow], zones: dict[str, ZoneInfo]) -> bytes:
    """The documented layout (docs/accounting-export.md): UTF-8, `;`-separated, RFC 4180
    quoting, CRLF line ends, a header line, amounts with a decimal point."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow(HEADER)
    for r in rows:
        writer.writerow(
            (
                r.kind,
                r.number,
                r.invoice_nr or "",
                local_date(r.created_at, zones[r.shop]).isoformat(),
                r.shop,
                _cell(r.customer_name),
                r.country or "",
                r.vat_id or "",
                _amount(r.net),
                _amount(r.tax),
                _amount(r.gross),
                r.currency,
                "yes" if r.masked else "no",
            )
        )
    return buffer.getvalue().encode("utf-8")


def export_accounting(
    ports: Ports,
    first: date,
    last: date,
    shop: str | None,
    user: str,
    write: Callable[[bytes], None] | None = None,
) -> ExportResult:
    """The invoices and credits dated `first` to `last` (inclusive, each shop's local days),
    as CSV. `write` puts the file in place; the export is recorded (kind, period, digest, rows,
    who) and audited in the same transaction, committed only once the file is written. Masked
    documents are listed with their masked names (the `masked` column says so)."""
    if last < first:
        raise InvalidInput("period: the last day is before the first")
    now = ports.clock.now()
    with ports.uow as uow:
        shops = [s for s in uow.shops.every() if shop is None or s.name == shop]
        if shop is not None and not shops:
            raise UnknownShop(shop)
        zones = {s.name: ZoneInfo(s.time_zone) for s in shops}
        rows: list[AccountingRow] = []
        for s in shops:
            zone = zones[s.name]
            start = start_of_local_day(first, zone)
            end = start_of_local_day(last + timedelta(days=1), zone)
            rows += uow.exports.accounting_rows(s.id, start, end)
        rows.sort(key=lambda r: (r.created_at, r.shop, r.kind != "invoice", r.number))
        data = accounting_csv(rows, zones)
        digest = hashlib.sha256(data).hexdigest()
        if write is not None:
            write(data)
        uow.exports.mark_exported(rows, now)
        uow.exports.record(
            ExportRecord(ACCOUNTING, shop, first, last, digest, len(rows), now, user)
        )
        uow.audit.append(
            now,
            user,
            EXPORTED,
            shop,
            {
                "from": first.isoformat(),
                "to": last.isoformat(),
                "rows": len(rows),
                "sha256": digest,
            },
        )
        uow.commit()
    return ExportResult(data, len(rows), digest, sum(1 for r in rows if r.masked))


def write_atomically(out: Path) -> Callable[[bytes], None]:
    """A writer that never leaves a partial file: a temporary file in the target folder,
    flushed to disk, then renamed over `out`."""

    def write(data: bytes) -> None:
        folder = out.parent
        try:
            fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{out.name}.", suffix=".tmp")
        except OSError as exc:
            raise InvalidInput(
                f"output: cannot write in folder {folder} ({exc.strerror or 'error'})"
            ) from None
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, out)
        except OSError as exc:
            Path(temp).unlink(missing_ok=True)
            raise InvalidInput(f"output: cannot write {out} ({exc.strerror or 'error'})") from None

    return write


@dataclass(frozen=True)
class ExportWarnings:
    last_export_at: datetime | None
    stale: bool
    """The last accounting export is older than 14 days."""
    unexported_due: int
    """Invoices and credits masked within 7 days that no export has listed."""

    def messages(self) -> list[str]:
        found = []
        if self.stale and self.last_export_at is not None:
            found.append(
                f"the last accounting export was on {self.last_export_at.date().isoformat()}, "
                "more than 14 days ago"
            )
        if self.unexported_due:
            found.append(
                f"{self.unexported_due} invoices and credits will be masked within 7 days "
                "without ever having been exported"
            )
        return found


def export_warnings(reader: UnitOfWork, now: datetime) -> ExportWarnings:
    """Inside an open (read-only) unit of work: the export age and the count of documents at
    risk, per shop with retention enabled (others are never masked)."""
    last = reader.exports.last(ACCOUNTING)
    due = 0
    for shop in reader.shops.enabled():
        zone = ZoneInfo(shop.time_zone)
        # Cut-offs depend on the local day only: 7 local days ahead, whatever DST does.
        ahead = start_of_local_day(local_date(now, zone) + timedelta(days=WARN_DAYS_AHEAD), zone)
        due += reader.exports.unexported_due(shop.id, Cutoffs.for_shop(ahead, zone))
    stale = last is not None and now - last.created_at > STALE_AFTER
    return ExportWarnings(last.created_at if last else None, stale, due)


def check_export_warnings(ports: Ports, as_of: datetime | None = None) -> ExportWarnings:
    with ports.reader as reader:
        return export_warnings(reader, as_of or ports.clock.now())
