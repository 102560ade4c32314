"""`sq` commands that sync mounted replicas directly (push, reconcile) or
through the laptop's carrier (sync; the carrier's own commands are in
`squirrel.cli.carrier`).

Each command first starts the workers that will sweep a large replica's
tree (`workers.started_early`), then imports its porcelain module: the
workers start while the command loads its code.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from squirrel.cli import cli
from squirrel.cli.complete import FolderPath
from squirrel.cli.live import live
from squirrel.cli.output import (
    MASS_DELETE_HELP,
    SizeParam,
    emit_json,
    human_bytes,
    list_outcomes,
    render_sync,
    report_skipped,
    scrub_line,
    summary,
    when,
)
from squirrel.errors import SyncIncomplete
from squirrel.plumbing import paths, workers
from squirrel.text import counted, listed

if TYPE_CHECKING:
    from squirrel.porcelain.verify import Damaged, VerifyReport
    from squirrel.porcelain.visit import VisitReport


@cli.command("push")
@click.option("--allow-mass-delete", is_flag=True, help=MASS_DELETE_HELP)
@click.argument("src", type=FolderPath())
@click.argument("dst", type=FolderPath())
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
    with workers.started_early(src, dst), live(as_json) as line:
        from squirrel.porcelain import push as push_mod

        rep = push_mod.push(
            src,
            dst,
            list(subpaths),
            dry_run=dry_run,
            scan_progress=line.scan,
            progress=line.progress,
            allow_mass_delete=allow_mass_delete,
        )
    render_sync(rep, as_json, "push")


@cli.command("reconcile")
@click.option("--allow-mass-delete", is_flag=True, help=MASS_DELETE_HELP)
@click.argument("a", type=FolderPath())
@click.argument("b", type=FolderPath())
@click.option("--dry-run", is_flag=True, help="Plan and report, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def reconcile_cmd(allow_mass_delete: bool, a: str, b: str, dry_run: bool, as_json: bool) -> None:
    """Two-way sync between mounted replicas A and B: afterwards both hold the same files."""
    with workers.started_early(a, b), live(as_json) as line:
        from squirrel.porcelain import reconcile as reconcile_mod

        rep = reconcile_mod.reconcile(
            a,
            b,
            dry_run=dry_run,
            scan_progress=line.scan,
            progress=line.progress,
            allow_mass_delete=allow_mass_delete,
        )
    render_sync(rep, as_json, "reconcile")


CARRIER_HELP = "The carrier folder (default: $SQ_CARRIER, else $XDG_DATA_HOME/squirrel/carrier)."


@cli.command("sync")
@click.option("--allow-mass-delete", is_flag=True, help=MASS_DELETE_HELP)
@click.argument("drive", type=FolderPath())
@click.option("--carrier", "carrier_dir", type=FolderPath(), help=CARRIER_HELP)
@click.option("--max-size", type=SizeParam(), help="The carrier's size budget (K/M/G/T); stored for later visits.")
@click.option(
    "--scrub",
    type=SizeParam(),
    help="Re-read up to SIZE of the drive's content for rot, resuming where the last scrub stopped"
    " (default: the carrier's setting, `sq carrier config --scrub`; 0: none).",
)
@click.option("--dry-run", is_flag=True, help="Report what the visit would deliver and take; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def sync_cmd(
    allow_mass_delete: bool,
    drive: str,
    carrier_dir: str | None,
    max_size: int | None,
    scrub: int | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Visit DRIVE with the laptop's carrier: the two-way sync of a visit.

    Scans the drive, delivers every version the carrier holds that the drive
    lacks, takes on the drive's new versions for the other drives (content
    only where another known drive lacks it, within the budget), and drops
    what every known drive has. Whatever did not fit comes on a later visit.

    With a scrub budget, the visit also re-reads a slice of the drive's
    files (as `sq verify --max-bytes --repair`): damaged ones go to the
    drive's trash, the carrier copies their content from any drive that
    has it at that drive's visit, and delivers it at this drive's next.
    A damaged file that no known drive holds any more is reported as lost.
    """
    with workers.started_early(drive), live(as_json) as line:
        from squirrel.plumbing.carrier import carrier_dir_from
        from squirrel.plumbing.wanted import ScrubState
        from squirrel.porcelain import visit as visit_mod

        where = carrier_dir_from(carrier_dir, dict(os.environ))
        rep = visit_mod.visit(
            drive,
            where,
            max_size=max_size,
            dry_run=dry_run,
            scan_progress=line.scan,
            progress=line.progress,
            allow_mass_delete=allow_mass_delete,
            scrub=scrub,
        )
    d = rep.delivered
    scrubbed = rep.scrubbed
    if rep.scan is not None:
        report_skipped(rep.scan)
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
                # Healed during the visit: by what was delivered, or at once from a copy on the drive.
                "healed": [paths.json_path(p) for p in d.healed + (scrubbed.healed if scrubbed is not None else [])],
                "scrubbed_bytes": scrubbed.checked_bytes if scrubbed is not None else 0,
                "damaged": [x.to_json() for x in scrubbed.damaged] if scrubbed is not None else [],
                "lost": [{**paths.json_path(w.path), "oid": w.oid.hex(), "size": w.size} for w in rep.lost],
                "scan_skipped": rep.scan.skipped_json(with_replica=True) if rep.scan is not None else [],
            }
        )
    else:
        list_outcomes(d)
        if scrubbed is not None:
            for x in scrubbed.damaged:
                click.echo(f"damaged   {paths.display(x.path)} ({damage_state(x, scrubbed)})")
        for w in rep.lost:
            click.echo(f"lost      {paths.display(w.path)} (damaged, and no known drive holds {w.oid.hex()})")
    if rep.forgotten is not None:
        again = "would be known again" if rep.dry_run else "is known again"
        summary(
            f"{rep.drive} had been forgotten ({when(rep.forgotten)}, `sq carrier forget`): it {again},"
            " and catches up from the other drives like any other"
        )
    waiting = len(d.deferred) + len(d.incomplete)
    summary(
        f"sync {rep.drive}: delivered {d.created} created, {d.updated} updated, {d.deleted} deleted,"
        f" {counted(len(d.conflicts), 'conflict')} (both versions kept); took {counted(rep.taken, 'change')},"
        f" carried in {human_bytes(rep.stored_bytes + rep.filled_bytes)};"
        f" carrier holds {human_bytes(rep.carrier_bytes)} of {human_bytes(rep.budget)}"
        + (" (dry run: nothing written)" if rep.dry_run else "")
    )
    if scrubbed is not None:
        summary(
            f"scrubbed {human_bytes(scrubbed.checked_bytes)} of {rep.drive}:"
            f" {counted(len(scrubbed.damaged), 'damaged file')}; "
            + scrub_line(scrubbed.scrub or ScrubState(), not scrubbed.cycle_done)
        )
    if rep.lost:
        summary(
            f"{counted(len(rep.lost), 'damaged file')} on {rep.drive} no known drive holds:"
            " lost unless a drive the carrier does not know has it (the damaged bytes are in its trash)"
        )
    if rep.alone:
        summary(nothing_to_carry(rep, where))
    if waiting:
        summary(
            f"{counted(waiting, 'version')} for this drive wait for a later visit (the carrier does not hold them yet)"
            + where_they_wait(rep)
        )
    if rep.left_behind:
        summary(
            f"left behind: {counted(len(rep.left_behind), 'file')} ({human_bytes(left_bytes)})"
            " did not fit in the carrier"
        )
    if d.failed:
        raise SyncIncomplete(f"{counted(len(d.failed), 'path')} could not be synced (see above); visit again")


def damage_state(x: Damaged, scrubbed: VerifyReport) -> str:
    """What became of a damaged file the visit's scrub found."""
    if x.path in scrubbed.healed:
        return "healed from a copy on this drive"
    why = scrubbed.why_not.get(x.path)
    if not x.repaired:
        return "not repaired" + (f": {why}" if why else "")
    return "moved to the trash, waiting for healing" + (f"; {why}" if why else "")


def nothing_to_carry(rep: VisitReport, where: str) -> str:
    """Why a visit carried nothing in: the carrier knows no other drive of
    the vault, and content travels only to a drive that lacks it."""
    line = (
        f"nothing {'would be' if rep.dry_run else 'was'} carried in: {rep.drive} is the only drive of its vault"
        " the carrier knows, and it carries content only for another drive."
    )
    if rep.unvisited:
        one = len(rep.unvisited) == 1
        return line + (
            f" {listed(rep.unvisited)} {'is' if one else 'are'} in the vault but never visited:"
            f" visit {'it' if one else 'them'} next (`sq sync DRIVE`)"
        )
    return line + (
        f" Next, join another drive to the vault (`sq init DRIVE --join {home_short(where)}`)"
        " and visit it (`sq sync DRIVE`)"
    )


def where_they_wait(rep: VisitReport) -> str:
    """Which drives to visit first so that the carrier brings what waits."""
    text = ""
    if rep.waiting_on:
        first = " or ".join(f"{name} (it holds {n})" for name, n in rep.waiting_on)
        text = f": visit {first} first, then {rep.drive} again"
    if rep.waiting_nowhere:
        text += (
            f"{'; ' if text else ': '}{counted(rep.waiting_nowhere, 'version')} of them"
            f" {'is' if rep.waiting_nowhere == 1 else 'are'} on no drive the carrier knows (see `sq carrier at-risk`)"
        )
    return text


def home_short(path: str) -> str:
    """A path with the home folder written `~`, as a user would type it."""
    home = os.environ.get("HOME", "")
    full = os.path.abspath(path)
    if home and (full == home or full.startswith(home.rstrip("/") + "/")):
        return "~" + full[len(home.rstrip("/")) :]
    return full
