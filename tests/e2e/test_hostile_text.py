"""Output that cannot be broken by data: markup-looking and hostile text through the CLI.

Order numbers, shop names, buyer names and cities, retrieval reasons and user names, and the
command-line arguments themselves carry Rich markup ("[/x]", "[bold]X", "[link=…]"), emoji codes,
ANSI escapes, carriage returns, bidirectional controls, combining characters and long runs.
Every command must end with a documented exit code and no traceback, print the text as itself,
and never let a character reach the terminal raw that would act on it (it is shown escaped, as
`shelflife.entrypoints.terminal.printable` does and docs/cli.md says).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from shelflife.entrypoints import cli
from shelflife.entrypoints.terminal import printable
from tests.support.builders import T0, days, lines, order

VARIABLES = (
    "SHELFLIFE_HOME",
    "SHELFLIFE_DATABASE_URL",
    "SHELFLIFE_ARCHIVE_URL",
    "SHELFLIFE_MASTER_KEY_FILE",
    "SHELFLIFE_BATCH_SIZE",
    "SHELFLIFE_ARCHIVE_WORKERS",
    "SHELFLIFE_DEBUG",
)
SHIPPED = T0 + days(1)
AFTER_MASK_DUE = "2026-04-05T02:00:00+02:00"
RETRIEVED_AT = "2026-04-06T10:00:00+02:00"
HOSTILE = (
    "[/x]",
    "[bold]X",
    "[link=file:///etc/passwd]x[/link]",
    ":smile:",
    "[/]",
    "[",
    "\\",
    "\x1b[31mred\x1b[0m",
    "\x1b]0;pwned\x07",
    "\x1b]8;;file:///etc/passwd\x1b\\click\x1b]8;;\x1b\\",
    "\x9b2J",
    "a\rb",
    "line\nbreak",
    "tab\there",
    "\u202eevil\u202c",
    "\u2066iso\u2069",
    "\u05e9\u05dc\u05d5\u05dd\u200f",
    "\u0645\u0631\u062d\u0628\u0627\u200e",
    "Zoe\u0308 Bu\u0301rgi\u0327",
    "😀 e\u0301",
    "%s {0} $(id)",
)
TERMINAL_ACTING = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""What must never reach a terminal raw (a line feed is the output's own line end)."""
CHARACTERS = st.one_of(
    st.sampled_from("[]/=:\\\x1b\r\n\t\x07\x7f\x9b\u202e\u2066\u200f\u0301\u0308 ß😀"),
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
)
FUZZ = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    # No shrinking: each example runs several commands on a shared database, and shrinking one
    # failure took minutes; the failing example is printed as found, which is readable enough.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
COUNTER = itertools.count(1)


def hostile(size: int) -> st.SearchStrategy[str]:
    """Hostile text of at most `size` characters: known attacks, mixtures and long runs."""
    pieces = st.one_of(st.sampled_from(HOSTILE), st.text(CHARACTERS, min_size=1, max_size=12))
    mixed = st.lists(pieces, min_size=1, max_size=6).map("".join)
    long = st.sampled_from(HOSTILE).map(lambda h: (h * size)[:size])
    return st.one_of(mixed, long).map(lambda text: text[:size])


def framed(prefix: str, text: str, suffix: str, size: int) -> str:
    """`text` between fixed ends, so that trimming of blanks cannot change what is stored."""
    return prefix + text[: size - len(prefix) - len(suffix)] + suffix


def _safe(output: str) -> None:
    assert "Traceback" not in output
    assert "error: unexpected" not in output
    found = TERMINAL_ACTING.search(output)
    assert found is None, f"raw {found.group()!r} in {output!r}"


def _invoke(home: Path, *args: str, input: str | None = None) -> Result:
    env: dict[str, str | None] = dict.fromkeys(VARIABLES)
    env["SHELFLIFE_HOME"] = str(home)
    result = CliRunner().invoke(cli.app, list(args), input=input, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    _safe(result.output)
    return result


@pytest.fixture(scope="module")
def wide_console() -> Iterator[None]:
    """Tables as wide as their longest cell, so that a value can be found in one piece."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli.out, "_width", 100_000)  # Console.width's own storage
        yield


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, wide_console: None) -> Path:
    folder = tmp_path_factory.mktemp("hostile") / "home"
    assert _invoke(folder, "init").exit_code == 0
    return folder


def _buyer(
    nr: str, shop: str, first: str, last: str, city: str, n: int, tag: str = ""
) -> dict[str, Any]:
    """An order with the given names and city; invoiced when the number fits an invoice's.
    `tag` gives a buyer its own customer number and e-mail (a manual order may not use an
    Amazon buyer's)."""
    invoiced = SHIPPED if len(nr) <= 60 else None
    suffix = f"-{n}{tag}"
    imported = order(nr, shop=shop, shipped_at=SHIPPED, invoiced_at=invoiced, suffix=suffix)
    imported["customer"].update(first_name=first, last_name=last)
    imported["billing_address"].update(first_name=first, last_name=last, city=city)
    return imported


@FUZZ
@given(
    nr=hostile(90),
    shop=hostile(90),
    first=hostile(100),
    last=hostile(100),
    city=hostile(100),
    user=hostile(95),
)
def test_hostile_data_prints_as_itself_in_every_human_output(
    home: Path, nr: str, shop: str, first: str, last: str, city: str, user: str
) -> None:
    n = next(COUNTER)
    nr, shop = framed(f"N{n}-", nr, "-N", 100), framed(f"S{n}-", shop, "-S", 100)
    user = framed("U", user, "U", 100)
    amazon_nr = f"302-{n:07d}-7654321"
    text = "\n".join(
        lines(
            _buyer(nr, shop, first, last, city, n),
            _buyer(amazon_nr, shop, first, last, city, n, tag="a"),
        )
    )

    imported = _invoke(home, "import", "-", input=text + "\n")
    assert (imported.exit_code, imported.stdout.split(",")[0]) == (0, "created 2"), imported.output
    exact = json.loads(_invoke(home, "show", nr, "--shop", shop, "--json").stdout)
    shown = _invoke(home, "show", nr, "--shop", shop, "--as-of", AFTER_MASK_DUE)
    overdue = _invoke(home, "compliance", "--as-of", AFTER_MASK_DUE)
    listed = _invoke(home, "shop", "list")
    enabled = _invoke(home, "feature", "enable", "--shop", shop, "--user", user)
    shipped = _invoke(home, "ship", nr, "--shop", shop, "--at", "2026-03-03T10:00:00+01:00")

    assert (exact["order_nr_external"], exact["shop"]) == (nr, shop)
    assert (exact["customer"]["first_name"], exact["customer"]["last_name"]) == (first, last)
    billing = next(a for a in exact["addresses"] if a["kind"] == "billing")
    assert billing["city"] == city
    assert shown.exit_code == 0
    assert shown.stdout.startswith(f"{printable(nr)}  shop {printable(shop)}, ")
    for value in (first, last, city):
        assert printable(value) in shown.stdout
    assert overdue.exit_code == 1
    assert amazon_nr in overdue.stdout
    assert printable(shop) in overdue.stdout  # the buyer cell's second line names the shop
    assert listed.exit_code == 0
    assert printable(shop) in listed.stdout
    assert (enabled.exit_code, enabled.stdout) == (
        0,
        f"retention enabled for shop {printable(shop)}\n",
    )
    assert (shipped.exit_code, shipped.stdout) == (
        0,
        f"order {printable(nr)} shipped at 2026-03-03T09:00:00+00:00\n",
    )


@settings(FUZZ, max_examples=10)
@given(
    reason=hostile(48),
    user=hostile(98),
    first=hostile(100),
    shop=hostile(90),
)
def test_hostile_reasons_and_user_names_of_a_retrieval_print_as_themselves(
    home: Path, reason: str, user: str, first: str, shop: str
) -> None:
    n = next(COUNTER)
    reason, user = framed("R", reason, "R", 50), framed("U", user, "U", 100)
    shop = framed(f"R{n}-", shop, "-R", 100)
    nr = f"303-{n:07d}-1234567"
    imported = _invoke(home, "import", "-", input=lines(_buyer(nr, shop, first, "M", "K", n))[0])
    assert imported.exit_code == 0, imported.output
    _invoke(home, "feature", "enable", "--shop", shop)
    assert (
        json.loads(_invoke(home, "run", "--as-of", AFTER_MASK_DUE, "--json").stdout)["masked"] >= 1
    )

    retrieved = _invoke(
        home, "retrieve", nr, "--reason", reason, "--user", user, "--as-of", RETRIEVED_AT
    )
    shown = _invoke(home, "show", nr, "--as-of", RETRIEVED_AT)
    exact = json.loads(_invoke(home, "show", nr, "--as-of", RETRIEVED_AT, "--json").stdout)

    assert retrieved.exit_code == 0
    assert retrieved.stdout.startswith(f"order {nr} retrieved (")
    assert exact["customer_history"][-1]["text"] == reason
    assert exact["customer_history"][-1]["user_name"] == user
    assert shown.exit_code == 0
    assert f"{printable(user)} {printable(reason)}" in shown.stdout
    assert printable(first) in shown.stdout


# -- command-line arguments --------------------------------------------------------------------

ARGUMENT = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(
        st.one_of(
            CHARACTERS,
            st.sampled_from("\x00\udcff\udc80"),  # what argv holds for NUL-free undecodable bytes
        ),
        min_size=1,
        max_size=300,
    ),
)
COMMANDS = {
    "init",
    "import",
    "ship",
    "run",
    "retrieve",
    "show",
    "compliance",
    "feature",
    "shop",
    "demo",
}


@FUZZ
@given(value=ARGUMENT)
def test_hostile_arguments_end_in_exit_2_and_print_safely(home: Path, value: str) -> None:
    assume(value not in COMMANDS and not value.startswith("-") and value != "help")
    missing = str(home.parent / "absent") + "/" + value

    results = {
        "show": _invoke(home, "show", "--", value),
        "show --shop": _invoke(home, "show", "--shop", value, "--", "x"),
        "show --option": _invoke(home, "show", f"--{value}"),
        "ship": _invoke(home, "ship", "--at", value, "--", value),
        "retrieve": _invoke(home, "retrieve", "--reason", value, "--user", value, "--", value),
        "feature": _invoke(home, "feature", "enable", "--shop", f"?{value}", "--user", value),
        "shop set zone": _invoke(home, "shop", "set", "--time-zone", value, "--", f"?{value}"),
        "shop set pattern": _invoke(
            home, "shop", "set", "--amazon-pattern", value, "--", f"?{value}"
        ),
        "run": _invoke(home, "run", "--as-of", value),
        "compliance": _invoke(home, "compliance", "--as-of", value),
        "import": _invoke(home, "import", missing),
        "command": _invoke(home, value),
        "extra": _invoke(home, "shop", "list", value),
    }

    assert {name: r.exit_code for name, r in results.items()} == dict.fromkeys(results, 2)
    if "\x00" not in value and not re.search("[\ud800-\udfff]", value):
        assert results["show"].stderr == (
            f"error: no order with number {value!r}; check the number or import it first\n"
        )
        assert results["feature"].stderr == (
            f"error: no shop named {'?' + value!r}; shops are created by importing their orders\n"
        )
        assert results["import"].stderr == f"error: {printable(missing)}: no such file\n"
    else:
        assert "Invalid value for 'order_nr': contains a NUL character or bytes that are not" in (
            results["show"].stderr
        )


# -- the deterministic cases the issue names, on both backends ---------------------------------


def _cli(database_url: str, home: Path, *args: str, input: str | None = None) -> Result:
    env: dict[str, str | None] = dict.fromkeys(VARIABLES)
    env.update(SHELFLIFE_HOME=str(home), SHELFLIFE_DATABASE_URL=database_url)
    result = CliRunner().invoke(cli.app, list(args), input=input, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    _safe(result.output)
    return result


def test_show_of_an_order_number_that_looks_like_markup_says_it_is_unknown(
    database_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    _cli(database_url, home, "init")

    results = [_cli(database_url, home, "show", nr) for nr in ("[/x]", "[bold]X", ":smile:")]

    assert [(r.exit_code, r.stderr) for r in results] == [
        (2, f"error: no order with number {nr!r}; check the number or import it first\n")
        for nr in ("[/x]", "[bold]X", ":smile:")
    ]


def test_an_order_whose_names_and_reason_look_like_markup_can_always_be_shown(
    database_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    nr = "302-1234567-1234567"
    _cli(database_url, home, "init")
    imported = _buyer(nr, "[bold]shop", "[/x]", "[bold]X", ":smile: [link=file:///etc/passwd]x", 1)
    _cli(database_url, home, "import", "-", input=lines(imported)[0])
    _cli(database_url, home, "feature", "enable", "--shop", "[bold]shop")
    _cli(database_url, home, "run", "--as-of", AFTER_MASK_DUE)

    retrieved = _cli(
        database_url,
        home,
        "retrieve",
        nr,
        "--reason",
        "[/x] [bold]X",
        "--user",
        "[/]",
        "--as-of",
        RETRIEVED_AT,
    )
    shown = _cli(database_url, home, "show", nr, "--as-of", RETRIEVED_AT)

    assert retrieved.exit_code == 0
    assert shown.exit_code == 0
    assert shown.stdout.startswith(f"{nr}  shop [bold]shop, Amazon order, state retrieved\n")
    assert "[/x] [bold]X" in shown.stdout
    assert ":smile: [link=file:///etc/passwd]x" in shown.stdout
    assert " retrieved [/] [/x] [bold]X\n" in shown.stdout


def test_markup_in_messages_is_printed_unaltered(database_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    _cli(database_url, home, "init")

    result = _cli(database_url, home, "feature", "enable", "--shop", "[bold]X")

    assert (result.exit_code, result.stderr) == (
        2,
        "error: no shop named '[bold]X'; shops are created by importing their orders\n",
    )


def test_terminal_escapes_in_data_and_arguments_are_shown_escaped(
    database_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    nr = "302-1234567-1234567"
    _cli(database_url, home, "init")
    imported = _buyer(nr, "main", "\x1b[31mEvil", "Twin\rGood", "K\u202enlö", 1)
    _cli(database_url, home, "import", "-", input=lines(imported)[0])

    shown = _cli(database_url, home, "show", nr)
    missing = _cli(database_url, home, "import", "a\x1b]0;pwned\x07b")

    assert re.search(r"customer C\d+: \\x1b\[31mEvil Twin\\rGood", shown.stdout)
    assert "K\\u202enlö" in shown.stdout
    assert (missing.exit_code, missing.stderr) == (
        2,
        "error: a\\x1b]0;pwned\\x07b: no such file\n",
    )


def test_json_output_writes_terminal_controls_as_escapes_of_the_same_values(
    database_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    nr = "302-1234567-1234567"
    _cli(database_url, home, "init")
    name = "Del\x7f Csi\x9b2J Rlo\u202e Sep\u2028 Esc\x1b[31m"
    _cli(database_url, home, "import", "-", input=lines(_buyer(nr, "main", name, "M", "K", 1))[0])

    shown = _cli(database_url, home, "show", nr, "--json")

    assert json.loads(shown.stdout)["customer"]["first_name"] == name
    assert '"first_name": "Del\\u007f Csi\\u009b2J Rlo\\u202e Sep\\u2028 Esc\\u001b[31m",' in (
        shown.stdout
    )


def test_usage_errors_quote_what_was_typed_escaped(tmp_path: Path) -> None:
    """Click's own messages ("No such option", "Got unexpected extra argument(s)") repeat the
    argument; a bidi override in it reordered the rest of the terminal line."""
    home = tmp_path / "home"

    extra = _invoke(home, "shop", "list", "x\u202ey\u2028")
    option = _invoke(home, "show", "--x\u2066y")

    assert extra.exit_code == option.exit_code == 2
    assert "Got unexpected extra argument(s) (x\\u202ey\\u2028)" in extra.stderr
    assert "No such option: --x\\u2066y" in option.stderr


def test_undecodable_bytes_in_an_argument_are_a_usage_error(
    database_url: str, tmp_path: Path
) -> None:
    """The operating system hands bytes that are not UTF-8 over as lone surrogates; no
    database stores them (they ended in "unexpected UnicodeEncodeError", exit 1)."""
    home = tmp_path / "home"
    _cli(database_url, home, "init")

    results = [
        _cli(database_url, home, *args)
        for args in (
            ["show", "\udcff"],
            ["feature", "enable", "--shop", "m\udcc3"],
            ["retrieve", "302-1234567-1234567", "--reason", "r\udcff", "--user", "anna"],
        )
    ]

    assert [r.exit_code for r in results] == [2, 2, 2]
    assert all("contains a NUL character or bytes that are not" in r.stderr for r in results)


def test_verbose_logs_show_data_escaped(tmp_path: Path) -> None:
    """--verbose logs the order number and user of a retrieval: they must not reach a terminal
    raw either. The retrieval runs as a process, because logging is set up once per process."""
    home = tmp_path / "home"
    nr = "302-1234567-1234567"
    _invoke(home, "init")
    _invoke(home, "import", "-", input=lines(order(nr, shipped_at=SHIPPED))[0])
    _invoke(home, "feature", "enable", "--shop", "main")
    _invoke(home, "run", "--as-of", AFTER_MASK_DUE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHELFLIFE_")}
    env["SHELFLIFE_HOME"] = str(home)
    user = "\x1b]0;pwned\x07anna"

    logged = subprocess.run(
        [
            str(Path(sys.executable).with_name("shelflife")),
            "-v",
            "retrieve",
            nr,
            "--reason",
            "return",
            "--user",
            user,
            "--as-of",
            RETRIEVED_AT,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert logged.returncode == 0, logged.stderr
    _safe(logged.stdout + logged.stderr)
    assert re.search(
        rf"INFO shelflife\.services\.retrieval: order {nr} retrieved by "
        r"\\x1b\]0;pwned\\x07anna \(\d+ records restored\)\n",
        logged.stderr,
    ), logged.stderr
