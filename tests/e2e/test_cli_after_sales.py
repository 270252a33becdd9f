"""`shelflife return create`, `replacement create` and `credit create` end to end, on SQLite and
PostgreSQL: a masked order is retrieved by the command itself; bad input exits 2 and says why."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.test_cli import AFTER_MASK_DUE, NR, SHIPPED, Cli, _masked, _stdin, cli, ready
from tests.support.builders import order

__all__ = ["cli", "ready"]  # the fixtures, shared with test_cli.py


def _json(cli: Cli, *args: str, code: int = 0) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def test_return_create_on_a_masked_order_retrieves_it_and_shows_the_return(ready: Cli) -> None:
    _masked(ready)

    created = _json(ready, "return", "create", NR, "--items", "BK-1:1", "--reason", "Defekt")

    shown = ready.show(NR, AFTER_MASK_DUE)
    assert (created["return_nr"], created["items"], created["retrieved"]) == (
        f"{NR}-RET1",
        {"BK-1": 1},
        True,
    )
    assert created["created_by"].endswith("(cli)")
    assert shown["customer"]["first_name"] == "Erika"
    assert [(r["return_nr"], r["reason"]) for r in shown["returns"]] == [(f"{NR}-RET1", "Defekt")]
    assert shown["customer_history"][-2]["text"] == f"Return {NR}-RET1: Defekt"


def test_replacement_and_credit_create_print_what_they_made(ready: Cli) -> None:
    _masked(ready)

    replaced = ready.ok("replacement", "create", NR, "--items", "BK-1:2", "--reason", "verloren")
    credited = ready.ok("credit", "create", f"RE-{NR}", "--total", "5", "--reason", "Kulanz")

    assert replaced.stdout == (
        f"replacement order {NR}-R1 created\n"
        f"order {NR} was masked and has been retrieved (read-only, masked again in 30 days)\n"
    )
    assert credited.stdout == f"credit GS-RE-{NR}-1 of 5.00 created\n"
    assert ready.show(f"{NR}-R1", AFTER_MASK_DUE)["replaces_order"] == NR


def test_bad_input_exits_2_with_a_clear_message_and_creates_nothing(ready: Cli) -> None:
    ready.ok("import", "-", input=_stdin(order("10001", shipped_at=SHIPPED, invoiced_at=SHIPPED)))

    too_many = ready("return", "create", "10001", "--items", "BK-1:3", "--reason", "x")
    malformed = ready("replacement", "create", "10001", "--items", "BK-1", "--reason", "x")
    unknown = ready("return", "create", "10002", "--items", "BK-1:1", "--reason", "x")
    no_invoice = ready("credit", "create", "RE-404", "--total", "1", "--reason", "x")
    too_much = ready("credit", "create", "RE-10001", "--total", "20", "--reason", "x")

    assert [r.exit_code for r in (too_many, malformed, unknown, no_invoice, too_much)] == [2] * 5
    assert too_many.stderr == (
        "error: items: SKU 'BK-1': 3 asked for, but 2 of 2 ordered can still be returned\n"
    )
    assert malformed.stderr == (
        "error: items: 'BK-1' is not SKU:QTY with a whole quantity, e.g. A-1:2\n"
    )
    assert unknown.stderr.startswith("error: no order with number '10002'")
    assert no_invoice.stderr == "error: no invoice with number 'RE-404'; check the number\n"
    assert too_much.stderr == (
        "error: total: 20.00 is more than the 19.98 of the invoice's 19.98 not yet credited\n"
    )
    assert ready.show("10001", AFTER_MASK_DUE)["returns"] == []
