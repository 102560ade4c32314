"""`init`, `scan` and `status` as the CLI calls them: the data they return."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from squirrel.errors import AlreadyAReplica, BadPath, NotAReplica
from squirrel.plumbing.records import ConflictRecord
from squirrel.plumbing.replica import Replica, read_identity
from squirrel.plumbing.scan import ADDED, DELETED, MODIFIED, TOUCHED, ScanStats
from squirrel.porcelain.init import init
from squirrel.porcelain.scan import scan
from squirrel.porcelain.status import status
from tests.helpers import indexed, make_tree, set_mtime, write


@pytest.fixture
def drive(tmp_path: Path) -> Path:
    root = make_tree(tmp_path / "drive", {"a/one.jpg": b"one", "a/two.jpg": b"two", "top.txt": b"top"})
    init(str(root), name="drive")
    return root


# init ------------------------------------------------------------------------------
def test_init_indexes_what_is_already_there(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "Media", {"x/y.jpg": b"y", "z.txt": b"z", "empty/": ""})
    rep = init(str(root))
    assert rep.name == "Media"
    assert rep.joined is None
    assert (rep.stats.files, rep.stats.dirs, rep.bytes) == (2, 3, 2)
    assert sorted(indexed(root)) == [b"empty", b"x", b"x/y.jpg", b"z.txt"]
    ident = read_identity(str(root))
    assert (ident.vault, ident.replica, ident.name) == (rep.vault, rep.replica, rep.name)


def test_init_refuses_an_existing_replica_and_bad_paths(drive: Path, tmp_path: Path) -> None:
    before = indexed(drive)
    with pytest.raises(AlreadyAReplica):
        init(str(drive))
    assert indexed(drive) == before
    with pytest.raises(BadPath):
        init(str(tmp_path / "missing"))
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(BadPath):
        init(str(tmp_path / "file"))


def test_init_join_makes_a_new_replica_of_the_same_vault(drive: Path, tmp_path: Path) -> None:
    other = make_tree(tmp_path / "other", {"a/one.jpg": b"one"})
    source_before = indexed(drive)
    rep = init(str(other), name="other", join=str(drive))
    source = read_identity(str(drive))
    assert rep.vault == source.vault
    assert rep.replica != source.replica
    assert rep.joined == str(drive)
    assert sorted(indexed(other)) == [b"a", b"a/one.jpg"]
    with Replica.open(str(other), write=False) as joined:
        assert joined.names() == {source.replica: "drive", rep.replica: "other"}
    assert indexed(drive) == source_before, "joining never writes to the source"


def test_init_join_of_a_non_replica_creates_nothing(tmp_path: Path) -> None:
    target = make_tree(tmp_path / "target", {"f": b"f"})
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotAReplica):
        init(str(target), join=str(tmp_path / "plain"))
    assert not (target / ".squirrel").exists()


# scan ------------------------------------------------------------------------------
def test_scan_reports_what_it_recorded(drive: Path) -> None:
    write(drive / "top.txt", b"TOP")
    (drive / "a/two.jpg").unlink()
    os.rename(drive / "a/one.jpg", drive / "one-moved.jpg")
    make_tree(drive, {"new/file.bin": b"new"})
    rep = scan(str(drive))
    assert rep.changed
    assert rep.modified == [b"top.txt"]
    assert sorted(rep.added) == [b"new", b"new/file.bin", b"one-moved.jpg"]
    assert sorted(rep.deleted) == [b"a/one.jpg", b"a/two.jpg"]
    assert rep.moved == [(b"a/one.jpg", b"one-moved.jpg")]
    assert rep.stats.files == 3
    again = scan(str(drive))
    assert not again.changed
    assert again.stats.files_hashed == 0


def test_scan_reports_touched_files_but_they_are_not_changes(drive: Path) -> None:
    set_mtime(drive / "top.txt", 10)
    rep = scan(str(drive))
    assert rep.touched == 1
    assert not rep.changed


def test_scan_of_a_non_replica_fails(tmp_path: Path) -> None:
    make_tree(tmp_path / "plain", {"f": b"f"})
    with pytest.raises(NotAReplica):
        scan(str(tmp_path / "plain"))


def test_scan_records_nothing_when_the_drive_is_gone_before_recording(drive: Path, tmp_path: Path) -> None:
    """The walk saw a deletion, but by the time it ended the marker was gone
    (the drive was unplugged): nothing may be recorded."""
    (drive / "top.txt").unlink()
    before = indexed(drive)
    marker = drive / ".squirrel" / "replica.json"
    aside = tmp_path / "replica.json"

    def unplug(_stats: ScanStats) -> None:
        if marker.exists():
            shutil.move(marker, aside)

    with pytest.raises(NotAReplica):
        scan(str(drive), progress=unplug)
    shutil.move(aside, marker)
    assert indexed(drive) == before
    assert [c.kind for c in status(str(drive)).pending] == [DELETED]


# status ------------------------------------------------------------------------------
def test_status_lists_pending_changes_and_records_nothing(drive: Path) -> None:
    write(drive / "top.txt", b"TOP")
    (drive / "a/two.jpg").unlink()
    make_tree(drive, {"new.txt": b"new"})
    before = indexed(drive)
    for _ in range(2):
        rep = status(str(drive))
        assert rep.dirty
        assert sorted((c.kind, c.path) for c in rep.pending) == [
            (ADDED, b"new.txt"),
            (DELETED, b"a/two.jpg"),
            (MODIFIED, b"top.txt"),
        ]
    assert indexed(drive) == before
    with Replica.open(str(drive), write=False) as r:
        assert r.index.counter == 1


def test_status_of_a_clean_tree_is_clean(drive: Path) -> None:
    rep = status(str(drive))
    assert not rep.dirty
    assert rep.changes == [] and rep.conflicts == []
    assert rep.stats.files_hashed == 0


def test_a_touched_file_is_not_pending(drive: Path) -> None:
    set_mtime(drive / "top.txt", 10)
    rep = status(str(drive))
    assert [c.kind for c in rep.changes] == [TOUCHED]
    assert rep.pending == [] and not rep.dirty


def test_status_finds_moves_out_of_deleted_directories(drive: Path) -> None:
    os.rename(drive / "a", drive / "b")
    rep = status(str(drive))
    assert sorted(rep.moved) == [(b"a/one.jpg", b"b/one.jpg"), (b"a/two.jpg", b"b/two.jpg")]


def test_status_lists_open_conflicts(drive: Path) -> None:
    record = ConflictRecord(b"top.txt", "update/update", b"top.txt", b"top.sq-conflict-0000.txt", tracked=False)
    with Replica.open(str(drive)) as r:
        r.index.put_conflict(record)
        r.index.commit()
    rep = status(str(drive))
    assert rep.conflicts == [record]
    assert rep.pending == [] and rep.dirty


HOLD_LOCK = """
import sys, time
from squirrel.plumbing.replica import Replica
rep = Replica.open(sys.argv[1])
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def locked(drive: Path) -> Iterator[Path]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(drive)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield drive
    finally:
        proc.kill()
        proc.wait()


def test_status_works_while_another_sq_holds_the_lock(locked: Path) -> None:
    write(locked / "top.txt", b"changed")
    assert [c.path for c in status(str(locked)).pending] == [b"top.txt"]


def test_init_counts_the_tree_first_so_its_progress_has_totals(tmp_path: Path) -> None:
    root = tmp_path / "d"
    make_tree(root, {"a.jpg": b"a" * 1000, "sub/b.jpg": b"b" * 500, "Thumbs.db": b"ignored"})
    (root / "link").symlink_to("a.jpg")
    seen: list[ScanStats] = []
    init(str(root), name="d", progress=lambda st: seen.append(ScanStats(**vars(st))))
    counts = [st for st in seen if st.counting]
    scans = [st for st in seen if not st.counting]
    assert counts and scans
    assert (scans[-1].files_total, scans[-1].bytes_total) == (2, 1500)  # no ignored file, no symlink
    assert scans[-1].bytes_hashed == 1500  # every counted byte is hashed: the line ends at 100%


def test_a_later_scan_does_not_count_first(drive: Path) -> None:
    seen: list[ScanStats] = []
    scan(str(drive), progress=seen.append)
    assert seen and not any(st.counting or st.files_total is not None for st in seen)
