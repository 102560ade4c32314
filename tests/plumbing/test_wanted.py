"""The records of damaged files and of the scrub (docs/formats/index.md,
`wanted` and `scrub`): golden bytes, so that a format drift fails here, and
the index table that holds them, read and written across a commit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from squirrel.errors import CorruptIndex
from squirrel.plumbing.index import ReplicaIndex
from squirrel.plumbing.wanted import ScrubState, WantedMark

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden-wanted-v3.json"
MARK = WantedMark(
    b"photos/2019/beach\xff.jpg", bytes(range(32)), 3_145_728, 1_577_836_800_123_456_789, b"\x07" * 32, 1_764_690_000
)
STATE = ScrubState(b"photos/2019\x00beach.jpg", 1_764_600_000, 123_456_789, 1_764_000_000, 1_763_900_000)


def stored(doc: object) -> str:
    """The bytes the index stores for a record (JSON, keys sorted)."""
    return json.dumps(doc, sort_keys=True)


def test_the_records_are_stored_as_the_golden_file_says() -> None:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert stored(MARK.to_json()) == golden["wanted"]
    assert stored(STATE.to_json()) == golden["scrub"]
    assert WantedMark.from_json(MARK.path, json.loads(golden["wanted"])) == MARK
    assert ScrubState.from_json(json.loads(golden["scrub"])) == STATE


def test_the_index_keeps_marks_by_path_and_the_scrub_state(tmp_path: Path) -> None:
    idx = ReplicaIndex(str(tmp_path / "index"), "0123456789abcdef", create=True)
    try:
        assert idx.wanted_marks() == [] and idx.scrub_state() == ScrubState()
        other = WantedMark(b"photos/2020/dog.jpg", bytes(32), 1, 2, bytes(32), 3)
        idx.put_wanted(MARK)
        idx.put_wanted(other)
        idx.set_scrub_state(STATE)
        idx.commit()
        assert idx.wanted(MARK.path) == MARK
        assert idx.wanted_marks(b"photos/2019") == [MARK]
        assert idx.wanted_marks() == [MARK, other]
        assert idx.scrub_state() == STATE
        idx.delete(other.path)  # a deleted path wants nothing
        idx.commit()
        assert idx.wanted_marks() == [MARK]
    finally:
        idx.close()


@pytest.mark.parametrize(
    "doc",
    [
        {"oid": "00", "found": "00", "size": 1, "mtime_ns": 1, "since": 1},
        {"oid": "00" * 32, "found": "00" * 32, "size": -1, "mtime_ns": 1, "since": 1},
        {"oid": "00" * 32, "size": 1, "mtime_ns": 1, "since": 1},
    ],
)
def test_damaged_marks_are_refused(doc: dict[str, object]) -> None:
    with pytest.raises(CorruptIndex):
        WantedMark.from_json(b"a", doc)


def test_a_format_2_index_is_read_as_it_is_and_upgraded_by_the_first_writer(tmp_path: Path) -> None:
    import lmdb

    where = str(tmp_path / "index")
    ReplicaIndex(where, "0123456789abcdef", create=True).close()
    env = lmdb.open(where, max_dbs=10, subdir=True)
    with env.begin(write=True, db=env.open_db(b"meta")) as txn:
        txn.put(b"format", b"2")
    env.close()
    reader = ReplicaIndex(where, "0123456789abcdef", readonly=True)
    assert reader.format == 2 and reader.wanted_marks() == []
    reader.close()
    writer = ReplicaIndex(where, "0123456789abcdef")
    assert writer.format == 3
    writer.close()
    again = ReplicaIndex(where, "0123456789abcdef", readonly=True)
    assert again.format == 3
    again.close()
