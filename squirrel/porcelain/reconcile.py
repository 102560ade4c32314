"""`sq reconcile A B`: two-way sync between two mounted replicas."""

from __future__ import annotations

from dataclasses import replace

from squirrel.plumbing.progress import ProgressCallback
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.scan import ScanProgress, scan_replica
from squirrel.plumbing.workers import SweepWorkers
from squirrel.porcelain.engine import SyncReport, check_identities, check_same_vault, check_two_replicas, sync_replicas


def reconcile(
    a_path: str,
    b_path: str,
    dry_run: bool = False,
    scan_progress: ScanProgress | None = None,
    progress: ProgressCallback | None = None,
    allow_mass_delete: bool = False,
) -> SyncReport:
    """A -> B, then B -> A: afterwards both hold the same versions (conflicts
    kept as two files on both sides)."""
    check_two_replicas(a_path, b_path, "A and B")
    with Replica.open(a_path) as a, Replica.open(b_path) as b:
        check_same_vault(a, b)
        check_identities(a, b)
        if dry_run:
            for r in (a, b):
                r.index.hold_writes()
        with SweepWorkers() as sweepers:  # started once, for both scans
            scanned = [scan_replica(r, scan_progress, allow_mass_delete, sweepers=sweepers).stats for r in (a, b)]
        report = sync_replicas(a, b, [], dry_run, progress)
        report.conflicts = [replace(c, replica=b.name) for c in report.conflicts]
        back = sync_replicas(b, a, [], dry_run, progress)
        back.conflicts = [replace(c, replica=a.name) for c in back.conflicts]
        report.add(back)
        report.scans = scanned
        if not dry_run:
            a.trash.apply_policy()
            b.trash.apply_policy()
        return report
