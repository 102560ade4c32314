"""`sq scan`: record local changes as new versions."""

from __future__ import annotations

from squirrel.plumbing.replica import Replica
from squirrel.plumbing.scan import ScanProgress, ScanReport, scan_replica


def scan(path: str, progress: ScanProgress | None = None, allow_mass_delete: bool = False) -> ScanReport:
    with Replica.open(path) as replica:
        report = scan_replica(replica, progress, allow_mass_delete)
        replica.trash.apply_policy()
        return report
