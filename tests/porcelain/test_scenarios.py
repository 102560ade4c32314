"""Sync scenarios between real replicas: push, reconcile, conflicts, resolve.

Every test builds its own replicas of one vault under `tmp_path` and checks
the files on every replica afterwards, the conflicts reported (kind, kept,
copy), and that syncing again reports nothing new.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from pathlib import Path

import blake3
import pytest

from squirrel.errors import WrongVault
from squirrel.plumbing import entry as entry_mod
from squirrel.plumbing import fsops
from squirrel.plumbing.execute import Executor
from squirrel.plumbing.plan import plan_sync
from squirrel.plumbing.replica import Replica
from squirrel.porcelain.conflicts import conflicts
from squirrel.porcelain.engine import ReplicaSource, SyncReport
from squirrel.porcelain.init import init
from squirrel.porcelain.push import push
from squirrel.porcelain.reconcile import reconcile
from squirrel.porcelain.resolve import resolve
from squirrel.porcelain.scan import scan
from tests.helpers import HOUR, make_tree, set_mtime, tree, write

COPY_RE = re.compile(r"\.sq-conflict-[0-9a-f]{8}")


def copy_name(stem: str, content: bytes, ext: str = "") -> str:
    """The conflict copy's name for a version with this content."""
    return f"{stem}.sq-conflict-{blake3.blake3(content).hexdigest()[:8]}{ext}"


def copies(root: Path) -> list[str]:
    return sorted(p for p in tree(root) if COPY_RE.search(p))


def trash_holds(root: Path, content: bytes) -> bool:
    return (root / ".squirrel" / "trash" / blake3.blake3(content).hexdigest()).read_bytes() == content


def conflict_summary(report: SyncReport) -> list[tuple[str, str, str | None]]:
    return [(c["kind"], c["kept"], c["copy"]) for c in report.to_json()["conflicts"]]


def changed(report: SyncReport) -> int:
    return report.created + report.updated + report.deleted + len(report.conflicts) + len(report.failed)


def assert_quiet(src: Path, dst: Path) -> None:
    """Syncing again finds nothing to do."""
    again = push(str(src), str(dst))
    assert changed(again) == 0, again


@pytest.fixture
def vault(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Three empty replicas A, B, C of one vault."""
    roots = []
    for name in ("A", "B", "C"):
        root = tmp_path / name
        root.mkdir()
        init(str(root), name=name, join=str(roots[0]) if roots else None)
        roots.append(root)
    return roots[0], roots[1], roots[2]


def in_sync(files: dict[str, bytes | str], *roots: Path) -> None:
    """Give every replica the same files, created on the first and pushed around."""
    first = roots[0]
    make_tree(first, files)
    for other in roots[1:]:
        rep = push(str(first), str(other))
        assert rep.conflicts == [] and rep.failed == []
    for r in roots:
        assert tree(r) == tree(first)


# The ten scenarios ------------------------------------------------------------------


def test_1_a_new_file_travels_through_an_intermediate(vault: tuple[Path, Path, Path]) -> None:
    a, b, c = vault
    make_tree(a, {"hello": "hi\n"})
    r1 = push(str(a), str(c))
    assert (r1.created, r1.conflicts) == (1, [])
    r2 = push(str(c), str(b))
    assert (r2.created, r2.conflicts) == (1, [])
    for r in (a, b, c):
        assert tree(r) == {"hello": b"hi\n"}
    assert_quiet(a, c)
    assert_quiet(c, b)
    assert_quiet(b, a)


def test_2_a_deletion_travels_through_an_intermediate(vault: tuple[Path, Path, Path]) -> None:
    a, b, c = vault
    in_sync({"hello": "hi\n", "keep": "k"}, a, b, c)
    (b / "hello").unlink()
    r1 = push(str(b), str(c))
    assert (r1.deleted, r1.conflicts) == (1, [])
    r2 = push(str(c), str(a))
    assert (r2.deleted, r2.conflicts) == (1, [])
    for r in (a, b, c):
        assert tree(r) == {"keep": b"k"}
    assert trash_holds(a, b"hi\n")
    assert trash_holds(c, b"hi\n")
    assert_quiet(c, a)
    assert_quiet(a, b)


def test_3_an_old_version_does_not_resurrect_a_deleted_file(vault: tuple[Path, Path, Path]) -> None:
    a, b, c = vault
    make_tree(a, {"foo": "v1"})
    push(str(a), str(b))
    (b / "foo").unlink()
    r1 = push(str(b), str(c))
    assert changed(r1) == 0  # C never had it: nothing to delete
    r2 = push(str(a), str(c))
    assert (r2.created, r2.conflicts) == (0, [])
    assert tree(c) == {}
    assert tree(b) == {}
    # And the deletion reaches A through C.
    r3 = push(str(c), str(a))
    assert (r3.deleted, r3.conflicts) == (1, [])
    assert tree(a) == {}


def test_4_an_unrelated_file_at_a_deleted_path_is_no_conflict(vault: tuple[Path, Path, Path]) -> None:
    a, b, c = vault
    make_tree(a, {"foo": "A's short-lived foo"})
    scan(str(a))
    (a / "foo").unlink()
    scan(str(a))
    make_tree(c, {"foo": "C's own foo"})
    r1 = push(str(c), str(a))
    assert (r1.created, r1.conflicts) == (1, [])
    assert tree(a) == {"foo": b"C's own foo"}
    r2 = push(str(a), str(b))
    assert (r2.created, r2.conflicts) == (1, [])
    assert tree(b) == {"foo": b"C's own foo"}
    assert_quiet(c, a)
    assert_quiet(a, c)
    assert_quiet(b, c)


def test_5_create_create_keeps_both_versions(vault: tuple[Path, Path, Path]) -> None:
    a, b, _ = vault
    make_tree(a, {"hello.txt": "from A"})
    make_tree(b, {"hello.txt": "from B"})
    set_mtime(a / "hello.txt", HOUR / 4)  # A's version is the later one
    set_mtime(b / "hello.txt", HOUR)
    rep = push(str(a), str(b))
    copy = copy_name("hello", b"from B", ".txt")
    assert conflict_summary(rep) == [("create/create", "hello.txt", copy)]
    assert tree(b) == {"hello.txt": b"from A", copy: b"from B"}
    assert_quiet(a, b)
    # A learns the copy from B, without a conflict of its own.
    back = push(str(b), str(a))
    assert back.conflicts == []
    assert tree(a) == tree(b)
    assert_quiet(b, a)
    assert_quiet(a, b)


def test_5b_two_replicas_meeting_the_same_conflict_end_identical(vault: tuple[Path, Path, Path]) -> None:
    a, b, c = vault
    make_tree(a, {"hello.txt": "from A"})
    make_tree(b, {"hello.txt": "from B"})
    set_mtime(a / "hello.txt", HOUR)
    set_mtime(b / "hello.txt", HOUR / 4)  # B's version is the later one
    push(str(a), str(c))
    on_c = push(str(b), str(c))  # C settles the conflict
    on_b = push(str(a), str(b))  # and so does B, independently
    copy = copy_name("hello", b"from A", ".txt")
    assert conflict_summary(on_c) == [("create/create", "hello.txt", copy)]
    assert conflict_summary(on_b) == [("create/create", "hello.txt", copy)]
    assert tree(b) == tree(c) == {"hello.txt": b"from B", copy: b"from A"}
    rep = reconcile(str(b), str(c))
    assert rep.conflicts == [] and rep.failed == []
    rep = reconcile(str(a), str(c))
    assert rep.conflicts == [] and rep.failed == []
    assert tree(a) == tree(b) == tree(c)
    assert_quiet(b, a)


def test_6_resolve_keep_copy_propagates_without_a_new_conflict(vault: tuple[Path, Path, Path]) -> None:
    a, b, _ = vault
    in_sync({"doc.txt": "v1"}, a, b)
    write(a / "doc.txt", "A's edit", seconds_ago=HOUR / 8)  # later: stays at the path
    write(b / "doc.txt", "B's edit", seconds_ago=HOUR / 4)
    rep = push(str(a), str(b))
    copy = copy_name("doc", b"B's edit", ".txt")
    assert conflict_summary(rep) == [("update/update", "doc.txt", copy)]
    assert tree(b) == {"doc.txt": b"A's edit", copy: b"B's edit"}
    listed = conflicts(str(b))
    assert [(c.path, c.kind, c.copy) for c in listed] == [(b"doc.txt", "update/update", copy.encode())]

    resolve(str(b), "doc.txt", "copy")
    assert tree(b) == {"doc.txt": b"B's edit"}
    assert conflicts(str(b)) == []
    assert trash_holds(b, b"A's edit")

    rep = reconcile(str(a), str(b))
    assert rep.conflicts == [] and rep.failed == []
    assert tree(a) == tree(b) == {"doc.txt": b"B's edit"}
    assert_quiet(a, b)
    assert_quiet(b, a)

    write(a / "doc.txt", "A again", seconds_ago=HOUR / 16)
    rep = push(str(a), str(b))
    assert rep.conflicts == [] and rep.updated == 1
    assert tree(b) == {"doc.txt": b"A again"}


@pytest.mark.parametrize("by", ["path", "copy name"])
def test_a_conflict_on_a_name_that_is_not_utf8_is_listed_and_resolved(vault: tuple[Path, Path, Path], by: str) -> None:
    """Old cameras and Windows tools leave Latin-1 names: the conflict copy's
    exact bytes are recorded, so `resolve` finds it by either name."""
    a, b, _ = vault
    name = b"caf\xe9"
    for root in (a, b):
        set_mtime_of = os.path.join(os.fsencode(root), name + b".jpg")
        with open(set_mtime_of, "wb") as f:
            f.write(b"A's edit" if root == a else b"B's edit")
        set_mtime(set_mtime_of, HOUR / 8 if root == a else HOUR / 4)  # A's is later: it stays
    rep = push(str(a), str(b))
    copy = name + b".sq-conflict-" + blake3.blake3(b"B's edit").hexdigest()[:8].encode() + b".jpg"
    assert [(c.path, c.kind, c.copy) for c in rep.conflicts] == [(name + b".jpg", "create/create", copy)]
    (listed,) = conflicts(str(b))
    assert (listed.path, listed.copy) == (name + b".jpg", copy)
    assert listed.to_json()["copy_b64"] == base64.b64encode(copy).decode()

    resolve(str(b), os.fsdecode(name + b".jpg" if by == "path" else copy), "copy")
    assert conflicts(str(b)) == []
    assert sorted(os.listdir(os.fsencode(b))) == [b".squirrel", name + b".jpg"]
    with open(os.path.join(os.fsencode(b), name + b".jpg"), "rb") as f:
        assert f.read() == b"B's edit"


def test_6b_resolve_keep_path_propagates_without_a_new_conflict(vault: tuple[Path, Path, Path]) -> None:
    a, b, c = vault
    in_sync({"doc.txt": "v1"}, a, b, c)
    write(a / "doc.txt", "A's edit", seconds_ago=HOUR / 8)
    write(b / "doc.txt", "B's edit", seconds_ago=HOUR / 4)
    rep = push(str(a), str(b))
    copy = copy_name("doc", b"B's edit", ".txt")
    assert conflict_summary(rep) == [("update/update", "doc.txt", copy)]
    resolve(str(b), "doc.txt", "path")
    assert tree(b) == {"doc.txt": b"A's edit"}
    assert trash_holds(b, b"B's edit")
    for other in (a, c):
        rep = reconcile(str(b), str(other))
        assert rep.conflicts == [] and rep.failed == []
    assert tree(a) == tree(b) == tree(c) == {"doc.txt": b"A's edit"}


def test_6c_resolve_meets_a_real_conflict_with_an_edit_made_meanwhile(vault: tuple[Path, Path, Path]) -> None:
    a, b, c = vault
    in_sync({"doc.txt": "v1"}, a, b, c)
    write(a / "doc.txt", "A's edit", seconds_ago=HOUR / 8)
    write(b / "doc.txt", "B's edit", seconds_ago=HOUR / 4)
    push(str(a), str(b))
    write(c / "doc.txt", "C's edit", seconds_ago=60)  # C knew neither: a real conflict
    resolve(str(b), "doc.txt", "copy")
    rep = push(str(b), str(c))
    copy = copy_name("doc", b"B's edit", ".txt")
    assert conflict_summary(rep) == [("update/update", "doc.txt", copy)]
    assert tree(c) == {"doc.txt": b"C's edit", copy: b"B's edit"}
    for x, y in ((c, b), (a, b), (a, c)):
        assert reconcile(str(x), str(y)).conflicts == []
    assert tree(a) == tree(b) == tree(c) == {"doc.txt": b"C's edit", copy: b"B's edit"}


@pytest.mark.parametrize("keep", ["path", "copy"])
def test_resolve_finds_the_conflict_by_its_copy_name(vault: tuple[Path, Path, Path], keep: str) -> None:
    a, b, _ = vault
    in_sync({"doc.txt": "v1"}, a, b)
    write(a / "doc.txt", "A's edit", seconds_ago=HOUR / 8)
    write(b / "doc.txt", "B's edit", seconds_ago=HOUR / 4)
    push(str(a), str(b))
    copy = copy_name("doc", b"B's edit", ".txt")
    report = resolve(str(b), copy, keep)
    assert report.path == b"doc.txt"
    assert tree(b) == {"doc.txt": b"A's edit" if keep == "path" else b"B's edit"}
    assert conflicts(str(b)) == []


def test_7_delete_update_keeps_the_update(vault: tuple[Path, Path, Path]) -> None:
    a, b, _ = vault
    in_sync({"notes.txt": "v1", "other": "o"}, a, b)
    (a / "notes.txt").unlink()
    write(b / "notes.txt", "B's edit")
    rep = reconcile(str(a), str(b))
    found = conflict_summary(rep)
    assert found and set(found) <= {("delete/update", "notes.txt", None), ("update/delete", "notes.txt", None)}
    assert found[0] == ("delete/update", "notes.txt", None)  # met first on B, which kept its edit
    assert tree(a) == tree(b) == {"notes.txt": b"B's edit", "other": b"o"}
    again = reconcile(str(a), str(b))
    assert changed(again) == 0


def test_7c_a_settled_delete_update_is_reported_once(vault: tuple[Path, Path, Path]) -> None:
    a, b, _ = vault
    in_sync({"notes.txt": "v1", "other": "o"}, a, b)
    (a / "notes.txt").unlink()
    write(b / "notes.txt", "B's edit")
    rep = reconcile(str(a), str(b))
    assert conflict_summary(rep) == [("delete/update", "notes.txt", None)]


def test_7b_update_delete_seen_from_the_other_side(vault: tuple[Path, Path, Path]) -> None:
    a, b, _ = vault
    in_sync({"notes.txt": "v1"}, a, b)
    write(a / "notes.txt", "A's edit")
    (b / "notes.txt").unlink()
    rep = push(str(a), str(b))
    assert conflict_summary(rep) == [("update/delete", "notes.txt", None)]
    assert tree(b) == {"notes.txt": b"A's edit"}
    rep = push(str(b), str(a))
    assert changed(rep) == 0
    assert tree(a) == {"notes.txt": b"A's edit"}


def deleted_tree_with_one_edit(a: Path, b: Path, c: Path) -> list[SyncReport]:
    """A deletes photos/ while C retouches one picture in it; then A -> B -> C -> B -> A."""
    files = {f"photos/2020/{m:02d}/img{i}.jpg": f"{m}-{i}" for m in range(1, 4) for i in range(3)}
    in_sync(files, a, b, c)
    shutil.rmtree(a / "photos")
    write(c / "photos/2020/02/img1.jpg", "C's retouch")
    # Deleting every file of a replica is what the mass-delete guard stops: say it is meant.
    first = push(str(a), str(b), allow_mass_delete=True)
    return [first, push(str(b), str(c)), push(str(c), str(b)), push(str(b), str(a))]


def test_8_a_deleted_tree_keeps_one_edited_file_without_a_cascade(vault: tuple[Path, Path, Path]) -> None:
    a, b, c = vault
    reports = deleted_tree_with_one_edit(a, b, c)
    found = [k for r in reports for k in conflict_summary(r)]
    # Only the edited file is in conflict: none of its directories, none of its siblings.
    assert found and {(kept, copy) for _, kept, copy in found} == {("photos/2020/02/img1.jpg", None)}
    assert found[0][0] == "delete/update"
    assert all(r.failed == [] for r in reports)
    expected = {
        "photos/": b"",
        "photos/2020/": b"",
        "photos/2020/02/": b"",
        "photos/2020/02/img1.jpg": b"C's retouch",
    }
    for r in (a, b, c):
        assert tree(r) == expected, r.name
    for src, dst in ((a, b), (b, c), (c, a), (a, c)):
        assert_quiet(src, dst)


def test_8b_a_deleted_tree_with_one_edit_reports_exactly_one_conflict(vault: tuple[Path, Path, Path]) -> None:
    reports = deleted_tree_with_one_edit(*vault)
    found = [k for r in reports for k in conflict_summary(r)]
    assert found == [("delete/update", "photos/2020/02/img1.jpg", None)]


def test_a_file_added_inside_a_directory_deleted_elsewhere_is_no_conflict(vault: tuple[Path, Path, Path]) -> None:
    a, b, c = vault
    in_sync({"d/f": "f", "d/e/g": "g"}, a, b, c)
    shutil.rmtree(a / "d")
    make_tree(b, {"d/new": "new", "d/e/new2": "n2"})
    rep = reconcile(str(a), str(b))
    assert rep.conflicts == [] and rep.failed == []
    expected = {"d/": b"", "d/e/": b"", "d/new": b"new", "d/e/new2": b"n2"}
    assert tree(a) == tree(b) == expected
    assert changed(reconcile(str(a), str(b))) == 0
    rep = push(str(b), str(c))
    assert rep.conflicts == [] and tree(c) == expected
    assert_quiet(a, c)


def test_a_folder_emptied_after_a_delete_update_reaches_the_replica_that_deleted_it(
    vault: tuple[Path, Path, Path],
) -> None:
    """A deletes album/; C keeps its edit of the one picture in it (delete/update),
    then moves that picture out, leaving album/ empty. The empty folder was
    made knowing A's deletion: A takes it, rather than claiming to know it
    without holding it (which left it on C alone for good)."""
    a, b, c = vault
    in_sync({"album/pic.jpg": "v1", "keep": "k"}, a, b, c)
    shutil.rmtree(a / "album")
    push(str(a), str(b))
    write(c / "album/pic.jpg", "C's edit")
    rep = push(str(b), str(c))
    assert conflict_summary(rep) == [("delete/update", "album/pic.jpg", None)]
    os.rename(c / "album/pic.jpg", c / "pic.jpg")
    expected = {"album/": b"", "pic.jpg": b"C's edit", "keep": b"k"}
    assert tree(c) == expected
    rep = push(str(c), str(a))
    assert rep.conflicts == [] and rep.failed == []
    assert tree(a) == expected
    push(str(c), str(b))
    for src, dst in ((a, b), (b, a), (a, c), (c, a), (b, c), (c, b)):
        assert_quiet(src, dst)
    assert tree(a) == tree(b) == tree(c) == expected


def test_a_conflict_settled_once_spreads_without_being_met_again(vault: tuple[Path, Path, Path]) -> None:
    a, b, c = vault
    in_sync({"d.txt": "v1"}, a, b, c)
    write(a / "d.txt", "A's edit", seconds_ago=100)
    write(b / "d.txt", "B's edit", seconds_ago=1000)
    assert push(str(a), str(c)).conflicts == []
    on_c = push(str(b), str(c))
    copy = copy_name("d", b"B's edit", ".txt")
    assert conflict_summary(on_c) == [("update/update", "d.txt", copy)]
    for src, dst in ((c, a), (c, b), (a, b), (b, a)):
        rep = push(str(src), str(dst))
        assert rep.conflicts == [] and rep.failed == []
    assert tree(a) == tree(b) == tree(c) == {"d.txt": b"A's edit", copy: b"B's edit"}


def test_9_a_file_replaced_by_a_directory_reaches_the_other_side(vault: tuple[Path, Path, Path]) -> None:
    a, b, _ = vault
    in_sync({"x": "file x", "y/inside": "in y"}, a, b)
    (a / "x").unlink()
    make_tree(a, {"x/child": "now a dir"})
    shutil.rmtree(b / "y")
    make_tree(b, {"y": "now a file"})
    rep = reconcile(str(a), str(b))
    assert rep.conflicts == [] and rep.failed == []
    assert tree(a) == tree(b) == {"x/": b"", "x/child": b"now a dir", "y": b"now a file"}
    assert trash_holds(b, b"file x")
    assert trash_holds(a, b"in y")
    assert changed(reconcile(str(a), str(b))) == 0


@pytest.mark.parametrize("dir_side", ["sender", "receiver"])
def test_9b_concurrent_file_and_directory_keep_the_directory(vault: tuple[Path, Path, Path], dir_side: str) -> None:
    a, b, _ = vault
    in_sync({"x": "file x"}, a, b)
    dir_rep, file_rep = (a, b) if dir_side == "sender" else (b, a)
    (dir_rep / "x").unlink()
    make_tree(dir_rep, {"x/child": "a dir now"})
    write(file_rep / "x", "file x, edited")
    rep = push(str(a), str(b))
    copy = copy_name("x", b"file x, edited")
    assert conflict_summary(rep) == [("file/dir", "x", copy)]
    expected = {"x/": b"", "x/child": b"a dir now", copy: b"file x, edited"}
    assert tree(b) == expected
    back = push(str(b), str(a))
    assert back.conflicts == [] and back.failed == []
    assert tree(a) == expected
    assert_quiet(a, b)
    assert_quiet(b, a)


def test_10_a_partial_push_then_a_full_one_collapse_the_sync_times(vault: tuple[Path, Path, Path]) -> None:
    a, b, _ = vault
    in_sync({"sub1/f": "1", "sub2/g": "2", "top": "t"}, a, b)
    write(a / "sub1/f", "1, edited")
    write(a / "sub2/g", "2, edited")
    rep = push(str(a), str(b), ["sub1"])
    assert (rep.updated, rep.conflicts) == (1, [])
    assert tree(b)["sub1/f"] == b"1, edited"
    assert tree(b)["sub2/g"] == b"2"  # not part of the partial push
    with Replica.open(str(b), write=False) as rb:
        assert [p for p, _ in rb.index.stored_syncs_under(b"")] == [b"sub1"]
    write(a / "sub2/g", "2, edited again")
    rep = push(str(a), str(b))
    assert (rep.updated, rep.conflicts) == (1, [])
    assert tree(a) == tree(b)
    with Replica.open(str(b), write=False) as rb:
        assert rb.index.stored_syncs_under(b"") == []
    assert_quiet(a, b)


# Safety ----------------------------------------------------------------------------


def test_a_push_between_vaults_is_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, {"f": "A"})
    make_tree(b, {"g": "B"})
    init(str(a))
    init(str(b))
    before = tree(b)
    with pytest.raises(WrongVault):
        push(str(a), str(b))
    with pytest.raises(WrongVault):
        reconcile(str(a), str(b))
    assert tree(b) == before and tree(a) == {"f": b"A"}
    with Replica.open(str(b), write=False) as rb:
        assert set(rb.names().values()) == {"b"}


def test_an_unscanned_edit_on_the_receiver_is_never_overwritten(vault: tuple[Path, Path, Path]) -> None:
    a, b, _ = vault
    in_sync({"f.txt": "v1", "g.txt": "v1"}, a, b)
    write(a / "f.txt", "A's edit", seconds_ago=HOUR / 8)  # later: wins the path
    write(a / "g.txt", "A's edit", seconds_ago=HOUR)
    write(b / "f.txt", "B's unscanned edit", seconds_ago=HOUR / 4)
    write(b / "g.txt", "B's unscanned edit", seconds_ago=HOUR / 8)  # later: wins the path
    rep = push(str(a), str(b))
    f_copy = copy_name("f", b"B's unscanned edit", ".txt")
    g_copy = copy_name("g", b"A's edit", ".txt")
    assert sorted(conflict_summary(rep)) == [
        ("update/update", "f.txt", f_copy),
        ("update/update", "g.txt", g_copy),
    ]
    assert tree(b) == {
        "f.txt": b"A's edit",
        f_copy: b"B's unscanned edit",
        "g.txt": b"B's unscanned edit",
        g_copy: b"A's edit",
    }


def test_identical_files_created_independently_are_not_a_conflict(vault: tuple[Path, Path, Path]) -> None:
    a, b, c = vault
    make_tree(a, {"same.jpg": "pixels", "d/also": "x"})
    make_tree(b, {"same.jpg": "pixels", "d/also": "x"})
    rep = reconcile(str(a), str(b))
    assert rep.conflicts == [] and rep.created == 0 and rep.failed == []
    assert tree(a) == tree(b)
    assert copies(a) == copies(b) == []
    rep = push(str(b), str(c))
    assert rep.created == 3 and rep.conflicts == []
    assert changed(reconcile(str(a), str(c))) == 0


def test_joining_with_files_already_there_reconciles_by_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, {"one": "1", "two": "2"})
    make_tree(b, {"one": "1", "three": "3"})
    init(str(a))
    init(str(b), join=str(a))
    rep = reconcile(str(a), str(b))
    assert rep.conflicts == [] and rep.created == 2
    assert tree(a) == tree(b) == {"one": b"1", "two": b"2", "three": b"3"}


def test_a_partial_push_below_a_folder_the_receiver_has_as_a_file_settles_that_first(
    vault: tuple[Path, Path, Path],
) -> None:
    """B has a file `d`; A has a folder `d` holding `d/e/z`. Pushing only
    `d/e` must not write through B's file: the sync starts at `d`, where the
    folder keeps the path and B's file becomes a conflict copy."""
    a, b, _ = vault
    make_tree(b, {"d": "B's file named d"})
    make_tree(a, {"d/e/z": "z"})
    rep = push(str(a), str(b), [str(a / "d/e")])
    assert rep.failed == []
    assert [(c.kind, c.kept) for c in rep.conflicts] == [("file/dir", b"d")]
    (copy,) = copies(b)
    assert tree(b) == {"d/": b"", "d/e/": b"", "d/e/z": b"z", copy: b"B's file named d"}
    push(str(b), str(a))
    assert tree(a) == tree(b)
    assert_quiet(a, b)


def test_moving_a_big_folder_renames_locally(vault: tuple[Path, Path, Path]) -> None:
    a, b, _ = vault
    mib = 1 << 20
    files = {f"big/clip{i:02d}.mov": os.urandom(mib) for i in range(20)}
    in_sync({**files, "small": "s"}, a, b)
    (a / "big").rename(a / "archive")
    rep = push(str(a), str(b))
    assert rep.bytes_copied == 0
    assert rep.moved > 0
    assert rep.conflicts == [] and rep.failed == []
    assert tree(b) == tree(a)
    assert sorted(tree(b)) == sorted(["archive/", "small"] + [p.replace("big/", "archive/") for p in files])
    assert_quiet(a, b)


def test_moving_hundreds_of_files_with_one_content_renames_each_of_them(vault: tuple[Path, Path, Path]) -> None:
    """Empty files and copies of one picture, moved: every one is renamed
    locally (across several intent-log batches), none copied or lost."""
    a, b, _ = vault
    files = {f"old/empty{i:03d}": "" for i in range(150)} | {f"old/same{i:03d}.jpg": "one picture" for i in range(150)}
    in_sync(files, a, b)
    (a / "old").rename(a / "new")
    rep = push(str(a), str(b))
    assert rep.conflicts == [] and rep.failed == []
    assert rep.moved == 300 and rep.bytes_copied == 0
    assert tree(b) == tree(a)
    assert_quiet(a, b)


def test_a_move_in_the_next_batch_copies_no_bytes_while_new_files_are_fetched_ahead(
    vault: tuple[Path, Path, Path],
) -> None:
    """The sender's content is fetched ahead into the intent log's next
    batch; a file moved in that batch is still renamed locally, never
    fetched."""
    a, b, _ = vault
    photo = os.urandom(1 << 16)
    in_sync({"aa/photo.jpg": photo}, a, b)
    new = {f"new/{i:04d}.jpg": f"new picture {i}".encode() for i in range(1500)}
    make_tree(a, new)
    os.mkdir(a / "zz")
    (a / "aa/photo.jpg").rename(a / "zz/photo.jpg")
    rep = push(str(a), str(b))
    assert rep.conflicts == [] and rep.failed == []
    assert (rep.created, rep.moved) == (1500 + 1 + 2, 1)  # the new files, the moved one, two folders
    assert rep.bytes_copied == sum(len(v) for v in new.values())
    assert tree(b) == tree(a)
    assert not os.listdir(b / ".squirrel" / "tmp")


def test_a_rename_inside_a_folder_copies_no_bytes(vault: tuple[Path, Path, Path]) -> None:
    a, b, _ = vault
    in_sync({"d/old.jpg": os.urandom(1 << 16)}, a, b)
    (a / "d/old.jpg").rename(a / "d/new.jpg")
    rep = push(str(a), str(b))
    assert (rep.bytes_copied, rep.moved) == (0, 1)
    assert tree(b) == tree(a)


def test_a_duplicate_is_copied_from_the_receivers_own_file(vault: tuple[Path, Path, Path]) -> None:
    a, b, _ = vault
    in_sync({"x/f.bin": os.urandom(1 << 20)}, a, b)
    shutil.copy2(a / "x/f.bin", a / "x/dup.bin")
    rep = push(str(a), str(b))
    assert (rep.created, rep.bytes_copied) == (1, 0)
    assert tree(b) == tree(a)


def test_content_back_from_the_trash_is_not_carried_again(vault: tuple[Path, Path, Path]) -> None:
    a, b, _ = vault
    content = os.urandom(1 << 20)
    in_sync({"x/f.bin": content}, a, b)
    (a / "x/f.bin").unlink()
    assert push(str(a), str(b)).deleted == 1
    assert trash_holds(b, content)
    make_tree(a, {"y/back.bin": content})
    rep = push(str(a), str(b))
    assert rep.bytes_copied == 0 and rep.conflicts == []
    assert tree(b) == tree(a)


def test_deletions_propagate_a_to_b_to_c(vault: tuple[Path, Path, Path]) -> None:
    a, b, c = vault
    in_sync({"d/e/f": "f", "d/g": "g", "h": "h", "keep": "k"}, a, b, c)
    shutil.rmtree(a / "d")
    (a / "h").unlink()
    r1 = push(str(a), str(b))
    assert r1.conflicts == [] and r1.deleted >= 3
    r2 = push(str(b), str(c))
    assert r2.conflicts == [] and r2.deleted >= 3
    for r in (a, b, c):
        assert tree(r) == {"keep": b"k"}
    assert_quiet(c, a)


def test_a_few_changes_in_a_big_tree_read_few_index_records(tmp_path: Path) -> None:
    """The planner skips every subtree the receiver knows: its cost follows
    the changes, not the 3,000 files."""
    a, b = tmp_path / "a", tmp_path / "b"
    files = {
        f"album{d:02d}/set{s}/img{i:02d}.jpg": f"{d}/{s}/{i}" for d in range(20) for s in range(10) for i in range(15)
    }
    assert len(files) == 3000
    make_tree(a, files)
    shutil.copytree(a, b, copy_function=shutil.copy2)
    init(str(a), name="a")
    init(str(b), name="b", join=str(a))
    assert reconcile(str(a), str(b)).conflicts == []
    for rel in ("album03/set1/img04.jpg", "album03/set7/img00.jpg", "album11/set2/img14.jpg"):
        write(a / rel, "edited " + rel)
    scan(str(a))
    with Replica.open(str(a)) as ra, Replica.open(str(b)) as rb:
        before = entry_mod.records_read
        plan = plan_sync(ra.index, rb.index)
        read = entry_mod.records_read - before
    assert plan.count()["updated"] == 3
    # Only the directories on the changed paths are listed, on both sides:
    # the root's 20 albums, the 10 sets of two albums, three sets of 15 files.
    listed = 2 * (20 + 10 + 10 + 3 * 15)
    assert read <= listed + 10, read
    assert read < len(files) // 15
    rep = push(str(a), str(b))
    assert rep.updated == 3 and tree(a) == tree(b)


def test_an_edit_between_planning_and_writing_is_not_overwritten(vault: tuple[Path, Path, Path]) -> None:
    a, b, _ = vault
    in_sync({"f.txt": "v1", "g.txt": "v1"}, a, b)
    write(a / "f.txt", "A's edit")
    write(a / "g.txt", "A's edit")
    scan(str(a))
    scan(str(b))
    with Replica.open(str(a)) as ra, Replica.open(str(b)) as rb:
        plan = plan_sync(ra.index, rb.index)
        write(b / "f.txt", "B's late edit", seconds_ago=10)
        result = Executor(rb, plan, ReplicaSource(ra.root)).run()
        rb.index.commit()
    assert [f[0] for f in result.failed] == [b"f.txt"]
    assert b"f.txt" in result.failed_paths
    assert tree(b) == {"f.txt": b"B's late edit", "g.txt": b"A's edit"}
    # The next push sees B's edit as a version of its own: both are kept.
    rep = push(str(a), str(b))
    assert [c.kind for c in rep.conflicts] == ["update/update"]
    assert set(tree(b).values()) == {b"A's edit", b"B's late edit"}


def test_a_failed_path_is_retried_by_the_next_push(vault: tuple[Path, Path, Path]) -> None:
    a, b, _ = vault
    in_sync({"d/f.txt": "v1"}, a, b)
    write(a / "d/f.txt", "A's edit")
    scan(str(a))
    with Replica.open(str(a)) as ra, Replica.open(str(b)) as rb:
        plan = plan_sync(ra.index, rb.index)
        os.utime(b / "d/f.txt", ns=(1, 1))  # a touch, not a new version
        result = Executor(rb, plan, ReplicaSource(ra.root)).run()
        rb.index.commit()
    assert [f[0] for f in result.failed] == [b"d/f.txt"]
    rep = push(str(a), str(b))
    assert rep.updated == 1 and rep.conflicts == [] and rep.failed == []
    assert tree(b) == {"d/": b"", "d/f.txt": b"A's edit"}


def test_a_case_collision_is_refused_not_overwritten(
    vault: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a case-folding drive `img.jpg` would land on `IMG.JPG`; the
    executor must refuse it. ext4 folds nothing, so the drive's answer to
    the probe is forced."""
    a, b, _ = vault
    make_tree(a, {"img.jpg": "A's picture"})
    make_tree(b, {"IMG.JPG": "B's picture"})
    monkeypatch.setattr(fsops, "is_case_insensitive", lambda directory: True)
    rep = push(str(a), str(b))
    assert [os.fsdecode(p) for p, *_ in rep.failed] == ["img.jpg"]
    assert tree(b) == {"IMG.JPG": b"B's picture"}


@pytest.mark.parametrize("on_b", [{}, {"Dir/own.jpg": "B's own"}], ids=["made-in-the-same-sync", "already-there"])
def test_a_folder_named_like_another_is_refused_in_one_line_and_nothing_goes_into_the_other(
    vault: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch, on_b: dict[str, bytes | str]
) -> None:
    """On a case-folding drive `dir/` is `Dir/`: its files would go into
    the other folder (the sender's same-named file over the other's). The
    folder is reported once; its files are not written, and stay unsynced."""
    a, b, _ = vault
    make_tree(a, {"Dir/x.jpg": "in Dir", "dir/x.jpg": "in dir", "dir/sub/y.jpg": "in dir/sub"})
    make_tree(b, on_b)
    expected = tree(a) if not on_b else tree(b)
    if on_b:
        scan(str(b))
        expected |= {"Dir/x.jpg": b"in Dir"}
    else:
        del expected["dir/"], expected["dir/x.jpg"], expected["dir/sub/"], expected["dir/sub/y.jpg"]
    monkeypatch.setattr(fsops, "is_case_insensitive", lambda directory: True)
    for _ in range(2):
        rep = push(str(a), str(b))
        assert [(os.fsdecode(p), why) for p, why in rep.failed] == [
            ("dir", "dir collides with Dir on this case-insensitive drive; neither was overwritten")
        ]
        assert tree(b) == expected
