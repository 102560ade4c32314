"""`sq conflicts`: the open conflicts of a replica."""

from __future__ import annotations

from squirrel.plumbing.conflicts import is_open
from squirrel.plumbing.records import ConflictRecord
from squirrel.plumbing.replica import Replica


def conflicts(path: str) -> list[ConflictRecord]:
    """The conflicts open on this replica: met here, or met elsewhere and
    come with their files."""
    with Replica.open(path, write=False) as rep:
        return [c for c in rep.index.conflicts() if is_open(rep.index, c)]
