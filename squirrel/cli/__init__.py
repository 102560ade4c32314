"""The `sq` command line: parse, call one porcelain or plumbing function,
render text or JSON, and map errors to exit codes (docs/exit-codes.md).

This package is the only part of squirrel that prints, reads the
environment or exits. This module holds the `cli` group, the entry point
`main` and the exit codes; the commands live in `replica`, `sync`,
`carrier`, `trash`, `bundle`, `plumbing` and `complete` (shell completion), the
helpers they share in `output` and the progress line in `live`.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import NoReturn

import click

from squirrel import __version__
from squirrel.errors import SquirrelError
from squirrel.plumbing import faults

EXIT_PREDICATE_NO = 1
EXIT_USAGE = 2

__all__ = ["EXIT_PREDICATE_NO", "EXIT_USAGE", "cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sq")
def cli() -> None:
    """Data Squirrel: keep offline drives in sync, carrying only the changes.

    A replica is a directory tree (usually a drive) with a .squirrel/ folder
    at its root. Run `sq COMMAND --help` for each command. Exit codes: 0 done,
    1 a predicate said no, 2 usage error, 3 and up a specific error
    (docs/exit-codes.md).
    """


# The commands register themselves on `cli` when their modules are imported.
from squirrel.cli import bundle, carrier, complete, plumbing, replica, sync, trash  # noqa: E402, F401


def main(argv: list[str] | None = None) -> NoReturn:
    try:
        faults.configure(os.environ.get("SQ_FAULT"))
    except ValueError as e:
        click.echo(f"sq: error: SQ_FAULT: {e}", err=True)
        sys.exit(EXIT_USAGE)
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
