"""Updates on a drive without hard links (exFAT, FAT).

Where it can, sq replaces a file by hard-linking the old version into
`.squirrel/trash/` and renaming the new one over it. Where the file system
refuses the link, the old version is moved to the trash first and the new
one renamed in after; if that rename fails, the old version goes back to its
path (docs/safety.md, "Writing files safely"). These tests take that branch
on the tests' own file system, through the `no_hard_links` fixture, with real
replicas and real pushes; tests/e2e/test_exfat.py runs it on real exFAT
where it can be mounted, and tests/e2e/test_crash.py kills it anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import blake3
import pytest

from squirrel.plumbing import paths
from squirrel.plumbing.replica import Replica
from squirrel.porcelain.init import init
from squirrel.porcelain.push import push
from squirrel.porcelain.resolve import resolve
from squirrel.porcelain.verify import verify
from tests.fault_tools import fresh_copy, leftovers, run_forked
from tests.helpers import NoHardLinks, make_tree, tree, write

OLD, NEW = b"the old version\n", b"the new version\n"


def oid(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


def synced_pair(tmp: Path, files: dict[str, bytes | str]) -> tuple[Path, Path]:
    """Replica A holding `files`, and B joined and pushed to."""
    a, b = tmp / "A", tmp / "B"
    make_tree(a, files)
    b.mkdir()
    init(str(a), name="A")
    init(str(b), name="B", join=str(a))
    report = push(str(a), str(b))
    assert report.failed == [] and tree(b) == tree(a)
    return a, b


def trash_record(root: Path, data: bytes) -> tuple[object, object, object] | None:
    """The path, size and cause the trash records for this content."""
    with Replica.open(str(root), write=False) as rep:
        items = rep.index.trash_items_of(oid(data))
    assert len(items) <= 1, items
    return None if not items else (paths.display(items[0].path), items[0].size, items[0].reason.cause)


def trashed(root: Path) -> dict[str, bytes]:
    """The trash's files, by name (the hex object id of their content)."""
    trash = root / ".squirrel" / "trash"
    return {p.name: p.read_bytes() for p in trash.iterdir()}


def edit(a: Path) -> None:
    write(a / "x.txt", NEW)


def move_over(a: Path) -> None:
    os.replace(a / "y.txt", a / "x.txt")  # y.txt (holding NEW) takes x.txt's place


@pytest.mark.parametrize("change", [edit, move_over], ids=["edited", "moved-over"])
def test_an_update_lands_and_the_old_version_is_kept_in_the_trash(
    tmp_path: Path, no_hard_links: NoHardLinks, change: Callable[[Path], None]
) -> None:
    a, b = synced_pair(tmp_path, {"x.txt": OLD, "y.txt": NEW, "keep.txt": "k"})
    change(a)
    report = push(str(a), str(b))
    assert report.failed == [] and report.conflicts == []
    assert no_hard_links.refused, "the file system was never asked for a hard link"
    assert tree(b) == tree(a)
    assert (b / "x.txt").read_bytes() == NEW
    assert trashed(b) == {oid(OLD).hex(): OLD}
    assert trash_record(b, OLD) == ("x.txt", len(OLD), "replaced")
    assert leftovers(b) == []
    assert verify(str(b)).ok
    assert push(str(a), str(b)).updated == 0, "the next push finds nothing left to do"


def test_resolving_a_conflict_keeps_the_version_it_replaces_in_the_trash(
    tmp_path: Path, no_hard_links: NoHardLinks
) -> None:
    a, b = synced_pair(tmp_path, {"x.txt": "base\n"})
    write(b / "x.txt", "B's edit\n", seconds_ago=600)
    write(a / "x.txt", "A's later edit\n", seconds_ago=60)
    (conflict,) = push(str(a), str(b)).conflicts
    assert (conflict.kind, conflict.kept) == ("update/update", b"x.txt") and conflict.copy
    assert not no_hard_links.refused, "meeting the conflict replaced nothing"
    resolve(str(b), "x.txt", keep="copy")
    assert no_hard_links.refused, "the file system was never asked for a hard link"
    assert tree(b) == {"x.txt": b"B's edit\n"}, "B's version is back at the path, the copy gone"
    assert trashed(b)[oid(b"A's later edit\n").hex()] == b"A's later edit\n"
    assert trash_record(b, b"A's later edit\n") == ("x.txt", len(b"A's later edit\n"), "resolved")
    assert verify(str(b)).ok and leftovers(b) == []


def test_when_the_new_version_cannot_be_renamed_in_the_old_one_is_put_back(
    tmp_path: Path, no_hard_links: NoHardLinks
) -> None:
    a, b = synced_pair(tmp_path, {"x.txt": OLD, "keep.txt": "k"})
    write(a / "x.txt", NEW)
    # The rename that puts the new version in place is the push's last.
    traced = run_forked(
        ["push", fresh_copy(a, tmp_path / "A-traced"), fresh_copy(b, tmp_path / "B-traced")], trace=True
    )
    assert traced.code == 0, traced.err
    install = traced.ops.count("rename")
    tried = len(no_hard_links.refused)
    assert tried == 1, "the traced push did not take the branch for drives without hard links"

    failed = run_forked(["push", a, b], f"rename:{install}:eio")
    assert failed.code == 18, failed.err
    assert len(no_hard_links.refused) == tried + 1
    assert tree(b) == {"x.txt": OLD, "keep.txt": b"k"}, "the old version is back at its path"
    assert trashed(b) == {}, "and not left in the trash as well"
    assert trash_record(b, OLD) is None, "nor recorded there"
    assert leftovers(b) == [] and verify(str(b)).ok

    again = run_forked(["push", a, b])
    assert again.code == 0, again.err
    assert tree(b) == {"x.txt": NEW, "keep.txt": b"k"}
    assert trashed(b) == {oid(OLD).hex(): OLD}
