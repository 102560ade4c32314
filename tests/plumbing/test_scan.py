"""The scanner: what it records as new versions, and what it must never read or record."""

from __future__ import annotations

import os
import shutil
import time
import unicodedata
from pathlib import Path

import pytest

from squirrel.plumbing import ids, readahead, sweep, workers
from squirrel.plumbing.index import FLAG_RACY
from squirrel.plumbing.paths import IgnoreRules
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.scan import RecordResult, Scanner, ScanStats, record
from squirrel.plumbing.vtime import VectorTime
from tests.helpers import age, indexed, make_tree, pure_python, set_mtime, write


@pytest.fixture(autouse=True, params=["walk", "sweep", "sweep-python", "sweep-here"])
def how(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs four times: the scanner walking the tree alone;
    first sweeping it with worker processes as it does for a large index,
    comparing the folders in C (where it was built) and in Python; and
    sweeping it in its own process alone, as it does for a middling index
    where the comparison is in C (a walk again where it is not)."""
    monkeypatch.setattr(workers, "SWEEP_MIN", 0 if request.param in ("sweep", "sweep-python") else 1 << 62)
    monkeypatch.setattr(sweep, "HERE_MIN", 0 if request.param == "sweep-here" else 1 << 62)
    if request.param == "sweep-python":
        pure_python(monkeypatch)
    return str(request.param)


def do_scan(root: Path, ignore: IgnoreRules | None = None) -> tuple[RecordResult, ScanStats]:
    with Replica.open(str(root)) as rep:
        scanner = Scanner(str(root), rep.index, ignore)
        res = record(rep.index, list(scanner.changes()))
    return res, scanner.stats


def replica_id(root: Path) -> str:
    with Replica.open(str(root), write=False) as rep:
        return rep.id


def event(root: Path, n: int) -> VectorTime:
    return VectorTime.event(replica_id(root), n)


def assert_quiet_rescan(root: Path) -> None:
    """A scan of an unchanged tree records nothing and reads no file."""
    before = indexed(root)
    hashed_before = ids.files_hashed
    res, stats = do_scan(root)
    assert (res.added, res.modified, res.deleted, res.moved, res.event) == ([], [], [], [], None)
    assert stats.files_hashed == 0
    assert ids.files_hashed == hashed_before
    assert indexed(root) == before


@pytest.fixture
def drive(replica_root: Path) -> Path:
    """A replica holding a small scanned tree, every file an hour old."""
    make_tree(
        replica_root,
        {
            "photos/2024/a.jpg": b"aaaa",
            "photos/2024/b.jpg": b"bbbb",
            "photos/c.jpg": b"cccc",
            "notes.txt": b"hello",
        },
    )
    res, _ = do_scan(replica_root)
    assert res.event == event(replica_root, 1)
    return replica_root


# Creation --------------------------------------------------------------------------
def test_first_scan_records_every_file_and_directory_as_one_event(drive: Path) -> None:
    idx = indexed(drive)
    assert sorted(idx) == [
        b"notes.txt",
        b"photos",
        b"photos/2024",
        b"photos/2024/a.jpg",
        b"photos/2024/b.jpg",
        b"photos/c.jpg",
    ]
    ev = event(drive, 1)
    note = idx[b"notes.txt"]
    assert note.is_file
    assert note.oid == ids.hash_bytes(b"hello")
    assert note.size == 5
    assert note.mtime_ns == (drive / "notes.txt").stat().st_mtime_ns
    assert note.mode == 0o644 & ~os.umask(os.umask(0))
    assert not note.flags & FLAG_RACY
    assert all(e.m == ev and e.c == ev for e in idx.values())
    assert idx[b"photos"].is_dir


def test_an_unchanged_tree_is_not_read_again(drive: Path) -> None:
    assert_quiet_rescan(drive)
    assert_quiet_rescan(drive)


def test_new_files_get_a_new_event_and_raise_their_directories(drive: Path) -> None:
    make_tree(drive, {"photos/2024/new.jpg": b"new"})
    res, stats = do_scan(drive)
    assert res.added == [b"photos/2024/new.jpg"]
    assert stats.files_hashed == 1
    idx = indexed(drive)
    ev2 = event(drive, 2)
    assert idx[b"photos/2024/new.jpg"].m == ev2
    assert idx[b"photos/2024/new.jpg"].c == ev2
    assert idx[b"photos/2024"].m == ev2
    assert idx[b"photos"].m == ev2
    assert idx[b"notes.txt"].m == event(drive, 1), "an untouched sibling keeps its version"
    with Replica.open(str(drive), write=False) as rep:
        root = rep.index.get(b"")
        assert root is not None and root.m == ev2


# Edits --------------------------------------------------------------------------
def test_a_same_size_edit_with_a_new_mtime_is_a_new_version(drive: Path) -> None:
    write(drive / "photos/c.jpg", b"CCCC")
    res, _ = do_scan(drive)
    assert res.modified == [b"photos/c.jpg"]
    e = indexed(drive)[b"photos/c.jpg"]
    assert e.oid == ids.hash_bytes(b"CCCC")
    assert e.m == event(drive, 2)
    assert e.c == event(drive, 1), "an edit keeps the file's lineage"
    assert_quiet_rescan(drive)


def test_touching_a_file_without_changing_it_is_not_a_new_version(drive: Path) -> None:
    set_mtime(drive / "notes.txt", 60)
    res, stats = do_scan(drive)
    assert (res.added, res.modified, res.deleted, res.event) == ([], [], [], None)
    assert res.touched == 1
    assert stats.files_hashed == 1
    e = indexed(drive)[b"notes.txt"]
    assert e.m == event(drive, 1)
    assert e.mtime_ns == (drive / "notes.txt").stat().st_mtime_ns
    with Replica.open(str(drive), write=False) as rep:
        assert rep.index.counter == 1
    assert_quiet_rescan(drive)


def test_a_mode_change_alone_is_not_a_new_version(drive: Path) -> None:
    os.chmod(drive / "notes.txt", 0o600)
    set_mtime(drive / "notes.txt", 60)
    res, _ = do_scan(drive)
    assert res.event is None and res.touched == 1
    assert indexed(drive)[b"notes.txt"].mode == 0o600


def test_a_fresh_file_is_read_again_until_its_mtime_is_safely_past(replica_root: Path) -> None:
    f = replica_root / "fresh.txt"
    f.write_bytes(b"one")
    do_scan(replica_root)
    assert indexed(replica_root)[b"fresh.txt"].flags & FLAG_RACY
    # Same size, same mtime: only the racy flag makes the scanner look again.
    st = f.stat()
    f.write_bytes(b"two")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    res, stats = do_scan(replica_root)
    assert res.modified == [b"fresh.txt"]
    assert stats.files_hashed == 1
    age(replica_root)
    do_scan(replica_root)
    assert not indexed(replica_root)[b"fresh.txt"].flags & FLAG_RACY
    assert_quiet_rescan(replica_root)


# Deletions and moves -----------------------------------------------------------------
def test_a_deleted_file_is_recorded_and_its_directories_raised(drive: Path) -> None:
    (drive / "photos/2024/a.jpg").unlink()
    res, _ = do_scan(drive)
    assert res.deleted == [b"photos/2024/a.jpg"]
    idx = indexed(drive)
    assert b"photos/2024/a.jpg" not in idx
    assert idx[b"photos/2024"].m == event(drive, 2)
    assert idx[b"photos/2024/b.jpg"].m == event(drive, 1)
    assert_quiet_rescan(drive)


def test_a_deleted_directory_takes_its_subtree_with_it(drive: Path) -> None:
    shutil.rmtree(drive / "photos")
    res, _ = do_scan(drive)
    assert res.deleted == [b"photos"]
    assert sorted(indexed(drive)) == [b"notes.txt"]
    assert_quiet_rescan(drive)


def test_a_renamed_file_is_reported_as_a_move(drive: Path) -> None:
    os.rename(drive / "notes.txt", drive / "photos/notes-renamed.txt")
    res, _ = do_scan(drive)
    assert res.moved == [(b"notes.txt", b"photos/notes-renamed.txt")]
    assert res.deleted == [b"notes.txt"]
    assert res.added == [b"photos/notes-renamed.txt"]
    assert indexed(drive)[b"photos/notes-renamed.txt"].oid == ids.hash_bytes(b"hello")


def test_a_moved_directory_moves_every_file_in_it(drive: Path) -> None:
    os.rename(drive / "photos", drive / "archive")
    res, _ = do_scan(drive)
    assert sorted(res.moved) == [
        (b"photos/2024/a.jpg", b"archive/2024/a.jpg"),
        (b"photos/2024/b.jpg", b"archive/2024/b.jpg"),
        (b"photos/c.jpg", b"archive/c.jpg"),
    ]
    assert sorted(indexed(drive)) == [
        b"archive",
        b"archive/2024",
        b"archive/2024/a.jpg",
        b"archive/2024/b.jpg",
        b"archive/c.jpg",
        b"notes.txt",
    ]


def test_a_copy_is_an_addition_not_a_move(drive: Path) -> None:
    shutil.copy2(drive / "notes.txt", drive / "notes-copy.txt")
    res, _ = do_scan(drive)
    assert res.added == [b"notes-copy.txt"]
    assert res.moved == []


# Directories and types ---------------------------------------------------------------
def test_empty_directories_are_recorded_and_their_removal_too(drive: Path) -> None:
    (drive / "empty/deeper").mkdir(parents=True)
    res, _ = do_scan(drive)
    assert res.added == [b"empty", b"empty/deeper"]
    assert indexed(drive)[b"empty/deeper"].is_dir
    assert_quiet_rescan(drive)
    (drive / "empty/deeper").rmdir()
    res, _ = do_scan(drive)
    assert res.deleted == [b"empty/deeper"]
    assert indexed(drive)[b"empty"].is_dir


def test_a_directory_replaced_by_a_file(drive: Path) -> None:
    shutil.rmtree(drive / "photos/2024")
    write(drive / "photos/2024", b"now a file")
    res, _ = do_scan(drive)
    assert res.deleted == [b"photos/2024"]
    assert res.added == [b"photos/2024"]
    idx = indexed(drive)
    assert idx[b"photos/2024"].is_file
    assert b"photos/2024/a.jpg" not in idx
    assert_quiet_rescan(drive)


def test_a_file_replaced_by_a_directory(drive: Path) -> None:
    (drive / "notes.txt").unlink()
    make_tree(drive, {"notes.txt/inside.txt": b"inside"})
    res, _ = do_scan(drive)
    assert res.deleted == [b"notes.txt"]
    assert res.added == [b"notes.txt", b"notes.txt/inside.txt"]
    idx = indexed(drive)
    assert idx[b"notes.txt"].is_dir
    assert idx[b"notes.txt/inside.txt"].oid == ids.hash_bytes(b"inside")
    assert_quiet_rescan(drive)


# What is never read ------------------------------------------------------------------
def test_symlinks_are_skipped_and_never_followed(drive: Path, tmp_path: Path) -> None:
    outside = make_tree(tmp_path / "outside", {"secret.txt": b"secret", "dir/deep.txt": b"deep"})
    (drive / "link-to-file").symlink_to(outside / "secret.txt")
    (drive / "link-to-dir").symlink_to(outside / "dir")
    (drive / "link-inside").symlink_to(drive / "photos")
    (drive / "dangling").symlink_to(drive / "nothing-here")
    res, stats = do_scan(drive)
    assert res.event is None
    assert not any(b"link" in p or b"dangling" in p or b"deep" in p for p in indexed(drive))
    skipped = dict(stats.skipped)
    assert set(skipped) == {b"link-to-file", b"link-to-dir", b"link-inside", b"dangling"}
    assert all("symlink" in why for why in skipped.values())
    assert (outside / "secret.txt").read_bytes() == b"secret"


def test_fifos_are_skipped_without_blocking(drive: Path) -> None:
    os.mkfifo(drive / "photos/pipe")
    res, stats = do_scan(drive)
    assert res.event is None
    assert b"photos/pipe" not in indexed(drive)
    assert [p for p, _ in stats.skipped] == [b"photos/pipe"]


def test_the_marker_directory_is_never_indexed(drive: Path) -> None:
    assert not any(p.startswith(b".squirrel") for p in indexed(drive))
    (drive / ".squirrel" / "tmp" / "partial").write_bytes(b"half a file")
    assert_quiet_rescan(drive)


class VanishWhenListed(IgnoreRules):
    """Removes a directory right after its parent listed it, like a drive
    unplugged (or a folder deleted) in the middle of a scan."""

    def __init__(self, root: Path, victim: bytes) -> None:
        super().__init__()
        self.root = root
        self.victim = victim

    def ignored(self, path: bytes, is_dir: bool) -> bool:
        if path == self.victim and is_dir and (self.root / os.fsdecode(path)).exists():
            shutil.rmtree(self.root / os.fsdecode(path))
        return super().ignored(path, is_dir)


def test_a_directory_that_vanishes_mid_scan_is_not_taken_as_deleted(drive: Path) -> None:
    before = indexed(drive)
    res, stats = do_scan(drive, VanishWhenListed(drive, b"photos"))
    assert res.deleted == []
    assert res.event is None
    assert indexed(drive) == before
    assert [p for p, _ in stats.skipped] == [b"photos"]
    assert "cannot read directory" in stats.skipped[0][1]
    # Once its parent is listed without it, it really is gone.
    res, _ = do_scan(drive)
    assert res.deleted == [b"photos"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a directory whatever its permissions")
def test_an_unreadable_directory_is_not_taken_as_deleted(drive: Path) -> None:
    before = indexed(drive)
    os.chmod(drive / "photos", 0)
    try:
        res, stats = do_scan(drive)
    finally:
        os.chmod(drive / "photos", 0o755)
    assert res.deleted == [] and res.event is None
    assert indexed(drive) == before
    assert [p for p, _ in stats.skipped] == [b"photos"]


def test_a_file_that_cannot_be_read_is_skipped_not_recorded(drive: Path) -> None:
    """The scanner listed a regular file, which became a FIFO before it was hashed."""
    write(drive / "notes.txt", b"edited, so it must be hashed")
    before = indexed(drive)[b"notes.txt"]

    def swap_for_fifo(stats: ScanStats) -> None:
        if stats.files == 1:  # the first file of the walk: notes.txt
            (drive / "notes.txt").unlink()
            os.mkfifo(drive / "notes.txt")

    with Replica.open(str(drive)) as rep:
        # The race is the walk's: listed as a file, then hashed (no sweep first).
        scanner = Scanner(str(drive), rep.index, progress=swap_for_fifo, parallel=False)
        res = record(rep.index, list(scanner.changes()))
    assert res.modified == [] and res.event is None
    assert [p for p, _ in scanner.stats.skipped] == [b"notes.txt"]
    assert "not a regular file" in scanner.stats.skipped[0][1]
    assert indexed(drive)[b"notes.txt"] == before


# Names ------------------------------------------------------------------------------
def test_nfc_and_nfd_names_are_distinct_and_kept_byte_exact(replica_root: Path) -> None:
    nfc = unicodedata.normalize("NFC", "café.jpg").encode()
    nfd = unicodedata.normalize("NFD", "café.jpg").encode()
    assert nfc != nfd
    rootb = os.fsencode(replica_root)
    for name, content in ((nfc, b"composed"), (nfd, b"decomposed")):
        with open(os.path.join(rootb, name), "wb") as f:
            f.write(content)
    age(replica_root)
    res, _ = do_scan(replica_root)
    assert sorted(res.added) == sorted([nfc, nfd])
    idx = indexed(replica_root)
    assert idx[nfc].oid == ids.hash_bytes(b"composed")
    assert idx[nfd].oid == ids.hash_bytes(b"decomposed")
    assert_quiet_rescan(replica_root)


def test_names_that_are_not_utf8_are_indexed_as_bytes(replica_root: Path) -> None:
    rootb = os.fsencode(replica_root)
    name = b"caf\xe9-latin1.jpg"
    os.mkdir(os.path.join(rootb, b"dir\xff"))
    for rel in (name, b"dir\xff/" + name):
        with open(os.path.join(rootb, rel), "wb") as f:
            f.write(rel)
    age(replica_root)
    res, _ = do_scan(replica_root)
    assert sorted(res.added) == [name, b"dir\xff", b"dir\xff/" + name]
    assert indexed(replica_root)[b"dir\xff/" + name].oid == ids.hash_bytes(b"dir\xff/" + name)
    assert_quiet_rescan(replica_root)
    os.unlink(os.path.join(rootb, name))
    res, _ = do_scan(replica_root)
    assert res.deleted == [name]


def test_a_deep_tree(replica_root: Path) -> None:
    parts = [f"d{n}" for n in range(60)]
    deep = "/".join(parts)
    make_tree(replica_root, {f"{deep}/bottom.txt": b"bottom"})
    res, _ = do_scan(replica_root)
    assert len(res.added) == 61
    assert_quiet_rescan(replica_root)
    write(replica_root / deep / "bottom.txt", b"BOTTOM")
    res, _ = do_scan(replica_root)
    assert res.modified == [f"{deep}/bottom.txt".encode()]
    idx = indexed(replica_root)
    ev2 = event(replica_root, 2)
    assert all(idx["/".join(parts[: n + 1]).encode()].m == ev2 for n in range(60))


# Sizes ------------------------------------------------------------------------------
def test_empty_files(replica_root: Path) -> None:
    make_tree(replica_root, {"empty": b""})
    do_scan(replica_root)
    e = indexed(replica_root)[b"empty"]
    assert (e.size, e.oid) == (0, ids.EMPTY_OID)
    write(replica_root / "empty", b"x")
    assert do_scan(replica_root)[0].modified == [b"empty"]
    write(replica_root / "empty", b"", seconds_ago=60)
    assert do_scan(replica_root)[0].modified == [b"empty"]
    assert indexed(replica_root)[b"empty"].oid == ids.EMPTY_OID


def test_files_larger_than_one_hashing_block(replica_root: Path) -> None:
    data = os.urandom(2 * ids.BLOCK + 123)
    make_tree(replica_root, {"video.mp4": data})
    do_scan(replica_root)
    assert indexed(replica_root)[b"video.mp4"].oid == ids.hash_bytes(data)
    edited = data[:-1] + bytes([data[-1] ^ 1])
    write(replica_root / "video.mp4", edited)
    res, stats = do_scan(replica_root)
    assert res.modified == [b"video.mp4"]
    assert stats.bytes_hashed == len(edited)
    assert indexed(replica_root)[b"video.mp4"].oid == ids.hash_bytes(edited)


# Ignore rules ----------------------------------------------------------------------
def test_ignored_names_are_never_indexed(replica_root: Path) -> None:
    (replica_root / ".squirrel" / "ignore").write_text("*.tmp\ncache/\n")
    make_tree(
        replica_root,
        {
            "keep.jpg": b"k",
            "x.tmp": b"t",
            "sub/y.tmp": b"t",
            "cache/big.bin": b"c",
            "sub/cache/big.bin": b"c",
            ".DS_Store": b"mac",
            "sub/._keep.jpg": b"resource fork",
            "Thumbs.db": b"win",
        },
    )
    res, stats = do_scan(replica_root)
    assert sorted(indexed(replica_root)) == [b"keep.jpg", b"sub"]
    assert stats.skipped == [], "ignored names are not reported"


def test_a_newly_ignored_file_is_neither_present_nor_deleted(drive: Path) -> None:
    (drive / ".squirrel" / "ignore").write_text("notes.txt\n")
    res, _ = do_scan(drive)
    assert res.deleted == [] and res.event is None
    (drive / "notes.txt").unlink()
    res, _ = do_scan(drive)
    assert res.deleted == []
    assert b"notes.txt" in indexed(drive)


def test_every_change_of_one_scan_shares_one_event(drive: Path) -> None:
    write(drive / "notes.txt", b"changed")
    make_tree(drive, {"new.txt": b"new"})
    (drive / "photos/c.jpg").unlink()
    res, _ = do_scan(drive)
    ev = event(drive, 2)
    assert res.event == ev
    idx = indexed(drive)
    assert idx[b"notes.txt"].m == ev and idx[b"new.txt"].m == ev and idx[b"photos"].m == ev
    with Replica.open(str(drive), write=False) as rep:
        assert rep.index.counter == 2


def test_scanning_a_large_flat_directory_twice_reads_nothing_the_second_time(replica_root: Path) -> None:
    make_tree(replica_root, {f"f{n:04d}.bin": str(n) for n in range(500)})
    start = time.monotonic()
    res, stats = do_scan(replica_root)
    assert len(res.added) == 500 and stats.files_hashed == 500
    assert_quiet_rescan(replica_root)
    assert time.monotonic() - start < 10


# Reading ahead ---------------------------------------------------------------------
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_many_new_and_edited_files_opened_ahead_are_each_hashed_as_themselves(
    drive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files a scan hashes are opened ahead in a small window here (4),
    with edits, unchanged files and a folder in between: every record
    holds its own file's content, and nothing is left open."""
    monkeypatch.setattr(readahead, "READ_AHEAD_FILES", 4)
    tree = {f"photos/2024/new{i:03d}.jpg": b"new %d " % i * (i + 1) for i in range(40)}
    tree["photos/2024/a.jpg"] = b"edited a"
    make_tree(drive, tree)
    (drive / "photos" / "2024" / "new020.d").mkdir()

    res, stats = do_scan(drive)

    assert len(res.added) == 41 and len(res.modified) == 1  # 40 files and the folder; a.jpg
    assert stats.files_hashed == 41
    on_disk = {p.encode(): (drive / p).read_bytes() for p in [*tree, "photos/2024/b.jpg"]}
    recorded = {p: e.oid for p, e in indexed(drive).items() if e.is_file}
    assert {p: recorded[p] for p in on_disk} == {p: ids.hash_bytes(d) for p, d in on_disk.items()}
    assert [f for f in open_files() if f.startswith(str(drive / "photos"))] == []


def open_files() -> list[str]:
    """The files this process holds open, by /proc/self/fd."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except FileNotFoundError:
            pass  # the listing's own descriptor, closed since
    return out
