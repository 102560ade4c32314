"""Restored and cloned drives are refused until they get a new identity."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from squirrel.errors import IdentityConflict
from squirrel.plumbing.replica import read_identity
from squirrel.porcelain.init import init
from squirrel.porcelain.push import push
from squirrel.porcelain.reidentify import reidentify
from squirrel.porcelain.visit import visit
from tests.helpers import make_tree, tree, write


def pair(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, {"x.jpg": "x1", "y.jpg": "y1"})
    b.mkdir()
    init(str(a), name="a")
    init(str(b), name="b", join=str(a))
    push(str(a), str(b))
    return a, b


def test_a_replica_restored_from_an_old_backup_is_refused_then_reidentified(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    backup = tmp_path / "b-backup"
    shutil.copytree(b, backup)
    write(b / "x.jpg", "x2 made on b")
    push(str(b), str(a))  # a now knows b's newer event
    shutil.rmtree(b)
    shutil.copytree(backup, b)  # b's index goes back in time
    write(b / "new.jpg", "made after the restore")
    with pytest.raises(IdentityConflict, match="sq reidentify"):
        push(str(b), str(a))
    assert tree(a, folders=False) == {"x.jpg": b"x2 made on b", "y.jpg": b"y1"}  # nothing changed on a
    old_id = read_identity(str(b)).replica
    new = reidentify(str(b)).new
    assert new.replica != old_id and new.vault == read_identity(str(a)).vault
    push(str(b), str(a))
    push(str(a), str(b))
    assert tree(a, folders=False) == tree(b, folders=False)
    assert tree(a, folders=False)["new.jpg"] == b"made after the restore"
    assert tree(a, folders=False)["x.jpg"] == b"x2 made on b"  # the newer version, not the backup's


def test_a_receiver_that_is_behind_is_refused_too(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    backup = tmp_path / "a-backup"
    shutil.copytree(a, backup)
    write(a / "y.jpg", "y2")
    push(str(a), str(b))
    shutil.rmtree(a)
    shutil.copytree(backup, a)
    with pytest.raises(IdentityConflict):
        push(str(b), str(a))


def test_a_cloned_drive_is_refused_by_the_carrier(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    carrier = str(tmp_path / "carrier")
    visit(str(a), carrier, max_size=1 << 30)
    clone = tmp_path / "a-clone"
    shutil.copytree(a, clone)
    write(a / "x.jpg", "x3")
    visit(str(a), carrier)  # the original moves on and gets a new mark
    write(clone / "z.jpg", "made on the clone")
    with pytest.raises(IdentityConflict, match="clone"):
        visit(str(clone), carrier)
    reidentify(str(clone), name="a-clone")
    rep = visit(str(clone), carrier)
    assert rep.delivered.failed == []
    for drive in (a, b, clone):
        visit(str(drive), carrier)
    for drive in (a, b, clone):
        visit(str(drive), carrier)
    assert tree(a, folders=False) == tree(b, folders=False) == tree(clone, folders=False)
    assert tree(a, folders=False)["z.jpg"] == b"made on the clone" and tree(a, folders=False)["x.jpg"] == b"x3"


def test_a_drive_without_the_carriers_mark_is_refused(tmp_path: Path) -> None:
    a, _ = pair(tmp_path)
    carrier = str(tmp_path / "carrier")
    visit(str(a), carrier, max_size=1 << 30)
    marks = list((a / ".squirrel").glob("carrier-*"))
    assert len(marks) == 1
    marks[0].unlink()  # a copy of the drive that lost its .squirrel/ details
    with pytest.raises(IdentityConflict):
        visit(str(a), carrier)
