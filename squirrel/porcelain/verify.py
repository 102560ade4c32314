"""`sq verify PATH`: re-hash content against the index and check the index
itself, the trash (its records against its files), and (for a carrier) its
objects.

A plain verify reads only (and, when it re-read every file, records when
the replica was last fully scrubbed). `max_bytes` scrubs a slice: it
re-reads at most that much content, starting after the file where the last
slice stopped (plumbing/wanted.py, `ScrubState`), so that a large drive is
covered across many runs, every byte once per cycle. `repair` moves each
damaged file (content changed, size and mtime not) to the trash and marks
it wanted (plumbing/heal.py); a copy of its content on the replica itself
(a duplicate, the trash) heals it at once, any other sync later.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from squirrel.errors import FileSystemError, SquirrelError, reason
from squirrel.plumbing import fsops, heal, ids, paths
from squirrel.plumbing.carrier import Carrier, is_carrier
from squirrel.plumbing.index import FORMAT_VERSION, Entry, ReplicaIndex
from squirrel.plumbing.progress import Meter, ProgressCallback
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.trash import TrashItem
from squirrel.plumbing.wanted import ScrubState, WantedMark


@dataclass(frozen=True)
class Damaged:
    """A file whose content no longer matches its recorded object id while
    its size and mtime are unchanged: rot, not an edit."""

    path: bytes
    oid: bytes  # recorded
    found: bytes  # what its bytes hash to now
    size: int
    repaired: bool = False  # moved to the trash and marked wanted

    def to_json(self) -> dict[str, Any]:
        return {
            **paths.json_path(self.path),
            "oid": self.oid.hex(),
            "found": self.found.hex(),
            "size": self.size,
            "repaired": self.repaired,
        }


def waiting_json(w: WantedMark) -> dict[str, Any]:
    return {**paths.json_path(w.path), "oid": w.oid.hex(), "size": w.size, "since": w.since}


@dataclass
class VerifyReport:
    """What a verify (or a slice of a scrub) read and found."""

    checked_files: int = 0
    checked_bytes: int = 0
    problems: list[str] = field(default_factory=list)
    damaged: list[Damaged] = field(default_factory=list)
    healed: list[bytes] = field(default_factory=list)  # healed at once from a copy on the replica
    # Why a damaged file was not moved aside, or not healed at once from a
    # copy on the replica (it then waits for a drive that has its content).
    why_not: dict[bytes, str] = field(default_factory=dict)
    waiting: list[WantedMark] = field(default_factory=list)  # damaged files still waiting for their content
    sliced: bool = False  # a slice of a scrub (`max_bytes`), not a whole verify
    cycle_done: bool = False  # this run read the last file of a scrub cycle (or every file)
    scrub: ScrubState | None = None  # the replica's scrub state after this run
    dry_run: bool = False
    # A slice's files, in the order read: (entries key, path, bytes re-read).
    slice_files: list[tuple[bytes, bytes, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def scrub_json(self) -> dict[str, Any] | None:
        if self.scrub is None:
            return None
        return {
            "slice": self.sliced,
            "cycle_done": self.cycle_done,
            "cycle_bytes": self.scrub.read,
            "cycle_began": self.scrub.began,
            "last_full": self.scrub.last_full,
        }


def verify(
    path: str,
    quick: bool = False,
    progress: ProgressCallback | None = None,
    *,
    max_bytes: int | None = None,
    repair: bool = False,
    dry_run: bool = False,
) -> VerifyReport:
    """Check the replica (or carrier) at `path`; `progress` hears of every
    file, and of every block re-read. A carrier is always checked whole."""
    report = VerifyReport(dry_run=dry_run)
    if is_carrier(path):
        carrier = Carrier(path)
        meter = Meter("verifying the carrier", progress)
        for vid in carrier.vault_ids():
            vault = carrier.open_vault(vid)
            try:
                check_index(vault.index, report)
                objects = list(vault.store)
                meter.expect(len(objects), 0 if quick else sum(size for _, size in objects))
                for oid, size in objects:
                    what = f"carrier object {oid.hex()}"
                    check_object(partial(vault.store.hash_of, oid), oid, quick, report, what, meter, size)
            finally:
                vault.close()
        return report
    sliced = max_bytes is not None and not quick
    writes = (sliced or repair) and not dry_run
    began = int(time.time())
    with Replica.open(path, write=writes) as rep:
        meter = Meter(f"verifying {rep.name}", progress)
        _check(rep, report, meter, quick, max_bytes if sliced else None, repair, writes, began)
        # A plain verify writes nothing else: not when that would undo an
        # interrupted sync or upgrade an old index (both for a writing command).
        record = not writes and rep.index.format == FORMAT_VERSION and not os.path.exists(rep.journal.path)
        state = report.scrub
    if report.cycle_done and record and not dry_run and state is not None:
        _record_full(path, state)
    return report


def scrub(rep: Replica, max_bytes: int, progress: ProgressCallback | None = None) -> VerifyReport:
    """A slice of the scrub of a replica open for writing, repairing what it
    finds damaged: what a carrier visit with a scrub budget does."""
    report = VerifyReport()
    _check(rep, report, Meter(f"scrubbing {rep.name}", progress), False, max_bytes, True, True, int(time.time()))
    return report


def _check(
    rep: Replica,
    report: VerifyReport,
    meter: Meter,
    quick: bool,
    max_bytes: int | None,
    repair: bool,
    writes: bool,
    began: int,
) -> None:
    """Verify the open replica `rep` (a slice with `max_bytes`), repair
    (unless a dry run), and, when `writes`, store the scrub's position."""
    if os.path.exists(rep.journal.path):
        report.problems.append(
            "a sync was interrupted and its intent log is still there: any command that writes"
            f" (`sq scan {rep.root}`) puts the files back as the index has them"
        )
    try:
        if max_bytes is not None:
            _scrub_slice(rep, max_bytes, report, meter)
        else:
            _verify_whole(rep, quick, report, meter)
    finally:
        ids.drops_done()  # every file it read is closed before any is moved or removed
    if repair:
        _repair(rep, report)
    report.waiting = rep.index.wanted_marks()
    healed = set(report.healed)
    for d in report.damaged:
        if d.path in healed:
            continue
        if d.repaired:
            report.problems.append(f"{paths.display(d.path)}: damaged: moved to the trash, waiting for healing")
        else:
            report.problems.append(f"{paths.display(d.path)}: content does not match the index (damaged?)")
    found = {d.path for d in report.damaged}
    report.problems += [
        f"{paths.display(w.path)}: damaged earlier, waiting for healing from a drive that has it"
        for w in report.waiting
        if w.path not in found
    ]
    state = rep.index.scrub_state()
    if report.sliced:
        state = _advance(state, report, began)
    elif report.cycle_done:
        state = ScrubState(state.cursor, state.began, state.read, int(time.time()), began)
    report.scrub = state
    if writes:
        rep.index.set_scrub_state(state)
        rep.index.commit()


def _verify_whole(rep: Replica, quick: bool, report: VerifyReport, meter: Meter) -> None:
    check_index(rep.index, report)
    root = os.fsencode(rep.root)
    if meter.progress is not None:  # the totals cost a walk of the index: only for someone watching
        sizes = [e.size for _, e in rep.index.walk(b"") if e.is_file]
        try:
            trashed = [item.size for item, _ in trash_contents(rep)]
        except SquirrelError:
            trashed = []  # check_trash reports it
        meter.expect(len(sizes) + len(trashed), 0 if quick else sum(sizes) + sum(trashed))
    wanted = {w.path for w in rep.index.wanted_marks()}
    for p, e in rep.index.walk(b""):
        if not p:
            continue
        full = fsops.abspath(root, p)
        st = fsops.lstat_or_none(full)
        if e.is_dir:
            if st is None or not os.path.isdir(full) or os.path.islink(full):
                report.problems.append(f"{paths.display(p)}: indexed directory is missing")
            continue
        if p in wanted and st is None:
            continue  # reported as waiting
        report.checked_files += 1
        before = meter.progress.bytes_done
        try:
            check_file(p, full, st, e, quick, report, meter)
        finally:
            meter.file_done(0 if quick else e.size, meter.progress.bytes_done - before)
    check_trash(rep, quick, report, meter)
    report.cycle_done = not quick


def _scrub_slice(rep: Replica, max_bytes: int, report: VerifyReport, meter: Meter) -> None:
    """Re-read files in index key order, from the one after the scrub's
    cursor, while they fit in `max_bytes`. A file larger than what is left
    waits for the next slice, unless it is the slice's first: a file is
    only checked whole, so one larger than `max_bytes` has a slice of its
    own."""
    report.sliced = True
    root = os.fsencode(rep.root)
    state = rep.index.scrub_state()
    wanted = {w.path for w in rep.index.wanted_marks()}
    read = 0
    report.cycle_done = True
    for key, p, e in rep.index.file_records_after(state.cursor):
        if report.slice_files and read + e.size > max_bytes:
            report.cycle_done = False
            break
        full = fsops.abspath(root, p)
        st = fsops.lstat_or_none(full)
        before = report.checked_bytes
        if not (p in wanted and st is None):
            report.checked_files += 1
            meter.expect(report.checked_files, read + e.size)
            streamed = meter.progress.bytes_done
            check_file(p, full, st, e, False, report, meter)
            meter.file_done(e.size, meter.progress.bytes_done - streamed)
        read += report.checked_bytes - before
        report.slice_files.append((key, p, report.checked_bytes - before))


def _advance(state: ScrubState, report: VerifyReport, began: int) -> ScrubState:
    if report.cycle_done:
        return state.completed(int(time.time()), began)
    return state.advanced(report.slice_files[-1][0], report.checked_bytes, began)


def _record_full(path: str, state: ScrubState) -> None:
    """A whole verify re-read every file: remember when, if the replica can
    be written now (a read-only drive, another sq at work: not this time)."""
    try:
        with Replica.open(path, write=True) as rep:
            rep.index.set_scrub_state(state)
            rep.index.commit()
    except SquirrelError:
        pass


def _repair(rep: Replica, report: VerifyReport) -> None:
    """Move each damaged file aside and mark it wanted, then heal at once
    what a copy on this replica (another path, the trash) can give."""
    if report.dry_run:
        return
    fixed: list[Damaged] = []
    for d in report.damaged:
        e = rep.index.get(d.path)
        if e is None or not e.is_file or e.oid != d.oid:
            fixed.append(d)
            continue
        try:
            heal.repair(rep, d.path, e, d.found)
            fixed.append(Damaged(d.path, d.oid, d.found, d.size, True))
        except (SquirrelError, OSError) as err:
            why = reason(err)
            report.problems.append(f"{paths.display(d.path)}: not repaired: {why}")
            report.why_not[d.path] = f"not moved to the trash: {why}"
            fixed.append(d)
    report.damaged = fixed
    marks = rep.index.wanted_marks()
    if marks:
        result = heal.heal(rep, [(w, heal.local_fetch(rep, w)) for w in marks])
        report.healed = result.healed
        report.problems += [f"{paths.display(p)}: not healed: {why}" for p, why in result.failed]
        report.why_not.update((p, f"not healed from the copy on this drive: {why}") for p, why in result.failed)


def check_file(
    p: bytes, full: bytes, st: os.stat_result | None, e: Entry, quick: bool, report: VerifyReport, meter: Meter
) -> None:
    """One indexed file against what is on disk: there, as scanned, and
    (unless `quick`) with the indexed content."""
    if st is None:
        report.problems.append(f"{paths.display(p)}: missing (not scanned since it went away?)")
        return
    if st.st_size != e.size or st.st_mtime_ns != e.mtime_ns:
        report.problems.append(f"{paths.display(p)}: changed since the last scan (size or mtime)")
        return
    if quick:
        return
    try:
        oid, _ = ids.hash_file(full, meter.add_bytes, from_media=True)
    except SquirrelError as err:
        report.problems.append(f"{paths.display(p)}: {err}")
        return
    report.checked_bytes += e.size
    if oid != e.oid:  # reported at the end, after a repair had its say
        report.damaged.append(Damaged(p, e.oid, oid, e.size))


def check_trash(rep: Replica, quick: bool, report: VerifyReport, meter: Meter) -> None:
    """The trash's records and its folder agree (no record without its
    file, no file without a record), and each content file is its id."""
    try:
        report.problems += rep.trash.problems()
        for item, full in trash_contents(rep):
            assert item.oid is not None
            what = f"trash object {item.name} ({paths.display(item.path)})"
            check_object(full, item.oid, quick, report, what, meter, item.size)
    except SquirrelError as e:
        report.problems.append(f"trash: {e}")


def trash_contents(rep: Replica) -> list[tuple[TrashItem, str]]:
    """Each content file in the trash once, with an item that names it."""
    found: list[tuple[TrashItem, str]] = []
    seen: set[bytes] = set()
    for item in rep.trash.items():
        if item.oid is None or item.oid in seen:
            continue
        seen.add(item.oid)
        full = rep.trash.path_of(item.name)
        if os.path.isfile(full):
            found.append((item, full))
    return found


Hasher = Callable[[Callable[[int], None]], bytes]  # the hash of an object's stored bytes, each block read counted


def check_object(
    path: str | bytes | Hasher, oid: bytes, quick: bool, report: VerifyReport, what: str, meter: Meter, size: int
) -> None:
    """Compare the object's bytes (a file's, or what `path` hashes, for an
    object in a carrier's pack) with its id; a mismatch or a read that
    fails is one of `report`'s problems."""
    before = meter.progress.bytes_done
    try:
        if not quick:
            _check_object(path, oid, report, what, meter)
    finally:
        meter.file_done(0 if quick else size, meter.progress.bytes_done - before)


def _check_object(path: str | bytes | Hasher, oid: bytes, report: VerifyReport, what: str, meter: Meter) -> None:
    try:
        got = path(meter.add_bytes) if callable(path) else ids.hash_file(path, meter.add_bytes)[0]
    except (FileSystemError, SquirrelError) as e:
        report.problems.append(f"{what}: {e}")
        return
    except OSError as e:
        report.problems.append(f"{what}: {e.strerror}")
        return
    if got != oid:
        report.problems.append(f"{what}: content does not match its id")


def check_index(idx: ReplicaIndex, report: VerifyReport) -> None:
    """Structural invariants: parents are directories, a directory's time
    covers its children's and their deletions, no present path has a
    deletion notice, the root has a sync time, and every time is within what
    the replica knows."""
    try:
        root = idx.get(b"")
        if root is None or not root.is_dir:
            report.problems.append("index: no root directory record")
            return
        if idx.stored_sync(b"") is None:
            report.problems.append("index: no root sync time")
        for p, e in idx.walk(b""):
            if p and idx.notice(p) is not None:
                report.problems.append(f"index: {paths.display(p)} is present and has a deletion notice")
            if e.is_dir:
                for name, child in idx.children(p):
                    cp = paths.join(p, name)
                    if not child.m <= e.m:
                        report.problems.append(f"index: {paths.display(cp)} is newer than its directory")
                for name, n in idx.notices(p):
                    if not n <= e.m:
                        report.problems.append(
                            f"index: the deletion of {paths.display(paths.join(p, name))} is newer than its directory"
                        )
            # A directory's time may run ahead of its sync time while a child
            # is unsynced (it covers what arrived); a file's may not.
            if p and e.is_file and not e.m <= idx.sync_time(p):
                report.problems.append(f"index: {paths.display(p)} has a modification time beyond its sync time")
    except SquirrelError as e:
        report.problems.append(f"index: {e}")
