"""The dashboard and the shops page in real Chromium: an admin sees a run change the counts;
support switches a shop through the confirmation and never sees a buyer's data."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from shelflife.bootstrap import App
from shelflife.services.accounts import add_user
from shelflife.services.pipeline import run_retention
from shelflife.services.runs import list_runs
from shelflife.services.shops import list_shops
from tests.browser.conftest import screenshot
from tests.support import mixed_states
from tests.support.builders import at, days
from tests.support.mixed_states import AS_OF

PASSWORD = "correct horse battery"


def _log_in(page: Page, base_url: str, name: str) -> None:
    page.goto(base_url + "/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Signed in as {name}")


def _cells(page: Page, row_id: str) -> list[str]:
    return [c.strip() for c in page.locator(f"#{row_id} > th, #{row_id} > td").all_inner_texts()]


def test_an_admin_sees_the_dashboard_change_after_a_run(
    page: Page, base_url: str, shelflife_app: App
) -> None:
    mixed_states.build(shelflife_app)
    add_user(shelflife_app, "boss", "admin", PASSWORD, "setup")
    _log_in(page, base_url, "boss")
    page.get_by_role("link", name="Dashboard").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    assert _cells(page, "state-masked") == ["masked", "1", "1"]
    assert _cells(page, "state-ready_for_archiving") == ["ready for archiving", "3", "3"]
    assert _cells(page, "preview-total") == ["All shops", "5", "0", "2", "0", "0"]
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    screenshot(page, "dashboard")

    run_retention(at(shelflife_app, AS_OF + days(1 / 24)).ports())
    page.reload()
    assert _cells(page, "state-masked") == ["masked", "3", "3"]
    assert _cells(page, "state-ready_for_archiving") == ["ready for archiving", "0", "0"]
    assert _cells(page, "preview-total") == ["All shops", "0", "0", "0", "0", "0"]
    newest = list_runs(shelflife_app.ports())[0]
    expect(page.locator("#runs tbody tr")).to_have_count(2)
    run_row = _cells(page, f"run-{newest.id}")
    assert run_row[2] == "2026-04-01 12:00"  # as of, UTC
    assert run_row[4:] == ["finished", "5", "0", "0", "2", "0", "0"]


def test_support_switches_a_shop_after_the_confirmation_and_sees_no_buyer_data(
    page: Page, base_url: str, shelflife_app: App
) -> None:
    data = mixed_states.build(shelflife_app)
    add_user(shelflife_app, "sam", "support", PASSWORD, "setup")
    _log_in(page, base_url, "sam")
    seen = [page.content()]
    expect(page.get_by_role("link", name="Dashboard")).to_have_count(0)
    page.get_by_role("link", name="Shops").first.click()
    expect(page.locator("#shop-main td[data-state=masked]")).to_have_text("1")
    expect(page.locator("#shop-closed td[data-state=active]")).to_have_text("1")
    seen.append(page.content())

    page.get_by_role("button", name="Switch on… retention for closed").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Switch retention on for closed?")
    expect(page.locator("#next-archive")).to_have_text("1 buyer")
    expect(page.locator("#next-mask")).to_have_text("1 buyer")
    seen.append(page.content())
    screenshot(page, "shops-confirm")
    assert _enabled(shelflife_app, "closed") is False

    page.get_by_role("button", name="Switch retention on").click()
    expect(page.get_by_role("status")).to_have_text("Retention switched on for closed.")
    expect(page.locator("#shop-closed")).to_contain_text("on by sam, 2026-04-01 11:00 UTC")
    seen.append(page.content())
    screenshot(page, "shops")
    assert _enabled(shelflife_app, "closed") is True

    for path in ("/dashboard", "/users", "/audit", "/orders"):
        response = page.goto(base_url + path)
        assert response is not None
        assert response.status == 403, path
        seen.append(page.content())
    pii = data.pii()
    assert [value for html in seen for value in pii if value in html] == []
    assert [nr for html in seen for nr in re.findall(r"\d{3}-\d{7}-\d{7}", html)] == []


def _enabled(application: App, shop: str) -> bool:
    return {s.name: s.retention_enabled for s in list_shops(application.ports())}[shop]
