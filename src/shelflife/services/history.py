"""The customer history: notes customer service adds to a buyer's record.

A note is free text about a buyer, so it is PII: it is archived and masked with the rest of
the buyer's data, refused while that data is masked, and never copied into the audit log, which
outlives masking by a year; the audit entry records who added a note to which order, and how
long it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shelflife.adapters.db import audit_log
from shelflife.adapters.db import history as sql
from shelflife.adapters.db.reading import find_order
from shelflife.bootstrap import App
from shelflife.domain.errors import Conflict, InvalidInput

MAX_NOTE_LENGTH = 1000
NOTE_ADDED = "history.note_added"


@dataclass(frozen=True)
class NoteAdded:
    order_nr: str
    recorded_at: datetime


def validate_note(text: str) -> str:
    cleaned = text.strip()
    if not cleaned:
        raise InvalidInput(f"note: write the note (1 to {MAX_NOTE_LENGTH} characters)")
    if "\x00" in cleaned:
        raise InvalidInput("note: must not contain NUL characters")
    if len(cleaned) > MAX_NOTE_LENGTH:
        raise InvalidInput(
            f"note: the note has {len(cleaned)} characters; at most {MAX_NOTE_LENGTH} are allowed"
        )
    return cleaned


def add_note(app: App, order_nr: str, text: str, user: str, shop: str | None = None) -> NoteAdded:
    """Add a note to the history of the order's buyer, dated now and signed by `user`."""
    text = validate_note(text)
    user = user.strip()
    if not user or len(user) > 100:
        raise InvalidInput(
            "user: give the name of the person adding the note (1 to 100 characters)"
        )
    now = app.clock.now()
    with app.engine.begin() as conn:
        order = find_order(conn, order_nr, shop)
        buyer = sql.lock_buyer(conn, order.customer_id)
        if buyer.masked_at is not None and buyer.retrieved_at is None:
            raise Conflict(
                f"the customer history of order {order_nr!r} is masked; retrieve the order "
                "before adding a note"
            )
        sql.add_note(conn, buyer.customer_id, order.id, now, user, text)
        audit_log.append(
            conn, now, user, NOTE_ADDED, order_nr, {"shop_id": order.shop_id, "length": len(text)}
        )
    return NoteAdded(order_nr, now)
