"""The Tra decision for one path, row by row of the table in the design spec.

Every value is built by hand: `decide` is pure, so each row is a call with
the sender's state (a, s_a) and the receiver's (b, s_b). "B knows X" means
m_X <= s_B; "B saw the lineage" means some creation event of X is in s_B.
"""

from __future__ import annotations

import itertools

import pytest

from squirrel.plumbing.index import KIND_DIR, KIND_FILE, Entry
from squirrel.plumbing.tra import (
    CREATE_CREATE,
    DELETE_UPDATE,
    FAT_TICK_NS,
    FILE_DIR,
    UPDATE_DELETE,
    UPDATE_UPDATE,
    Decision,
    Op,
    decide,
    winner_is_a,
)
from squirrel.plumbing.vtime import VectorTime

A = "aaaaaaaaaaaaaaaa"
B = "bbbbbbbbbbbbbbbb"
C = "cccccccccccccccc"

OID_X = bytes([0x11]) * 32
OID_Y = bytes([0x22]) * 32


def vt(**events: int) -> VectorTime:
    """`vt(A=2, B=1)`: a vector time over the replicas A, B, C."""
    ids = {"A": A, "B": B, "C": C}
    return VectorTime({ids[k]: n for k, n in events.items()})


def file(m: VectorTime, c: VectorTime, oid: bytes = OID_X, mtime_ns: int = 10 * FAT_TICK_NS) -> Entry:
    return Entry(KIND_FILE, oid, 5, 0o644, mtime_ns, m, c)


def directory(m: VectorTime, c: VectorTime) -> Entry:
    return Entry(KIND_DIR, bytes(32), 0, 0o755, 0, m, c)


NOTHING = Decision(Op.NOTHING)


# Each row: (a, s_a, b, s_b, expected). Ids say which row of the table it is.
FILE_ROWS = {
    "absent/absent": (None, vt(A=5, B=2), None, vt(B=5, A=1), NOTHING),
    "absent/absent, nothing known": (None, vt(), None, vt(), NOTHING),
    # B's file was created at B:3; A has never heard of B past B:2.
    "absent/file, A never saw B's lineage": (None, vt(A=5, B=2), file(vt(B=3), vt(B=3)), vt(B=3), Decision(Op.KEEP)),
    # Created by C, edited by B: A knows B up to B:9 but nothing of C.
    "absent/file, A never saw B's lineage (created elsewhere)": (
        None,
        vt(A=5, B=2),
        file(vt(B=3), vt(C=1)),
        vt(B=3, C=1),
        Decision(Op.KEEP),
    ),
    "absent/file, A knows B's version": (None, vt(A=5, B=3), file(vt(B=3), vt(B=2)), vt(B=3), Decision(Op.DELETE)),
    "absent/file, A knows B's version (and more)": (
        None,
        vt(A=5, B=7, C=2),
        file(vt(B=3), vt(A=1)),
        vt(A=1, B=7),
        Decision(Op.DELETE),
    ),
    # A saw the lineage (created at A:1) and deleted it, B edited it at B:4.
    "absent/file, otherwise": (
        None,
        vt(A=5, B=3),
        file(vt(B=4), vt(A=1)),
        vt(A=1, B=4),
        Decision(Op.CONFLICT, DELETE_UPDATE),
    ),
    "file/absent, B never saw A's lineage": (file(vt(A=3), vt(A=3)), vt(A=3), None, vt(B=5, A=2), Decision(Op.CREATE)),
    # B deleted an older lineage at this path; A's file is a new, unrelated one.
    "file/absent, B never saw A's lineage (after B's deletion)": (
        file(vt(C=2), vt(C=2)),
        vt(A=4, C=2),
        None,
        vt(A=4, B=6, C=1),
        Decision(Op.CREATE),
    ),
    "file/absent, B knows A's version": (file(vt(A=3), vt(A=1)), vt(A=3), None, vt(B=5, A=3), NOTHING),
    # B saw the lineage (created at B:1) and deleted it; A edited it at A:4.
    "file/absent, otherwise": (
        file(vt(A=4), vt(B=1)),
        vt(A=4, B=1),
        None,
        vt(B=5, A=3),
        Decision(Op.CONFLICT, UPDATE_DELETE),
    ),
    "file/file, B knows A's version": (
        file(vt(A=2), vt(A=1)),
        vt(A=2),
        file(vt(B=3), vt(A=1), OID_Y),
        vt(A=2, B=3),
        NOTHING,
    ),
    "file/file, B knows A's version, same content": (
        file(vt(A=2), vt(A=1)),
        vt(A=2),
        file(vt(A=2), vt(A=1)),
        vt(A=2, B=3),
        NOTHING,
    ),
    "file/file, same object id, concurrent": (
        file(vt(A=2), vt(A=1)),
        vt(A=2, B=1),
        file(vt(B=2), vt(A=1)),
        vt(A=1, B=2),
        Decision(Op.SAME),
    ),
    "file/file, same object id, created independently": (
        file(vt(A=1), vt(A=1)),
        vt(A=1),
        file(vt(B=1), vt(B=1)),
        vt(B=1),
        Decision(Op.SAME),
    ),
    "file/file, same object id, A knows B's version": (
        file(vt(A=3), vt(A=1)),
        vt(A=3, B=2),
        file(vt(B=2), vt(A=1)),
        vt(A=2, B=2),
        Decision(Op.SAME),
    ),
    "file/file, A knows B's version": (
        file(vt(A=3), vt(A=1)),
        vt(A=3, B=2),
        file(vt(B=2), vt(A=1), OID_Y),
        vt(A=2, B=2),
        Decision(Op.TAKE),
    ),
    "file/file, otherwise, lineage shared": (
        file(vt(A=3), vt(A=1)),
        vt(A=3, B=1),
        file(vt(B=3), vt(A=1), OID_Y),
        vt(A=1, B=3),
        Decision(Op.CONFLICT, UPDATE_UPDATE),
    ),
    "file/file, otherwise, only B saw A's lineage": (
        file(vt(A=3), vt(A=2)),
        vt(A=3),
        file(vt(B=3), vt(B=3), OID_Y),
        vt(A=2, B=3),
        Decision(Op.CONFLICT, UPDATE_UPDATE),
    ),
    "file/file, otherwise, unrelated lineages": (
        file(vt(A=2), vt(A=2)),
        vt(A=2, B=1),
        file(vt(B=2), vt(B=2), OID_Y),
        vt(A=1, B=2),
        Decision(Op.CONFLICT, CREATE_CREATE),
    ),
}

DIR_ROWS = {
    "dir/dir, B knows A's directory: the subtree is skipped": (
        directory(vt(A=4, B=1), vt(A=1)),
        vt(A=4, B=1),
        directory(vt(A=4, B=2), vt(A=1)),
        vt(A=4, B=2),
        NOTHING,
    ),
    "dir/dir, concurrent: recurse": (
        directory(vt(A=4), vt(A=1)),
        vt(A=4),
        directory(vt(A=1, B=2), vt(A=1)),
        vt(A=1, B=2),
        Decision(Op.DESCEND),
    ),
    "dir/dir, A knows B's directory: recurse": (
        directory(vt(A=4, B=2), vt(A=1)),
        vt(A=4, B=2),
        directory(vt(A=1, B=2), vt(A=1)),
        vt(A=1, B=2),
        Decision(Op.DESCEND),
    ),
    "dir/absent, B never saw it: recurse (and create)": (
        directory(vt(A=3), vt(A=3)),
        vt(A=3),
        None,
        vt(B=2),
        Decision(Op.DESCEND),
    ),
    "dir/absent, B knows A's directory": (directory(vt(A=3), vt(A=1)), vt(A=3), None, vt(A=3, B=4), NOTHING),
    "dir/absent, otherwise: recurse": (
        directory(vt(A=5), vt(A=1)),
        vt(A=5),
        None,
        vt(A=3, B=4),
        Decision(Op.DESCEND),
    ),
    "absent/dir, A knows B's directory": (
        None,
        vt(A=6, B=3),
        directory(vt(A=1, B=3), vt(A=1)),
        vt(A=1, B=3),
        Decision(Op.DELETE),
    ),
    # Its children decide: both sides may have made the same folder, and A may
    # have deleted files in it that B holds.
    "absent/dir, A never saw it": (None, vt(A=6), directory(vt(B=3), vt(B=3)), vt(B=3), Decision(Op.DESCEND)),
    "absent/dir, otherwise: settle the children one by one": (
        None,
        vt(A=6, B=2),
        directory(vt(A=1, B=3), vt(A=1)),
        vt(A=1, B=3),
        Decision(Op.DESCEND),
    ),
    "file/dir, B knows A's file": (
        file(vt(A=2), vt(A=1)),
        vt(A=2),
        directory(vt(A=2, B=3), vt(B=3)),
        vt(A=2, B=3),
        NOTHING,
    ),
    "file/dir, A knows B's directory": (
        file(vt(A=4), vt(A=1)),
        vt(A=4, B=3),
        directory(vt(A=1, B=3), vt(B=3)),
        vt(A=1, B=3),
        Decision(Op.TAKE),
    ),
    "file/dir, concurrent": (
        file(vt(A=4), vt(A=1)),
        vt(A=4),
        directory(vt(B=3), vt(B=3)),
        vt(A=1, B=3),
        Decision(Op.CONFLICT, FILE_DIR),
    ),
    "dir/file, B knows A's directory": (
        directory(vt(A=2), vt(A=2)),
        vt(A=2),
        file(vt(B=3), vt(A=1)),
        vt(A=2, B=3),
        NOTHING,
    ),
    "dir/file, A knows B's file": (
        directory(vt(A=4), vt(A=4)),
        vt(A=4, B=3),
        file(vt(B=3), vt(A=1)),
        vt(A=1, B=3),
        Decision(Op.TAKE),
    ),
    "dir/file, concurrent": (
        directory(vt(A=4), vt(A=4)),
        vt(A=4),
        file(vt(B=3), vt(A=1)),
        vt(A=1, B=3),
        Decision(Op.CONFLICT, FILE_DIR),
    ),
}


Row = tuple[Entry | None, VectorTime, Entry | None, VectorTime, Decision]


@pytest.mark.parametrize("row", list(FILE_ROWS.values()), ids=list(FILE_ROWS))
def test_file_rows(row: Row) -> None:
    a, s_a, b, s_b, expected = row
    assert decide(a, s_a, b, s_b) == expected


@pytest.mark.parametrize("row", list(DIR_ROWS.values()), ids=list(DIR_ROWS))
def test_directory_rows(row: Row) -> None:
    a, s_a, b, s_b, expected = row
    assert decide(a, s_a, b, s_b) == expected


def test_every_conflict_kind_appears_in_the_table() -> None:
    kinds = {row[4].conflict for row in [*FILE_ROWS.values(), *DIR_ROWS.values()] if row[4].op is Op.CONFLICT}
    assert kinds == {UPDATE_UPDATE, CREATE_CREATE, DELETE_UPDATE, UPDATE_DELETE, FILE_DIR}


def test_a_conflict_always_names_its_kind_and_nothing_else_does() -> None:
    for a, s_a, b, s_b, _ in [*FILE_ROWS.values(), *DIR_ROWS.values()]:
        d = decide(a, s_a, b, s_b)
        assert (d.op is Op.CONFLICT) == (d.conflict is not None)


def test_the_decision_depends_only_on_its_arguments() -> None:
    a, s_a, b, s_b, expected = FILE_ROWS["file/file, otherwise, lineage shared"]
    assert [decide(a, s_a, b, s_b) for _ in range(3)] == [expected] * 3
    assert a is not None and a.m == vt(A=3)


# Laws that hold over every small combination of states ------------------------

SMALL_TIMES = [vt(), vt(A=1), vt(B=1), vt(A=2), vt(A=1, B=1), vt(A=2, B=1), vt(B=2), vt(A=1, B=2)]
SMALL_CREATIONS = [vt(A=1), vt(B=1), vt(A=2)]


def small_entries() -> list[Entry | None]:
    out: list[Entry | None] = [None]
    for m, c in itertools.product(SMALL_TIMES[1:], SMALL_CREATIONS):
        out.append(file(m, c, OID_X))
        out.append(file(m, c, OID_Y))
        out.append(directory(m, c))
    return out


def consistent(e: Entry | None, s: VectorTime) -> bool:
    """A replica always knows the version it holds (m <= s) and its lineage."""
    return e is None or (e.m <= s and e.c.lineage_seen_by(s))


def all_cases() -> list[tuple[Entry | None, VectorTime, Entry | None, VectorTime]]:
    entries = small_entries()
    cases = []
    for a, b in itertools.product(entries, repeat=2):
        for s_a, s_b in itertools.product(SMALL_TIMES, repeat=2):
            if consistent(a, s_a) and consistent(b, s_b):
                cases.append((a, s_a, b, s_b))
    return cases


CASES = all_cases()


def test_the_small_domain_is_large_enough_to_mean_something() -> None:
    assert len(CASES) > 10_000
    ops = {decide(*case).op for case in CASES}
    assert ops == set(Op)


def test_b_loses_its_version_only_to_one_that_knew_it() -> None:
    """TAKE and DELETE replace B's version: only allowed when A knows it."""
    for a, s_a, b, s_b in CASES:
        d = decide(a, s_a, b, s_b)
        if d.op in (Op.TAKE, Op.DELETE):
            assert b is not None and b.m <= s_a, (a, s_a, b, s_b, d)


def test_an_unknown_version_of_a_is_never_ignored() -> None:
    """If B does not know A's version, B must act on it (or recurse)."""
    for a, s_a, b, s_b in CASES:
        if a is None or a.m <= s_b:
            continue
        d = decide(a, s_a, b, s_b)
        assert d.op is not Op.NOTHING and d.op is not Op.KEEP, (a, s_a, b, s_b, d)


def test_a_known_version_of_a_changes_nothing() -> None:
    for a, s_a, b, s_b in CASES:
        if a is not None and a.m <= s_b:
            assert decide(a, s_a, b, s_b) == NOTHING


def test_conflicts_only_between_concurrent_versions() -> None:
    for a, s_a, b, s_b in CASES:
        d = decide(a, s_a, b, s_b)
        if d.op is not Op.CONFLICT:
            continue
        if a is not None:
            assert not a.m <= s_b
        if b is not None:
            assert not b.m <= s_a
        if a is not None and b is not None and a.is_file and b.is_file:
            assert a.oid != b.oid, "identical content is never a conflict"
        if d.conflict == FILE_DIR:
            assert a is not None and b is not None and a.is_dir != b.is_dir


def test_identical_files_are_never_a_conflict() -> None:
    for a, s_a, b, s_b in CASES:
        if a is not None and b is not None and a.is_file and b.is_file and a.oid == b.oid:
            assert decide(a, s_a, b, s_b).op in (Op.NOTHING, Op.SAME)


def test_a_deleted_path_never_conflicts_with_an_unseen_lineage() -> None:
    for a, s_a, b, s_b in CASES:
        if a is None and b is not None and not b.c.lineage_seen_by(s_a) and not b.m <= s_a:
            assert decide(a, s_a, b, s_b).op is (Op.DESCEND if b.is_dir else Op.KEEP)
        if b is None and a is not None and not a.c.lineage_seen_by(s_b) and not a.m <= s_b:
            assert decide(a, s_a, b, s_b).op in (Op.CREATE, Op.DESCEND)


# Who stays at the path in an update/update or create/create conflict ----------


def test_the_later_mtime_wins() -> None:
    old = file(vt(A=2), vt(A=1), OID_Y, mtime_ns=10 * FAT_TICK_NS)
    new = file(vt(B=2), vt(A=1), OID_X, mtime_ns=11 * FAT_TICK_NS)
    assert winner_is_a(new, old)
    assert not winner_is_a(old, new)


def test_within_one_fat_tick_the_larger_object_id_wins() -> None:
    """1.0 s and 1.9 s are one FAT tick: FAT's rounding must not decide."""
    small_late = file(vt(A=2), vt(A=1), OID_X, mtime_ns=FAT_TICK_NS + 900_000_000)
    big_early = file(vt(B=2), vt(A=1), OID_Y, mtime_ns=FAT_TICK_NS)
    assert winner_is_a(big_early, small_late)
    assert not winner_is_a(small_late, big_early)


def test_the_winner_does_not_depend_on_the_replicas_or_times() -> None:
    x = file(vt(A=2), vt(A=1), OID_X, mtime_ns=3 * FAT_TICK_NS)
    y = file(vt(B=2), vt(A=1), OID_Y, mtime_ns=3 * FAT_TICK_NS)
    y_elsewhere = file(vt(C=9), vt(C=1), OID_Y, mtime_ns=3 * FAT_TICK_NS)
    assert winner_is_a(y, x) and winner_is_a(y_elsewhere, x)


MTIMES = [0, 1, FAT_TICK_NS - 1, FAT_TICK_NS, FAT_TICK_NS + 1, 5 * FAT_TICK_NS, 5 * FAT_TICK_NS + 1_999_999_999]
OIDS = [bytes([n]) * 32 for n in (0, 1, 0x7F, 0xFF)] + [bytes(31) + b"\x01"]


def test_exactly_one_side_wins_whichever_side_sends() -> None:
    versions = [file(vt(A=1), vt(A=1), oid, mt) for oid in OIDS for mt in MTIMES]
    for x, y in itertools.combinations(versions, 2):
        if x.oid == y.oid:
            continue  # identical content is never a conflict
        assert winner_is_a(x, y) != winner_is_a(y, x), (x, y)


def test_winner_is_transitive_so_every_replica_agrees() -> None:
    versions = [file(vt(A=1), vt(A=1), oid, mt) for oid in OIDS for mt in MTIMES]
    for x, y, z in itertools.permutations(versions[:14], 3):
        if winner_is_a(x, y) and winner_is_a(y, z):
            assert winner_is_a(x, z)
