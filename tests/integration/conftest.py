"""Fixtures for the integration tests: an initialised app on each database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shelflife.bootstrap import App
from tests.support.builders import make_app


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    """A fresh home folder and schema on SQLite or PostgreSQL, clock at builders.T0."""
    application, _clock = make_app(database_url, tmp_path / "home")
    yield application
    application.close()
