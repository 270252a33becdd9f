"""`shelflife archive verify / export / migrate` through the CLI runner, and the nightly
sample's line in `shelflife run`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.test_cli import AFTER_MASK_DUE, NR, SHIPPED, Cli, _stdin
from tests.support.builders import order


@pytest.fixture
def masked(database_url: str, tmp_path: Path) -> Cli:
    """An installation with one Amazon order archived and masked."""
    cli = Cli(tmp_path / "home", database_url)
    cli.ok("init")
    cli.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED)))
    cli.ok("feature", "enable", "--shop", "main")
    assert cli.json("run", "--as-of", AFTER_MASK_DUE)["masked"] == 1
    return cli


def test_archive_verify_checks_every_object_and_says_what_it_found(masked: Cli) -> None:
    result = masked.ok("archive", "verify")

    archive = (masked.home / "archive").resolve().as_uri()
    assert result.output.split() == (
        f"1 object(s) and 1 record(s) checked of 1 object(s) in {archive}: 0 problem(s)".split()
    )


def test_archive_export_then_verify_from_the_folder_and_migrate_nothing(
    masked: Cli, tmp_path: Path
) -> None:
    media = tmp_path / "media"

    exported = masked.json("archive", "export", "--to", str(media), "--user", "ops")
    checked = masked.json("archive", "verify", "--from", str(media))
    migrated = masked.json("archive", "migrate")

    assert (exported["written"], exported["unchanged"], exported["problems"]) == (1, 0, [])
    assert exported["manifest"] == str(media / "shelflife-export.json")
    assert (checked["objects_checked"], checked["records_checked"], checked["problems"]) == (
        1,
        1,
        [],
    )
    assert (migrated["migrated"], migrated["failed"], migrated["remaining"]) == (0, 0, 0)


def test_archive_export_refuses_the_archive_folder_itself(masked: Cli) -> None:
    result = masked("archive", "export", "--to", str(masked.home / "archive"))

    assert result.exit_code == 2
    assert f"{masked.home / 'archive'} is the archive itself" in result.output


def test_a_run_with_a_verification_sample_says_how_many_objects_it_verified(masked: Cli) -> None:
    env = masked.env(verify_sample_percent="100")

    result = masked("run", "--as-of", AFTER_MASK_DUE, env=env)

    assert result.exit_code == 0, result.output
    assert "verified 1 archive object(s)" in result.output


@pytest.mark.parametrize("sample", ["0", "101"])
def test_archive_verify_refuses_a_sample_outside_0_to_100(masked: Cli, sample: str) -> None:
    assert masked("archive", "verify", "--sample", sample).exit_code == 2


def test_archive_verify_from_a_folder_that_holds_no_export_exits_2(
    masked: Cli, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()

    result = masked("archive", "verify", "--from", str(empty))

    assert result.exit_code == 2
    assert f"{empty} holds no archive export (shelflife-export.json is missing)" in result.output


def test_archive_verify_from_counts_objects_written_after_the_export(
    masked: Cli, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    masked.json("archive", "export", "--to", str(media))
    later = order("303-1234567-1234567", shipped_at=SHIPPED, suffix="-later")
    masked.ok("import", "-", input=_stdin(later))
    assert masked.json("run", "--as-of", AFTER_MASK_DUE)["archived"] == 1  # a new segment

    checked = masked.json("archive", "verify", "--from", str(media))

    assert (checked["objects_checked"], checked["not_exported"], checked["problems"]) == (1, 1, [])


@pytest.mark.parametrize(
    "manifest",
    [
        '{"format": 1, "objects": [{"key": "segments/a.sls", "size": 1e999, "sha256": "00"}]}',
        "[" * 100_000 + "]" * 100_000,
    ],
    ids=["infinite-size", "nested-too-deep"],
)
def test_archive_verify_from_a_damaged_manifest_exits_2(
    masked: Cli, tmp_path: Path, manifest: str
) -> None:
    media = tmp_path / "media"
    masked.json("archive", "export", "--to", str(media))
    (media / "shelflife-export.json").write_text(manifest)

    result = masked("archive", "verify", "--from", str(media))

    assert result.exit_code == 2
    assert result.output == f"error: {media}: shelflife-export.json is damaged\n"


def test_archive_verify_from_a_manifest_naming_a_key_with_a_nul_reports_the_key(
    masked: Cli, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    masked.json("archive", "export", "--to", str(media))
    (media / "shelflife-export.json").write_text(
        '{"format": 1, "objects": [{"key": "segments/a\\u0000.sls", "size": 1, "sha256": "00"}]}'
    )

    checked = masked.json("archive", "verify", "--from", str(media), code=1)

    assert [(p["object_key"], p["problem"]) for p in checked["problems"]] == [
        ("segments/a\x00.sls", "cannot be read: invalid archive object key")
    ]


def test_a_run_whose_archive_folder_is_gone_archives_and_masks_nobody(
    database_url: str, tmp_path: Path
) -> None:
    """A folder that is not there (a disk not mounted, a mistyped SHELFLIFE_ARCHIVE_URL) is an
    archive failure, as a missing S3 bucket is: a new, empty archive made in its place would
    hide the buyers' copies from the real one."""
    cli = Cli(tmp_path / "home", database_url)
    cli.ok("init")
    cli.ok("import", "-", input=_stdin(order(NR, shipped_at=SHIPPED)))
    cli.ok("feature", "enable", "--shop", "main")
    (cli.home / "archive").rmdir()

    report = cli.json("run", "--as-of", AFTER_MASK_DUE)

    assert (report["archived"], report["archive_failed"], report["masked"]) == (0, 1, 0)
    assert report["archive_failure_reasons"] == [
        f"cannot write to the archive folder {cli.home / 'archive'}: it is not there; run "
        "`shelflife init` to create it, or fix SHELFLIFE_ARCHIVE_URL (is its disk mounted?)"
    ]
    assert not (cli.home / "archive").exists()


@pytest.mark.parametrize(
    ("command", "doing"),
    [(("archive", "export", "--to", "media"), "exporting"), (("archive", "migrate"), "migrating")],
)
def test_archive_export_and_migrate_refuse_a_user_name_the_audit_log_cannot_hold(
    masked: Cli, tmp_path: Path, command: tuple[str, ...], doing: str
) -> None:
    args = [str(tmp_path / a) if a == "media" else a for a in command]

    result = masked(*args, "--user", "u" * 101)

    assert result.exit_code == 2
    assert result.output == (
        f"error: user: give the name of the person {doing} (1 to 100 characters)\n"
    )
    assert not (tmp_path / "media").exists()


def test_archive_export_to_a_folder_with_a_long_path_is_audited_with_the_whole_path(
    masked: Cli, tmp_path: Path
) -> None:
    """The audit subject holds 200 characters; a mount point and folders may take more."""
    media = tmp_path / ("offline-media-" * 10) / ("shelflife-export-" * 6)
    assert len(str(media)) > 200

    exported = masked.json("archive", "export", "--to", str(media))
    (entry,) = [e for e in masked.json("audit", "list") if e["action"] == "archive.exported"]

    assert (exported["written"], exported["problems"]) == (1, [])
    assert entry["detail"]["folder"] == str(media)
    assert entry["subject"] == "…" + str(media)[-199:]


def test_archive_export_into_a_symbolic_link_loop_says_so(masked: Cli, tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)

    result = masked("archive", "export", "--to", str(loop / "media"))

    assert result.exit_code == 1
    assert result.output == (
        f"error: cannot create the archive folder {loop / 'media'}: Too many levels of symbolic "
        "links\n"
    )


def test_archive_export_to_a_folder_whose_name_is_not_utf8_is_exported_and_audited(
    masked: Cli, tmp_path: Path
) -> None:
    """Removable media mounted with a legacy code page give names like these."""
    media = tmp_path / os.fsdecode(b"Sicherung-M\xe4rz")

    exported = masked.json("archive", "export", "--to", str(media))
    checked = masked.json("archive", "verify", "--from", str(media))
    (entry,) = [e for e in masked.json("audit", "list") if e["action"] == "archive.exported"]

    assert (exported["written"], exported["problems"], checked["problems"]) == (1, [], [])
    assert entry["subject"] == entry["detail"]["folder"] == f"{tmp_path}/Sicherung-M\\xe4rz"
