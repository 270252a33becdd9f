"""Shared fixtures: the database every storage test runs against, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.pg_cluster import PostgresCluster

if TYPE_CHECKING:
    from tests.support.s3_server import S3Server


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/shelflife.db"


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the whole session, started on first use.

    If it cannot start, the requesting tests fail under CI (``CI=true``) and are skipped locally.
    """
    cluster = PostgresCluster()
    failure: str | None = None
    try:
        cluster.start()
    except RuntimeError as exc:
        failure = f"PostgreSQL test cluster could not start: {exc}"
    if failure is not None:  # outside the except block: no chained traceback in the report
        if _ci():
            pytest.fail(failure, pytrace=False)
        pytest.skip(failure)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3-compatible server (moto's server mode over HTTP) for the whole session.

    It is a pinned test dependency that runs in-process, so a server that cannot start is a
    failure, never a skip (with or without ``CI=true``). Imported here: moto takes seconds to
    import, which a run without S3 tests should not pay."""
    from tests.support.s3_server import S3Server

    server = S3Server()
    failure: str | None = None
    try:
        server.start()
    except RuntimeError as exc:
        failure = str(exc)
    if failure is not None:  # outside the except block: no chained traceback in the report
        pytest.fail(failure, pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server, with the environment's AWS settings replaced by the test's own: test
    credentials, and no profile, config file or endpoint of the machine's."""
    from tests.support.s3_server import CREDENTIALS

    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
    return s3_server


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database; each test runs once per backend.

    ``sqlite``: a file in the test's ``tmp_path``. ``postgresql``: a newly created database on the
    session cluster, dropped (``WITH (FORCE)``) after the test.
    """
    backend: str = request.param
    if backend == "sqlite":
        yield _sqlite_url(tmp_path)
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name = f"shelflife_test_{uuid.uuid4().hex[:16]}"
    url = cluster.create_database(name)
    try:
        yield url
    finally:
        cluster.drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """SQLAlchemy URL of a fresh SQLite file in ``tmp_path``, for tests of raw file bytes."""
    return _sqlite_url(tmp_path)
