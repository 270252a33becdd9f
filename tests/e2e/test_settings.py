"""A setting with a bad value names the setting and what it allows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from shelflife.config import Settings
from shelflife.entrypoints.cli import app

ROOT = Path(__file__).resolve().parents[2]
VARIABLES = (*(f"SHELFLIFE_{name.upper()}" for name in Settings.model_fields), "SHELFLIFE_DEBUG")
SECRET = "s3cret-pw"
DB_URL_HELP = "not a database URL; use sqlite:///PATH or postgresql+psycopg://USER@HOST/NAME"


def _cli(*args: str, **env: str) -> Result:
    values: dict[str, str | None] = dict.fromkeys(VARIABLES)
    values.update(env)
    result = CliRunner().invoke(app, list(args), env=values)
    assert "Traceback" not in result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def _table_variables() -> list[str]:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    return re.findall(r"^\| `(SHELFLIFE_[A-Z_]+)` \|", text, flags=re.MULTILINE)


# Every setting of docs/operations.md's table with bad values: (variable, value, exit code,
# the error line). "{tmp}" is the test's own folder; "{file}" a plain file in it.
BAD_VALUES: list[tuple[str, str, int, str]] = [
    (
        "SHELFLIFE_HOME",
        "{file}",
        2,
        "home folder {file} exists but is not a folder; set SHELFLIFE_HOME or --home to a folder",
    ),
    ("SHELFLIFE_DATABASE_URL", "nonsense", 2, f"SHELFLIFE_DATABASE_URL: {DB_URL_HELP}"),
    (
        "SHELFLIFE_DATABASE_URL",
        f"postgresql+psycopg://shelflife:{SECRET}@db:notaport/shelflife",
        2,
        f"SHELFLIFE_DATABASE_URL: {DB_URL_HELP}",
    ),
    (
        "SHELFLIFE_DATABASE_URL",
        f"mysql://shelflife:{SECRET}@db/shelflife",
        2,
        "SHELFLIFE_DATABASE_URL: 'mysql' is not supported; use SQLite or PostgreSQL",
    ),
    (
        "SHELFLIFE_DATABASE_URL",
        f"postgresql+psycopg://shelflife:{SECRET}@127.0.0.1:1/shelflife?connect_timeout=5",
        1,
        "cannot connect to the database; check SHELFLIFE_DATABASE_URL",
    ),
    *(
        (
            "SHELFLIFE_ARCHIVE_URL",
            bad,
            2,
            "SHELFLIFE_ARCHIVE_URL: an S3 URL needs a bucket name, "
            "e.g. s3://my-archive-bucket/shelflife",
        )
        for bad in ("s3://", "s3:///x")
    ),
    (
        "SHELFLIFE_ARCHIVE_URL",
        "s3://My_Bucket/x",
        2,
        "SHELFLIFE_ARCHIVE_URL: 'My_Bucket' is not a valid S3 bucket name (3 to 63 lowercase "
        "letters, digits, dots and hyphens), e.g. s3://my-archive-bucket/shelflife",
    ),
    (
        "SHELFLIFE_ARCHIVE_URL",
        "ftp://host/archive",
        2,
        "SHELFLIFE_ARCHIVE_URL: unsupported scheme 'ftp'; use a file:// or s3:// URL",
    ),
    (
        "SHELFLIFE_ARCHIVE_URL",
        "file://archive",
        2,
        "SHELFLIFE_ARCHIVE_URL: a file URL needs an absolute local path, "
        "e.g. file:///var/lib/shelflife/archive",
    ),
    (
        "SHELFLIFE_ARCHIVE_URL",
        "file://{file}",
        2,
        "SHELFLIFE_ARCHIVE_URL: {file} is not a folder; use a file:// URL of a folder",
    ),
    (
        "SHELFLIFE_ARCHIVE_REPLICA_URL",
        "s3://",
        2,
        "SHELFLIFE_ARCHIVE_REPLICA_URL: an S3 URL needs a bucket name, "
        "e.g. s3://my-archive-bucket/shelflife",
    ),
    (
        "SHELFLIFE_ARCHIVE_REPLICA_URL",
        "gs://bucket/archive",
        2,
        "SHELFLIFE_ARCHIVE_REPLICA_URL: unsupported scheme 'gs'; use a file:// or s3:// URL",
    ),
    (
        "SHELFLIFE_ARCHIVE_REPLICA_URL",
        "file://replica",
        2,
        "SHELFLIFE_ARCHIVE_REPLICA_URL: a file URL needs an absolute local path, "
        "e.g. file:///var/lib/shelflife/archive",
    ),
    (
        "SHELFLIFE_ARCHIVE_REPLICA_URL",
        "file://{file}",
        2,
        "SHELFLIFE_ARCHIVE_REPLICA_URL: {file} is not a folder; use a file:// URL of a folder",
    ),
    (
        "SHELFLIFE_ARCHIVE_REPLICA_URL",
        "file://{tmp}/home/archive",
        2,
        "SHELFLIFE_ARCHIVE_REPLICA_URL: names the same place as the archive; the second copy "
        "must be in another folder or bucket, ideally in another location",
    ),
    (
        "SHELFLIFE_KEY_LEDGER_URL",
        "s3://",
        2,
        "SHELFLIFE_KEY_LEDGER_URL: an S3 URL needs a bucket name, "
        "e.g. s3://my-archive-bucket/shelflife",
    ),
    (
        "SHELFLIFE_KEY_LEDGER_URL",
        "ftp://host/ledger",
        2,
        "SHELFLIFE_KEY_LEDGER_URL: unsupported scheme 'ftp'; use a file:// or s3:// URL",
    ),
    (
        "SHELFLIFE_KEY_LEDGER_URL",
        "file://ledger",
        2,
        "SHELFLIFE_KEY_LEDGER_URL: a file URL needs an absolute local path, "
        "e.g. file:///var/lib/shelflife/archive",
    ),
    (
        "SHELFLIFE_KEY_LEDGER_URL",
        "file://{file}",
        2,
        "SHELFLIFE_KEY_LEDGER_URL: {file} is not a folder; use a file:// URL of a folder",
    ),
    (
        "SHELFLIFE_KEY_LEDGER_URL",
        "file://{tmp}/home/archive",
        2,
        "SHELFLIFE_KEY_LEDGER_URL: names the same place as the archive; the key ledger must be "
        "a mutable folder or bucket of its own (shredding deletes from it)",
    ),
    (
        "SHELFLIFE_KEY_LEDGER_REPLICA_URL",
        "gs://bucket/ledger",
        2,
        "SHELFLIFE_KEY_LEDGER_REPLICA_URL: unsupported scheme 'gs'; use a file:// or s3:// URL",
    ),
    (
        "SHELFLIFE_KEY_LEDGER_REPLICA_URL",
        "file://{tmp}/home/archive-ledger",
        2,
        "SHELFLIFE_KEY_LEDGER_REPLICA_URL: names the same place as the key ledger; the second "
        "copy must be in another folder or bucket",
    ),
    *(
        (
            variable,
            bad,
            2,
            f"{variable}: must be a whole number from 0 to 100",
        )
        for variable in (
            "SHELFLIFE_RETENTION_YEARS_INVOICE",
            "SHELFLIFE_RETENTION_YEARS_CREDIT",
            "SHELFLIFE_RETENTION_YEARS_ORDER",
        )
        for bad in ("-1", "101", "ten", "1.5")
    ),
    (
        "SHELFLIFE_DOCUMENT_STORE_URL",
        "s3://",
        2,
        "SHELFLIFE_DOCUMENT_STORE_URL: an S3 URL needs a bucket name, "
        "e.g. s3://my-archive-bucket/shelflife",
    ),
    (
        "SHELFLIFE_DOCUMENT_STORE_URL",
        "gs://bucket/pdfs",
        2,
        "SHELFLIFE_DOCUMENT_STORE_URL: unsupported scheme 'gs'; use a file:// or s3:// URL",
    ),
    (
        "SHELFLIFE_DOCUMENT_STORE_URL",
        "file://pdfs",
        2,
        "SHELFLIFE_DOCUMENT_STORE_URL: a file URL needs an absolute local path, "
        "e.g. file:///var/lib/shelflife/archive",
    ),
    (
        "SHELFLIFE_DOCUMENT_STORE_URL",
        "file://{file}",
        2,
        "SHELFLIFE_DOCUMENT_STORE_URL: {file} is not a folder; use a file:// URL of a folder",
    ),
    (
        "SHELFLIFE_DOCUMENT_STORE_URL",
        "file://{tmp}/home/archive/",
        2,
        "SHELFLIFE_DOCUMENT_STORE_URL: names the same place as the archive; the PDFs must be "
        "in their own folder or bucket, from which they are deleted at masking",
    ),
    *(
        (
            "SHELFLIFE_ARCHIVE_RETENTION_DAYS",
            bad,
            2,
            "SHELFLIFE_ARCHIVE_RETENTION_DAYS: must be a whole number from 0 to 36500",
        )
        for bad in ("-1", "36501", "ten", "1.5")
    ),
    *(
        (
            "SHELFLIFE_ARCHIVE_STORAGE_CLASS",
            bad,
            2,
            "SHELFLIFE_ARCHIVE_STORAGE_CLASS: must be one of STANDARD, STANDARD_IA, ONEZONE_IA, "
            "INTELLIGENT_TIERING, GLACIER_IR",
        )
        for bad in ("GLACIER", "DEEP_ARCHIVE", "standard", "cheap")
    ),
    ("SHELFLIFE_MASTER_KEY_FILE", "{tmp}", 1, "cannot read master key file {tmp}: Is a directory"),
    (
        "SHELFLIFE_MASTER_KEY_FILE",
        "{file}",
        1,
        "master key file {file} is not a shelflife key file",
    ),
    *(
        ("SHELFLIFE_KEY_PROVIDER", bad, 2, "SHELFLIFE_KEY_PROVIDER: must be one of file, kms")
        for bad in ("vault", "KMS", "aws-kms")
    ),
    (
        "SHELFLIFE_KEY_PROVIDER",
        "kms",
        2,
        "SHELFLIFE_KMS_KEY_ID: must name the KMS key (key id, ARN or alias/NAME) when "
        "SHELFLIFE_KEY_PROVIDER is kms",
    ),
    (
        "SHELFLIFE_KMS_KEY_ID",
        "k" * 2049,
        2,
        "SHELFLIFE_KMS_KEY_ID: must be a KMS key id, key ARN or alias/NAME, as text",
    ),
    *(
        (
            "SHELFLIFE_BATCH_SIZE",
            bad,
            2,
            "SHELFLIFE_BATCH_SIZE: must be a whole number from 1 to 100000",
        )
        for bad in ("abc", "0", "-1", "100001", "1.5", "1e3", "10 rows")
    ),
    *(
        (
            "SHELFLIFE_ARCHIVE_WORKERS",
            bad,
            2,
            "SHELFLIFE_ARCHIVE_WORKERS: must be a whole number from 1 to 64",
        )
        for bad in ("abc", "0", "65", "1000", "eight")
    ),
    *(
        (
            "SHELFLIFE_RETRIEVAL_ALERT_PER_HOUR",
            bad,
            2,
            "SHELFLIFE_RETRIEVAL_ALERT_PER_HOUR: must be a whole number from 1 to 10000",
        )
        for bad in ("0", "10001", "thirty")
    ),
    (
        "SHELFLIFE_ARCHIVE_OFFLINE_DIR",
        "{file}",
        2,
        "SHELFLIFE_ARCHIVE_OFFLINE_DIR: {file} is not a folder; name the folder of an archive "
        "export",
    ),
    (
        "SHELFLIFE_ARCHIVE_OFFLINE_DIR",
        "media/offline",
        2,
        "SHELFLIFE_ARCHIVE_OFFLINE_DIR: give an absolute path, e.g. /media/offline/shelflife",
    ),
    *(
        (
            "SHELFLIFE_VERIFY_SAMPLE_PERCENT",
            bad,
            2,
            "SHELFLIFE_VERIFY_SAMPLE_PERCENT: must be a percentage from 0 to 100 (fractions "
            "allowed)",
        )
        for bad in ("-1", "100.5", "half", "nan")
    ),
    *(
        (
            "SHELFLIFE_LOCK_TIMEOUT",
            bad,
            2,
            "SHELFLIFE_LOCK_TIMEOUT: must be a number of seconds above 0 and at most 3600",
        )
        for bad in ("0", "-1", "3601", "soon")
    ),
]


def test_every_setting_of_the_operations_table_has_bad_values_tested() -> None:
    assert sorted({variable for variable, *_ in BAD_VALUES}) == sorted(_table_variables())
    assert sorted(_table_variables()) == sorted(
        f"SHELFLIFE_{name.upper()}" for name in Settings.model_fields
    )


@pytest.mark.parametrize(
    ("variable", "value", "code", "message"),
    BAD_VALUES,
    ids=[f"{v}={value}" for v, value, *_ in BAD_VALUES],
)
def test_a_bad_setting_stops_init_naming_the_setting_and_what_it_allows(
    tmp_path: Path, variable: str, value: str, code: int, message: str
) -> None:
    file = tmp_path / "plain-file"
    file.write_text("not a folder and not a key\n")
    file.chmod(0o600)  # private, so that the key check gets as far as reading it
    home = tmp_path / "home"
    env = {"SHELFLIFE_HOME": str(home), variable: value.format(tmp=tmp_path, file=file)}

    result = _cli("init", **env)

    assert (result.exit_code, result.stdout) == (code, "")
    assert result.stderr == f"error: {message.format(tmp=tmp_path, file=file)}\n"
    assert SECRET not in result.output


def test_an_s3_archive_replica_without_a_key_ledger_replica_is_refused(tmp_path: Path) -> None:
    result = _cli(
        "init",
        SHELFLIFE_HOME=str(tmp_path / "home"),
        SHELFLIFE_ARCHIVE_REPLICA_URL="s3://acme-replica/archive",
    )

    assert (result.exit_code, result.stderr) == (
        2,
        "error: SHELFLIFE_KEY_LEDGER_REPLICA_URL: must be set when the archive replica is not a "
        "file:// folder (a bucket or prefix without Object Lock, near the replica)\n",
    )
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize(
    ("variable", "value"), [("SHELFLIFE_BATCH_SIZE", "0"), ("SHELFLIFE_ARCHIVE_WORKERS", "abc")]
)
def test_a_bad_number_stops_every_command_before_it_writes(
    tmp_path: Path, variable: str, value: str
) -> None:
    home = tmp_path / "home"
    assert _cli("init", SHELFLIFE_HOME=str(home)).exit_code == 0
    before = sorted(p.name for p in home.iterdir())

    results = [
        _cli(*args, SHELFLIFE_HOME=str(home), **{variable: value})
        for args in (["run"], ["compliance"], ["import", "-"], ["show", "x"], ["shop", "list"])
    ]
    fresh = _cli("init", SHELFLIFE_HOME=str(tmp_path / "new"), **{variable: value})

    assert {(r.exit_code, r.stderr) for r in [*results, fresh]} == {
        (
            2,
            f"error: {variable}: must be a whole number from 1 to "
            f"{100000 if variable == 'SHELFLIFE_BATCH_SIZE' else 64}\n",
        )
    }
    assert sorted(p.name for p in home.iterdir()) == before
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("key", "stored", "allowed"),
    [
        (
            "database_url",
            40_961_337,
            "a database URL as text: sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST/NAME",
        ),
        (
            "archive_url",
            ["file:///srv/archive-4096"],
            "a file:// URL with an absolute path or an s3:// URL, as text",
        ),
        (
            "archive_replica_url",
            {"url": "file:///srv/replica-4096"},
            "a file:// URL with an absolute path or an s3:// URL, as text",
        ),
        (
            "document_store_url",
            ["file:///srv/documents-4096"],
            "a file:// URL with an absolute path or an s3:// URL, as text",
        ),
        ("master_key_file", {"path": "/srv/key-4096"}, "the path of the master key file, as text"),
        ("key_provider", "vault-4096", "one of file, kms"),
        ("kms_key_id", ["alias/key-4096"], "a KMS key id, key ARN or alias/NAME, as text"),
    ],
)
def test_a_bad_config_json_value_names_the_file_and_key_and_never_the_value(
    tmp_path: Path, key: str, stored: object, allowed: str
) -> None:
    home = tmp_path / "home"
    assert _cli("init", SHELFLIFE_HOME=str(home)).exit_code == 0
    config = home / "config.json"
    config.write_text(json.dumps({key: stored}))

    result = _cli("run", SHELFLIFE_HOME=str(home))

    assert (result.exit_code, result.stderr) == (
        2,
        f"error: {config}: key {key!r} must be {allowed}\n",
    )  # the whole line is fixed: the stored value is never in it


@pytest.mark.parametrize(
    "content", ["{not json", "[" * 100_000 + "]" * 100_000], ids=["not json", "nested too deep"]
)
def test_a_config_json_that_is_not_json_names_the_file(tmp_path: Path, content: str) -> None:
    home = tmp_path / "home"
    assert _cli("init", SHELFLIFE_HOME=str(home)).exit_code == 0
    config = home / "config.json"
    config.write_text(content)

    result = _cli("run", SHELFLIFE_HOME=str(home))

    assert (result.exit_code, result.stderr) == (
        2,
        f"error: {config}: not valid JSON; fix or delete it and run `shelflife init`\n",
    )


def test_a_bad_config_json_value_is_overridden_by_the_environment(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _cli("init", SHELFLIFE_HOME=str(home)).exit_code == 0
    (home / "config.json").write_text(json.dumps({"database_url": 5}))

    result = _cli(
        "compliance",
        SHELFLIFE_HOME=str(home),
        SHELFLIFE_DATABASE_URL=f"sqlite:///{home / 'shelflife.db'}",
    )

    assert (result.exit_code, result.stdout) == (
        0,
        "compliant: no Amazon buyer's data is kept past the limit without a legal reason\n",
    )


def test_an_empty_variable_counts_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SHELFLIFE_HOME= would otherwise make the current folder the home folder."""
    monkeypatch.chdir(tmp_path)

    result = _cli("init", SHELFLIFE_HOME="", SHELFLIFE_BATCH_SIZE="", SHELFLIFE_MASTER_KEY_FILE="")

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [".shelflife"]
    assert (tmp_path / ".shelflife" / "master.key").is_file()


def test_operations_doc_quotes_the_real_message_of_a_bad_setting() -> None:
    result = _cli("compliance", SHELFLIFE_BATCH_SIZE="abc")
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")

    assert result.exit_code == 2
    assert f"`{result.stderr.strip()}`" in text
