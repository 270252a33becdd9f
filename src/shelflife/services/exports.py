"""Exports before masking: the accounting CSV of a period, recorded and audited, and the
warnings the dashboard and `compliance` show when exports fall behind the masking."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from shelflife.domain.errors import ArchiveCorrupt, ArchiveUnavailable, InvalidInput, UnknownShop
from shelflife.domain.policy import Cutoffs, local_date, start_of_local_day
from shelflife.domain.ports import AccountingRow, ExportRecord, PdfRef, Ports, UnitOfWork

ACCOUNTING = "accounting"
EXPORTED = "export.accounting"
INVOICES = "invoices"
INVOICES_EXPORTED = "export.invoices"
MANIFEST = "manifest.csv"
MANIFEST_HEADER = ("type", "number", "shop", "date", "status", "file", "sha256")
SUMS = "SHA256SUMS"
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
            start, end = _local_period(first, last, zones[s.name])
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


def _local_period(first: date, last: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants (UTC) from the start of `first` to the end of `last`, local days in `zone`.
    A day at the very edge of the calendar (year 1, 31 December 9999) has no such instant."""
    try:
        return start_of_local_day(first, zone), start_of_local_day(last + timedelta(days=1), zone)
    except OverflowError:
        raise InvalidInput(
            f"period: {first.isoformat()} to {last.isoformat()} reaches the edge of the calendar; "
            "give days from 0001-01-02 to 9999-12-30"
        ) from None


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
    last_invoices_export_at: datetime | None = None
    invoices_stale: bool = False
    """The last invoices (PDF) export is older than 14 days."""
    invoices_unexported_due: int = 0
    """Invoices and credits masked within 7 days whose PDF no invoices export has included."""

    def messages(self) -> list[str]:
        found = self._accounting_messages()
        if self.invoices_stale and self.last_invoices_export_at is not None:
            found.append(
                "the last invoices export was on "
                f"{self.last_invoices_export_at.date().isoformat()}, more than 14 days ago"
            )
        if self.invoices_unexported_due:
            found.append(
                f"{self.invoices_unexported_due} invoices and credits will be masked within 7 "
                "days without their PDFs ever having been exported"
            )
        return found

    def _accounting_messages(self) -> list[str]:
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
    last_pdfs = reader.exports.last(INVOICES)
    due = due_pdfs = 0
    for shop in reader.shops.enabled():
        zone = ZoneInfo(shop.time_zone)
        # Cut-offs depend on the local day only: 7 local days ahead, whatever DST does.
        ahead = start_of_local_day(local_date(now, zone) + timedelta(days=WARN_DAYS_AHEAD), zone)
        cutoffs = Cutoffs.for_shop(ahead, zone)
        due += reader.exports.unexported_due(shop.id, cutoffs)
        due_pdfs += reader.pdfs.unexported_due(shop.id, cutoffs)
    stale = last is not None and now - last.created_at > STALE_AFTER
    stale_pdfs = last_pdfs is not None and now - last_pdfs.created_at > STALE_AFTER
    return ExportWarnings(
        last.created_at if last else None,
        stale,
        due,
        last_pdfs.created_at if last_pdfs else None,
        stale_pdfs,
        due_pdfs,
    )


def check_export_warnings(ports: Ports, as_of: datetime | None = None) -> ExportWarnings:
    with ports.reader as reader:
        return export_warnings(reader, as_of or ports.clock.now())


@dataclass(frozen=True)
class InvoicesExportResult:
    sha256: str
    pdfs: int
    """PDFs in the file."""
    masked: int
    """Documents of the period listed as masked (their PDFs are in the archive only)."""
    missing: int
    """Documents of the period without a PDF yet."""


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def export_invoices(
    ports: Ports, first: date, last: date, shop: str | None, user: str, out: Path
) -> InvoicesExportResult:
    """The PDFs of the invoices and credits dated `first` to `last` (inclusive, each shop's
    local days) as a ZIP file at `out`, with `manifest.csv` (one line per document: its
    status, file and SHA-256) and `SHA256SUMS` (for `sha256sum -c`). Masked documents are
    listed as `masked`, without a file. Refuses an existing `out`; never leaves a partial
    file. Recorded (kind `invoices`) and audited like the accounting export, in a transaction
    committed only once the file is in place."""
    if last < first:
        raise InvalidInput("period: the last day is before the first")
    if out.exists() or out.is_symlink():
        raise InvalidInput(f"output: {out} exists; the invoices export never overwrites a file")
    now = ports.clock.now()
    with ports.uow as uow:
        shops = [s for s in uow.shops.every() if shop is None or s.name == shop]
        if shop is not None and not shops:
            raise UnknownShop(shop)
        zones = {s.name: ZoneInfo(s.time_zone) for s in shops}
        refs: list[PdfRef] = []
        for s in shops:
            start, end = _local_period(first, last, zones[s.name])
            refs += uow.pdfs.of_period(s.id, start, end)
        refs.sort(key=lambda r: (r.created_at, r.shop, r.kind != "invoice", r.number))
        digest, included = _write_invoices_zip(ports, refs, zones, out)
        try:
            uow.pdfs.mark_exported(included, now)
            uow.exports.record(
                ExportRecord(INVOICES, shop, first, last, digest, len(refs), now, user)
            )
            uow.audit.append(
                now,
                user,
                INVOICES_EXPORTED,
                shop,
                {
                    "from": first.isoformat(),
                    "to": last.isoformat(),
                    "documents": len(refs),
                    "pdfs": len(included),
                    "sha256": digest,
                },
            )
            uow.commit()
        except BaseException:
            out.unlink(missing_ok=True)  # an export not recorded leaves no file behind
            raise
    masked = sum(1 for r in refs if r.masked)
    return InvoicesExportResult(digest, len(included), masked, len(refs) - masked - len(included))


def _write_invoices_zip(
    ports: Ports, refs: Sequence[PdfRef], zones: dict[str, ZoneInfo], out: Path
) -> tuple[str, list[PdfRef]]:
    """Write the ZIP to a temporary file beside `out` and link it into place (which fails,
    instead of overwriting, when `out` appeared meanwhile). Returns its SHA-256 and the
    documents whose PDF it holds. Every PDF is checked against its recorded digest."""
    folder = out.parent
    try:
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as exc:
        raise InvalidInput(
            f"output: cannot write in folder {folder} ({exc.strerror or 'error'})"
        ) from None
    included: list[PdfRef] = []
    names: set[str] = set()
    manifest = io.StringIO(newline="")
    lines = csv.writer(manifest, delimiter=";", lineterminator="\r\n")
    lines.writerow(MANIFEST_HEADER)
    sums: list[str] = []
    try:
        with os.fdopen(fd, "wb") as handle:
            with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
                for ref in refs:
                    day = local_date(ref.created_at, zones[ref.shop])
                    row = [ref.kind, ref.number, ref.shop, day.isoformat()]
                    if ref.masked:
                        lines.writerow([*row, "masked", "", ""])
                        continue
                    if ref.sha256 is None:
                        lines.writerow([*row, "no PDF yet", "", ""])
                        continue
                    data = ports.documents.get(ref.object_key)
                    if hashlib.sha256(data).hexdigest() != ref.sha256:
                        raise ArchiveCorrupt(
                            f"the PDF of {ref.kind} {ref.number!r} in the document store "
                            "differs from the one recorded; nothing was exported"
                        )
                    name = _file_name(ref, names)
                    info = zipfile.ZipInfo(name, _zip_time(ref, zones))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, data)
                    lines.writerow([*row, "included", name, ref.sha256])
                    sums.append(f"{ref.sha256}  {name}\n")
                    included.append(ref)
                for name, text in ((MANIFEST, manifest.getvalue()), (SUMS, "".join(sums))):
                    info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        digest = _file_sha256(Path(temp))
        os.link(temp, out)
    except FileExistsError:
        raise InvalidInput(
            f"output: {out} exists; the invoices export never overwrites a file"
        ) from None
    except ArchiveUnavailable as exc:
        raise ArchiveUnavailable(
            f"the document store cannot give a PDF ({exc}); nothing was exported"
        ) from None
    except OSError as exc:
        raise InvalidInput(f"output: cannot write {out} ({exc.strerror or 'error'})") from None
    finally:
        Path(temp).unlink(missing_ok=True)
    return digest, included


def _file_name(ref: PdfRef, taken: set[str]) -> str:
    """`<shop>/<kind>s/<number>.pdf` with anything but letters, digits, dot, dash and
    underscore replaced; the document's id is added where two names would meet."""
    base = f"{_safe(ref.shop)}/{ref.kind}s/{_safe(ref.number)}"
    name = f"{base}.pdf"
    if name in taken:
        name = f"{base}-{ref.id}.pdf"
    taken.add(name)
    return name


def _safe(text: str) -> str:
    """A path part that names no folder above it: `.` and `..` become `_`."""
    part = _UNSAFE.sub("_", text)
    return "_" if part.strip(".") == "" else part


def _zip_time(ref: PdfRef, zones: dict[str, ZoneInfo]) -> tuple[int, int, int, int, int, int]:
    """The document's local date and time (ZIP cannot date before 1980)."""
    local = ref.created_at.astimezone(zones[ref.shop])
    if local.year < 1980:
        return (1980, 1, 1, 0, 0, 0)
    return (local.year, local.month, local.day, local.hour, local.minute, local.second // 2 * 2)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
