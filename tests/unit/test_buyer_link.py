"""The buyer link: what links a buyer's records across masking, and what never does."""

from __future__ import annotations

import hashlib

import pytest

from shelflife.domain.buyer_link import LINK_DOMAIN, buyer_link, is_relay_email, link_key


def _digest(text: str) -> str:
    return hashlib.sha256(b"test-key|" + text.encode()).hexdigest()


def test_marketplace_buyer_id_links_before_any_e_mail() -> None:
    assert link_key(" A1B2C3D4E5F6G7 ", ("x1y2@marketplace.amazon.de",)) == "id|a1b2c3d4e5f6g7"


def test_relay_e_mail_links_when_there_is_no_buyer_id() -> None:
    assert (
        link_key(None, (None, "Z9Y8X7@Marketplace.Amazon.DE"))
        == "relay|z9y8x7@marketplace.amazon.de"
    )
    assert link_key("", ("q1@marketplace.amazon.co.uk",)) == "relay|q1@marketplace.amazon.co.uk"


@pytest.mark.parametrize(
    "buyer_id",
    [None, "", "   ", "***", "masked@masked.invalid", "1900-01-01", "Amazon Business EU SARL"],
)
def test_placeholders_and_shared_identities_never_link(buyer_id: str | None) -> None:
    assert link_key(buyer_id, (None,)) is None


@pytest.mark.parametrize(
    "email",
    [
        "invoicing@amazon.de",  # a shared address of Amazon-invoiced business orders
        "erika@example.org",  # a real address: not what the marketplace identifies
        "masked@masked.invalid",
        "x@marketplace.amazon.de.evil.example",
        "x@notmarketplace.amazon.de",
        "",
    ],
)
def test_only_amazon_relay_addresses_link(email: str) -> None:
    assert link_key(None, (email,)) is None
    assert is_relay_email(email) is False


def test_link_is_a_keyed_digest_under_its_own_domain_prefix() -> None:
    link = buyer_link(_digest, "A1B2", ())

    assert link == _digest(f"{LINK_DOMAIN}|id|a1b2")
    assert link != _digest("amazon|a1b2")  # never equal to the buyer's identity digest
    assert buyer_link(_digest, None, ("nobody@example.org",)) is None
