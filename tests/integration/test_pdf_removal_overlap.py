"""On PostgreSQL a batch's masked PDFs leave the document store while the next batch is archived
(services.pdfs.PdfRemoval), on a connection of their own; the step still ends with every one
removed, and a removal that fails neither loses the night's masking nor hides a real error.

The overlap is shown by a document store whose first removal waits for the archive to receive
the next batch's segment: removing in turn, that wait can only time out.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from shelflife.adapters.db.tables import Invoice
from shelflife.bootstrap import App
from shelflife.domain.errors import ArchiveUnavailable
from shelflife.domain.ports import ArchiveStore
from shelflife.services.importing import import_lines
from shelflife.services.pipeline import run_retention
from shelflife.services.shops import set_feature
from tests.support.builders import T0, at, days, make_app, order
from tests.support.pg_cluster import PostgresCluster

pytestmark = pytest.mark.postgres

BATCH = 3
BUYERS = 3 * BATCH
MASKED_AT = T0 + days(33)
WAIT = 10.0


class Gated:
    """The app's document store, except that removals go through `on_delete` first."""

    def __init__(self, inner: ArchiveStore, on_delete: Any) -> None:
        self.inner, self.on_delete = inner, on_delete
        self.deleting_threads: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def delete(self, key: str) -> None:
        self.deleting_threads.add(threading.current_thread().name)
        self.on_delete()
        self.inner.delete(key)

    def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.delete(key)


class CountingPuts:
    """The app's archive, setting `second` once a second segment was put."""

    def __init__(self, inner: ArchiveStore) -> None:
        self.inner, self.puts, self.second = inner, 0, threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)
        self.puts += 1
        if self.puts >= 2:
            self.second.set()


@pytest.fixture
def app(postgres_cluster: PostgresCluster, tmp_path: Path) -> Iterator[App]:
    """Every buyer due for archiving and masking tonight, `BATCH` buyers a batch."""
    name = f"pdf_overlap_{uuid.uuid4().hex[:12]}"
    url = postgres_cluster.create_database(name)
    built, _clock = make_app(url, tmp_path / "home", batch_size=BATCH)
    try:
        lines = [
            json.dumps(
                order(f"302-0000000-000001{n}", shipped_at=T0, invoiced_at=T0, suffix=f"-{n}")
            )
            for n in range(BUYERS)
        ]
        assert import_lines(built, lines).refused == []
        set_feature(built.ports(), "main", True, "ops")
        yield at(built, MASKED_AT)
    finally:
        built.close()
        postgres_cluster.drop_database(name)


def pdfs(app: App) -> tuple[int, int]:
    """(masked invoices whose PDF still counts as stored, PDF files in the document store)."""
    with app.engine.connect() as conn:
        stored = conn.execute(
            select(func.count()).where(Invoice.masked_at.is_not(None), Invoice.pdf_stored)
        ).scalar_one()
    files = sum(1 for _ in app.documents.list_objects())
    return int(stored), files


def test_a_batch_s_pdfs_leave_while_the_next_batch_is_archived(app: App) -> None:
    archive = CountingPuts(app.archive)
    waited: list[bool] = []
    documents = Gated(app.documents, lambda: waited.append(archive.second.wait(WAIT)))
    app.archive, app.documents = archive, documents

    report = run_retention(app.ports(), MASKED_AT)

    assert (report.archived, report.masked) == (BUYERS, BUYERS)
    assert waited[:1] == [True], "the first batch's removal ran before the second batch"
    assert "MainThread" not in documents.deleting_threads
    assert pdfs(app) == (0, 0)


def test_a_document_store_that_fails_to_remove_leaves_the_rest_to_the_next_run(
    app: App,
) -> None:
    def down() -> None:
        raise ArchiveUnavailable("document store: connection refused")

    documents = Gated(app.documents, down)
    app.documents = documents

    report = run_retention(app.ports(), MASKED_AT)

    assert report.masked == BUYERS
    assert pdfs(app) == (BUYERS, BUYERS)
    documents.on_delete = lambda: None
    run_retention(app.ports(), MASKED_AT + days(1))
    assert pdfs(app) == (0, 0)


def test_an_unexpected_failure_of_a_background_removal_fails_the_run(app: App) -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise RuntimeError("a defect in the removal")

    app.documents = Gated(app.documents, broken)

    with pytest.raises(RuntimeError, match="a defect in the removal"):
        run_retention(app.ports(), MASKED_AT)
    assert calls
    assert not [t.name for t in threading.enumerate() if t.name.startswith("pdf-removal")]
