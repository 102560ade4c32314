"""`conflicts.follow`: a conflict's record after a later conflict at its path."""

from __future__ import annotations

from dataclasses import replace

from squirrel.plumbing import ids
from squirrel.plumbing.conflicts import follow
from squirrel.plumbing.records import ConflictRecord, VersionInfo

A, B, C, D = (ids.hash_bytes(x) for x in (b"A", b"B", b"C", b"D"))


def version(oid: bytes) -> VersionInfo:
    return VersionInfo("file", oid, 1, 0, "")


def conflict(kept: bytes, copy: bytes, ours: bytes, theirs: bytes, time: int = 0) -> ConflictRecord:
    name = b"p.sq-conflict-" + copy.hex()[:8].encode() + b".txt"
    return ConflictRecord(
        b"p.txt", "update/update", b"p.txt", name, version(ours), version(theirs), time, None, kept, copy
    )


def test_a_later_conflict_that_set_the_kept_version_aside_takes_its_place() -> None:
    first = conflict(kept=B, copy=A, ours=A, theirs=B)
    second = conflict(kept=C, copy=B, ours=C, theirs=B, time=1)
    assert follow(first, [second]).kept_oid == C
    assert follow(second, [first]) == second


def test_conflicts_chain_in_the_order_they_were_met() -> None:
    first = conflict(kept=B, copy=A, ours=A, theirs=B)
    second = conflict(kept=C, copy=B, ours=B, theirs=C, time=1)
    third = conflict(kept=D, copy=C, ours=C, theirs=D, time=2)
    assert follow(first, [third, second]).kept_oid == D


def test_a_conflict_about_other_versions_changes_nothing() -> None:
    first = conflict(kept=B, copy=A, ours=A, theirs=B)
    unrelated = conflict(kept=D, copy=C, ours=C, theirs=D, time=1)
    assert follow(first, [unrelated]) == first


def test_a_conflict_without_a_copy_or_resolved_is_left_as_it_is() -> None:
    second = conflict(kept=C, copy=B, ours=C, theirs=B, time=1)
    edit_delete = ConflictRecord(b"p.txt", "update/delete", b"p.txt", None, version(B), None, 0, None, B, None)
    assert follow(edit_delete, [second]) == edit_delete
    resolved = replace(conflict(kept=B, copy=A, ours=A, theirs=B), resolved=True)
    assert follow(resolved, [second]) == resolved
