"""The typed documents name every column the services put into them, in the same order, so the
CLI's --json, the API and its OpenAPI description stay one document."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shelflife.domain.masking import MASK_PROFILE
from shelflife.domain.records import ADDRESS_KEYS
from shelflife.entrypoints.web.api import AddressChange
from shelflife.services.documents import (
    AddressDocument,
    CustomerDocument,
    FoundOrder,
    OrderDocument,
)


def _columns(table: str) -> list[str]:
    return [f.column for f in MASK_PROFILE[table]]


def test_the_customer_and_address_documents_list_the_masked_columns_in_profile_order() -> None:
    assert list(CustomerDocument.model_fields) == [
        "ref",
        "channel",
        *_columns("customers"),
        "country",
    ]
    assert list(AddressDocument.model_fields) == ["kind", *_columns("addresses"), "country"]


def test_the_order_document_carries_the_orders_masked_columns_before_the_buyer() -> None:
    fields = list(OrderDocument.model_fields)
    assert fields[fields.index("cancelled_at") + 1 : fields.index("customer")] == _columns("orders")


def test_the_api_edits_exactly_the_address_fields_the_import_knows() -> None:
    assert sorted(AddressChange.model_fields) == sorted(ADDRESS_KEYS)


def test_a_document_refuses_a_key_it_does_not_describe() -> None:
    found = {
        "order_nr_external": "1",
        "shop": "main",
        "time_zone": "UTC",
        "channel": "shop",
        "customer": "C1",
        "ordered_at": "2026-01-01T00:00:00+00:00",
        "shipped_at": None,
        "cancelled_at": None,
        "state": "active",
        "matched": "order number",
    }
    assert FoundOrder.model_validate(found).model_dump(mode="json") == found
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        FoundOrder.model_validate(found | {"email": "x"})


def test_retention_keys_shown_only_for_unmasked_amazon_orders_are_optional() -> None:
    schema = OrderDocument.model_json_schema(mode="serialization")["$defs"]["Retention"]
    assert sorted(set(schema["properties"]) - set(schema["required"])) == [
        "held_by",
        "mask_blocked_by",
    ]
