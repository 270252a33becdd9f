"""Measure the run's reclaim step: what it leaves of masked PII, what it costs, what it locks.

    .venv/bin/python bench/reclaim.py --customers 100000 --backend both

For each backend: a fresh home, `shelflife init`, `import` and `feature enable` through the CLI
(bench/run_backlog.py's harness), then, for each mechanism, a copy of the imported database on
which the nightly run (archive and mask of the whole backlog) runs in-process with its reclaim
step swapped for the mechanism and timed on its own:

- `before`: what the run did before this benchmark (SQLite: a TRUNCATE WAL checkpoint;
  PostgreSQL: VACUUM of the PII tables);
- `now`: what it does now, the real code path (SQLite: a TRUNCATE checkpoint and the pass
  that zeroes unused bytes in place, adapters/db/sqlite_scrub.py; until round 11 a VACUUM;
  PostgreSQL: VACUUM FULL of each PII table, advisory locks included).

After each run: the database size before and after the reclaim, and how many masked buyers'
e-mail addresses and card numbers can still be read in the raw database files (SQLite: the file
and its -wal; PostgreSQL: the database's folder under base/ after a CHECKPOINT). The e-mail
addresses of the unmasked orders are counted too: they must all be found, or the scan is blind.

The PostgreSQL cluster runs with durable settings (fsync, full_page_writes, synchronous_commit
on) on the disk (not tmpfs), as a production server would; see bench/README.md.
Results: bench/out/reclaim-<N>.json (entries of other backends or mechanisms are kept).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, text

from generate import DEFAULT_DAYS, DEFAULT_START, OUT_DIR, ensure_orders, make_spec, positive_int
from run_backlog import DEFAULT_AS_OF, REPO_ROOT, BenchError, Shelflife, child_env, machine
from shelflife.adapters.db import reclaim
from shelflife.adapters.db.tables import PII_TABLES
from shelflife.bootstrap import App, build_app
from shelflife.config import load_settings
from shelflife.services.pipeline import run_retention

if TYPE_CHECKING:
    from tests.support.pg_cluster import PostgresCluster

BACKENDS = ("sqlite", "postgresql")
MECHANISMS = ("before", "now")
DURABLE = {"fsync": "on", "full_page_writes": "on", "synchronous_commit": "on"}
EMAIL = re.compile(rb"@example\.(?:org|com|net)")
DIGITS = re.compile(rb"[0-9]{13,}")

console = Console(width=None if sys.stdout.isatty() else 160)


@dataclass
class Measurement:
    backend: str
    mechanism: str
    customers: int
    masked: int = 0
    run_seconds: float = 0.0  # the whole run, reclaim included
    reclaim_seconds: float = 0.0
    locks: dict[str, float] = field(default_factory=dict)  # what was locked, seconds
    warnings: list[str] = field(default_factory=list)  # the reclaim's own warnings
    size_before_mb: float = 0.0  # database (and WAL) just before the reclaim
    size_after_mb: float = 0.0
    masked_buyers: int = 0  # distinct e-mail addresses of masked orders
    masked_emails_found: int = 0
    masked_cards: int = 0
    masked_cards_found: int = 0
    unmasked_emails: int = 0
    unmasked_emails_found: int = 0
    scanned_mb: float = 0.0
    scan_seconds: float = 0.0
    load_average: list[float] = field(default_factory=list)
    measured_at: str = ""
    machine: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Database:
    """Where one mechanism's copy lives and how to read its files."""

    url: str
    files: Callable[[], dict[str, Path]]
    size: Callable[[Engine], int]  # bytes


# -- the data: which e-mail addresses and card numbers belong to which order ------------------


@dataclass
class OrderPii:
    emails: set[bytes]
    cards: set[bytes]


def read_order_pii(path: Path) -> dict[tuple[str, str], OrderPii]:
    """(shop, order number) -> the e-mail addresses and card number of that order's line."""
    found: dict[tuple[str, str], OrderPii] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            o = json.loads(line)
            emails = {
                str(part["email"]).encode()
                for part in (o.get("customer"), o.get("billing_address"), o.get("shipping_address"))
                if part and part.get("email")
            }
            card = (o.get("payment") or {}).get("card_nr")
            found[(o["shop"], o["order_nr_external"])] = OrderPii(
                emails, {str(card).encode()} if card else set()
            )
    return found


class Finder:
    """Finds which of a set of known values occur in raw bytes, in one pass per pattern.

    Values in a database file are not delimited (an SQLite record puts them side by side, a
    PostgreSQL varlena header can look like a letter), so a match is never taken as it is:
    each candidate is checked against the known values that end where it ends.
    """

    def __init__(self, emails: set[bytes], cards: set[bytes]) -> None:
        self.tail = min((e.index(b"@") for e in emails), default=1)
        self.emails: dict[bytes, list[bytes]] = {}
        for e in emails:
            self.emails.setdefault(e[e.index(b"@") - self.tail :], []).append(e)
        self.cards = cards
        self.card_lengths = sorted({len(c) for c in cards})

    def emails_in(self, data: bytes) -> set[bytes]:
        found: set[bytes] = set()
        for match in EMAIL.finditer(data):
            end = match.end()
            for known in self.emails.get(data[match.start() - self.tail : end], ()):
                if data[end - len(known) : end] == known:
                    found.add(known)
        return found

    def cards_in(self, data: bytes) -> set[bytes]:
        found: set[bytes] = set()
        for run in DIGITS.findall(data):
            for length in self.card_lengths:
                for i in range(len(run) - length + 1):
                    if run[i : i + length] in self.cards:
                        found.add(run[i : i + length])
        return found


# -- backends ------------------------------------------------------------------------------------


@contextmanager
def cluster_for(backend: str) -> Iterator[PostgresCluster | None]:
    if backend != "postgresql":
        yield None
        return
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.support.pg_cluster import PostgresCluster

    parent = OUT_DIR / "pg"
    parent.mkdir(parents=True, exist_ok=True)
    cluster = PostgresCluster(parent_dir=parent, settings=DURABLE)
    try:
        cluster.start()
    except RuntimeError as exc:
        raise BenchError(str(exc)) from None
    try:
        yield cluster
    finally:
        cluster.stop()


def sqlite_copy(home: Path, template: Path) -> Database:
    db = home / "shelflife.db"
    for old in home.glob("shelflife.db*"):
        old.unlink()
    shutil.copyfile(template, db)

    def files() -> dict[str, Path]:
        return {p.name: p for p in home.glob("shelflife.db*") if p.is_file()}

    def size(_engine: Engine) -> int:
        return sum(p.stat().st_size for p in files().values() if not p.name.endswith("-shm"))

    return Database(f"sqlite:///{db}", files, size)


def postgres_copy(cluster: PostgresCluster, template: str, name: str) -> Database:
    cluster.drop_database(name)
    url = cluster.create_database(name, template=template)

    def files() -> dict[str, Path]:
        cluster.checkpoint()
        folder = cluster.database_dir(name)
        return {p.name: p for p in folder.iterdir() if p.is_file()}

    def size(engine: Engine) -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
            )

    return Database(url, files, size)


def before_reclaim(engine: Engine, tables: list[str]) -> None:
    """What the run did before: a checkpoint (SQLite) or a plain VACUUM (PostgreSQL)."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
        finally:
            raw.close()
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in tables:
            conn.exec_driver_sql(f'VACUUM "{name}"')


class LockLog(logging.Handler):
    """Collects the reclaim's own log lines: what it locked and for how long."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.locks: dict[str, float] = {}
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.warnings.append(record.getMessage())
            return
        args = record.args if isinstance(record.args, tuple) else ()
        numbers = [float(a) for a in args if isinstance(a, float | int)]
        if record.msg.startswith("reclaim: VACUUM FULL"):
            self.locks[str(args[0])] = round(numbers[0], 2)
        elif record.msg.startswith("reclaim: VACUUM"):
            self.locks["VACUUM"] = round(numbers[0], 2)
            self.locks["checkpoint"] = round(numbers[1], 2)
        elif "pages zeroed" in record.msg:  # SQLite's pass: pages, of pages, bytes, seconds
            self.locks["pass"] = round(numbers[3], 2)


def measure(
    app: App, db: Database, as_of: datetime, m: Measurement, orders: dict[tuple[str, str], OrderPii]
) -> None:
    original = reclaim.RunLock.reclaim_if_needed
    tables = list(PII_TABLES)

    def timed(self: reclaim.RunLock, run_id: int, masked: bool, names: list[str]) -> None:
        m.size_before_mb = round(db.size(app.engine) / 2**20, 1)
        began = time.perf_counter()
        if m.mechanism == "now":
            original(self, run_id, masked, names)
        else:
            before_reclaim(self.engine, tables)
        m.reclaim_seconds = round(time.perf_counter() - began, 2)

    handler = LockLog()
    logger = logging.getLogger("shelflife.adapters.db.reclaim")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    load = os.getloadavg()[0]
    began = time.perf_counter()
    try:
        with mock.patch.object(reclaim.RunLock, "reclaim_if_needed", timed):
            report = run_retention(app.ports(), as_of)
    finally:
        logger.removeHandler(handler)
    m.run_seconds = round(time.perf_counter() - began, 1)
    m.load_average = [round(load, 2), round(os.getloadavg()[0], 2)]
    m.masked = report.masked
    m.locks = handler.locks
    m.warnings = handler.warnings
    m.size_after_mb = round(db.size(app.engine) / 2**20, 1)

    with app.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT s.name, o.order_nr_external, o.masked_at IS NOT NULL FROM orders o "
                "JOIN shops s ON s.id = o.shop_id"
            )
        ).all()
    masked_emails: set[bytes] = set()
    masked_cards: set[bytes] = set()
    unmasked_emails: set[bytes] = set()
    for shop, nr, is_masked in rows:
        pii = orders[(shop, nr)]
        if is_masked:
            masked_emails |= pii.emails
            masked_cards |= pii.cards
        else:
            unmasked_emails |= pii.emails
    app.close()  # SQLite: what an attacker finds after the process ended

    began = time.perf_counter()
    finder = Finder(masked_emails | unmasked_emails, masked_cards)
    emails: set[bytes] = set()
    cards: set[bytes] = set()
    scanned = 0
    for path in db.files().values():
        data = path.read_bytes()
        scanned += len(data)
        emails |= finder.emails_in(data)
        cards |= finder.cards_in(data)
    m.scan_seconds = round(time.perf_counter() - began, 1)
    m.scanned_mb = round(scanned / 2**20, 1)
    m.masked_buyers = len(masked_emails)
    m.masked_emails_found = len(masked_emails & emails)
    m.masked_cards = len(masked_cards)
    m.masked_cards_found = len(masked_cards & cards)
    m.unmasked_emails = len(unmasked_emails)
    m.unmasked_emails_found = len(unmasked_emails & emails)


def bench_backend(
    backend: str, customers: int, as_of: datetime, mechanisms: list[str], keep: bool
) -> list[Measurement]:
    spec = make_spec(customers, DEFAULT_START, DEFAULT_DAYS, seed=1)
    data = ensure_orders(spec)
    console.print(f"{backend}: reading {data.path} for the scan", highlight=False)
    orders = read_order_pii(data.path)
    home = OUT_DIR / f"reclaim-{backend}-{customers}"
    shutil.rmtree(home, ignore_errors=True)
    results: list[Measurement] = []
    try:
        with cluster_for(backend) as cluster:
            extra = {}
            template_db = f"reclaim_template_{customers}"
            if cluster is not None:
                extra["SHELFLIFE_DATABASE_URL"] = cluster.create_database(template_db)
            cli = Shelflife(child_env(home, extra))
            console.print(f"{backend}: init, import {data.contents.orders} orders")
            cli("init")
            began = time.perf_counter()
            cli("import", str(data.path), "--json")
            console.print(f"{backend}: imported in {time.perf_counter() - began:.0f} s")
            for shop in [s["name"] for s in cli("shop", "list", "--json").json()]:
                cli("feature", "enable", "--shop", shop)
            template = home / "template.db"
            if cluster is None:
                shutil.copyfile(home / "shelflife.db", template)
            for mechanism in mechanisms:
                m = Measurement(
                    backend,
                    mechanism,
                    customers,
                    measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
                    machine=machine(),
                )
                if cluster is None:
                    db = sqlite_copy(home, template)
                else:
                    db = postgres_copy(cluster, template_db, f"reclaim_{mechanism}_{customers}")
                os.environ["SHELFLIFE_DATABASE_URL"] = db.url
                try:
                    app = build_app(load_settings(home))
                finally:
                    del os.environ["SHELFLIFE_DATABASE_URL"]
                console.print(f"{backend}/{mechanism}: run as of {as_of.isoformat()}")
                measure(app, db, as_of, m, orders)
                results.append(m)
                show([m])
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)
    return results


def show(results: list[Measurement]) -> None:
    table = Table(title="reclaim step after masking a backlog")
    for name in (
        "backend",
        "mechanism",
        "N",
        "masked",
        "run s",
        "reclaim s",
        "longest lock s",
        "size before MB",
        "size after MB",
        "masked e-mails left",
        "masked cards left",
        "unmasked e-mails found",
    ):
        table.add_column(name, justify="left" if name in ("backend", "mechanism") else "right")
    for m in results:
        table.add_row(
            m.backend,
            m.mechanism,
            str(m.customers),
            str(m.masked),
            f"{m.run_seconds:.0f}",
            f"{m.reclaim_seconds:.1f}",
            longest(m),
            f"{m.size_before_mb:.0f}",
            f"{m.size_after_mb:.0f}",
            f"{m.masked_emails_found}/{m.masked_buyers}",
            f"{m.masked_cards_found}/{m.masked_cards}",
            f"{m.unmasked_emails_found}/{m.unmasked_emails}",
        )
    console.print(table)


def longest(m: Measurement) -> str:
    """The longest single lock the reclaim held, and on what."""
    if not m.locks:
        return "-"
    name, seconds = max(m.locks.items(), key=lambda item: item[1])
    return f"{seconds:.1f} ({name})"


def save(results: list[Measurement], customers: int) -> Path:
    path = OUT_DIR / f"reclaim-{customers}.json"
    entries: list[dict[str, Any]] = []
    if path.is_file():
        done = {(m.backend, m.mechanism) for m in results}
        old = json.loads(path.read_text(encoding="utf-8"))
        entries = [e for e in old if (e.get("backend"), e.get("mechanism")) not in done]
    entries += [vars(m) for m in results]
    path.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--customers", type=positive_int, required=True, help="buyers (N)")
    parser.add_argument("--backend", choices=(*BACKENDS, "both"), default="both")
    parser.add_argument(
        "--mechanism",
        choices=(*MECHANISMS, "both"),
        default="both",
        help="before (the old step) or now (the real one); both by default",
    )
    parser.add_argument("--as-of", default=DEFAULT_AS_OF, help="instant of the run")
    parser.add_argument("--keep", action="store_true", help="keep bench/out/reclaim-<backend>-N/")
    args = parser.parse_args(argv)
    as_of = datetime.fromisoformat(args.as_of)
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    mechanisms = list(MECHANISMS) if args.mechanism == "both" else [args.mechanism]
    results: list[Measurement] = []
    try:
        for backend in backends:
            results += bench_backend(backend, args.customers, as_of, mechanisms, args.keep)
    except BenchError as exc:
        console.print(f"failed: {exc}", highlight=False, markup=False)
        return 1
    finally:
        if results:
            show(results)
            console.print(f"results: {save(results, args.customers)}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
