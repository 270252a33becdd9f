"""The benchmark's floor (bench/floor.py) does the same work as `shelflife run`, for real.

`make bench` divides shelflife's time by the floor's; that ratio means something only if the
floor archives and masks exactly the buyers shelflife does, overwrites the same columns, and
writes an archive that really holds their PII (and nothing readable without the keys).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from shelflife.adapters.db.engine import make_engine
from shelflife.adapters.db.tables import PII_TABLES, Customer
from shelflife.domain.masking import MASK_PROFILE
from shelflife.entrypoints.cli import app
from shelflife.sample_data import SampleSpec, write_jsonl
from tests.support.bench import bench_module

REPO = Path(__file__).resolve().parents[2]
FLOOR = REPO / "bench" / "floor.py"
AS_OF = "2026-06-01T02:00:00+02:00"  # every shipment of the sample is months old

PiiRows = dict[str, dict[str, dict[str, Any]]]


def _cli(home: Path, *args: str) -> Any:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("SHELFLIFE_")}
    env["SHELFLIFE_HOME"] = str(home)
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result


def _url(home: Path) -> str:
    return f"sqlite:///{home / 'shelflife.db'}"


def _pii(url: str) -> dict[int, PiiRows]:
    """Every PII value per buyer, table and row, as the floor's records spell it."""
    engine = make_engine(url)
    out: dict[int, PiiRows] = {}
    with engine.connect() as conn:
        for name, model in PII_TABLES.items():
            names = [f.column for f in MASK_PROFILE[name]]
            owner = model.id if model is Customer else model.customer_id
            query = select(owner, model.id, *(getattr(model, n) for n in names))
            for row in conn.execute(query):
                values = {
                    n: v.isoformat() if isinstance(v, date) else v
                    for n, v in zip(names, row[2:], strict=True)
                }
                out.setdefault(row[0], {}).setdefault(name, {})[str(row[1])] = values
    engine.dispose()
    return out


def _existing(after: dict[int, PiiRows], before: dict[int, PiiRows]) -> dict[int, PiiRows]:
    """`after` restricted to the rows `before` has."""
    return {
        cid: {t: {r: after[cid][t][r] for r in rows} for t, rows in tables.items()}
        for cid, tables in before.items()
    }


def _stored_pdfs(home: Path) -> dict[str, bytes]:
    """The document store's files by object key."""
    root = home / "documents"
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.pdf")}


def _states(url: str) -> dict[int, tuple[bool, bool]]:
    """Buyer id -> (archived, masked)."""
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(Customer.id, Customer.archived_revision, Customer.masked_at))
        states = {r.id: (r.archived_revision is not None, r.masked_at is not None) for r in rows}
    engine.dispose()
    return states


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with 50 generated customers imported and every shop enabled."""
    root = tmp_path_factory.mktemp("floor")
    data = root / "orders.jsonl"
    with data.open("w", encoding="utf-8") as out:
        write_jsonl(SampleSpec(50, datetime(2026, 1, 1, tzinfo=UTC), 60, seed=3), out)
    home = root / "home"
    _cli(home, "init")
    _cli(home, "import", str(data))
    for shop in json.loads(_cli(home, "shop", "list", "--json").stdout):
        _cli(home, "feature", "enable", "--shop", shop["name"])
    return home


def test_floor_archives_and_masks_exactly_what_shelflife_does_and_its_archive_holds_their_pii(
    imported: Path, tmp_path: Path
) -> None:
    by_shelflife, by_floor = tmp_path / "shelflife", tmp_path / "floor"
    shutil.copytree(imported, by_shelflife)
    shutil.copytree(imported, by_floor)
    before = _pii(_url(imported))
    pdfs_before = _stored_pdfs(imported)

    report = json.loads(_cli(by_shelflife, "run", "--as-of", AS_OF, "--json").stdout)
    kek_file = tmp_path / "floor.kek"
    segments = tmp_path / "segments"
    done = subprocess.run(
        [
            sys.executable,
            str(FLOOR),
            "--database-url",
            _url(by_floor),
            "--archive",
            str(segments),
            "--kek-file",
            str(kek_file),
            "--as-of",
            AS_OF,
            "--batch-size",
            "7",
            "--documents",
            str(by_floor / "documents"),
            "--ids",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SHELFLIFE_")},
    )
    floor = json.loads(done.stdout)

    shelflife_states, floor_states = _states(_url(by_shelflife)), _states(_url(by_floor))
    archived = sorted(c for c, (a, _m) in shelflife_states.items() if a)
    masked = sorted(c for c, (_a, m) in shelflife_states.items() if m)
    # The sample has buyers of every kind: archived and masked, archived but held by an open
    # order, and shop buyers left alone.
    assert 0 < len(masked) < len(archived) < len(shelflife_states)
    assert (floor["archived"], floor["masked"]) == (report["archived"], report["masked"])
    assert sorted(floor["archived_ids"]) == archived
    assert floor_states == shelflife_states
    # The same columns overwritten (shelflife also adds a history row per masked buyer).
    assert _existing(_pii(_url(by_floor)), before) == _existing(_pii(_url(by_shelflife)), before)
    # The same PDFs left the document store: those of the masked buyers' documents.
    pdfs_left = _stored_pdfs(by_floor)
    assert pdfs_left.keys() == _stored_pdfs(by_shelflife).keys()
    assert floor["pdfs_removed"] == len(pdfs_before) - len(pdfs_left) > 0
    files = sorted(segments.iterdir())
    assert floor["segments"] == len(files) > len(archived) // 7  # one per batch of 7 per shop

    module = bench_module("floor")
    kek = kek_file.read_bytes()
    engine = make_engine(_url(by_floor))
    with engine.connect() as conn:
        rows = conn.execute(
            select(Customer.id, Customer.data_key_wrapped).where(
                Customer.data_key_wrapped.is_not(None)
            )
        )
        wrapped: dict[int, bytes] = {r.id: r.data_key_wrapped for r in rows}
    engine.dispose()
    restored: dict[int, PiiRows] = {}
    restored_pdfs: dict[str, bytes] = {}
    raw = b""
    for path in files:
        blob = path.read_bytes()
        raw += blob
        records = list(module.read_segment(blob))
        assert 0 < len(records) <= 7
        for cid, rev, nonce, body, _check in records:
            data_key = module.unwrap(kek, wrapped[cid], cid)
            plaintext = module.AESGCM(data_key).decrypt(
                nonce, body, module.associated_data(cid, rev, floor["key_id"])
            )
            record, documents = module.split_plaintext(plaintext)
            assert record["customer_id"] == cid
            restored[cid] = record["rows"]
            for (kind, doc_id), data in documents.items():
                restored_pdfs[module.pdf_object_key(module.PDF_KINDS[kind], doc_id)] = data
    assert restored == {cid: before[cid] for cid in archived}
    # Every archived buyer's PDFs are in its record, byte for byte; those of masked buyers
    # nowhere else any more.
    assert floor["pdfs_archived"] == len(restored_pdfs) > floor["pdfs_removed"]
    assert {k: pdfs_before[k] for k in restored_pdfs} == restored_pdfs
    assert set(pdfs_before) - set(pdfs_left) <= set(restored_pdfs)
    emails = [before[cid]["customers"][str(cid)]["email"] for cid in archived]
    assert all(emails)
    assert [e for e in emails if e.encode() in raw] == []
