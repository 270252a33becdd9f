"""`shelflife erase`, `archive recover` and `archive show` end to end on SQLite and
PostgreSQL: an erasure within legal retention exits 2 and names the document; a shredded
order's retrieval exits 2 with the date; a lost database is recovered and read back."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import create_engine, text

from shelflife.adapters.db.tables import Base
from tests.e2e.test_cli import Cli, _stdin, cli, ready
from tests.support.builders import order

__all__ = ["cli", "ready"]  # the fixtures, shared with test_cli.py

OLD_NR = "302-2015000-0000001"
OLD = datetime(2015, 1, 5, 10, tzinfo=UTC)
"""Shipped and invoiced in January 2015: its invoice's retention ended with 2025."""
NEW_NR = "302-2026000-0000001"
NEW = datetime(2026, 3, 2, 10, tzinfo=UTC)


def _masked(cli: Cli, nr: str, when: datetime, as_of: str) -> None:
    cli.ok(
        "import", "-", input=_stdin(order(nr, ordered_at=when, shipped_at=when, invoiced_at=when))
    )
    cli.ok("feature", "enable", "--shop", "main")
    assert cli.json("run", "--as-of", as_of)["masked"] == 1


def test_erase_within_legal_retention_exits_2_and_names_the_invoice(ready: Cli) -> None:
    _masked(ready, NEW_NR, NEW, "2026-04-05T02:00:00+02:00")

    refused = ready("erase", "C1", "--reason", "Art. 17 request")

    assert refused.exit_code == 2
    assert refused.output == (
        f"error: buyer C1 cannot be erased: the law keeps its invoice RE-{NEW_NR} until the end "
        "of 2036 (2 document(s) still within legal retention)\n"
    )


def test_an_erased_buyers_order_cannot_be_retrieved_and_says_when_it_was_shredded(
    ready: Cli,
) -> None:
    _masked(ready, OLD_NR, OLD, "2015-03-01T02:00:00+01:00")

    erased = ready.json("erase", "C1", "--reason", "Art. 17 request")
    retrieval = ready("retrieve", OLD_NR, "--reason", "Kunde fragt", "--user", "anna")

    shredded_on = erased["erased_at"][:10]
    assert erased["customer"] == "C1"
    assert retrieval.exit_code == 2
    assert retrieval.output == (
        f"error: order '{OLD_NR}' cannot be retrieved: its buyer's archived data was shredded "
        f"on {shredded_on} (its archive key was destroyed)\n"
    )


def test_archive_recover_rebuilds_a_lost_database_and_archive_show_reads_the_buyer(
    ready: Cli,
) -> None:
    _masked(ready, NEW_NR, NEW, "2026-04-05T02:00:00+02:00")
    engine = create_engine(ready.database_url)
    try:
        with engine.begin() as conn:  # the database is lost; archive, ledger and key remain
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE alembic_version"))
    finally:
        engine.dispose()

    ready.ok("init")
    recovered = ready.json("archive", "recover")
    shown = ready("archive", "show", "C1", "--reason", "Prüfung durch das Finanzamt")

    assert recovered == {
        "segments": 1,
        "copies_added": 1,
        "keys_found": 1,
        "shredded": 0,
        "segments_without_ledger": [],
        "failed": [],
    }
    assert shown.exit_code == 0, shown.output
    copy = json.loads(shown.stdout)["copies"][0]
    assert (copy["revision"], copy["rows"]["customers"]["1"]["last_name"]) == (1, "Mustermann")
    assert copy["rows"]["orders"]["1"]["gift_message"] == "Alles Gute zum Geburtstag, Max!"
