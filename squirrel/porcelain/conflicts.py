"""`sq conflicts`: the open conflicts of a replica."""

from __future__ import annotations

from squirrel.plumbing.conflicts import listed
from squirrel.plumbing.records import ConflictRecord
from squirrel.plumbing.replica import Replica


def conflicts(path: str) -> list[ConflictRecord]:
    """The conflicts open on this replica: met here, or met elsewhere and
    come with their files."""
    with Replica.open(path, write=False) as rep:
        return listed(rep.index)
