"""`sq verify PATH`: re-hash content against the index and check the index
itself, the trash (its records against its files), and (for a carrier) its
objects. Reads only."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from squirrel.errors import FileSystemError, SquirrelError
from squirrel.plumbing import fsops, ids, paths
from squirrel.plumbing.carrier import Carrier, is_carrier
from squirrel.plumbing.index import Entry, ReplicaIndex
from squirrel.plumbing.progress import Meter, ProgressCallback
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.trash import TrashItem


@dataclass
class VerifyReport:
    checked_files: int = 0
    checked_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: str, quick: bool = False, progress: ProgressCallback | None = None) -> VerifyReport:
    """Check the replica (or carrier) at `path`; `progress` hears of every
    file, and of every block re-read."""
    report = VerifyReport()
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
                    check_object(vault.store.path(oid), oid, quick, report, f"carrier object {oid.hex()}", meter, size)
            finally:
                vault.close()
        return report
    with Replica.open(path, write=False) as rep:
        if os.path.exists(rep.journal.path):
            report.problems.append(
                "a sync was interrupted and its intent log is still there: any command that writes"
                f" (`sq scan {rep.root}`) puts the files back as the index has them"
            )
        check_index(rep.index, report)
        root = os.fsencode(rep.root)
        meter = Meter(f"verifying {rep.name}", progress)
        if progress is not None:  # the totals cost a walk of the index: only for someone watching
            sizes = [e.size for _, e in rep.index.walk(b"") if e.is_file]
            try:
                trashed = [item.size for item, _ in trash_contents(rep)]
            except SquirrelError:
                trashed = []  # check_trash reports it
            meter.expect(len(sizes) + len(trashed), 0 if quick else sum(sizes) + sum(trashed))
        for p, e in rep.index.walk(b""):
            if not p:
                continue
            full = fsops.abspath(root, p)
            st = fsops.lstat_or_none(full)
            if e.is_dir:
                if st is None or not os.path.isdir(full) or os.path.islink(full):
                    report.problems.append(f"{paths.display(p)}: indexed directory is missing")
                continue
            report.checked_files += 1
            before = meter.progress.bytes_done
            try:
                check_file(p, full, st, e, quick, report, meter)
            finally:
                meter.file_done(0 if quick else e.size, meter.progress.bytes_done - before)
        check_trash(rep, quick, report, meter)
    return report


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
        oid, _ = ids.hash_file(full, meter.add_bytes)
    except SquirrelError as err:
        report.problems.append(f"{paths.display(p)}: {err}")
        return
    report.checked_bytes += e.size
    if oid != e.oid:
        report.problems.append(f"{paths.display(p)}: content does not match the index (damaged?)")


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


def check_object(
    path: str | bytes, oid: bytes, quick: bool, report: VerifyReport, what: str, meter: Meter, size: int
) -> None:
    before = meter.progress.bytes_done
    try:
        if not quick:
            _check_object(path, oid, report, what, meter)
    finally:
        meter.file_done(0 if quick else size, meter.progress.bytes_done - before)


def _check_object(path: str | bytes, oid: bytes, report: VerifyReport, what: str, meter: Meter) -> None:
    try:
        got, _ = ids.hash_file(path, meter.add_bytes)
    except (FileSystemError, SquirrelError) as e:
        report.problems.append(f"{what}: {e}")
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
