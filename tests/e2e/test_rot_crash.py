"""Repairing and healing a damaged file, killed at every I/O point: the
next command that writes (here a scan) leaves the old state or the new one,
never a half-written file nor a lost version, and running the command again
finishes it, byte-exact and with no new version."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.crash_scenarios import two_replicas
from tests.fault_tools import fresh_copy, leftovers, oid, run_forked, trash_ids
from tests.helpers import sq_in_process, tree

GOOD = b"a photo kept for decades\n" * 40
FILES = {"album/photo.jpg": GOOD, "album/other.jpg": b"another photo\n"}


def rot(path: Path) -> bytes:
    """Flip a byte of `path` in place, size and mtime kept; returns the damaged content."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[7] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return bytes(data)


def index_lines(root: Path) -> str:
    ran = sq_in_process("ls-index", root)
    assert ran.code == 0, ran.err
    return ran.out


def waiting(root: Path) -> list[str]:
    ran = sq_in_process("status", root, "--json")
    return [w["path"] for w in ran.json["waiting"]]


def damaged_pair(tmp: Path) -> tuple[Path, Path, bytes, str]:
    a, b = two_replicas(tmp / "A", tmp / "B", FILES)
    bad = rot(b / "album/photo.jpg")
    return a, b, bad, index_lines(b)


def test_a_repair_killed_anywhere_leaves_the_damaged_file_or_its_mark(tmp_path: Path) -> None:
    a, b, bad, before = damaged_pair(tmp_path)
    traced = run_forked(["verify", fresh_copy(b, tmp_path / "traced"), "--repair"], trace=True)
    assert traced.code == 1 and "rename" in traced.ops, traced.stderr.decode()
    for n in range(1, len(traced.ops) + 1):
        work = tmp_path / f"kill-{n}"
        drive, healthy = fresh_copy(b, work / "B"), fresh_copy(a, work / "A")
        assert run_forked(["verify", drive, "--repair"], f"any:{n}").killed, n
        assert run_forked(["scan", drive]).code == 0, n
        here = tree(drive, folders=False).get("album/photo.jpg")
        where = (n, traced.ops[n - 1])
        if here is not None:  # the old state: nothing repaired
            assert here == bad and waiting(drive) == [], where
        else:  # the new: the damaged bytes in the trash, the path waiting
            assert oid(bad) in trash_ids(drive) and waiting(drive) == ["album/photo.jpg"], where
        assert index_lines(drive) == before, where  # a scan found no change either way
        assert run_forked(["verify", drive, "--repair"]).code == 1
        assert run_forked(["push", healthy, drive]).code == 0
        assert tree(drive) == tree(a) and index_lines(drive) == before, where
        assert leftovers(drive) == [], where
        shutil.rmtree(work)


def test_a_heal_killed_anywhere_is_undone_or_done_then_finished(tmp_path: Path) -> None:
    a, b, bad, before = damaged_pair(tmp_path)
    assert run_forked(["verify", b, "--repair"]).code == 1
    clean = tmp_path / "clean"
    traced = run_forked(["push", fresh_copy(a, clean / "A"), fresh_copy(b, clean / "B")], trace=True)
    assert traced.code == 0, traced.stderr.decode()
    for n in range(1, len(traced.ops) + 1):
        work = tmp_path / f"kill-{n}"
        healthy, drive = fresh_copy(a, work / "A"), fresh_copy(b, work / "B")
        assert run_forked(["push", healthy, drive], f"any:{n}").killed, n
        assert run_forked(["scan", drive]).code == 0, n
        here = tree(drive, folders=False).get("album/photo.jpg")
        where = (n, traced.ops[n - 1])
        if here is None:
            assert waiting(drive) == ["album/photo.jpg"], where
        else:
            assert here == GOOD and waiting(drive) == [], where
        assert oid(bad) in trash_ids(drive), where  # the damaged bytes stay in the trash
        assert index_lines(drive) == before, where
        assert tree(healthy) == tree(a), where
        assert run_forked(["push", healthy, drive]).code == 0
        assert tree(drive) == tree(a) and index_lines(drive) == before and waiting(drive) == [], where
        assert leftovers(drive) == [], where
        shutil.rmtree(work)
