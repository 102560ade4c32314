"""`sq resolve PATH FILE --keep path|copy`: settle a conflict by keeping one side.

The other side goes to the trash. The result is recorded by an ordinary scan
of the directory, as a local edit; since the replica's sync time already
covers both versions, the edit reaches every other replica without a new
conflict. A conflict without a copy changes nothing on disk: its record is
marked resolved instead, and the mark travels (see `conflicts`).

A dry run scans and decides the same way on an index that holds its writes,
and stops before the first change: the intent log, the trash, the files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from squirrel.errors import BadUsage, NoSuchConflict
from squirrel.plumbing import conflicts, fsops, journal, paths, place, scan
from squirrel.plumbing.records import ConflictRecord
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.scan import Scanner, ScanProgress, scan_replica
from squirrel.plumbing.trash import RESOLVED, TrashReason
from squirrel.text import counted


@dataclass
class ResolveReport:
    """How a conflict was resolved: the version kept, and what went to the trash."""

    path: bytes
    kept: str
    trashed: bytes | None
    conflict: ConflictRecord
    marked: bool  # nothing changed on disk: the conflict's record is marked resolved
    dry_run: bool = False


def _find(rep: Replica, rel: bytes) -> ConflictRecord:
    """The open conflict at `rel`, or whose conflict copy is `rel`."""
    listed = conflicts.listed(rep.index)
    found = [c for c in listed if c.path == rel] or [c for c in listed if c.copy == rel]
    if not found:
        raise NoSuchConflict(f"no open conflict at {paths.display(rel)} (see `sq conflicts`)")
    if len(found) > 1:
        # Only a path with copies has several: each copy names its own. A
        # conflict without a copy has no name but the path, which is its
        # alone once the others are resolved.
        copies = ", ".join(paths.display(c.copy) for c in found if c.copy is not None)
        many = counted(len(found), "open conflict")
        then = ""
        if any(c.copy is None for c in found):
            then = f"; once those are resolved, {paths.display(rel)} names the one without a copy"
        raise BadUsage(f"{many} at {paths.display(rel)}: name the copy to resolve ({copies}){then}")
    return found[0]


def resolve(
    path: str, file: str, keep: str, scan_progress: ScanProgress | None = None, dry_run: bool = False
) -> ResolveReport:
    """Settle the conflict `file` names by keeping `keep`; with `dry_run`,
    report what would be kept and trashed, and change nothing (not even the
    scan that comes first)."""
    if keep not in ("path", "copy"):
        raise BadUsage(f"--keep must be 'path' or 'copy', not {keep!r}")
    with Replica.open(path, write=not dry_run) as rep:
        if dry_run:
            rep.index.hold_writes()
        scan_replica(rep, scan_progress)
        rec = _find(rep, paths.user_relpath(rep.root, file))
        rel, copy = rec.path, rec.copy
        root = os.fsencode(rep.root)
        idx = rep.index
        copy_entry = idx.get(copy) if copy is not None else None
        trashed: bytes | None = None
        current = idx.get(rel)
        steps: list[journal.Step] = []
        if keep == "copy":
            if copy is None or copy_entry is None:
                raise NoSuchConflict(f"the conflict at {paths.display(rel)} has no copy to keep")
            if current is not None and not current.is_file:
                raise NoSuchConflict(f"{paths.display(rel)} is a directory; move the copy by hand")
            steps = [journal.removed(rel, current)] if current is not None else []
            steps.append(journal.moved(copy, rel, copy_entry))
            trashed = rel if current is not None else None
        elif copy is not None and copy_entry is not None:
            steps = [journal.removed(copy, copy_entry)]
            trashed = copy
        marked = copy is None and rec.tracked
        if dry_run:
            return ResolveReport(rel, keep, trashed, rec, marked, dry_run=True)
        # Two steps (the version at the path to the trash, the copy over it):
        # a kill between them is undone by the next command (see `journal`).
        with rep.journal.batch(idx, steps):
            if keep == "copy":
                assert copy is not None and copy_entry is not None
                place.recheck(root, copy, copy_entry)
                place.recheck(root, rel, current)
                if current is not None:
                    place.replace_keeping_old(
                        idx, rep.trash_dir, fsops.abspath(root, copy), root, rel, current, reason=TrashReason(RESOLVED)
                    )
                else:
                    place.install(fsops.abspath(root, copy), root, rel, new=True)
            elif copy is not None and copy_entry is not None:
                place.recheck(root, copy, copy_entry)
                place.trash(idx, rep.trash_dir, root, copy, copy_entry, TrashReason(RESOLVED))
            if marked:  # nothing changes on disk: mark it, for the mark to travel
                conflicts.mark_resolved(idx, rec)
            else:
                idx.drop_conflict(rec)
        idx.commit()
        # Record the outcome as a local edit of the directory holding both.
        scanner = Scanner(rep.root, idx)
        scan.record(idx, list(scanner.changes(paths.parent_of(rel))))
        rep.trash.apply_policy()
        return ResolveReport(rel, keep, trashed, rec, marked)
