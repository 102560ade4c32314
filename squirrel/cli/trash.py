"""`sq trash`: list, restore and purge the versions a replica moved aside,
and its retention policy."""

from __future__ import annotations

import time
from typing import Any

import click

from squirrel.cli import cli
from squirrel.cli.complete import FolderPath
from squirrel.cli.live import live
from squirrel.cli.output import DurationParam, SizeParam, emit_json, human_bytes, summary
from squirrel.plumbing import paths
from squirrel.plumbing.retention import Policy
from squirrel.plumbing.trash import TrashItem
from squirrel.plumbing.trashcan import PurgeReport, Usage
from squirrel.porcelain import restore as restore_mod
from squirrel.porcelain import trash as trash_mod
from squirrel.text import counted

DRY_RUN_HELP = "Report what would happen; change nothing."


@cli.group("trash")
def trash_group() -> None:
    """The versions a replica moved aside: list, restore, purge, and a
    retention policy.

    A sync that replaces or deletes a file, and `sq resolve`, move the old
    version to the replica's .squirrel/trash/; nothing is lost until it is
    purged.
    """


def when(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def item_line(it: TrashItem) -> str:
    where = paths.display(it.path) if it.path else "(path unknown)"
    return f"{it.id:>6}  {when(it.time)}  {human_bytes(it.size):>10}  {where}  ({it.reason.text})"


def usage_json(u: Usage) -> dict[str, int]:
    return {"count": u.count, "bytes": u.bytes}


@trash_group.command("list")
@click.argument("path", type=FolderPath())
@click.argument("pattern", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the items as JSON on stdout.")
def list_cmd(path: str, pattern: str | None, as_json: bool) -> None:
    """List the versions in the trash of replica PATH, newest first: item
    number, when it went there, size, the path it had, and why.

    PATTERN keeps the items whose path matches it: a glob (`*` also matches
    `/`) against the whole path or a folder above it, or, without `/`,
    against the file's name (`'*.mov'`, `photos/2024`).
    """
    listing = trash_mod.list_trash(path, pattern)
    if as_json:
        emit_json(
            {"items": [it.to_json() for it in listing.items], "count": len(listing.items), "bytes": listing.bytes}
        )
    else:
        for it in listing.items:
            click.echo(item_line(it))
    what = "" if pattern is None else f" matching {pattern}"
    summary(f"{counted(len(listing.items), 'version')} in the trash{what} ({human_bytes(listing.bytes)})")


@trash_group.command("restore")
@click.argument("path", type=FolderPath())
@click.argument("item")
@click.option("--to", "dest", metavar="DEST", help="Restore here instead (relative to PATH; into it if a folder).")
@click.option("--dry-run", is_flag=True, help=DRY_RUN_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print what was restored as JSON on stdout.")
def restore_cmd(path: str, item: str, dest: str | None, dry_run: bool, as_json: bool) -> None:
    """Put a version from the trash of replica PATH back, byte-exact.

    ITEM is an item number from `sq trash list`, a path (its newest version
    in the trash) or a folder (the newest version of everything that was
    below it). It comes back at its old path, or at DEST; it never
    overwrites anything. The next scan records it as a local edit, which
    then reaches the other replicas like any other.
    """
    with live(as_json) as line:
        rep = restore_mod.restore(path, item, dest, dry_run, line.progress)
    if as_json:
        emit_json(
            {
                "restored": [
                    {
                        "id": r.item.id,
                        **paths.json_path(r.item.path),
                        **paths.json_path(r.to, "to"),
                        "size": r.item.size,
                        "oid": r.item.oid.hex() if r.item.oid is not None else None,
                    }
                    for r in rep.restored
                ],
                "count": len(rep.restored),
                "bytes": rep.bytes,
                "dry_run": rep.dry_run,
            }
        )
    else:
        verb = "would restore" if rep.dry_run else "restored"
        for r in rep.restored:
            where = "" if r.to == r.item.path else f" -> {paths.display(r.to)}"
            click.echo(f"{verb}  {paths.display(r.item.path)}{where}  (item {r.item.id})")
    if rep.dry_run:
        summary(
            f"would restore {counted(len(rep.restored), 'version')} ({human_bytes(rep.bytes)})"
            " (dry run: nothing written)"
        )
    else:
        edits = "it as a local edit" if len(rep.restored) == 1 else "them as local edits"
        summary(
            f"restored {counted(len(rep.restored), 'version')} ({human_bytes(rep.bytes)});"
            f" the next scan or sync records {edits}"
        )


def purge_json(rep: PurgeReport, dry_run: bool) -> dict[str, Any]:
    return {
        "removed": [it.to_json() for it in rep.removed],
        "count": len(rep.removed),
        "freed": rep.freed,
        "trash": usage_json(rep.kept),
        "adopted": [it.to_json() for it in rep.adopted],
        "missing": [it.to_json() for it in rep.missing],
        "dry_run": dry_run,
    }


@trash_group.command("purge")
@click.argument("path", type=FolderPath())
@click.option("--older-than", type=DurationParam(), help="Remove the versions trashed longer ago (30d, 12w, 1y).")
@click.option("--keep-size", type=SizeParam(), help="Remove the oldest versions until the trash holds at most SIZE.")
@click.option("--all", "everything", is_flag=True, help="Remove every version in the trash.")
@click.option("--dry-run", is_flag=True, help=DRY_RUN_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON on stdout.")
def purge_cmd(
    path: str, older_than: int | None, keep_size: int | None, everything: bool, dry_run: bool, as_json: bool
) -> None:
    """Remove versions from the trash of replica PATH for good, oldest first.

    A file in .squirrel/trash/ that has no record gets one first (and a
    record whose file was removed by hand is dropped), so that the trash's
    records and files agree again.
    """
    rep = trash_mod.purge(path, older_than, keep_size, everything, dry_run)
    if as_json:
        emit_json(purge_json(rep, dry_run))
    else:
        verb = "would remove" if dry_run else "removed"
        for it in rep.removed:
            click.echo(f"{verb}  {item_line(it).lstrip()}")
    if rep.adopted:
        one = len(rep.adopted) == 1
        summary(
            f"{counted(len(rep.adopted), 'file')} in the trash had no record;"
            f" {'it has' if one else 'they have'} one now"
        )
    if rep.missing:
        one = len(rep.missing) == 1
        summary(
            f"{counted(len(rep.missing), 'record')} named {'a file' if one else 'files'} no longer in the trash;"
            f" {'it was' if one else 'they were'} dropped"
        )
    summary(
        f"{'would purge' if dry_run else 'purged'} {counted(len(rep.removed), 'version')},"
        f" freeing {human_bytes(rep.freed)}; the trash {'would hold' if dry_run else 'holds'}"
        f" {counted(rep.kept.count, 'version')} ({human_bytes(rep.kept.bytes)})"
    )


def policy_text(p: Policy) -> str:
    if p.keeps_everything:
        return "keep everything (no limit)"
    parts = []
    if p.keep_days is not None:
        parts.append(f"keep-days {p.keep_days}")
    if p.max_size is not None:
        parts.append(f"max-size {p.max_size} ({human_bytes(p.max_size)})")
    return ", ".join(parts)


@trash_group.command("policy")
@click.argument("path", type=FolderPath())
@click.option(
    "--keep-days", type=click.IntRange(min=1), metavar="N", help="Remove versions trashed more than N days ago."
)
@click.option("--max-size", type=SizeParam(), help="Remove the oldest versions while the trash holds more than SIZE.")
@click.option("--keep-everything", is_flag=True, help="Remove both limits: keep every version (the default).")
@click.option("--dry-run", is_flag=True, help="Report what the new policy would remove; store nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the policy as JSON on stdout.")
def policy_cmd(
    path: str, keep_days: int | None, max_size: int | None, keep_everything: bool, dry_run: bool, as_json: bool
) -> None:
    """Show or set the trash's retention policy of replica PATH.

    Every command that writes to the replica applies it at its end, oldest
    versions first, and never removes a version trashed less than a day
    ago; a sync short of space applies it before it gives up. Setting it
    applies it at once. An option not given keeps its value.
    """
    rep = trash_mod.policy(path, keep_days, max_size, keep_everything, dry_run)
    applied = rep.applied
    if as_json:
        emit_json(
            {
                **rep.policy.to_json(),
                "trash": usage_json(rep.trash),
                "removed": [it.to_json() for it in applied.removed] if applied else [],
                "freed": applied.freed if applied else 0,
                "dry_run": dry_run,
            }
        )
    else:
        click.echo(policy_text(rep.policy))
    if applied is not None and applied.removed:
        verb = "would remove" if dry_run else "removed"
        summary(f"the policy {verb} {counted(len(applied.removed), 'version')}, freeing {human_bytes(applied.freed)}")
    summary(f"the trash holds {counted(rep.trash.count, 'version')} ({human_bytes(rep.trash.bytes)})")
