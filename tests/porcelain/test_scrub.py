"""A scrub in slices (`sq verify --max-bytes`) re-reads every file once per
cycle: the files each slice read, and the bytes this process really read
from them (the kernel's count, /proc/self/io), add up to the replica's
content exactly, cycle after cycle, whatever the slice size."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from squirrel.plumbing import ids
from squirrel.porcelain import init as init_mod
from squirrel.porcelain.verify import verify
from tests.helpers import make_tree

FILES = {
    "a/one.jpg": b"1" * 3000,
    "a/two.jpg": b"2" * 9000,  # larger than a slice: read alone
    "a/empty.txt": b"",
    "b/c/three.raw": b"3" * 4096,
    "b/four.jpg": b"4" * 100,
    "five.txt": b"5" * 2500,
}
TOTAL = sum(len(v) for v in FILES.values())


def bytes_read() -> int:
    """What this process has read with read() so far (the kernel's rchar)."""
    with open("/proc/self/io", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs /proc/self/io (Linux)")
@pytest.mark.parametrize("max_bytes", [1, 4096, 6000, 1 << 20])
def test_every_byte_is_read_once_per_cycle(tmp_path: Path, max_bytes: int) -> None:
    # The code a first verify loads (read from disk too) is loaded before
    # anything is counted: run first, as alone, it counted 54 KiB.
    warm = make_tree(tmp_path / "W", {"w.jpg": b"w"})
    init_mod.init(str(warm), name="W")
    verify(str(warm), max_bytes=max_bytes)
    root = make_tree(tmp_path / "R", FILES)
    init_mod.init(str(root), name="R")
    for _cycle in range(3):
        seen: list[bytes] = []
        read = runs = 0
        while True:
            before = bytes_read()
            report = verify(str(root), max_bytes=max_bytes)
            overhead = bytes_read() - before - report.checked_bytes
            assert 0 <= overhead < 16_384, overhead  # replica.json, the ignore rules: small files, not content
            runs += 1
            assert report.ok, report.problems
            assert report.checked_bytes <= max_bytes or len(report.slice_files) == 1
            seen += [p for _, p, _ in report.slice_files]
            read += sum(n for _, _, n in report.slice_files)
            if report.cycle_done:
                break
            assert runs <= len(FILES)
        assert sorted(seen) == sorted(p.encode() for p in FILES)
        assert read == TOTAL
        assert report.scrub is not None and report.scrub.last_full is not None and report.scrub.cursor is None


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd (Linux)")
@pytest.mark.parametrize("max_bytes", [None, 4096])
def test_no_file_a_scrub_read_is_still_open_when_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_bytes: int | None
) -> None:
    """A scrub closes the files it read on a thread of its own (here a slow
    one, as on a busy disk); it waits for it before returning. A file
    removed while open lingers on FUSE file systems (exFAT drives among
    them) as a hidden file that keeps its folder from being removed."""
    root = make_tree(tmp_path / "R", FILES)
    init_mod.init(str(root), name="R")
    real = ids._drop_cache

    def slow(fd: int) -> None:
        time.sleep(0.05)
        real(fd)

    monkeypatch.setattr(ids, "_drop_cache", slow)
    report = verify(str(root), max_bytes=max_bytes)
    assert report.ok, report.problems
    open_now = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            open_now.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass  # the descriptor listdir itself used
    assert not {t for t in open_now if t.startswith(str(root)) and "/.squirrel/" not in t}
