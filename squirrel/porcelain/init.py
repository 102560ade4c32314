"""`sq init`: make a directory a replica and index what is there."""

from __future__ import annotations

from dataclasses import dataclass

from squirrel.plumbing.replica import Identity, Replica, read_identity
from squirrel.plumbing.scan import ScanProgress
from squirrel.porcelain.scan import ScanReport, scan_open_replica


@dataclass
class InitReport:
    identity: Identity
    scan: ScanReport
    joined: str | None = None


def init(
    path: str, name: str | None = None, join: str | None = None, progress: ScanProgress | None = None
) -> InitReport:
    """Create `path/.squirrel/` and index the files already there.

    With `join`, the new replica belongs to the vault of the replica at that
    path; its existing files are reconciled by content on the first sync.
    """
    vault = None
    names = None
    if join is not None:
        other = read_identity(join)
        vault = other.vault
        with Replica.open(join, write=False) as source:
            names = source.names()
    replica = Replica.create(path, name=name, vault=vault)
    with replica:
        if names:
            replica.learn_names(names)
        report = scan_open_replica(replica, progress)
    return InitReport(replica.identity, report, join)
