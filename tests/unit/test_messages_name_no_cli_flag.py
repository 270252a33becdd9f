"""Services, the domain and the adapters also answer the web app and the API, where a CLI
flag means nothing: no message they raise names one. Read from the source, so a new message
is covered the day it is written."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import shelflife

PACKAGE = Path(shelflife.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z]")


def _raised_texts(path: Path) -> list[tuple[int, str]]:
    """Every string (or f-string part) inside a `raise` statement of the module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for part in ast.walk(node.exc):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    found.append((part.lineno, part.value))
    return found


def test_no_message_raised_below_the_entrypoints_names_a_cli_flag() -> None:
    modules = [
        path
        for layer in ("services", "domain", "adapters")
        for path in sorted((PACKAGE / layer).rglob("*.py"))
    ]
    offending = [
        f"{path.relative_to(PACKAGE)}:{line}: {text}"
        for path in modules
        for line, text in _raised_texts(path)
        if FLAG.search(text)
    ]
    assert offending == []


def test_the_check_finds_a_flag_in_an_f_string(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('def f(x):\n    raise ValueError(f"--at: {x} is wrong")\n')

    assert _raised_texts(module) == [(2, "--at: "), (2, " is wrong")]
