"""Object ids: blake3 of a file's content, read in blocks, never through a link."""

from __future__ import annotations

import os
import random
from pathlib import Path

import blake3
import pytest

from squirrel.errors import BadUsage, ChangedDuringOperation, FileSystemError
from squirrel.plumbing import ids

EMPTY_BLAKE3 = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def data_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def test_the_empty_object_id_is_blake3_of_nothing() -> None:
    assert ids.EMPTY_OID.hex() == EMPTY_BLAKE3
    assert ids.hash_bytes(b"") == ids.EMPTY_OID
    assert len(ids.hash_bytes(b"x")) == ids.OID_BYTES


def test_oid_text_round_trip() -> None:
    oid = ids.hash_bytes(b"hello")
    assert ids.oid_hex(oid) == oid.hex()
    assert ids.parse_oid(ids.oid_hex(oid)) == oid


@pytest.mark.parametrize("text", ["", "abc", "zz" * 32, "00" * 31, "00" * 33])
def test_parse_oid_refuses_anything_but_64_hex_digits(text: str) -> None:
    with pytest.raises(BadUsage, match="not an object id"):
        ids.parse_oid(text)


@pytest.mark.parametrize(
    "size",
    [0, 1, ids.BLOCK - 1, ids.BLOCK, ids.BLOCK + 1, 3 * ids.BLOCK + 7, 64 * ids.BLOCK + 5],
)
def test_hash_file_equals_blake3_of_the_content(tmp_path: Path, size: int) -> None:
    data = data_of(size, seed=size)
    f = tmp_path / "f"
    f.write_bytes(data)
    oid, st = ids.hash_file(str(f))
    assert oid == blake3.blake3(data).digest()
    assert st.st_size == size
    assert st.st_mtime_ns == f.stat().st_mtime_ns


def test_hash_file_accepts_bytes_paths_and_reports_progress(tmp_path: Path) -> None:
    data = data_of(2 * ids.BLOCK + 10)
    f = tmp_path / "f"
    f.write_bytes(data)
    seen: list[int] = []
    oid, _ = ids.hash_file(os.fsencode(f), seen.append)
    assert oid == ids.hash_bytes(data)
    assert sum(seen) == len(data)
    assert len(seen) == 3


def test_hash_file_counts_the_files_it_reads(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x")
    before = ids.files_hashed
    ids.hash_file(str(f))
    ids.hash_file(str(f))
    assert ids.files_hashed == before + 2


def test_missing_file_is_a_file_system_error(tmp_path: Path) -> None:
    with pytest.raises(FileSystemError, match="cannot read"):
        ids.hash_file(str(tmp_path / "nope"))


def test_directory_is_not_hashed(tmp_path: Path) -> None:
    with pytest.raises(FileSystemError, match="not a regular file"):
        ids.hash_file(str(tmp_path))


def test_symlink_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_bytes(b"secret")
    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(FileSystemError):
        ids.hash_file(str(link))


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileSystemError, match="not a regular file"):
        ids.hash_file(str(fifo))


def test_a_file_changed_once_while_read_is_read_again(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(data_of(ids.BLOCK + 1))
    changed = []

    def grow(_n: int) -> None:
        if not changed:
            changed.append(True)
            with open(f, "ab") as out:
                out.write(b"more")

    oid, st = ids.hash_file(str(f), grow)
    assert oid == ids.hash_bytes(f.read_bytes())
    assert st.st_size == ids.BLOCK + 5


def test_a_file_that_keeps_changing_is_reported_not_hashed(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"start")
    stamp = [1_000_000_000]

    def touch(_n: int) -> None:
        stamp[0] += 1
        os.utime(f, ns=(stamp[0], stamp[0]))

    with pytest.raises(ChangedDuringOperation, match="keeps changing"):
        ids.hash_file(str(f), touch)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_scrub_read_leaves_no_descriptor_open(tmp_path: Path) -> None:
    """Read from the media (a scrub), a file's cached pages are dropped and
    its descriptor closed by a thread of its own: once it is done, every
    file was hashed right and nothing is left open."""
    files = []
    for n in range(20):
        f = tmp_path / f"photo-{n}.jpg"
        f.write_bytes(data_of(3 * ids.BLOCK + n, seed=n))
        files.append(f)
    before = set(os.listdir("/proc/self/fd"))
    for n, f in enumerate(files):
        oid, _ = ids.hash_file(str(f), from_media=True)
        assert oid == ids.hash_bytes(data_of(3 * ids.BLOCK + n, seed=n))
    ids.drops_done()
    assert set(os.listdir("/proc/self/fd")) <= before
