"""`CustomerSnapshot.add_values` (the nightly run's fast path, values by position) builds
exactly the snapshot `add` (values by name) builds, placeholders and empties included."""

from __future__ import annotations

from datetime import date

import pytest

from shelflife.domain.masking import MASK_PROFILE, MASKED_DATE, MASKED_EMAIL, MASKED_TEXT
from shelflife.domain.snapshot import COLUMNS, CustomerSnapshot


class Text(str):
    """A str subclass, as some drivers return: archived as plain text."""


ODD_VALUES: list[object] = [
    None,
    "",
    " ",
    "Erika",
    "Ünïcødé ✓ \u202e",
    MASKED_TEXT,
    MASKED_EMAIL,
    MASKED_DATE.isoformat(),
    MASKED_DATE,
    date(1980, 5, 1),
    "1980-05-01",
    "***x",
    Text("Köln"),
    12345,
]


@pytest.mark.parametrize("table", sorted(MASK_PROFILE))
def test_values_by_position_give_the_same_row_and_bytes_as_values_by_name(table: str) -> None:
    columns = COLUMNS[table]
    assert columns == tuple(f.column for f in MASK_PROFILE[table])
    for shift in range(len(ODD_VALUES)):
        values = [ODD_VALUES[(i + shift) % len(ODD_VALUES)] for i in range(len(columns))]
        by_name, by_position = CustomerSnapshot(7, 3), CustomerSnapshot(7, 3)

        by_name.add(table, 11, dict(zip(columns, values, strict=True)))
        by_position.add_values(table, 11, values)

        assert by_position.rows == by_name.rows
        assert by_position.to_bytes() == by_name.to_bytes()
        assert all(type(v) is str or v is None for v in by_position.rows[table][11].values())


def test_placeholders_of_each_kind_are_left_out_by_position() -> None:
    snap = CustomerSnapshot(7, 3)
    values: list[object] = [None] * len(COLUMNS["customers"])
    index = COLUMNS["customers"].index
    values[index("last_name")] = MASKED_TEXT
    values[index("email")] = MASKED_EMAIL
    values[index("birth_date")] = MASKED_DATE
    values[index("first_name")] = "Erika"

    snap.add_values("customers", 7, values)

    row = snap.rows["customers"][7]
    assert ("last_name" in row, "email" in row, "birth_date" in row) == (False, False, False)
    assert (row["first_name"], row["name"]) == ("Erika", None)


def test_a_row_with_a_missing_value_is_refused() -> None:
    with pytest.raises(ValueError, match="shorter"):
        CustomerSnapshot(7, 3).add_values("customers", 7, ["Erika"])
