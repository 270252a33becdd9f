"""Support chooses the tax fields a shop keeps in a real browser: the choice is shown with its
legal basis for confirmation, and recorded only then."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from shelflife.bootstrap import App
from shelflife.services.accounts import add_user
from shelflife.services.importing import import_lines
from shelflife.services.shops import list_shops
from tests.browser.conftest import screenshot
from tests.support.builders import lines, order

PASSWORD = "correct horse battery"
BASIS = "Reverse-charge records (UStG §14a)"


def test_support_keeps_the_vat_id_after_confirming_the_legal_basis(
    page: Page, base_url: str, shelflife_app: App
) -> None:
    assert import_lines(shelflife_app, lines(order())).created == 1
    add_user(shelflife_app, "sam", "support", PASSWORD, "setup")
    page.goto(base_url + "/login")
    page.get_by_label("User name").fill("sam")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.goto(base_url + "/shops")
    page.get_by_role("button", name="Tax fields… for main").click()
    page.get_by_role("checkbox", name="vat_id: the buyer's VAT ID").check()
    page.get_by_role("button", name="Review…").click()
    expect(page.get_by_role("alert")).to_have_text(
        "legal basis: required when keeping tax fields, e.g. the law or rule"
    )
    expect(page.get_by_role("checkbox", name="vat_id: the buyer's VAT ID")).to_be_checked()
    page.get_by_label("Legal basis").fill(BASIS)
    page.get_by_role("button", name="Review…").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Keep these tax fields for main?")
    expect(page.locator("#legal-basis")).to_have_text(BASIS)
    screenshot(page, "shop-tax-fields-confirm")
    assert list_shops(shelflife_app.ports())[0].kept_tax_fields == ()
    page.get_by_role("button", name="Record this choice").click()

    expect(page.get_by_role("status")).to_have_text("Tax fields kept for main recorded.")
    expect(page.locator("#shop-main td.tax-fields")).to_have_text(f"vat_id ({BASIS})")
    kept = list_shops(shelflife_app.ports())[0]
    assert (kept.kept_tax_fields, kept.tax_fields_basis) == (("vat_id",), BASIS)
