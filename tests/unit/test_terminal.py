"""What data looks like on a terminal: itself, except characters that would act on the terminal."""

from __future__ import annotations

import io
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shelflife.entrypoints.terminal import DataConsole, json_document, printable, styled

ACTS_ON_TERMINAL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
"""Written out independently of the code: C0, DEL, C1, line/paragraph separators, bidi
embeddings/overrides/isolates, lone surrogates."""

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ANY_TEXT = st.text(
    st.one_of(
        st.characters(exclude_categories=()),
        st.integers(0xD800, 0xDFFF).map(chr),  # lone surrogates: undecodable bytes in argv
        st.sampled_from("\x1b\r\n\t\x9b\u202e\u2066\u200f\u0301[]/:\\"),
    )
)


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        ("[/x]", "[/x]"),
        ("[bold]X", "[bold]X"),
        ("[link=file:///etc/passwd]x[/link]", "[link=file:///etc/passwd]x[/link]"),
        (":smile:", ":smile:"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("\x1b]8;;file:///etc/passwd\x1b\\x", "\\x1b]8;;file:///etc/passwd\\x1b\\x"),
        ("a\rb", "a\\rb"),
        ("two\nlines", "two\\nlines"),
        ("tab\there", "tab\\there"),
        ("bell\x07", "bell\\x07"),
        ("csi\x9b31m", "csi\\x9b31m"),
        ("del\x7f", "del\\x7f"),
        ("nul\x00", "nul\\x00"),
        ("para\u2029sep\u2028", "para\\u2029sep\\u2028"),
        ("order \u202e1234\u202c", "order \\u202e1234\\u202c"),
        ("isolate\u2066x\u2069", "isolate\\u2066x\\u2069"),
        ("bytes \udcff", "bytes \\udcff"),
        ("\u05e9\u05dc\u05d5\u05dd \u200f!", "\u05e9\u05dc\u05d5\u05dd \u200f!"),
        ("Zoe\u0308 Bu\u0301rgi", "Zoe\u0308 Bu\u0301rgi"),
        ("Heidestraße 17, Köln", "Heidestraße 17, Köln"),
        ("\u00a0nbsp and 😀", "\u00a0nbsp and 😀"),
        ("a literal \\x1b stays", "a literal \\x1b stays"),
    ],
)
def test_printable_escapes_only_what_acts_on_a_terminal(data: str, shown: str) -> None:
    assert printable(data) == shown


STORED_TEXT = st.text(
    st.one_of(st.characters(exclude_categories=["Cs"]), st.sampled_from("\x1b\x7f\x9b\u2028\u202e"))
)
"""What a database can hold: any text but lone surrogates (a pair of them would decode as one
character, so they are not part of the JSON round trip)."""


@FUZZ
@given(ANY_TEXT)
def test_printable_output_never_acts_on_a_terminal_and_is_idempotent(data: str) -> None:
    shown = printable(data)

    assert ACTS_ON_TERMINAL.search(shown) is None
    assert printable(shown) == shown


@FUZZ
@given(ANY_TEXT)
def test_printable_keeps_every_other_character_and_escapes_those_python_style(data: str) -> None:
    def escape(match: re.Match[str]) -> str:
        return match.group().encode("unicode_escape").decode("ascii")

    assert printable(data) == ACTS_ON_TERMINAL.sub(escape, data)


@FUZZ
@given(st.dictionaries(STORED_TEXT, st.lists(STORED_TEXT, max_size=3) | STORED_TEXT, max_size=4))
def test_json_documents_decode_to_the_exact_values_and_never_act_on_a_terminal(
    data: dict[str, object],
) -> None:
    document = json_document(data)

    assert json.loads(document) == data
    assert ACTS_ON_TERMINAL.search(document.replace("\n", "")) is None


def _rendered(*objects: object) -> str:
    console = DataConsole()
    console.file = io.StringIO()
    console.print(*objects)
    text = console.file.getvalue()
    assert isinstance(text, str)
    return text


def test_the_data_console_prints_markup_and_emoji_codes_as_themselves() -> None:
    assert _rendered("[bold]X [/x] :smile: [link=file:///etc/passwd]x[/link]") == (
        "[bold]X [/x] :smile: [link=file:///etc/passwd]x[/link]\n"
    )


def test_the_data_console_escapes_terminal_controls_in_strings_and_styled_text() -> None:
    assert _rendered("a\x1b[31mb\rc") == "a\\x1b[31mb\\rc\n"
    assert _rendered(styled(("error: ", "bold red"), "x\x1b]0;pwned\x07")) == (
        "error: x\\x1b]0;pwned\\x07\n"
    )


def test_the_data_console_never_wraps_a_long_line() -> None:
    line = "302-" + "1" * 500

    assert _rendered(line) == line + "\n"
