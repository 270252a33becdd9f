"""Make an imported shelflife database K times as large inside the database, in minutes.

`shelflife import` renders every invoice's PDF and merges every buyer (about 92 s per 20,000
customers here): a 1,000,000-customer benchmark database would take hours per backend. This
copies an imported base (N0 customers, nothing archived yet) K-1 times, set-based: per copy k
and per table one `INSERT INTO t SELECT … FROM t` (one transaction each), on SQLite and
PostgreSQL, driven by the metadata in `shelflife.adapters.db.tables`:

- primary keys, and foreign keys into a copied table, move by k * offset, the offset being the
  smallest power of ten above the table's largest id (customer 42 of copy 3 is 3000042 when
  the base has fewer than 1,000,000 customers); foreign keys into tables that are not copied
  (shops) stay;
- every column under a unique constraint is made unique per copy (below); one that this module
  does not know stops it, so a schema change cannot slip through.

Per table:

- customers: copied. `customer_nr_external` gets the suffix `-k`, e-mail addresses `+ck`
  before the `@` (an Amazon relay address stays one), `zip` the suffix `-k` (so copies are not
  each other's duplicates: `domain/duplicates.py` compares names, city and postcode).
  `identity_digest` (unique) and `buyer_link` are recomputed from the changed number or e-mail
  with the installation's identity key exactly as the import computes them (what each base
  digest was computed from is found by recomputing it: customer number, customer e-mail, then
  the billing addresses' e-mails; a base digest none of them reproduces stops the scaling).
  `pii_sources` (provenance: order numbers) names the copy's order numbers. Python computes
  these three per buyer into a temporary table that the INSERT … SELECT joins.
- orders: copied with the same dates, status and `is_amazon`. An Amazon number
  (`302-1234567-1234567`) keeps its shape: its three-digit marketplace prefix is swapped for
  one the base does not use, a different one per copy and base prefix, so the shop's Amazon
  pattern still matches (checked per shop and prefix); a shop's own number gets the prefix
  `Ck-` (checked not to match the Amazon pattern).
- order_items, addresses (e-mails and zip as for customers), address_history,
  customer_history: copied, keys moved.
- invoices, credits: copied; numbers get the suffix `-k`, `billing_zip` as `zip`;
  `pdf_sha256`/`pdf_stored` stay: the copy's PDF in the document store is a hard link to the
  base document's file (same bytes, so the digest stays true; the run unlinks only its name).
  The printed `billing_address` text keeps the base postcode (nothing compares it).
- returns: copied; the number follows its order's (`<order>-RET<n>`).
- not copied: shops, shop_feature_changes, users, password_history, api_tokens,
  web_sessions, installation, key_encryption_keys, wrapping_keys, retention_runs, exports,
  audit_log (installation, staff, run and audit data), and the archive tables
  (archive_copies, archive_segments, archive_problems): a base with any archived, masked or
  retrieved buyer is refused, as an archive record is sealed to its customer id.

PostgreSQL: the id sequences are set past the new ids and the copied tables ANALYZEd, as
autovacuum would. SQLite: no ANALYZE (the application never runs it; an imported database has
no statistics either); AUTOINCREMENT's counter follows the inserted ids by itself.

    .venv/bin/python bench/scale.py --home bench/out/compare-x --factor 10
    SHELFLIFE_DATABASE_URL=postgresql+psycopg://… .venv/bin/python bench/scale.py --home H \\
        --factor 10
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    case,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
)

from shelflife.adapters.db.tables import Base
from shelflife.bootstrap import build_app
from shelflife.config import Settings, load_settings
from shelflife.domain.buyer_link import buyer_link
from shelflife.domain.ports import pdf_object_key

COPIED = (
    "customers",
    "orders",
    "order_items",
    "addresses",
    "address_history",
    "customer_history",
    "invoices",
    "credits",
    "returns",
)
"""Per-buyer tables, in the order their copies are inserted (foreign keys first)."""

NOT_COPIED = frozenset(
    {
        "shops",
        "shop_feature_changes",
        "users",
        "password_history",
        "api_tokens",
        "web_sessions",
        "installation",
        "key_encryption_keys",
        "wrapping_keys",
        "retention_runs",
        "exports",
        "audit_log",
        "archive_copies",
        "archive_segments",
        "archive_problems",
    }
)

DOCUMENTS = {"invoices": "invoice", "credits": "credit"}
"""Tables whose rows may have a PDF in the document store, and their kind in its keys."""

AMAZON_SHAPE = re.compile(r"\d{3}-.+")


class ScaleError(Exception):
    """The base cannot be scaled as it is (never contains PII)."""


@dataclass
class ScaleReport:
    factor: int
    base_customers: int
    rows: dict[str, int] = field(default_factory=dict)  # per table, after scaling
    pdf_links: int = 0
    seconds: float = 0.0


def suffix(column: ColumnElement[Any], k: int) -> ColumnElement[Any]:
    """`value-k`; NULL stays NULL."""
    return column + literal(f"-{k}")


def mail(column: ColumnElement[Any], k: int) -> ColumnElement[Any]:
    """`local+ck@domain`; NULL stays NULL."""
    return func.replace(column, "@", f"+c{k}@")


def mail_value(value: str | None, k: int) -> str | None:
    return None if value is None else value.replace("@", f"+c{k}@")


@dataclass(frozen=True)
class OrderNumbers:
    """How copy k renames an order number (SQL and Python agree)."""

    prefixes: dict[int, dict[str, str]]  # copy -> base Amazon prefix -> the copy's

    def value(self, number: str, amazon: bool, k: int) -> str:
        if amazon:
            return self.prefixes[k][number[:3]] + number[3:]
        return f"C{k}-{number}"

    def sql(
        self, column: ColumnElement[Any], amazon: ColumnElement[Any], k: int
    ) -> ColumnElement[Any]:
        swapped = case(
            *((func.substr(column, 1, 3) == old, new) for old, new in self.prefixes[k].items()),
            else_=func.substr(column, 1, 3),
        )
        return case(
            (amazon, swapped + func.substr(column, 4)),
            else_=literal(f"C{k}-") + column,
        )


BUYERS = Table(
    "scale_buyers",
    MetaData(),
    Column("customer_id", Integer, primary_key=True),
    Column("identity_digest", String(64)),
    Column("buyer_link", String(64)),
    Column("pii_sources", Text),
    prefixes=["TEMPORARY"],
)
"""Per copy: each base buyer's recomputed digests and provenance, joined by the INSERT."""


@dataclass(frozen=True)
class Buyer:
    id: int
    channel: str
    digest_from: str | None  # "nr", "email" or "billing:<n>"; None: no digest stored
    number: str | None
    email: str | None
    billing_emails: tuple[str | None, ...]
    link: bool  # a link is stored
    sources: str | None


def tables() -> dict[str, Table]:
    metadata = Base.metadata
    unknown = set(metadata.tables) - set(COPIED) - NOT_COPIED
    if unknown:
        raise ScaleError(f"tables this module does not know: {', '.join(sorted(unknown))}")
    return {name: metadata.tables[name] for name in COPIED}


def offset_of(conn: Connection, table: Table) -> int:
    largest = int(conn.execute(select(func.max(table.c.id))).scalar() or 0)
    return int(10 ** len(str(largest)))


def check_base(conn: Connection, t: dict[str, Table]) -> None:
    customers = t["customers"]
    touched = conn.execute(
        select(func.count()).where(
            or_(
                customers.c.archived_revision.is_not(None),
                customers.c.masked_at.is_not(None),
                customers.c.retrieved_at.is_not(None),
                customers.c.shredded_at.is_not(None),
            )
        )
    ).scalar_one()
    copies = conn.execute(select(func.count()).select_from(Base.metadata.tables["archive_copies"]))
    if touched or copies.scalar_one():
        raise ScaleError(
            "the base has archived, masked or retrieved buyers; scale a freshly imported one"
        )


def order_numbers(conn: Connection, t: dict[str, Table], factor: int) -> OrderNumbers:
    """A fresh Amazon prefix per copy and base prefix, checked against each shop's pattern."""
    orders, shops = t["orders"], Base.metadata.tables["shops"]
    # literal arguments: PostgreSQL groups by the expression only when it is spelled alike
    prefix = func.substr(orders.c.order_nr_external, literal_column("1"), literal_column("3"))
    rows = conn.execute(
        select(
            orders.c.is_amazon,
            shops.c.amazon_order_pattern,
            prefix.label("prefix"),
            func.min(orders.c.order_nr_external).label("sample"),
        )
        .join(shops, shops.c.id == orders.c.shop_id)
        .group_by(orders.c.is_amazon, shops.c.amazon_order_pattern, prefix)
    ).all()
    used = sorted({r.prefix for r in rows if r.is_amazon})
    for r in rows:
        if r.is_amazon and not (r.prefix.isdigit() and AMAZON_SHAPE.fullmatch(r.sample)):
            raise ScaleError("an Amazon order number without a three-digit prefix")
    free = [f"{n:03d}" for n in range(999, -1, -1) if f"{n:03d}" not in used]
    if len(free) < len(used) * (factor - 1):
        raise ScaleError("too few unused Amazon order number prefixes for this factor")
    numbers = OrderNumbers(
        {
            k: {p: free[(k - 1) * len(used) + i] for i, p in enumerate(used)}
            for k in range(1, factor)
        }
    )
    for r in rows:
        for k in range(1, factor):
            renamed = numbers.value(r.sample, r.is_amazon, k)
            if (re.fullmatch(r.amazon_order_pattern, renamed) is not None) != r.is_amazon:
                raise ScaleError("a renamed order number changes whether it is an Amazon order")
    return numbers


@dataclass(frozen=True)
class Renamer:
    """Copy k's identity digest, buyer link and provenance of a base buyer, computed with the
    installation's keyed digest exactly as the import computes them."""

    digest: Callable[[str], str]
    numbers: OrderNumbers

    def identity(self, channel: str, value: str) -> str:
        return self.digest(f"{channel}|{value.strip().lower()}")

    def digest_source(self, row: Any, billing: tuple[str | None, ...]) -> str | None:
        """What the base digest was computed from: the customer number, else the customer
        e-mail, else a billing e-mail (the import's order), found by recomputing it."""
        if row.identity_digest is None:
            return None
        candidates = [("nr", row.customer_nr_external), ("email", row.email)]
        candidates += [(f"billing:{i}", e) for i, e in enumerate(billing)]
        for name, value in candidates:
            usable = isinstance(value, str) and value.strip()
            if usable and self.identity(row.channel, value) == row.identity_digest:
                return name
        raise ScaleError(f"customer {row.id}: cannot tell what its identity digest came from")

    def copy(self, buyer: Buyer, k: int) -> tuple[str | None, str | None, str | None]:
        """Copy k's identity digest, buyer link and provenance (`k=0`: the base's own)."""
        number = buyer.number if buyer.number is None or k == 0 else f"{buyer.number}-{k}"
        email = buyer.email if k == 0 else mail_value(buyer.email, k)
        billing = tuple(e if k == 0 else mail_value(e, k) for e in buyer.billing_emails)
        digest: str | None = None
        if buyer.digest_from == "nr":
            digest = self.identity(buyer.channel, number or "")
        elif buyer.digest_from == "email":
            digest = self.identity(buyer.channel, email or "")
        elif buyer.digest_from is not None:
            digest = self.identity(buyer.channel, billing[int(buyer.digest_from[8:])] or "")
        link = self.link(number, email, billing) if buyer.link else None
        sources = buyer.sources
        if sources and k:
            entries = json.loads(sources)
            for entry in entries:
                entry[2] = self.numbers.value(entry[2], buyer.channel == "amazon", k)
            sources = json.dumps(entries, ensure_ascii=False, separators=(",", ":"))
        return digest, link, sources

    def link(
        self, number: str | None, email: str | None, billing: tuple[str | None, ...]
    ) -> str | None:
        """The link as the import computes it: from the customer number, else the first relay
        address among the customer's and an order's billing e-mail."""
        for other in billing or (None,):
            link = buyer_link(self.digest, number, (email, other))
            if link is not None:
                return link
        return None


def load_buyers(conn: Connection, t: dict[str, Table], renamer: Renamer) -> list[Buyer]:
    """The base buyers with what their digests were computed from; each base digest and link
    must be what `Renamer.copy(…, 0)` computes, else the copies' would not be true either."""
    customers, addresses = t["customers"], t["addresses"]
    billing: dict[int, list[str | None]] = {}
    for address in conn.execute(
        select(addresses.c.customer_id, addresses.c.email)
        .where(addresses.c.kind == "billing")
        .order_by(addresses.c.id)
    ):
        billing.setdefault(address.customer_id, []).append(address.email)
    buyers = []
    for row in conn.execute(
        select(
            customers.c.id,
            customers.c.channel,
            customers.c.identity_digest,
            customers.c.buyer_link,
            customers.c.customer_nr_external,
            customers.c.email,
            customers.c.pii_sources,
        ).order_by(customers.c.id)
    ):
        emails = tuple(dict.fromkeys(billing.get(row.id, [])))
        buyer = Buyer(
            row.id,
            row.channel,
            renamer.digest_source(row, emails),
            row.customer_nr_external,
            row.email,
            emails,
            row.buyer_link is not None,
            row.pii_sources,
        )
        if renamer.copy(buyer, 0)[:2] != (row.identity_digest, row.buyer_link):
            raise ScaleError(f"customer {row.id}: its buyer link cannot be recomputed")
        buyers.append(buyer)
    return buyers


def check_unique(table: Table, copied: set[str]) -> None:
    """Every unique constraint or index of `table` has a column that each copy changes (a
    moved key or a column of `SPECIAL`), so that copies cannot collide."""
    groups = [{c.name} for c in table.columns if c.unique or c.primary_key]
    groups += [
        {c.name for c in constraint.columns}
        for constraint in table.constraints
        if isinstance(constraint, UniqueConstraint)
    ]
    groups += [{c.name for c in index.columns} for index in table.indexes if index.unique]
    changed = {
        c.name
        for c in table.columns
        if c.primary_key
        or any(fk.column.table.name in copied for fk in c.foreign_keys)
        or (table.name, c.name) in SPECIAL
    }
    for group in groups:
        if not group & changed:
            raise ScaleError(f"{table.name}: copies would repeat ({', '.join(sorted(group))})")


def column_values(
    table: Table, k: int, offsets: dict[str, int], numbers: OrderNumbers, t: dict[str, Table]
) -> list[ColumnElement[Any]]:
    """What copy k inserts into each column of `table`, in column order."""
    values: list[ColumnElement[Any]] = []
    for column in table.columns:
        name = column.name
        source: ColumnElement[Any] = table.c[name]
        foreign = [fk.column.table.name for fk in column.foreign_keys]
        if column.primary_key:
            value = source + k * offsets[table.name]
        elif foreign and foreign[0] in offsets:
            value = source + k * offsets[foreign[0]]
        elif (table.name, name) in SPECIAL:
            value = SPECIAL[(table.name, name)](source, k, numbers, t)
        else:
            value = source
        values.append(value.label(name))
    return values


def _order_number(source: ColumnElement[Any], k: int, n: OrderNumbers, t: dict[str, Table]) -> Any:
    return n.sql(source, t["orders"].c.is_amazon, k)


def _return_number(source: ColumnElement[Any], k: int, n: OrderNumbers, t: dict[str, Table]) -> Any:
    orders, returns = t["orders"], t["returns"]
    amazon = select(orders.c.is_amazon).where(orders.c.id == returns.c.order_id).scalar_subquery()
    return n.sql(source, amazon, k)


def _from_buyers(name: str) -> Callable[..., Any]:
    return lambda _source, _k, _n, _t: BUYERS.c[name]


SPECIAL: dict[tuple[str, str], Callable[..., Any]] = {
    ("customers", "identity_digest"): _from_buyers("identity_digest"),
    ("customers", "buyer_link"): _from_buyers("buyer_link"),
    ("customers", "pii_sources"): _from_buyers("pii_sources"),
    ("customers", "customer_nr_external"): lambda s, k, _n, _t: suffix(s, k),
    ("customers", "email"): lambda s, k, _n, _t: mail(s, k),
    ("customers", "zip"): lambda s, k, _n, _t: suffix(s, k),
    ("addresses", "email"): lambda s, k, _n, _t: mail(s, k),
    ("addresses", "email2"): lambda s, k, _n, _t: mail(s, k),
    ("addresses", "zip"): lambda s, k, _n, _t: suffix(s, k),
    ("orders", "order_nr_external"): _order_number,
    ("returns", "return_nr"): _return_number,
    ("invoices", "invoice_nr"): lambda s, k, _n, _t: suffix(s, k),
    ("invoices", "billing_zip"): lambda s, k, _n, _t: suffix(s, k),
    ("credits", "credit_nr"): lambda s, k, _n, _t: suffix(s, k),
    ("credits", "billing_zip"): lambda s, k, _n, _t: suffix(s, k),
}
"""Columns a copy changes besides keys: see the module docstring for why."""


def copy_table(
    conn: Connection,
    table: Table,
    k: int,
    offsets: dict[str, int],
    numbers: OrderNumbers,
    t: dict[str, Table],
) -> None:
    values = column_values(table, k, offsets, numbers, t)
    query = select(*values).where(table.c.id < offsets[table.name])
    if table.name == "customers":
        query = query.select_from(table.join(BUYERS, BUYERS.c.customer_id == table.c.id))
    conn.execute(insert(table).from_select([c.name for c in table.columns], query))


def document_root(settings: Settings) -> Path:
    parsed = urlparse(settings.resolved_document_store_url)
    if parsed.scheme != "file":
        raise ScaleError("the document store must be a local folder (file://) to link PDFs")
    return Path(unquote(parsed.path))


def stored_pdfs(conn: Connection, table: Table) -> list[int]:
    query = select(table.c.id).where(table.c.pdf_stored.is_(True)).order_by(table.c.id)
    return list(conn.execute(query).scalars())


def link_pdfs(root: Path, kind: str, ids: list[int], k: int, offset: int) -> int:
    """Copy k's PDFs: hard links to the base documents' files (same bytes, same digest)."""
    made: set[Path] = set()
    for document_id in ids:
        target = root / pdf_object_key(kind, document_id + k * offset)
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            made.add(target.parent)
        os.link(root / pdf_object_key(kind, document_id), target)
    return len(ids)


def _buyer_rows(buyers: list[Buyer], k: int, renamer: Renamer) -> Iterator[dict[str, Any]]:
    for buyer in buyers:
        digest, link, sources = renamer.copy(buyer, k)
        yield {
            "customer_id": buyer.id,
            "identity_digest": digest,
            "buyer_link": link,
            "pii_sources": sources,
        }


def scale(settings: Settings, factor: int, say: Callable[[str], None] = print) -> ScaleReport:
    """Make the database of `settings` `factor` times as large (see the module docstring)."""
    if factor < 1:
        raise ScaleError("the factor must be at least 1")
    began = time.perf_counter()
    app = build_app(settings)
    try:
        root = document_root(settings)
        t = tables()
        for table in t.values():
            check_unique(table, set(t))
        digest = app.keys.identity_digest  # before taking the write lock: it reads the database
        with app.engine.connect() as conn:
            with conn.begin():
                check_base(conn, t)
                offsets = {name: offset_of(conn, table) for name, table in t.items()}
                renamer = Renamer(digest, order_numbers(conn, t, factor))
                buyers = load_buyers(conn, t, renamer)
                pdfs = {name: stored_pdfs(conn, t[name]) for name in DOCUMENTS}
                BUYERS.create(conn)
            report = ScaleReport(factor, len(buyers))
            for k in range(1, factor):
                with conn.begin():
                    conn.execute(delete(BUYERS))
                    rows = list(_buyer_rows(buyers, k, renamer))
                    for start in range(0, len(rows), 10_000):
                        conn.execute(insert(BUYERS), rows[start : start + 10_000])
                for table in t.values():
                    with conn.begin():
                        copy_table(conn, table, k, offsets, renamer.numbers, t)
                for name, kind in DOCUMENTS.items():
                    report.pdf_links += link_pdfs(root, kind, pdfs[name], k, offsets[name])
                say(f"copy {k} of {factor - 1} made after {time.perf_counter() - began:.1f} s")
            with conn.begin():
                BUYERS.drop(conn)
                for name, table in t.items():
                    report.rows[name] = conn.execute(
                        select(func.count()).select_from(table)
                    ).scalar_one()
                if conn.dialect.name == "postgresql":
                    for name in t:  # table names are ours, not input
                        conn.execute(
                            text(
                                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                f"(SELECT max(id) FROM {name}))"
                            )
                        )
                        conn.execute(text(f"ANALYZE {name}"))
    finally:
        app.close()
    report.seconds = round(time.perf_counter() - began, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--home", type=Path, required=True, help="the imported base's home")
    parser.add_argument("--factor", type=int, required=True, help="K: the database x K")
    args = parser.parse_args(argv)
    try:
        report = scale(
            load_settings(args.home), args.factor, say=lambda line: print(line, file=sys.stderr)
        )
    except ScaleError as exc:
        print(f"scale: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(vars(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
