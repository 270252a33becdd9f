"""`bench/scale.py` copies an imported database inside the database, and the copies behave
exactly like imported buyers.

`make bench` at 1,000,000 customers runs on a database scaled x10 from an imported one; its
figures mean something only if every copy is archived and masked on the same nights as its
original, keeps its PDFs, and is a buyer of its own (found by its own numbers, joined by its
own new orders, nobody's duplicate).
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from shelflife.adapters.db.engine import make_engine
from shelflife.adapters.db.tables import (
    Address,
    Credit,
    Customer,
    Invoice,
    Order,
    OrderItem,
)
from shelflife.config import load_settings
from shelflife.domain.ports import pdf_object_key
from shelflife.entrypoints.cli import app
from shelflife.sample_data import SampleSpec, write_jsonl
from tests.support.bench import bench_module

REPO = Path(__file__).resolve().parents[2]
BACKLOG = "2026-06-01T02:00:00+02:00"  # every shipment of the sample is months old
NIGHT = "2026-02-20T02:00:00+01:00"  # the January orders are due, the later ones not yet
CUSTOMERS = 60  # largest customer id 60: copy k's ids are k * 100 + the original's
COUNTED = (Customer, Order, OrderItem, Address, Invoice, Credit)


scale_module = bench_module("scale")


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else result.stdout


def _run(as_of: str, *options: str) -> tuple[int, int]:
    report = _cli("run", "--as-of", as_of, "--json", *options)
    return report["archived"], report["masked"]


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        counts = {
            m.__tablename__: conn.execute(select(func.count()).select_from(m)).scalar_one()
            for m in COUNTED
        }
    engine.dispose()
    return counts


@pytest.fixture
def base(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, str, list[dict[str, Any]]]:
    """A home on the test's database with 60 generated customers imported, every shop
    enabled; the environment points every command at it. Returns the home, the database URL
    and the imported order lines."""
    for name in os.environ:
        if name.startswith("SHELFLIFE_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("SHELFLIFE_HOME", str(home))
    monkeypatch.setenv("SHELFLIFE_DATABASE_URL", database_url)
    data = tmp_path / "orders.jsonl"
    with data.open("w", encoding="utf-8") as out:
        write_jsonl(SampleSpec(CUSTOMERS, datetime(2026, 1, 1, tzinfo=UTC), 60, seed=3), out)
    _cli("init")
    _cli("import", str(data))
    for shop in _cli("shop", "list", "--json"):
        _cli("feature", "enable", "--shop", shop["name"])
    lines = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    return home, database_url, lines


def _scale(home: Path, factor: int) -> Any:
    return scale_module.scale(load_settings(home), factor, say=lambda _line: None)


def _documents(home: Path, url: str) -> list[tuple[str, int, bool, bool, str | None]]:
    """(kind, id, masked, pdf_stored, pdf_sha256) of every invoice and credit."""
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = [
            (kind, r.id, r.masked_at is not None, bool(r.pdf_stored), r.pdf_sha256)
            for kind, model in (("invoice", Invoice), ("credit", Credit))
            for r in conn.execute(
                select(model.id, model.masked_at, model.pdf_stored, model.pdf_sha256)
            )
        ]
    engine.dispose()
    return rows


def test_a_database_scaled_x3_has_three_times_the_rows_and_due_buyers_of_the_base(
    base: tuple[Path, str, list[dict[str, Any]]],
) -> None:
    home, url, _lines = base
    before = _counts(url)
    due_backlog = _run(BACKLOG, "--dry-run")
    due_night = _run(NIGHT, "--dry-run")
    assert due_backlog[0] > due_night[0] > 0  # the night has buyers due and buyers not yet

    report = _scale(home, 3)

    assert _counts(url) == {name: 3 * count for name, count in before.items()}
    assert report.base_customers == CUSTOMERS
    assert report.rows["customers"] == 3 * CUSTOMERS
    assert _run(BACKLOG, "--dry-run") == (3 * due_backlog[0], 3 * due_backlog[1])
    assert _run(NIGHT, "--dry-run") == (3 * due_night[0], 3 * due_night[1])


def test_a_real_run_on_the_scaled_database_masks_three_times_and_removes_only_masked_pdfs(
    base: tuple[Path, str, list[dict[str, Any]]],
) -> None:
    home, url, _lines = base
    due_night = _run(NIGHT, "--dry-run")
    originals = {(d[0], d[1]) for d in _documents(home, url) if d[3]}
    _scale(home, 3)
    links = {d: os.stat(home / "documents" / pdf_object_key(*d)).st_nlink for d in originals}
    assert links
    assert set(links.values()) == {3}  # the base file's name and its two copies'

    assert _run(NIGHT) == (3 * due_night[0], 3 * due_night[1])

    documents = _documents(home, url)
    masked = [d for d in documents if d[2]]
    kept = [d for d in documents if not d[2] and d[3]]
    assert masked
    assert kept
    assert len(masked) + len(kept) == 3 * len(originals)
    assert len([d for d in masked if (d[0], d[1]) in originals]) * 3 == len(masked)
    for kind, document_id, _masked, stored, _digest in masked:
        assert not stored
        assert not (home / "documents" / pdf_object_key(kind, document_id)).exists()
    for kind, document_id, _masked, _stored, digest in kept:
        data = (home / "documents" / pdf_object_key(kind, document_id)).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest

    with pytest.raises(scale_module.ScaleError, match="archived, masked or retrieved"):
        _scale(home, 2)


def test_a_copied_buyer_is_its_own_buyer_found_by_its_numbers_and_joined_by_its_new_orders(
    base: tuple[Path, str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    home, _url, lines = base
    line = next(
        x
        for x in lines
        if x["customer"]["customer_nr_external"] and x["order_nr_external"][3] == "-"
    )
    original = _cli("find", line["order_nr_external"], "--json")["orders"]
    assert len(original) == 1
    customer_id = int(original[0]["customer"].removeprefix("C"))
    assert _cli("duplicates", "--json") == {"groups": []}

    _scale(home, 3)

    # the same order of copy 2: renamed, its own buyer, still an Amazon order
    found = _cli("find", line["customer"]["email"].replace("@", "+c2@"), "--json")["orders"]
    assert {o["customer"] for o in found} == {f"C{customer_id + 200}"}
    assert all(o["channel"] == "amazon" for o in found)
    renamed = [o for o in found if o["order_nr_external"][3:] == line["order_nr_external"][3:]]
    assert len(renamed) == 1
    assert renamed[0]["order_nr_external"] != line["order_nr_external"]
    again = _cli("find", renamed[0]["order_nr_external"], "--json")["orders"]
    assert [o["customer"] for o in again] == [f"C{customer_id + 200}"]
    assert _cli("find", line["order_nr_external"], "--json")["orders"] == original
    assert _cli("duplicates", "--json") == {"groups": []}

    # new orders of the base buyer and of copy 1 join each one's own record (true digests)
    new_lines = []
    for k, number in ((0, "301-0000000-0000001"), (1, "301-0000000-0000002")):
        order = json.loads(json.dumps(line))
        order["order_nr_external"] = number
        order["invoices"], order["credits"] = [], []
        if k:
            order["customer"]["customer_nr_external"] += f"-{k}"
            for part in ("customer", "billing_address", "shipping_address"):
                if order[part] and order[part]["email"]:
                    order[part]["email"] = order[part]["email"].replace("@", f"+c{k}@")
        new_lines.append(json.dumps(order))
    data = tmp_path / "new.jsonl"
    data.write_text("\n".join(new_lines) + "\n", encoding="utf-8")
    assert _cli("import", str(data), "--json")["created"] == 2
    for k, number in ((0, "301-0000000-0000001"), (1, "301-0000000-0000002")):
        orders = _cli("find", number, "--json")["orders"]
        assert [o["customer"] for o in orders] == [f"C{customer_id + 100 * k}"]
