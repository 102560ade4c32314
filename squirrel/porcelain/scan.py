"""`sq scan`: record local changes as new versions."""

from __future__ import annotations

from dataclasses import dataclass, field

from squirrel.errors import MassDelete
from squirrel.plumbing import scan as scanmod
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.scan import Scanner, ScanProgress, ScanStats


@dataclass
class ScanReport:
    added: list[bytes] = field(default_factory=list)
    modified: list[bytes] = field(default_factory=list)
    deleted: list[bytes] = field(default_factory=list)
    moved: list[tuple[bytes, bytes]] = field(default_factory=list)
    touched: int = 0
    stats: ScanStats = field(default_factory=ScanStats)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.modified or self.deleted)


MASS_DELETE_SHARE = 0.5
MASS_DELETE_MIN = 50  # below this, a deletion is small enough to be deliberate


def check_mass_delete(deleted: int, total: int, where: str, allow: bool) -> None:
    """Refuse to delete more than half of a replica's files without being told to."""
    if allow or deleted < MASS_DELETE_MIN or deleted <= total * MASS_DELETE_SHARE:
        return
    raise MassDelete(
        f"{where} would delete {deleted} of {total} files; if that is really what happened,"
        " run again with --allow-mass-delete"
    )


def scan_open_replica(
    replica: Replica, progress: ScanProgress | None = None, allow_mass_delete: bool = False
) -> ScanReport:
    """Scan a replica that is already open for writing and record what changed."""
    scanner = Scanner(replica.root, replica.index, progress=progress)
    changes = list(scanner.changes())
    # The tree may have vanished under us (a drive unplugged mid-scan): make
    # sure it is still this replica before recording anything as deleted.
    replica.recheck_identity()
    # Files that went away, less those that reappeared elsewhere (moves).
    gone: list[bytes] = []
    for ch in changes:
        if ch.kind == scanmod.DELETED and ch.old is not None:
            if ch.old.is_dir:
                gone += [e.oid for _, e in replica.index.walk(ch.path) if e.is_file]
            else:
                gone.append(ch.old.oid)
    if gone:
        new_oids = [ch.new.oid for ch in changes if ch.kind == scanmod.ADDED and ch.new is not None and ch.new.is_file]
        added = len(new_oids)
        arrived = set(new_oids)
        deleted = sum(1 for oid in gone if oid not in arrived)
        check_mass_delete(
            deleted, scanner.stats.files - added + len(gone), f"the scan of {replica.root}", allow_mass_delete
        )
    res = scanmod.record(replica.index, changes)
    return ScanReport(res.added, res.modified, res.deleted, res.moved, res.touched, scanner.stats)


def scan(path: str, progress: ScanProgress | None = None, allow_mass_delete: bool = False) -> ScanReport:
    with Replica.open(path) as replica:
        return scan_open_replica(replica, progress, allow_mass_delete)
