"""The carrier's object store: content by id, stored and dropped in bulk."""

from __future__ import annotations

import shutil
from pathlib import Path

import blake3

from squirrel.plumbing.objects import UNLINK_GROUP, ObjectStore, Wanted


def _store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(str(tmp_path / "objects"), str(tmp_path / "tmp"))


def _contents(n: int) -> dict[bytes, bytes]:
    data = [b"object %d " % i * (1 + i % 7) for i in range(n)]
    return {blake3.blake3(d).digest(): d for d in data}


def _put(store: ObjectStore, contents: dict[bytes, bytes]) -> None:
    wanted = [Wanted(oid, len(d), lambda d=d: [d]) for oid, d in contents.items()]
    assert [err for _, err in store.put_many(wanted)] == [None] * len(contents)


def test_delete_many_drops_exactly_the_objects_named_across_several_groups(tmp_path: Path) -> None:
    store = _store(tmp_path)
    contents = _contents(3 * UNLINK_GROUP + 20)  # the last group of the doomed is not full
    _put(store, contents)
    oids = list(contents)
    doomed, kept = oids[:-10], oids[-10:]
    unknown = [blake3.blake3(b"never stored %d" % i).digest() for i in range(5)]

    count, freed = store.delete_many(doomed + unknown)

    assert (count, freed) == (len(doomed), sum(len(contents[o]) for o in doomed))
    assert not any(store.has(o) for o in doomed)
    assert {oid: size for oid, size in store} == {o: len(contents[o]) for o in kept}
    assert all(Path(store.path(o)).read_bytes() == contents[o] for o in kept)


def test_an_object_folder_removed_behind_the_store_is_made_again(tmp_path: Path) -> None:
    store = _store(tmp_path)
    contents = _contents(1)
    _put(store, contents)
    ((oid, data),) = contents.items()
    shutil.rmtree(Path(store.path(oid)).parent)
    store = _store(tmp_path)  # the next command
    assert not store.has(oid)

    _put(store, contents)

    assert Path(store.path(oid)).read_bytes() == data


def test_has_follows_the_stores_own_puts_and_deletes(tmp_path: Path) -> None:
    contents = _contents(4)
    a, b, c, d = contents
    _put(_store(tmp_path), {a: contents[a]})
    store = _store(tmp_path)  # a new command: what is stored is listed again
    assert store.has(a) and not store.has(b)

    _put(store, {b: contents[b], c: contents[c], d: contents[d]})
    assert all(store.has(o) for o in contents)
    store.delete(a)
    store.delete_many([b, c])

    assert [store.has(o) for o in contents] == [False, False, False, True]
    assert [oid for oid, _ in _store(tmp_path)] == [d]


def test_usage_counts_what_the_store_holds_after_its_own_puts_and_deletes(tmp_path: Path) -> None:
    contents = _contents(6)
    store = _store(tmp_path)
    _put(store, dict(list(contents.items())[:3]))
    assert store.usage() == sum(len(d) for d in list(contents.values())[:3])

    _put(store, dict(list(contents.items())[3:]))
    store.delete_many(list(contents)[:2])

    left = sum(len(d) for d in list(contents.values())[2:])
    assert store.usage() == left == _store(tmp_path).usage()
    assert sorted(store) == sorted(_store(tmp_path))
