"""An agent creates a return on a masked order from the order page in a real browser: the form
retrieves the order by itself, and the page then shows the restored data and the return."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from shelflife.bootstrap import App
from shelflife.services.accounts import add_user
from tests.browser.conftest import screenshot
from tests.browser.test_orders import NR, _log_in, _masked_order
from tests.support.builders import pii_strings


def test_an_agent_creates_a_return_on_a_masked_order_and_sees_the_restored_data(
    page: Page, base_url: str, shelflife_app: App
) -> None:
    data = _masked_order(shelflife_app)
    add_user(shelflife_app, "anna", "agent", "correct horse battery", "setup")
    _log_in(page, base_url, "anna")
    page.goto(f"{base_url}/orders/{NR}?shop=main")
    assert all(value not in page.locator("main").inner_text() for value in pii_strings(data))

    page.locator("summary", has_text="Create return").click()
    form = page.locator("details.create-return form")
    expect(form).to_contain_text("it is retrieved first")
    page.get_by_label("Items to return").fill("BK-1:1")
    page.get_by_label("Reason for the return").fill("Griff abgebrochen")
    form.get_by_role("button", name="Create return").click()

    expect(page.get_by_role("status")).to_have_text("Return created.")
    main = page.locator("main")
    expect(main).to_contain_text("Lindenallee 3a")
    expect(main).to_contain_text("Alles Gute zum Geburtstag, Max!")
    returns = page.get_by_role("region", name="Returns")
    row = returns.get_by_role("row").filter(has_text=f"{NR}-RET1")
    expect(row).to_contain_text("1 × BK-1")
    expect(row).to_contain_text("anna")
    expect(row).to_contain_text("Griff abgebrochen")
    expect(page.get_by_role("note")).to_contain_text("by anna — read-only")
    expect(page.locator("table.history")).to_contain_text(f"Return {NR}-RET1: Griff abgebrochen")
    screenshot(page, "order-return")
