"""The hardware floor of a nightly run: only the work no design can avoid, nothing else.

On a shelflife database (made by `shelflife init` + `import` of `bench/generate.py`'s data, every
shop enabled), for each enabled shop and each batch of `batch_size` due buyers, in one
transaction per batch:

1. select the next batch of Amazon buyers due for archiving (same rule as shelflife: unmasked,
   no current copy, an order closed before the archive cut-off of the shop's time zone) and their
   PII: one set-based query per PII table, every column of the masking profile;
2. read the PDFs of the buyers' unmasked invoices and credits from the document store
   (`--documents`, the home's `documents` folder: they leave it at masking, so every record
   must carry them); seal each buyer's rows (canonical JSON) and PDFs with AES-256-GCM under a
   fresh per-buyer data key, customer id and revision bound as associated data; wrap each data
   key under the key-encryption key (AES-256-GCM too);
3. append all sealed records to one segment file, `fsync` the file and its folder once;
4. read the segment back once, decrypt every record and compare it with what was sealed;
5. store each buyer's wrapped data key and archived revision (one executemany UPDATE: the key
   must live outside the write-once segment so that a buyer can be shredded), then overwrite
   the PII columns of the buyers that may be masked (no open or recent order, invoice or
   credit) set-based: one UPDATE per PII table;
6. after the batch committed, delete the masked buyers' PDFs from the document store: unlink
   the files, then `fsync` each of their folders once.

Left out on purpose, because no floor needs them: audit and history rows, run records, the
reclaim step (VACUUM), the dry-run counts, retries and failure bookkeeping, a thread pool.

Segment layout: per record ``>QIII`` (customer id, revision, nonce+ciphertext length, plaintext
SHA-256 prefix as a check), then 12-byte nonce and ciphertext. A record's plaintext is ``>I``
(length of the JSON), the canonical JSON, then per PDF ``>BQI`` (kind: 0 invoice, 1 credit;
document id; length) and the PDF's bytes. Associated data of a record:
``customer_id:revision:key_id``. A wrapped data key is nonce (12) + ciphertext (32 + 16).

    .venv/bin/python bench/floor.py --database-url sqlite:///bench/out/x/shelflife.db \\
        --archive bench/out/x/floor --kek-file bench/out/x/floor.kek \\
        --as-of 2026-06-01T02:00:00+02:00
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import struct
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Integer,
    and_,
    any_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)

from shelflife.adapters.db.engine import make_engine
from shelflife.adapters.db.tables import PII_TABLES, Credit, Customer, Invoice, Order, Shop
from shelflife.config import load_settings
from shelflife.domain.masking import MASK_PROFILE, MaskKind, mask_value
from shelflife.domain.policy import Cutoffs
from shelflife.domain.ports import PDF_KINDS, pdf_object_key

RECORD = struct.Struct(">QIII")
NONCE = 12
JSON_LENGTH = struct.Struct(">I")
PDF_HEADER = struct.Struct(">BQI")
DOCUMENT_MODELS: dict[str, type[Invoice] | type[Credit]] = {"invoice": Invoice, "credit": Credit}
PdfKey = tuple[int, int]
"""(kind index in `PDF_KINDS`, document id)."""


@dataclass
class FloorResult:
    archived: int = 0
    masked: int = 0
    segments: int = 0
    segment_bytes: int = 0
    batches: int = 0
    seconds: float = 0.0
    batch_size: int = 0
    key_id: str = ""
    pdfs_archived: int = 0
    pdfs_removed: int = 0
    archived_ids: list[int] = field(default_factory=list)


def key_id_of(kek: bytes) -> str:
    return "floor:" + hashlib.sha256(kek).hexdigest()[:16]


def load_kek(path: Path) -> bytes:
    """The key-encryption key: 32 random bytes in a file, made on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
    kek = path.read_bytes()
    if len(kek) != 32:
        raise SystemExit(f"{path}: a key-encryption key is 32 bytes")
    return kek


def wrap(kek: bytes, data_key: bytes, customer_id: int) -> bytes:
    nonce = secrets.token_bytes(NONCE)
    return nonce + AESGCM(kek).encrypt(nonce, data_key, b"dk:%d" % customer_id)


def unwrap(kek: bytes, wrapped: bytes, customer_id: int) -> bytes:
    return AESGCM(kek).decrypt(wrapped[:NONCE], wrapped[NONCE:], b"dk:%d" % customer_id)


def associated_data(customer_id: int, revision: int, key_id: str) -> bytes:
    return f"{customer_id}:{revision}:{key_id}".encode()


def read_segment(blob: bytes) -> Iterator[tuple[int, int, bytes, bytes, int]]:
    """(customer id, revision, nonce, ciphertext, check) of each record of a segment."""
    at = 0
    while at < len(blob):
        cid, rev, length, check = RECORD.unpack_from(blob, at)
        at += RECORD.size
        sealed = blob[at : at + length]
        if len(sealed) != length:
            raise ValueError("segment is truncated")
        at += length
        yield cid, rev, sealed[:NONCE], sealed[NONCE:], check


def _among(conn: Connection, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ARRAY(Integer)))  # type: ignore[no-any-return]
    return column.in_(ids)  # type: ignore[no-any-return]


def _closed_at() -> ColumnElement[Any]:
    return func.coalesce(Order.shipped_at, Order.cancelled_at)


def _archive_due(shop_id: int, c: Cutoffs) -> ColumnElement[bool]:
    return and_(
        (Customer.shop_id + 0) == shop_id,  # no index: see retention.in_shop
        Customer.channel == "amazon",
        Customer.masked_at.is_(None),
        or_(
            Customer.archived_revision.is_(None),
            Customer.archived_revision != Customer.pii_revision,
        ),
        Customer.archive_failed_at.is_(None),
        exists().where(Order.customer_id == Customer.id, _closed_at() < c.archive_before),
    )


def _mask_ready(c: Cutoffs) -> ColumnElement[bool]:
    return and_(
        ~exists().where(
            Order.customer_id == Customer.id,
            or_(_closed_at().is_(None), _closed_at() >= c.mask_before),
        ),
        ~exists().where(Invoice.customer_id == Customer.id, Invoice.created_at >= c.mask_before),
        ~exists().where(Credit.customer_id == Customer.id, Credit.created_at >= c.mask_before),
    )


def _masks(name: str) -> dict[str, Any]:
    model = PII_TABLES[name]
    values: dict[str, Any] = {}
    for f in MASK_PROFILE[name]:
        col = getattr(model, f.column)
        empty = col.is_(None) if f.kind is MaskKind.DATE else or_(col.is_(None), col == "")
        values[f.column] = case((empty, col), else_=literal(mask_value(f.kind), col.type))
    return values


def _json_value(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    return value


def load_pii(conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, dict[str, Any]]]:
    """Every unmasked PII row of these buyers: one query per PII table for the whole batch."""
    rows: dict[int, dict[str, dict[str, Any]]] = {cid: {} for cid in ids}
    for name, model in PII_TABLES.items():
        names = [f.column for f in MASK_PROFILE[name]]
        columns = [getattr(model, n) for n in names]
        if model is Customer:
            query = select(Customer.id, Customer.id, *columns).where(_among(conn, Customer.id, ids))
        else:
            query = select(model.customer_id, model.id, *columns).where(
                _among(conn, model.customer_id, ids), model.masked_at.is_(None)
            )
        for row in conn.execute(query):
            rows[row[0]].setdefault(name, {})[str(row[1])] = {
                n: _json_value(v) for n, v in zip(names, row[2:], strict=True)
            }
    return rows


def load_pdfs(
    conn: Connection, ids: Sequence[int], documents: Path | None
) -> dict[int, dict[PdfKey, bytes]]:
    """The stored PDFs of these buyers' unmasked invoices and credits: one query per kind for
    the batch, then one file read per PDF."""
    found: dict[int, dict[PdfKey, bytes]] = {}
    if documents is None:
        return found
    for index, kind in enumerate(PDF_KINDS):
        model = DOCUMENT_MODELS[kind]
        rows = conn.execute(
            select(model.customer_id, model.id).where(
                _among(conn, model.customer_id, ids),
                model.masked_at.is_(None),
                model.pdf_stored.is_(True),
            )
        )
        for cid, doc_id in rows:
            data = (documents / pdf_object_key(kind, doc_id)).read_bytes()
            found.setdefault(cid, {})[(index, doc_id)] = data
    return found


def canonical(
    customer_id: int,
    revision: int,
    rows: dict[str, dict[str, Any]],
    pdfs: dict[PdfKey, bytes] | None = None,
) -> bytes:
    body = {"customer_id": customer_id, "revision": revision, "rows": rows}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    parts = [JSON_LENGTH.pack(len(text)), text]
    for (kind, doc_id), data in sorted((pdfs or {}).items()):
        parts += [PDF_HEADER.pack(kind, doc_id, len(data)), data]
    return b"".join(parts)


def split_plaintext(plaintext: bytes) -> tuple[dict[str, Any], dict[PdfKey, bytes]]:
    """A record's plaintext back into its JSON body and its PDFs."""
    (length,) = JSON_LENGTH.unpack_from(plaintext)
    at = JSON_LENGTH.size + length
    body = json.loads(plaintext[JSON_LENGTH.size : at])
    pdfs: dict[PdfKey, bytes] = {}
    while at < len(plaintext):
        kind, doc_id, size = PDF_HEADER.unpack_from(plaintext, at)
        at += PDF_HEADER.size
        pdfs[(kind, doc_id)] = plaintext[at : at + size]
        at += size
    return body, pdfs


def remove_pdfs(documents: Path, keys: Sequence[PdfKey]) -> None:
    """Unlink the PDFs, then sync each of their folders once."""
    paths = [documents / pdf_object_key(PDF_KINDS[kind], doc_id) for kind, doc_id in keys]
    for path in paths:
        path.unlink()
    for folder in sorted({path.parent for path in paths}):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_segment(path: Path, blob: bytes) -> None:
    """One write and one fsync of the file, one fsync of its folder: the batch is durable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, blob)
        os.fsync(fd)
    finally:
        os.close(fd)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def archive_batch(
    conn: Connection,
    revisions: dict[int, int],
    kek: bytes,
    key_id: str,
    segment: Path,
    pdfs: dict[int, dict[PdfKey, bytes]],
) -> list[dict[str, Any]]:
    """Seal, write, read back and verify one batch; the key rows to store for it."""
    ids = list(revisions)
    pii = load_pii(conn, ids)
    parts: list[bytes] = []
    digests: dict[int, bytes] = {}
    keys: dict[int, bytes] = {}
    for cid in ids:
        rev = revisions[cid]
        plaintext = canonical(cid, rev, pii[cid], pdfs.get(cid))
        data_key = secrets.token_bytes(32)
        keys[cid] = data_key
        nonce = secrets.token_bytes(NONCE)
        sealed = nonce + AESGCM(data_key).encrypt(
            nonce, plaintext, associated_data(cid, rev, key_id)
        )
        digest = hashlib.sha256(plaintext).digest()
        digests[cid] = digest
        parts.append(RECORD.pack(cid, rev, len(sealed), int.from_bytes(digest[:4], "big")))
        parts.append(sealed)
    write_segment(segment, b"".join(parts))

    # Read back once and verify every record before any buyer in it counts as archived.
    seen = 0
    for cid, rev, nonce, body, check in read_segment(segment.read_bytes()):
        plaintext = AESGCM(keys[cid]).decrypt(nonce, body, associated_data(cid, rev, key_id))
        digest = hashlib.sha256(plaintext).digest()
        if digest != digests[cid] or int.from_bytes(digest[:4], "big") != check:
            raise RuntimeError(f"segment {segment.name}: a record does not verify")
        seen += 1
    if seen != len(ids):
        raise RuntimeError(f"segment {segment.name}: {seen} records for {len(ids)} buyers")
    return [
        {
            "b_cid": cid,
            "b_rev": revisions[cid],
            "b_key": wrap(kek, keys[cid], cid),
        }
        for cid in ids
    ]


def mask_batch(conn: Connection, ids: Sequence[int], c: Cutoffs) -> list[int]:
    """Overwrite the PII of the batch's buyers that may be masked: one UPDATE per table (the
    documents' PDFs marked as leaving the store); returns the masked buyers."""
    touched = list(
        conn.execute(
            update(Customer)
            .where(_among(conn, Customer.id, ids), _mask_ready(c))
            .values(
                masked_at=literal(c.as_of, Customer.masked_at.type),
                identity_digest=None,
                **_masks("customers"),
            )
            .returning(Customer.id)
        ).scalars()
    )
    if not touched:
        return []
    for name, model in PII_TABLES.items():
        if model is Customer:
            continue
        leaving = {"pdf_stored": False} if model in (Invoice, Credit) else {}
        conn.execute(
            update(model)
            .where(_among(conn, model.customer_id, touched), model.masked_at.is_(None))
            .values(masked_at=c.as_of, **_masks(name), **leaving)
        )
    return touched


def run_floor(
    database_url: str,
    archive: Path,
    kek: bytes,
    as_of: datetime,
    batch_size: int,
    documents: Path | None = None,
) -> FloorResult:
    began = time.perf_counter()
    key_id = key_id_of(kek)
    result = FloorResult(batch_size=batch_size, key_id=key_id)
    archive.mkdir(parents=True, exist_ok=True)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        shops = conn.execute(
            select(Shop.id, Shop.time_zone).where(Shop.retention_enabled.is_(True))
        ).all()
    store_keys = (
        update(Customer)
        .where(Customer.id == bindparam("b_cid"))
        .values(
            archived_revision=bindparam("b_rev"),
            archived_at=as_of,
            data_key_wrapped=bindparam("b_key"),
            data_key_master_id=key_id,
        )
    )
    for shop_id, zone in shops:
        cutoffs = Cutoffs.for_shop(as_of, ZoneInfo(zone))
        after = 0
        while True:
            with engine.begin() as conn:
                revisions = {
                    cid: rev
                    for cid, rev in conn.execute(
                        select(Customer.id, Customer.pii_revision)
                        .where(_archive_due(shop_id, cutoffs), Customer.id > after)
                        .order_by(Customer.id)
                        .limit(batch_size)
                    )
                }
                if not revisions:
                    break
                ids = list(revisions)
                segment = archive / f"segment-{shop_id}-{ids[0]:010d}-{secrets.token_hex(4)}.bin"
                pdfs = load_pdfs(conn, ids, documents)
                key_rows = archive_batch(conn, revisions, kek, key_id, segment, pdfs)
                conn.execute(store_keys, key_rows)
                masked = mask_batch(conn, ids, cutoffs)
            leaving = [key for cid in masked for key in pdfs.get(cid, {})]
            if documents is not None and leaving:
                remove_pdfs(documents, leaving)  # only now that the masking is committed
            result.masked += len(masked)
            result.pdfs_archived += sum(len(found) for found in pdfs.values())
            result.pdfs_removed += len(leaving)
            result.archived += len(ids)
            result.archived_ids.extend(ids)
            result.segments += 1
            result.segment_bytes += segment.stat().st_size
            result.batches += 1
            after = ids[-1]
    engine.dispose()
    result.seconds = round(time.perf_counter() - began, 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database-url", required=True, help="the shelflife database")
    parser.add_argument("--archive", type=Path, required=True, help="folder for the segments")
    parser.add_argument("--kek-file", type=Path, required=True, help="32-byte key (made if new)")
    parser.add_argument(
        "--documents",
        type=Path,
        default=None,
        help="the document store folder (the home's documents): archive and remove PDFs too",
    )
    parser.add_argument("--as-of", required=True, help="instant of the run (ISO 8601, with zone)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: shelflife's SHELFLIFE_BATCH_SIZE"
    )
    parser.add_argument("--ids", action="store_true", help="list the archived buyers' ids too")
    args = parser.parse_args(argv)
    as_of = datetime.fromisoformat(args.as_of)
    if as_of.tzinfo is None:
        parser.error("--as-of needs a time zone offset")
    batch_size = args.batch_size or load_settings().batch_size
    result = run_floor(
        args.database_url,
        args.archive,
        load_kek(args.kek_file),
        as_of.astimezone(UTC),
        batch_size,
        args.documents,
    )
    out = asdict(result)
    if not args.ids:
        del out["archived_ids"]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
