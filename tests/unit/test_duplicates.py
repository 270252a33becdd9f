"""The duplicate rule and the merge guard, without a database."""

from __future__ import annotations

import pytest

from shelflife.domain.duplicates import MergeCandidate, PersonFields, check_merge, duplicate_key
from shelflife.domain.errors import Conflict, InvalidInput

ERIKA = PersonFields("Erika", "Mustermann", "Köln", "51147", "Musterfirma GmbH")


def test_spaces_around_values_do_not_matter_but_case_does() -> None:
    padded = PersonFields(" Erika ", "Mustermann ", " Köln", "51147", " Musterfirma GmbH ")
    assert duplicate_key(padded) == duplicate_key(ERIKA)
    assert duplicate_key(PersonFields("erika", "Mustermann", "Köln", "51147", None)) != (
        duplicate_key(PersonFields("Erika", "Mustermann", "Köln", "51147", None))
    )


def test_a_missing_company_is_a_value_like_any_other() -> None:
    assert duplicate_key(PersonFields("Erika", "Mustermann", "Köln", "51147", None)) == (
        "Erika",
        "Mustermann",
        "Köln",
        "51147",
        "",
    )


@pytest.mark.parametrize(
    "person",
    [
        PersonFields(None, "Mustermann", "Köln", "51147", None),
        PersonFields("Erika", "  ", "Köln", "51147", None),
        PersonFields("Erika", "Mustermann", "", "51147", None),
        PersonFields("Erika", "Mustermann", "Köln", None, None),
        PersonFields("***", "***", "***", "***", None),
        PersonFields("Erika", "Mustermann", "Köln", "51147", "***"),
        PersonFields("Erika", "masked@masked.invalid", "Köln", "51147", None),
        PersonFields("Amazon Business", "EU SARL", "Luxembourg", "2338", None),
        PersonFields("Erika", "Mustermann", "Luxembourg", "2338", "AMAZON BUSINESS EU SARL"),
    ],
)
def test_records_that_can_never_be_anyones_duplicate(person: PersonFields) -> None:
    assert duplicate_key(person) is None


def _candidate(cid: int, **changes: object) -> MergeCandidate:
    values: dict[str, object] = {
        "customer_id": cid,
        "shop_id": 1,
        "channel": "amazon",
        "archived": False,
        "masked": False,
    } | changes
    return MergeCandidate(**values)  # type: ignore[arg-type]


def test_merge_guard() -> None:
    check_merge(_candidate(1), _candidate(2))
    with pytest.raises(InvalidInput, match="two different customers"):
        check_merge(_candidate(1), _candidate(1))
    with pytest.raises(Conflict, match="customer C2 is archived"):
        check_merge(_candidate(1), _candidate(2, archived=True))
    with pytest.raises(Conflict, match="customer C1 is archived"):
        check_merge(_candidate(1, masked=True), _candidate(2))
    with pytest.raises(Conflict, match="different shops"):
        check_merge(_candidate(1), _candidate(2, shop_id=2))
    with pytest.raises(Conflict, match="shop customer"):
        check_merge(_candidate(1), _candidate(2, channel="shop"))
