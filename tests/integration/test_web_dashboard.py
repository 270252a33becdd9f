"""The admin's dashboard on SQLite and PostgreSQL: exact counts per state, the dry run's
preview, failures with their retry date, compliance, runs and alerts; admins only; no PII."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.adapters.db.tables import ArchiveSegment
from shelflife.bootstrap import App
from shelflife.domain.policy import Finding
from shelflife.entrypoints.web.app import create_web_app
from shelflife.services.accounts import add_user
from shelflife.services.dashboard import dashboard
from shelflife.services.inspection import compliance_report
from shelflife.services.integrity import verify_archive
from shelflife.services.pipeline import dry_run, run_retention
from shelflife.services.runs import list_runs
from shelflife.services.search import find
from tests.support import mixed_states
from tests.support.builders import at, days
from tests.support.mixed_states import AS_OF, BUYERS, FAILED, HELD, ORDERS, PREVIEW, MixedStates

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


@pytest.fixture
def data(app: App) -> MixedStates:
    return mixed_states.build(app)


@pytest.fixture
def web(app: App, data: MixedStates) -> Iterator[TestClient]:
    for name, role in (("boss", "admin"), ("anna2", "agent"), ("sam", "support")):
        add_user(app, name, role, PASSWORD, "setup")
    with TestClient(create_web_app(app), base_url="https://shelflife.test") as client:
        yield client


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def _as(client: TestClient, name: str) -> None:
    login = client.get("/login")
    response = client.post(
        "/login", data={"user_name": name, "password": PASSWORD, "csrf_token": _csrf(login.text)}
    )
    assert response.status_code == 200


def _row(html: str, row_id: str) -> list[str]:
    """The cells of the table row with `row_id`, tags stripped."""
    match = re.search(rf'<tr id="{re.escape(row_id)}">(.*?)</tr>', html, re.S)
    assert match is not None, row_id
    cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", match.group(1), re.S)
    return [re.sub(r"<[^>]+>", "", c).strip() for c in cells]


def _section(html: str, section_id: str) -> str:
    match = re.search(rf'<section class="card" id="{section_id}".*?</section>', html, re.S)
    assert match is not None, section_id
    return match.group(0)


def _total(per_shop: dict[str, dict[str, int]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for states in per_shop.values():
        total.update(states)
    return total


def test_counts_buyers_and_orders_per_state_exactly(web: TestClient, app: App) -> None:
    _as(web, "boss")
    page = web.get("/dashboard")
    assert page.status_code == 200
    buyers, orders = _total(BUYERS), _total(ORDERS)
    for state in (
        "active",
        "ready_for_archiving",
        "archive_failed",
        "archived",
        "masked",
        "retrieved",
    ):
        assert _row(page.text, f"state-{state}")[1:] == [str(buyers[state]), str(orders[state])]
    per_shop = {s.name: s for s in dashboard(app).shops}
    assert {n: {x.state: x.buyers for x in s.states if x.buyers} for n, s in per_shop.items()} == (
        BUYERS
    )
    assert {n: {x.state: x.orders for x in s.states if x.orders} for n, s in per_shop.items()} == (
        ORDERS
    )


def test_order_counts_agree_with_each_orders_state_in_search(app: App, data: MixedStates) -> None:
    """The grouped SQL and `policy.order_state` (what search shows) say the same."""
    one_by_one: Counter[str] = Counter()
    for o in data.orders:
        one_by_one[find(app.ports(), o["order_nr_external"]).orders[0].state] += 1
    counted = Counter({s.state: s.orders for s in dashboard(app).states if s.orders})
    assert counted == one_by_one


def test_tonights_preview_is_the_dry_run_per_shop_and_in_total(web: TestClient, app: App) -> None:
    _as(web, "boss")
    page = web.get("/dashboard").text
    for shop, (archive, retry, mask, remask) in PREVIEW.items():
        assert _row(page, f"preview-{shop}") == [
            shop,
            *map(str, (archive, retry, mask, remask)),
            "0",
        ]
    assert "preview-closed" not in page  # switched off: the run does nothing there
    report = dry_run(app.ports(), AS_OF)
    assert _row(page, "preview-total") == [
        "All shops",
        *map(str, (report.archived, report.retried, report.masked, report.remasked)),
        str(report.mask_refused),
    ]
    assert (report.archived, report.masked) == (5, 2)


def test_an_archive_failure_is_listed_with_its_retry_date(web: TestClient, app: App) -> None:
    _as(web, "boss")
    failures = _section(web.get("/dashboard").text, "failures")
    assert re.search(r'Archive failures <span class="count">1</span>', failures)
    cells = re.findall(r"<td>(.*?)</td>", failures)
    buyer = find(app.ports(), FAILED).orders[0].customer
    # Failed at the run (09:00 UTC, 11:00 in Berlin); retried from the next Berlin midnight.
    assert cells == [
        "main",
        buyer,
        FAILED,
        "2026-04-01 09:00",
        "2026-04-01 22:00",
        "read-back of the archive copy differs from what was written",
    ]


def test_compliance_violations_and_holds_are_listed_with_their_reasons(
    web: TestClient, app: App
) -> None:
    _as(web, "boss")
    section = _section(web.get("/dashboard").text, "compliance")
    report = compliance_report(app.ports(), AS_OF)
    violations = [e for e in report if e.finding is Finding.VIOLATION]
    holds = [e for e in report if e.finding is Finding.HOLD]
    assert (len(violations), len(holds)) == (4, 1)
    assert re.search(rf'Violations <span class="count bad">{len(violations)}</span>', section)
    assert re.search(rf'Holds <span class="count">{len(holds)}</span>', section)
    for entry in report:
        assert f"<td>{entry.customer}</td>" in section
        assert "; ".join(entry.reasons) in section
    assert HELD in section
    assert "open order: 305-0000000-0000002" in section


def test_the_last_runs_show_duration_and_counts(web: TestClient, app: App) -> None:
    run_retention(at(app, AS_OF + days(1)).ports())
    _as(web, "boss")
    page = web.get("/dashboard").text
    runs = list_runs(app.ports())
    assert len(runs) == 2
    newest = runs[0]
    assert newest.duration_seconds is not None
    assert _row(page, f"run-{newest.id}") == [
        str(newest.id),
        newest.started_at[:16].replace("T", " "),
        "2026-04-02 11:00",
        f"{newest.duration_seconds:.1f}",
        "finished",
        *map(
            str,
            (
                newest.archived,
                newest.archive_failed,
                newest.retried,
                newest.masked,
                newest.remasked,
                newest.mask_refused,
            ),
        ),
    ]
    assert (newest.archived, newest.retried, newest.masked) == (6, 1, 4)
    first = _row(page, f"run-{runs[1].id}")
    assert first[2] == "2026-04-01 09:00"
    assert first[5:7] == ["4", "1"]  # archived, failed


def test_a_retrieval_rate_alert_is_shown(web: TestClient) -> None:
    _as(web, "boss")
    alerts = _section(web.get("/dashboard").text, "alerts")
    assert re.search(r'Retrieval alerts <span class="count bad">1</span>', alerts)
    assert re.findall(r"<td[^>]*>(.*?)</td>", alerts) == ["2026-04-01 10:00", "anna", "2", "1"]


@pytest.mark.parametrize("user", ["anna2", "sam"])
def test_agents_and_support_may_not_open_the_dashboard(web: TestClient, user: str) -> None:
    _as(web, user)
    response = web.get("/dashboard")
    assert response.status_code == 403
    assert "may not see the dashboard" in response.text
    assert 'href="/dashboard"' not in web.get("/").text


def test_the_dashboard_shows_no_buyer_data(web: TestClient, data: MixedStates) -> None:
    _as(web, "boss")
    page = web.get("/dashboard").text
    pii = data.pii()
    assert len(pii) > 100
    assert [value for value in pii if value in page] == []
    assert "Rücksendung" not in page  # a retrieval's reason is free text


def test_the_start_page_links_the_pages_each_role_may_open(web: TestClient) -> None:
    expected = {
        "boss": ["/dashboard", "/shops", "/users", "/audit"],
        "sam": ["/shops"],
        "anna2": [],
    }
    for user, links in expected.items():
        _as(web, user)
        start = re.search(r'<ul class="start".*?</ul>', web.get("/").text, re.S)
        assert (re.findall(r'href="([^"]+)"', start.group(0)) if start else []) == links


@pytest.mark.parametrize("limit", [1, 20])
def test_the_dashboards_violations_and_holds_are_the_compliance_reports(
    app: App, limit: int
) -> None:
    """Counted and picked in SQL, filed by the policy: the same buyers, reasons and order as
    `compliance`, on the dry-run tests' buyers in every state (retrieved and due for re-mask,
    held by an open order or a young invoice, archive failing, a disabled shop, ...)."""
    from tests.integration.test_dry_run import AS_OF as DRY_RUN_AS_OF
    from tests.integration.test_dry_run import _mixed_states

    _mixed_states(app)
    report = compliance_report(app.ports(), DRY_RUN_AS_OF)
    shown = dashboard(app, DRY_RUN_AS_OF, limit=limit)
    for finding, listed in ((Finding.VIOLATION, shown.violations), (Finding.HOLD, shown.holds)):
        expected = [e for e in report if e.finding is finding]
        assert listed.total == len(expected)
        assert [e.document() for e in listed.items] == [e.document() for e in expected[:limit]]
    assert (shown.violations.total, shown.holds.total) == (12, 2)


def test_open_archive_problems_are_listed_as_violations(web: TestClient, app: App) -> None:
    with app.engine.connect() as conn:
        key = conn.execute(select(ArchiveSegment.object_key).order_by(ArchiveSegment.id)).scalar()
    assert key is not None
    path = app.settings.home / "archive" / key
    damaged = bytearray(path.read_bytes())
    damaged[-20] ^= 0x01  # inside the manifest
    path.write_bytes(bytes(damaged))
    found = verify_archive(app.ports(), 100)
    _as(web, "boss")

    section = _section(web.get("/dashboard").text, "compliance")

    assert len(found.problems) >= 1
    assert f'Archive problems <span class="count bad">{len(found.problems)}</span>' in section
    assert f"<td>primary</td><td>{key}</td><td></td><td>{found.problems[0].problem}</td>" in (
        section
    )
