"""The carrier's object store: content by id, stored and dropped in bulk."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import blake3
import pytest

from squirrel.errors import ChangedDuringOperation
from squirrel.plumbing import faults, fsops, groups, place
from squirrel.plumbing.objects import LARGE_OBJECT, UNLINK_GROUP, ObjectStore, Wanted
from tests.bundle_tools import incompressible
from tests.helpers import third_group_breaks


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


def test_objects_are_unlinked_in_the_order_of_their_inodes_across_folders(tmp_path: Path) -> None:
    store = _store(tmp_path)
    contents = _contents(200)
    _put(store, contents)
    oids = list(contents)
    unknown = blake3.blake3(b"never stored").digest()

    ordered = store._inode_order([*oids, unknown])

    assert ordered[0] == unknown  # not listed: first (its unlink finds nothing)
    assert ordered[1:] == sorted(oids, key=lambda o: os.stat(store.path(o)).st_ino)
    assert len({o[0] for o in oids}) > 50  # the order crosses many folders


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
    store.delete_many([a])
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


# Small objects written in groups by the C part, on threads (`groups`):
# what the store keeps must be what it keeps one object at a time, whatever
# stops a group.
needs_c = pytest.mark.skipif(not groups.available(), reason="the C part was not built here")


def _sources(folder: Path, sizes: list[int]) -> dict[bytes, Path]:
    """Files of the given sizes, as on a drive: id -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, size in enumerate(sizes):
        p = folder / f"f{i:04d}"
        p.write_bytes(incompressible(i, size))
        out[blake3.blake3(p.read_bytes()).digest()] = p
    return out


def _from_file(oid: bytes, p: Path, span: bool = True) -> Wanted:
    size = p.stat().st_size
    return Wanted(
        oid,
        size,
        lambda: [p.read_bytes()],
        (lambda: fsops.Span(os.open(p, os.O_RDONLY), 0, size)) if span else None,
    )


def _counted_groups(monkeypatch: pytest.MonkeyPatch, files: int = 8) -> list[int]:
    """Groups of at most `files` objects; the number of objects each C call is given."""
    monkeypatch.setattr(groups, "GROUP_FILES", files)
    real = groups._copy_group
    assert real is not None
    calls: list[int] = []

    def counted(dir_fd: int, items: list[groups.Item], buf: bytearray) -> list[int]:
        calls.append(len(items))
        return real(dir_fd, items, buf)

    monkeypatch.setattr(groups, "_copy_group", counted)
    return calls


def _nothing_left_in(tmp: Path) -> None:
    assert list(tmp.iterdir()) == []


@needs_c
def test_many_small_objects_are_stored_in_groups_with_the_others_beside_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small objects go through many groups (two written at once), a large
    one and those whose content does not lie in a file are written one at
    a time, an object held already is not written again: every one is
    reported once, stored with its bytes, and nothing stays in tmp."""
    calls = _counted_groups(monkeypatch)
    sources = _sources(tmp_path / "drive", [100 + 37 * i for i in range(60)] + [LARGE_OBJECT + 5])
    store = _store(tmp_path)
    held = list(sources)[7]
    store.put(held, sources[held].stat().st_size, [sources[held].read_bytes()])
    streamed = set(list(sources)[20:22])
    wanted = [_from_file(oid, p, span=oid not in streamed) for oid, p in sources.items()]

    results = list(store.put_many([*wanted, wanted[3]]))

    assert sorted(results) == sorted((oid, None) for oid in sources)
    assert len(calls) > 4 and max(calls) == 8 and sum(calls) < 60
    for oid, p in sources.items():
        assert Path(store.path(oid)).read_bytes() == p.read_bytes()
    _nothing_left_in(tmp_path / "tmp")


@needs_c
def test_a_source_changed_before_its_group_fails_that_object_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _counted_groups(monkeypatch)
    sources = _sources(tmp_path / "drive", [500] * 30)
    victim_oid, victim = list(sources.items())[12]
    wanted = [_from_file(oid, p) for oid, p in sources.items()]
    victim.write_bytes(victim.read_bytes()[::-1])  # the same size, other bytes

    results = dict(_store(tmp_path).put_many(wanted))

    assert isinstance(results.pop(victim_oid), ChangedDuringOperation)
    assert results == {oid: None for oid in sources if oid != victim_oid}
    assert not Path(_store(tmp_path).path(victim_oid)).exists()
    _nothing_left_in(tmp_path / "tmp")


@needs_c
def test_a_drive_the_kernel_cannot_copy_from_is_stored_one_object_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on exFAT through FUSE: the first group's first object cannot be
    copied by the kernel; no group is tried again, and every object is
    stored the other way."""
    calls = _counted_groups(monkeypatch)
    counted = groups._copy_group
    assert counted is not None

    def cannot(dir_fd: int, items: list[groups.Item], buf: bytearray) -> list[int]:
        counted(dir_fd, [], buf)
        return [-2]

    monkeypatch.setattr(groups, "_copy_group", cannot)
    sources = _sources(tmp_path / "drive", [300] * 40)
    store = _store(tmp_path)

    assert sorted(store.put_many([_from_file(oid, p) for oid, p in sources.items()])) == sorted(
        (oid, None) for oid in sources
    )
    assert len(calls) <= 2  # the group written beside the first may have started already
    assert all(Path(store.path(oid)).read_bytes() == p.read_bytes() for oid, p in sources.items())
    _nothing_left_in(tmp_path / "tmp")


@needs_c
@pytest.mark.parametrize("fault", ["write:5:eio", "fsync:5:eio", "rename:5:eio"])
def test_a_fault_in_a_group_fails_one_object_and_the_rest_are_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    _counted_groups(monkeypatch)
    sources = _sources(tmp_path / "drive", [200] * 30)
    store = _store(tmp_path)
    faults.configure(fault)
    try:
        results = dict(store.put_many([_from_file(oid, p) for oid, p in sources.items()]))
    finally:
        faults.configure(None)
    failed = {oid: e for oid, e in results.items() if e is not None}
    assert len(failed) == 1 and "Input/output error" in str(next(iter(failed.values())))
    assert set(results) == set(sources)
    for oid, p in sources.items():
        stored = Path(store.path(oid))
        assert not stored.exists() if oid in failed else stored.read_bytes() == p.read_bytes()
    _nothing_left_in(tmp_path / "tmp")


@needs_c
@pytest.mark.parametrize("how", ["in C", "in Python"])
def test_an_object_whose_rename_fails_fails_alone_and_its_file_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A group's files are renamed to their objects' names in one call
    (`place.rename_each`, or in Python where the C part was not built):
    a name the system will not rename to (here, below a file where the
    folder of its first two hex digits should be) fails that object
    alone, with the system's error and its path."""
    _counted_groups(monkeypatch)
    if how == "in Python":
        monkeypatch.setattr(place, "_rename_each", None)
    sources = _sources(tmp_path / "drive", [250] * 30)
    store = _store(tmp_path)
    blocked = list(sources)[9]
    Path(store.path(blocked)).parent.write_bytes(b"a file where a folder should be")
    results = dict(store.put_many([_from_file(oid, p) for oid, p in sources.items()]))
    failed = {oid: e for oid, e in results.items() if e is not None}
    assert set(failed) == {oid for oid in sources if oid.hex()[:2] == blocked.hex()[:2]}
    error = failed[blocked]
    assert isinstance(error, OSError) and error.errno == errno.ENOTDIR
    assert os.fsdecode(error.filename2) == store.path(blocked)
    for oid in set(sources) - set(failed):
        assert Path(store.path(oid)).read_bytes() == sources[oid].read_bytes()
    _nothing_left_in(tmp_path / "tmp")


@needs_c
def test_a_store_stopped_early_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller stops after the first object (an error of its own): the
    groups being written are waited for and their files removed; what was
    stored is whole."""
    _counted_groups(monkeypatch)
    sources = _sources(tmp_path / "drive", [400] * 50)
    store = _store(tmp_path)
    results = store.put_many([_from_file(oid, p) for oid, p in sources.items()])
    first, _ = next(results)
    results.close()  # type: ignore[attr-defined]
    _nothing_left_in(tmp_path / "tmp")
    stored = {oid for oid, _ in _store(tmp_path)}
    assert first in stored and len(stored) < 50
    assert all(Path(store.path(oid)).read_bytes() == sources[oid].read_bytes() for oid in stored)


@needs_c
def test_an_error_on_a_writing_thread_ends_the_store_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _counted_groups(monkeypatch)
    third_group_breaks(monkeypatch, "a fault of the writing thread")
    sources = _sources(tmp_path / "drive", [400] * 50)
    with pytest.raises(RuntimeError, match="a fault of the writing thread"):
        list(_store(tmp_path).put_many([_from_file(oid, p) for oid, p in sources.items()]))
    _nothing_left_in(tmp_path / "tmp")


@needs_c
def test_a_group_folder_that_cannot_be_made_fails_objects_not_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drive too full for a group's folder: the objects that group was
    to write fail with the full drive's error, or are written another way;
    the store itself goes on and reports every object once."""
    _counted_groups(monkeypatch)
    real = os.mkdir

    def full(path: str, *args: object, **kw: object) -> None:
        if os.path.basename(path).startswith("group-"):
            raise OSError(28, "No space left on device")
        real(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "mkdir", full)
    sources = _sources(tmp_path / "drive", [300] * 40)
    store = _store(tmp_path)
    results = list(store.put_many([_from_file(oid, p) for oid, p in sources.items()]))
    monkeypatch.undo()
    assert sorted(oid for oid, _ in results) == sorted(sources)
    failed = [e for _, e in results if e is not None]
    assert failed and all("no space left on the drive" in str(e) for e in failed)
    for oid, e in results:
        if e is None:
            assert Path(store.path(oid)).read_bytes() == sources[oid].read_bytes()
    _nothing_left_in(tmp_path / "tmp")


@needs_c
def test_an_interrupt_while_the_next_group_starts_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C as the store hands the next group to a thread, with the group
    before written and not yet renamed: its files are removed too."""
    from squirrel.plumbing import objects

    _counted_groups(monkeypatch)
    real = objects._threads

    def interrupted_third(n: int) -> object:
        pool = real(n)
        submit = pool.submit
        calls: list[int] = []

        def third_interrupts(*args: object, **kw: object) -> object:
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return submit(*args, **kw)  # type: ignore[arg-type]

        pool.submit = third_interrupts  # type: ignore[method-assign]
        return pool

    monkeypatch.setattr(objects, "_threads", interrupted_third)
    sources = _sources(tmp_path / "drive", [400] * 50)
    with pytest.raises(KeyboardInterrupt):
        list(_store(tmp_path).put_many([_from_file(oid, p) for oid, p in sources.items()]))
    _nothing_left_in(tmp_path / "tmp")
