"""The project's own errors. Messages name what was wrong and where, never a PII value.

One vocabulary for every entry point: each kind carries the CLI exit code and the HTTP status
it maps to, so the command line and the API answer the same failure the same way. Messages
never name a CLI flag or an HTTP detail; entry points add those where they help.
"""

from __future__ import annotations


class ShelflifeError(Exception):
    """Base of every error shelflife shows to a person."""

    exit_code = 1
    http_status = 500


# -- the five kinds ------------------------------------------------------------------------------


class InvalidInput(ShelflifeError):
    """The caller asked for something malformed or impossible; exit code 2, HTTP 422."""

    exit_code = 2
    http_status = 422


class NotFound(InvalidInput):
    """The thing asked for does not exist; exit code 2, HTTP 404."""

    http_status = 404


class Conflict(InvalidInput):
    """The request is well-formed but the current state does not allow it; exit 2, HTTP 409."""

    http_status = 409


class Unavailable(ShelflifeError):
    """A dependency (database, archive, key) cannot do its part now; exit code 1, HTTP 503."""

    exit_code = 1
    http_status = 503


class NotAuthenticated(ShelflifeError):
    """No valid session or token came with the request; HTTP 401."""

    exit_code = 1
    http_status = 401


class Forbidden(ShelflifeError):
    """The caller may not do this; exit code 1, HTTP 403."""

    exit_code = 1
    http_status = 403


# -- specific errors -----------------------------------------------------------------------------


class UnknownOrder(NotFound):
    def __init__(self, order_nr: str) -> None:
        super().__init__(f"no order with number {order_nr!r}; check the number or import it first")


class UnknownShop(NotFound):
    def __init__(self, shop: str) -> None:
        super().__init__(f"no shop named {shop!r}; shops are created by importing their orders")


class NotRetrievable(Conflict):
    """Retrieval asked for an order whose PII is not masked (nothing to restore)."""


class ArchiveUnavailable(Unavailable):
    """The archive store could not be read or written; operational, exit code 1."""


class KeyUnavailable(Unavailable):
    """The master key is missing, unreadable, mismatched or does not open the data."""


class KeyServiceUnavailable(KeyUnavailable):
    """The key service (KMS) did not answer or refused a request: the key may be the right
    one, and the same request succeeds once the service answers again."""


class ArchiveCorrupt(Unavailable):
    """An archive object failed authentication or does not match what was recorded."""


class DatabaseBusy(Unavailable):
    """Another process holds the database lock longer than we are willing to wait."""


class NotInitialised(Unavailable):
    """The home folder or database has not been set up by `shelflife init`."""
