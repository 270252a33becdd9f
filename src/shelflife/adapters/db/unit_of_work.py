"""The unit of work over SQLAlchemy: one connection, one transaction, the repositories on it.

Re-entrant (see `domain.ports`): the outermost `with` opens the transaction and the outermost
`commit()` commits it; an inner `with` joins it, and its `commit()` leaves the decision to the
outermost one. A failure inside an inner `with` dooms the whole transaction, so a caller that
catches it cannot commit half of the work.
"""

from __future__ import annotations

from typing import Self

from sqlalchemy import Connection, Engine

from shelflife.adapters.db.after_sales import SqlAfterSales
from shelflife.adapters.db.pdfs import SqlPdfs
from shelflife.adapters.db.repositories import (
    SqlArchiveCopies,
    SqlAudit,
    SqlCustomers,
    SqlExports,
    SqlHistory,
    SqlInstallation,
    SqlOrders,
    SqlRuns,
    SqlShops,
)


class DoomedTransaction(RuntimeError):
    """A commit after a part of the unit of work failed: a programming error, never shown."""


class SqlUnitOfWork:
    """Give it the engine for writers, or `read_only_engine(...)` with `read_only=True`: a
    read-only unit of work never takes (or waits for) the write lock and refuses `commit`."""

    orders: SqlOrders
    customers: SqlCustomers
    archive_copies: SqlArchiveCopies
    after_sales: SqlAfterSales
    history: SqlHistory
    audit: SqlAudit
    runs: SqlRuns
    shops: SqlShops
    installation: SqlInstallation
    exports: SqlExports
    pdfs: SqlPdfs

    def __init__(self, engine: Engine, *, read_only: bool = False) -> None:
        self.engine = engine
        self.read_only = read_only
        self._conn: Connection | None = None
        self._depth = 0
        self._doomed = False

    def __enter__(self) -> Self:
        if self._depth == 0:
            conn = self.engine.connect()
            try:
                conn.begin()
            except BaseException:
                conn.close()
                raise
            self._conn, self._doomed = conn, False
            self.orders = SqlOrders(conn)
            self.customers = SqlCustomers(conn)
            self.archive_copies = SqlArchiveCopies(conn)
            self.after_sales = SqlAfterSales(conn)
            self.history = SqlHistory(conn)
            self.audit = SqlAudit(conn)
            self.runs = SqlRuns(conn)
            self.shops = SqlShops(conn)
            self.installation = SqlInstallation(conn)
            self.exports = SqlExports(conn)
            self.pdfs = SqlPdfs(conn)
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if exc[0] is not None:
            self._doomed = True
        if self._depth == 0 and self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.rollback()  # nothing after the last commit survives
            finally:
                conn.close()

    def commit(self) -> None:
        if self.read_only:
            raise DoomedTransaction("a read-only unit of work cannot commit")
        if self._doomed:
            raise DoomedTransaction("a part of this unit of work failed; it is rolled back")
        if self._depth == 1 and self._conn is not None:
            self._conn.commit()

    def rollback(self) -> None:
        if self._conn is not None:
            if self._depth > 1:
                self._doomed = True
            self._conn.rollback()
