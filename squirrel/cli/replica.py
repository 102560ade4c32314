"""`sq` commands that work on one replica: init, scan, status, conflicts,
resolve, verify and reidentify.

Each command imports its own porcelain module when it runs: every command
of this module loaded with `sq scan` was some 15 ms of its start, a
tenth of a scan of 100,000 unchanged files. Those that scan start the
workers that will sweep a large replica's tree first
(`workers.started_early`), so that they start while the command loads.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from squirrel.cli import EXIT_PREDICATE_NO, cli
from squirrel.cli.complete import FolderPath, complete_conflict
from squirrel.cli.live import live
from squirrel.cli.output import (
    MASS_DELETE_HELP,
    SizeParam,
    emit_json,
    human_bytes,
    pathlist,
    report_skipped,
    scrub_line,
    summary,
    when,
)
from squirrel.plumbing import paths, workers
from squirrel.text import counted


@cli.command("init")
@click.argument("path", type=FolderPath())
@click.option("--name", help="A short name for this replica (default: the directory name).")
@click.option(
    "--join",
    "join",
    metavar="SOURCE",
    type=click.Path(),
    help="Join the vault of the replica at SOURCE instead of starting a new vault.",
)
@click.option(
    "--dry-run", is_flag=True, help="Report the replica init would make and what it would index; create nothing."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def init_cmd(path: str, name: str | None, join: str | None, dry_run: bool, as_json: bool) -> None:
    """Make PATH a replica and index the files already there.

    Without --join, PATH starts a new vault. With --join SOURCE, PATH becomes
    a new replica of SOURCE's vault; files it already holds are reconciled by
    content on the first sync (identical content is never a conflict).
    """
    from squirrel.porcelain import init as init_mod

    with live(as_json) as line:
        rep = init_mod.init(path, name=name, join=join, progress=line.scan, dry_run=dry_run)
    report_skipped(rep.stats)
    if as_json:
        emit_json(
            {
                "vault": rep.vault,
                "replica": rep.replica,
                "name": rep.name,
                "files": rep.stats.files,
                "dirs": rep.stats.dirs,
                "bytes": rep.bytes,
                "dry_run": rep.dry_run,
            }
        )
    # A dry run makes no ids: a new vault and the replica get theirs when made.
    how = f"joined vault {rep.vault}" if join else "new vault" + (f" {rep.vault}" if rep.vault else "")
    ids = f" ({rep.replica})" if rep.replica else ""
    summary(
        f"initialized replica {rep.name}{ids} in {rep.root}:"
        f" {how}, {counted(rep.stats.files, 'file')} ({human_bytes(rep.bytes)}) indexed"
        + (" (dry run: nothing written)" if rep.dry_run else "")
    )


@cli.command("scan")
@click.option("--allow-mass-delete", is_flag=True, help=MASS_DELETE_HELP)
@click.argument("path", type=FolderPath())
@click.option("--dry-run", is_flag=True, help="Report the changes a scan would record; record nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was recorded as JSON on stdout.")
def scan_cmd(allow_mass_delete: bool, path: str, dry_run: bool, as_json: bool) -> None:
    """Record local changes in PATH (new, modified, deleted, moved files) as new versions.

    Only files whose size or mtime differ from the index are read again; a
    file touched without a content change is not a new version.
    """
    with workers.started_early(path), live(as_json) as line:
        from squirrel.porcelain import scan as scan_mod

        rep = scan_mod.scan(path, progress=line.scan, allow_mass_delete=allow_mass_delete, dry_run=dry_run)
    report_skipped(rep.stats)
    if as_json:
        emit_json(
            {
                "added": pathlist(rep.added),
                "modified": pathlist(rep.modified),
                "deleted": pathlist(rep.deleted),
                "moved": [{**paths.json_path(a, "from"), **paths.json_path(b, "to")} for a, b in rep.moved],
                "files": rep.stats.files,
                "dry_run": dry_run,
                "hashed": rep.stats.files_hashed,
                "skipped": rep.stats.skipped_json(),
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
        f"scanned {counted(rep.stats.files, 'file')}: {len(rep.added)} added, {len(rep.modified)} modified,"
        f" {len(rep.deleted)} deleted, {len(rep.moved)} moved" + (" (dry run: nothing recorded)" if dry_run else "")
    )


@cli.command("status")
@click.argument("path", type=FolderPath())
@click.option(
    "--exit-code",
    "exit_code",
    is_flag=True,
    help="Exit 1 when changes, conflicts or damaged files waiting for healing are pending.",
)
@click.option("--json", "as_json", is_flag=True, help="Print pending changes and conflicts as JSON on stdout.")
def status_cmd(path: str, exit_code: bool, as_json: bool) -> None:
    """Show what changed on disk since the last scan, and the open conflicts.

    Nothing is recorded: run `sq scan` to record the changes.
    """
    with workers.started_early(path), live(as_json) as line:
        from squirrel.porcelain import status as status_mod
        from squirrel.porcelain import verify as verify_mod

        rep = status_mod.status(path, progress=line.scan)
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
        emit_json(
            {
                "changes": items,
                "conflicts": [c.to_json() for c in rep.conflicts],
                "interrupted": rep.interrupted,
                "trash": {"count": rep.trash.count, "bytes": rep.trash.bytes},
                "waiting": [verify_mod.waiting_json(w) for w in rep.waiting],
                "last_full_scrub": rep.scrub.last_full,
            }
        )
    else:
        for ch in rep.pending:
            if ch.path in moved_from:
                continue
            if ch.path in moved_to:
                click.echo(f"moved     {paths.display(moved_to[ch.path])} -> {paths.display(ch.path)}")
            else:
                click.echo(f"{ch.kind:<9} {paths.display(ch.path)}")
        for c in rep.conflicts:
            copy = paths.display(c.copy) if c.copy is not None else "-"
            click.echo(f"conflict  {paths.display(c.path)} ({c.kind}; copy: {copy})")
        for w in rep.waiting:
            click.echo(f"damaged   {paths.display(w.path)} (waiting for healing since {when(w.since)})")
    report_skipped(rep.stats)
    if rep.interrupted:
        click.echo(
            "sq: a sync was interrupted halfway; the next command that writes (`sq scan`) puts back"
            " what it had half done, before it looks at the files",
            err=True,
        )
    pending = len(rep.pending) - len(rep.moved)  # a move is one change, not a deletion and an addition
    summary(
        f"{counted(pending, 'pending change')}, {counted(len(rep.conflicts), 'open conflict')};"
        f" the trash holds {counted(rep.trash.count, 'version')} ({human_bytes(rep.trash.bytes)})"
        + (f"; {counted(len(rep.waiting), 'damaged file')} waiting for healing" if rep.waiting else "")
    )
    summary(scrub_line(rep.scrub, False))
    if exit_code and rep.dirty:
        sys.exit(EXIT_PREDICATE_NO)


@cli.command("conflicts")
@click.argument("path", type=FolderPath())
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of conflicts.")
def conflicts_cmd(path: str, as_json: bool) -> None:
    """List the open conflicts of replica PATH (path, kind, conflict copy, both versions)."""
    from squirrel.porcelain import conflicts as conflicts_mod

    items = conflicts_mod.conflicts(path)
    if as_json:
        emit_json([c.to_json() for c in items])
        return
    for c in items:
        copy = paths.display(c.copy) if c.copy is not None else "-"
        click.echo(f"{c.kind:<14} {paths.display(c.path)}  copy: {copy}")
    summary(counted(len(items), "open conflict"))


@cli.command("resolve")
@click.argument("path", type=FolderPath())
@click.argument("file", shell_complete=complete_conflict)
@click.option("--keep", type=click.Choice(["path", "copy"]), required=True, help="Which version stays at the path.")
@click.option(
    "--dry-run", is_flag=True, help="Report what would be kept and what trashed; change nothing (not even the scan)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def resolve_cmd(path: str, file: str, keep: str, dry_run: bool, as_json: bool) -> None:
    """Settle the conflict at FILE in replica PATH.

    --keep path keeps the version at the path and moves the copy to the trash;
    --keep copy moves the copy over the path (the old version goes to the
    trash). FILE may name the path or its conflict copy.
    """
    with workers.started_early(path), live(as_json) as line:
        from squirrel.porcelain import resolve as resolve_mod

        rep = resolve_mod.resolve(path, file, keep, scan_progress=line.scan, dry_run=dry_run)
    if as_json:
        emit_json(
            {
                **paths.json_path(rep.path),
                "kept": keep,
                "trashed": paths.display(rep.trashed) if rep.trashed else None,
                "dry_run": rep.dry_run,
            }
        )
    summary(
        f"{'would resolve' if rep.dry_run else 'resolved'} {paths.display(rep.path)}:"
        f" {'keep' if rep.dry_run else 'kept'} the {keep} version"
        + (f", {paths.display(rep.trashed)} {'to' if rep.dry_run else 'moved to'} the trash" if rep.trashed else "")
        + (f"; {'would mark' if rep.dry_run else 'marked'} its record resolved" if rep.marked else "")
        + (" (dry run: nothing written)" if rep.dry_run else "")
    )


@cli.command("verify")
@click.argument("path", type=FolderPath())
@click.option("--quick", is_flag=True, help="Check sizes and mtimes only; do not re-read content.")
@click.option(
    "--max-bytes",
    type=SizeParam(),
    help="Scrub a slice: re-read at most SIZE of content (K/M/G/T), resuming where the last slice stopped.",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Move damaged files to the trash and mark them wanted; the next push, apply or visit heals them.",
)
@click.option("--dry-run", is_flag=True, help="Check, but repair nothing and do not move the scrub's position.")
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON on stdout.")
def verify_cmd(path: str, quick: bool, max_bytes: int | None, repair: bool, dry_run: bool, as_json: bool) -> None:
    """Check replica (or carrier) PATH: re-hash every file against the index,
    check the index's own structure and the trash (the carrier's objects).

    A file whose content no longer matches its object id while its size and
    mtime did not change is damaged (bit rot, not an edit). With --repair it
    goes to the trash (reason `damaged`) and its path waits for the recorded
    content: a copy on PATH itself heals it at once; otherwise the next
    `sq push OTHER PATH`, `sq apply` or carrier visit from a drive that has
    it puts the exact bytes back. No new version is made.

    With --max-bytes SIZE, only a slice is re-read (whole files, at most
    SIZE, but a file larger than SIZE is read whole on its own): the next
    run resumes after it, so a large drive is scrubbed, every byte once,
    across many runs. A slice checks file content only; a plain verify also
    checks the index and the trash. Both record when PATH was last fully
    scrubbed (`sq status` shows it).

    Without --repair and --max-bytes it reads only: the intent log of a sync
    killed halfway is reported, and undone by the next command that writes
    (e.g. `sq scan PATH`).

    Exits 0 when everything is right, 1 when anything is wrong (each listed;
    a damaged file waiting for healing is wrong until it is healed).
    """
    from squirrel.porcelain import verify as verify_mod

    with live(as_json) as line:
        rep = verify_mod.verify(
            path, quick=quick, progress=line.progress, max_bytes=max_bytes, repair=repair, dry_run=dry_run
        )
    if as_json:
        emit_json(
            {
                "ok": rep.ok,
                "files": rep.checked_files,
                "bytes": rep.checked_bytes,
                "problems": rep.problems,
                "damaged": [d.to_json() for d in rep.damaged],
                "healed": [paths.json_path(p) for p in rep.healed],
                "waiting": [verify_mod.waiting_json(w) for w in rep.waiting],
                "scrub": rep.scrub_json(),
                "dry_run": rep.dry_run,
            }
        )
    else:
        for problem in rep.problems:
            click.echo(problem)
        for p in rep.healed:
            click.echo(f"{paths.display(p)}: damaged: healed from a copy on this drive")
    what = "scrubbed a slice:" if rep.sliced else "verified"
    summary(
        f"{what} {counted(rep.checked_files, 'file')} ({human_bytes(rep.checked_bytes)} re-read):"
        f" {'ok' if rep.ok else counted(len(rep.problems), 'problem')}"
    )
    if rep.scrub is not None:
        summary(scrub_line(rep.scrub, rep.sliced and not rep.cycle_done))
    if rep.damaged and not repair:
        summary(f"`sq verify --repair {path}` moves damaged files aside so that another drive can heal them")
    if not rep.ok:
        sys.exit(EXIT_PREDICATE_NO)


@cli.command("reidentify")
@click.argument("path", type=FolderPath())
@click.option("--name", help="A new name for the replica (default: keep its name).")
@click.option("--dry-run", is_flag=True, help="Report the names the replica would have; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the new identity as JSON on stdout.")
def reidentify_cmd(path: str, name: str | None, dry_run: bool, as_json: bool) -> None:
    """Give replica PATH a new identity (a drive restored from an old backup,
    or a cloned drive), so that none of its new events reuses a counter other
    replicas already know. Its files and history are kept."""
    from squirrel.porcelain import reidentify as reidentify_mod

    rep = reidentify_mod.reidentify(path, name, dry_run=dry_run)
    old, new = rep.old, rep.new
    if as_json:
        # A dry run makes no id: the replica gets its new one when it is made.
        emit_json(
            {
                "vault": new.vault,
                "replica": None if rep.dry_run else new.replica,
                "name": new.name,
                "old_replica": old.replica,
                "old_name": rep.old_renamed,
                "dry_run": rep.dry_run,
            }
        )
    if rep.dry_run:
        summary(
            f"{path}: replica {old.name} ({old.replica}) would get a new id, named {new.name};"
            f" its past as {rep.old_renamed} (dry run: nothing written)"
        )
    else:
        summary(f"{path}: replica {old.name} ({old.replica}) is now {new.name} ({new.replica})")
