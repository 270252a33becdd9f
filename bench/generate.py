"""Write N customers' orders as JSON Lines for the backlog benchmark.

The data comes from ``shelflife.sample_data`` (Faker, obviously fake, deterministic per spec).
Orders fall in ``[start, start + days)``; with the defaults (2026-01-01, 60 days) every order
that shipped did so before 2026-03-02, so at the benchmark's ``--as-of`` (2026-06-01) each
shipment is far more than 30 days old and the whole file is one backlog. Orders that would
ship after the export moment stay open, as in a real shop; their buyers cannot be masked.

A sidecar ``<file>.json`` keeps the spec, the Faker version and what the file holds (orders,
Amazon buyers, expected archive and mask counts); a later call with the same spec reuses the
file instead of writing it again.

    .venv/bin/python bench/generate.py --customers 10000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from shelflife.domain.policy import DEFAULT_AMAZON_ORDER_PATTERN
from shelflife.sample_data import SampleSpec, write_jsonl

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT_DAYS = 60
SIDECAR_FORMAT = 1


@dataclass(frozen=True)
class Contents:
    """What a generated file holds, counted by reading it back (not from the generator)."""

    orders: int
    customers: int  # distinct buyers by (shop, customer number or e-mail)
    amazon_buyers: int
    amazon_orders: int
    open_orders: int  # neither shipped nor cancelled at the export moment
    amazon_buyers_closed: int  # >= 1 closed order: due for archiving once old enough
    amazon_buyers_all_closed: int  # every order closed: due for masking once old enough
    amazon_buyers_open_and_closed: int  # archived but kept unmasked by an open order


@dataclass(frozen=True)
class Generated:
    path: Path
    spec: SampleSpec
    contents: Contents
    reused: bool
    seconds: float  # writing and counting; 0 when reused

    @property
    def export_at(self) -> datetime:
        """The moment of the "export": nothing in the file happens at or after it."""
        return self.spec.start + timedelta(days=self.spec.days)


def default_path(customers: int) -> Path:
    return OUT_DIR / f"orders-{customers}.jsonl"


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _spec_dict(spec: SampleSpec) -> dict[str, Any]:
    data = asdict(spec)
    data["start"] = spec.start.isoformat()
    data["shops"] = list(spec.shops)
    return data


def _identity(spec: SampleSpec) -> dict[str, Any]:
    """Everything the file's bytes depend on."""
    return {"format": SIDECAR_FORMAT, "spec": _spec_dict(spec), "faker": version("faker")}


def count_contents(path: Path) -> Contents:
    """Read the file back and count buyers and orders the way the import identifies them."""
    amazon = re.compile(DEFAULT_AMAZON_ORDER_PATTERN)
    buyers: dict[tuple[str, bool, str], list[bool]] = {}  # buyer -> closed flag per order
    orders = open_orders = amazon_orders = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            order = json.loads(line)
            orders += 1
            is_amazon = amazon.fullmatch(order["order_nr_external"]) is not None
            amazon_orders += is_amazon
            customer = order.get("customer") or {}
            who = customer.get("customer_nr_external") or customer.get("email") or ""
            closed = bool(order.get("shipped_at") or order.get("cancelled_at"))
            open_orders += not closed
            buyers.setdefault((order["shop"], is_amazon, who), []).append(closed)
    amazon_flags = [flags for (_shop, is_amazon, _who), flags in buyers.items() if is_amazon]
    return Contents(
        orders=orders,
        customers=len(buyers),
        amazon_buyers=len(amazon_flags),
        amazon_orders=amazon_orders,
        open_orders=open_orders,
        amazon_buyers_closed=sum(any(f) for f in amazon_flags),
        amazon_buyers_all_closed=sum(all(f) for f in amazon_flags),
        amazon_buyers_open_and_closed=sum(any(f) and not all(f) for f in amazon_flags),
    )


def _read_sidecar(path: Path, spec: SampleSpec) -> Contents | None:
    """The stored contents when ``path`` was written from exactly this spec, else None."""
    sidecar = sidecar_path(path)
    if not (path.is_file() and sidecar.is_file()):
        return None
    try:
        stored = json.loads(sidecar.read_text(encoding="utf-8"))
        if {k: stored.get(k) for k in ("format", "spec", "faker")} != _identity(spec):
            return None
        contents = Contents(**stored["contents"])
    except (ValueError, KeyError, TypeError):
        return None
    return contents if path.stat().st_size == stored.get("bytes") else None


def ensure_orders(spec: SampleSpec, path: Path | None = None, force: bool = False) -> Generated:
    """Write the orders of ``spec`` to ``path`` unless an identical file is already there."""
    target = path or default_path(spec.customers)
    if not force and (contents := _read_sidecar(target, spec)) is not None:
        return Generated(target, spec, contents, reused=True, seconds=0.0)
    target.parent.mkdir(parents=True, exist_ok=True)
    sidecar_path(target).unlink(missing_ok=True)  # a half-written file must never look reusable
    began = time.perf_counter()
    partial = target.with_name(target.name + ".partial")
    with partial.open("w", encoding="utf-8") as handle:
        write_jsonl(spec, handle)
    os.replace(partial, target)
    contents = count_contents(target)
    seconds = time.perf_counter() - began
    sidecar = _identity(spec) | {"bytes": target.stat().st_size, "contents": asdict(contents)}
    sidecar_path(target).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return Generated(target, spec, contents, reused=False, seconds=seconds)


def make_spec(customers: int, start: datetime, days: int, seed: int) -> SampleSpec:
    return SampleSpec(customers=customers, start=start, days=days, seed=seed)


def parse_instant(value: str) -> datetime:
    """argparse type: an ISO 8601 instant; a bare date or a naive time counts as UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 date or instant") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def positive_int(value: str) -> int:
    try:
        number = int(value.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be at least 1")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--customers", type=positive_int, required=True, help="buyers (N)")
    parser.add_argument(
        "--start", type=parse_instant, default=DEFAULT_START, help="first order date (UTC)"
    )
    parser.add_argument(
        "--days", type=positive_int, default=DEFAULT_DAYS, help="days the orders spread over"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    parser.add_argument(
        "--out", type=Path, default=None, help="output file (default bench/out/orders-N.jsonl)"
    )
    parser.add_argument("--force", action="store_true", help="write even if an equal file exists")
    args = parser.parse_args(argv)
    spec = make_spec(args.customers, args.start, args.days, args.seed)
    result = ensure_orders(spec, args.out, force=args.force)
    c = result.contents
    how = "reused" if result.reused else f"written in {result.seconds:.1f} s"
    print(
        f"{result.path}: {c.orders} orders of {c.customers} buyers ({c.amazon_buyers} on Amazon, "
        f"{c.open_orders} open orders), {how}; last event before {result.export_at.isoformat()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
