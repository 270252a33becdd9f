"""Whatever a seller's export contains, parsing ends in a record or a RecordError, never a crash."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shelflife.domain.records import (
    ManualDocumentRecord,
    OrderRecord,
    RecordError,
    parse_line,
    parse_record,
)
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


def _reads_or_explains(raw: str | bytes) -> None:
    """A raw line ends in a record or in problems that can be printed (UTF-8 encodable)."""
    problems: list[str] | None = None
    try:
        result = parse_line(raw)
    except RecordError as exc:
        problems = exc.problems
    if problems is None:
        assert isinstance(result, OrderRecord | ManualDocumentRecord)
        assert all(text.encode("utf-8") for text in _strings(dataclasses.asdict(result)))
    else:
        assert problems
        assert all(": " in p and p.encode("utf-8") for p in problems)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


# Every code point, lone surrogates and control characters included: what a JSON "\\uXXXX"
# escape can put into a string or a key.
any_text = st.text(
    alphabet=st.characters(categories=["Cs", "Cc", "L", "N", "P", "S", "Z"]), max_size=12
)
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)
VALID_LINE = json.dumps(order(), ensure_ascii=False).encode()


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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_any_bytes_read_as_a_line_parse_or_are_refused(raw: bytes) -> None:
    _reads_or_explains(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID_LINE)), st.binary(min_size=1, max_size=3)),
        min_size=1,
        max_size=4,
    )
)
def test_a_valid_line_with_bytes_spliced_in_parses_or_is_refused(
    splices: list[tuple[int, bytes]],
) -> None:
    raw = VALID_LINE
    for at, junk in splices:
        raw = raw[:at] + junk + raw[at + len(junk) :]
    _reads_or_explains(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["customer", "billing_address", "shipping_address", "payment"]),
    st.dictionaries(any_text, any_json, max_size=4),
    st.dictionaries(st.sampled_from(FIELDS), any_json, max_size=4),
)
def test_surrogates_and_control_characters_anywhere_parse_or_are_refused(
    section: str, nested_junk: dict[str, Any], top_junk: dict[str, Any]
) -> None:
    data = {**order(), **top_junk}
    if isinstance(data.get(section), dict):
        data[section] = {**data[section], **nested_junk}
    _reads_or_explains(json.dumps(data))  # ASCII-escaped: lone surrogates survive as \\udXXX
