"""A shelflife installation an API test can call: a masked order, an open one, a user of each
role with a token (and a disabled user's token), the clock a few days after the masking run."""

from __future__ import annotations

import json
from dataclasses import dataclass

from shelflife.bootstrap import App
from shelflife.services.accounts import add_user, create_token, disable_user
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import run_retention
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, order

MASKED_NR = "302-1234567-1234567"
MASKED_INVOICE = f"RE-{MASKED_NR}"
OPEN_NR = "302-7654321-7654321"
OPEN_EMAIL = "erika.mustermann-o@example.org"
NOW = T0 + days(35)
PASSWORD = "correct horse battery"
ROLES = ("agent", "support", "admin")


@dataclass(frozen=True)
class Installation:
    tokens: dict[str, str]
    """Role (or "disabled") -> its bearer token."""

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


def masked_order_line() -> str:
    return json.dumps(order(MASKED_NR, shipped_at=T0, invoiced_at=T0), ensure_ascii=False)


def open_order_line() -> str:
    data = order(OPEN_NR, suffix="-o")
    data["customer"]["email"] = data["billing_address"]["email"] = OPEN_EMAIL
    return json.dumps(data, ensure_ascii=False)


def seed(app: App) -> Installation:
    report = import_lines(app, [masked_order_line(), open_order_line()])
    assert report.refused == []
    set_feature(app.ports(), "main", True, "setup")
    assert run_retention(app.ports(), T0 + days(31)).masked == 1
    tokens = {}
    for role in ROLES:
        add_user(app, role, role, PASSWORD, "setup")
        tokens[role] = create_token(app, role, "setup").token
    add_user(app, "gone", "admin", PASSWORD, "setup")
    tokens["disabled"] = create_token(app, "gone", "setup").token
    assert disable_user(app, "gone", "setup")
    at(app, NOW)
    return Installation(tokens)
