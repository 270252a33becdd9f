"""`shelflife --version` prints the installed version, whatever the settings."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from typer.testing import CliRunner, Result

from shelflife.entrypoints.cli import app

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args), env={"SHELFLIFE_BATCH_SIZE": "abc"})
    assert "Traceback" not in result.output
    return result


def test_version_prints_the_installed_version_and_exits_0() -> None:
    result = _cli("--version")

    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        f"shelflife {version('shelflife')}\n",
        "",
    )


def test_version_needs_no_home_and_ignores_bad_settings(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("shelflife")

    result = subprocess.run(
        [str(script), "--version"],
        env={
            "PATH": "/usr/bin:/bin",
            "SHELFLIFE_HOME": str(tmp_path / "x"),
            "SHELFLIFE_BATCH_SIZE": "abc",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"shelflife {version('shelflife')}\n",
        "",
    )
    assert not (tmp_path / "x").exists()


def test_cli_doc_shows_the_version_line_as_printed() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")

    assert "`shelflife --version` prints `shelflife` and the installed version" in text
    assert re.fullmatch(r"shelflife \d+\.\d+\.\d+\n", _cli("--version").stdout)
