"""The `shelflife` command line. Each command's docstring is its --help text.

Exit codes: 0 success, 2 invalid input or usage, 1 operational failure. No traceback is ever
shown: errors print one line that says what was wrong and what to do.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from shelflife.adapters.archive.store import archive_from_url
from shelflife.adapters.db.engine import database_error
from shelflife.bootstrap import App, build_app, initialise
from shelflife.config import load_settings
from shelflife.domain.clock import FixedClock, ensure_aware
from shelflife.domain.errors import InvalidInput, NotInitialised, ShelflifeError

app = typer.Typer(
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
app.add_typer(feature_app, name="feature")
app.add_typer(shop_app, name="shop")

# Markup and emoji codes are off: order numbers, names and reasons are data, and a value like
# "[/x]" or ":smile:" must print as itself, never be parsed. Styles are applied with Text.
out = Console(markup=False, emoji=False, highlight=False)
err = Console(stderr=True, markup=False, emoji=False, highlight=False)
T = TypeVar("T")

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
    str | None, typer.Option("--shop", help="Shop, when an order number exists in several shops.")
]


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log progress to stderr (never PII).")
    ] = False,
) -> None:
    """Keep marketplace buyers' personal data exactly as long as allowed."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _fail(message: str, code: int) -> None:
    err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
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


def _with_app(home: Path | None, action: Callable[[App], T], as_of: datetime | None = None) -> T:
    settings = load_settings(home)
    if not settings.home.is_dir():  # checked first: opening SQLite would create files here
        raise NotInitialised(
            f"no shelflife home folder at {settings.home}; run `shelflife init` "
            "(or point SHELFLIFE_HOME / --home at the existing one)"
        )
    application = build_app(settings, FixedClock(as_of) if as_of else None)
    try:
        return action(application)
    finally:
        application.close()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


@app.command()
def init(home: HomeOpt = None) -> None:
    """Create or upgrade the home folder, database schema, archive folder and master key.

    Safe to run again: existing data and keys are kept.
    """
    with _errors():
        settings = load_settings(home)
        archive_from_url(settings.resolved_archive_url)  # refuse it before config.json keeps it
        for line in initialise(settings):
            out.print(Text.assemble(("ok ", "green"), line), soft_wrap=True)


@app.command("import")
def import_(
    path: Annotated[str, typer.Argument(help="JSON Lines file of orders, or - for stdin.")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import orders (one JSON object per line). Amazon orders are identified here.

    Good lines are imported even when others are refused; refused lines are listed by line
    number and the exit code is then 2.
    """
    from shelflife.services.importing import import_lines

    with _errors():
        if path == "-":
            report = _with_app(home, lambda a: import_lines(a, sys.stdin))
        else:
            file = Path(path)
            if not file.is_file():
                raise InvalidInput(f"{path}: no such file")
            with file.open(encoding="utf-8", errors="strict") as handle:
                try:
                    report = _with_app(home, lambda a: import_lines(a, handle))
                except UnicodeDecodeError:
                    raise InvalidInput(f"{path}: not UTF-8 text") from None
        if as_json:
            _print_json(report.as_dict())
        else:
            out.print(
                f"created {report.created}, updated {report.updated}, unchanged "
                f"{report.unchanged}, personal data ignored on masked orders "
                f"{report.pii_ignored_masked}, refused {report.lines_refused}",
                soft_wrap=True,
            )
            for p in report.notices:
                out.print(f"  line {p.line}: {p.message}", highlight=False, soft_wrap=True)
            for p in report.refused:
                err.print(f"  line {p.line}: {p.message}", highlight=False, soft_wrap=True)
        if report.refused:
            raise typer.Exit(2)


@app.command()
def ship(
    order_nr: Annotated[str, typer.Argument(help="External order number.")],
    at: Annotated[str, typer.Option("--at", help="When it shipped (ISO 8601 with offset).")],
    shop: ShopOpt = None,
    home: HomeOpt = None,
) -> None:
    """Mark an order shipped; its retention clock starts on that day."""
    from shelflife.services.shops import ship_order

    with _errors():
        when = _instant(at, "--at")
        assert when is not None
        _with_app(home, lambda a: ship_order(a, order_nr, when, shop))
        out.print(f"order {order_nr} shipped at {when.isoformat()}", highlight=False)


@app.command()
def run(as_of: AsOfOpt = None, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Run everything due: retry failed archives, archive, verify, mask and re-mask.

    Only shops with the feature enabled are touched. Safe to run twice and safe to kill: a
    rerun completes the work.
    """
    from shelflife.services.pipeline import run_retention

    with _errors():
        when = _instant(as_of, "--as-of")
        if as_json or not out.is_terminal:
            report = _with_app(home, lambda a: run_retention(a, when), when)
        else:
            columns = (TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn())
            with Progress(*columns, console=out, transient=True) as bar:
                tasks: dict[str, Any] = {}

                def progress(step: str, done: int, total: int) -> None:
                    if step not in tasks:
                        tasks[step] = bar.add_task(step, total=total)
                    bar.update(tasks[step], completed=done, total=total)

                report = _with_app(home, lambda a: run_retention(a, when, progress), when)
        if as_json:
            _print_json(report.as_dict())
        else:
            table = Table(title=f"retention run as of {report.as_of}")
            for name in ("archived", "archive_failed", "retried", "masked", "remasked"):
                table.add_column(name, justify="right")
            table.add_column("seconds", justify="right")
            table.add_row(
                *[
                    str(getattr(report, k))
                    for k in (
                        "archived",
                        "archive_failed",
                        "retried",
                        "masked",
                        "remasked",
                        "duration_seconds",
                    )
                ]
            )
            out.print(table)
            if report.shops == 0:
                out.print("no shop has the feature enabled; see `shelflife feature enable`")


@app.command()
def retrieve(
    order_nr: Annotated[str, typer.Argument(help="External order number of a masked order.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why (1-50 characters); stored in the customer history.")
    ],
    user: Annotated[str, typer.Option("--user", help="Who is retrieving.")],
    as_of: AsOfOpt = None,
    shop: ShopOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore a masked order's personal data, invoices and credits from the archive.

    The restored data is read-only and is masked again 30 days later.
    """
    from shelflife.services.retrieval import retrieve_order

    with _errors():
        when = _instant(as_of, "--as-of")
        result = _with_app(
            home, lambda a: retrieve_order(a, order_nr, reason, user, when, shop), when
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
            out.print(
                f"order {order_nr} retrieved ({result.restored_rows} records restored, "
                "read-only, masked again in 30 days)",
                highlight=False,
                soft_wrap=True,
            )


@app.command()
def show(
    order_nr: Annotated[str, typer.Argument(help="External order number.")],
    as_of: AsOfOpt = None,
    shop: ShopOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show an order with its buyer, addresses, documents, history and retention state."""
    from shelflife.services.inspection import show_order

    with _errors():
        when = _instant(as_of, "--as-of")
        data = _with_app(home, lambda a: show_order(a, order_nr, when, shop), when)
        if as_json:
            _print_json(data)
            return
        r = data["retention"]
        out.print(
            Text.assemble(
                (data["order_nr_external"], "bold"),
                f" ({data['shop']}) state ",
                (r["state"], "bold"),
            )
        )
        for key in (
            "archive_due",
            "mask_due",
            "archived_at",
            "archive_failed_at",
            "archive_retry_at",
            "masked_at",
            "retrieved_at",
            "remask_due",
        ):
            if r.get(key):
                out.print(f"  {key}: {r[key]}", highlight=False)
        if r.get("mask_blocked_by"):
            out.print(f"  mask blocked by: {', '.join(r['mask_blocked_by'])}", highlight=False)
        c = data["customer"]
        out.print(f"customer: {c.get('name') or '-'}  {c.get('email') or ''}", highlight=False)
        for a in data["addresses"]:
            out.print(
                f"  {a['kind']}: {a.get('address') or '-'}, {a.get('zip') or ''} "
                f"{a.get('city') or ''}",
                highlight=False,
            )
        for i in data["invoices"]:
            out.print(
                f"  invoice {i['invoice_nr']} {i['total']} {i['created_at']}", highlight=False
            )
        for i in data["credits"]:
            out.print(f"  credit {i['credit_nr']} {i['total']} {i['created_at']}", highlight=False)
        for h in data["customer_history"]:
            out.print(
                f"  history {h['recorded_at']} {h['event']} {h.get('user_name') or ''} "
                f"{h.get('text') or ''}",
                highlight=False,
            )


@app.command()
def compliance(as_of: AsOfOpt = None, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List Amazon buyers whose data is unmasked more than 30 days after shipping, and why.

    Exits 1 when there is any, so that monitoring can alert on it.
    """
    from shelflife.services.inspection import compliance_report

    with _errors():
        when = _instant(as_of, "--as-of")
        rows = _with_app(home, lambda a: compliance_report(a, when), when)
        if as_json:
            _print_json({"overdue": len(rows), "customers": [r.__dict__ for r in rows]})
        elif rows:
            table = Table(title=f"{len(rows)} buyer(s) past the 30-day limit")
            for col in ("shop", "customer", "orders", "oldest shipment", "reasons"):
                table.add_column(col, overflow="fold")  # never cut an order number short
            for r in rows:
                table.add_row(
                    r.shop,
                    str(r.customer_id),
                    ", ".join(r.orders),
                    r.oldest_closed_at or "-",
                    "; ".join(r.reasons),
                )
            out.print(table)
        else:
            out.print("compliant: no Amazon buyer's data is kept past the limit")
        if rows:
            raise typer.Exit(1)


@feature_app.command("enable")
def feature_enable(
    shop: Annotated[str, typer.Option("--shop", help="Shop name.")],
    user: Annotated[str, typer.Option("--user", help="Who switched it.")] = "operator",
    home: HomeOpt = None,
) -> None:
    """Enable archiving and masking for a shop (off by default). The change is recorded."""
    _set_feature(shop, True, user, home)


@feature_app.command("disable")
def feature_disable(
    shop: Annotated[str, typer.Option("--shop", help="Shop name.")],
    user: Annotated[str, typer.Option("--user", help="Who switched it.")] = "operator",
    home: HomeOpt = None,
) -> None:
    """Disable archiving and masking for a shop. The change is recorded."""
    _set_feature(shop, False, user, home)


def _set_feature(shop: str, enabled: bool, user: str, home: Path | None) -> None:
    from shelflife.services.shops import set_feature

    with _errors():
        changed = _with_app(home, lambda a: set_feature(a, shop, enabled, user))
        word = "enabled" if enabled else "disabled"
        out.print(
            f"retention {word} for shop {shop}" + ("" if changed else " (already)"), highlight=False
        )


@shop_app.command("list")
def shop_list(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List shops with their time zone, Amazon pattern and feature state."""
    from shelflife.services.shops import list_shops

    with _errors():
        shops = _with_app(home, list_shops)
        if as_json:
            _print_json([s.__dict__ for s in shops])
            return
        table = Table()
        for col in ("shop", "time zone", "Amazon order pattern", "retention"):
            table.add_column(col)
        for s in shops:
            table.add_row(
                s.name,
                s.time_zone,
                s.amazon_order_pattern,
                "enabled" if s.retention_enabled else "disabled",
            )
        out.print(table)


@shop_app.command("set")
def shop_set(
    shop: Annotated[str, typer.Argument(help="Shop name.")],
    time_zone: Annotated[str | None, typer.Option("--time-zone", help="IANA zone.")] = None,
    amazon_pattern: Annotated[
        str | None,
        typer.Option("--amazon-pattern", help="Regex for Amazon order numbers (future imports)."),
    ] = None,
    home: HomeOpt = None,
) -> None:
    """Change a shop's time zone or Amazon order-number pattern."""
    from shelflife.services.shops import configure_shop

    with _errors():
        _with_app(home, lambda a: configure_shop(a, shop, time_zone, amazon_pattern))
        out.print(f"shop {shop} updated", highlight=False)


@app.command()
def demo(
    home: Annotated[Path, typer.Option("--home", help="Folder for the demo's data.")] = Path(
        "demo-home"
    ),
    fresh: Annotated[bool, typer.Option("--fresh", help="Delete the folder first.")] = False,
    customers: Annotated[
        int, typer.Option("--customers", min=10, max=100_000, help="Fake buyers to generate.")
    ] = 400,
    nights: Annotated[
        int, typer.Option("--nights", min=31, max=400, help="Nights to simulate.")
    ] = 90,
) -> None:
    """Generate realistic fake orders, enable retention and simulate nights of runs."""
    from shelflife.services.demo import run_demo

    with _errors():
        run_demo(home, fresh=fresh, customers=customers, nights=nights, console=out)


def main() -> None:
    app()
