"""`sq trash list`, `sq trash purge` and `sq trash policy`: what a replica's
trash holds, removing versions for good, and the retention policy that
every command writing to the replica applies at its end
(`sq trash restore`: restore.py; the trash itself: plumbing/trashcan.py).
"""

from __future__ import annotations

import fnmatch
import os
import time
from dataclasses import dataclass

from squirrel.errors import BadUsage
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.retention import Policy, by_policy, older_than, to_fit
from squirrel.plumbing.trash import UNRECORDED, TrashItem, held_bytes, newest_first
from squirrel.plumbing.trashcan import PurgeReport, Usage


@dataclass
class TrashListing:
    """The items of a trash that match, and what their content holds."""

    items: list[TrashItem]  # newest first
    bytes: int  # what their content holds, each file counted once


def matches(path: bytes, pattern: str) -> bool:
    """Does an item's path match PATTERN? A glob (`*` also crosses `/`)
    against the whole path, or a folder above it; a pattern without `/`
    also matches the file's name at any depth."""
    pat = os.fsencode(pattern).strip(b"/")
    if not pat:
        return True
    return (
        fnmatch.fnmatchcase(path, pat)
        or fnmatch.fnmatchcase(path, pat + b"/*")
        or (b"/" not in pat and fnmatch.fnmatchcase(path.rpartition(b"/")[2], pat))
    )


def list_trash(path: str, pattern: str | None = None) -> TrashListing:
    """Every item of the trash (matching `pattern`), newest first. Reads only."""
    with Replica.open(path, write=False) as rep:
        items = rep.trash.items()
        if pattern is not None:
            items = [it for it in items if matches(it.path, pattern)]
        return TrashListing(newest_first(items), held_bytes(items))


def purge(
    path: str,
    older_than_seconds: int | None = None,
    keep_size: int | None = None,
    everything: bool = False,
    dry_run: bool = False,
    now: int | None = None,
) -> PurgeReport:
    """Remove trash items for good, oldest first: those older than
    `older_than_seconds`, then the oldest until the trash holds at most
    `keep_size` bytes, or all of them. The trash is tidied first: records
    whose file was removed by hand go, files without a record get one."""
    if older_than_seconds is None and keep_size is None and not everything:
        raise BadUsage("say what to purge: --older-than DURATION, --keep-size SIZE or --all")
    with Replica.open(path, write=not dry_run) as rep:
        trash = rep.trash
        adopted: list[TrashItem] = []
        missing: list[TrashItem] = []
        if not dry_run:
            missing = trash.drop_missing(trash.items())
            adopted = trash.adopt({}, UNRECORDED)
            rep.index.commit()
        items = trash.items()
        when = int(time.time()) if now is None else now
        chosen = list(items) if everything else []
        if older_than_seconds is not None and not everything:
            chosen = older_than(items, when - older_than_seconds)
        if keep_size is not None and not everything:
            chosen += to_fit(items, keep_size, chosen)
        report = trash.purge(chosen, items, dry_run)
        report.adopted, report.missing = adopted, missing
        return report


@dataclass
class PolicyReport:
    """A trash's retention policy, and what applying it removed."""

    policy: Policy
    trash: Usage  # what the trash holds afterwards
    applied: PurgeReport | None = None  # what the policy removed (with dry_run: would remove)


def policy(
    path: str,
    keep_days: int | None = None,
    max_size: int | None = None,
    keep_everything: bool = False,
    dry_run: bool = False,
) -> PolicyReport:
    """Show the retention policy, or change it (and apply it at once)."""
    if keep_everything and (keep_days is not None or max_size is not None):
        raise BadUsage("--keep-everything removes the limits; give it alone")
    if keep_days is not None and keep_days < 1:
        raise BadUsage("--keep-days must be at least 1")
    changing = keep_everything or keep_days is not None or max_size is not None
    with Replica.open(path, write=changing and not dry_run) as rep:
        trash = rep.trash
        old = trash.policy()
        if not changing:
            return PolicyReport(old, trash.usage())
        new = (
            Policy()
            if keep_everything
            else Policy(
                keep_days if keep_days is not None else old.keep_days,
                max_size if max_size is not None else old.max_size,
            )
        )
        if dry_run:
            items = trash.items()
            applied = trash.purge(by_policy(items, new, int(time.time())), items, dry_run=True)
            return PolicyReport(new, applied.kept, applied)
        trash.set_policy(new)
        rep.index.commit()
        done = trash.apply_policy()
        return PolicyReport(new, trash.usage(), done)
