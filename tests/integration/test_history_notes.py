"""Customer history notes on SQLite and PostgreSQL: added with user and time, audited without
their text, refused while the buyer's data is masked, and masked again with the rest."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from shelflife.adapters.db.tables import AuditLogEntry, Customer, CustomerHistory
from shelflife.bootstrap import App
from shelflife.domain.errors import Conflict, InvalidInput, UnknownOrder
from shelflife.domain.masking import MASKED_TEXT
from shelflife.services.history import add_note
from shelflife.services.importing import import_lines
from shelflife.services.inspection import show_order
from shelflife.services.pipeline import run_retention
from shelflife.services.retrieval import retrieve_order
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, lines, order

NR = "302-1234567-1234567"
NOTE = "Kundin ruft wegen Rücksendung an"


def _start(app: App, **changes: Any) -> None:
    assert import_lines(app, lines(order(NR, shipped_at=T0, **changes))).refused == []
    set_feature(app.ports(), "main", True, "ops")


def _notes(app: App) -> list[tuple[str, str | None, str | None]]:
    with app.engine.connect() as conn:
        return [
            (r.event, r.user_name, r.text)
            for r in conn.execute(
                select(CustomerHistory.__table__).where(CustomerHistory.event == "note")
            )
        ]


def _revision(app: App) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(Customer.pii_revision)).scalar_one())


def test_a_note_lands_in_the_history_with_user_and_time_and_bumps_the_revision(
    app: App,
) -> None:
    _start(app)
    before = _revision(app)

    added = add_note(at(app, T0 + days(1)), NR, f"  {NOTE}  ", "anna")

    assert (added.order_nr, added.recorded_at) == (NR, T0 + days(1))
    assert show_order(app.ports(), NR, T0 + days(1)).model_dump(mode="json")["customer_history"][
        -1
    ] == {
        "recorded_at": (T0 + days(1)).isoformat(),
        "event": "note",
        "user_name": "anna",
        "text": NOTE,
    }
    assert _revision(app) == before + 1


def test_the_audit_entry_names_user_and_order_but_not_the_note_text(app: App) -> None:
    _start(app)

    add_note(app, NR, NOTE, "anna")

    with app.engine.connect() as conn:
        entry = conn.execute(
            select(AuditLogEntry.__table__).where(AuditLogEntry.action == "history.note_added")
        ).one()
    assert (entry.actor, entry.subject) == ("anna", NR)
    assert entry.detail == '{"length": 32, "shop_id": 1}'
    assert NOTE not in entry.detail


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "note: write the note (1 to 1000 characters)", id="empty"),
        pytest.param(" \n ", "note: write the note (1 to 1000 characters)", id="blank"),
        pytest.param(
            "x" * 1001,
            "note: the note has 1001 characters; at most 1000 are allowed",
            id="1001-chars",
        ),
    ],
)
def test_a_note_outside_1_to_1000_characters_is_refused(app: App, text: str, message: str) -> None:
    _start(app)

    with pytest.raises(InvalidInput) as refused:
        add_note(app, NR, text, "anna")

    assert str(refused.value) == message
    assert _notes(app) == []


def test_a_note_of_1000_characters_is_kept_whole(app: App) -> None:
    _start(app)

    add_note(app, NR, "x" * 1000, "anna")

    assert _notes(app) == [("note", "anna", "x" * 1000)]


def test_a_note_is_refused_while_the_buyer_is_masked_and_allowed_after_retrieval(
    app: App,
) -> None:
    _start(app)
    run_retention(app.ports(), T0 + days(30))

    with pytest.raises(Conflict) as refused:
        add_note(at(app, T0 + days(31)), NR, NOTE, "anna")

    assert str(refused.value) == (
        f"the customer history of order {NR!r} is masked; retrieve the order before adding a note"
    )
    assert _notes(app) == []
    retrieve_order(at(app, T0 + days(32)).ports(), NR, "Rücksendung", "anna")
    add_note(app, NR, NOTE, "anna")
    assert _notes(app) == [("note", "anna", NOTE)]


def test_a_note_added_after_archiving_is_archived_and_masked_with_the_buyer(app: App) -> None:
    _start(app)
    run_retention(app.ports(), T0 + days(29))  # archived; masking is due tomorrow
    add_note(at(app, T0 + days(29) + timedelta(hours=1)), NR, NOTE, "anna")

    report = run_retention(app.ports(), T0 + days(30))

    assert (report.archived, report.masked) == (1, 1)
    assert _notes(app) == [("note", "anna", MASKED_TEXT)]


def test_a_note_for_an_unknown_order_is_refused(app: App) -> None:
    _start(app)

    with pytest.raises(UnknownOrder):
        add_note(app, "999-9999999-9999999", NOTE, "anna")
