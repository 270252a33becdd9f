"""Real headless Chromium (Debian's package) driven by Playwright, against a server the test
starts. Without the browser the tests fail under CI (CI=true) and are skipped elsewhere."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from playwright.sync_api import Browser, Page, sync_playwright

from shelflife.adapters.auth import secrets as auth_secrets
from shelflife.bootstrap import App
from tests.support.builders import make_app
from tests.support.web import running_server

CHROMIUM = Path(os.environ.get("SHELFLIFE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("SHELFLIFE_TEST_OUTPUT", ROOT / "test-output")) / "screenshots"


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file() and shutil.which(str(CHROMIUM)) is None:
        message = f"Chromium not found at {CHROMIUM}; install Debian's chromium package"
        if _ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        auth_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


@pytest.fixture
def shelflife_app(tmp_path: Path) -> Iterator[App]:
    """The browser tests run on the embedded default, SQLite; the HTTP tests cover both."""
    app, _clock = make_app(f"sqlite:///{tmp_path}/shelflife.db", tmp_path / "home")
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def base_url(shelflife_app: App) -> Iterator[str]:
    with running_server(shelflife_app) as url:
        yield url


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
