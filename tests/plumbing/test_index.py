"""The LMDB index: records, children order, subtrees, sync times, growth, damage."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import lmdb
import pytest

from squirrel.errors import CorruptIndex, OutOfSpace, UnsafePath, UnsupportedFormat
from squirrel.plumbing import ids, index, index_records
from squirrel.plumbing.index import (
    FLAG_RACY,
    KIND_DIR,
    KIND_FILE,
    Entry,
    ReplicaIndex,
    decode_entry,
    encode_entry,
    entry_key,
    new_dir,
    path_key,
)
from squirrel.plumbing.records import ConflictRecord
from squirrel.plumbing.trash import DELETED, REPLACED, UNKNOWN, TrashItem, TrashReason
from squirrel.plumbing.vtime import EMPTY, VectorTime

SELF = "5e1f5e1f5e1f5e1f"
OTHER = "0123456789abcdef"
THIRD = "fedcba9876543210"


def file_entry(content: bytes = b"x", m: int = 1, c: int = 1, mtime_ns: int = 1_700_000_000_123_456_789) -> Entry:
    return Entry(
        KIND_FILE,
        ids.hash_bytes(content),
        len(content),
        0o644,
        mtime_ns,
        VectorTime.event(SELF, m),
        VectorTime.event(SELF, c),
    )


def a_dir(m: int = 1) -> Entry:
    return new_dir(VectorTime.event(SELF, m), VectorTime.event(SELF, m))


@pytest.fixture
def index_dir(tmp_path: Path) -> str:
    d = tmp_path / "index"
    d.mkdir()
    ReplicaIndex(str(d), SELF, create=True).close()
    return str(d)


@pytest.fixture
def idx(index_dir: str) -> Iterator[ReplicaIndex]:
    i = ReplicaIndex(index_dir, SELF)
    yield i
    i.close()


def reopen(i: ReplicaIndex) -> ReplicaIndex:
    i.close()
    return ReplicaIndex(i.directory, SELF)


def raw_put(directory: str, db: bytes, key: bytes, value: bytes) -> None:
    """Write one record behind the index's back, as damage or a newer sq would."""
    env = lmdb.open(directory, max_dbs=10)
    try:
        handle = env.open_db(db)
        with env.begin(write=True) as txn:
            txn.put(key, value, db=handle)
    finally:
        env.close()


# Records -----------------------------------------------------------------------
def test_a_new_index_holds_only_the_root_directory(idx: ReplicaIndex) -> None:
    root = idx.get(b"")
    assert root is not None and root.is_dir
    assert root.m == EMPTY
    assert list(idx.children(b"")) == []
    assert idx.counter == 0
    assert idx.sync_time(b"") == EMPTY


def test_entry_encoding_round_trips_every_field() -> None:
    e = Entry(KIND_FILE, ids.hash_bytes(b"a"), 2**40, 0o755, -5, VectorTime({OTHER: 9, SELF: 2}), EMPTY, FLAG_RACY)
    assert decode_entry(encode_entry(e)) == e
    d = new_dir(VectorTime({OTHER: 1}), VectorTime({THIRD: 4}))
    assert decode_entry(memoryview(encode_entry(d))) == d


def test_put_is_readable_at_once_and_durable_after_commit(idx: ReplicaIndex) -> None:
    e = file_entry(b"hello")
    idx.put(b"a", e)
    assert idx.get(b"a") == e
    idx.commit()
    idx = reopen(idx)
    try:
        assert idx.get(b"a") == e
    finally:
        idx.close()


def test_uncommitted_writes_are_lost_and_rollback_forgets_them(idx: ReplicaIndex) -> None:
    idx.put(b"kept", file_entry(b"k"))
    idx.commit()
    idx.put(b"lost", file_entry(b"l"))
    idx.next_event()
    idx.rollback()
    assert idx.get(b"lost") is None
    assert idx.counter == 0
    assert [n for n, _ in idx.children(b"")] == [b"kept"]
    idx.put(b"never-committed", file_entry(b"n"))
    idx = reopen(idx)
    try:
        assert idx.get(b"never-committed") is None
        assert idx.get(b"kept") is not None
    finally:
        idx.close()


def test_children_are_sorted_by_name_and_merge_pending_writes(idx: ReplicaIndex) -> None:
    for name in (b"b", b"a b", b"ab", b"a"):
        idx.put(name, a_dir() if name == b"a" else file_entry(name))
    idx.put(b"a/inner", file_entry(b"i"))
    idx.commit()
    assert idx.child_names(b"") == [b"a", b"a b", b"ab", b"b"]
    assert idx.child_names(b"a") == [b"inner"]
    idx.put(b"aa", file_entry(b"new"))
    idx.delete(b"ab")
    idx.put(b"b", file_entry(b"changed"))
    assert idx.child_names(b"") == [b"a", b"a b", b"aa", b"b"]
    assert dict(idx.children(b""))[b"b"] == file_entry(b"changed")


def test_children_never_include_the_directory_itself(idx: ReplicaIndex) -> None:
    idx.put(b"a", a_dir())
    idx.commit()
    # Raising the root's modification time leaves a pending root record.
    idx.raise_ancestors(b"a/x", VectorTime.event(SELF, 2))
    assert idx.child_names(b"") == [b"a"]
    assert [p for p, _ in idx.walk()] == [b"", b"a"]


def test_walk_lists_parents_before_children(idx: ReplicaIndex) -> None:
    idx.put(b"d", a_dir())
    idx.put(b"d/e", a_dir())
    idx.put(b"d/e/f", file_entry(b"f"))
    idx.put(b"d/g", file_entry(b"g"))
    idx.put(b"z", file_entry(b"z"))
    assert [p for p, _ in idx.walk()] == [b"", b"d", b"d/e", b"d/e/f", b"d/g", b"z"]
    assert [p for p, _ in idx.walk(b"d/e")] == [b"d/e", b"d/e/f"]
    assert list(idx.walk(b"missing")) == []


def test_delete_tree_removes_exactly_the_subtree(idx: ReplicaIndex) -> None:
    idx.put(b"d", a_dir())
    idx.put(b"d/e", a_dir())
    idx.put(b"d/e/f", file_entry(b"f"))
    idx.put(b"d/g", file_entry(b"g"))
    idx.put(b"d2", file_entry(b"sibling with a common prefix"))
    idx.commit()
    removed = idx.delete_tree(b"d")
    assert sorted(p for p, _ in removed) == [b"d", b"d/e", b"d/e/f", b"d/g"]
    idx.commit()
    assert [p for p, _ in idx.walk()] == [b"", b"d2"]
    assert idx.delete_tree(b"d") == []


def test_raise_ancestors_covers_the_change_in_every_directory_above(idx: ReplicaIndex) -> None:
    idx.put(b"a", a_dir(1))
    idx.put(b"a/b", a_dir(1))
    idx.put(b"x", a_dir(1))
    ev = VectorTime.event(OTHER, 7)
    idx.raise_ancestors(b"a/b/file", ev)
    for p in (b"a/b", b"a"):
        e = idx.get(p)
        assert e is not None and e.m == VectorTime({SELF: 1, OTHER: 7})
    root = idx.get(b"")
    assert root is not None and root.m == ev
    assert idx.get(b"x") == a_dir(1)


@pytest.mark.parametrize("how", ["put", "delete", "rollback"])
def test_raise_ancestors_raises_a_folder_again_after_its_record_was_written(idx: ReplicaIndex, how: str) -> None:
    """The folder found covering a time is remembered only until its record
    changes: a folder written again (or rolled back) is read again."""
    idx.put(b"a", a_dir(1))
    idx.commit()
    ev = VectorTime.event(OTHER, 7)
    idx.raise_ancestors(b"a/one", ev)
    idx.raise_ancestors(b"a/two", ev)  # covered: the folder's record is not read
    if how == "put":
        idx.put(b"a", a_dir(1))
    elif how == "delete":
        idx.delete(b"a")
        idx.put(b"a", a_dir(1))
    else:
        idx.rollback()
    idx.raise_ancestors(b"a/three", ev)
    e = idx.get(b"a")
    assert e is not None and e.m == VectorTime({SELF: 1, OTHER: 7})
    root = idx.get(b"")
    assert root is not None and ev <= root.m


def test_raise_ancestors_refuses_a_path_without_parent(idx: ReplicaIndex) -> None:
    with pytest.raises(CorruptIndex):
        idx.raise_ancestors(b"no/such/dir/file", VectorTime.event(SELF, 1))


def test_event_counter_advances_and_is_committed_with_the_batch(idx: ReplicaIndex) -> None:
    assert idx.next_event() == VectorTime.event(SELF, 1)
    assert idx.next_event() == VectorTime.event(SELF, 2)
    assert idx.sync_time(b"") == VectorTime.event(SELF, 2)
    idx.commit()
    idx = reopen(idx)
    try:
        assert idx.counter == 2
        assert idx.next_event() == VectorTime.event(SELF, 3)
    finally:
        idx.close()


def test_meta_json_round_trip(idx: ReplicaIndex) -> None:
    assert idx.get_meta_json("names", {}) == {}
    idx.set_meta_json("names", {SELF: "laptop"})
    idx.commit()
    assert idx.get_meta_json("names") == {SELF: "laptop"}


def test_each_conflict_at_a_path_has_its_own_record(idx: ReplicaIndex) -> None:
    first = ConflictRecord(b"p.txt", "update/update", b"p.txt", b"p.sq-conflict-aaaaaaaa.txt")
    second = ConflictRecord(b"p.txt", "update/update", b"p.txt", b"p.sq-conflict-bbbbbbbb.txt")
    edit_delete = ConflictRecord(b"p.txt", "update/delete", b"p.txt", None)
    for rec in (first, second, edit_delete):
        idx.put_conflict(rec)
    idx.commit()
    assert sorted(idx.conflicts(), key=lambda r: r.copy or b"") == [edit_delete, first, second]
    idx.drop_conflict(first)
    assert sorted(idx.conflicts(), key=lambda r: r.copy or b"") == [edit_delete, second]


def test_a_resolved_conflict_replaces_its_open_record_out_of_earlier_versions_sight(idx: ReplicaIndex) -> None:
    rec = ConflictRecord(b"p.txt", "update/delete", b"p.txt", None, kept_oid=ids.hash_bytes(b"v2"))
    idx.put_conflict(rec)
    idx.put_conflict(replace(rec, resolved=True))
    idx.commit()
    assert [c.resolved for c in idx.conflicts()] == [True]
    # earlier versions read the `/` keys only
    assert list(idx._scan("conflicts", index_records.OPEN_CONFLICT)) == []


def test_a_record_keyed_by_its_path_alone_is_read_and_replaced(idx: ReplicaIndex) -> None:
    """Before records were keyed by their copy, one with a copy was keyed by its path."""
    rec = ConflictRecord(b"p.txt", "update/update", b"p.txt", b"p.sq-conflict-aaaaaaaa.txt")
    idx._put("conflicts", index_records.path_key(b"p.txt"), index_records._dump(rec.to_json()))
    idx.commit()
    assert idx.conflicts() == [rec]
    idx.put_conflict(rec)
    assert idx.conflicts() == [rec]
    idx.drop_conflict(rec)
    assert idx.conflicts() == []


@pytest.mark.parametrize("committed", [True, False])
def test_the_conflicts_at_a_path_are_its_own_open_resolved_and_old_keyed_ones(
    idx: ReplicaIndex, committed: bool
) -> None:
    """A sync records each conflict it meets against those at its path
    only: not those of a longer path that starts with it, nor of another."""
    first = ConflictRecord(b"p.txt", "update/update", b"p.txt", b"p.sq-conflict-aaaaaaaa.txt")
    resolved = ConflictRecord(b"p.txt", "update/update", b"p.txt", b"p.sq-conflict-bbbbbbbb.txt", resolved=True)
    old_keyed = ConflictRecord(b"p.txt", "update/update", b"p.txt", b"p.sq-conflict-cccccccc.txt")
    others = [
        ConflictRecord(b"p.txt.xmp", "update/update", b"p.txt.xmp", b"p.txt.sq-conflict-dddddddd.xmp"),
        ConflictRecord(b"p.txt/q", "create/create", b"p.txt/q", None),
        ConflictRecord(b"o.txt", "update/delete", b"o.txt", None),
    ]
    for rec in (first, resolved, *others):
        idx.put_conflict(rec)
    idx._put("conflicts", index_records.path_key(b"p.txt"), index_records._dump(old_keyed.to_json()))
    if committed:
        idx.commit()
    assert sorted(idx.conflicts_at(b"p.txt"), key=lambda r: r.copy or b"") == [first, resolved, old_keyed]
    assert idx.conflicts_at(b"p.txt.xmp") == [others[0]]
    assert idx.conflicts_at(b"p") == []


def test_conflict_and_trash_records(idx: ReplicaIndex) -> None:
    b_jpg = ConflictRecord(b"b.jpg", "update/update", b"b.jpg", b"b.sq-conflict-00000000.jpg")
    idx.put_conflict(b_jpg)
    a_jpg = ConflictRecord(b"a.jpg", "create/create", b"a.jpg", None)
    idx.put_conflict(a_jpg)
    assert [c.path for c in idx.conflicts()] == [b"a.jpg", b"b.jpg"]
    idx.commit()
    idx.drop_conflict(a_jpg)
    assert idx.conflicts() == [b_jpg]
    oid = ids.hash_bytes(b"old")
    item = TrashItem(idx.next_trash_id(), oid, b"photos/old.jpg", 3, 1_700_000_000, TrashReason(REPLACED, "A"))
    idx.trash_put(item)
    idx.commit()
    assert item.id == 1 and idx.next_trash_id() == 2, "items are numbered"
    assert idx.trash_items() == [item]
    assert idx.trash_items_of(oid) == [item]
    assert idx.trash_items_of(ids.hash_bytes(b"other")) == []
    idx.trash_drop(item)
    assert idx.trash_items() == []
    idx.commit()
    assert idx.trash_items_of(oid) == []


def raw_delete(directory: str, db: bytes, key: bytes) -> None:
    env = lmdb.open(directory, max_dbs=10)
    try:
        handle = env.open_db(db)
        with env.begin(write=True) as txn:
            txn.delete(key, db=handle)
    finally:
        env.close()


def test_trash_records_from_before_items_are_numbered_alike_by_readers_and_the_first_writer(index_dir: str) -> None:
    """Records keyed by the object id alone, JSON, no reason (an index made
    before trash items): a reader lists them numbered in the order they
    were trashed; the first writer stores those numbers."""
    raw_delete(index_dir, b"meta", b"trash_ids")
    old, older = ids.hash_bytes(b"old"), ids.hash_bytes(b"older")
    raw_put(index_dir, b"trash", old, b'{"path": "a.jpg", "size": 3, "time": 1700000100}')
    raw_put(index_dir, b"trash", older, b'{"path": "b.jpg", "size": 5, "time": 1700000000}')
    reader = ReplicaIndex(index_dir, SELF, readonly=True)
    seen = sorted(reader.trash_items(), key=lambda it: it.id)
    reader.close()
    assert [(it.id, it.path, it.oid, it.reason.cause) for it in seen] == [
        (1, b"b.jpg", older, UNKNOWN),
        (2, b"a.jpg", old, UNKNOWN),
    ]
    writer = ReplicaIndex(index_dir, SELF)
    assert sorted(writer.trash_items(), key=lambda it: it.id) == seen
    assert writer.trash_items_of(old) == [seen[1]], "stored under the object id and its number"
    assert writer.next_trash_id() == 3
    writer.close()


def test_listings_see_writes_not_committed_yet(idx: ReplicaIndex) -> None:
    """Every listing merges the pending batch with what is committed: a
    record just written is listed, one just deleted is not."""
    committed = ids.hash_bytes(b"committed")
    first = TrashItem(idx.next_trash_id(), committed, b"c", 1, 1, TrashReason(DELETED))
    idx.trash_put(first)
    idx.put(b"c", Entry(KIND_FILE, committed, 9, 0o644, 1, EMPTY, EMPTY))
    idx.commit()
    pending = ids.hash_bytes(b"pending")
    idx.trash_put(TrashItem(idx.next_trash_id(), pending, b"p", 1, 1, TrashReason(DELETED)))
    idx.put(b"p", Entry(KIND_FILE, pending, 7, 0o644, 1, EMPTY, EMPTY))
    idx.delete(b"c")
    assert sorted(t.oid or b"" for t in idx.trash_items()) == sorted([committed, pending])
    assert list(idx.object_ids()) == [pending]
    assert idx.paths_with_object(committed) == []
    assert [n for n, _ in idx.children(b"")] == [b"p"]
    idx.trash_drop(first)
    assert [t.oid for t in idx.trash_items()] == [pending]


# Sync times ------------------------------------------------------------------------
def test_a_path_without_a_record_inherits_the_nearest_sync_time(idx: ReplicaIndex) -> None:
    idx.next_event()
    idx.set_stored_sync(b"a", VectorTime({OTHER: 3}))
    assert idx.sync_time(b"a") == VectorTime({OTHER: 3, SELF: 1})
    assert idx.sync_time(b"a/b/c") == VectorTime({OTHER: 3, SELF: 1})
    assert idx.sync_time(b"ab") == VectorTime({SELF: 1}), "a/ is not an ancestor of ab"
    assert idx.sync_time(b"") == VectorTime({SELF: 1})


def test_a_sync_time_equal_to_the_inherited_one_is_not_stored(idx: ReplicaIndex) -> None:
    idx.set_stored_sync(b"a", VectorTime({OTHER: 3}))
    idx.set_stored_sync(b"a/b", VectorTime({OTHER: 3}))
    assert idx.stored_sync(b"a/b") is None
    # Our own component is implicit, so it never makes a difference.
    idx.set_stored_sync(b"a/b", VectorTime({OTHER: 3, SELF: 99}))
    assert idx.stored_sync(b"a/b") is None
    idx.set_stored_sync(b"a/b", VectorTime({OTHER: 4}))
    assert idx.stored_sync(b"a/b") == VectorTime({OTHER: 4})
    assert idx.stored_syncs_under(b"a") == [(b"a/b", VectorTime({OTHER: 4}))]
    # Setting it back to the inherited value removes the record.
    idx.set_stored_sync(b"a/b", VectorTime({OTHER: 3}))
    assert idx.stored_sync(b"a/b") is None
    idx.commit()
    assert idx.stored_syncs_under(b"") == [(b"a", VectorTime({OTHER: 3}))]


def test_force_stores_the_root_and_drop_returns_a_path_to_inheriting(idx: ReplicaIndex) -> None:
    idx.set_stored_sync(b"", VectorTime({OTHER: 2}), force=True)
    idx.set_stored_sync(b"a", VectorTime({OTHER: 5}))
    idx.commit()
    assert idx.sync_time(b"a/x") == VectorTime({OTHER: 5})
    idx.drop_stored_sync(b"a")
    assert idx.sync_time(b"a/x") == VectorTime({OTHER: 2})
    idx.drop_stored_sync(b"")
    assert idx.sync_time(b"") == VectorTime({OTHER: 2}), "the root always keeps its sync time"


def test_stored_syncs_under_lists_only_the_subtree(idx: ReplicaIndex) -> None:
    for p, n in ((b"a", 1), (b"a/b", 2), (b"a/b/c", 3), (b"ab", 4)):
        idx.set_stored_sync(p, VectorTime({OTHER: n}))
    idx.commit()
    idx.set_stored_sync(b"a/z", VectorTime({OTHER: 9}))
    assert [p for p, _ in idx.stored_syncs_under(b"a")] == [b"a/b", b"a/b/c", b"a/z"]
    assert [p for p, _ in idx.stored_syncs_under(b"a/b")] == [b"a/b/c"]


def test_stored_sync_times_below_the_root_are_found_after_reopening(idx: ReplicaIndex) -> None:
    """An index holding the root's sync time alone answers for every other
    path without a lookup; one holding more (written by this process, or
    found on opening, read-only too) looks each up."""
    assert idx.stored_sync(b"a") is None
    idx.set_stored_sync(b"a", VectorTime({OTHER: 3}))
    assert idx.stored_sync(b"a") == VectorTime({OTHER: 3})  # pending
    idx.commit()
    idx.close()
    readonly = ReplicaIndex(idx.directory, SELF, readonly=True)
    try:
        assert readonly.stored_sync(b"a") == VectorTime({OTHER: 3})
    finally:
        readonly.close()
    idx = ReplicaIndex(idx.directory, SELF)
    assert idx.sync_time_below(b"a", EMPTY) == VectorTime({OTHER: 3, SELF: 0})
    idx.drop_stored_sync(b"a")
    idx.commit()
    idx = reopen(idx)
    assert idx.stored_sync(b"a") is None
    assert idx.sync_time(b"a") == idx.sync_time(b"")
    idx.close()


# Growth and versions -------------------------------------------------------------
def test_a_full_map_is_grown_and_nothing_is_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small = 64 << 10
    monkeypatch.setattr(index, "INITIAL_MAP_SIZE", small)
    d = tmp_path / "index"
    d.mkdir()
    i = ReplicaIndex(str(d), SELF, create=True)
    assert i.env.info()["map_size"] == small
    names = [f"file-{n:05d}-{'x' * 40}".encode() for n in range(3000)]
    for name in names:
        i.put(name, file_entry(name))
    i.commit()
    assert i.env.info()["map_size"] > small
    i = reopen(i)
    try:
        assert i.child_names(b"") == names
        assert i.get(names[-1]) == file_entry(names[-1])
    finally:
        i.close()


def test_an_index_from_a_newer_format_is_refused(index_dir: str) -> None:
    raw_put(index_dir, b"meta", b"format", b"99")
    with pytest.raises(UnsupportedFormat, match="newer"):
        ReplicaIndex(index_dir, SELF)
    # Refusing it twice in one process works: the refused environment was closed.
    with pytest.raises(UnsupportedFormat):
        ReplicaIndex(index_dir, SELF)


@pytest.mark.parametrize(("key", "value"), [(b"format", b"one"), (b"counter", b"-1")])
def test_damaged_metadata_is_a_corrupt_index(index_dir: str, key: bytes, value: bytes) -> None:
    raw_put(index_dir, b"meta", key, value)
    with pytest.raises(CorruptIndex):
        ReplicaIndex(index_dir, SELF)


def test_a_missing_index_is_a_corrupt_index(tmp_path: Path) -> None:
    with pytest.raises(CorruptIndex, match="missing"):
        ReplicaIndex(str(tmp_path), SELF)


def test_a_garbage_data_file_is_a_corrupt_index(tmp_path: Path) -> None:
    (tmp_path / "data.mdb").write_bytes(os.urandom(3 * 4096))
    with pytest.raises(CorruptIndex):
        ReplicaIndex(str(tmp_path), SELF)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\x01",
        encode_entry(file_entry())[:-1],
        encode_entry(file_entry()) + b"\x00",
        bytes([9]) + encode_entry(file_entry())[1:],
    ],
)
def test_a_damaged_record_is_a_corrupt_index(index_dir: str, value: bytes) -> None:
    raw_put(index_dir, b"entries", entry_key(b"a"), value)
    i = ReplicaIndex(index_dir, SELF)
    try:
        with pytest.raises(CorruptIndex):
            i.get(b"a")
        with pytest.raises(CorruptIndex):
            list(i.walk())
    finally:
        i.close()


def test_a_damaged_sync_time_is_a_corrupt_index(index_dir: str) -> None:
    raw_put(index_dir, b"sync", path_key(b"a"), b"\x05garbage")
    i = ReplicaIndex(index_dir, SELF)
    try:
        with pytest.raises(CorruptIndex):
            i.sync_time(b"a/b")
        with pytest.raises(CorruptIndex):
            i.stored_syncs_under(b"")
    finally:
        i.close()


def test_kinds_are_file_and_dir() -> None:
    assert index.KIND_NAMES == {KIND_FILE: "file", KIND_DIR: "dir"}


# Paths the index cannot hold, names no sync carries -------------------------------
def test_max_path_is_one_byte_short_of_lmdbs_key_limit(idx: ReplicaIndex) -> None:
    assert idx.max_path == idx.env.max_key_size() - 1 == 510
    assert idx.fits(b"a" * 510) and not idx.fits(b"a" * 511)
    assert idx.fits(b"d/" + b"a" * 508) and not idx.fits(b"d/" + b"a" * 509)


@pytest.mark.parametrize("path", [b"a" * 511, b"d" * 200 + b"/" + b"e" * 325], ids=["top", "nested"])
def test_a_path_too_long_is_refused_with_its_length_and_nothing_of_the_batch_is_lost(
    idx: ReplicaIndex, path: bytes
) -> None:
    idx.put(b"ok.txt", file_entry())
    with pytest.raises(UnsafePath) as refused:
        idx.put(path, file_entry())
    assert refused.value.message == f"path too long ({len(path)} bytes, the index holds at most 510)"
    with pytest.raises(UnsafePath):
        idx.set_stored_sync(path, VectorTime.event(OTHER, 3))
    idx.delete(path)  # nothing is stored there: forgetting it is no error
    idx.drop_notice(path)
    assert idx.get(path) is None and idx.stored_sync(path) is None
    idx.commit()  # the refusals left nothing in the batch that LMDB would refuse
    idx = reopen(idx)
    assert idx.get(b"ok.txt") == file_entry()
    assert [p for p, _ in idx.walk()] == [b"", b"ok.txt"]
    idx.close()


def test_the_longest_path_that_fits_is_recorded_everywhere(idx: ReplicaIndex) -> None:
    path = b"d" * 200 + b"/" + b"e" * 309  # 510 bytes
    idx.put(path, file_entry())
    idx.set_stored_sync(path, VectorTime.event(OTHER, 3))
    idx.commit()
    idx = reopen(idx)
    assert idx.get(path) == file_entry() and idx.stored_sync(path) == VectorTime.event(OTHER, 3)
    idx.close()


def test_records_of_names_no_sync_carries_are_forgotten_once_without_a_deletion_notice(idx: ReplicaIndex) -> None:
    # What a scan of an earlier sq recorded: a file and a folder with a
    # backslash in the name, what is below the folder, a deletion notice and a sync time.
    e = VectorTime.event(SELF, 2)
    idx.put(b"ok.txt", file_entry())
    idx.put(b"back\\slash.txt", file_entry(b"bs"))
    idx.put(b"f\\older", a_dir())
    idx.put(b"f\\older/in.txt", file_entry(b"in"))
    idx.set_notice(b"gone\\old.txt", e)
    idx.set_notice(b"gone.txt", e)
    idx.set_stored_sync(b"f\\older", VectorTime.event(OTHER, 4))
    idx.drop_meta(index.NAMES_CHECKED_KEY)
    idx.commit()

    assert idx.forget_uncarriable() == 5
    idx.commit()
    idx = reopen(idx)
    assert [p for p, _ in idx.walk()] == [b"", b"ok.txt"]
    assert [p for p, _ in idx.notices(b"")] == [b"gone.txt"], "a forgotten name leaves no deletion notice"
    assert idx.stored_sync(b"f\\older") is None
    assert idx.get_meta_json(index.NAMES_CHECKED_KEY) is True

    # Once only: the mark stays, and a later record is left alone.
    idx.put(b"late\\name.txt", file_entry(b"late"))
    assert idx.forget_uncarriable() == 0
    assert idx.get(b"late\\name.txt") == file_entry(b"late")
    idx.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real file system of 4 MiB (tmpfs), mounted for the test."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_commit_on_a_full_drive_is_out_of_space_and_keeps_the_last_commit(small_disk: Path) -> None:
    """The drive fills up between two commits: the second fails with the
    out-of-space error (exit 11 at the command line, never an internal
    error), and the index still holds what the first committed."""
    d = small_disk / "index"
    d.mkdir()
    ReplicaIndex(str(d), SELF, create=True).close()
    i = ReplicaIndex(str(d), SELF)
    try:
        i.put(b"kept.jpg", file_entry(b"kept"))
        i.commit()
        filler = small_disk / "filler"
        with open(filler, "wb") as f:  # the user's files take the rest of the drive
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
        for n in range(2_000):
            i.put(f"new/{n:05d}-{'x' * 100}.jpg".encode(), file_entry(str(n).encode()))
        with pytest.raises(OutOfSpace, match="no space left on the drive to record the changes in its index"):
            i.commit()
    finally:
        i.close()
    again = ReplicaIndex(str(d), SELF)
    try:
        assert again.get(b"kept.jpg") == file_entry(b"kept")
        assert again.get(b"new/00000-" + b"x" * 100 + b".jpg") is None
    finally:
        again.close()
