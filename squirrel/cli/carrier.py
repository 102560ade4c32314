"""`sq carrier ...`: the laptop's carrier itself: what it holds for whom
(status), its budget (config), stopping carrying for a lost drive (forget),
what is on too few drives (at-risk), and which drive to visit next (next).
A visit is `sq sync` (squirrel.cli.sync).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from squirrel.cli import EXIT_PREDICATE_NO, cli
from squirrel.cli.complete import FolderPath, complete_drive, complete_vault
from squirrel.cli.output import SizeParam, emit_json, human_bytes, summary, when
from squirrel.cli.sync import CARRIER_HELP
from squirrel.plumbing import paths
from squirrel.plumbing.carrier import carrier_dir_from
from squirrel.plumbing.holdings import DEFAULT_COPIES
from squirrel.porcelain import at_risk as at_risk_mod
from squirrel.porcelain import carrier as carrier_mod
from squirrel.porcelain import forget as forget_mod
from squirrel.porcelain import next_visit as next_mod
from squirrel.text import counted

COPIES_HELP = f"How many drives each version should be on (default {DEFAULT_COPIES})."


def carrier_option(f: Any) -> Any:
    return click.option("--carrier", "carrier_dir", type=FolderPath(), help=CARRIER_HELP)(f)


def where(carrier_dir: str | None) -> str:
    return carrier_dir_from(carrier_dir, dict(os.environ))


def versions(n: int, size: int) -> str:
    return f"{counted(n, 'version')} ({human_bytes(size)})"


@cli.group("carrier")
def carrier_group() -> None:
    """The laptop's carrier: what it holds, its budget, and the drives it serves."""


@carrier_group.command("status")
@carrier_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON on stdout.")
def carrier_status_cmd(carrier_dir: str | None, as_json: bool) -> None:
    """Which drives the carrier knows, when each was last visited and last
    fully scrubbed (as it said at that visit), what it carries for whom,
    which drives it was told to forget, how much is on one drive only, and
    the bytes used of its budget."""
    st = carrier_mod.carrier_status(where(carrier_dir))
    if as_json:
        emit_json(st)
        return
    click.echo(f"carrier {st['path']}: {human_bytes(st['bytes'])} of {human_bytes(st['budget'])} used")
    for v in st["vaults"]:
        click.echo(f"vault {v['vault']}: {counted(v['objects'], 'object')}, {human_bytes(v['bytes'])}")
        for d in v["drives"]:
            damaged = f"; {d['damaged']} damaged, waiting for healing" if d["damaged"] else ""
            click.echo(
                f"  {d['name']:<16} last visit {when(d['last_visit'])};"
                f" carrying {versions(d['waiting'], d['waiting_bytes'])} for it,"
                f" {d['missing']} more not yet in the carrier;"
                f" last fully scrubbed {when(d['last_full_scrub'] or 0)}{damaged}"
            )
        for d in v["forgotten"]:
            click.echo(
                f"  {d['name']:<16} forgotten {when(d['forgotten'])} (last visit {when(d['last_visit'])});"
                " nothing is carried for it"
            )
        n = v["one_drive"]
        line = f"  {versions(n, v['one_drive_bytes'])} {'is' if n == 1 else 'are'} on one drive only"
        if v["no_drive"]:
            line += f"; {versions(v['no_drive'], v['no_drive_bytes'])} on no known drive"
        click.echo(line + (" (see `sq carrier at-risk`)" if v["one_drive"] or v["no_drive"] else ""))


@carrier_group.command("config")
@carrier_option
@click.option("--max-size", type=SizeParam(), help="Set the size budget (bytes or K/M/G/T).")
@click.option(
    "--scrub", type=SizeParam(), help="Set how much of each drive a visit re-reads for rot (K/M/G/T; 0: none)."
)
@click.option("--dry-run", is_flag=True, help="Report the settings the carrier would have; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON on stdout.")
def carrier_config_cmd(
    carrier_dir: str | None, max_size: int | None, scrub: int | None, dry_run: bool, as_json: bool
) -> None:
    """Show or set the carrier's settings: its size budget, and the scrub
    budget of each visit (`sq sync --scrub`)."""
    st = carrier_mod.carrier_config(where(carrier_dir), max_size, scrub, dry_run=dry_run)
    if as_json:
        emit_json(
            {
                "path": st.path,
                "max_size": st.max_size,
                "scrub": st.scrub,
                "was_max_size": st.was_max_size,
                "was_scrub": st.was_scrub,
                "dry_run": st.dry_run,
            }
        )
    else:
        click.echo(f"max-size {st.max_size} ({human_bytes(st.max_size)})")
        click.echo(f"scrub {st.scrub} ({human_bytes(st.scrub)} per visit)" if st.scrub else "scrub 0 (none)")
    if max_size is None and scrub is None:
        return
    changes = []
    if st.made:
        changes.append(f"{'would make' if st.dry_run else 'made'} the carrier {st.path}")
    for what, now, was in (("max-size", st.max_size, st.was_max_size), ("scrub", st.scrub, st.was_scrub)):
        if now != was and (what == "max-size" or now or was):
            changes.append(f"{what} {human_bytes(now)}" + (f" (was {human_bytes(was)})" if was is not None else ""))
    summary(
        ("; ".join(changes) if changes else "nothing to change") + (" (dry run: nothing written)" if st.dry_run else "")
    )


@carrier_group.command("forget")
@click.argument("drive", shell_complete=complete_drive)
@carrier_option
@click.option("--dry-run", is_flag=True, help="Report what forgetting would drop; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def carrier_forget_cmd(drive: str, carrier_dir: str | None, dry_run: bool, as_json: bool) -> None:
    """Stop carrying for DRIVE, a drive that is lost, stolen or dead.

    DRIVE is the drive's name, or its replica id when names collide (see `sq
    carrier status --json`). Content the carrier kept only for it is dropped
    at once, later visits take nothing for it, and `sq carrier status` lists
    it as forgotten. Its past versions stay in the history. If it turns up
    again, visiting it makes it known again and it catches up like any other.
    """
    rep = forget_mod.forget(where(carrier_dir), drive, dry_run=dry_run)
    d = rep.drive
    if as_json:
        emit_json(
            {
                "vault": rep.vault,
                "replica": d.id,
                "name": d.name,
                "last_visit": d.last_visit,
                "forgotten": d.forgotten,
                "already_forgotten": rep.already,
                "dropped": rep.dropped,
                "dropped_objects": rep.dropped_objects,
                "dropped_bytes": rep.dropped_bytes,
                "carrier_bytes": rep.carrier_bytes,
                "dry_run": rep.dry_run,
            }
        )
    if rep.already:
        extra = f"; {'would drop' if rep.dry_run else 'dropped'} {versions(rep.dropped, rep.dropped_bytes)}"
        summary(
            f"{d.name} ({d.id}) was already forgotten on {when(d.forgotten or 0)}"
            + (extra if rep.dropped_objects else "; nothing to do")
        )
        return
    drop = "would drop" if rep.dry_run else "dropped"
    summary(
        f"forget {d.name} ({d.id}, last visit {when(d.last_visit)}): {drop} {versions(rep.dropped, rep.dropped_bytes)}"
        f" kept only for it; the carrier holds {human_bytes(rep.carrier_bytes)}"
        + (" (dry run: nothing changed)" if rep.dry_run else f". If {d.name} turns up, `sq sync` it to take it back")
    )


@carrier_group.command("at-risk")
@click.argument("vault", required=False, shell_complete=complete_vault)
@click.option("--copies", type=click.IntRange(min=1), default=DEFAULT_COPIES, metavar="N", help=COPIES_HELP)
@carrier_option
@click.option("--json", "as_json", is_flag=True, help="Print the versions as JSON on stdout.")
def carrier_at_risk_cmd(vault: str | None, copies: int, carrier_dir: str | None, as_json: bool) -> None:
    """List every current version that fewer than --copies known drives hold,
    by the carrier's records (no drive is read): its path, size, the drives
    that hold its content, and whether the carrier holds a copy.

    VAULT is needed only when the carrier serves several vaults. A drive holds
    a version when its files held that content (at any path) at the end of its
    last visit; forgotten drives hold nothing. Exits 1 when any version is at
    risk, 0 when none is.
    """
    rep = at_risk_mod.at_risk(where(carrier_dir), copies, vault)
    if as_json:
        emit_json(
            {
                "vault": rep.vault,
                "copies": rep.copies,
                "known_drives": rep.known_drives,
                "at_risk": [
                    {
                        **paths.json_path(h.path),
                        "oid": h.oid.hex(),
                        "size": h.size,
                        "drives": rep.drive_names(h),
                        "in_carrier": h.in_carrier,
                    }
                    for h in rep.at_risk
                ],
                "count": len(rep.at_risk),
                "bytes": rep.bytes,
            }
        )
    else:
        for h in rep.at_risk:
            on = ", ".join(rep.drive_names(h)) or "no known drive"
            copy = "a copy in the carrier" if h.in_carrier else "not in the carrier"
            click.echo(f"{paths.display(h.path)}: {human_bytes(h.size)} on {on}; {copy}")
    if rep.at_risk:
        summary(
            f"{versions(len(rep.at_risk), rep.bytes)} on fewer than {copies}"
            f" of the {counted(rep.known_drives, 'known drive')}"
        )
        sys.exit(EXIT_PREDICATE_NO)
    summary(f"nothing at risk: every version is on {copies} or more of the {counted(rep.known_drives, 'known drive')}")


@carrier_group.command("next")
@click.argument("vault", required=False, shell_complete=complete_vault)
@click.option("--copies", type=click.IntRange(min=1), default=DEFAULT_COPIES, metavar="N", help=COPIES_HELP)
@carrier_option
@click.option("--json", "as_json", is_flag=True, help="Print the ranking as JSON on stdout.")
def carrier_next_cmd(vault: str | None, copies: int, carrier_dir: str | None, as_json: bool) -> None:
    """Rank the known drives by what a visit now would do, best first, by the
    carrier's records (no drive is read): at-risk versions it would fix
    (bring to --copies drives), then the bytes it would deliver from the
    carrier and take for the other drives.

    Changes made on a drive since its last visit are not known until it is
    visited, and a visit takes only what fits the budget.
    """
    ranked = next_mod.next_visits(where(carrier_dir), copies, vault)
    if as_json:
        emit_json(
            {
                "copies": copies,
                "drives": [
                    {
                        "vault": n.vault,
                        "replica": o.drive.id,
                        "name": o.drive.name,
                        "last_visit": o.drive.last_visit,
                        "deliver": o.deliver,
                        "deliver_bytes": o.deliver_bytes,
                        "missing": o.missing,
                        "take": o.take,
                        "take_bytes": o.take_bytes,
                        "fixes": o.fixes,
                        "fixes_bytes": o.fixes_bytes,
                    }
                    for n in ranked
                    for o in [n.outlook]
                ],
            }
        )
        return
    for n in ranked:
        o = n.outlook
        click.echo(
            f"{o.drive.name:<16} deliver {versions(o.deliver, o.deliver_bytes)}, take {versions(o.take, o.take_bytes)},"
            f" fix {o.fixes} at-risk; last visit {when(o.drive.last_visit)}"
        )
    if not ranked:
        summary("the carrier knows no drive yet: visit one (`sq sync DRIVE`)")
