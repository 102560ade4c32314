"""`sq conflicts`: the open conflicts of a replica."""

from __future__ import annotations

from squirrel.plumbing.records import ConflictRecord
from squirrel.plumbing.replica import Replica


def conflicts(path: str) -> list[ConflictRecord]:
    with Replica.open(path, write=False) as rep:
        return rep.index.conflicts()
