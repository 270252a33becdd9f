"""No masked buyer's PII survives in the database files, read byte by byte.

`test_no_pii_leaks.py` checks the table values and a few uniform buyers; this file checks the raw
files of both backends with data shaped to leave residue: a few hundred buyers, free texts from a
few characters to 2,000 (so that rows overflow SQLite pages and PostgreSQL moves them to TOAST),
PII edited after archiving and before masking, an ANALYZE (as autovacuum runs), a credit for
some, retrieved buyers re-masked, and buyers held by a young invoice beside the masked ones.
The held buyers' values must be found in the files (the search works, TOAST included), no
masked buyer's value may be.

Every PII value carries a token `Q<buyer:4><field:2><version>` (long texts one every ~50
characters), so a single regular expression finds every value, or any fragment of a long one,
in one pass over the bytes.
"""

from __future__ import annotations

import random
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shelflife.adapters.db.tables import PII_TABLES
from shelflife.bootstrap import App, build_app, initialise
from shelflife.config import Settings
from shelflife.domain.clock import FixedClock
from shelflife.domain.errors import DatabaseBusy
from shelflife.domain.masking import MASK_PROFILE, all_fields
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import RunReport, run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.builders import T0, days, iso, lines, make_app
from tests.support.pg_cluster import PostgresCluster

BUYERS = 300
HELD = frozenset(i for i in range(BUYERS) if i % 5 == 0)
"""Kept unmasked by an invoice younger than 30 days: their values must stay findable."""
EDITED = frozenset(i for i in range(BUYERS) if i % 3 == 0)
"""Imported as version "a", archived, then changed to version "b" before masking."""
WITH_CREDIT = frozenset(i for i in range(BUYERS) if i % 6 == 1)
MASKED = frozenset(range(BUYERS)) - HELD
RETRIEVED = sorted(MASKED)[:8]
"""Retrieved after masking and re-masked 30 days later: the restored values must go too."""

ARCHIVE_AS_OF = T0 + days(29)  # archive due, mask not yet
MASK_AS_OF = T0 + days(31)
RETRIEVE_AS_OF = T0 + days(32)
REMASK_AS_OF = T0 + days(63)

TOKEN = re.compile(rb"[Qq](\d{4})(\d{2})([ab])")
Token = tuple[int, int, str]

SHORT_WORDS = ("Jürgen", "Weiß", "Ødegård", "Zoë", "Łukasz", "Anne-Marie", "O'Brien", "李")
LONG_FIELDS = ("gift_message", "address_remarks", "shop_note", "note")
"""Free texts (unbounded columns) whose length varies from empty to 2,000 characters."""

FIELDS: tuple[tuple[str, str], ...] = (
    ("customer", "customer_nr_external"),
    ("customer", "salutation"),
    ("customer", "first_name"),
    ("customer", "last_name"),
    ("customer", "company"),
    ("customer", "email"),
    ("customer", "phone"),
    ("customer", "fax"),
    ("customer", "note"),
    ("billing_address", "salutation"),
    ("billing_address", "first_name"),
    ("billing_address", "last_name"),
    ("billing_address", "name2"),
    ("billing_address", "company"),
    ("billing_address", "street"),
    ("billing_address", "house_nr"),
    ("billing_address", "zip"),
    ("billing_address", "city"),
    ("billing_address", "state"),
    ("billing_address", "phone"),
    ("billing_address", "email"),
    ("shipping_address", "first_name"),
    ("shipping_address", "last_name"),
    ("shipping_address", "street"),
    ("shipping_address", "house_nr"),
    ("shipping_address", "zip"),
    ("shipping_address", "city"),
    ("payment", "card_type"),
    ("payment", "card_name"),
    ("payment", "card_nr"),
    ("payment", "account"),
    ("payment", "account_name"),
    ("payment", "iban"),
    ("order", "gift_message"),
    ("order", "address_remarks"),
    ("order", "shop_note"),
)
LONG_FIELD_CODES = frozenset(n for n, (_, key) in enumerate(FIELDS) if key in LONG_FIELDS)


def token(buyer: int, field: int, version: str) -> str:
    return f"Q{buyer:04d}{field:02d}{version}"


def size_class(buyer: int, version: str) -> int:
    """0 long (1,500-2,000 characters), 1 short, 2 medium (200-700), 3 empty; an edit moves
    each buyer to the next class, so rows grow and shrink in place."""
    return (buyer + (1 if version == "b" else 0)) % 4


def free_text(tok: str, length: int, rnd: random.Random) -> str:
    """Random letters (incompressible: stored as they are, also in TOAST) with the token every
    ~50 characters, so that any fragment of the text can be found."""
    parts: list[str] = []
    while sum(map(len, parts)) < length:
        parts.append(tok + " " + "".join(rnd.choices("abcdefghijklmnopqrstuvwxyz", k=40)) + " ")
    return "".join(parts)[:length]


def value(buyer: int, field: int, version: str, rnd: random.Random) -> str | None:
    _section, key = FIELDS[field]
    if key == "customer_nr_external":  # the buyer's identity: never edited
        return f"AMZ-{token(buyer, field, 'a')}"
    tok = token(buyer, field, version)
    if key in LONG_FIELDS:
        cls = size_class(buyer, version)
        if cls == 3:
            return None
        if cls == 1:
            return f"{rnd.choice(SHORT_WORDS)} {tok}"
        length = rnd.randint(1500, 2000) if cls == 0 else rnd.randint(200, 700)
        return free_text(tok, length, rnd)
    if key == "email":
        return f"kundin.{tok}@example.org"
    if key in ("house_nr", "zip", "card_type"):
        return tok
    if key in ("card_nr", "account", "iban"):
        return f"DE{buyer:02d}{tok}"[:34]
    return f"{rnd.choice(SHORT_WORDS)} {tok}"


def order_nr(buyer: int) -> str:
    return f"302-{buyer:07d}-{buyer + 1000:07d}"


def buyer_order(
    buyer: int, version: str, extra_invoice_at: datetime | None = None
) -> dict[str, Any]:
    rnd = random.Random(f"{buyer}-{version}")
    data: dict[str, Any] = {
        "shop": "main",
        "order_nr_external": order_nr(buyer),
        "ordered_at": iso(T0 - days(1)),
        "shipped_at": iso(T0),
        "customer": {"birth_date": "1980-05-01"},
        "billing_address": {"country": "DE"},
        "shipping_address": {"country": "DE"},
        "payment": {"card_exp": "12/29"},
        "items": [{"sku": "BK-1", "title": "Notizbuch", "qty": 1, "price": "9.99"}],
    }
    for field, (section, key) in enumerate(FIELDS):
        v = value(buyer, field, version, rnd)
        if section == "order":
            data[key] = v
        else:
            data[section][key] = v
    invoiced = T0 + days(28) if buyer in HELD else T0 + days(0.1)
    data["invoices"] = [{"invoice_nr": f"RE-{buyer}", "created_at": iso(invoiced), "total": "9.99"}]
    if extra_invoice_at is not None:
        data["invoices"].append(
            {"invoice_nr": f"RE-{buyer}-2", "created_at": iso(extra_invoice_at), "total": "1.00"}
        )
    if buyer in WITH_CREDIT:
        data["credits"] = [
            {
                "credit_nr": f"GS-{buyer}",
                "invoice_nr": f"RE-{buyer}",
                "created_at": iso(T0 + days(1)),
                "total": "9.99",
            }
        ]
    return data


def tokens_of(buyer: int, version: str) -> set[Token]:
    """The tokens of every non-empty value of this buyer's version."""
    rnd = random.Random(f"{buyer}-{version}")
    found: set[Token] = set()
    for field in range(len(FIELDS)):
        v = value(buyer, field, version, rnd)
        if v is not None:
            found.update((int(b), int(f), ver.decode()) for b, f, ver in TOKEN.findall(v.encode()))
    return found


def current_version(buyer: int) -> str:
    return "b" if buyer in EDITED else "a"


def tokens_in(files: dict[str, bytes]) -> dict[Token, set[str]]:
    """Each token found, with the files it was found in."""
    where: dict[Token, set[str]] = {}
    for name, data in files.items():
        for b, f, v in set(TOKEN.findall(data)):
            where.setdefault((int(b), int(f), v.decode()), set()).add(name)
    return where


def masked_buyers_found(found: dict[Token, set[str]], masked: frozenset[int]) -> dict[int, int]:
    """Masked buyer -> how many of its values (any version) are still in the files."""
    counts: dict[int, int] = {}
    for buyer, _field, _version in found:
        if buyer in masked:
            counts[buyer] = counts.get(buyer, 0) + 1
    return counts


# -- the database files of each backend ----------------------------------------------------------


DatabaseFiles = Callable[[], dict[str, bytes]]


@pytest.fixture
def database_files(database_url: str, request: pytest.FixtureRequest) -> Iterator[DatabaseFiles]:
    """Read every database file as raw bytes, as an attacker with the disk would.

    SQLite: the database, its -wal, -shm and any rollback journal. PostgreSQL: the database's
    folder under the cluster's `base/` (heap, TOAST, index, free-space and visibility-map files
    of its tables and of its catalog, pg_statistic included) after a CHECKPOINT has written
    every changed page to them.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        db = Path(url.database or "")

        def sqlite_files() -> dict[str, bytes]:
            files = {p.name: p.read_bytes() for p in db.parent.glob(db.name + "*") if p.is_file()}
            assert db.name in files
            return files

        yield sqlite_files
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")

    def postgres_files() -> dict[str, bytes]:
        cluster.checkpoint()
        folder = cluster.database_dir(url.database or "")
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    yield postgres_files


def toast_files(app: App) -> set[str]:
    """File names of the TOAST tables of the PII tables with long texts (PostgreSQL)."""
    if app.engine.dialect.name != "postgresql":
        return set()
    with app.engine.connect() as conn:
        paths = conn.execute(
            text(
                "SELECT pg_relation_filepath(reltoastrelid) FROM pg_class "
                "WHERE relname IN ('customers', 'orders') AND reltoastrelid <> 0"
            )
        ).scalars()
        return {Path(p).name for p in paths}


def assert_only_held_buyers_found(
    files: dict[str, bytes], masked: frozenset[int], toast: set[str]
) -> None:
    found = tokens_in(files)
    held_expected = set().union(*(tokens_of(b, current_version(b)) for b in HELD))
    missing = held_expected - set(found)
    assert missing == set(), f"{len(missing)} held values not found: the search is blind"
    if toast:  # PostgreSQL: the long texts of held buyers are found in the TOAST files too
        in_toast = {t for t, names in found.items() if names & toast}
        long_held = {t for t in held_expected if t[1] in LONG_FIELD_CODES}
        assert {t[0] for t in in_toast & long_held} == {
            b for b in HELD if size_class(b, current_version(b)) == 0
        }
    leaked = masked_buyers_found(found, masked)
    assert leaked == {}, (
        f"{len(leaked)} of {len(masked)} masked buyers have {sum(leaked.values())} values left "
        f"in {sorted({n for t, names in found.items() if t[0] in masked for n in names})}"
    )


# -- the test ------------------------------------------------------------------------------------


def test_no_masked_or_remasked_buyers_value_is_left_in_any_byte_of_the_database_files(
    database_url: str, tmp_path: Path, database_files: DatabaseFiles
) -> None:
    """Archive, edit, analyse, mask: only the held buyers' values are left. Retrieve some
    masked buyers and re-mask them 30 days later: their restored values go too."""
    app, clock = make_app(database_url, tmp_path / "home", T0)
    toast: set[str] = set()
    try:
        first = import_lines(app, lines(*(buyer_order(b, "a") for b in range(BUYERS))))
        assert (first.created, first.refused) == (BUYERS, [])
        set_feature(app.ports(), "main", True, "test")
        archived = run_retention(app.ports(), ARCHIVE_AS_OF)
        assert (archived.archived, archived.masked) == (BUYERS, 0)
        edit = import_lines(app, lines(*(buyer_order(b, "b") for b in sorted(EDITED))))
        assert (edit.updated, edit.refused) == (len(EDITED), [])

        before = tokens_in(database_files())
        everyone = set().union(*(tokens_of(b, current_version(b)) for b in range(BUYERS)))
        assert everyone - set(before) == set()  # before masking every current value is there
        with app.engine.begin() as conn:  # as autovacuum does on busy tables, at any time
            conn.exec_driver_sql("ANALYZE")

        masked = run_retention(app.ports(), MASK_AS_OF)
        assert (masked.archived, masked.masked) == (len(EDITED), len(MASKED))
        toast = toast_files(app)
        assert_only_held_buyers_found(database_files(), MASKED, toast)

        clock.instant = RETRIEVE_AS_OF
        for buyer in RETRIEVED:
            assert (
                retrieve_order(app.ports(), order_nr(buyer), "Rücksendung", "anna").restored_rows
                > 0
            )
        restored = tokens_in(database_files())
        assert {b for b, _f, _v in restored} >= set(RETRIEVED)
        still_held = [
            buyer_order(b, current_version(b), extra_invoice_at=REMASK_AS_OF - days(2))
            for b in sorted(HELD)
        ]
        assert import_lines(app, lines(*still_held)).refused == []
        remasked = run_retention(app.ports(), REMASK_AS_OF)
        assert (remasked.masked, remasked.remasked) == (0, len(RETRIEVED))
        toast = toast_files(app)
        assert_only_held_buyers_found(database_files(), MASKED, toast)
    finally:
        app.close()
    assert_only_held_buyers_found(database_files(), MASKED, toast)


@pytest.mark.postgres
def test_postgresql_gathers_no_statistics_samples_of_any_pii_column(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """ANALYZE copies samples of column values into pg_statistic, where the rewrite of the PII
    tables does not reach; every column of the masking profile must be left out of it."""
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_database("pii_statistics")
    app, _clock = make_app(url, tmp_path / "home", T0)
    try:
        with app.engine.connect() as conn:
            targets = {
                (table, column): conn.execute(
                    text(
                        "SELECT attstattarget FROM pg_attribute "
                        "WHERE attrelid = to_regclass(:table) AND attname = :column"
                    ),
                    {"table": table, "column": column},
                ).scalar_one()
                for table, fields in MASK_PROFILE.items()
                for column in (f.column for f in fields)
            }
    finally:
        app.close()
        cluster.drop_database("pii_statistics")
    assert len(targets) == len(all_fields())
    assert {key: t for key, t in targets.items() if t != 0} == {}


# -- a reclaim that could not run, and workers side by side ---------------------------------------


def varied_app(database_url: str, home: Path, lock_timeout: float = 30) -> App:
    """An installation holding every buyer (version "a", the edited ones "b"), retention on."""
    settings = Settings(home=home, database_url=database_url, lock_timeout=lock_timeout)
    initialise(settings)
    app = build_app(settings, FixedClock(T0))
    assert import_lines(app, lines(*(buyer_order(b, "a") for b in range(BUYERS)))).refused == []
    assert import_lines(app, lines(*(buyer_order(b, "b") for b in sorted(EDITED)))).refused == []
    set_feature(app.ports(), "main", True, "test")
    return app


def file_nodes(app: App) -> dict[str, int]:
    """PostgreSQL: the file node of each PII table; a rewrite (VACUUM FULL) changes it."""
    with app.engine.connect() as conn:
        return {
            name: conn.execute(text(f"SELECT pg_relation_filenode('{name}')")).scalar_one()
            for name in PII_TABLES
        }


@contextmanager
def reader_in_a_long_transaction(database_url: str) -> Iterator[None]:
    """Another session reading the buyers in an open transaction (a report, an operator's
    session): it holds a snapshot and, on PostgreSQL, a share lock on the table."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        db = sqlite3.connect(url.database or "", isolation_level=None)
        try:
            db.execute("BEGIN")
            db.execute("SELECT count(*) FROM customers").fetchone()
            yield
        finally:
            db.close()
        return
    with psycopg.connect(
        dbname=url.database,
        user=url.username,
        host=str(url.query["host"]),
        port=int(str(url.query["port"])),
    ) as pg:
        pg.execute("SELECT count(*) FROM customers").fetchone()
        yield
        pg.rollback()


def test_a_run_whose_reclaim_was_refused_has_it_done_by_the_next_run(
    database_url: str, tmp_path: Path, database_files: DatabaseFiles
) -> None:
    """The first run masks, but a reader keeps the old rows in use past the lock timeout: the
    run stops with "busy" and the old values are still on disk. The next run has nothing to
    mask, yet it reclaims, because the run before it did not finish."""
    app = varied_app(database_url, tmp_path / "home", lock_timeout=0.5)
    try:
        postgres = app.engine.dialect.name == "postgresql"
        nodes = file_nodes(app) if postgres else {}
        assert run_retention(app.ports(), ARCHIVE_AS_OF).masked == 0
        if postgres:  # nothing masked, nothing rewritten: no table locked for nothing
            assert file_nodes(app) == nodes
        with (
            reader_in_a_long_transaction(database_url),
            pytest.raises(DatabaseBusy, match="could not be removed from the database files"),
        ):
            run_retention(app.ports(), MASK_AS_OF)
        if postgres:
            assert masked_buyers_found(tokens_in(database_files()), MASKED) != {}
        second = run_retention(app.ports(), MASK_AS_OF)
        assert (second.archived, second.masked) == (0, 0)
        assert_only_held_buyers_found(database_files(), MASKED, toast_files(app))
    finally:
        app.close()


@pytest.mark.postgres
def test_workers_side_by_side_each_finish_and_leave_no_residue(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Three `shelflife run` workers claim batches with SKIP LOCKED; each one that masked
    reclaims once the others are done, none fails or waits on a rewrite mid-batch."""
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_database("residue_workers")
    first = varied_app(url, tmp_path / "home")
    workers = [first] + [
        build_app(Settings(home=first.settings.home, database_url=url, batch_size=7))
        for _ in range(2)
    ]
    first.settings.batch_size = 7
    try:
        reports: dict[int, RunReport] = {}
        failures: list[BaseException] = []
        start = threading.Barrier(len(workers))

        def work(n: int, app: App) -> None:
            start.wait()
            try:
                reports[n] = run_retention(app.ports(), MASK_AS_OF)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=work, args=(n, a)) for n, a in enumerate(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert failures == []
        assert sorted(reports) == [0, 1, 2]
        assert sum(r.masked for r in reports.values()) == len(MASKED)
        assert sum(r.archived for r in reports.values()) == BUYERS

        def files() -> dict[str, bytes]:
            cluster.checkpoint()
            folder = cluster.database_dir("residue_workers")
            return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

        assert_only_held_buyers_found(files(), MASKED, toast_files(first))
    finally:
        for app in workers:
            app.close()
        cluster.drop_database("residue_workers")
