"""`sq knowledge PATH -o FILE`: write what a replica knows, for `sq pack --base`."""

from __future__ import annotations

import os

from squirrel.plumbing.knowledge import Knowledge
from squirrel.plumbing.replica import Identity, Replica
from squirrel.plumbing.scan import ScanProgress, scan_replica
from squirrel.plumbing.userfiles import check_output_file


def write_knowledge(path: str, out: str, scan_progress: ScanProgress | None = None) -> Identity:
    """Scan the replica (so the file lists the content it really holds), then
    write its sync times and object ids to `out`."""
    out = os.path.abspath(out)
    check_output_file(out, "knowledge")
    with Replica.open(path) as rep:
        scan_replica(rep, scan_progress)
        Knowledge.of_replica(rep).write(out)
        rep.trash.apply_policy()
        return rep.identity
