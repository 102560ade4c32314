"""A sync larger than one piece is made of pieces, and reaches what one
sync reaches (squirrel/plumbing/pieces.py).

`pieces.PIECE` is set to a few actions, so that trees of a few dozen files
are synced folder by folder; each test compares with the same sync made in
one piece on a byte-for-byte copy of the receiver, or checks what the user
sees: files, reports, refusals.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from squirrel.errors import MassDelete
from squirrel.plumbing import execute, pieces
from squirrel.plumbing.replica import Replica
from squirrel.porcelain import engine
from squirrel.porcelain.apply import apply
from squirrel.porcelain.engine import SyncReport
from squirrel.porcelain.init import init
from squirrel.porcelain.pack import pack
from squirrel.porcelain.push import push
from squirrel.porcelain.visit import visit
from tests.bundle_tools import copy_replica
from tests.helpers import HOUR, make_tree, tree, write

LIBRARY = {
    f"{year}/{month:02}/IMG_{n}.jpg": f"photo {year}-{month}-{n}"
    for year in (2019, 2020)
    for month in (1, 2, 3)
    for n in range(4)
}
LIBRARY.update({"index.txt": "the library", "2020/notes.txt": "notes"})


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Pieces of three actions; returns the folders split so far."""
    monkeypatch.setattr(pieces, "PIECE", 3)
    split: list[bytes] = []
    real = pieces._split

    def spy(src, dst, top):  # type: ignore[no-untyped-def]
        split.append(top)
        return real(src, dst, top)

    monkeypatch.setattr(pieces, "_split", spy)
    return split


def replicas(tmp: Path, *names: str) -> list[Path]:
    roots: list[Path] = []
    for name in names:
        root = tmp / name
        root.mkdir()
        init(str(root), name=name, join=str(roots[0]) if roots else None)
        roots.append(root)
    return roots


def counts(r: SyncReport) -> dict[str, object]:
    j = r.to_json()
    return {k: j[k] for k in ("created", "updated", "deleted", "skipped", "conflicts", "failed")}


def in_one_piece(monkeypatch: pytest.MonkeyPatch, fn, *args, **kw):  # type: ignore[no-untyped-def]
    with monkeypatch.context() as m:
        m.setattr(pieces, "PIECE", 1_000_000)
        return fn(*args, **kw)


def first_push_in_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first push of the library into a replica with two files of its
    own (one a create/create conflict), checked against the same push made
    in one piece, and then with nothing left to do either way."""
    a, b = replicas(tmp_path, "A", "B")
    make_tree(a, LIBRARY)
    make_tree(b, {"2019/01/IMG_0.jpg": "B's own photo", "2021/x.jpg": "only on B"})
    twin = copy_replica(b, tmp_path / "B-twin")
    whole = in_one_piece(monkeypatch, push, str(a), str(twin))
    split = push(str(a), str(b))
    assert tree(b) == tree(twin)
    assert counts(split) == counts(whole)
    assert [(c["kind"], c["path"]) for c in split.to_json()["conflicts"]] == [("create/create", "2019/01/IMG_0.jpg")]
    # Nothing is left to do, in either direction.
    again = push(str(a), str(b))
    assert counts(again)["created"] == 0 and again.conflicts == []
    assert push(str(b), str(a)).conflicts == []
    assert tree(a) == tree(b)


def test_a_first_push_in_pieces_is_the_push_in_one_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_pieces: list[bytes]
) -> None:
    first_push_in_pieces(tmp_path, monkeypatch)
    assert small_pieces, "the sync was made of pieces"


def test_later_changes_in_pieces_are_the_changes_in_one_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_pieces: list[bytes]
) -> None:
    a, b = replicas(tmp_path, "A", "B")
    make_tree(a, LIBRARY)
    push(str(a), str(b))
    for n in range(4):
        (a / "2019" / "02" / f"IMG_{n}.jpg").unlink()
        write(a / "2020" / "03" / f"IMG_{n}.jpg", f"retouched {n}")
        write(b / "2020" / "01" / f"IMG_{n}.jpg", f"B's retouch {n}", seconds_ago=HOUR / 4)
    (a / "2019" / "02").rmdir()
    (a / "2019" / "01").rename(a / "2019" / "January")
    twin = copy_replica(b, tmp_path / "B-twin")
    whole = in_one_piece(monkeypatch, push, str(a), str(twin))
    split = push(str(a), str(b))
    assert small_pieces, "the sync was made of pieces"
    assert tree(b) == tree(twin)
    assert counts(split) == counts(whole)
    assert "2019/02/" not in tree(b) and "2019/January/IMG_0.jpg" in tree(b)


def test_a_dry_run_in_pieces_says_what_the_sync_does(tmp_path: Path, small_pieces: list[bytes]) -> None:
    a, b = replicas(tmp_path, "A", "B")
    make_tree(a, LIBRARY)
    before = tree(b)
    dry = push(str(a), str(b), dry_run=True)
    assert tree(b) == before
    done = push(str(a), str(b))
    assert counts(dry) == counts(done)


def test_a_mass_delete_is_refused_before_any_piece_runs(tmp_path: Path, small_pieces: list[bytes]) -> None:
    a, b = replicas(tmp_path, "A", "B")
    carrier = str(tmp_path / "carrier")
    many = {f"{folder}/{n}.jpg": f"{folder} {n}" for folder in "abcdefgh" for n in range(20)}
    make_tree(a, many)
    for d in (a, b, a, b):
        visit(str(d), carrier)
    before = tree(b)
    for folder in "abcdef":  # 120 of 160 files, in six folders: six pieces
        for n in range(20):
            (a / folder / f"{n}.jpg").unlink()
    visit(str(a), carrier, allow_mass_delete=True)  # on A, the user said it is what they meant
    with pytest.raises(MassDelete):
        visit(str(b), carrier)
    assert tree(b) == before
    visit(str(b), carrier, allow_mass_delete=True)
    assert tree(b) == tree(a)


def test_a_piece_that_does_not_finish_is_reported_once_and_finished_later(
    tmp_path: Path, small_pieces: list[bytes]
) -> None:
    a, b = replicas(tmp_path, "A", "B")
    make_tree(a, LIBRARY)
    bundle = tmp_path / "first.sqb"
    # A bundle that leaves out most content: those files wait for a later one.
    pack(str(a), str(bundle), for_replica=str(b), max_size=200)
    first = apply(str(bundle), str(b))
    waiting = [p for p, _ in first.deferred]
    assert waiting and len(waiting) == len(set(waiting)), "each file that waits is reported once"
    assert first.failed == []
    pack(str(a), str(tmp_path / "rest.sqb"), for_replica=str(b))
    rest = apply(str(tmp_path / "rest.sqb"), str(b))
    assert rest.deferred == [] and rest.failed == []
    assert tree(b) == tree(a)


def sync_times(root: Path, names: list[str]) -> dict[str, dict[str, int]]:
    """The receiver's effective sync time at each path (and at the root)."""
    with Replica.open(str(root), write=False) as rep:
        return {p: dict(rep.index.sync_time(p.encode())) for p in ["", *names]}


def test_a_piece_that_does_not_finish_leaves_the_sync_times_of_one_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_pieces: list[bytes]
) -> None:
    """Files that wait deep below a piece leave every sync time where the
    same sync made in one plan leaves it: the folders above them keep their
    old time (nothing claims they are known), the finished files and
    folders beside them take the sender's. The folder above hears of such a
    piece as one path, not as each file that waits in it."""
    a, b = replicas(tmp_path, "A", "B")
    library = {**LIBRARY, "2019/02/large.raw": "x" * 5000, "2020/03/large.raw": "y" * 5000}
    make_tree(a, library)
    bundle = tmp_path / "first.sqb"
    pack(str(a), str(bundle), for_replica=str(b), max_size=3000)
    twin = copy_replica(b, tmp_path / "B-twin")
    whole = in_one_piece(monkeypatch, apply, str(bundle), str(twin))
    heard: list[set[bytes]] = []  # what each piece's plan heard had not finished below it
    real = engine.Executor

    def spy(*args, **kw):  # type: ignore[no-untyped-def]
        heard.append(set(kw["failed_before"]))
        return real(*args, **kw)

    monkeypatch.setattr(engine, "Executor", spy)
    split = apply(str(bundle), str(b))
    waiting = sorted(p for p, _ in split.deferred)
    assert waiting == sorted(p for p, _ in whole.deferred) == [b"2019/02/large.raw", b"2020/03/large.raw"]
    assert {b"2019/02"} in heard and {b"2019", b"2020"} in heard, heard
    assert tree(b) == tree(twin)
    folders = sorted({str(Path(p).parent) for p in library} - {"."})
    assert sync_times(b, [*library, *folders]) == sync_times(twin, [*library, *folders])
    assert sync_times(b, ["2019/02"])["2019/02"] != sync_times(b, ["2019/01"])["2019/01"]
    pack(str(a), str(tmp_path / "rest.sqb"), for_replica=str(b))
    rest = apply(str(tmp_path / "rest.sqb"), str(b))
    assert rest.deferred == [] and rest.failed == [] and rest.updated + rest.created == 2
    assert tree(b) == tree(a)


def test_a_folder_that_cannot_be_made_is_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_pieces: list[bytes]
) -> None:
    """A folder the receiver cannot make (here, its mkdir fails with an I/O
    error) fails again in every piece below it; the report names it once,
    in one line for everything it holds, as the same sync in one plan does."""
    a, b = replicas(tmp_path, "A", "B")
    make_tree(a, {f"x/y/d{i}/f{j}.txt": f"{i} {j}" for i in range(4) for j in range(3)})
    twin = copy_replica(b, tmp_path / "B-twin")
    real = execute.Executor._do

    def failing(self, act):  # type: ignore[no-untyped-def]
        if act.path == b"x":
            raise OSError(errno.EIO, "Input/output error")
        return real(self, act)

    monkeypatch.setattr(execute.Executor, "_do", failing)
    whole = in_one_piece(monkeypatch, push, str(a), str(twin))
    split = push(str(a), str(b))
    failed = [p for p, _ in split.failed]
    assert failed == [b"x"] and whole.failed == split.failed
    assert split.failed[0][1] == "could not make this folder (Input/output error); nothing in it is synced this time"
    assert not (b / "x").exists() and tree(b) == tree(twin)
    monkeypatch.setattr(execute.Executor, "_do", real)
    again = push(str(a), str(b))
    assert again.failed == [] and again.created == 18
    assert tree(b) == tree(a)


def test_a_first_visit_in_pieces_takes_everything(tmp_path: Path, small_pieces: list[bytes]) -> None:
    a, b = replicas(tmp_path, "A", "B")
    make_tree(a, LIBRARY)
    carrier = tmp_path / "carrier"
    taken = visit(str(a), str(carrier))
    assert taken.taken == len(LIBRARY)  # every file
    visit(str(b), str(carrier))
    visit(str(a), str(carrier))
    visit(str(b), str(carrier))
    assert tree(b) == tree(a)


def test_a_folder_too_large_for_one_plan_is_found_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_pieces: list[bytes]
) -> None:
    """The check before a sync, its outline and the sync itself each plan
    the whole tree first; once a folder is found too large, it is split at
    once the next time, and the result is the sync made in one piece."""
    a, b = replicas(tmp_path, "A", "B")
    make_tree(a, LIBRARY)
    too_large: list[bytes] = []
    real = pieces.Planner.run

    def run(self, top):  # type: ignore[no-untyped-def]
        try:
            return real(self, top)
        except pieces.PlanTooLarge:
            too_large.append(top)
            raise

    monkeypatch.setattr(pieces.Planner, "run", run)
    twin = copy_replica(b, tmp_path / "B-twin")
    whole = in_one_piece(monkeypatch, push, str(a), str(twin))
    too_large.clear()
    split = push(str(a), str(b))
    assert too_large and len(too_large) == len(set(too_large)), too_large
    assert b"" in too_large
    assert tree(b) == tree(twin)
    assert counts(split) == counts(whole)


@pytest.fixture
def joined_pieces(monkeypatch: pytest.MonkeyPatch) -> list[list[bytes]]:
    """Pieces of twelve actions, so that a few folders of the library fit
    in one; returns the subtrees of each plan carried out as several."""
    monkeypatch.setattr(pieces, "PIECE", 12)
    groups: list[list[bytes]] = []
    real = pieces.joined

    def spy(plans):  # type: ignore[no-untyped-def]
        if len(plans) > 1:
            groups.append([p.top for p in plans])
        return real(plans)

    monkeypatch.setattr(pieces, "joined", spy)
    return groups


def test_sibling_folders_that_fit_one_piece_are_synced_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, joined_pieces: list[list[bytes]]
) -> None:
    first_push_in_pieces(tmp_path, monkeypatch)
    assert [b"2019/01", b"2019/02"] in joined_pieces, joined_pieces


def test_a_folder_of_a_group_that_does_not_finish_waits_alone(tmp_path: Path, joined_pieces: list[list[bytes]]) -> None:
    """Content a bundle leaves out waits in its own folder; the folders
    carried out with it are done, and each waiting file is reported once."""
    a, b = replicas(tmp_path, "A", "B")
    make_tree(a, LIBRARY)
    pack(str(a), str(tmp_path / "first.sqb"), for_replica=str(b))
    apply(str(tmp_path / "first.sqb"), str(b))
    for month in (1, 2, 3):
        for n in range(4):
            write(a / "2019" / f"{month:02}" / f"IMG_{n}.jpg", f"retouched {month} {n}")
    write(a / "2019" / "01" / "IMG_0.jpg", "retouched, and large " + "x" * 4000)
    bundle = tmp_path / "second.sqb"
    pack(str(a), str(bundle), for_replica=str(b), max_size=1000)
    joined_pieces.clear()
    second = apply(str(bundle), str(b))
    assert [b"2019/01", b"2019/02"] in joined_pieces, joined_pieces
    assert [p for p, _ in second.deferred] == [b"2019/01/IMG_0.jpg"]
    assert second.failed == []
    assert (b / "2019" / "01" / "IMG_1.jpg").read_text() == "retouched 1 1"
    assert (b / "2019" / "02" / "IMG_3.jpg").read_text() == "retouched 2 3"
    pack(str(a), str(tmp_path / "rest.sqb"), for_replica=str(b))
    rest = apply(str(tmp_path / "rest.sqb"), str(b))
    assert rest.deferred == [] and rest.failed == []
    assert counts(rest)["updated"] == 1
    assert tree(b) == tree(a)
