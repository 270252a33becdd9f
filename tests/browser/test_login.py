"""Signing in and out in a real browser."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from shelflife.bootstrap import App
from shelflife.services.accounts import add_user
from tests.browser.conftest import screenshot

PASSWORD = "correct horse battery"


def test_an_agent_logs_in_with_the_labelled_fields_and_logs_out(
    page: Page, base_url: str, shelflife_app: App
) -> None:
    add_user(shelflife_app, "anna", "agent", PASSWORD, "test")
    page.goto(base_url + "/")
    expect(page).to_have_url(base_url + "/login")
    page.get_by_label("User name").fill("anna")
    page.get_by_label("Password").fill(PASSWORD)
    screenshot(page, "login")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Signed in as anna")
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(base_url + "/login")
    page.goto(base_url + "/")
    expect(page).to_have_url(base_url + "/login")


def test_a_wrong_password_shows_an_alert_and_keeps_the_user_name(
    page: Page, base_url: str, shelflife_app: App
) -> None:
    add_user(shelflife_app, "anna", "agent", PASSWORD, "test")
    page.goto(base_url + "/login")
    page.get_by_label("User name").fill("anna")
    page.get_by_label("Password").fill("not the password")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("User name or password is wrong")
    expect(page.get_by_label("User name")).to_have_value("anna")
    screenshot(page, "login-refused")
