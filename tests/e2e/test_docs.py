"""The documentation is tested: a field, command, option or setting that is not documented (or
documented wrongly) fails here, as in datasette's test_docs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from shelflife.adapters.db.tables import Base
from shelflife.config import Settings
from shelflife.domain.masking import MASK_PROFILE, PiiField, all_fields, mask_value
from shelflife.entrypoints.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

SPEC_FIELDS: dict[str, tuple[str, ...]] = {
    # Verbatim from the spec's section "Which database fields are masked (anonymized) in pixi?".
    # The spec writes "SHouseNr CFax" without a comma; they are two fields.
    "Addresses": (
        "Anrede",
        "[Name]",
        "Name2",
        "FirstName",
        "LastName",
        "[Address]",
        "Street",
        "HouseNr",
        "City",
        "[State]",
        "ZIP",
        "Contact",
        "Phone",
        "Phone2",
        "Fax",
        "Fax2",
        "eMail",
        "eMail2",
        "BirthDate",
        "Note",
        "ACardType",
        "ACardName",
        "ACardNr",
        "ACardExp",
        "AAccount",
        "AAccName",
        "IBAN",
        "Addresses history",
    ),
    "Customers": (
        "CustomerNrExternal",
        "CardName",
        "CardNr",
        "CardExp",
        "Account",
        "AccName",
        "SName",
        "SName2",
        "SAddress",
        "SCity",
        "SState",
        "SZIP",
        "CeMail",
        "CNote",
        "CHisNote",
        "SFirstName",
        "SLastName",
        "SStreet",
        "SHouseNr",
        "CFax",
        "CPhone",
        "Customer history",
    ),
    "Orders": ("GiftMessage", "Address_Remarks", "Shop_Note"),
}
SECTION_TABLES = {
    "Addresses": {"addresses", "address_history"},
    "Customers": {"customers", "customer_history"},
    "Orders": {"orders"},
}
ALL_SPEC_NAMES = [(section, name) for section, names in SPEC_FIELDS.items() for name in names]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _table_rows(markdown: str) -> list[list[str]]:
    """Cells of every Markdown table row, header and separator rows included."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in markdown.splitlines()
        if line.lstrip().startswith("|")
    ]


def _spec_rows() -> dict[str, list[str]]:
    """Rows of the field map keyed by their first cell (the spec's name)."""
    rows: dict[str, list[str]] = {}
    for cells in _table_rows(_read(DOCS / "fields.md")):
        rows.setdefault(cells[0], cells)
    return rows


def _column_ref(cell: str) -> tuple[str, str]:
    match = re.fullmatch(r"`([a-z_]+)\.([a-z_0-9]+)`", cell)
    assert match is not None, f"{cell!r} is not a `table.column` reference"
    return match.group(1), match.group(2)


def _bare(spec_name: str) -> str:
    """The spec quotes SQL reserved words in brackets: [Name] is the field Name."""
    return spec_name.strip("[]")


def _field_for(spec_name: str) -> PiiField:
    matches = [f for f in all_fields() if _bare(spec_name) in f.spec_names]
    assert len(matches) == 1, f"{spec_name}: {len(matches)} fields in MASK_PROFILE carry it"
    return matches[0]


@pytest.mark.parametrize(("section", "spec_name"), ALL_SPEC_NAMES)
def test_fields_doc_maps_every_spec_field_to_a_column_of_its_table(
    section: str, spec_name: str
) -> None:
    row = _spec_rows().get(spec_name)
    assert row is not None, f"docs/fields.md has no row for the spec's field {spec_name}"
    table, column = _column_ref(row[1])
    assert table in SECTION_TABLES[section]
    assert column in Base.metadata.tables[table].c


@pytest.mark.parametrize(("section", "spec_name"), ALL_SPEC_NAMES)
def test_fields_doc_agrees_with_the_mask_profile(section: str, spec_name: str) -> None:
    field = _field_for(spec_name)
    row = _spec_rows()[spec_name]
    assert _column_ref(row[1]) == (field.table, field.column)
    assert row[2] == f"`{mask_value(field.kind)}`"


def test_mask_profile_names_no_spec_field_the_spec_does_not_have() -> None:
    in_code = {name for f in all_fields() for name in f.spec_names}
    assert in_code == {_bare(name) for _, name in ALL_SPEC_NAMES}


@pytest.mark.parametrize(
    "field", all_fields(), ids=lambda f: f"{f.table}.{f.column}" if isinstance(f, PiiField) else ""
)
def test_fields_doc_lists_every_masked_column_with_its_mask_value(field: PiiField) -> None:
    ref = f"`{field.table}.{field.column}`"
    rows = [cells for cells in _table_rows(_read(DOCS / "fields.md")) if ref in cells]
    assert rows, f"docs/fields.md does not mention {ref}"
    assert all(f"`{mask_value(field.kind)}`" in cells for cells in rows)


def test_fields_doc_mentions_every_column_commented_as_pii_or_kept() -> None:
    text = _read(DOCS / "fields.md")
    commented = [
        f"{table.name}.{column.name}"
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if (column.comment or "").startswith(("PII", "Kept after masking"))
    ]
    assert "customers.country" in commented
    assert [ref for ref in commented if f"`{ref}`" not in text] == []


def test_every_pii_commented_column_is_in_the_mask_profile() -> None:
    commented = {
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if (column.comment or "").startswith("PII")
    }
    profiled = {(t, f.column) for t, fields in MASK_PROFILE.items() for f in fields}
    # invoices/credits billing copies carry the plain "PII" comment too
    assert commented <= profiled


# -- the command line --------------------------------------------------------------------------


def _leaf_commands() -> dict[str, TyperCommand]:
    """Every runnable command by its full name, walking the Typer/Click tree."""
    found: dict[str, TyperCommand] = {}

    def walk(command: object, path: str) -> None:
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")
        else:
            assert isinstance(command, TyperCommand), path
            found[path] = command

    walk(typer.main.get_command(app), "shelflife")
    return found


def _cli_sections() -> dict[str, str]:
    """Body of each `## shelflife …` section of docs/cli.md."""
    parts = re.split(r"^## (shelflife[^\n]*)\n", _read(DOCS / "cli.md"), flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_the_command_tree_is_what_these_tests_expect() -> None:
    assert sorted(_leaf_commands()) == sorted(
        [
            "shelflife archive export",
            "shelflife archive migrate",
            "shelflife archive orphans",
            "shelflife archive recover",
            "shelflife archive show",
            "shelflife archive verify",
            "shelflife audit list",
            "shelflife audit verify",
            "shelflife compliance",
            "shelflife credit create",
            "shelflife demo",
            "shelflife duplicates",
            "shelflife erase",
            "shelflife export accounting",
            "shelflife export invoices",
            "shelflife feature disable",
            "shelflife feature enable",
            "shelflife find",
            "shelflife import",
            "shelflife init",
            "shelflife keys rotate",
            "shelflife merge",
            "shelflife replacement create",
            "shelflife retrieve",
            "shelflife return create",
            "shelflife run",
            "shelflife runs",
            "shelflife serve",
            "shelflife ship",
            "shelflife shop list",
            "shelflife shop set",
            "shelflife shop tax-fields",
            "shelflife show",
            "shelflife token create",
            "shelflife token revoke",
            "shelflife user add",
            "shelflife user disable",
            "shelflife user list",
            "shelflife user passwd",
            "shelflife user unlock",
        ]
    )


def test_cli_doc_has_one_section_per_command() -> None:
    assert sorted(_cli_sections()) == sorted(_leaf_commands())


@pytest.mark.parametrize("name", sorted(_leaf_commands()))
def test_cli_doc_section_names_every_option_and_argument_of_its_command(name: str) -> None:
    command = _leaf_commands()[name]
    body = _cli_sections().get(name, "")
    for param in command.params:
        if isinstance(param, TyperOption):
            for opt in param.opts:
                assert f"`{opt}" in body, f"docs/cli.md, {name}: option {opt} is not documented"
        else:
            assert isinstance(param, TyperArgument)
            assert (param.name or "").upper() in body, f"{name}: argument {param.name}"


@pytest.mark.parametrize("name", sorted(_leaf_commands()))
def test_cli_doc_section_names_no_option_its_command_lacks(name: str) -> None:
    command = _leaf_commands()[name]
    real = {opt for param in command.params for opt in param.opts if opt.startswith("--")}
    body = _cli_sections().get(name, "")
    mentioned = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", body))
    assert mentioned - real == set()


def test_cli_doc_names_every_option_of_the_command_groups() -> None:
    """Options such as `shelflife --verbose` belong to a group, not to one command."""
    text = _read(DOCS / "cli.md")
    missing: list[str] = []

    def walk(command: object) -> None:
        if isinstance(command, TyperGroup):
            missing.extend(
                opt
                for param in command.params
                if isinstance(param, TyperOption)
                for opt in param.opts
                if f"`{opt}`" not in text and f"`shelflife {opt}" not in text
            )
            for sub in command.commands.values():
                walk(sub)

    walk(typer.main.get_command(app))
    assert missing == []


def _json_keys() -> dict[str, list[str]]:
    """The keys each command's --json document has, from the models that define it."""
    from shelflife.services.documents import (
        ComplianceEntryDocument,
        CreditCreated,
        DuplicateGroup,
        DuplicatesReport,
        FindResult,
        FoundOrder,
        ReplacementCreated,
        ReturnCreated,
        RunReportDocument,
        RunView,
    )

    return {
        "shelflife run": list(RunReportDocument.model_fields),
        "shelflife compliance": [
            "violations",
            "holds",
            "warnings",
            *ComplianceEntryDocument.model_fields,
        ],
        "shelflife runs": list(RunView.model_fields),
        "shelflife find": [*FindResult.model_fields, *FoundOrder.model_fields],
        "shelflife duplicates": [*DuplicatesReport.model_fields, *DuplicateGroup.model_fields],
        "shelflife return create": list(ReturnCreated.model_fields),
        "shelflife replacement create": list(ReplacementCreated.model_fields),
        "shelflife credit create": list(CreditCreated.model_fields),
    }


@pytest.mark.parametrize("name", sorted(_json_keys()))
def test_cli_doc_section_names_every_key_of_its_json_document(name: str) -> None:
    body = _cli_sections()[name]
    assert [key for key in _json_keys()[name] if f"`{key}`" not in body] == []


def test_cli_doc_explains_the_three_exit_codes() -> None:
    codes = [
        cells[0] for cells in _table_rows(_read(DOCS / "cli.md")) if cells[0] in {"0", "1", "2"}
    ]
    assert codes == ["0", "2", "1"]


def test_cli_doc_mentions_every_command_group() -> None:
    text = _read(DOCS / "cli.md")
    for group in ("feature", "shop", "archive", "export", "keys"):
        assert f"## shelflife {group} " in text


# -- settings ----------------------------------------------------------------------------------


def _operations_rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for cells in _table_rows(_read(DOCS / "operations.md")):
        rows.setdefault(cells[0].strip("`"), cells)
    return rows


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_operations_doc_documents_every_setting_with_its_default(name: str) -> None:
    variable = f"SHELFLIFE_{name.upper()}"
    row = _operations_rows().get(variable)
    assert row is not None, f"docs/operations.md has no row for {variable}"
    default = Settings.model_fields[name].default
    if default is not None:
        assert f"`{default}`" in row[1] or f"`./{default}`" in row[1]


def test_operations_doc_mentions_every_variable_the_code_reads() -> None:
    text = _read(DOCS / "operations.md")
    read_by_code = {
        name
        for path in (ROOT / "src").rglob("*.py")
        for name in re.findall(r"SHELFLIFE_[A-Z_]*[A-Z]", _read(path))
    }
    assert "SHELFLIFE_DEBUG" in read_by_code
    assert sorted(name for name in read_by_code if name not in text) == []


def test_operations_doc_names_no_setting_that_does_not_exist() -> None:
    known = {f"SHELFLIFE_{name.upper()}" for name in Settings.model_fields} | {"SHELFLIFE_DEBUG"}
    mentioned = set(re.findall(r"SHELFLIFE_[A-Z_]*[A-Z]", _read(DOCS / "operations.md")))
    assert mentioned - known == set()


def test_operations_doc_states_the_precedence() -> None:
    assert "environment > `config.json` > default" in _read(DOCS / "operations.md")


# -- set-up: README, CI, Makefile --------------------------------------------------------------


def _fenced_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)


def _commands(block: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in block.splitlines())
    return [line for line in lines if line]


def test_readme_gives_exactly_two_set_up_commands() -> None:
    readme = _read(ROOT / "README.md")
    match = re.search(r"^## Set-?up[^\n]*\n(.*?)(?=^## )", readme, flags=re.M | re.S | re.I)
    assert match is not None, "README has no set-up section"
    commands = [c for block in _fenced_blocks(match.group(1)) for c in _commands(block)]
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_same_test_command_as_the_readme() -> None:
    script = _read(ROOT / ".ci" / "run")
    assert re.findall(r"^\s*(make test)\s*$", script, flags=re.MULTILINE) == ["make test"]


def _makefile_targets() -> list[str]:
    return re.findall(r"^([a-z][a-z0-9_-]*):(?!=)", _read(ROOT / "Makefile"), flags=re.MULTILINE)


def test_make_help_lists_every_makefile_target() -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    listed = re.findall(r"^\s*make (\S+)", result.stdout, flags=re.MULTILINE)
    targets = _makefile_targets()
    assert {"help", "demo", "test"} <= set(targets)
    assert sorted(listed) == sorted(targets)


def test_every_phony_target_is_defined() -> None:
    phony = re.findall(r"^\.PHONY:(.*)$", _read(ROOT / "Makefile"), flags=re.MULTILINE)
    declared = {name for line in phony for name in line.split()}
    assert sorted(declared - set(_makefile_targets())) == []
