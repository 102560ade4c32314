"""Low-level `sq` commands for inspection and scripting: hash-object,
ls-index and vt compare.
"""

from __future__ import annotations

import os
import sys

import click

from squirrel.cli import cli
from squirrel.cli.complete import FolderPath
from squirrel.cli.live import live
from squirrel.cli.output import (
    emit_json,
)
from squirrel.plumbing import ids, paths
from squirrel.plumbing.index import KIND_NAMES
from squirrel.plumbing.progress import Meter
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.vtime import VectorTime


@cli.command("hash-object")
@click.argument("files", nargs=-1, type=click.Path())
@click.option("--stdin-paths", is_flag=True, help="Read file paths from stdin, one per line.")
def hash_object_cmd(files: tuple[str, ...], stdin_paths: bool) -> None:
    """Print the blake3 object id of each FILE (one line each: ID  PATH)."""
    names = list(files)
    if stdin_paths:
        names += [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not names:
        raise click.UsageError("give FILE arguments or --stdin-paths")
    with live() as line:
        meter = Meter("hashing", line.progress, len(names), sum(_size(n) for n in names) if line.enabled else None)
        for name in names:
            before = meter.progress.bytes_done
            oid, st = ids.hash_file(name, meter.add_bytes)
            meter.file_done(st.st_size, meter.progress.bytes_done - before)
            line.pause()
            click.echo(f"{oid.hex()}  {name}" if len(names) > 1 or stdin_paths else oid.hex())


def _size(name: str) -> int:
    try:
        return os.path.getsize(name)
    except OSError:
        return 0  # hashing it says what is wrong


@cli.command("ls-index")
@click.argument("path", type=FolderPath())
@click.option("-z", "nul", is_flag=True, help="Separate records with NUL instead of newline (paths verbatim).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of records.")
def ls_index_cmd(path: str, nul: bool, as_json: bool) -> None:
    """List the index records: kind, object id, size, mtime, modification time, sync time, path.

    Text format, one record per line, tab before the path:
    KIND OID SIZE MTIME_NS M S<TAB>PATH (OID is '-' for directories).
    """
    with Replica.open(path, write=False) as rep:
        names = rep.names()
        idx = rep.index
        records = []
        out = sys.stdout.buffer
        for p, e in idx.walk(b""):
            if not p:
                continue
            s = idx.sync_time(p)
            if as_json:
                records.append(
                    {
                        **paths.json_path(p),
                        "kind": KIND_NAMES[e.kind],
                        "oid": e.oid.hex() if e.is_file else None,
                        "size": e.size,
                        "mode": e.mode,
                        "mtime_ns": e.mtime_ns,
                        "m": e.m.format(names),
                        "s": s.format(names),
                        "c": e.c.format(names),
                    }
                )
                continue
            oid = e.oid.hex() if e.is_file else "-"
            m_text, s_text = e.m.format(names) or "-", s.format(names) or "-"
            head = f"{KIND_NAMES[e.kind]} {oid} {e.size} {e.mtime_ns} {m_text} {s_text}\t"
            out.write(head.encode() + p + (b"\0" if nul else b"\n"))
        if as_json:
            emit_json(records)
        out.flush()


@cli.group("vt")
def vt_group() -> None:
    """Vector-time plumbing."""


@vt_group.command("compare")
@click.argument("a")
@click.argument("b")
def vt_compare_cmd(a: str, b: str) -> None:
    """Compare vector times A and B (`name:counter,name:counter`).

    Prints `equal`, `before` (A <= B), `after` (A >= B) or `concurrent`.
    """
    click.echo(VectorTime.parse(a).compare(VectorTime.parse(b)))
