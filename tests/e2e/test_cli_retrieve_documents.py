"""`shelflife retrieve --invoice / --credit` end to end, on SQLite and PostgreSQL: a masked
manual credit is retrieved by its number; a wrong combination exits 2 and says why."""

from __future__ import annotations

import json

from tests.e2e.test_cli import AFTER_MASK_DUE, NR, SHIPPED, Cli, _masked, _stdin, cli, ready
from tests.support.builders import iso, order

__all__ = ["cli", "ready"]  # the fixtures, shared with test_cli.py

CREDIT = "GS-M-1"


def _manual_credit() -> str:
    return json.dumps(
        {
            "type": "manual_credit",
            "shop": "main",
            "customer_of_order": NR,
            "credit_nr": CREDIT,
            "created_at": iso(SHIPPED),
            "total": "5.00",
        }
    )


def test_retrieve_by_credit_number_restores_the_manual_credit(ready: Cli) -> None:
    ready.ok(
        "import",
        "-",
        input=_stdin(order(NR, shipped_at=SHIPPED, invoiced_at=SHIPPED)) + _manual_credit() + "\n",
    )
    ready.ok("feature", "enable", "--shop", "main")
    assert ready.json("run", "--as-of", AFTER_MASK_DUE)["masked"] == 1

    result = ready.ok(
        "retrieve",
        "--credit",
        CREDIT,
        "--reason",
        "Steuerprüfung",
        "--user",
        "anna",
        "--as-of",
        AFTER_MASK_DUE,
    )

    assert result.stdout == (
        f"credit {CREDIT}: order {NR} retrieved (6 records restored, read-only, masked again "
        "in 30 days)\n"
    )
    shown = ready.show(NR, AFTER_MASK_DUE)
    assert [(c["credit_nr"], c["billing_name"]) for c in shown["credits"]] == [
        (CREDIT, "Erika Mustermann")
    ]


def test_retrieve_needs_exactly_one_number(ready: Cli) -> None:
    _masked(ready)

    both = ready("retrieve", NR, "--credit", CREDIT, "--reason", "x", "--user", "anna")
    neither = ready("retrieve", "--reason", "x", "--user", "anna")
    unknown = ready("retrieve", "--invoice", "RE-404", "--reason", "x", "--user", "anna")

    assert [r.exit_code for r in (both, neither, unknown)] == [2, 2, 2]
    assert (
        both.stderr
        == neither.stderr
        == ("error: give exactly one of an order number, --invoice and --credit\n")
    )
    assert unknown.stderr == "error: no invoice with number 'RE-404'; check the number\n"
