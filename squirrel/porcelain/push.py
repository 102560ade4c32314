"""`sq push SRC DST [SUBPATH...]`: one-way sync between two mounted replicas."""

from __future__ import annotations

from squirrel.plumbing import paths
from squirrel.plumbing.progress import ProgressCallback
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.scan import ScanProgress, scan_replica
from squirrel.porcelain.engine import (
    SyncReport,
    check_identities,
    check_same_vault,
    check_two_replicas,
    sync_replicas,
    unknown_subpaths,
)


def push(
    src_path: str,
    dst_path: str,
    subpaths: list[str] | None = None,
    dry_run: bool = False,
    scan_progress: ScanProgress | None = None,
    progress: ProgressCallback | None = None,
    allow_mass_delete: bool = False,
) -> SyncReport:
    """Scan both replicas (so no unscanned change is ever overwritten), then
    sync SRC into DST."""
    check_two_replicas(src_path, dst_path, "SRC and DST")
    with Replica.open(src_path) as src, Replica.open(dst_path) as dst:
        check_same_vault(src, dst)
        check_identities(src, dst)
        if dry_run:
            for r in (src, dst):
                r.index.hold_writes()
        tops = [paths.user_relpath(src.root, s) for s in subpaths or []]
        scanned = [scan_replica(src, scan_progress, allow_mass_delete).stats]
        unknown = unknown_subpaths(src, tops, subpaths or [])
        scanned.append(scan_replica(dst, scan_progress, allow_mass_delete).stats)
        report = sync_replicas(src, dst, tops, dry_run, progress)
        report.scans = scanned
        report.unknown_subpaths = unknown
        if not dry_run:
            src.trash.apply_policy()
            dst.trash.apply_policy()
        return report
