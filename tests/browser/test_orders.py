"""An agent finds a masked order by its invoice number and retrieves it in a real browser,
without leaving the page; support sees no personal data."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import Page, expect

from shelflife.bootstrap import App
from shelflife.services.accounts import add_user
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import run_retention
from shelflife.services.shops import set_feature
from tests.browser.conftest import screenshot
from tests.support.builders import T0, at, days, lines, order, pii_strings

PASSWORD = "correct horse battery"
NR = "302-1234567-1234567"
INVOICE = f"RE-{NR}"
REASON = "Rücksendung, Kundin ruft an"
TOO_LONG = "x" * 51


def _masked_order(app: App) -> dict[str, Any]:
    """One Amazon order with an invoice, masked 31 days after shipping; the clock 4 days on."""
    data = order(NR, shipped_at=T0, invoiced_at=T0)
    assert import_lines(app, lines(data)).refused == []
    set_feature(app.ports(), "main", True, "ops")
    assert run_retention(app.ports(), T0 + days(31)).masked == 1
    at(app, T0 + days(35))
    return data


def _log_in(page: Page, base_url: str, name: str) -> None:
    page.goto(base_url + "/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Signed in as {name}")


def test_an_agent_finds_a_masked_order_by_invoice_and_retrieves_it_on_the_same_page(
    page: Page, base_url: str, shelflife_app: App
) -> None:
    data = _masked_order(shelflife_app)
    add_user(shelflife_app, "anna", "agent", PASSWORD, "setup")
    _log_in(page, base_url, "anna")

    page.get_by_role("link", name="Orders", exact=True).click()
    search = page.get_by_label("Search")
    expect(search).to_be_focused()
    search.fill(INVOICE)
    search.press("Enter")
    expect(page.get_by_role("link", name=NR)).to_be_visible()
    expect(page.get_by_role("row").filter(has_text=NR)).to_contain_text("masked")
    screenshot(page, "orders-search")

    page.get_by_role("link", name=NR).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Order {NR}")
    body = page.locator("main").inner_text()
    assert all(value not in body for value in pii_strings(data))
    expect(page.locator(".badge.masked").first).to_have_text("masked")
    screenshot(page, "order-masked")

    url = page.url
    page.evaluate("window.shelflifeMarker = 'same page'")
    page.locator("summary", has_text="Retrieve order").focus()
    page.keyboard.press("Enter")
    reason = page.get_by_label("Reason", exact=True)
    expect(reason).to_be_focused()
    page.keyboard.type(TOO_LONG)
    expect(reason).to_have_value("x" * 50)  # the input stops at 50
    expect(page.locator("#reason-count")).to_have_text("50 / 50")
    screenshot(page, "order-retrieve-form")

    page.evaluate("document.getElementById('reason').removeAttribute('maxlength')")
    reason.fill(TOO_LONG)
    page.get_by_role("button", name="Retrieve", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text(
        "reason: the reason has 51 characters; at most 50 are allowed"
    )
    reason = page.get_by_label("Reason", exact=True)
    expect(reason).to_be_focused()
    expect(reason).to_have_value(TOO_LONG)

    reason.fill(REASON)
    expect(page.locator("#reason-count")).to_have_text(f"{len(REASON)} / 50")
    page.get_by_role("button", name="Retrieve", exact=True).click()

    expect(page.get_by_role("status")).to_have_text("Order retrieved.")
    expect(page.get_by_role("status")).to_be_focused()
    expect(page.locator("main")).to_contain_text("Lindenallee 3a")
    expect(page.locator("main")).to_contain_text("Alles Gute zum Geburtstag, Max!")
    expect(page.get_by_role("note")).to_contain_text(
        "by anna — read-only, masked again on 2026-05-06"
    )
    history = page.locator("table.history tbody tr").first
    expect(history).to_contain_text(re.compile(rf"retrieved\s*anna\s*{REASON}"))
    expect(page.locator("summary", has_text="Retrieve order")).to_have_count(0)
    assert page.evaluate("window.shelflifeMarker") == "same page"  # no navigation happened
    assert page.url == url
    screenshot(page, "order-retrieved")


def test_support_sees_no_orders_and_no_personal_data(
    page: Page, base_url: str, shelflife_app: App
) -> None:
    data = _masked_order(shelflife_app)
    add_user(shelflife_app, "sam", "support", PASSWORD, "setup")
    _log_in(page, base_url, "sam")
    expect(page.get_by_role("link", name="Orders", exact=True)).to_have_count(0)

    for path in ("/orders", f"/orders?q={INVOICE}", f"/orders/{NR}"):
        response = page.goto(base_url + path)
        assert response is not None
        assert response.status == 403
        expect(page.get_by_role("alert")).to_have_text(
            "the role 'support' may not view orders and buyers' personal data"
        )
        body = page.locator("main").inner_text()
        assert NR not in body
        assert all(value not in body for value in pii_strings(data))
