"""Deletion notices are dropped once every replica knows the deletion.

Real drives of one vault and a real carrier under `tmp_path`. A drive keeps
the exact time of each deletion (docs/formats/index.md, "deleted") only as
long as some known replica may still need it: the tests check the notices
each index holds, and that the files on every drive, and the conflicts
reported, are what they would be with the notices kept.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from squirrel.plumbing.replica import Replica
from squirrel.porcelain.engine import SyncReport
from squirrel.porcelain.forget import forget
from squirrel.porcelain.init import init
from squirrel.porcelain.push import push
from squirrel.porcelain.visit import visit
from tests.helpers import HOUR, make_tree, tree, write


@pytest.fixture
def drives(tmp_path: Path) -> list[Path]:
    roots: list[Path] = []
    for name in ("A", "B", "C", "D"):
        root = tmp_path / name
        root.mkdir()
        init(str(root), name=name, join=str(roots[0]) if roots else None)
        roots.append(root)
    return roots


def notices(root: Path) -> set[str]:
    with Replica.open(str(root)) as rep:
        return {p.decode() for p, _ in rep.index.notices_under(b"")}


def carrier_notices(carrier: Path) -> set[str]:
    (vault,) = (carrier / "vaults").iterdir()
    return notices(vault)


def files(root: Path) -> dict[str, bytes]:
    return {p: data for p, data in tree(root).items() if not p.endswith("/")}


def reported(report: SyncReport) -> list[tuple[str, str]]:
    return sorted((c["path"], c["kind"]) for c in report.to_json()["conflicts"])


PHOTOS = {"2019/a.jpg": "a", "2019/b.jpg": "b", "2020/c.jpg": "c"}


def rounds(carrier: Path, *order: Path) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for d in order:
        seen += reported(visit(str(d), str(carrier)).delivered)
    return seen


def test_notices_go_once_every_drive_knows_the_deletion(drives: list[Path], tmp_path: Path) -> None:
    a, b, c, _ = drives
    carrier = tmp_path / "carrier"
    make_tree(a, PHOTOS)
    assert rounds(carrier, a, b, c, a, b, c) == []
    (a / "2019" / "a.jpg").unlink()
    (a / "2019" / "b.jpg").unlink()
    (a / "2019").rmdir()
    assert rounds(carrier, a, b) == []
    # C has not seen the deletion: everyone who has keeps its exact time.
    assert notices(a) == notices(b) == {"2019", "2019/a.jpg", "2019/b.jpg"}
    assert files(c) == {"2019/a.jpg": b"a", "2019/b.jpg": b"b", "2020/c.jpg": b"c"}
    assert rounds(carrier, c, a, b, c) == []
    for d in (a, b, c):
        assert files(d) == {"2020/c.jpg": b"c"}
        assert notices(d) == set()
    assert carrier_notices(carrier) == set()
    # The path is free again: a new file there travels like any other.
    make_tree(b, {"2019/a.jpg": "a new a"})
    assert rounds(carrier, b, a, c, b) == []
    for d in (a, b, c):
        assert files(d) == {"2019/a.jpg": b"a new a", "2020/c.jpg": b"c"}


def test_an_edit_concurrent_with_the_deletion_is_still_a_conflict(drives: list[Path], tmp_path: Path) -> None:
    a, b, c, _ = drives
    carrier = tmp_path / "carrier"
    make_tree(a, PHOTOS)
    assert rounds(carrier, a, b, c, a, b, c) == []
    (a / "2020" / "c.jpg").unlink()
    write(c / "2020" / "c.jpg", "c, retouched", seconds_ago=HOUR / 4)
    assert rounds(carrier, a, b, a, b) == []
    assert "2020/c.jpg" in notices(a), "C, which has not seen the deletion, keeps the notice alive"
    assert rounds(carrier, c) == [("2020/c.jpg", "delete/update")]
    assert rounds(carrier, a, b, c, a, b, c) == []
    for d in (a, b, c):
        assert files(d)["2020/c.jpg"] == b"c, retouched"
        assert notices(d) == set()


def test_a_drive_the_carrier_has_only_heard_of_keeps_the_notices(drives: list[Path], tmp_path: Path) -> None:
    a, b, c, d = drives
    carrier = tmp_path / "carrier"
    make_tree(a, PHOTOS)
    assert rounds(carrier, a, b, c, a, b, c) == []
    push(str(a), str(d))  # the carrier hears of D through A
    (a / "2020" / "c.jpg").unlink()
    assert rounds(carrier, a, b, c, a, b, c) == []
    assert "2020/c.jpg" in notices(a), "what D knows is not known"
    assert push(str(a), str(d)).conflicts == []
    assert "2020/c.jpg" not in files(d)
    assert rounds(carrier, d, a, b, c, d) == []
    for r in (a, b, c, d):
        assert files(r) == {"2019/a.jpg": b"a", "2019/b.jpg": b"b"}
        assert notices(r) == set()


def test_a_forgotten_drive_is_not_waited_for(drives: list[Path], tmp_path: Path) -> None:
    a, b, c, d = drives
    carrier = tmp_path / "carrier"
    make_tree(a, PHOTOS)
    assert rounds(carrier, a, b, c, d, a, b, c, d) == []
    forget(str(carrier), "D")
    (a / "2020" / "c.jpg").unlink()
    assert rounds(carrier, a, b, c, a, b, c) == []
    assert notices(a) == set()
    # D, back from the drawer, still holds the version the others deleted
    # while it was away: the carrier knows that version and lacks it, so it
    # goes from D too, without a conflict.
    assert rounds(carrier, d, a, b, c, d) == []
    for r in (a, b, c, d):
        assert files(r) == {"2019/a.jpg": b"a", "2019/b.jpg": b"b"}


def test_an_edit_on_a_forgotten_drive_is_kept(drives: list[Path], tmp_path: Path) -> None:
    a, b, c, d = drives
    carrier = tmp_path / "carrier"
    make_tree(a, PHOTOS)
    assert rounds(carrier, a, b, c, d, a, b, c, d) == []
    forget(str(carrier), "D")
    (a / "2020" / "c.jpg").unlink()
    write(d / "2020" / "c.jpg", "c, retouched on D", seconds_ago=HOUR / 4)
    assert rounds(carrier, a, b, c, a, b, c) == []
    assert notices(a) == set()
    # With the notice gone, D's edit is simply newer than anything the
    # others hold at that path: it is kept, and comes back to every drive
    # (the delete/update conflict is not reported, and no edit is lost).
    assert rounds(carrier, d, a, b, c, d) == []
    for r in (a, b, c, d):
        assert files(r)["2020/c.jpg"] == b"c, retouched on D"
