"""Shop settings refuse bad values with messages that name the field, not a CLI flag: the
web app and the API show the same text. On SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from shelflife.bootstrap import App
from shelflife.domain.errors import InvalidInput
from shelflife.services.importing import import_lines
from shelflife.services.shops import configure_shop, ship_order
from tests.support.builders import T0, at, days, order


@pytest.mark.parametrize(
    ("time_zone", "pattern", "message"),
    [
        pytest.param(
            "Mars/Olympus",
            None,
            "time zone: 'Mars/Olympus' is not an IANA time zone such as Europe/Berlin",
            id="time-zone",
        ),
        pytest.param(
            None,
            "([0-9]",
            "Amazon order pattern: not a valid regular expression "
            "(missing ), unterminated subpattern at position 0)",
            id="pattern",
        ),
        pytest.param(
            None,
            r"(?u)^\d{3}-\d{7}-\d{7}$",
            "Amazon order pattern: not a valid regular expression "
            "(ASCII and UNICODE flags are incompatible)",
            id="unicode-pattern",
        ),
        pytest.param(
            None,
            None,
            "nothing to change: give a time zone, an Amazon order pattern, or both",
            id="nothing",
        ),
    ],
)
def test_a_bad_shop_setting_is_refused_naming_the_field(
    app: App, time_zone: str | None, pattern: str | None, message: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        configure_shop(app.ports(), "main", time_zone, pattern)

    assert str(refused.value) == message


def test_a_shipping_time_before_the_order_time_is_refused_naming_the_field(app: App) -> None:
    nr = "303-1234567-1234567"
    assert import_lines(app, [json.dumps(order(nr, ordered_at=T0))]).refused == []

    with pytest.raises(InvalidInput) as refused:
        ship_order(at(app, T0 + days(1)).ports(), nr, T0 - days(1))

    assert str(refused.value) == "shipping time: it is before the order time"
