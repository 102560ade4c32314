"""Open conflicts, on every replica that holds them.

A conflict settled by keeping both versions leaves two files (or a kept
version and a deletion): the version at the path and, for most kinds, the
conflict copy beside it. Wherever those files go, the conflict goes with
them: after a sync, the receiver takes the sender's record of every conflict
whose files it now holds, so the user can list and resolve it on whichever
drive they are looking at. A conflict is open on a replica as long as its
index holds both: the kept content at the path and the copy's content at
the copy's path. Resolving it (or deleting the copy, or editing either file)
changes one of them, and the record is dropped there and, as the change
travels, everywhere else: no settled conflict stays listed.
"""

from __future__ import annotations

from collections.abc import Iterable

from squirrel.plumbing import paths
from squirrel.plumbing.index import ReplicaIndex
from squirrel.plumbing.records import ConflictRecord


def is_open(idx: ReplicaIndex, rec: ConflictRecord) -> bool:
    """Does this replica still hold both sides of the conflict?"""
    if not rec.tracked:
        return True  # recorded before conflicts travelled: open until resolved
    kept = idx.get(rec.kept)
    if kept is None:
        return False
    if not (kept.is_dir if rec.kept_oid is None else kept.is_file and kept.oid == rec.kept_oid):
        return False
    if rec.copy is None:
        return True
    copy = idx.get(rec.copy)
    return copy is not None and copy.is_file and copy.oid == rec.copy_oid


def carry(records: Iterable[ConflictRecord], idx: ReplicaIndex, top: bytes = b"") -> int:
    """After a sync into `idx`: take the sender's records (under `top`) of
    the conflicts whose files the receiver now holds, and drop the
    receiver's records that are no longer open. Returns how many it took."""
    taken = 0
    for rec in records:
        if paths.is_under(rec.path, top) and idx.get_conflict(rec.path) is None and is_open(idx, rec):
            idx.put_conflict(rec)
            taken += 1
    prune(idx)
    return taken


def prune(idx: ReplicaIndex) -> list[ConflictRecord]:
    """Drop the records of conflicts this replica no longer holds (settled
    here or elsewhere); returns what is still open."""
    still = []
    for rec in idx.conflicts():
        if is_open(idx, rec):
            still.append(rec)
        else:
            idx.drop_conflict(rec.path)
    return still
