"""The `sq` command line: parse, call one porcelain or plumbing function,
render text or JSON, and map errors to exit codes (docs/exit-codes.md).

This is the only module that prints, reads the environment or exits.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import click

from squirrel import __version__
from squirrel.errors import ContentUnavailable, SquirrelError, SyncIncomplete
from squirrel.plumbing import faults, ids, paths
from squirrel.plumbing.bundle import BundleReader
from squirrel.plumbing.carrier import Carrier, carrier_dir_from
from squirrel.plumbing.execute import ExecProgress
from squirrel.plumbing.index import KIND_NAMES
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.scan import ScanStats
from squirrel.plumbing.vtime import VectorTime
from squirrel.porcelain import apply as apply_mod
from squirrel.porcelain import conflicts as conflicts_mod
from squirrel.porcelain import init as init_mod
from squirrel.porcelain import knowledge as knowledge_mod
from squirrel.porcelain import pack as pack_mod
from squirrel.porcelain import push as push_mod
from squirrel.porcelain import reconcile as reconcile_mod
from squirrel.porcelain import reidentify as reidentify_mod
from squirrel.porcelain import resolve as resolve_mod
from squirrel.porcelain import scan as scan_mod
from squirrel.porcelain import status as status_mod
from squirrel.porcelain import sync as sync_mod
from squirrel.porcelain import verify as verify_mod

EXIT_PREDICATE_NO = 1
EXIT_USAGE = 2


# Output helpers ---------------------------------------------------------
def emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=None, sort_keys=False, ensure_ascii=False))


def summary(line: str) -> None:
    click.echo(line, err=True)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    """A one-line progress display on stderr, only when stderr is a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty() and not os.environ.get("SQ_NO_PROGRESS")
        self.start = time.monotonic()
        self.shown = False

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        sys.stderr.write("\r\x1b[K" + f"{self.label}: {text}")
        sys.stderr.flush()
        self.shown = True

    def scan(self, stats: ScanStats) -> None:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        self.line(
            f"{stats.files} files, {stats.dirs} dirs, hashed {human_bytes(stats.bytes_hashed)}"
            f" ({human_bytes(stats.bytes_hashed / elapsed)}/s)"
        )

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def parse_size(text: str) -> int:
    """`123`, `500K`, `1.5G`, `2T` (powers of 1024) -> bytes."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = 1
    for i, unit in enumerate("KMGT", start=1):
        if t.endswith(unit):
            mult = 1024**i
            t = t[:-1]
            break
    try:
        value = float(t)
    except ValueError:
        raise click.BadParameter(f"not a size: {text!r} (use bytes or a K/M/G/T suffix)") from None
    if value < 0:
        raise click.BadParameter(f"not a size: {text!r}")
    return int(value * mult)


class SizeParam(click.ParamType):  # type: ignore[type-arg]
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except click.BadParameter as e:
            self.fail(e.message, param, ctx)


def transfer_progress(label: str) -> tuple[Progress, Callable[[ExecProgress], None] | None]:
    p = Progress(label)

    def show(ep: ExecProgress) -> None:
        elapsed = max(time.monotonic() - p.start, 1e-6)
        p.line(
            f"{ep.done}/{ep.total} paths, {human_bytes(ep.bytes_written)} ({human_bytes(ep.bytes_written / elapsed)}/s)"
        )

    return p, (show if p.enabled else None)


MASS_DELETE_HELP = "Allow a scan or sync that deletes more than half of a replica's files."


def scan_progress() -> tuple[Progress, Callable[[ScanStats], None] | None]:
    p = Progress("scanning")
    return p, (p.scan if p.enabled else None)


def pathlist(items: list[bytes]) -> list[dict[str, str]]:
    return [paths.json_path(p) for p in items]


def report_skipped(stats: ScanStats) -> None:
    for path, why in stats.skipped:
        summary(f"skipped {paths.display(path)}: {why}")


# The group ----------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sq")
def cli() -> None:
    """Data Squirrel: keep offline drives in sync, carrying only the changes.

    A replica is a directory tree (usually a drive) with a .squirrel/ folder
    at its root. Run `sq COMMAND --help` for each command. Exit codes: 0 done,
    1 a predicate said no, 2 usage error, 3 and up a specific error
    (docs/exit-codes.md).
    """


# Porcelain ---------------------------------------------------------------
@cli.command("init")
@click.argument("path", type=click.Path(file_okay=True, dir_okay=True))
@click.option("--name", help="A short name for this replica (default: the directory name).")
@click.option(
    "--join", "join", metavar="SOURCE", help="Join the vault of the replica at SOURCE instead of starting a new vault."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def init_cmd(path: str, name: str | None, join: str | None, as_json: bool) -> None:
    """Make PATH a replica and index the files already there.

    Without --join, PATH starts a new vault. With --join SOURCE, PATH becomes
    a new replica of SOURCE's vault; files it already holds are reconciled by
    content on the first sync (identical content is never a conflict).
    """
    prog, cb = scan_progress()
    rep = init_mod.init(path, name=name, join=join, progress=cb)
    prog.done()
    report_skipped(rep.scan.stats)
    ident = rep.identity
    if as_json:
        emit_json(
            {
                "vault": ident.vault,
                "replica": ident.replica,
                "name": ident.name,
                "files": rep.scan.stats.files,
                "dirs": rep.scan.stats.dirs,
            }
        )
    how = f"joined vault {ident.vault}" if join else f"new vault {ident.vault}"
    summary(
        f"initialized replica {ident.name} ({ident.replica}) in {os.path.abspath(path)}:"
        f" {how}, {rep.scan.stats.files} files indexed"
    )


@cli.command("scan")
@click.option("--allow-mass-delete", is_flag=True, help=MASS_DELETE_HELP)
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print what was recorded as JSON on stdout.")
def scan_cmd(allow_mass_delete: bool, path: str, as_json: bool) -> None:
    """Record local changes in PATH (new, modified, deleted, moved files) as new versions.

    Only files whose size or mtime differ from the index are read again; a
    file touched without a content change is not a new version.
    """
    prog, cb = scan_progress()
    rep = scan_mod.scan(path, progress=cb, allow_mass_delete=allow_mass_delete)
    prog.done()
    report_skipped(rep.stats)
    if as_json:
        emit_json(
            {
                "added": pathlist(rep.added),
                "modified": pathlist(rep.modified),
                "deleted": pathlist(rep.deleted),
                "moved": [{**paths.json_path(a, "from"), **paths.json_path(b, "to")} for a, b in rep.moved],
                "files": rep.stats.files,
                "hashed": rep.stats.files_hashed,
                "skipped": [{**paths.json_path(p), "reason": why} for p, why in rep.stats.skipped],
            }
        )
    else:
        for p in rep.added:
            click.echo(f"added     {paths.display(p)}")
        for p in rep.modified:
            click.echo(f"modified  {paths.display(p)}")
        for p in rep.deleted:
            click.echo(f"deleted   {paths.display(p)}")
        for a, b in rep.moved:
            click.echo(f"moved     {paths.display(a)} -> {paths.display(b)}")
    summary(
        f"scanned {rep.stats.files} files: {len(rep.added)} added, {len(rep.modified)} modified,"
        f" {len(rep.deleted)} deleted, {len(rep.moved)} moved"
    )


@cli.command("status")
@click.argument("path", type=click.Path())
@click.option("--exit-code", "exit_code", is_flag=True, help="Exit 1 when changes or conflicts are pending.")
@click.option("--json", "as_json", is_flag=True, help="Print pending changes and conflicts as JSON on stdout.")
def status_cmd(path: str, exit_code: bool, as_json: bool) -> None:
    """Show what changed on disk since the last scan, and the open conflicts.

    Nothing is recorded: run `sq scan` to record the changes.
    """
    prog, cb = scan_progress()
    rep = status_mod.status(path, progress=cb)
    prog.done()
    moved_from = {a for a, _ in rep.moved}
    moved_to = {b: a for a, b in rep.moved}
    if as_json:
        items = []
        for ch in rep.pending:
            item: dict[str, Any] = {**paths.json_path(ch.path), "change": ch.kind}
            if ch.path in moved_to:
                item["change"] = "moved"
                item.update(paths.json_path(moved_to[ch.path], "from"))
            elif ch.path in moved_from:
                continue
            kind_entry = ch.new or ch.old
            item["kind"] = "dir" if kind_entry is not None and kind_entry.is_dir else "file"
            items.append(item)
        emit_json({"changes": items, "conflicts": rep.conflicts})
    else:
        for ch in rep.pending:
            if ch.path in moved_from:
                continue
            if ch.path in moved_to:
                click.echo(f"moved     {paths.display(moved_to[ch.path])} -> {paths.display(ch.path)}")
            else:
                click.echo(f"{ch.kind:<9} {paths.display(ch.path)}")
        for c in rep.conflicts:
            click.echo(f"conflict  {c['path']} ({c['kind']}; copy: {c.get('copy') or '-'})")
    report_skipped(rep.stats)
    pending = len(rep.pending) - len(rep.moved)  # a move is one change, not a deletion and an addition
    summary(f"{pending} pending changes, {len(rep.conflicts)} open conflicts")
    if exit_code and rep.dirty:
        sys.exit(EXIT_PREDICATE_NO)


def render_sync(rep: push_mod.SyncReport, as_json: bool, what: str) -> None:
    if as_json:
        emit_json(rep.to_json())
    else:
        for c in rep.conflicts:
            copy = f", copy {c['copy']}" if c.get("copy") else ""
            where = f" on {c['replica']}" if c.get("replica") else ""
            click.echo(f"conflict  {c['path']} ({c['kind']}{where}): kept {c['kept']}{copy}")
        for p, why in rep.failed:
            click.echo(f"failed    {paths.display(p)}: {why}")
    if rep.deferred or rep.incomplete:
        n = len(rep.deferred) + len(rep.incomplete)
        summary(f"{n} paths left for a later sync (their content was not carried this time)")
    summary(
        f"{what}: {rep.created} created, {rep.updated} updated, {rep.deleted} deleted, {rep.skipped} skipped,"
        f" {len(rep.conflicts)} conflicts (both versions kept), {len(rep.failed)} failed"
        + (" (dry run: nothing written)" if rep.dry_run else "")
    )
    if rep.failed:
        raise SyncIncomplete(f"{len(rep.failed)} paths could not be synced (see above); run the command again")


@cli.command("push")
@click.option("--allow-mass-delete", is_flag=True, help=MASS_DELETE_HELP)
@click.argument("src", type=click.Path())
@click.argument("dst", type=click.Path())
@click.argument("subpaths", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Plan and report, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def push_cmd(
    allow_mass_delete: bool, src: str, dst: str, subpaths: tuple[str, ...], dry_run: bool, as_json: bool
) -> None:
    """One-way sync from replica SRC into replica DST (both mounted).

    Both are scanned first. DST receives every version it does not know yet;
    concurrent changes are kept as two files (a conflict copy). With SUBPATHs
    (relative to SRC), only those subtrees are synced.
    """
    prog, cb = scan_progress()
    rep = push_mod.push(
        src, dst, list(subpaths), dry_run=dry_run, scan_progress=cb, allow_mass_delete=allow_mass_delete
    )
    prog.done()
    render_sync(rep, as_json, "push")


@cli.command("reconcile")
@click.option("--allow-mass-delete", is_flag=True, help=MASS_DELETE_HELP)
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("--dry-run", is_flag=True, help="Plan and report, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def reconcile_cmd(allow_mass_delete: bool, a: str, b: str, dry_run: bool, as_json: bool) -> None:
    """Two-way sync between mounted replicas A and B: afterwards both hold the same files."""
    prog, cb = scan_progress()
    rep = reconcile_mod.reconcile(a, b, dry_run=dry_run, scan_progress=cb, allow_mass_delete=allow_mass_delete)
    prog.done()
    render_sync(rep, as_json, "reconcile")


@cli.command("conflicts")
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of conflicts.")
def conflicts_cmd(path: str, as_json: bool) -> None:
    """List the open conflicts of replica PATH (path, kind, conflict copy, both versions)."""
    items = conflicts_mod.conflicts(path)
    if as_json:
        emit_json(items)
        return
    for c in items:
        copy = c.get("copy") or "-"
        click.echo(f"{c['kind']:<14} {c['path']}  copy: {copy}")
    summary(f"{len(items)} open conflicts")


@cli.command("resolve")
@click.argument("path", type=click.Path())
@click.argument("file")
@click.option("--keep", type=click.Choice(["path", "copy"]), required=True, help="Which version stays at the path.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def resolve_cmd(path: str, file: str, keep: str, as_json: bool) -> None:
    """Settle the conflict at FILE in replica PATH.

    --keep path keeps the version at the path and moves the copy to the trash;
    --keep copy moves the copy over the path (the old version goes to the
    trash). FILE may name the path or its conflict copy.
    """
    rep = resolve_mod.resolve(path, file, keep)
    if as_json:
        emit_json(
            {**paths.json_path(rep.path), "kept": keep, "trashed": paths.display(rep.trashed) if rep.trashed else None}
        )
    summary(
        f"resolved {paths.display(rep.path)}: kept the {keep} version"
        + (f", {paths.display(rep.trashed)} moved to the trash" if rep.trashed else "")
    )


@cli.command("pack")
@click.option("--allow-mass-delete", is_flag=True, help=MASS_DELETE_HELP)
@click.argument("path", type=click.Path())
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="The bundle file to write (*.sqb).")
@click.option("--for", "for_replica", metavar="REPLICA", help="Pack what the mounted replica REPLICA does not know.")
@click.option("--base", metavar="KNOWLEDGE", help="Pack what the replica described by KNOWLEDGE does not know.")
@click.option("--max-size", type=SizeParam(), help="Carry at most SIZE bytes of content (K/M/G/T); the rest waits.")
@click.argument("subpaths", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def pack_cmd(
    allow_mass_delete: bool,
    path: str,
    out: str,
    for_replica: str | None,
    base: str | None,
    max_size: int | None,
    subpaths: tuple[str, ...],
    as_json: bool,
) -> None:
    """Write a bundle of PATH's versions that the receiver does not know yet.

    Name the receiver with --for (mounted) or --base (a file from
    `sq knowledge`); with neither, everything is packed. Content the receiver
    already holds (moves, duplicates) is left out. With SUBPATHs only those
    subtrees are packed. The file appears under its name only when complete.
    """
    prog, cb = scan_progress()
    tp = Progress("packing")

    def show(pp: pack_mod.PackProgress) -> None:
        elapsed = max(time.monotonic() - tp.start, 1e-6)
        rate = pp.bytes_done / elapsed
        left = (pp.bytes_total - pp.bytes_done) / rate if rate > 0 else 0
        tp.line(
            f"{human_bytes(pp.bytes_done)} of {human_bytes(pp.bytes_total)} ({human_bytes(rate)}/s, {left:.0f} s left)"
        )

    rep = pack_mod.pack(
        path,
        out,
        for_replica,
        base,
        max_size,
        list(subpaths),
        scan_progress=cb,
        progress=show if tp.enabled else None,
        allow_mass_delete=allow_mass_delete,
    )
    prog.done()
    tp.done()
    left_bytes = sum(n for _, n in rep.left_behind)
    if as_json:
        emit_json(
            {
                "bundle": rep.path,
                "size": rep.size,
                "entries": rep.entries,
                "objects": rep.objects,
                "content_bytes": rep.content_bytes,
                "known_to_receiver": rep.known_elsewhere,
                "left_behind": [{**paths.json_path(p), "size": n} for p, n in rep.left_behind],
            }
        )
    extra = (
        f"; {len(rep.left_behind)} files ({human_bytes(left_bytes)}) left for a later bundle" if rep.left_behind else ""
    )
    summary(
        f"packed {rep.entries} entries and {rep.objects} objects ({human_bytes(rep.content_bytes)})"
        f" into {rep.path}: {human_bytes(rep.size)}{extra}"
    )


@cli.command("apply")
@click.option("--allow-mass-delete", is_flag=True, help=MASS_DELETE_HELP)
@click.argument("bundle", type=click.Path())
@click.argument("path", type=click.Path())
@click.option("--dry-run", is_flag=True, help="Check the bundle and report what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def apply_cmd(allow_mass_delete: bool, bundle: str, path: str, dry_run: bool, as_json: bool) -> None:
    """Apply BUNDLE to the replica at PATH.

    The whole bundle is checked (signature, version, vault, size, manifest)
    before anything is written, and every object is verified against its id.
    Applying a bundle twice, or an older one after a newer one, changes nothing.
    """
    prog, cb = scan_progress()
    tp, tcb = transfer_progress("applying")
    rep = apply_mod.apply(
        bundle, path, dry_run=dry_run, scan_progress=cb, progress=tcb, allow_mass_delete=allow_mass_delete
    )
    prog.done()
    tp.done()
    render_sync(rep, as_json, "apply")


@cli.command("knowledge")
@click.argument("path", type=click.Path())
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="The knowledge file to write.")
def knowledge_cmd(path: str, out: str) -> None:
    """Write what replica PATH knows (its sync times and the content it holds),
    for `sq pack --base FILE`. The replica is scanned first."""
    prog, cb = scan_progress()
    ident = knowledge_mod.write_knowledge(path, out, cb)
    prog.done()
    summary(f"wrote the knowledge of {ident.name} to {out}")


@cli.group("bundle")
def bundle_group() -> None:
    """Inspect bundle files without applying them."""


@bundle_group.command("list")
@click.argument("file", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print header and entries as JSON.")
def bundle_list_cmd(file: str, as_json: bool) -> None:
    """Show a bundle's header and entries (KIND OID SIZE CONTENT<TAB>PATH).

    CONTENT is `yes` when the bundle carries the object, `no` otherwise.
    """
    with BundleReader(file) as r:
        names = r.names
        rows = []
        for p in sorted(r.entries):
            e = r.entries[p]
            rows.append(
                {
                    **paths.json_path(p),
                    "kind": KIND_NAMES[e.kind],
                    "oid": e.oid.hex() if e.is_file else None,
                    "size": e.size,
                    "m": e.m.format(names),
                    "partial": bool(e.flags & 2),
                    "content": e.is_file and e.oid in r.objects,
                }
            )
        if as_json:
            emit_json({"header": r.header, "entries": rows})
            return
        click.echo(f"vault {r.vault}  from {r.source_name}  objects {len(r.objects)}  entries {len(r.entries)}")
        for row in rows:
            oid = row["oid"] or "-"
            content = "yes" if row["content"] else ("partial" if row["partial"] else "no")
            click.echo(f"{row['kind']} {oid} {row['size']} {content}\t{row['path'] or '.'}")


@bundle_group.command("verify")
@click.argument("file", type=click.Path())
def bundle_verify_cmd(file: str) -> None:
    """Fully check a bundle: structure, every object against its id, and the
    whole-file checksum. Exits 1 if anything is wrong."""
    with BundleReader(file) as r:
        problems = r.verify()
    for p in problems:
        click.echo(p)
    if problems:
        summary(f"{file}: {len(problems)} problems")
        sys.exit(EXIT_PREDICATE_NO)
    summary(f"{file}: ok ({len(r.entries)} entries, {len(r.objects)} objects)")


@cli.command("cat-object")
@click.argument("oid")
@click.option("--bundle", "bundle", type=click.Path(), help="Read the object from this bundle.")
def cat_object_cmd(oid: str, bundle: str | None) -> None:
    """Write the content of object OID to stdout, verified against its id."""
    if not bundle:
        raise click.UsageError("give --bundle FILE")
    raw = ids.parse_oid(oid)
    import blake3

    with BundleReader(bundle) as r:
        if raw not in r.objects:
            raise ContentUnavailable(f"object {oid} is not in {bundle}")
        h = blake3.blake3()
        out = sys.stdout.buffer
        for chunk in r.object_chunks(raw):
            h.update(chunk)
            out.write(chunk)
        out.flush()
        if h.digest() != raw:
            from squirrel.errors import BadBundle

            raise BadBundle(f"object {oid} in {bundle} does not match its id")


CARRIER_HELP = "The carrier folder (default: $SQ_CARRIER, else $XDG_DATA_HOME/squirrel/carrier)."


@cli.command("sync")
@click.option("--allow-mass-delete", is_flag=True, help=MASS_DELETE_HELP)
@click.argument("drive", type=click.Path())
@click.option("--carrier", "carrier_dir", type=click.Path(), help=CARRIER_HELP)
@click.option("--max-size", type=SizeParam(), help="The carrier's size budget (K/M/G/T); stored for later visits.")
@click.option("--dry-run", is_flag=True, help="Report what the visit would deliver and take; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def sync_cmd(
    allow_mass_delete: bool, drive: str, carrier_dir: str | None, max_size: int | None, dry_run: bool, as_json: bool
) -> None:
    """Visit DRIVE with the laptop's carrier: the two-way sync of a visit.

    Scans the drive, delivers every version the carrier holds that the drive
    lacks, takes on the drive's new versions for the other drives (content
    only where another known drive lacks it, within the budget), and drops
    what every known drive has. Whatever did not fit comes on a later visit.
    """
    where = carrier_dir_from(carrier_dir, dict(os.environ))
    prog, cb = scan_progress()
    tp, tcb = transfer_progress("delivering")
    rep = sync_mod.visit(
        drive,
        where,
        max_size=max_size,
        dry_run=dry_run,
        scan_progress=cb,
        progress=tcb,
        allow_mass_delete=allow_mass_delete,
    )
    prog.done()
    tp.done()
    d = rep.delivered
    left_bytes = sum(n for _, n in rep.left_behind)
    if as_json:
        emit_json(
            {
                **d.to_json(),
                "drive": rep.drive,
                "taken": rep.taken,
                "carried_in": rep.stored + rep.filled,
                "carried_in_bytes": rep.stored_bytes + rep.filled_bytes,
                "left_behind": [{**paths.json_path(p), "size": n} for p, n in rep.left_behind],
                "left_behind_bytes": left_bytes,
                "dropped": rep.dropped,
                "dropped_bytes": rep.dropped_bytes,
                "carrier_bytes": rep.carrier_bytes,
                "budget": rep.budget,
                "known_drives": rep.known_drives,
            }
        )
    else:
        for c in d.conflicts:
            copy = f", copy {c['copy']}" if c.get("copy") else ""
            click.echo(f"conflict  {c['path']} ({c['kind']}): kept {c['kept']}{copy}")
        for p, why in d.failed:
            click.echo(f"failed    {paths.display(p)}: {why}")
    waiting = len(d.deferred) + len(d.incomplete)
    summary(
        f"sync {rep.drive}: delivered {d.created} created, {d.updated} updated, {d.deleted} deleted,"
        f" {len(d.conflicts)} conflicts (both versions kept); took {rep.taken} changes,"
        f" carried in {human_bytes(rep.stored_bytes + rep.filled_bytes)};"
        f" carrier holds {human_bytes(rep.carrier_bytes)} of {human_bytes(rep.budget)}"
        + (" (dry run: nothing written)" if rep.dry_run else "")
    )
    if waiting:
        summary(f"{waiting} versions for this drive wait for a later visit (the carrier does not hold them yet)")
    if rep.left_behind:
        summary(f"left behind: {len(rep.left_behind)} files ({human_bytes(left_bytes)}) did not fit in the carrier")
    if d.failed:
        raise SyncIncomplete(f"{len(d.failed)} paths could not be synced (see above); visit again")


@cli.group("carrier")
def carrier_group() -> None:
    """The laptop's carrier: status and settings."""


@carrier_group.command("status")
@click.option("--carrier", "carrier_dir", type=click.Path(), help=CARRIER_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON on stdout.")
def carrier_status_cmd(carrier_dir: str | None, as_json: bool) -> None:
    """Which drives the carrier knows, when each was last visited, what it
    carries for whom, and the bytes used of its budget."""
    st = sync_mod.carrier_status(carrier_dir_from(carrier_dir, dict(os.environ)))
    if as_json:
        emit_json(st)
        return
    click.echo(f"carrier {st['path']}: {human_bytes(st['bytes'])} of {human_bytes(st['budget'])} used")
    for v in st["vaults"]:
        click.echo(f"vault {v['vault']}: {v['objects']} objects, {human_bytes(v['bytes'])}")
        for d in v["drives"]:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(d["last_visit"])) if d["last_visit"] else "never"
            click.echo(
                f"  {d['name']:<16} last visit {when}; carrying {d['waiting']} versions"
                f" ({human_bytes(d['waiting_bytes'])}) for it, {d['missing']} more not yet in the carrier"
            )


@carrier_group.command("config")
@click.option("--carrier", "carrier_dir", type=click.Path(), help=CARRIER_HELP)
@click.option("--max-size", type=SizeParam(), help="Set the size budget (bytes or K/M/G/T).")
def carrier_config_cmd(carrier_dir: str | None, max_size: int | None) -> None:
    """Show or set the carrier's settings (its size budget)."""
    c = Carrier(carrier_dir_from(carrier_dir, dict(os.environ)), create=max_size is not None)
    if max_size is not None:
        c.set_max_size(max_size)
    click.echo(f"max-size {c.max_size} ({human_bytes(c.max_size)})")


@cli.command("verify")
@click.argument("path", type=click.Path())
@click.option("--quick", is_flag=True, help="Check sizes and mtimes only; do not re-read content.")
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON on stdout.")
def verify_cmd(path: str, quick: bool, as_json: bool) -> None:
    """Check replica (or carrier) PATH: re-hash every file against the index,
    check the index's own structure and the trash (the carrier's objects).

    Exits 0 when everything is right, 1 when anything is wrong (each listed).
    """
    p = Progress("verifying")

    def show(r: verify_mod.VerifyReport) -> None:
        p.line(f"{r.checked_files} files, {human_bytes(r.checked_bytes)}")

    rep = verify_mod.verify(path, quick=quick, progress=show if p.enabled else None)
    p.done()
    if as_json:
        emit_json({"ok": rep.ok, "files": rep.checked_files, "bytes": rep.checked_bytes, "problems": rep.problems})
    else:
        for line in rep.problems:
            click.echo(line)
    summary(
        f"verified {rep.checked_files} files ({human_bytes(rep.checked_bytes)} re-read):"
        f" {'ok' if rep.ok else f'{len(rep.problems)} problems'}"
    )
    if not rep.ok:
        sys.exit(EXIT_PREDICATE_NO)


@cli.command("reidentify")
@click.argument("path", type=click.Path())
@click.option("--name", help="A new name for the replica (default: keep its name).")
def reidentify_cmd(path: str, name: str | None) -> None:
    """Give replica PATH a new identity (a drive restored from an old backup,
    or a cloned drive), so that none of its new events reuses a counter other
    replicas already know. Its files and history are kept."""
    old, new = reidentify_mod.reidentify(path, name)
    summary(f"{path}: replica {old.name} ({old.replica}) is now {new.name} ({new.replica})")


# Plumbing --------------------------------------------------------------
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
    for name in names:
        oid, _ = ids.hash_file(name)
        click.echo(f"{oid.hex()}  {name}" if len(names) > 1 or stdin_paths else oid.hex())


@cli.command("ls-index")
@click.argument("path", type=click.Path())
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


# Entry point -------------------------------------------------------------
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


if __name__ == "__main__":
    main()
