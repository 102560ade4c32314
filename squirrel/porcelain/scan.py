"""`sq scan`: record local changes as new versions."""

from __future__ import annotations

from dataclasses import dataclass, field

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


def scan_open_replica(replica: Replica, progress: ScanProgress | None = None) -> ScanReport:
    """Scan a replica that is already open for writing and record what changed."""
    scanner = Scanner(replica.root, replica.index, progress=progress)
    changes = list(scanner.changes())
    # The tree may have vanished under us (a drive unplugged mid-scan): make
    # sure it is still this replica before recording anything as deleted.
    replica.recheck_identity()
    res = scanmod.record(replica.index, changes)
    return ScanReport(res.added, res.modified, res.deleted, res.moved, res.touched, scanner.stats)


def scan(path: str, progress: ScanProgress | None = None) -> ScanReport:
    with Replica.open(path) as replica:
        return scan_open_replica(replica, progress)
