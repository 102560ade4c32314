"""The sweep's comparison of a folder with its records, in C
(`_folderstat.compare`) and in Python (`sweep._compare_py`): on the same
real folder and the same records, the two must give the same answer and
take the same records out, whatever the folder holds and whatever the
records say. Skipped where the C part was not built (no compiler)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from squirrel.plumbing import groups, sweep
from squirrel.plumbing.entry import BIT_RACY, KIND_DIR, KIND_FILE, Entry, encode_entry, new_dir, unchanged_file
from squirrel.plumbing.vtime import VectorTime
from tests.helpers import sq_in_process

folderstat = pytest.importorskip("squirrel.plumbing._folderstat")

NAMES = [b"a", b"b.jpg", b"IMG_0001.CR2", "é".encode(), b"\xff\xferaw", b".hidden", b"x" * 200]
KINDS = ["file", "file", "file", "dir", "symlink", "fifo"]
# Sizes up to 2^40 (sparse files) and mtimes before 1970 and far ahead, to
# the nanosecond: every bit of the record's head is compared.
SIZES = st.sampled_from([0, 1, 10_240, 1 << 33, (1 << 40) + 7])
MTIMES = st.sampled_from([0, 1, -1_500_000_000_123_456_789, 1_700_000_000_123_456_789, 4_102_444_800_999_999_999])
RECORDS = ["same", "same", "size", "mtime", "racy", "dir", "garbage", "none"]

T = VectorTime({"0123456789abcdef": 1})


def file_record(size: int, mtime_ns: int, racy: bool = False) -> bytes:
    raw = bytearray(encode_entry(Entry(KIND_FILE, bytes(range(32)), size, 0o644, mtime_ns, T, T)))
    if racy:
        raw[0] |= BIT_RACY
    return bytes(raw)


def make(folder: Path, kind: str, size: int, mtime_ns: int) -> None:
    if kind == "file":
        with open(folder, "wb") as f:
            f.truncate(size)
        os.utime(folder, ns=(mtime_ns, mtime_ns))
    elif kind == "dir":
        folder.mkdir()
    elif kind == "symlink":
        folder.symlink_to("elsewhere")
    else:
        os.mkfifo(folder)


def both(folder: Path, records: dict[bytes, bytes]) -> list[tuple[tuple[bool, int, list[bytes], list[bytes]], dict]]:
    """Each implementation's answer (lists in name order) and the records it
    left, each on its own copy of `records`."""
    out = []
    for compare in (folderstat.compare, lambda f, r: sweep._compare_py(f, r, unchanged_file)):
        left = dict(records)
        clean, files, folders, new_files = compare(bytes(folder), left)
        out.append(((clean, files, sorted(folders), sorted(new_files)), left))
    return out


@settings(
    max_examples=int(os.environ.get("SQ_HYPOTHESIS_EXAMPLES", "25")) * 4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    entries=st.dictionaries(
        st.sampled_from(NAMES),
        st.tuples(st.sampled_from(KINDS), SIZES, MTIMES, st.sampled_from(RECORDS), st.binary(min_size=1, max_size=20)),
        max_size=6,
    ),
    unlisted=st.dictionaries(st.sampled_from([b"gone", b"also-gone"]), st.binary(min_size=1, max_size=30), max_size=2),
)
def test_c_and_python_agree_on_any_folder_and_any_records(
    tmp_path: Path,
    entries: dict[bytes, tuple[str, int, int, str, bytes]],
    unlisted: dict[bytes, bytes],
) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    records = dict(unlisted)
    for name, (kind, size, mtime_ns, rec, garbage) in entries.items():
        make(folder / os.fsdecode(name), kind, size, mtime_ns)
        if rec == "same":
            records[name] = file_record(size, mtime_ns)
        elif rec == "size":
            records[name] = file_record(size + 1, mtime_ns)
        elif rec == "mtime":
            records[name] = file_record(size, mtime_ns + 1)
        elif rec == "racy":
            records[name] = file_record(size, mtime_ns, racy=True)
        elif rec == "dir":
            records[name] = encode_entry(new_dir(T, T))
        elif rec == "garbage":
            records[name] = garbage
    c, py = both(folder, records)
    assert c == py


def test_an_unchanged_folder_is_clean_and_every_file_record_is_taken_out(tmp_path: Path) -> None:
    make(tmp_path / "a.jpg", "file", 10_240, 1_700_000_000_123_456_789)
    make(tmp_path / "b.jpg", "file", 0, -5)
    (tmp_path / "sub").mkdir()
    records = {
        b"a.jpg": file_record(10_240, 1_700_000_000_123_456_789),
        b"b.jpg": file_record(0, -5),
        b"sub": encode_entry(new_dir(T, T)),
    }
    assert folderstat.compare(bytes(tmp_path), records) == (True, 2, [b"sub"], [])
    assert list(records) == [b"sub"]  # a folder's record is left for the sweep to look at


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (file_record(10_241, 1_700_000_000_123_456_789), "size"),
        (file_record(10_240, 1_700_000_000_123_456_788), "mtime, by one nanosecond"),
        (file_record(10_240, 1_700_000_000_123_456_789, racy=True), "recorded as racy"),
        (bytes([KIND_DIR]) + file_record(10_240, 1_700_000_000_123_456_789)[1:], "a folder's record"),
        (file_record(10_240, 1_700_000_000_123_456_789)[:16], "a record cut short"),
        (b"", "an empty record (the scanner then reports the damaged index)"),
    ],
)
def test_a_file_that_differs_from_its_record_makes_the_folder_unclean(tmp_path: Path, record: bytes, why: str) -> None:
    make(tmp_path / "a.jpg", "file", 10_240, 1_700_000_000_123_456_789)
    assert folderstat.compare(bytes(tmp_path), {b"a.jpg": record})[0] is False, why


def test_new_files_are_named_and_symlinks_make_it_unclean(tmp_path: Path) -> None:
    make(tmp_path / "new.jpg", "file", 3, 0)
    assert folderstat.compare(bytes(tmp_path), {}) == (True, 1, [], [b"new.jpg"])
    make(tmp_path / "link", "symlink", 0, 0)
    assert folderstat.compare(bytes(tmp_path), {})[0] is False


def test_a_folder_that_cannot_be_listed_raises_oserror_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        folderstat.compare(bytes(tmp_path / "gone"), {})
    assert missing.value.filename == bytes(tmp_path / "gone")
    make(tmp_path / "file", "file", 1, 0)
    with pytest.raises(NotADirectoryError):
        folderstat.compare(bytes(tmp_path / "file"), {})
    with pytest.raises(TypeError):
        folderstat.compare(bytes(tmp_path), [])  # type: ignore[arg-type]


def test_sq_pure_python_makes_the_command_compare_in_python(
    replica_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sweep, "_compare", folderstat.compare)  # put back after the test
    monkeypatch.setattr(groups, "_copy_group", groups._copy_group)  # which the command sets aside too
    (replica_root / "a.jpg").write_bytes(b"a")
    assert sq_in_process("scan", replica_root).code == 0
    assert sweep._compare is folderstat.compare
    monkeypatch.setenv("SQ_PURE_PYTHON", "1")
    ran = sq_in_process("scan", replica_root)
    assert (ran.code, sweep._compare) == (0, None)


def test_a_large_folder_with_long_names_agrees_with_python(tmp_path: Path) -> None:
    """Past the listing's first allocations (64 entries, 64 bytes of names)."""
    records = {}
    for i in range(1_500):
        name = f"{i:04d}-" + "n" * (i % 240)
        make(tmp_path / name, "file", i, 1_600_000_000_000_000_000 + i)
        if i % 7:
            records[name.encode()] = file_record(i, 1_600_000_000_000_000_000 + i + (i % 11 == 0))
    c, py = both(tmp_path, records)
    assert c == py
    assert c[0][1] == 1_500 and len(c[0][3]) == len([i for i in range(1_500) if not i % 7])
