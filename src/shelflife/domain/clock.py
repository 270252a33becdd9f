"""Time is injected so that policies, tests and simulated nights agree on what "now" is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Source of the current instant; always timezone-aware UTC."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock; the only place that reads it."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock that says what it is told; for tests, `--as-of` and simulated nights."""

    instant: datetime

    def __post_init__(self) -> None:
        self.instant = ensure_aware(self.instant)

    def now(self) -> datetime:
        return self.instant


def ensure_aware(value: datetime) -> datetime:
    """Reject naive datetimes at the edge: a naive instant has no meaning across time zones."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp has no time-zone offset")
    return value.astimezone(UTC)
