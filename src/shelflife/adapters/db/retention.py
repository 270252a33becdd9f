"""The retention policy as set-based SQL: select due buyers in batches, mask them in bulk.

Each function issues a fixed number of statements per batch, whatever the batch size; nothing
here loops over rows with a query inside. `domain.policy` holds the same rules in Python.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    ColumnElement,
    Connection,
    Integer,
    LargeBinary,
    String,
    and_,
    any_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from shelflife.adapters.db.tables import (
    AMAZON,
    PII_TABLES,
    ArchiveCopy,
    Credit,
    Customer,
    CustomerHistory,
    Invoice,
    Order,
    Shop,
)
from shelflife.domain.masking import MASK_PROFILE, MaskKind, mask_value
from shelflife.domain.policy import Cutoffs
from shelflife.domain.ports import ArchivedCopy, ArchiveKeyRow, ShopRow
from shelflife.domain.snapshot import COLUMNS, CustomerSnapshot


def shops(conn: Connection, enabled_only: bool = False) -> list[ShopRow]:
    query = select(Shop.id, Shop.name, Shop.time_zone, Shop.retention_enabled).order_by(Shop.id)
    if enabled_only:
        query = query.where(Shop.retention_enabled.is_(True))
    return [ShopRow(r.id, r.name, r.time_zone, r.retention_enabled) for r in conn.execute(query)]


def _among(
    conn: Connection, column: ColumnElement[int] | InstrumentedAttribute[int], ids: Sequence[int]
) -> ColumnElement[bool]:
    """`column IN ids` with the ids as one parameter instead of a thousand: on PostgreSQL
    `= ANY(array)`, on SQLite `IN (SELECT value FROM json_each(...))`. Each statement then has
    one shape whatever the batch: its compiled form and its plan are reused, where an
    expanding IN renders a thousand bind names on every execution (a tenth of the nightly
    run's Python time on SQLite)."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(ids), type_=ARRAY(Integer)))
    listed = json.dumps([int(i) for i in ids])
    each = func.json_each(bindparam(None, listed, type_=String)).table_valued("value")
    return column.in_(select(each.c.value))


def _closed_at() -> ColumnElement[Any]:
    return func.coalesce(Order.shipped_at, Order.cancelled_at)


def _holds_real_pii() -> ColumnElement[bool]:
    """The buyer row is not masked, or was retrieved and holds restored values."""
    return or_(Customer.masked_at.is_(None), Customer.retrieved_at.is_not(None))


class _ShopIs(FunctionElement[bool]):
    """`column = :shop`, compiled per database (see `in_shop`); a function element so that
    statements holding it keep their place in SQLAlchemy's compiled-statement cache."""

    type = Boolean()
    name = "shop_is"
    inherit_cache = True
    _is_implicitly_boolean = True  # a comparison: no "= 1" after it on SQLite


@compiles(_ShopIs)
def _shop_is(element: _ShopIs, compiler: SQLCompiler, **kw: Any) -> str:
    column, shop = element.clauses
    return compiler.process(column == shop, **kw)


@compiles(_ShopIs, "sqlite")
def _shop_is_sqlite(element: _ShopIs, compiler: SQLCompiler, **kw: Any) -> str:
    column, shop = element.clauses
    return compiler.process((column + 0) == shop, **kw)


def in_shop(shop_id: int) -> ColumnElement[bool]:
    """`customers.shop_id = :shop`; on SQLite written so that no index can serve it
    (`shop_id + 0`).

    Without statistics SQLite takes an equality on an index's leading column to be selective
    and walks the (shop, channel, number) index: every buyer of the shop, sorted afterwards,
    for each batch of a thousand, which grows with the database (a 1,000,000-customer backlog
    ran at a fifth of its 20,000-customer speed). Barred from it, the planner walks the buyers
    by id from the last batch (`id > :after ORDER BY id LIMIT`) and looks a batch's ids up by
    rowid. A shop holds a large share of all buyers, so the index never saves much.
    PostgreSQL keeps statistics and gets the plain equality: to it `shop_id + 0 = :shop` is an
    expression it guesses at 0.5 % of the rows, and at 1,000,000 customers that guess turned
    the dry run's mask count into a nested loop over every open order for each buyer (more
    than 8 minutes; 2.4 s with the equality)."""
    return _ShopIs(Customer.shop_id, literal(shop_id, Integer))


WALK_FROM = "walk_from"
"""The bind name of the batch walk's last id; `select_batch` sets it, every other statement
leaves it at 0 (no bound: ids are positive)."""


def _rows_of_buyer(model: Any) -> ColumnElement[bool]:
    """`model.customer_id = customers.id`, with the walk's bound repeated on the rows' side.

    The bound changes no result (the buyer's id is above it already), but it lets
    PostgreSQL start the rows' index where the batch starts. With the shop's real size known
    (see `in_shop`), PostgreSQL merges the buyers with their orders; without the bound the
    orders' index was read from its first entry for every batch (a steady night's walk at
    1,000,000 customers: 6.9 s instead of 3.3 s)."""
    return and_(
        model.customer_id == Customer.id,
        model.customer_id > bindparam(WALK_FROM, 0, type_=Integer),
    )


def _archive_current() -> ColumnElement[bool]:
    return Customer.archived_revision == Customer.pii_revision


def archive_due_condition(shop_id: int, c: Cutoffs) -> ColumnElement[bool]:
    """SQL twin of `policy.needs_archive` (the feature flag is checked per shop by the caller).
    Its first three column tests are the predicate of `ix_customers_copy_wanted`, spelled the
    same, with the channel inline: a database matches a partial index's predicate to the
    query's text, and a bound parameter's value is not known to every plan."""
    return and_(
        in_shop(shop_id),
        Customer.channel == literal_column(f"'{AMAZON}'"),
        _holds_real_pii(),
        or_(Customer.archived_revision.is_(None), ~_archive_current()),
        or_(
            Customer.archive_failed_at.is_(None),
            Customer.archive_failed_at <= c.retry_failed_before,
        ),
        exists().where(_rows_of_buyer(Order), _closed_at() < c.archive_before),
    )


def retry_due_condition(shop_id: int, c: Cutoffs) -> ColumnElement[bool]:
    """SQL twin of `policy.is_retry`: due for archiving again after a failed attempt."""
    return and_(archive_due_condition(shop_id, c), Customer.archive_failed_at.is_not(None))


def _key_ok(master_key_id: str, also: Sequence[str]) -> ColumnElement[bool]:
    """The data key is under the loaded master key (or, during a key rotation, the other one)."""
    if not also:
        return Customer.data_key_master_id == master_key_id
    return Customer.data_key_master_id.in_([master_key_id, *also])


def _copy_now(master_key_id: str, also: Sequence[str]) -> ColumnElement[bool]:
    """A verified copy holds the current PII under a data key the loaded master key opens."""
    return and_(_archive_current(), _key_ok(master_key_id, also))


def _copy_tonight(
    shop_id: int, c: Cutoffs, master_key_id: str, also: Sequence[str]
) -> ColumnElement[bool]:
    """Tonight's archive step will give the buyer such a copy (SQL twin of
    `policy.after_archive`): a buyer without a data key yet gets one under the loaded key."""
    return and_(
        archive_due_condition(shop_id, c),
        or_(Customer.data_key_master_id.is_(None), _key_ok(master_key_id, also)),
    )


def _copy_current(
    shop_id: int, c: Cutoffs, master_key_id: str, tonight: bool, also: Sequence[str] = ()
) -> ColumnElement[bool]:
    """`_copy_now`; with `tonight`, or `_copy_tonight` (never both: see `due_tonight_parts`)."""
    if not tonight:
        return _copy_now(master_key_id, also)
    return or_(_copy_now(master_key_id, also), _copy_tonight(shop_id, c, master_key_id, also))


def _mask_ready(shop_id: int, c: Cutoffs) -> ColumnElement[bool]:
    """Everything `policy.can_mask` asks except the archive copy."""
    return and_(
        in_shop(shop_id),
        Customer.channel == "amazon",
        Customer.masked_at.is_(None),
        exists().where(_rows_of_buyer(Order)),
        ~exists().where(
            _rows_of_buyer(Order),
            or_(_closed_at().is_(None), _closed_at() >= c.mask_before),
        ),
        ~exists().where(_rows_of_buyer(Invoice), Invoice.created_at >= c.mask_before),
        ~exists().where(_rows_of_buyer(Credit), Credit.created_at >= c.mask_before),
    )


def mask_ready_condition(shop_id: int, c: Cutoffs) -> ColumnElement[bool]:
    """Buyers the mask step selects by these cut-offs once their archive copy is current."""
    return _mask_ready(shop_id, c)


def _remask_ready(shop_id: int, c: Cutoffs) -> ColumnElement[bool]:
    """Everything `policy.can_remask` asks except the archive copy."""
    return and_(
        in_shop(shop_id),
        Customer.retrieved_at.is_not(None),
        Customer.retrieved_at < c.remask_before,
    )


def mask_due_condition(
    shop_id: int, c: Cutoffs, master_key_id: str, *, tonight: bool = False, also: Sequence[str] = ()
) -> ColumnElement[bool]:
    """SQL twin of `policy.can_mask`, for buyers whose archive data key is sealed under the
    master key loaded now (a copy the loaded key cannot open is no copy to mask against);
    with `tonight`, of `can_mask(after_archive(…))`: what the mask step will select after
    tonight's archive step (a dry run counts it)."""
    return and_(_mask_ready(shop_id, c), _copy_current(shop_id, c, master_key_id, tonight, also))


def due_tonight_parts(
    shop_id: int,
    c: Cutoffs,
    master_key_id: str,
    *,
    remask: bool = False,
    also: Sequence[str] = (),
) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """`mask_due_condition(…, tonight=True)` (or the re-mask one) as two disjoint conditions
    whose counts add up to its count: the buyers with a current copy, and those tonight's
    archive step will give one (no buyer is both: the first needs the archived revision equal
    to the current one, the second needs it missing or different).

    In one condition the second part sits in an OR with the first, and PostgreSQL evaluates
    an EXISTS inside an OR row by row; at 1,000,000 customers, with the shop's buyers then
    guessed at 0.5 % (`shop_id + 0`, since replaced on PostgreSQL, see `in_shop`), it looped
    over every open order for each buyer: a dry run still counting after 8 minutes. Apart,
    each is a plain join whatever the estimate: 2.1 s."""
    ready = _remask_ready(shop_id, c) if remask else _mask_ready(shop_id, c)
    return (
        and_(ready, _copy_now(master_key_id, also)),
        and_(ready, _copy_tonight(shop_id, c, master_key_id, also)),
    )


def remask_due_condition(
    shop_id: int, c: Cutoffs, master_key_id: str, *, tonight: bool = False, also: Sequence[str] = ()
) -> ColumnElement[bool]:
    """SQL twin of `policy.can_remask`, restricted and extended like `mask_due_condition`."""
    return and_(_remask_ready(shop_id, c), _copy_current(shop_id, c, master_key_id, tonight, also))


def count_customers(conn: Connection, condition: ColumnElement[bool]) -> int:
    return int(
        conn.execute(select(func.count()).select_from(Customer).where(condition)).scalar_one()
    )


def mask_refused_condition(
    shop_id: int, c: Cutoffs, master_key_id: str, *, remask: bool = False, also: Sequence[str] = ()
) -> ColumnElement[bool]:
    """Buyers due for (re-)masking with a current copy whose data key is sealed under another
    master key (or none): they are not masked, and the run counts them."""
    ready = _remask_ready(shop_id, c) if remask else _mask_ready(shop_id, c)
    return and_(
        ready,
        _archive_current(),
        or_(Customer.data_key_master_id.is_(None), ~_key_ok(master_key_id, also)),
    )


def select_batch(
    conn: Connection, condition: ColumnElement[bool], after_id: int, limit: int
) -> list[int]:
    """Next batch of buyer ids, in id order; on PostgreSQL the rows stay locked for this
    transaction and rows another worker holds are skipped."""
    query = (
        select(Customer.id)
        .where(condition, Customer.id > after_id)
        .order_by(Customer.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(conn.execute(query, {WALK_FROM: after_id}).scalars())


def first_customer_ids(conn: Connection, condition: ColumnElement[bool], limit: int) -> list[int]:
    """The lowest buyer ids matching a condition, without locking them: for log lines."""
    query = select(Customer.id).where(condition).order_by(Customer.id).limit(limit)
    return list(conn.execute(query).scalars())


def select_among(conn: Connection, condition: ColumnElement[bool], ids: Sequence[int]) -> list[int]:
    """Those of `ids` matching a condition, in id order; on PostgreSQL claimed as
    `select_batch` claims (a no-op for rows this transaction holds already)."""
    if not ids:
        return []
    query = select(Customer.id).where(condition, _among(conn, Customer.id, ids))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(conn.execute(query.order_by(Customer.id)).scalars())


def count_retries(conn: Connection, ids: Sequence[int]) -> int:
    if not ids:
        return 0
    return int(
        conn.execute(
            select(func.count()).where(
                _among(conn, Customer.id, ids), Customer.archive_failed_at.is_not(None)
            )
        ).scalar_one()
    )


def archive_keys(conn: Connection, ids: Sequence[int]) -> dict[int, ArchiveKeyRow]:
    rows = conn.execute(
        select(
            Customer.id,
            Customer.pii_revision,
            Customer.data_key_wrapped,
            Customer.data_key_master_id,
            Customer.shredded_at,
        ).where(_among(conn, Customer.id, ids))
    )
    return {
        r.id: ArchiveKeyRow(
            r.id,
            r.pii_revision,
            r.data_key_wrapped,
            r.data_key_master_id,
            shredded=r.shredded_at is not None,
        )
        for r in rows
    }


def load_snapshots(
    conn: Connection, ids: Sequence[int], revisions: Mapping[int, int]
) -> dict[int, CustomerSnapshot]:
    """Every unmasked PII row of these buyers: one query per PII table for the whole batch,
    its rows handed to the snapshots as tuples (the nightly run's hottest loop)."""
    snaps = {cid: CustomerSnapshot(cid, revisions[cid]) for cid in ids}
    for name, model in PII_TABLES.items():
        columns = [getattr(model, column) for column in COLUMNS[name]]
        if model is Customer:
            query = select(Customer.id.label("customer_id"), Customer.id, *columns).where(
                _among(conn, Customer.id, ids), _holds_real_pii()
            )
        else:
            query = select(model.customer_id, model.id, *columns).where(
                _among(conn, model.customer_id, ids), model.masked_at.is_(None)
            )
        for customer_id, row_id, *values in conn.execute(query):  # to_bytes sorts
            snaps[customer_id].add_values(name, row_id, values)
    return snaps


def record_archived(conn: Connection, done: Sequence[ArchivedCopy], now: datetime) -> None:
    """Mark verified copies; a buyer's data key is stored when the copy made one."""
    if not done:
        return
    if conn.dialect.name == "postgresql":
        _record_copies_postgres(conn, done, now)
        _record_archived_postgres(conn, done, now)
        return
    conn.execute(
        insert(ArchiveCopy),
        [
            {
                "customer_id": d.customer_id,
                "revision": d.revision,
                "object_key": d.object_key,
                "ciphertext_sha256": d.sha256,
                "created_at": now,
                "verified_at": now,
                "record_offset": d.offset,
                "record_length": d.length,
            }
            for d in done
        ],
    )
    # The revision written is the one read with the snapshot: a concurrent change leaves the
    # copy stale, and the mask step then refuses.
    conn.execute(
        update(Customer)
        .where(Customer.id == bindparam("b_cid"))
        .values(
            archived_revision=bindparam("b_rev"),
            archived_at=now,
            archive_failed_at=None,
            archive_failure=None,
            data_key_wrapped=func.coalesce(
                Customer.data_key_wrapped, bindparam("b_key", type_=LargeBinary)
            ),
            data_key_master_id=func.coalesce(
                Customer.data_key_master_id, bindparam("b_kid", type_=String)
            ),
        ),
        [
            {
                "b_cid": d.customer_id,
                "b_rev": d.revision,
                "b_key": d.wrapped_key,
                "b_kid": d.master_key_id,
            }
            for d in done
        ],
    )


def _record_copies_postgres(conn: Connection, done: Sequence[ArchivedCopy], now: datetime) -> None:
    """The index rows of `record_archived` in one INSERT over arrays: an executemany is a
    statement and a round trip per buyer on PostgreSQL."""
    given = select(
        func.unnest(bindparam("c_cid", [d.customer_id for d in done], ARRAY(Integer))).label("cid"),
        func.unnest(bindparam("c_rev", [d.revision for d in done], ARRAY(Integer))).label("rev"),
        func.unnest(bindparam("c_key", [d.object_key for d in done], ARRAY(String))).label("key"),
        func.unnest(bindparam("c_sha", [d.sha256 for d in done], ARRAY(String))).label("sha"),
        func.unnest(bindparam("c_off", [d.offset for d in done], ARRAY(BigInteger))).label("off"),
        func.unnest(bindparam("c_len", [d.length for d in done], ARRAY(Integer))).label("len"),
    ).subquery("given")
    at = literal(now, ArchiveCopy.created_at.type)
    conn.execute(
        insert(ArchiveCopy).from_select(
            [
                "customer_id",
                "revision",
                "object_key",
                "ciphertext_sha256",
                "created_at",
                "verified_at",
                "record_offset",
                "record_length",
            ],
            select(
                given.c.cid, given.c.rev, given.c.key, given.c.sha, at, at, given.c.off, given.c.len
            ),
        )
    )


def _record_archived_postgres(
    conn: Connection, done: Sequence[ArchivedCopy], now: datetime
) -> None:
    """The buyers' UPDATE of `record_archived` as one statement over arrays (`unnest`): an
    executemany is a round trip per buyer on PostgreSQL, the largest cost of the archive
    step there (SQLite runs in-process, where the executemany is cheaper than the arrays)."""
    given = select(
        func.unnest(bindparam("b_cid", [d.customer_id for d in done], ARRAY(Integer))).label("cid"),
        func.unnest(bindparam("b_rev", [d.revision for d in done], ARRAY(Integer))).label("rev"),
        func.unnest(bindparam("b_key", [d.wrapped_key for d in done], ARRAY(LargeBinary))).label(
            "key"
        ),
        func.unnest(bindparam("b_kid", [d.master_key_id for d in done], ARRAY(String))).label(
            "kid"
        ),
    ).subquery("given")
    conn.execute(
        update(Customer)
        .where(Customer.id == given.c.cid)
        .values(
            archived_revision=given.c.rev,
            archived_at=literal(now, Customer.archived_at.type),
            archive_failed_at=None,
            archive_failure=None,
            data_key_wrapped=func.coalesce(Customer.data_key_wrapped, given.c.key),
            data_key_master_id=func.coalesce(Customer.data_key_master_id, given.c.kid),
        )
    )


def record_failed(conn: Connection, failed: Sequence[tuple[int, str]], now: datetime) -> None:
    if not failed:
        return
    conn.execute(
        update(Customer)
        .where(Customer.id == bindparam("b_cid"))
        .values(archive_failed_at=now, archive_failure=bindparam("b_why")),
        [{"b_cid": cid, "b_why": why[:200]} for cid, why in failed],
    )


def _mask_assignments(name: str) -> dict[str, Any]:
    """Each PII column's new value: empty stays empty, a tax field the row's shop keeps stays
    as it is (one correlated test per column in the same UPDATE: no per-row work), every other
    value becomes its mask value."""
    model = PII_TABLES[name]
    values: dict[str, Any] = {}
    for f in MASK_PROFILE[name]:
        col = getattr(model, f.column)
        empty = col.is_(None) if f.kind is MaskKind.DATE else or_(col.is_(None), col == "")
        unchanged: list[tuple[ColumnElement[bool], Any]] = [(empty, col)]
        if f.kept_by is not None:
            keep = getattr(Shop, f"keep_{f.kept_by}")
            unchanged.append((exists().where(Shop.id == model.shop_id, keep.is_(True)), col))
        values[f.column] = case(*unchanged, else_=literal(mask_value(f.kind), col.type))
    return values


def mask_customers(conn: Connection, ids: Sequence[int], now: datetime, event: str) -> int:
    """Overwrite every non-empty PII field of these buyers; one UPDATE per table.

    The buyer UPDATE re-checks that the archive is current, and only buyers it touched are
    masked in the other tables, so a change that raced the selection cannot slip through.
    """
    if not ids:
        return 0
    touched = list(
        conn.execute(
            update(Customer)
            .where(_among(conn, Customer.id, ids), _archive_current())
            .values(
                # typed bind: a bare datetime skips UtcDateTime, and SQLite stored local time
                masked_at=func.coalesce(Customer.masked_at, literal(now, Customer.masked_at.type)),
                retrieved_at=None,
                identity_digest=None,
                **_mask_assignments("customers"),
            )
            .returning(Customer.id)
        ).scalars()
    )
    if not touched:
        return 0
    for name, model in PII_TABLES.items():
        if model is Customer:
            continue
        conn.execute(
            update(model)
            .where(_among(conn, model.customer_id, touched), model.masked_at.is_(None))
            .values(masked_at=now, **_mask_assignments(name))
        )
    _record_history(conn, touched, now, event)
    return len(touched)


def _record_history(conn: Connection, ids: Sequence[int], now: datetime, event: str) -> None:
    """A history row per buyer; on PostgreSQL one INSERT over an array (an executemany is a
    statement and a round trip per buyer there)."""
    if conn.dialect.name != "postgresql":
        conn.execute(
            insert(CustomerHistory),
            [
                {"customer_id": cid, "recorded_at": now, "event": event, "user_name": "shelflife"}
                for cid in ids
            ],
        )
        return
    given = select(func.unnest(bindparam("h_cid", list(ids), ARRAY(Integer))).label("cid"))
    conn.execute(
        insert(CustomerHistory).from_select(
            ["customer_id", "recorded_at", "event", "user_name"],
            select(
                given.subquery("given").c.cid,
                literal(now, CustomerHistory.recorded_at.type),
                literal(event, String),
                literal("shelflife", String),
            ),
        )
    )
