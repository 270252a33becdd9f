"""`shelflife show` lists a returning Amazon buyer's earlier, masked orders, and `import`
refuses a manual order for an Amazon buyer, end to end on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.e2e.test_cli import AFTER_MASK_DUE, NR, NR2, Cli, _masked, _stdin, cli, ready
from tests.support.builders import T0, days, order

__all__ = ["cli", "ready"]  # the fixtures, shared with test_cli.py


def test_show_lists_the_same_buyers_masked_orders_in_other_records(ready: Cli) -> None:
    _masked(ready)
    ready.ok(
        "import",
        "-",
        input=_stdin(
            order(NR2, ordered_at=T0 + days(33), suffix="-2") | {"customer": order()["customer"]}
        ),
    )

    shown = ready.show(NR2)
    text = ready.ok("show", NR2, "--as-of", AFTER_MASK_DUE).stdout

    assert [
        (o["order_nr_external"], o["customer"], o["state"]) for o in shown["linked_orders"]
    ] == [(NR, "C1", "masked")]
    assert text.endswith(
        "same buyer, other customer records (linked without personal data):\n"
        f"  {NR}  C1  ordered 2026-03-02 10:00 CET  masked\n"
    )


def test_import_refuses_a_manual_order_for_an_amazon_buyer(ready: Cli) -> None:
    _masked(ready)

    result = ready(
        "import",
        "-",
        input=_stdin(order("M-1001", suffix="-m") | {"customer": order()["customer"]}),
    )

    assert result.exit_code == 2
    assert result.stderr == (
        "  line 1: customer: this buyer's data came from Amazon, and a manual (non-Amazon) "
        "order must not use it; create a separate customer (its own customer number and "
        "e-mail) for the order\n"
    )
