"""Hand-written scenarios for the reference model of exact Tra (tests/tra_model.py).

The model is the oracle the exact-conflict state machine trusts, so each row
of the decision table, the directory rules and the one-report-per-conflict
scenarios are checked here by hand, on simulated disks.
"""

from __future__ import annotations

import blake3

from tests.tra_model import (
    CREATE_CREATE,
    DELETE_UPDATE,
    EMPTY,
    FILE_DIR,
    UPDATE_DELETE,
    UPDATE_UPDATE,
    VT,
    Absent,
    Dir,
    File,
    Replica,
    conflict_name,
    sync,
)


def oid(content: str) -> str:
    return blake3.blake3(content.encode()).hexdigest()


class World:
    """Replicas with simulated disks: path -> (content, mtime_ns), or None for a directory."""

    def __init__(self, n: int) -> None:
        self.reps = [Replica(f"r{i}") for i in range(n)]
        self.disks: list[dict[str, tuple[str, int] | None]] = [{} for _ in range(n)]
        self.contents: dict[str, str] = {}
        self.clock = 0

    def write(self, r: int, path: str, content: str, mtime_ns: int | None = None) -> None:
        parts = path.split("/")
        for i in range(1, len(parts)):
            self.disks[r]["/".join(parts[:i])] = None
        self.clock += 1
        self.contents[oid(content)] = content
        self.disks[r][path] = (content, self.clock * 10**9 if mtime_ns is None else mtime_ns)

    def mkdir(self, r: int, path: str) -> None:
        self.disks[r][path] = None

    def delete(self, r: int, path: str) -> None:
        for p in list(self.disks[r]):
            if p == path or p.startswith(path + "/"):
                del self.disks[r][p]

    def scan(self, r: int) -> bool:
        seen = {p: ("dir", "", 0) if v is None else ("file", oid(v[0]), v[1]) for p, v in self.disks[r].items()}
        return self.reps[r].scan(seen)

    def sync(self, a: int, b: int, top: str = "") -> list[tuple[str, str]]:
        self.scan(a)
        self.scan(b)
        conflicts = sync(self.reps[a], self.reps[b], top)
        self.materialize(b)
        return conflicts

    def materialize(self, r: int) -> None:
        disk: dict[str, tuple[str, int] | None] = {}
        for p, n in self.reps[r].nodes.items():
            if p and isinstance(n, File):
                disk[p] = (self.contents[n.oid], n.mtime_ns)
            elif p and isinstance(n, Dir):
                disk[p] = None
        self.disks[r] = disk

    def files(self, r: int) -> dict[str, str]:
        return {p: v[0] for p, v in self.disks[r].items() if v is not None}

    def tree(self, r: int) -> dict[str, str | None]:
        return {p: (v[0] if v is not None else None) for p, v in self.disks[r].items()}


def copy_of(path: str, content: str) -> str:
    parent, _, name = path.rpartition("/")
    c = conflict_name(name, oid(content)[:8])
    return f"{parent}/{c}" if parent else c


def shared(n: int, files: dict[str, str]) -> World:
    """n replicas that all hold `files` (created on r0, pushed around)."""
    w = World(n)
    for p, c in files.items():
        w.write(0, p, c)
    for i in range(1, n):
        assert w.sync(0, i) == []
    for i in range(1, n):
        assert w.sync(i, 0) == []
    return w


# Vector times ------------------------------------------------------------------


def test_vector_time_order_join_and_lineage() -> None:
    a, b = VT({"x": 1}), VT({"y": 2})
    assert EMPTY <= a and a <= a | b and not (a | b) <= a
    assert (a | b).v == {"x": 1, "y": 2}
    assert VT({"x": 3}).union(VT({"x": 1, "y": 4})).v == {"x": 1, "y": 4}
    assert VT({"x": 3, "y": 9}).seen_by(VT({"x": 3})) and not VT({"x": 4}).seen_by(VT({"x": 3}))


def test_conflict_names() -> None:
    assert conflict_name("IMG.jpg", "3fa9c2d1") == "IMG.sq-conflict-3fa9c2d1.jpg"
    assert conflict_name("a", "3fa9c2d1") == "a.sq-conflict-3fa9c2d1"
    assert conflict_name(".hidden", "00") == ".hidden.sq-conflict-00"


# Scan --------------------------------------------------------------------------


def test_scan_takes_one_event_and_records_exact_deletions() -> None:
    w = World(1)
    w.write(0, "d/x", "1")
    w.write(0, "d/y", "2")
    assert w.scan(0)
    r = w.reps[0]
    assert r.counter == 1
    assert r.state("d") == Dir(VT({"r0": 1}), VT({"r0": 1}))
    assert isinstance(r.state("d/x"), File) and r.state("d/x").m == VT({"r0": 1})  # type: ignore[union-attr]
    assert not w.scan(0)  # nothing changed: no event
    w.disks[0]["d/x"] = ("1", 99)  # only the mtime changed: not a version
    assert not w.scan(0) and r.state("d/x").mtime_ns == 99  # type: ignore[union-attr]
    w.delete(0, "d/y")
    assert w.scan(0)
    assert r.state("d/y") == Absent(VT({"r0": 2}))
    w.write(0, "d/x", "1b")
    assert w.scan(0)
    x = r.state("d/x")
    assert isinstance(x, File) and x.m == VT({"r0": 3}) and x.c == VT({"r0": 1})
    w.delete(0, "d")
    assert w.scan(0)
    assert r.state("d") == Absent(VT({"r0": 4})) and r.state("d/x") == Absent(VT({"r0": 4}))
    assert r.state("d/y") == Absent(VT({"r0": 2}))  # keeps its own deletion time
    assert r.m("") == VT({"r0": 4})


# File rows -----------------------------------------------------------------------


def test_absent_absent_is_nothing() -> None:
    w = shared(2, {"a": "1"})
    w.delete(0, "a")
    w.delete(1, "a")
    assert w.sync(0, 1) == [] and w.sync(1, 0) == []
    n = w.reps[1].state("a")
    assert isinstance(n, Absent) and n.n == VT({"r0": 2, "r1": 1})  # both deletions joined
    # A later deletion that knew B's replaces it.
    w.write(0, "a", "again")
    assert w.scan(0)
    w.delete(0, "a")
    assert w.sync(0, 1) == []
    assert w.reps[1].state("a") == Absent(VT({"r0": 4}))


def test_absent_vs_file_a_knows_b_version_deletes() -> None:
    w = shared(2, {"a": "1", "b": "2"})
    w.delete(0, "a")
    assert w.sync(0, 1) == []
    assert "a" not in w.files(1) and w.reps[1].state("a") == Absent(VT({"r0": 2}))


def test_absent_vs_file_lineage_never_seen_keeps() -> None:
    w = World(2)
    w.write(0, "a", "old")
    w.scan(0)
    w.delete(0, "a")
    w.write(1, "a", "other")  # created on r1, independently of r0's deleted lineage
    assert w.sync(0, 1) == []
    assert w.files(1)["a"] == "other"
    assert w.reps[1].state("a").m == VT({"r1": 1})  # type: ignore[union-attr]  # kept as it was
    assert w.sync(1, 0) == [] and w.files(0)["a"] == "other"


def test_a_subtree_the_receiver_knows_is_skipped_whole() -> None:
    w = shared(2, {"d/x": "x", "d/e/z": "z"})
    w.write(1, "d/e/z", "z2")
    w.delete(1, "d/x")
    assert w.sync(0, 1) == []  # r1 knows all of r0's d: nothing moves
    assert w.files(1) == {"d/e/z": "z2"}


def test_delete_update_and_its_settlement_is_reported_once() -> None:
    # (b): a delete/update settled on B flows back to A: no second report.
    w = shared(2, {"a": "1"})
    w.delete(0, "a")
    w.write(1, "a", "2")
    assert w.sync(0, 1) == [("a", DELETE_UPDATE)]
    kept = w.reps[1].state("a")
    assert isinstance(kept, File) and kept.m == VT({"r1": 2})  # a new event of the settling replica
    assert w.sync(1, 0) == []  # A's version... B's version was made knowing A's deletion
    assert w.files(0)["a"] == "2"
    assert w.sync(0, 1) == [] and w.sync(1, 0) == []


def test_file_vs_absent_rows() -> None:
    w = shared(2, {"a": "1", "b": "1b"})
    # B knows A's version: nothing (B's deletion is newer).
    w.delete(1, "a")
    assert w.sync(0, 1) == [] and "a" not in w.files(1)
    # B never saw A's lineage: create.
    w.write(0, "c", "3")
    assert w.sync(0, 1) == [] and w.files(1)["c"] == "3"
    # Otherwise: update/delete, created as a new event of B.
    w.delete(1, "b")
    w.write(0, "b", "1b2")
    assert w.sync(0, 1) == [("b", UPDATE_DELETE)]
    b = w.reps[1].state("b")
    assert isinstance(b, File) and b.m == VT({"r1": w.reps[1].counter}) and w.files(1)["b"] == "1b2"
    # ... and B's settled version reaches A without a new conflict.
    assert w.sync(1, 0) == []
    # A new lineage at a path B deleted: created (the same lineage: below).
    w.delete(1, "c")
    assert w.sync(1, 0) == [] and "c" not in w.files(0)
    w.write(0, "c", "3 again")  # r0 re-creates c after learning r1's deletion: a new lineage
    assert w.sync(0, 1) == [] and w.files(1)["c"] == "3 again"


def test_file_vs_absent_made_knowing_deletion_same_lineage() -> None:
    # r1 deletes a; r2 edits a; r0 meets both (update/delete at r0), then
    # r0's settled version reaches r1, which deleted: made knowing r1's deletion.
    w = shared(3, {"a": "1"})
    w.delete(1, "a")
    w.write(2, "a", "2")
    assert w.sync(1, 0) == []
    assert w.sync(2, 0) == [("a", UPDATE_DELETE)]
    assert w.sync(0, 1) == []
    assert w.files(1)["a"] == "2"


def test_absent_vs_file_made_knowing_the_deletion_keeps() -> None:
    # r0 deletes a, r1 edits it, r2 settles the delete/update; r1 takes r2's
    # settled version, which was made knowing r0's deletion: r0 -> r1 keeps it.
    w = shared(3, {"a": "1"})
    w.delete(0, "a")
    w.write(1, "a", "2")
    assert w.sync(1, 2) == []
    assert w.sync(0, 2) == [("a", DELETE_UPDATE)]
    assert w.sync(2, 1) == []
    assert w.sync(0, 1) == [] and w.files(1)["a"] == "2"
    assert w.sync(1, 0) == [] and w.files(0)["a"] == "2"


def test_file_vs_file_rows() -> None:
    w = shared(2, {"a": "1", "b": "2", "c": "3"})
    # B knows A's version: nothing.
    w.write(1, "a", "1b")
    assert w.sync(0, 1) == [] and w.files(1)["a"] == "1b"
    # A knows B's version: take A's.
    assert w.sync(1, 0) == [] and w.files(0)["a"] == "1b"
    # Same content made independently: m joins, no conflict.
    w.write(0, "b", "same")
    w.write(1, "b", "same")
    assert w.sync(0, 1) == []
    b = w.reps[1].state("b")
    assert isinstance(b, File) and b.m == VT({"r0": 2, "r1": 2})
    assert w.sync(1, 0) == []
    # Concurrent updates: update/update; the later mtime stays, the other is a copy.
    w.write(0, "c", "A's", mtime_ns=100 * 10**9)
    w.write(1, "c", "B's", mtime_ns=200 * 10**9)
    assert w.sync(0, 1) == [("c", UPDATE_UPDATE)]
    assert w.files(1)["c"] == "B's" and w.files(1)[copy_of("c", "A's")] == "A's"
    e = VT({"r1": w.reps[1].counter})
    c_here = w.reps[1].state("c")
    copy = w.reps[1].state(copy_of("c", "A's"))
    assert isinstance(c_here, File) and c_here.m == e
    assert isinstance(copy, File) and copy.m == e and copy.c == e
    assert w.sync(1, 0) == []
    assert w.tree(0) == w.tree(1)


def test_winner_on_a_tie_is_the_larger_oid() -> None:
    w = World(2)
    w.write(0, "a", "one", mtime_ns=10**9)
    w.write(1, "a", "two", mtime_ns=10**9 + 5)  # the same 2-second tick
    assert w.sync(0, 1) == [("a", CREATE_CREATE)]
    win, lose = sorted(["one", "two"], key=oid, reverse=True)
    assert w.files(1)["a"] == win and w.files(1)[copy_of("a", lose)] == lose


def test_same_conflict_met_twice_converges_without_new_conflict() -> None:
    # (c): r1 and r2 meet the same update/update independently and end identical.
    w = shared(3, {"a": "1"})
    w.write(0, "a", "A")
    w.write(1, "a", "B")
    assert w.sync(0, 1) == [("a", UPDATE_UPDATE)]
    assert w.sync(1, 2) == []  # r2 takes r1's settled state (r2 knew nothing newer)
    w2 = shared(3, {"a": "1"})
    w2.write(0, "a", "A")
    w2.write(1, "a", "B")
    assert w2.sync(0, 2) == []  # r2 takes A
    assert w2.sync(1, 2) == [("a", UPDATE_UPDATE)]
    assert w2.sync(0, 1) == [("a", UPDATE_UPDATE)]
    assert w2.files(1) == w2.files(2)
    assert w2.sync(1, 2) == [] and w2.sync(2, 1) == []
    assert w2.tree(1) == w2.tree(2)
    # And the original author of either side learns it with no new conflict.
    assert w2.sync(2, 0) == [] and w2.sync(0, 1) == []
    assert w2.tree(0) == w2.tree(1)


def test_copy_name_taken_by_other_content_uses_16_hex() -> None:
    w = shared(2, {"a": "1"})
    w.write(0, "a", "A", mtime_ns=10**9)
    w.write(1, "a", "B", mtime_ns=5 * 10**9)
    w.write(1, copy_of("a", "A"), "squatter")
    assert w.sync(0, 1) == [("a", UPDATE_UPDATE)]
    longer = conflict_name("a", oid("A")[:16])
    assert w.files(1)[longer] == "A" and w.files(1)[copy_of("a", "A")] == "squatter"


# An update and a deletion meet a third replica ------------------------------------


def test_update_delete_settled_once_then_reaches_both_authors() -> None:
    # X edits d/i, Y deletes it, Z meets both: reported once, at Z.
    x, y, z = 0, 1, 2
    w = shared(3, {"d/i": "1", "d/j": "j"})
    w.write(x, "d/i", "2")
    w.delete(y, "d/i")
    assert w.sync(x, z) == []
    assert w.sync(y, z) == [("d/i", DELETE_UPDATE)]
    w.write(y, "d/k", "later, unrelated")  # Y keeps editing the same folder
    w.write(y, "d/j", "j2")
    assert w.sync(z, x) == []  # Z's settled version reaches X
    assert w.sync(x, y) == []  # X and Y meet directly: no conflict again
    assert w.sync(y, x) == []
    assert w.files(y)["d/i"] == "2" and w.tree(x) == w.tree(y)
    assert w.sync(y, z) == [] and w.sync(z, y) == []
    assert w.tree(x) == w.tree(y) == w.tree(z)


def test_update_delete_settled_reaches_deleter_first() -> None:
    x, y, z = 0, 1, 2
    w = shared(3, {"d/i": "1"})
    w.write(x, "d/i", "2")
    w.delete(y, "d/i")
    w.write(y, "d/other", "o")
    assert w.sync(y, z) == []
    assert w.sync(x, z) == [("d/i", UPDATE_DELETE)]
    assert w.sync(z, y) == []
    assert w.sync(y, x) == [] and w.sync(x, y) == []
    assert w.tree(x) == w.tree(y) == w.tree(z)


# Directories ------------------------------------------------------------------------


def test_deleted_directory_goes_when_emptied_and_stays_with_a_new_file() -> None:
    w = shared(3, {"d/x": "x", "d/y": "y"})
    w.delete(0, "d")
    assert w.sync(0, 1) == []
    assert "d" not in w.tree(1) and w.reps[1].state("d") == Absent(VT({"r0": 2}))
    # r2 added a file in d meanwhile: d stays with just that file, no conflict.
    w.write(2, "d/new", "n")
    assert w.sync(0, 2) == []
    assert w.tree(2) == {"d": None, "d/new": "n"}
    assert w.sync(2, 0) == [] and w.tree(0) == {"d": None, "d/new": "n"}


def test_deleted_directory_against_an_edit_inside_is_delete_update() -> None:
    w = shared(2, {"d/x": "x", "d/y": "y"})
    w.delete(0, "d")
    w.write(1, "d/x", "x2")
    assert w.sync(0, 1) == [("d/x", DELETE_UPDATE)]
    assert w.tree(1) == {"d": None, "d/x": "x2"}
    assert w.sync(1, 0) == []
    assert w.tree(0) == w.tree(1)


def test_directory_made_after_deletion_is_created_empty() -> None:
    w = shared(2, {"d/x": "x"})
    w.delete(1, "d")
    assert w.sync(1, 0) == [] and "d" not in w.tree(0)
    w.mkdir(0, "d")  # a new lineage, made knowing r1's deletion
    assert w.sync(0, 1) == [] and w.tree(1) == {"d": None}


def test_directory_deleted_concurrently_with_deletions_inside_stays_deleted() -> None:
    w = shared(2, {"d/x": "x", "d/y": "y"})
    w.delete(0, "d/x")
    w.delete(1, "d")
    assert w.sync(0, 1) == [] and w.tree(1) == {}
    n = w.reps[1].state("d/x")
    assert isinstance(n, Absent) and n.n == VT({"r0": 2, "r1": 1})
    assert w.sync(1, 0) == [] and w.tree(0) == {}
    assert w.sync(0, 1) == [] and w.sync(1, 0) == []


def test_directory_kept_knowing_the_deletion_is_not_removed() -> None:
    w = shared(2, {"d/x": "x"})
    w.delete(0, "d")
    assert w.sync(0, 1) == []
    w.mkdir(1, "d")  # r1 makes d again, knowing r0's deletion
    assert w.sync(1, 0) == [] and w.tree(0) == {"d": None}


def test_two_directories_join_their_own_times_only() -> None:
    w = shared(2, {"d/x": "x"})
    w.write(0, "d/y", "y")
    w.write(1, "d/z", "z")
    assert w.sync(0, 1) == []
    d = w.reps[1].state("d")
    assert isinstance(d, Dir) and d.m_self == VT({"r0": 1})
    assert w.sync(1, 0) == [] and w.tree(0) == w.tree(1)


# File against directory ---------------------------------------------------------------


def test_file_against_directory_conflict_keeps_the_directory() -> None:
    w = shared(2, {"a": "1"})
    w.write(0, "a", "2")
    w.delete(1, "a")
    w.write(1, "a/inner", "i")
    assert w.sync(0, 1) == [("a", FILE_DIR)]
    assert w.tree(1) == {"a": None, "a/inner": "i", copy_of("a", "2"): "2"}
    assert w.sync(1, 0) == []
    assert w.tree(0) == w.tree(1)


def test_file_known_to_the_directory_side_is_replaced_without_conflict() -> None:
    w = shared(2, {"a": "1"})
    w.delete(0, "a")
    w.write(0, "a/inner", "i")
    assert w.sync(0, 1) == []  # r1's file a is known to r0
    assert w.tree(1) == {"a": None, "a/inner": "i"}


def test_directory_against_unknown_file_moves_the_file_aside() -> None:
    w = World(2)
    w.write(0, "a/inner", "i")
    w.write(1, "a", "file")
    assert w.sync(0, 1) == [("a", FILE_DIR)]
    assert w.tree(1) == {"a": None, "a/inner": "i", copy_of("a", "file"): "file"}
    copy = w.reps[1].state(copy_of("a", "file"))
    assert isinstance(copy, File) and copy.c == VT({"r1": 2})
    assert w.sync(1, 0) == [] and w.tree(0) == w.tree(1)


def test_file_replacing_a_known_directory_takes_its_deletions() -> None:
    w = shared(2, {"a/x": "x", "a/y": "y"})
    w.delete(0, "a")
    w.write(0, "a", "now a file")
    assert w.sync(0, 1) == []
    assert w.tree(1) == {"a": "now a file"}
    assert w.reps[1].state("a/x") == Absent(VT({"r0": 2}))


# Partial syncs ----------------------------------------------------------------------------


def test_partial_sync_raises_only_its_subtree() -> None:
    w = shared(2, {"d/x": "x", "f/w": "w"})
    w.write(0, "d/x", "x2")
    w.write(0, "f/w", "w2")
    assert w.sync(0, 1, "d") == []
    assert w.files(1)["d/x"] == "x2" and w.files(1)["f/w"] == "w"
    assert w.reps[1].s("d").v.get("r0") == 2 and w.reps[1].s("f").v.get("r0") == 1
    w.write(1, "f/w", "w3")  # concurrent with r0's f/w
    assert w.sync(0, 1) == [("f/w", UPDATE_UPDATE)]


def test_partial_sync_into_a_missing_directory_makes_it() -> None:
    w = shared(2, {"a": "a"})
    w.write(0, "d/e/z", "z")
    assert w.sync(0, 1, "d/e") == []
    assert w.tree(1) == {"a": "a", "d": None, "d/e": None, "d/e/z": "z"}
    assert w.sync(0, 1) == [] and w.sync(1, 0) == []
    assert w.tree(0) == w.tree(1)
