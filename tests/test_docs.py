"""The documentation keeps up with the code: every error class has its exit
code in docs/exit-codes.md, and every command has help and a place in docs/."""

from __future__ import annotations

import inspect
from pathlib import Path

import click
import pytest

from squirrel import cli as cli_mod
from squirrel import errors

cli_mod.load_all_commands()

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXIT_CODES_DOC = DOCS / "exit-codes.md"
RESERVED_CODES = {
    0: "done",
    cli_mod.EXIT_PREDICATE_NO: "predicate",
    errors.SquirrelError.exit_code: "internal error",
    130: "interrupted",
}


def table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row, stripped."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|") and line.endswith("|"):
            rows.append([cell.strip() for cell in line[1:-1].split("|")])
    return rows


def exit_code_table() -> dict[int, list[str]]:
    """code -> the class names (or '—') from the table in docs/exit-codes.md,
    the class that owns the code first."""
    table: dict[int, list[str]] = {}
    for cells in table_rows(EXIT_CODES_DOC.read_text(encoding="utf-8")):
        if len(cells) >= 2 and cells[0].isdigit():
            code = int(cells[0])
            assert code not in table, f"exit code {code} appears twice in {EXIT_CODES_DOC.name}"
            table[code] = [name.strip().strip("`") for name in cells[1].split(",")]
    return table


def owners() -> list[type[errors.SquirrelError]]:
    """The classes that own their code: every other one subclasses its owner."""
    return [e for e in errors.ALL_ERRORS if e.__base__.exit_code != e.exit_code]


def walk_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found = []
    for name, cmd in sorted(group.commands.items()):
        found.append(((*prefix, name), cmd))
        if isinstance(cmd, click.Group):
            found += walk_commands(cmd, (*prefix, name))
    return found


def all_docs_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md")))


def test_every_error_class_is_listed_in_all_errors() -> None:
    defined = {
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, errors.SquirrelError) and obj is not errors.SquirrelError
    }
    assert defined == set(errors.ALL_ERRORS)


@pytest.mark.parametrize("err", errors.ALL_ERRORS, ids=lambda e: e.__name__)
def test_error_class_and_code_are_documented(err: type[errors.SquirrelError]) -> None:
    table = exit_code_table()
    owner = next(e for e in owners() if e.exit_code == err.exit_code)
    assert issubclass(err, owner), (
        f"{err.__name__} shares code {err.exit_code} with {owner.__name__} but is no subclass"
    )
    names = table.get(err.exit_code, [])
    assert names[:1] == [owner.__name__] and err.__name__ in names, (
        f"{EXIT_CODES_DOC.name} must name {err.__name__} in the row '| {err.exit_code} | `{owner.__name__}`... | ...'"
    )


def test_reserved_codes_are_documented() -> None:
    table = exit_code_table()
    for code in RESERVED_CODES:
        assert code in table, f"exit code {code} missing from {EXIT_CODES_DOC.name}"


def test_documented_codes_all_exist() -> None:
    known = set(RESERVED_CODES) | {e.exit_code for e in errors.ALL_ERRORS}
    assert set(exit_code_table()) <= known


def test_exit_codes_are_distinct() -> None:
    codes = [e.exit_code for e in owners()]
    assert len(codes) == len(set(codes)), "two error classes share an exit code, and neither subclasses the other"
    assert not set(codes) & set(RESERVED_CODES), "an error class uses 0, 1, 70 or 130"
    assert errors.BadUsage.exit_code == cli_mod.EXIT_USAGE, "a usage error found below the parser exits like one"
    assert all(3 <= c <= 125 for c in codes if c != cli_mod.EXIT_USAGE), "error codes live in 3..125"


def test_walk_finds_nested_commands() -> None:
    names = {" ".join(path) for path, _ in walk_commands(cli_mod.cli)}
    assert {"init", "scan", "status", "vt", "vt compare"} <= names


@pytest.mark.parametrize(
    "path,cmd", [pytest.param(p, c, id="sq " + " ".join(p)) for p, c in walk_commands(cli_mod.cli)]
)
def test_command_has_help_and_is_documented(path: tuple[str, ...], cmd: click.Command) -> None:
    assert (cmd.help or "").strip(), f"sq {' '.join(path)} has no help text"
    if isinstance(cmd, click.Group):
        return  # a group is documented through its subcommands
    assert f"sq {' '.join(path)}" in all_docs_text(), f"`sq {' '.join(path)}` is not mentioned in docs/"
