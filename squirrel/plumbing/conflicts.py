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

A second conflict at the same path settles the version there against
another one: the first conflict's copy is still to be decided, now against
what the second kept. Each conflict has its own record (keyed by its path
and its copy), and the first one follows the second (`follow`), wherever
the two meet, so both stay listed as long as both copies are there.

Resolving a conflict that has no copy (the edited side of an edit/delete
was kept) changes nothing on disk, so nothing of it would travel: the
record stays, marked resolved, and travels like the open ones. A resolved
record is never listed, and it closes the same conflict (same path, copy
and contents) on every replica it reaches, and keeps it closed there when
the open record comes back from a replica that has not heard yet. Like any
record, it goes as soon as its files change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

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


def listed(idx: ReplicaIndex) -> list[ConflictRecord]:
    """The conflicts to show and resolve here: open and not resolved."""
    return [rec for rec in idx.conflicts() if not rec.resolved and is_open(idx, rec)]


def mark_resolved(idx: ReplicaIndex, rec: ConflictRecord) -> None:
    """Record that the user resolved `rec` while both sides stayed."""
    idx.put_conflict(replace(rec, resolved=True))


def _sides(rec: ConflictRecord) -> set[bytes | None]:
    return {v.oid for v in (rec.ours, rec.theirs) if v is not None}


def follow(rec: ConflictRecord, later: Iterable[ConflictRecord]) -> ConflictRecord:
    """`rec` after the other conflicts met at its path: one that settled
    the version `rec` kept against another and kept that other makes the
    other `rec`'s kept version. A conflict without a copy has nothing left
    to decide once its path changes, and is left as it is."""
    if rec.copy is None or rec.resolved or not rec.tracked:
        return rec
    for other in sorted(later, key=lambda r: r.time):
        if (
            other.path == rec.path
            and other.copy not in (None, rec.copy)
            and other.kept_oid != rec.kept_oid
            and rec.kept_oid in _sides(other)
        ):
            rec = replace(rec, kept_oid=other.kept_oid)
    return rec


def record(idx: ReplicaIndex, new: ConflictRecord) -> None:
    """Store a conflict a sync just met; the earlier ones at its path follow it."""
    for rec in idx.conflicts_at(new.path):
        moved = follow(rec, [new])
        if moved != rec:
            idx.put_conflict(moved)
    idx.put_conflict(new)


def carry(records: Iterable[ConflictRecord], idx: ReplicaIndex, top: bytes = b"") -> int:
    """After a sync into `idx`: take the sender's records (under `top`) of
    the conflicts whose files the receiver now holds, spread the resolved
    marks to the same conflicts here, and drop the receiver's records that
    are no longer open. Returns how many open conflicts it took."""
    incoming = [rec for rec in records if paths.is_under(rec.path, top)]
    known = _by_path(idx.conflicts() + incoming)  # a record follows only those at its own path
    for rec in idx.conflicts():
        moved = follow(rec, known.get(rec.path, ()))
        if moved != rec and is_open(idx, moved):
            idx.put_conflict(moved)
    taken = 0
    held = {(rec.path, rec.copy): rec for rec in idx.conflicts() if is_open(idx, rec)}
    for rec in incoming:
        rec = follow(rec, known.get(rec.path, ()))
        if not is_open(idx, rec):
            continue
        mine = held.get((rec.path, rec.copy))
        if mine is None:
            idx.put_conflict(rec)
            held[(rec.path, rec.copy)] = rec
            taken += not rec.resolved
        elif rec.resolved and not mine.resolved:
            mark_resolved(idx, mine)
            held[(rec.path, rec.copy)] = replace(mine, resolved=True)
    prune(idx)
    return taken


def _by_path(records: Iterable[ConflictRecord]) -> dict[bytes, list[ConflictRecord]]:
    """The records at each path, in their order."""
    at: dict[bytes, list[ConflictRecord]] = {}
    for rec in records:
        at.setdefault(rec.path, []).append(rec)
    return at


def prune(idx: ReplicaIndex) -> list[ConflictRecord]:
    """Drop the records of conflicts this replica no longer holds (settled
    here or elsewhere); returns the records it keeps, resolved ones
    included (they travel too)."""
    still = []
    for rec in idx.conflicts():
        if is_open(idx, rec):
            still.append(rec)
        else:
            idx.drop_conflict(rec)
    return still
