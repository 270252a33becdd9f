"""The `shelflife` command line. Each command's docstring is its --help text.

Exit codes: 0 success, 2 invalid input or usage, 1 operational failure. No traceback is ever
shown: errors print one line that says what was wrong and what to do.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from typer.core import TyperGroup

from shelflife.adapters.archive.store import archive_from_url
from shelflife.adapters.db.engine import database_error
from shelflife.bootstrap import App, build_app, initialise
from shelflife.config import load_settings, overriding_variables
from shelflife.domain.clock import ensure_aware
from shelflife.domain.errors import InvalidInput, NotInitialised, ShelflifeError
from shelflife.entrypoints.terminal import (
    DataConsole,
    PrintableFormatter,
    json_document,
    lines,
    printable,
    styled,
)

if TYPE_CHECKING:
    from shelflife.services.pipeline import RunReport


class _CommandTree(TyperGroup):
    """The root command group. Click's usage errors quote what was typed ("No such option: …",
    "Got unexpected extra argument(s) (…)"): they reach the terminal printable, like data."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        with _printable_usage_errors():
            return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        with _printable_usage_errors():  # sub-commands parse their arguments in here
            return super().invoke(ctx)


@contextmanager
def _printable_usage_errors() -> Iterator[None]:
    try:
        yield
    except typer.TyperException as exc:
        exc.message = printable(exc.message)
        raise


app = typer.Typer(
    cls=_CommandTree,
    name="shelflife",
    help="Keep marketplace buyers' personal data exactly as long as allowed.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",  # joins a docstring paragraph's lines in --help
)
feature_app = typer.Typer(
    help="Switch archiving and masking on or off for a shop.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
shop_app = typer.Typer(
    help="List shops and change their retention settings.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
user_app = typer.Typer(
    help="Staff accounts for the web app and the API.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
token_app = typer.Typer(
    help="API tokens (Authorization: Bearer TOKEN).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
audit_app = typer.Typer(
    help="The tamper-evident audit log.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
archive_app = typer.Typer(
    help="Look after the archive store.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
return_app = typer.Typer(
    help="Returns: goods a buyer sends back.", no_args_is_help=True, rich_markup_mode="markdown"
)
replacement_app = typer.Typer(
    help="Replacement orders: goods shipped again.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
credit_app = typer.Typer(
    help="Credits against invoices.", no_args_is_help=True, rich_markup_mode="markdown"
)
app.add_typer(feature_app, name="feature")
app.add_typer(return_app, name="return")
app.add_typer(replacement_app, name="replacement")
app.add_typer(credit_app, name="credit")
app.add_typer(shop_app, name="shop")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")
app.add_typer(archive_app, name="archive")
export_app = typer.Typer(
    help="Exports to run before masking (the accounting CSV, the invoice and credit PDFs).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(export_app, name="export")
keys_app = typer.Typer(
    help="The master key that wraps buyers' archive data keys.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(keys_app, name="keys")

# Order numbers, names and reasons are data: a value like "[/x]" or ":smile:" prints as itself,
# and ESC or a carriage return in it is shown escaped (see terminal.py). Styles come from
# `styled`, never from markup strings.
out = DataConsole()
err = DataConsole(stderr=True)
T = TypeVar("T")


def _text(value: str | None) -> str | None:
    """Refuse what is not text: a NUL, or bytes that are not UTF-8 (the operating system hands
    them over as lone surrogates, which no database can store)."""
    if value is not None and ("\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)):
        raise typer.BadParameter("contains a NUL character or bytes that are not UTF-8 text")
    return value


def _text_path(value: Path | None) -> Path | None:
    """Refuse a path that is not UTF-8 text where the path is recorded (the database and
    config.json hold text only)."""
    if value is not None and any(0xD800 <= ord(c) <= 0xDFFF for c in str(value)):
        raise typer.BadParameter("contains bytes that are not UTF-8 text; rename it or use another")
    return value


HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="Home folder (default $SHELFLIFE_HOME or ./.shelflife)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
AsOfOpt = Annotated[
    str | None,
    typer.Option("--as-of", help="ISO 8601 instant with offset to act as of (default: now)."),
]
ShopOpt = Annotated[
    str | None,
    typer.Option(
        "--shop", help="Shop, when an order number exists in several shops.", callback=_text
    ),
]


def _print_version(wanted: bool) -> None:
    if wanted:
        out.print(f"shelflife {package_version('shelflife')}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress to stderr (never PII).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Keep marketplace buyers' personal data exactly as long as allowed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])


def _fail(message: str, code: int) -> None:
    err.print(styled(("error: ", "bold red"), message))
    raise typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn every failure into one readable line and the right exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except ShelflifeError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted; rerun the command to complete the work", 1)
    except Exception as exc:
        translated = database_error(exc)  # a lock not granted in time, a server gone
        if translated is not None:
            _fail(str(translated), translated.exit_code)
        if os.environ.get("SHELFLIFE_DEBUG") == "1":
            raise
        # Library messages can carry SQL parameters (PII), so only the type is shown.
        _fail(
            f"unexpected {type(exc).__name__}; nothing was half-written (each step is a "
            "transaction). Rerun, and report the error type if it persists",
            1,
        )


def _instant(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return ensure_aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise InvalidInput(
            f"{option}: {value!r} is not an ISO 8601 timestamp with offset, "
            "e.g. 2026-03-01T02:00:00+01:00"
        ) from None


def _with_app(home: Path | None, action: Callable[[App], T]) -> T:
    """Run `action` on the app. Its clock is always the real one: an `--as-of` instant is
    passed to the service explicitly, so "now" stays now (run times, retrieval limits)."""
    settings = load_settings(home)
    if not settings.home.is_dir():  # checked first: opening SQLite would create files here
        raise NotInitialised(
            f"no shelflife home folder at {settings.home}; run `shelflife init` "
            "(or point SHELFLIFE_HOME / --home at the existing one)"
        )
    application = build_app(settings)
    try:
        return action(application)
    finally:
        application.close()


def _print_json(data: Any) -> None:
    sys.stdout.write(json_document(data) + "\n")


@app.command()
def init(home: HomeOpt = None) -> None:
    """Create or upgrade the home folder, database schema, archive folder and master key.

    Safe to run again: existing data and keys are kept. Never creates a master key for a
    database that already uses one, and refuses a key file other than the recorded one.
    """
    with _errors():
        settings = load_settings(home)
        archive_from_url(settings.resolved_archive_url)  # refuse it before config.json keeps it
        report = initialise(settings)
        for line in report.done:
            out.print(styled(("ok ", "green"), line))
        for line in report.warnings:
            err.print(styled(("warning: ", "bold yellow"), line))
        if report.created_key_id is not None:
            out.print(
                styled(
                    (
                        f"Back up {settings.resolved_master_key_file} now (key id "
                        f"{report.created_key_id}), apart from the database and archive "
                        "backups: without it the archive cannot be read.",
                        "bold yellow",
                    )
                )
            )


REFUSED_SHOWN = 20
"""Refused lines printed without --verbose; the rest are counted, and all are in --json."""


@app.command("import")
def import_(
    ctx: typer.Context,
    path: Annotated[str, typer.Argument(help="JSON Lines file of orders, or - for stdin.")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import orders (one JSON object per line). Amazon orders are identified here.

    Good lines are imported even when others are refused; refused lines are listed by line
    number and the exit code is then 2. Notices are summarised, one line per kind; the global
    --verbose lists every notice and every refused line.
    """
    from shelflife.services.importing import import_lines

    verbose = bool(ctx.find_root().params.get("verbose"))
    with _errors():
        if path == "-":
            stdin = typer.get_binary_stream("stdin")
            report = _with_app(home, lambda a: import_lines(a, stdin))
        else:
            file = Path(path)
            if not file.is_file():
                raise InvalidInput(f"{path}: no such file")
            # Read as bytes: each line is decoded on its own, so one line that is not UTF-8 is
            # refused alone instead of ending the import in the middle of the file.
            with file.open("rb") as handle:
                report = _with_app(home, lambda a: import_lines(a, handle))
        if as_json:
            _print_json(report.document().model_dump(mode="json"))
        else:
            out.print(
                f"created {report.created}, updated {report.updated}, unchanged "
                f"{report.unchanged}, personal data ignored on masked orders "
                f"{report.pii_ignored_masked}, refused {report.lines_refused}",
                soft_wrap=True,
            )
            for kind in report.notice_summary():
                noun = "line" if kind.lines == 1 else "lines"
                out.print(f"notice ({kind.lines} {noun}): {kind.message}", soft_wrap=True)
            if verbose:
                for n in report.notices:
                    out.print(f"  line {n.line}: {n.message}", soft_wrap=True)
            shown = report.refused if verbose else report.refused[:REFUSED_SHOWN]
            for p in shown:
                err.print(f"  line {p.line}: {p.message}", soft_wrap=True)
            if len(shown) < len(report.refused):
                err.print(
                    f"  … and {len(report.refused) - len(shown)} more refused lines "
                    "(all of them with `shelflife -v import` or --json)",
                    soft_wrap=True,
                )
        if report.refused:
            raise typer.Exit(2)


@app.command()
def ship(
    order_nr: Annotated[str, typer.Argument(help="External order number.", callback=_text)],
    at: Annotated[str, typer.Option("--at", help="When it shipped (ISO 8601 with offset).")],
    shop: ShopOpt = None,
    home: HomeOpt = None,
) -> None:
    """Mark an order shipped; its retention clock starts on that day."""
    from shelflife.services.shops import ship_order

    with _errors():
        when = _instant(at, "--at")
        assert when is not None
        _with_app(home, lambda a: ship_order(a.ports(), order_nr, when, shop))
        out.print(f"order {order_nr} shipped at {when.isoformat()}", highlight=False)


@app.command()
def run(
    as_of: AsOfOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Only count what a run would do (if the archive works); write nothing.",
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Processes that share the night's batches (PostgreSQL only; default "
            "$SHELFLIFE_ARCHIVE_WORKERS, on SQLite always 1).",
        ),
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run everything due: retry failed archives, archive, verify, mask and re-mask.

    Only shops with the feature enabled are touched. Safe to run twice and safe to kill: a
    rerun completes the work. With --dry-run, print the counts a run would report and change
    nothing (no master key needed). With --workers N on PostgreSQL, N processes claim the
    batches (row locks, SKIP LOCKED); they are still one run, recorded and audited once.
    """
    from shelflife.entrypoints.workers import helpers_for, worker_count
    from shelflife.services.pipeline import dry_run as count_due
    from shelflife.services.pipeline import run_retention

    def work(a: App, progress: Callable[[str, int, int], None] | None = None) -> RunReport:
        helpers = helpers_for(a.settings, worker_count(a, workers))
        if progress is None:
            return run_retention(a.ports(), when, actor=_operator(), helpers=helpers)
        return run_retention(a.ports(), when, progress, _operator(), helpers)

    with _errors():
        when = _instant(as_of, "--as-of")
        if dry_run:
            report = _with_app(home, lambda a: count_due(a.ports(), when))
        elif as_json or not out.is_terminal:
            report = _with_app(home, work)
        else:
            columns = (TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn())
            with Progress(*columns, console=out, transient=True) as bar:
                tasks: dict[str, Any] = {}

                def progress(step: str, done: int, total: int) -> None:
                    if step not in tasks:
                        tasks[step] = bar.add_task(step, total=total)
                    bar.update(tasks[step], completed=done, total=total)

                report = _with_app(home, lambda a: work(a, progress))
        if as_json:
            _print_json(report.model_dump(mode="json"))
            return
        title = f"retention run as of {report.as_of}"
        if report.dry_run:
            title = f"dry run as of {report.as_of} (nothing written)"
        table = Table(title=title)
        counts = ("archived", "archive_failed", "retried", "masked", "remasked")
        for name in counts:
            table.add_column(name, justify="right")
        table.add_column("seconds", justify="right")
        table.add_row(*[str(getattr(report, k)) for k in (*counts, "duration_seconds")])
        out.print(table)
        if report.shops == 0:
            out.print("no shop has the feature enabled; see `shelflife feature enable`")
        if report.verified_objects:
            out.print(f"verified {report.verified_objects} archive object(s)")
        if report.integrity_problems:
            err.print(
                styled(
                    ("warning: ", "bold yellow"),
                    f"the verification sample found {report.integrity_problems} archive "
                    "problem(s); see `shelflife compliance`",
                )
            )
        if report.mask_refused:
            err.print(
                styled(
                    ("warning: ", "bold yellow"),
                    f"{report.mask_refused} buyer(s) due for masking were not masked: their "
                    "archive data key does not open with the loaded master key (see "
                    "docs/operations.md, key lineage)",
                )
            )


@app.command()
def retrieve(
    reason: Annotated[
        str,
        typer.Option(
            "--reason",
            help="Why (1-50 characters); stored in the customer history.",
            callback=_text,
        ),
    ],
    user: Annotated[str, typer.Option("--user", help="Who is retrieving.", callback=_text)],
    order_nr: Annotated[
        str | None,
        typer.Argument(
            help="External order number of a masked order (or give --invoice or --credit).",
            callback=_text,
        ),
    ] = None,
    invoice: Annotated[
        str | None,
        typer.Option(
            "--invoice",
            help="Retrieve by this invoice number instead of an order number.",
            callback=_text,
        ),
    ] = None,
    credit: Annotated[
        str | None,
        typer.Option(
            "--credit",
            help="Retrieve by this credit number instead of an order number.",
            callback=_text,
        ),
    ] = None,
    as_of: AsOfOpt = None,
    shop: ShopOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore a masked order's personal data, invoices and credits from the archive.

    By invoice or credit number, the document's order is retrieved; a manual invoice or credit
    (no order) is retrieved with its buyer, through the buyer's newest Amazon order.
    The restored data is read-only and is masked again 30 days later.
    """
    from shelflife.domain.legal_retention import DocumentKind
    from shelflife.services.retrieval import retrieve_document, retrieve_order

    with _errors():
        numbers = (("order", order_nr), ("invoice", invoice), ("credit", credit))
        given = [(k, v) for k, v in numbers if v is not None]
        if len(given) != 1:
            raise InvalidInput("give exactly one of an order number, --invoice and --credit")
        kind, number = given[0]
        when = _instant(as_of, "--as-of")
        result = _with_app(
            home,
            lambda a: (
                retrieve_order(a.ports(), number, reason, user, when, shop)
                if kind == "order"
                else retrieve_document(
                    a.ports(), DocumentKind(kind), number, reason, user, when, shop
                )
            ),
        )
        if as_json:
            _print_json(
                {
                    "order_nr_external": result.order_nr,
                    "restored_rows": result.restored_rows,
                    "retrieved_at": result.retrieved_at.isoformat(),
                }
            )
        else:
            through = "" if kind == "order" else f"{kind} {number}: "
            out.print(
                f"{through}order {result.order_nr} retrieved ({result.restored_rows} records "
                "restored, read-only, masked again in 30 days)",
                highlight=False,
                soft_wrap=True,
            )


@app.command()
def show(
    order_nr: Annotated[str, typer.Argument(help="External order number.", callback=_text)],
    as_of: AsOfOpt = None,
    shop: ShopOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show an order with its buyer, addresses, documents, history and retention state."""
    from shelflife.services.inspection import show_order

    with _errors():
        when = _instant(as_of, "--as-of")
        data = _with_app(home, lambda a: show_order(a.ports(), order_nr, when, shop)).model_dump(
            mode="json"
        )
        if as_json:
            _print_json(data)
            return
        _print_order(data)


def _local(value: object, zone: ZoneInfo) -> str:
    """An ISO instant from a service document, in the shop's time zone."""
    if not isinstance(value, str):
        return "-"
    return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _last_digits(value: object) -> str | None:
    """A card or account number as people may see it: the last four characters, or the mask
    placeholder as stored."""
    if not isinstance(value, str) or not value:
        return None
    if set(value) == {"*"}:
        return value
    return "ending " + value.replace(" ", "")[-4:]


def _print_order(data: dict[str, Any]) -> None:
    """`show` for people: the channel, the buyer's own mask date and what holds it, items,
    payment reduced to its last digits, times in the shop's time zone."""
    zone = ZoneInfo(data["time_zone"])
    r = data["retention"]
    channel = "Amazon order" if r["amazon"] else "shop order (not Amazon)"
    out.print(
        styled(
            (data["order_nr_external"], "bold"),
            f"  shop {data['shop']}, {channel}, state ",
            (r["state"], "bold"),
        ),
        soft_wrap=True,
    )
    out.print(f"  times in {data['time_zone']}", soft_wrap=True)
    for label in ("ordered_at", "shipped_at", "cancelled_at"):
        if data.get(label):
            out.print(f"  {label.removesuffix('_at')}: {_local(data[label], zone)}", soft_wrap=True)
    if not r["amazon"]:
        out.print("  not an Amazon order: its data is neither archived nor masked", soft_wrap=True)
    else:
        if r.get("archived_at"):
            current = "current" if r["archive_current"] else "older data than now"
            out.print(f"  archived: {_local(r['archived_at'], zone)} ({current})", soft_wrap=True)
        if r.get("archive_failed_at"):
            out.print(
                f"  archive failed: {_local(r['archive_failed_at'], zone)}, retried from "
                f"{_local(r['archive_retry_at'], zone)}",
                soft_wrap=True,
            )
        if r.get("masked_at"):
            out.print(f"  masked: {_local(r['masked_at'], zone)}", soft_wrap=True)
        if r.get("retrieved_at"):
            out.print(
                f"  retrieved: {_local(r['retrieved_at'], zone)}, read-only, masked again on "
                f"{r['remask_due']}",
                soft_wrap=True,
            )
        if not r.get("masked_at") or r.get("retrieved_at"):
            mask_date = r.get("expected_mask_date") or "unknown (see below)"
            out.print(f"  buyer's mask date: {mask_date}", soft_wrap=True)
        held = [
            f"{h['reason']} {h['number'] or ''}".strip()
            + (f" (until {h['until']})" if h.get("until") else "")
            for h in r.get("held_by") or []
        ]
        if held:
            out.print(f"  mask held by: {'; '.join(held)}", soft_wrap=True)
        others = [
            b
            for b in r.get("mask_blocked_by") or []
            if not any(b == h["reason"] for h in r.get("held_by") or [])
        ]
        if others:
            out.print(f"  mask blocked by: {', '.join(others)}", soft_wrap=True)
    c = data["customer"]
    out.print(
        f"customer {c['ref']}: {c.get('name') or '-'}  {c.get('email') or ''}".rstrip(),
        soft_wrap=True,
    )
    billing: dict[str, Any] = {}
    for a in data["addresses"]:
        if a["kind"] == "billing":
            billing = a
        out.print(
            f"  {a['kind']}: {a.get('address') or '-'}, {a.get('zip') or ''} {a.get('city') or ''}",
            soft_wrap=True,
        )
    if data["items"]:
        out.print("items:")
    for i in data["items"]:
        out.print(f"  {i['qty']} x {i['sku']} {i['title']}  {i['price']}", soft_wrap=True)
    payment = [
        p
        for p in (
            billing.get("card_type"),
            f"card {_last_digits(billing.get('card_nr'))}" if billing.get("card_nr") else None,
            f"IBAN {_last_digits(billing.get('iban'))}" if billing.get("iban") else None,
            f"account {_last_digits(billing.get('account'))}" if billing.get("account") else None,
        )
        if p
    ]
    if payment:
        out.print(f"payment: {', '.join(payment)}", soft_wrap=True)
    for kind, number in (("invoices", "invoice_nr"), ("credits", "credit_nr")):
        for d in data[kind]:
            when = _local(d["created_at"], zone)
            out.print(f"  {kind.removesuffix('s')} {d[number]} {d['total']} {when}", soft_wrap=True)
    for h in data["customer_history"]:
        out.print(
            f"  history {_local(h['recorded_at'], zone)} {h['event']} {h.get('user_name') or ''} "
            f"{h.get('text') or ''}",
            soft_wrap=True,
        )
    if data["linked_orders"]:
        out.print("same buyer, other customer records (linked without personal data):")
    for o in data["linked_orders"]:
        out.print(
            f"  {o['order_nr_external']}  {o['customer']}  ordered {_local(o['ordered_at'], zone)}"
            f"  {o['state']}",
            soft_wrap=True,
        )


@app.command()
def compliance(as_of: AsOfOpt = None, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List Amazon buyers whose data is unmasked more than 30 days after shipping: violations
    (something is wrong) and holds (a legal reason to keep it, naming the order or document).

    Exits 1 when there is any violation, so that monitoring can alert on it.
    """
    from shelflife.domain.policy import Finding
    from shelflife.services.exports import check_export_warnings
    from shelflife.services.inspection import compliance_document, compliance_report
    from shelflife.services.integrity import open_archive_problems

    with _errors():
        when = _instant(as_of, "--as-of")
        entries, warnings, damaged = _with_app(
            home,
            lambda a: (
                compliance_report(a.ports(), when),
                check_export_warnings(a.ports(), when).messages(),
                open_archive_problems(a.ports()),
            ),
        )
        violations = [e for e in entries if e.finding is Finding.VIOLATION]
        held = [e for e in entries if e.finding is Finding.HOLD]
        if as_json:
            _print_json(compliance_document(entries, warnings, damaged).model_dump(mode="json"))
        else:
            for warning in warnings:
                out.print(styled(("warning: ", "bold yellow"), warning), soft_wrap=True)
            if damaged:
                out.print(
                    f"{len(damaged)} archive problem(s): the archive may not hold what the "
                    "masking relied on (see `shelflife archive verify`)"
                )
                _print_problems(damaged)
            for rows, title in (
                (
                    violations,
                    f"{len(violations)} violation(s): past the 30-day limit because "
                    "something is wrong",
                ),
                (held, f"{len(held)} hold(s): kept for a legal reason, masked once it ends"),
            ):
                if not rows:
                    continue
                table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
                for col in ("buyer", "orders", "since", "mask date"):
                    table.add_column(col, no_wrap=True)  # one order number a line, never cut
                table.add_column("reasons", overflow="fold")
                for e in rows:
                    table.add_row(
                        lines(e.customer, e.shop),
                        lines(*e.orders),
                        e.since,
                        e.expected_mask_date or "unknown",
                        lines(*e.reasons),
                    )
                out.print(table)
            if not violations and not damaged:
                out.print(
                    "compliant: no Amazon buyer's data is kept past the limit without a "
                    "legal reason"
                )
        if violations or damaged:
            raise typer.Exit(1)


@export_app.command("accounting")
def export_accounting_csv(
    first: Annotated[
        str, typer.Option("--from", help="First day (YYYY-MM-DD), inclusive.", callback=_text)
    ],
    last: Annotated[
        str, typer.Option("--to", help="Last day (YYYY-MM-DD), inclusive.", callback=_text)
    ],
    out_file: Annotated[
        Path, typer.Option("--out", help="The CSV file to write (replaced if it exists).")
    ],
    shop: Annotated[
        str | None, typer.Option("--shop", help="Only this shop's documents.", callback=_text)
    ] = None,
    user: Annotated[
        str, typer.Option("--user", help="Who exports (recorded).", callback=_text)
    ] = "operator",
    home: HomeOpt = None,
) -> None:
    """Write the invoices and credits of a period as CSV for the accounting (layout in
    docs/accounting-export.md): number, date, customer name, country, VAT ID, net, tax,
    gross, currency. Run it before masking: masked documents list their masked names.

    Days are each shop's local days. The file appears complete or not at all; the export is
    recorded with the file's SHA-256 and audited."""
    from shelflife.services.exports import export_accounting, write_atomically

    with _errors():
        start, end = _day(first, "--from"), _day(last, "--to")
        result = _with_app(
            home,
            lambda a: export_accounting(
                a.ports(), start, end, shop, user, write_atomically(out_file)
            ),
        )
        note = f", {result.masked_rows} of them masked," if result.masked_rows else ""
        out.print(
            f"{result.rows} documents{note} written to {out_file} (sha256 {result.sha256})",
            highlight=False,
            soft_wrap=True,
        )


@export_app.command("invoices")
def export_invoices_zip(
    first: Annotated[
        str, typer.Option("--from", help="First day (YYYY-MM-DD), inclusive.", callback=_text)
    ],
    last: Annotated[
        str, typer.Option("--to", help="Last day (YYYY-MM-DD), inclusive.", callback=_text)
    ],
    out_file: Annotated[
        Path, typer.Option("--out", help="The ZIP file to write (never replaced).")
    ],
    shop: Annotated[
        str | None, typer.Option("--shop", help="Only this shop's documents.", callback=_text)
    ] = None,
    user: Annotated[
        str, typer.Option("--user", help="Who exports (recorded).", callback=_text)
    ] = "operator",
    home: HomeOpt = None,
) -> None:
    """Write the PDFs of the invoices and credits of a period into a ZIP file, with
    `manifest.csv` (each document's status, file name and SHA-256) and `SHA256SUMS`. Run it
    before masking: a masked document is listed as masked, its PDF being in the archive only.

    Days are each shop's local days. An existing file is never overwritten; the file appears
    complete or not at all; the export is recorded with the file's SHA-256 and audited."""
    from shelflife.services.exports import export_invoices

    with _errors():
        start, end = _day(first, "--from"), _day(last, "--to")
        result = _with_app(
            home, lambda a: export_invoices(a.ports(), start, end, shop, user, out_file)
        )
        notes = [
            f"{count} {what}"
            for count, what in ((result.masked, "masked"), (result.missing, "without a PDF yet"))
            if count
        ]
        note = f" ({', '.join(notes)}: listed in the manifest)" if notes else ""
        out.print(
            f"{result.pdfs} PDFs{note} written to {out_file} (sha256 {result.sha256})",
            highlight=False,
            soft_wrap=True,
        )


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{option}: not a day of the form YYYY-MM-DD") from None


@app.command()
def runs(
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="How many runs, newest first.")
    ] = 20,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List recent nightly runs: real start and end times, as-of, counts, failures.

    A run that stopped with an error shows why; a killed run shows as not finished.
    """
    from shelflife.services.runs import list_runs

    with _errors():
        views = _with_app(home, lambda a: list_runs(a.ports(), limit))
        if as_json:
            _print_json([v.model_dump(mode="json") for v in views])
            return
        if not views:
            out.print("no run recorded yet; see `shelflife run`")
            return
        for v in views:
            took = "" if v.duration_seconds is None else f", took {v.duration_seconds:.1f} s"
            out.print(
                f"run {v.id}: {v.status}, as of {_utc(v.as_of)}, started {_utc(v.started_at)}"
                f"{took}; shops {v.shops}, archived {v.archived}, failed {v.archive_failed}, "
                f"retried {v.retried}, masked {v.masked}, remasked {v.remasked}",
                soft_wrap=True,
            )
            if v.verified_objects or v.integrity_problems:
                out.print(
                    f"  verified {v.verified_objects} archive object(s), "
                    f"{v.integrity_problems} problem(s) found",
                    soft_wrap=True,
                )
            if v.error:
                out.print(f"  stopped by: {v.error}", soft_wrap=True)


def _utc(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@app.command()
def find(
    query: Annotated[
        str,
        typer.Argument(
            help="Order, invoice or credit number, buyer reference (C42), e-mail or name."
        ),
    ],
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="List at most this many orders.")
    ] = 50,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find orders by order, invoice or credit number (masked orders too), by buyer reference,
    or by e-mail address or name (data that is not masked; case-insensitive, part of it is
    enough).
    """
    from shelflife.services.search import find as find_orders

    with _errors():
        result = _with_app(home, lambda a: find_orders(a.ports(), query, limit))
        if as_json:
            _print_json(result.model_dump(mode="json"))
            return
        if not result.orders:
            out.print("no order matches")
            return
        for o in result.orders:
            zone = ZoneInfo(o.time_zone)
            shipped = (
                f"shipped {_local(o.shipped_at, zone)[:10]}" if o.shipped_at else "not shipped"
            )
            out.print(
                f"{o.order_nr_external}  shop {o.shop}, {o.channel}, buyer {o.customer}, "
                f"ordered {_local(o.ordered_at, zone)[:10]}, {shipped}, state {o.state} "
                f"(matched by {o.matched})",
                soft_wrap=True,
            )
        if result.truncated:
            out.print(
                f"more than {result.limit} orders match; narrow the query or raise --limit",
                soft_wrap=True,
            )


@app.command()
def duplicates(
    shop: Annotated[
        str | None, typer.Option("--shop", help="Only this shop's customers.", callback=_text)
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List customer records that look like one person: the same first and last name, city,
    postcode, company and shop. Archived and masked buyers, and records that share only
    Amazon's shared identity or empty fields, are never listed.
    """
    from shelflife.services.customers import find_duplicates

    with _errors():
        report = _with_app(home, lambda a: find_duplicates(a.ports(), shop))
        if as_json:
            _print_json(report.model_dump(mode="json"))
            return
        if not report.groups:
            out.print("no duplicates")
            return
        for g in report.groups:
            members = ", ".join(
                f"{c} ({n} orders)" for c, n in zip(g.customers, g.orders, strict=True)
            )
            out.print(f"shop {g.shop}, {g.channel}: {members}", soft_wrap=True)


@app.command()
def merge(
    keep: Annotated[str, typer.Argument(help="The customer to keep (C42).")],
    other: Annotated[str, typer.Argument(help="The customer merged into it, then deleted.")],
    home: HomeOpt = None,
) -> None:
    """Merge two customer records of one shop: OTHER's orders, addresses, documents and history
    move to KEEP. Refused when either is archived or masked. Recorded in the audit log.
    """
    from shelflife.services.customers import merge_customers

    with _errors():
        result = _with_app(home, lambda a: merge_customers(a.ports(), keep, other, _operator()))
        out.print(
            f"merged {result.merged} into {result.kept} ({result.orders_moved} orders moved)",
            soft_wrap=True,
        )


ItemsOpt = Annotated[
    str,
    typer.Option(
        "--items", help="SKU:QTY[,SKU:QTY…] from the order, e.g. A-1:2,B-7:1.", callback=_text
    ),
]
DocumentReasonOpt = Annotated[
    str,
    typer.Option(
        "--reason",
        help="Why (1-500 characters); personal data, masked with the buyer.",
        callback=_text,
    ),
]


@return_app.command("create")
def return_create(
    order_nr: Annotated[str, typer.Argument(help="External order number.", callback=_text)],
    items: ItemsOpt,
    reason: DocumentReasonOpt,
    shop: ShopOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a return (`<order>-RET<n>`) of items of an order.

    A masked order is retrieved first, in the same transaction, with the return as the reason.
    """
    from shelflife.domain.after_sales import parse_items
    from shelflife.services.after_sales import create_return

    with _errors():
        created = _with_app(
            home,
            lambda a: create_return(
                a.ports(), order_nr, parse_items(items), reason, _operator(), shop
            ),
        )
        if as_json:
            _print_json(created.model_dump(mode="json"))
            return
        _print_created(f"return {created.return_nr}", created.retrieved, order_nr)


@replacement_app.command("create")
def replacement_create(
    order_nr: Annotated[str, typer.Argument(help="External order number.", callback=_text)],
    items: ItemsOpt,
    reason: DocumentReasonOpt,
    shop: ShopOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a replacement order (`<order>-R<n>`) that ships items of an order again.

    A masked order is retrieved first, in the same transaction, with the replacement as the
    reason.
    """
    from shelflife.domain.after_sales import parse_items
    from shelflife.services.after_sales import create_replacement

    with _errors():
        created = _with_app(
            home,
            lambda a: create_replacement(
                a.ports(), order_nr, parse_items(items), reason, _operator(), shop
            ),
        )
        if as_json:
            _print_json(created.model_dump(mode="json"))
            return
        _print_created(
            f"replacement order {created.order_nr_external}", created.retrieved, order_nr
        )


@credit_app.command("create")
def credit_create(
    invoice_nr: Annotated[str, typer.Argument(help="Invoice number.", callback=_text)],
    total: Annotated[
        str, typer.Option("--total", help="Amount credited, e.g. 19.99.", callback=_text)
    ],
    reason: DocumentReasonOpt,
    shop: ShopOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a credit (`GS-<invoice>-<n>`) against an invoice.

    When the invoice is masked, its order is retrieved first, in the same transaction, with the
    credit as the reason.
    """
    from shelflife.services.after_sales import create_credit

    with _errors():
        created = _with_app(
            home, lambda a: create_credit(a.ports(), invoice_nr, total, reason, _operator(), shop)
        )
        if as_json:
            _print_json(created.model_dump(mode="json"))
            return
        _print_created(
            f"credit {created.credit_nr} of {created.total}",
            created.retrieved,
            created.order_nr_external or invoice_nr,
        )


def _print_created(what: str, retrieved: bool, order_nr: str) -> None:
    out.print(f"{what} created", highlight=False, soft_wrap=True)
    if retrieved:
        out.print(
            f"order {order_nr} was masked and has been retrieved (read-only, masked again in "
            "30 days)",
            highlight=False,
            soft_wrap=True,
        )


@feature_app.command("enable")
def feature_enable(
    shop: Annotated[str, typer.Option("--shop", help="Shop name.", callback=_text)],
    user: Annotated[
        str, typer.Option("--user", help="Who switched it.", callback=_text)
    ] = "operator",
    home: HomeOpt = None,
) -> None:
    """Enable archiving and masking for a shop (off by default). The change is recorded."""
    _set_feature(shop, True, user, home)


@feature_app.command("disable")
def feature_disable(
    shop: Annotated[str, typer.Option("--shop", help="Shop name.", callback=_text)],
    user: Annotated[
        str, typer.Option("--user", help="Who switched it.", callback=_text)
    ] = "operator",
    home: HomeOpt = None,
) -> None:
    """Disable archiving and masking for a shop. The change is recorded."""
    _set_feature(shop, False, user, home)


def _set_feature(shop: str, enabled: bool, user: str, home: Path | None) -> None:
    from shelflife.services.shops import set_feature

    with _errors():
        changed = _with_app(home, lambda a: set_feature(a.ports(), shop, enabled, user))
        word = "enabled" if enabled else "disabled"
        out.print(
            f"retention {word} for shop {shop}" + ("" if changed else " (already)"), highlight=False
        )


@shop_app.command("list")
def shop_list(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List shops with their time zone, Amazon pattern and feature state."""
    from shelflife.services.shops import list_shops

    with _errors():
        shops = _with_app(home, lambda a: list_shops(a.ports()))
        if as_json:
            _print_json([s.__dict__ for s in shops])
            return
        table = Table()
        for col in ("shop", "time zone", "Amazon order pattern", "retention", "tax fields kept"):
            table.add_column(col)
        for s in shops:
            table.add_row(
                s.name,
                s.time_zone,
                s.amazon_order_pattern,
                "enabled" if s.retention_enabled else "disabled",
                _kept_text(s.kept_tax_fields, s.tax_fields_basis),
            )
        out.print(table)


def _kept_text(kept: tuple[str, ...], basis: str | None) -> str:
    return f"{', '.join(kept)} ({basis})" if kept else "none"


@shop_app.command("tax-fields")
def shop_tax_fields(
    shop: Annotated[str, typer.Argument(help="Shop name.", callback=_text)],
    keep: Annotated[
        str | None,
        typer.Option(
            "--keep",
            help="Comma-separated: vat_id, zip, state (replaces the current choice).",
            callback=_text,
        ),
    ] = None,
    basis: Annotated[
        str | None,
        typer.Option("--basis", help="The legal basis (required with --keep).", callback=_text),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Keep none: mask them like other fields.")
    ] = False,
    user: Annotated[
        str, typer.Option("--user", help="Who decided it.", callback=_text)
    ] = "operator",
    home: HomeOpt = None,
) -> None:
    """Keep the buyer's VAT ID, postcode or region on a shop's invoices and credits unmasked.

    Off by default. Each kept field needs a recorded legal basis (e.g. reverse-charge or OSS
    records); names, street, phone and e-mail are masked whatever is chosen. The choice applies
    from the next masking on and is recorded in the audit log."""
    from shelflife.services.shops import set_tax_fields

    if clear == (keep is not None):
        _fail("give either --keep FIELDS with --basis, or --clear", 2)
    fields = [] if clear else [f.strip() for f in (keep or "").split(",") if f.strip()]
    if not clear and not fields:
        _fail("--keep: name one or more of vat_id, zip, state (or use --clear)", 2)
    with _errors():
        view = _with_app(home, lambda a: set_tax_fields(a.ports(), shop, fields, basis, user))
        out.print(
            f"shop {shop}: tax fields kept: "
            + _kept_text(view.kept_tax_fields, view.tax_fields_basis),
            highlight=False,
            soft_wrap=True,
        )


@shop_app.command("set")
def shop_set(
    shop: Annotated[str, typer.Argument(help="Shop name.", callback=_text)],
    time_zone: Annotated[
        str | None, typer.Option("--time-zone", help="IANA zone.", callback=_text)
    ] = None,
    amazon_pattern: Annotated[
        str | None,
        typer.Option(
            "--amazon-pattern",
            help="Regex for Amazon order numbers (future imports).",
            callback=_text,
        ),
    ] = None,
    home: HomeOpt = None,
) -> None:
    """Change a shop's time zone or Amazon order-number pattern."""
    from shelflife.services.shops import configure_shop

    with _errors():
        _with_app(home, lambda a: configure_shop(a.ports(), shop, time_zone, amazon_pattern))
        out.print(f"shop {shop} updated", highlight=False)


@keys_app.command("rotate")
def keys_rotate(
    to_key_file: Annotated[
        Path | None,
        typer.Option(
            "--to-key-file",
            help="The new master key file; created (mode 0600) when it does not exist.",
            callback=_text_path,
        ),
    ] = None,
    to_kms_key: Annotated[
        str | None,
        typer.Option("--to-kms-key", help="The new master key in AWS KMS: key id, ARN or alias."),
    ] = None,
    home: HomeOpt = None,
) -> None:
    """Re-wrap every buyer's data key and the identity key under a new master key.

    Segments are not rewritten. Works in batches, each its own transaction, while the nightly
    run works; killed, run it again with the same new key to continue. config.json is
    pointed at the new key when the rotation begins; the old key is needed until it ends.
    """
    from shelflife.bootstrap import rotation_target, switch_key_settings
    from shelflife.services.keys import begin_rotation, rewrap_data_keys

    with _errors():

        def rotate(a: App) -> None:
            new, created = rotation_target(a, to_key_file, to_kms_key)
            if created:
                err.print(
                    styled(
                        ("BACK UP NOW: ", "bold yellow"),
                        f"{to_key_file} (new master key {new.key_id}); without it the archive "
                        "cannot be read",
                    )
                )
            report = begin_rotation(a.ports(), new, _operator())
            overriding = switch_key_settings(a.settings, new.location())
            if report.started:
                out.print(
                    f"rotation from master key {report.previous_master_key_id} to {new.key_id} "
                    "begun; config.json now names the new key",
                    highlight=False,
                    soft_wrap=True,
                )
            rewrap_data_keys(a.ports(), new, report, _operator())
            out.print(
                f"{report.rewrapped} data key(s) re-wrapped under {new.key_id} in "
                f"{report.batches} batch(es)",
                highlight=False,
            )
            for variable in overriding:
                err.print(
                    styled(
                        ("warning: ", "bold yellow"),
                        f"{variable} is set in the environment and overrides config.json; set "
                        "it to the new master key",
                    )
                )
            if not report.finished:
                _fail(
                    f"{report.left} data key(s) are still under another master key (a run that "
                    "began before the rotation wrapped them); run `shelflife keys rotate` again "
                    "when it has finished",
                    1,
                )
            out.print(f"every data key is under master key {new.key_id}", highlight=False)

        _with_app(home, rotate)


@archive_app.command("orphans")
def archive_orphans(
    delete: Annotated[
        bool,
        typer.Option("--delete", help="Remove them (only where the store allows deletion)."),
    ] = False,
    older_than: Annotated[
        int,
        typer.Option(
            "--older-than", min=1, help="Only objects older than this many hours (at least 1)."
        ),
    ] = 24,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List archive objects no copy record points to, and temp files left by killed runs.

    Nothing retrieval needs is among them. With --delete they are removed, only where the
    store allows deletion and only when older than --older-than hours, so that a run in
    progress never loses its objects. Files shelflife did not write are listed, never deleted.
    """
    from shelflife.services.orphans import OrphanKind
    from shelflife.services.orphans import archive_orphans as orphans

    with _errors():
        report = _with_app(home, lambda a: orphans(a, timedelta(hours=older_than), delete))
        if as_json:
            _print_json(
                {
                    "store": report.store,
                    "deletion_allowed": report.deletion_allowed,
                    "older_than_hours": older_than,
                    "orphans": [
                        {
                            "key": o.key,
                            "kind": o.kind.value,
                            "size": o.size,
                            "modified_at": o.modified_at.isoformat(),
                            "deleted": o.deleted,
                        }
                        for o in report.orphans
                    ],
                    "deleted": report.deleted,
                    "younger": report.younger,
                }
            )
            return
        for o in report.orphans:
            done = ", deleted" if o.deleted else ""
            out.print(
                f"{o.kind.value}: {o.key} ({o.size} bytes, modified "
                f"{_utc(o.modified_at.isoformat())}{done})",
                soft_wrap=True,
            )
        out.print(
            f"{len(report.orphans)} orphan(s) older than {older_than} h in {report.store}, "
            f"{report.deleted} deleted; {report.younger} younger not listed (a run may still "
            "be writing them)",
            soft_wrap=True,
        )
        removable = [o for o in report.orphans if o.kind is not OrphanKind.UNKNOWN]
        if removable and not delete:
            if report.deletion_allowed:
                out.print("remove the temporary and unreferenced ones with --delete")
            else:
                out.print("this store does not allow deletion")


ReasonOpt = Annotated[
    str,
    typer.Option("--reason", help="Why (1-200 characters); kept in the audit log.", callback=_text),
]


@archive_app.command("recover")
def archive_recover(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Rebuild the archive index and the buyers' keys from the archive and the key ledger.

    For a database that lost its data: run `shelflife init` with the same master key file
    first. Every segment is read and checked; buyers the database lost come back as masked
    buyers of the shop "recovered", readable with `archive show`. Safe to run again.
    """
    from shelflife.services.recovery import recover_archive

    with _errors():
        report = _with_app(home, lambda a: recover_archive(a.ports(), _operator()))
        if as_json:
            _print_json(
                {
                    "segments": report.segments,
                    "copies_added": report.copies_added,
                    "keys_found": report.keys_found,
                    "shredded": report.shredded,
                    "segments_without_ledger": report.segments_without_ledger,
                    "failed": [{"where": w, "why": why} for w, why in report.failed],
                }
            )
        else:
            out.print(
                f"{report.segments} segment(s) recovered: {report.copies_added} copies added, "
                f"{report.keys_found} records with their key, {report.shredded} shredded",
                soft_wrap=True,
            )
            for key in report.segments_without_ledger:
                err.print(
                    styled(("warning: ", "bold yellow"), f"no key ledger object for {key}"),
                    soft_wrap=True,
                )
            for where, why in report.failed:
                err.print(styled(("error: ", "bold red"), f"{where}: {why}"), soft_wrap=True)
        if report.failed:
            raise typer.Exit(1)


def _print_problems(problems: list[Any]) -> None:
    for p in problems:
        buyer = f" {p.customer} revision {p.revision}" if p.customer else ""
        out.print(
            styled(("problem: ", "bold red"), f"{p.location} {p.object_key}{buyer}: {p.problem}"),
            soft_wrap=True,
        )


@archive_app.command("verify")
def archive_verify(
    sample: Annotated[
        float,
        typer.Option(
            "--sample",
            min=0.001,
            max=100,
            help="Percentage of the archive objects to re-read, least recently verified first.",
        ),
    ] = 100.0,
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Check a folder written by `archive export` instead of the archive (reads "
            "the database, records nothing).",
        ),
    ] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-read archive objects and check them against the database's index: each object's
    size and SHA-256, its manifest, and every record's digest, buyer, revision and decryption
    with the buyer's data key, at every location (primary and replica).

    Problems are recorded and listed by `compliance` until a later check finds the object
    sound; a damaged copy of a buyer never masked is dropped, so that the next run archives
    the buyer again before masking. Exits 1 when anything is wrong.
    """
    from shelflife.services.integrity import verify_archive, verify_export

    with _errors():
        report = _with_app(
            home,
            lambda a: (
                verify_export(a.ports(), source)
                if source is not None
                else verify_archive(a.ports(), sample, _operator())
            ),
        )
        if as_json:
            _print_json(report.model_dump(mode="json"))
        else:
            _print_problems(report.problems)
            for ref in report.reset_for_archiving:
                out.print(f"{ref}: damaged copy dropped; archived again by the next run")
            out.print(
                f"{report.objects_checked} object(s) and {report.records_checked} record(s) "
                f"checked of {report.objects_total} object(s) in {report.source}: "
                f"{len(report.problems)} problem(s)"
                + (
                    f"; {report.not_exported} recorded object(s) not in the export"
                    if report.not_exported
                    else ""
                ),
                soft_wrap=True,
            )
        if report.problems:
            raise typer.Exit(1)


@archive_app.command("export")
def archive_export(
    folder: Annotated[
        Path, typer.Option("--to", help="Folder for the offline copy (created if missing).")
    ],
    user: Annotated[
        str, typer.Option("--user", help="Who exports (recorded).", callback=_text)
    ] = "operator",
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy every archive segment and legacy copy into a folder for offline media, with a
    manifest of their SHA-256 digests (no keys: the copy opens only with the database's data
    keys and the master key).

    Each object is checked against the index before it is copied; objects the folder holds
    already are kept. Check the copy with `archive verify --from`. Exits 1 when an object could
    not be exported intact.
    """
    from shelflife.services.integrity import export_archive

    with _errors():
        report = _with_app(home, lambda a: export_archive(a.ports(), folder, user or "operator"))
        if as_json:
            _print_json(report.model_dump(mode="json"))
        else:
            _print_problems(report.problems)
            out.print(
                f"exported to {report.folder}: {report.written} object(s) written, "
                f"{report.unchanged} already there; manifest {report.manifest}",
                soft_wrap=True,
            )
        if report.problems:
            raise typer.Exit(1)


@archive_app.command("migrate")
def archive_migrate(
    user: Annotated[
        str, typer.Option("--user", help="Who migrates (recorded).", callback=_text)
    ] = "operator",
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move legacy one-object-per-buyer archive copies into segments.

    Each batch is re-sealed, written as one segment, read back and verified before its copies
    point at it; the legacy objects are then deleted where the store allows deletion (kept
    under Object Lock). Safe to stop and run again. Exits 1 when a copy could not be moved.
    """
    from shelflife.services.integrity import migrate_legacy

    with _errors():
        report = _with_app(home, lambda a: migrate_legacy(a.ports(), user or "operator"))
        if as_json:
            _print_json(report.model_dump(mode="json"))
        else:
            for why in report.failure_reasons:
                out.print(styled(("failed: ", "bold red"), why), soft_wrap=True)
            out.print(
                f"{report.migrated} copy(ies) moved into {report.segments} segment(s); "
                f"{report.deleted} legacy object(s) deleted, {report.left_in_place} left in "
                f"place; {report.failed} failed; {report.remaining} still to migrate",
                soft_wrap=True,
            )
        if report.failed:
            raise typer.Exit(1)


@archive_app.command("show")
def archive_show(
    customer: Annotated[str, typer.Argument(help="Buyer reference, e.g. C42.", callback=_text)],
    reason: ReasonOpt,
    home: HomeOpt = None,
) -> None:
    """Print a buyer's archived data, decrypted, as JSON (every copy, newest first).

    For an auditor, e.g. after `archive recover`, when the database has no orders to retrieve
    through. Audited with the reason; the database's rows are not changed.
    """
    from shelflife.services.recovery import show_archived

    with _errors():
        shown = _with_app(home, lambda a: show_archived(a.ports(), customer, reason, _operator()))
        _print_json(shown.as_json())


@app.command()
def erase(
    customer: Annotated[str, typer.Argument(help="Buyer reference, e.g. C42.", callback=_text)],
    reason: ReasonOpt,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Shred a masked buyer's archive: destroy its data key in the database and the key ledger.

    Every copy of its archived data (primary, replica, offline) becomes unreadable for good.
    Refused while the law keeps any of its invoices, credits or orders (legal retention, see
    docs/operations.md) and while its data is in the database. Audited with the reason.
    """
    from shelflife.services.ledger import erase_customer

    with _errors():
        result = _with_app(home, lambda a: erase_customer(a.ports(), customer, reason, _operator()))
        if as_json:
            _print_json({"customer": result.customer, "erased_at": result.erased_at.isoformat()})
        else:
            out.print(f"buyer {result.customer} erased: its archive can no longer be read")


@app.command()
def demo(
    home: Annotated[
        Path,
        typer.Option("--home", help="A new or empty folder, or one the demo made."),
    ] = Path("demo-home"),
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start over: delete a folder the demo made first.")
    ] = False,
    customers: Annotated[
        int, typer.Option("--customers", min=10, max=100_000, help="Fake buyers to generate.")
    ] = 400,
    nights: Annotated[
        int, typer.Option("--nights", min=31, max=400, help="Nights to simulate.")
    ] = 90,
    serve_after: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Then add one web login per role (new passwords, printed) and serve the web "
            "app on 127.0.0.1 until Ctrl-C.",
        ),
    ] = False,
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="TCP port for --serve.")
    ] = 8000,
) -> None:
    """Generate realistic fake orders, enable retention and simulate nights of runs.

    Works only in a new or empty folder, or one it made itself (it writes a `.shelflife-demo`
    file there first); any other folder is refused untouched, so real data is never used.
    """
    from shelflife.config import settings_for_folder
    from shelflife.services.demo import demo_logins, run_demo

    with _errors():
        run_demo(
            home,
            fresh=fresh,
            customers=customers,
            nights=nights,
            console=out,
            overriding=overriding_variables(),
        )
        if not serve_after:
            return
        logins = demo_logins(home)
        host = "127.0.0.1"
        out.print()
        out.print(f"Web app: http://{host}:{port}  (Ctrl-C stops)", soft_wrap=True)
        table = Table("Role", "User name", "Password", box=box.SIMPLE)
        for login in logins:
            table.add_row(login.role, login.name, login.password)
        out.print(table)
        _serve(build_app(settings_for_folder(home)), host, port)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    home: HomeOpt = None,
) -> None:
    """Serve the customer-service web app and the REST API (under /api/v1).

    Listens on 127.0.0.1 by default; put it behind a TLS-terminating proxy to serve others
    (cookies are then marked Secure). Users come from `shelflife user add`.
    """
    with _errors():
        settings = load_settings(home)
        if not settings.home.is_dir():
            raise NotInitialised(
                f"no shelflife home folder at {settings.home}; run `shelflife init`"
            )
        err.print(f"serving on http://{host}:{port} (Ctrl-C stops)", soft_wrap=True)
        _serve(build_app(settings), host, port)


def _serve(application: App, host: str, port: int) -> None:
    import uvicorn

    from shelflife.entrypoints.web.app import create_web_app

    try:
        uvicorn.run(
            create_web_app(application),
            host=host,
            port=port,
            proxy_headers=True,
            log_level="warning",
            server_header=False,
        )
    finally:
        application.close()


PasswordStdinOpt = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input (never an argument).",
    ),
]


def _operator() -> str:
    """Who runs a command line: the operating-system user, recorded in the audit log."""
    import getpass

    try:
        return f"{getpass.getuser()} (cli)"
    except (KeyError, OSError):
        return "operator (cli)"


def _password_from_stdin(given: bool) -> str:
    if not given:
        raise InvalidInput("give the password on standard input with --password-stdin")
    line = sys.stdin.readline()
    return line[:-1] if line.endswith("\n") else line


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option("--role", help="agent, admin or support.")],
    password_stdin: PasswordStdinOpt = False,
    home: HomeOpt = None,
) -> None:
    """Add a staff account. Passwords have at least 12 characters and are stored as argon2 hashes.

    Roles: **agent** finds, views and retrieves orders; **admin** also sees the dashboard, audit
    log, runs and users; **support** switches the feature per shop and sees counts, never
    personal data.
    """
    from shelflife.services.accounts import add_user

    with _errors():
        password = _password_from_stdin(password_stdin)
        _with_app(home, lambda a: add_user(a, name, role, password, _operator()))
        out.print(f"user {name} added", soft_wrap=True)


@user_app.command("list")
def user_list(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List staff accounts with role, state and number of active API tokens."""
    from shelflife.services.accounts import list_users

    with _errors():
        users = _with_app(home, list_users)
        rows = [
            {
                "name": u.name,
                "role": u.role,
                "state": "disabled" if u.disabled_at else "locked" if u.locked_at else "active",
                "created_at": u.created_at.isoformat(),
                "failed_logins": u.failed_logins,
                "active_tokens": u.active_tokens,
            }
            for u in users
        ]
        if as_json:
            _print_json(rows)
            return
        table = Table()
        for col in ("user", "role", "state", "failed logins", "tokens"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                str(r["name"]),
                str(r["role"]),
                str(r["state"]),
                str(r["failed_logins"]),
                str(r["active_tokens"]),
            )
        out.print(table)


@user_app.command("disable")
def user_disable(
    name: Annotated[str, typer.Argument(help="Login name.")], home: HomeOpt = None
) -> None:
    """Disable an account for good and revoke its API tokens."""
    from shelflife.services.accounts import disable_user

    with _errors():
        changed = _with_app(home, lambda a: disable_user(a, name, _operator()))
        out.print(f"user {name} disabled" + ("" if changed else " (already)"), soft_wrap=True)


@user_app.command("passwd")
def user_passwd(
    name: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: PasswordStdinOpt = False,
    home: HomeOpt = None,
) -> None:
    """Set a new password (none of the last 10 may be reused); this also unlocks the account."""
    from shelflife.services.accounts import change_password

    with _errors():
        password = _password_from_stdin(password_stdin)
        _with_app(home, lambda a: change_password(a, name, password, _operator()))
        out.print(f"password of {name} changed", soft_wrap=True)


@user_app.command("unlock")
def user_unlock(
    name: Annotated[str, typer.Argument(help="Login name.")], home: HomeOpt = None
) -> None:
    """Unlock an account locked after 10 failed logins in a row."""
    from shelflife.services.accounts import unlock_user

    with _errors():
        changed = _with_app(home, lambda a: unlock_user(a, name, _operator()))
        out.print(f"user {name} unlocked" + ("" if changed else " (was not locked)"))


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="The user the token acts as.")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API token for a user and print it once; only its hash is stored."""
    from shelflife.services.accounts import create_token

    with _errors():
        created = _with_app(home, lambda a: create_token(a, name, _operator()))
        if as_json:
            _print_json({"token": created.token, "id": created.id, "user": created.user})
        else:
            out.print(created.token)
            err.print(
                f"token {created.id} for {created.user}: shown once, store it now; "
                f"revoke it with `shelflife token revoke {created.id}`",
                soft_wrap=True,
            )


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id, as printed at creation.")],
    home: HomeOpt = None,
) -> None:
    """Revoke an API token; requests with it are refused from now on."""
    from shelflife.services.accounts import revoke_token

    with _errors():
        owner = _with_app(home, lambda a: revoke_token(a, token_id, _operator()))
        out.print(f"token {token_id} of {owner} revoked", soft_wrap=True)


@audit_app.command("verify")
def audit_verify(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Check that no audit entry was changed, inserted or removed; exit 1 where it breaks."""
    from shelflife.services.audit import verify_audit_log

    with _errors():
        check = _with_app(home, lambda a: verify_audit_log(a.ports()))
        if as_json:
            _print_json(check.__dict__)
        elif check.intact:
            out.print(f"audit log intact: {check.checked} entries checked")
        else:
            err.print(
                f"audit log broken at entry {check.broken_at}: {check.reason} "
                f"({check.checked} entries before it are intact)",
                soft_wrap=True,
            )
        if not check.intact:
            raise typer.Exit(1)


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="Newest N.")] = 50,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the newest audit entries: who did what, when, to which order, user or shop."""
    from shelflife.services.audit import recent_entries

    with _errors():
        entries = _with_app(home, lambda a: recent_entries(a.ports(), limit))
        rows = [
            {
                "seq": e.seq,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "subject": e.subject,
                "detail": dict(e.detail),
            }
            for e in entries
        ]
        if as_json:
            _print_json(rows)
            return
        table = Table()
        for col in ("seq", "at", "actor", "action", "subject", "detail"):
            table.add_column(col, overflow="fold")
        for r in rows:
            detail = r["detail"]
            assert isinstance(detail, dict)
            table.add_row(
                str(r["seq"]),
                str(r["at"]),
                str(r["actor"]),
                str(r["action"]),
                str(r["subject"] or ""),
                ", ".join(f"{k}={v}" for k, v in detail.items()),
            )
        out.print(table)


def main() -> None:
    app()
