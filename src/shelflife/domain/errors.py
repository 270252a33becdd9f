"""The project's own errors. Messages name what was wrong and where, never a PII value."""

from __future__ import annotations


class ShelflifeError(Exception):
    """Base of every error shelflife shows to a person."""

    exit_code = 1


class InvalidInput(ShelflifeError):
    """The caller asked for something malformed or impossible; exit code 2."""

    exit_code = 2


class UnknownOrder(InvalidInput):
    def __init__(self, order_nr: str) -> None:
        super().__init__(f"no order with number {order_nr!r}; check the number or import it first")


class UnknownShop(InvalidInput):
    def __init__(self, shop: str) -> None:
        super().__init__(f"no shop named {shop!r}; shops are created by importing their orders")


class NotRetrievable(InvalidInput):
    """Retrieval asked for an order whose PII is not masked (nothing to restore)."""


class ArchiveUnavailable(ShelflifeError):
    """The archive store could not be read or written; operational, exit code 1."""


class KeyUnavailable(ShelflifeError):
    """The master key is missing, unreadable or does not open the data; exit code 1."""


class ArchiveCorrupt(ShelflifeError):
    """An archive object failed authentication or does not match what was written."""


class NotInitialised(ShelflifeError):
    """The home folder or database has not been set up by `shelflife init`."""
