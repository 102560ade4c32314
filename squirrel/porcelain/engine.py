"""The sync engine that push, reconcile, apply and a carrier visit share.

`sync_into` plans a one-way Tra sync of a sender's tree (a replica's index,
a bundle's manifest, the carrier's index) into an already scanned replica,
carries the plan out with the executor and raises the receiver's sync times
for the paths that finished. `SyncReport` is what every sync command
returns. The checks that guard a sync (same vault, no replica behind what
others know of it) live here too.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from squirrel.errors import BadUsage, IdentityConflict, SquirrelError, WrongVault
from squirrel.plumbing import conflicts, fsops, heal, paths, pieces
from squirrel.plumbing.execute import ExecResult, Executor
from squirrel.plumbing.fetch import ContentSource
from squirrel.plumbing.index import Entry
from squirrel.plumbing.pathnotes import PathNotes
from squirrel.plumbing.pieces import Outline, moved_away, outline, outline_pieces, sync_in_pieces
from squirrel.plumbing.plan import WRITE, Plan, ReceiverTree, widen_top
from squirrel.plumbing.preview import preview
from squirrel.plumbing.progress import Meter, ProgressCallback
from squirrel.plumbing.records import ConflictRecord
from squirrel.plumbing.replica import Identity, Replica, read_identity
from squirrel.plumbing.scan import MASS_DELETE_MIN, ScanStats, check_mass_delete
from squirrel.plumbing.space import allocation_unit, ensure_room, room
from squirrel.plumbing.synctime import SyncSource, raise_sync_times
from squirrel.plumbing.vtime import VectorTime
from squirrel.plumbing.wanted import WantedMark


class ReplicaSource:
    """Content read from a mounted sender, refused if it changed since its scan."""

    complete = True  # every version it describes is one of its files

    def __init__(self, root: str) -> None:
        self.root = os.fsencode(root)

    def chunks(self, path: bytes, entry: Entry) -> Iterable[bytes]:
        return fsops.read_chunks(fsops.abspath(self.root, path), entry)

    def span(self, path: bytes, entry: Entry) -> fsops.Span:
        return fsops.open_span(fsops.abspath(self.root, path), entry)

    def group_span(self, path: bytes, entry: Entry) -> fsops.FileAt:
        return fsops.FileAt(fsops.abspath(self.root, path), entry.size, entry.mtime_ns)


@dataclass
class SyncReport:
    """What a sync did (or, with dry_run, would do) to the receiver(s)."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0
    moved: int = 0
    bytes_copied: int = 0
    visited: int = 0
    conflicts: list[ConflictRecord] = field(default_factory=list)
    failed: list[tuple[bytes, str]] = field(default_factory=list)
    lasting: set[bytes] = field(default_factory=set)  # failed paths a re-run cannot sync (see each reason)
    deferred: PathNotes = field(default_factory=PathNotes)  # content not carried this time, and why
    incomplete: list[bytes] = field(default_factory=list)  # subtrees the sender's view did not cover
    dry_run: bool = False
    unknown_subpaths: list[str] = field(default_factory=list)  # SUBPATHs the sender knows nothing of
    healed: list[bytes] = field(default_factory=list)  # damaged files given back their content
    waiting: list[tuple[bytes, str]] = field(default_factory=list)  # damaged files still waiting, and why
    scans: list[ScanStats] = field(default_factory=list)  # the scans before the sync (their skipped paths)

    def add(self, other: SyncReport) -> None:
        for name in ("created", "updated", "deleted", "skipped", "moved", "bytes_copied", "visited"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.conflicts += other.conflicts
        self.failed += other.failed
        self.lasting |= other.lasting
        self.deferred += other.deferred
        self.incomplete += other.incomplete
        self.healed += other.healed
        self.waiting += other.waiting
        self.scans += other.scans

    def to_json(self) -> dict[str, Any]:
        """The document `--json` prints (`deferred` an iterator, for
        `output.emit_json`)."""
        return {
            "created": self.created,
            "updated": self.updated,
            "deleted": self.deleted,
            "skipped": self.skipped,
            "moved": self.moved,
            "bytes_copied": self.bytes_copied,
            "conflicts": [c.summary_json() for c in self.conflicts],
            "failed": [{**paths.json_path(p), "error": why} for p, why in self.failed],
            # Made as it is written (output.emit_json): a new drive's first
            # visit may defer a million files.
            "deferred": itertools.chain(
                ({**paths.json_path(p), "reason": why} for p, why in self.deferred),
                ({**paths.json_path(p), "reason": "not covered by the sender's view"} for p in self.incomplete),
            ),
            "healed": [paths.json_path(p) for p in self.healed],
            # `skipped` (a count of paths the plan left alone) was taken first
            "scan_skipped": [s for stats in self.scans for s in stats.skipped_json(with_replica=True)],
            "dry_run": self.dry_run,
        }


def check_not_behind(rep: Replica, knowledge: VectorTime, who: str) -> None:
    """Refuse a replica whose own counter is behind what others know of it:
    its index was restored from an old backup, or it is a clone of a drive
    that has moved on. Its new events would reuse counters others already
    know, and their versions would be taken as known: lost updates."""
    known = knowledge.get(rep.id)
    if known > rep.index.counter:
        raise IdentityConflict(
            f"{rep.root} is behind what {who} knows of it ({rep.name} event {known}, but its index is at"
            f" {rep.index.counter}): restored from an old backup, or a cloned drive."
            f" Give it a new identity with `sq reidentify {rep.root}`, then sync again"
        )


def check_identities(a: Replica, b: Replica) -> None:
    """Before anything is scanned (a scan takes new event counters): neither
    replica may be behind what the other knows of it."""
    check_not_behind(a, b.index.sync_time(b""), b.name)
    check_not_behind(b, a.index.sync_time(b""), a.name)


def check_same_vault(a: Replica, b: Replica) -> None:
    if a.identity.vault != b.identity.vault:
        raise WrongVault(
            f"{a.root} and {b.root} belong to different vaults"
            f" ({a.identity.vault} vs {b.identity.vault}); refusing to sync"
        )
    if a.id == b.id:
        raise _clone(a.root, b.root, a.identity)


def check_two_replicas(a_path: str, b_path: str, what: str) -> None:
    """Before any lock is taken, that `a_path` and `b_path` (`what` names
    them: "SRC and DST") are two replicas. One folder given twice (the same
    path, another path to it, a symlink) cannot sync with itself: a usage
    error. Two folders that carry one replica id are a clone, which needs a
    new identity. Anything else wrong with either path is left for opening
    it to report."""
    try:
        same_folder = os.path.samefile(a_path, b_path)
        a, b = read_identity(os.path.abspath(a_path)), read_identity(os.path.abspath(b_path))
    except (OSError, SquirrelError):
        return
    if a.replica != b.replica:
        return
    if same_folder:
        twice = (
            f"{a.name} ({a.replica}) given twice"
            if a_path == b_path
            else f"{a_path} and {b_path} are one folder, {a.name} ({a.replica})"
        )
        raise BadUsage(f"{what} are the same replica: {twice}; name two different drives")
    raise _clone(os.path.abspath(a_path), os.path.abspath(b_path), a)


def unknown_subpaths(rep: Replica, tops: list[bytes], given: list[str]) -> list[str]:
    """The SUBPATHs (as `given`) that name nothing the (scanned) sender
    knows: neither a path it holds nor one whose deletion it recorded. They
    sync nothing, which is what they mean (the sender has nothing to say
    there), but a typo or a path given from the wrong folder does that too:
    the command says so."""
    unknown = []
    for top, text in zip(tops, given, strict=True):
        below_root = [*list(paths.ancestors(top))[-2::-1], top] if top else []  # outermost first
        for p in below_root:
            if rep.index.get(p) is None:
                if rep.index.notice(p) is None:
                    unknown.append(text)
                break
    return unknown


def _clone(a_root: str, b_root: str, ident: Identity) -> WrongVault:
    return WrongVault(
        f"{a_root} and {b_root} are two folders with one replica identity ({ident.name}, {ident.replica}):"
        f" one is a clone of the other. Give one of them a new identity (`sq reidentify {b_root}`), then sync again"
    )


def sync_into(
    dst: Replica,
    src: SyncSource,
    content: ContentSource,
    src_names: dict[str, str],
    tops: list[bytes],
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    guard: int | None = None,
    sender: str | None = None,
    *,
    phase: str | None = None,
) -> SyncReport:
    """One-way sync of the sender's tree `src` (an index or a bundle) into
    the (already scanned) replica `dst`, one top path at a time.

    With `guard` (the receiver's file count), a plan that would delete more
    than half of the receiver's files is refused (MassDelete). `sender`
    names the sender in the reasons of what goes to the trash. `progress`
    hears how the copies go, as `phase` (default "copying to DST")."""
    check_not_behind(dst, src.sync_time(b""), "the sender")
    report = SyncReport(dry_run=dry_run)
    names = dst.names()
    # A folder that cannot be made fails in every piece below it: it is
    # reported the first time.
    reported: set[bytes] = set()
    for top in tops or [b""]:
        top = widen_top(src, dst.index, top)
        # Most syncs fit one plan; a larger one is made of pieces (see
        # `pieces`), checked as a whole before any piece changes anything.
        too_large: set[bytes] = set()
        first = pieces.whole_plan(src, dst.index, top, too_large=too_large)
        unit = allocation_unit(dst.root)
        whole = (
            outline(src, dst.index, top, too_large=too_large, unit=unit) if first is None else Outline.of(first, unit)
        )
        if guard is not None:
            check_mass_delete(_deletions(src, dst.index, top, whole, first), guard, f"this sync into {dst.root}", False)
        if dry_run:
            # The same plans, each carried out as far as can be known
            # without writing (`preview`): what the real run would defer is
            # deferred here too.
            made: set[bytes] = set()  # a folder each piece below it would make is made once
            for plan in [first] if first is not None else outline_pieces(src, dst.index, top, too_large=too_large):
                _tally(report, plan, preview(dst, plan, content, made), names, reported)
            continue
        meter = Meter(phase or f"copying to {dst.name}", progress, files=whole.files, size=whole.write_bytes)
        if first is None:
            ensure_room(dst, whole.new_bytes())

        def carry_out(plan: Plan, failed_before: set[bytes], meter: Meter = meter) -> set[bytes]:
            result = Executor(dst, plan, content, progress, sender, meter=meter, failed_before=failed_before).run()
            dst.recheck_identity()
            unfinished = result.failed_paths | set(plan.incomplete)
            for subtree in plan.tops:
                raise_sync_times(dst.index, src, subtree, unfinished)
            dst.index.commit()
            _tally(report, plan, result, names, reported)
            return unfinished - failed_before

        if first is not None:
            carry_out(first, set())
        else:
            sync_in_pieces(src, dst.index, top, carry_out, too_large=too_large)
        conflicts.carry(src.conflicts(), dst.index, top)  # open conflicts travel with their files
        dst.learn_names(src_names)
        dst.index.commit()
        heal_from(dst, src, content, top, report, dry_run)
    return report


def _tally(report: SyncReport, plan: Plan, result: ExecResult, names: dict[str, str], reported: set[bytes]) -> None:
    """Add what carrying out one plan did (or, previewed, would do) to the
    report; a failed path in `reported` was reported by an earlier plan."""
    report.visited += plan.visited
    report.incomplete += plan.incomplete
    report.created += result.created
    report.updated += result.updated
    report.deleted += result.deleted
    report.moved += result.moved
    report.skipped += plan.skipped
    report.bytes_copied += result.bytes_from_source
    report.conflicts += [c.record(names) for c in result.conflicts]
    for path, why, unavailable in result.failed:
        if unavailable:
            report.deferred.append((path, why))
        elif path not in reported:
            reported.add(path)
            report.failed.append((path, why))
    report.lasting |= result.lasting


def heal_from(
    dst: Replica, src: SyncSource, content: ContentSource, top: bytes, report: SyncReport, dry_run: bool = False
) -> None:
    """Give the receiver's damaged files under `top` their recorded content
    back, where the sender has it (plumbing/heal.py): at the same path, at
    another path of a replica, or by its id (a bundle, the carrier)."""
    marks = dst.index.wanted_marks(top)
    if not marks:
        return
    elsewhere = getattr(src, "paths_with_objects", None)  # a replica's index: one pass for every mark
    holders: dict[bytes, list[bytes]] = elsewhere({w.oid for w in marks}) if elsewhere is not None else {}
    found = [(w, fetch_for(src, content, dst, w, holders)) for w in marks]
    if dry_run:
        report.healed += [w.path for w, f in found if f is not None]
        return
    unit = allocation_unit(dst.root)
    ensure_room(dst, sum(room(w.size, unit) for w, f in found if f is not None))
    result = heal.heal(dst, found)
    report.healed += result.healed
    report.waiting += result.waiting
    report.failed += result.failed


def fetch_for(
    src: SyncSource, content: ContentSource, dst: Replica, w: WantedMark, holders: dict[bytes, list[bytes]]
) -> heal.Fetch | None:
    """Where the sender's copy of a wanted object is, or None. `holders`:
    the sender's paths by content, for a sender that is a replica's index."""
    e = src.get(w.path)
    if e is not None and e.is_file and e.oid == w.oid:
        return functools.partial(content.chunks, w.path, e)
    for p in holders.get(w.oid, []):  # content read by path: from one of them
        pe = src.get(p)
        if pe is not None and pe.is_file and pe.oid == w.oid:
            return functools.partial(content.chunks, p, pe)
    if hasattr(src, "paths_with_objects") and not content_by_id(content):
        return None
    mine = dst.index.get(w.path)  # a bundle or the carrier: content by id, if it has it
    if mine is None or not mine.is_file or mine.oid != w.oid or not has_content(content, w.oid):
        return None
    return functools.partial(content.chunks, w.path, mine)


def content_by_id(content: ContentSource) -> bool:
    """Does the source give content by its id (a bundle, the carrier), not by path?"""
    return hasattr(content, "has")


def has_content(content: ContentSource, oid: bytes) -> bool:
    """Does a source of content by id hold `oid`? (One that cannot say is asked.)"""
    holds = getattr(content, "has", None)
    return True if holds is None else bool(holds(oid))


def _deletions(src: SyncSource, dst: ReceiverTree, top: bytes, whole: Outline, first: Plan | None) -> int:
    """The receiver's files a sync deletes, not counting those whose content
    it writes elsewhere (a move)."""
    if len(whole.deleted) < MASS_DELETE_MIN:
        return len(whole.deleted)  # too few to matter: no need to look for moves
    gone = set(whole.deleted)
    if first is not None:
        moved = {a.a.oid for a in first.actions if a.kind == WRITE and a.a is not None and a.a.oid in gone}
    else:
        moved = moved_away(src, dst, top, gone)
    return sum(1 for oid in whole.deleted if oid not in moved)


def sync_replicas(
    src: Replica,
    dst: Replica,
    tops: list[bytes],
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    guard: int | None = None,
) -> SyncReport:
    """Sync the (already scanned) replica `src` into `dst`."""
    check_not_behind(src, dst.index.sync_time(b""), dst.name)
    report = sync_into(dst, src.index, ReplicaSource(src.root), src.names(), tops, dry_run, progress, guard, src.name)
    if not dry_run:
        # The sender hears of the receiver too: a carrier that later visits
        # the sender then knows there is a replica it has not seen, and keeps
        # the deletion notices that replica may still need.
        src.learn_names(dst.names())
        src.index.commit()
    return report
