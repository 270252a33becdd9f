"""Runs in the audit log and the audit log's purge, on SQLite and PostgreSQL: every real run
is an entry with its counts and actor, the nightly run removes entries past the retention
period, records the purge, and `verify` still finds the chain intact; two operations share
one database transaction through the unit of work."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from shelflife.adapters.db import audit_log, retention
from shelflife.bootstrap import App
from shelflife.domain.audit import AUDIT_RETENTION, PURGE_ACTION
from shelflife.domain.errors import UnknownOrder
from shelflife.domain.masking import MASKED_TEXT
from shelflife.services.audit import recent_entries, verify_audit_log
from shelflife.services.importing import import_lines
from shelflife.services.inspection import show_order
from shelflife.services.pipeline import RUN_FAILED, RUN_FINISHED, dry_run, run_retention
from shelflife.services.retrieval import RETRIEVED, retrieve_order
from shelflife.services.runs import list_runs
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, order

NIGHT = T0 + days(31)
CUTOFF = NIGHT - AUDIT_RETENTION
HOUR = timedelta(hours=1)
NUMBERS = ("302-1234567-1234560", "302-1234567-1234561")


def _seed_audit(app: App, *moments: datetime) -> None:
    with app.engine.begin() as conn:
        for i, moment in enumerate(moments):
            audit_log.append(conn, moment, "anna", RETRIEVED, f"old-{i}", {"reason": "alt"})


def _buyers(app: App) -> None:
    orders = [order(nr, shipped_at=T0, suffix=f"-{i}") for i, nr in enumerate(NUMBERS)]
    assert import_lines(app, [json.dumps(o) for o in orders]).refused == []
    set_feature(app.ports(), "main", True, "ops")


def test_a_run_is_audited_with_its_counts_and_the_actor_who_started_it(app: App) -> None:
    _buyers(app)

    run_retention(at(app, NIGHT).ports(), NIGHT, actor="ops-anna (cli)")

    entry = recent_entries(app.ports(), 1)[0]
    assert (entry.actor, entry.action, entry.at) == ("ops-anna (cli)", RUN_FINISHED, NIGHT)
    assert dict(entry.detail) == {
        "as_of": NIGHT.isoformat(),
        "shops": 1,
        "archived": 2,
        "archive_failed": 0,
        "retried": 0,
        "masked": 2,
        "remasked": 0,
        "mask_refused": 0,
        "shredded": 0,
        "verified_objects": 0,
        "integrity_problems": 0,
    }
    assert entry.subject == str(list_runs(app.ports(), 1)[0].id)
    assert verify_audit_log(app.ports()).intact


def test_a_run_that_stops_is_audited_as_failed_with_why(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    _buyers(app)

    def busy(*_args: object) -> int:
        raise UnknownOrder("x")  # any of the project's errors; its message is kept

    monkeypatch.setattr(retention, "mask_customers", busy)
    with pytest.raises(UnknownOrder):
        run_retention(at(app, NIGHT).ports(), NIGHT)

    entry = recent_entries(app.ports(), 1)[0]
    assert (entry.actor, entry.action) == ("shelflife", RUN_FAILED)
    # Nobody was masked. On SQLite the buyers are masked in their archive batch, whose
    # transaction went back with the error; on PostgreSQL the masking follows the batch's
    # commit (services.after_commit), so the 2 verified copies stand and are counted.
    archived = 2 if app.engine.dialect.name == "postgresql" else 0
    assert (entry.detail["archived"], entry.detail["masked"]) == (archived, 0)
    assert entry.detail["error"] == str(UnknownOrder("x"))


def test_a_dry_run_writes_no_audit_entry(app: App) -> None:
    _buyers(app)
    before = recent_entries(app.ports(), 50)

    assert dry_run(at(app, NIGHT).ports(), NIGHT).masked == 2

    assert recent_entries(app.ports(), 50) == before


def test_the_run_purges_only_entries_older_than_the_retention_and_records_it(app: App) -> None:
    _seed_audit(app, CUTOFF - days(30), CUTOFF - HOUR, CUTOFF + HOUR)
    removed_last = recent_entries(app.ports(), 2)[1]
    _buyers(app)

    run_retention(at(app, NIGHT).ports(), NIGHT)

    entries = list(reversed(recent_entries(app.ports(), 50)))
    assert [(e.seq, e.action, e.subject) for e in entries] == [
        (3, RETRIEVED, "old-2"),
        (4, "feature.enabled", "main"),
        (5, RUN_FINISHED, str(list_runs(app.ports(), 1)[0].id)),
        (6, PURGE_ACTION, None),
    ]
    assert entries[0].at == CUTOFF + HOUR
    assert (entries[-1].actor, entries[-1].at) == ("shelflife", NIGHT)
    assert dict(entries[-1].detail) == {
        "anchor": removed_last.hash,
        "through_seq": 2,
        "removed": 2,
        "older_than": CUTOFF.isoformat(),
    }
    check = verify_audit_log(app.ports())
    assert (check.intact, check.checked) == (True, 4)


def test_a_second_purge_anchors_on_its_own_last_removed_entry(app: App) -> None:
    _seed_audit(app, CUTOFF - HOUR, CUTOFF + HOUR)
    _buyers(app)
    run_retention(at(app, NIGHT).ports(), NIGHT)
    later = NIGHT + days(1)

    run_retention(at(app, later).ports(), later)

    entries = list(reversed(recent_entries(app.ports(), 50)))
    purges = [e for e in entries if e.action == PURGE_ACTION]
    assert [(p.detail["through_seq"], p.detail["removed"]) for p in purges] == [(1, 1), (2, 1)]
    assert entries[0].seq == 3
    assert verify_audit_log(app.ports()).intact


def test_removing_the_oldest_entries_without_a_purge_is_detected(app: App) -> None:
    _seed_audit(app, CUTOFF - HOUR, CUTOFF + HOUR)
    with app.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit_log WHERE seq = 1")

    check = verify_audit_log(app.ports())

    assert (check.intact, check.broken_at) == (False, 2)


def test_two_retrievals_share_one_database_transaction(app: App) -> None:
    _buyers(app)
    run_retention(at(app, NIGHT).ports(), NIGHT)
    ports = at(app, NIGHT + days(1)).ports()

    with ports.uow:
        for nr in NUMBERS:
            retrieve_order(ports, nr, "Rücksendung", "anna")
        ports.uow.commit()

    assert [show_order(app.ports(), nr).retention["state"] for nr in NUMBERS] == ["retrieved"] * 2


def test_when_the_second_operation_fails_the_first_is_not_committed(app: App) -> None:
    _buyers(app)
    run_retention(at(app, NIGHT).ports(), NIGHT)
    ports = at(app, NIGHT + days(1)).ports()

    def return_with_an_unknown_order() -> None:
        with ports.uow:
            retrieve_order(ports, NUMBERS[0], "Rücksendung", "anna")
            retrieve_order(ports, "999-0000000-0000000", "Rücksendung", "anna")
            ports.uow.commit()

    with pytest.raises(UnknownOrder):
        return_with_an_unknown_order()

    shown = show_order(app.ports(), NUMBERS[0]).model_dump(mode="json")
    assert (shown["retention"]["state"], shown["customer"]["last_name"]) == ("masked", MASKED_TEXT)
    assert [e.action for e in recent_entries(app.ports(), 1)] == [RUN_FINISHED]
