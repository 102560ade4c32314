"""`sq` commands for offline transfer by bundle file: pack, apply,
knowledge, bundle list/verify and cat-object.

The commands that scan a replica first start the workers that will sweep
a large one's tree (`workers.started_early`), then import their porcelain
module: the workers start while the command loads its code.
"""

from __future__ import annotations

import os
import sys

import click

from squirrel.cli import EXIT_PREDICATE_NO, cli
from squirrel.cli.complete import FolderPath
from squirrel.cli.live import live
from squirrel.cli.output import (
    MASS_DELETE_HELP,
    SizeParam,
    emit_json,
    human_bytes,
    render_sync,
    report_skipped,
    report_unknown_subpaths,
    summary,
)
from squirrel.plumbing import ids, paths, workers
from squirrel.plumbing.bundle import BundleReader
from squirrel.plumbing.index import FLAG_PARTIAL, KIND_NAMES
from squirrel.plumbing.progress import Meter
from squirrel.porcelain import cat_object as cat_mod
from squirrel.text import counted


@cli.command("pack")
@click.option("--allow-mass-delete", is_flag=True, help=MASS_DELETE_HELP)
@click.argument("path", type=FolderPath())
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="The bundle file to write (*.sqb).")
@click.option(
    "--for",
    "for_replica",
    metavar="REPLICA",
    type=FolderPath(),
    help="Pack what the mounted replica REPLICA does not know.",
)
@click.option(
    "--base", metavar="KNOWLEDGE", type=click.Path(), help="Pack what the replica described by KNOWLEDGE does not know."
)
@click.option("--max-size", type=SizeParam(), help="Carry at most SIZE bytes of content (K/M/G/T); the rest waits.")
@click.argument("subpaths", nargs=-1)
@click.option(
    "--dry-run", is_flag=True, help="Report what the bundle would hold and its size; write nothing (not even the scan)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def pack_cmd(
    allow_mass_delete: bool,
    path: str,
    out: str,
    for_replica: str | None,
    base: str | None,
    max_size: int | None,
    subpaths: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
) -> None:
    """Write a bundle of PATH's versions that the receiver does not know yet.

    Name the receiver with --for (mounted) or --base (a file from
    `sq knowledge`); with neither, everything is packed. Content the receiver
    already holds (moves, duplicates) is left out. With SUBPATHs only those
    subtrees are packed. The file appears under its name only when complete.
    """
    with workers.started_early(path, *([for_replica] if for_replica else [])), live(as_json) as line:
        from squirrel.porcelain import pack as pack_mod

        rep = pack_mod.pack(
            path,
            out,
            for_replica,
            base,
            max_size,
            list(subpaths),
            scan_progress=line.scan,
            progress=line.progress,
            allow_mass_delete=allow_mass_delete,
            dry_run=dry_run,
        )
    left_bytes = sum(n for _, n in rep.left_behind)
    for stats in rep.scans:
        report_skipped(stats, len(rep.scans) > 1)
    report_unknown_subpaths(rep.unknown_subpaths)
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
                "scan_skipped": [s for stats in rep.scans for s in stats.skipped_json(with_replica=True)],
                "dry_run": rep.dry_run,
            }
        )
    extra = (
        f"; {counted(len(rep.left_behind), 'file')} ({human_bytes(left_bytes)}) left for a later bundle"
        if rep.left_behind
        else ""
    )
    summary(
        f"packed {counted(rep.entries, 'entry')} and {counted(rep.objects, 'object')}"
        f" ({human_bytes(rep.content_bytes)})"
        f" into {rep.path}: {human_bytes(rep.size)}{extra}" + (" (dry run: nothing written)" if rep.dry_run else "")
    )


@cli.command("apply")
@click.option("--allow-mass-delete", is_flag=True, help=MASS_DELETE_HELP)
@click.argument("bundle", type=click.Path())
@click.argument("path", type=FolderPath())
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the bundle and report what would change; change no file (the scan is still recorded).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def apply_cmd(allow_mass_delete: bool, bundle: str, path: str, dry_run: bool, as_json: bool) -> None:
    """Apply BUNDLE to the replica at PATH.

    The bundle's structure is checked (signature, version, vault, size,
    manifest, paths) before anything is written; every object is verified
    against its id as it is copied, and a damaged one ends the apply.
    Applying a bundle twice, or an older one after a newer one, changes nothing.
    """
    with workers.started_early(path), live(as_json) as line:
        from squirrel.porcelain import apply as apply_mod

        rep = apply_mod.apply(
            bundle,
            path,
            dry_run=dry_run,
            scan_progress=line.scan,
            progress=line.progress,
            allow_mass_delete=allow_mass_delete,
        )
    render_sync(rep, as_json, "apply")


@cli.command("knowledge")
@click.argument("path", type=FolderPath())
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="The knowledge file to write.")
def knowledge_cmd(path: str, out: str) -> None:
    """Write what replica PATH knows (its sync times and the content it holds),
    for `sq pack --base FILE`. The replica is scanned first."""
    with workers.started_early(path), live() as line:
        from squirrel.porcelain import knowledge as knowledge_mod

        ident = knowledge_mod.write_knowledge(path, out, line.scan)
    summary(f"wrote the knowledge of {ident.name} to {out}")


@cli.group("bundle")
def bundle_group() -> None:
    """Inspect bundle files without applying them."""


@bundle_group.command("list")
@click.argument("file", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print header and entries as JSON.")
def bundle_list_cmd(file: str, as_json: bool) -> None:
    """Show a bundle's header and entries (KIND OID SIZE CONTENT<TAB>PATH).

    CONTENT is `yes` when the bundle carries the object, `partial` for a
    directory whose contents the bundle leaves out (the receiver knows them),
    `no` otherwise. Paths the sender deleted follow as `deleted TIME<TAB>PATH`.
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
                    "partial": bool(e.flags & FLAG_PARTIAL),
                    "content": e.is_file and e.oid in r.objects,
                }
            )
        deleted = [{**paths.json_path(p), "m": n.format(names)} for p, n in sorted(r.notices.items())]
        if as_json:
            emit_json({"header": r.header, "entries": rows, "deleted": deleted})
            return
        click.echo(f"vault {r.vault}  from {r.source_name}  objects {len(r.objects)}  entries {len(r.entries)}")
        for row in rows:
            oid = row["oid"] or "-"
            content = "yes" if row["content"] else ("partial" if row["partial"] else "no")
            click.echo(f"{row['kind']} {oid} {row['size']} {content}\t{row['path'] or '.'}")
        for d in deleted:
            click.echo(f"deleted {d['m']}\t{d['path']}")


@bundle_group.command("verify")
@click.argument("file", type=click.Path())
def bundle_verify_cmd(file: str) -> None:
    """Fully check a bundle: structure, every object against its id, and the
    whole-file checksum. Exits 1 if anything is wrong."""
    with BundleReader(file) as r, live() as line:
        problems = r.verify(Meter(f"verifying {os.path.basename(file)}", line.progress))
    for p in problems:
        click.echo(p)
    if problems:
        summary(f"{file}: {counted(len(problems), 'problem')}")
        sys.exit(EXIT_PREDICATE_NO)
    summary(f"{file}: ok ({counted(len(r.entries), 'entry')}, {counted(len(r.objects), 'object')})")


@cli.command("cat-object")
@click.argument("oid")
@click.option("--bundle", "bundle", type=click.Path(), help="Read the object from this bundle.")
@click.option("--carrier", "carrier_dir", type=FolderPath(), help="Read the object from this carrier.")
def cat_object_cmd(oid: str, bundle: str | None, carrier_dir: str | None) -> None:
    """Write the content of object OID (64 hex digits) from a bundle or a
    carrier to stdout. It is read and checked against its id first: nothing
    is written unless all of it is right."""
    if (bundle is None) == (carrier_dir is None):
        raise click.UsageError("give --bundle FILE or --carrier DIR")
    with live() as line:
        chunks = cat_mod.cat_object(ids.parse_oid(oid), bundle=bundle, carrier=carrier_dir, progress=line.progress)
        first = next(chunks, b"")  # the whole object is checked before its first block comes
    out = sys.stdout.buffer
    out.write(first)
    for chunk in chunks:
        out.write(chunk)
    out.flush()
