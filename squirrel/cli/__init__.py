"""The `sq` command line: parse, call one porcelain or plumbing function,
render text or JSON, and map errors to exit codes (docs/exit-codes.md).

This package is the only part of squirrel that prints, reads the
environment or exits. This module holds the `cli` group, the entry points
`run` (the `sq` program) and `main` (the command line, also run in-process
by the tests) and the exit codes; the commands live in `replica`, `sync`,
`carrier`, `trash`, `bundle`, `plumbing` and `complete` (shell completion), the
helpers they share in `output` and the progress line in `live`.
"""

from __future__ import annotations

import atexit
import errno
import gc
import importlib
import os
import sys
from typing import NoReturn

import click

from squirrel import __version__
from squirrel.errors import SquirrelError
from squirrel.plumbing import faults

EXIT_PREDICATE_NO = 1
EXIT_USAGE = 2

__all__ = ["COMMAND_MODULES", "EXIT_PREDICATE_NO", "EXIT_USAGE", "cli", "load_all_commands", "main", "run"]


# Which module of this package defines each command. A command's module is
# imported only when that command runs (or help lists them all): `sq scan`
# need not load the carrier's or the bundle's code, and every run starts
# sooner (tests/test_architecture.py checks that this table is complete).
COMMAND_MODULES = {
    "apply": "bundle",
    "bundle": "bundle",
    "carrier": "carrier",
    "cat-object": "bundle",
    "completion": "complete",
    "conflicts": "replica",
    "hash-object": "plumbing",
    "init": "replica",
    "knowledge": "bundle",
    "ls-index": "plumbing",
    "pack": "bundle",
    "push": "sync",
    "reconcile": "sync",
    "reidentify": "replica",
    "resolve": "replica",
    "scan": "replica",
    "status": "replica",
    "sync": "sync",
    "trash": "trash",
    "verify": "replica",
    "vt": "plumbing",
}


class _Commands(click.Group):
    """The `sq` group: commands come from their modules on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands.keys() | COMMAND_MODULES.keys())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(f"squirrel.cli.{COMMAND_MODULES[cmd_name]}")
        return self.commands.get(cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sq")
def cli() -> None:
    """Data Squirrel: keep offline drives in sync, carrying only the changes.

    A replica is a directory tree (usually a drive) with a .squirrel/ folder
    at its root. Run `sq COMMAND --help` for each command. Exit codes: 0 done,
    1 a predicate said no, 2 usage error, 3 and up a specific error
    (docs/exit-codes.md).
    """


def load_all_commands() -> None:
    """Import every command's module (for tools that walk `cli.commands`)."""
    for module in sorted(set(COMMAND_MODULES.values())):
        importlib.import_module(f"squirrel.cli.{module}")


def run() -> NoReturn:
    """The `sq` program (its console script, and `python -m squirrel.cli`).

    What the imports made (modules, classes, functions) lives as long as
    the process: the garbage collector is told so (`gc.freeze`), here and
    again just before the interpreter's last collection at exit, which
    otherwise walks every one of those objects for nothing: 8 ms of `sq
    --version` (48 ms in all), 11 of `sq status` and 17 of `sq verify` on a
    small replica (104 and 112 ms). The commands' own objects are freed as
    ever, by their reference counts, and nothing of `sq` waits for a
    collection to be closed or written. `main`, which the tests run in
    their own process, leaves the collector alone."""
    gc.freeze()
    atexit.register(gc.freeze)  # the first registered runs last, after the other exit handlers
    main()


def main(argv: list[str] | None = None) -> NoReturn:
    try:
        faults.configure(os.environ.get("SQ_FAULT"))
    except ValueError as e:
        click.echo(f"sq: error: SQ_FAULT: {e}", err=True)
        sys.exit(EXIT_USAGE)
    if os.environ.get("SQ_PURE_PYTHON"):
        from squirrel.plumbing import groups, place, sweep

        sweep.compare_in_python()
        groups.copy_in_python()
        place.place_in_python()
    try:
        rv = cli.main(args=argv, prog_name="sq", standalone_mode=False)
    except click.exceptions.UsageError as e:
        e.show()
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        click.echo("sq: aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_USAGE)
    except SquirrelError as e:
        click.echo(f"sq: error: {e.message}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("sq: interrupted", err=True)
        sys.exit(130)
    except OSError as e:
        from squirrel.errors import FileSystemError, OutOfSpace

        where = f": {os.fsdecode(e.filename)}" if getattr(e, "filename", None) else ""
        click.echo(f"sq: error: {e.strerror or e}{where}", err=True)
        sys.exit(OutOfSpace.exit_code if e.errno == errno.ENOSPC else FileSystemError.exit_code)
    except Exception as e:  # a bug: one line, a distinct code, the traceback on request
        if os.environ.get("SQ_DEBUG"):
            raise
        click.echo(f"sq: internal error: {type(e).__name__}: {e} (set SQ_DEBUG=1 for details)", err=True)
        sys.exit(SquirrelError.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)
