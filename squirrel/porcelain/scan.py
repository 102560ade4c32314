"""`sq scan`: record local changes as new versions."""

from __future__ import annotations

from squirrel.plumbing.replica import Replica
from squirrel.plumbing.scan import ScanProgress, ScanReport, scan_replica


def scan(
    path: str, progress: ScanProgress | None = None, allow_mass_delete: bool = False, dry_run: bool = False
) -> ScanReport:
    """Record what changed in the replica at `path`; with `dry_run`, find
    the same changes through the same code, and write none of them."""
    with Replica.open(path, write=not dry_run) as replica:
        if dry_run:
            replica.index.hold_writes()
        report = scan_replica(replica, progress, allow_mass_delete)
        if not dry_run:
            replica.trash.apply_policy()
        return report
