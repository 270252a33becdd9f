"""An admin manages users and reads the audit log in a real browser."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from shelflife.bootstrap import App
from shelflife.services.accounts import add_user
from tests.browser.conftest import screenshot

PASSWORD = "correct horse battery"


def _log_in(page: Page, base_url: str, name: str) -> None:
    page.goto(base_url + "/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Signed in as {name}")


def test_an_admin_adds_an_agent_and_finds_it_in_the_audit_log(
    page: Page, base_url: str, shelflife_app: App
) -> None:
    add_user(shelflife_app, "boss", "admin", PASSWORD, "setup")
    _log_in(page, base_url, "boss")
    page.get_by_role("link", name="Users").click()
    page.get_by_label("User name").fill("carla")
    page.get_by_label("Role").select_option("agent")
    page.get_by_label("Password (at least 12 characters)").fill(PASSWORD)
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_role("status")).to_have_text("User added.")
    expect(page.get_by_role("cell", name="carla", exact=True)).to_be_visible()
    screenshot(page, "users")
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("status")).to_contain_text("Chain intact")
    expect(page.get_by_role("row").filter(has_text="user.added").first).to_contain_text("carla")
    screenshot(page, "audit-log")


def test_an_agent_is_not_offered_the_admin_pages(
    page: Page, base_url: str, shelflife_app: App
) -> None:
    add_user(shelflife_app, "anna", "agent", PASSWORD, "setup")
    _log_in(page, base_url, "anna")
    expect(page.get_by_role("link", name="Users")).to_have_count(0)
    page.goto(base_url + "/users")
    expect(page.get_by_role("alert")).to_contain_text("may not")
