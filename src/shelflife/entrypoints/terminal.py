"""How data reaches a terminal: as itself, except characters that would act on the terminal.

Order numbers, shop and buyer names, reasons and paths are data. Rich's markup, emoji codes and
highlighting are off, so "[/x]", "[bold]X" or ":smile:" print as themselves. A few characters
would be executed by the terminal instead of shown (ESC starting a colour, title or hyperlink
sequence, a carriage return overwriting the line, a bell, a line break forging a line of
output, a bidirectional override reordering the rest of the line); they print as Python-style
escapes (``\\x1b``, ``\\r``, ``\\n``, ``\\u202e``). Everything else prints verbatim, right-to-left
marks and combining accents included. `--json` carries the exact values, those characters
written as JSON ``\\u`` escapes.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from functools import lru_cache
from typing import Any

from rich.console import Console
from rich.text import Text

_ESCAPED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
"""C0 and C1 controls and DEL, lone surrogates (undecodable bytes), line and paragraph breaks."""
_BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
"""Embeddings, overrides and isolates: they reorder what follows them on the line (the
"Trojan Source" trick). The plain marks LRM, RLM and ALM only attach to one character and stay."""


@lru_cache(maxsize=4096)
def _shown(char: str) -> str:
    if unicodedata.category(char) in _ESCAPED_CATEGORIES or char in _BIDI_CONTROLS:
        return char.encode("unicode_escape").decode("ascii")
    return char


def printable(text: str) -> str:
    """`text` as it may reach a terminal: terminal-acting characters escaped, nothing else.

    Idempotent (an escape is plain ASCII), so text escaped twice reads the same.
    """
    if text.isascii() and text.isprintable():
        return text
    return "".join(_shown(char) for char in text)


def json_document(data: Any) -> str:
    """`data` as indented JSON that is safe on a terminal yet decodes to the exact values.

    JSON escapes C0 controls itself; DEL, C1 controls, line and paragraph separators, bidi
    controls and lone surrogates become \\u escapes too (the same values, written safely).
    """
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    if text.isascii() and "\x7f" not in text:
        return text
    return "".join(
        f"\\u{ord(char):04x}" if char != "\n" and _shown(char) != char else char for char in text
    )


def styled(*parts: str | tuple[str, str]) -> Text:
    """`Text.assemble` for data: every part is made printable, styles stay ours."""
    return Text.assemble(
        *(
            (printable(part[0]), part[1]) if isinstance(part, tuple) else printable(part)
            for part in parts
        )
    )


def lines(*items: str) -> Text:
    """A table cell of several lines: each item made printable, one per line (a newline
    inside an item is data and shows escaped; the breaks between items are ours)."""
    return Text("\n".join(printable(item) for item in items))


class DataConsole(Console):
    """A Rich console for data: no markup, emoji codes or highlighting, no line wrapped inside
    (a long order number stays one piece to copy), and every string made printable.

    Plain strings, table cells and titles all pass through `render_str`; `Text` objects are
    built with `styled`.
    """

    def __init__(self, *, stderr: bool = False) -> None:
        super().__init__(stderr=stderr, markup=False, emoji=False, highlight=False, soft_wrap=True)

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(printable(text), **options)


class PrintableFormatter(logging.Formatter):
    """Log lines carry order numbers and user names; they reach the terminal printable too."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))
