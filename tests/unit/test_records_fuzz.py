"""Whatever a seller's export contains, parsing ends in a record or a RecordError, never a crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shelflife.domain.records import ManualDocumentRecord, OrderRecord, RecordError, parse_record
from tests.support.builders import order

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [*order().keys(), "type", "customer_of_order", "invoice_nr", "credit_nr", "total"]


def _parses_or_explains(obj: Any) -> None:
    problems: list[str] | None = None
    try:
        result = parse_record(obj)
    except RecordError as exc:
        problems = exc.problems
    if problems is None:
        assert isinstance(result, OrderRecord | ManualDocumentRecord)
    else:  # every problem names a field path, then what is wrong
        assert problems
        assert all(isinstance(p, str) and ": " in p for p in problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value_parses_or_is_refused_with_reasons(value: Any) -> None:
    _parses_or_explains(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8))
def test_a_valid_order_with_fields_replaced_by_junk_parses_or_is_refused(
    junk: dict[str, Any],
) -> None:
    _parses_or_explains({**order(shipped_at=None), **junk})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["customer", "billing_address", "shipping_address", "payment"]),
    st.dictionaries(st.text(max_size=15), json_values, max_size=5),
)
def test_nested_sections_with_junk_parse_or_are_refused(section: str, junk: dict[str, Any]) -> None:
    data = order()
    data[section] = {**data[section], **junk}
    _parses_or_explains(json.loads(json.dumps(data)))
