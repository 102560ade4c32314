"""`sq` commands that sync mounted replicas directly (push, reconcile) or
through the laptop's carrier (sync; the carrier's own commands are in
`squirrel.cli.carrier`).
"""

from __future__ import annotations

import os

import click

from squirrel.cli import cli
from squirrel.cli.output import (
    MASS_DELETE_HELP,
    SizeParam,
    emit_json,
    human_bytes,
    list_outcomes,
    render_sync,
    scan_progress,
    summary,
    transfer_progress,
    when,
)
from squirrel.errors import SyncIncomplete
from squirrel.plumbing import paths
from squirrel.plumbing.carrier import carrier_dir_from
from squirrel.porcelain import push as push_mod
from squirrel.porcelain import reconcile as reconcile_mod
from squirrel.porcelain import visit as visit_mod


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
    rep = visit_mod.visit(
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
                "forgotten": rep.forgotten,
            }
        )
    else:
        list_outcomes(d)
    if rep.forgotten is not None:
        again = "would be known again" if rep.dry_run else "is known again"
        summary(
            f"{rep.drive} had been forgotten ({when(rep.forgotten)}, `sq carrier forget`): it {again},"
            " and catches up from the other drives like any other"
        )
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
