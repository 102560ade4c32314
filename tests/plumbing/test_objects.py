"""The carrier's object store: content by id, small objects in packs, the
others in files of their own, stored and dropped in bulk."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import blake3
import pytest

from squirrel.errors import ChangedDuringOperation, UnsupportedFormat
from squirrel.plumbing import faults, fsops, objects, packs
from squirrel.plumbing.objects import LARGE_OBJECT, UNLINK_GROUP, ObjectStore, Wanted
from tests.bundle_tools import incompressible


def _store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(str(tmp_path / "objects"), str(tmp_path / "tmp"))


def _contents(n: int) -> dict[bytes, bytes]:
    data = [b"object %d " % i * (1 + i % 7) for i in range(n)]
    return {blake3.blake3(d).digest(): d for d in data}


def _put(store: ObjectStore, contents: dict[bytes, bytes]) -> None:
    wanted = [Wanted(oid, len(d), lambda d=d: [d]) for oid, d in contents.items()]
    assert [err for _, err in store.put_many(wanted)] == [None] * len(contents)


def _read(store: ObjectStore, oid: bytes) -> bytes:
    return b"".join(store.chunks(oid))


def _pack_files(tmp_path: Path) -> list[str]:
    folder = tmp_path / "objects" / "packs"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _loose_files(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "objects").glob("??/*")]


def _nothing_left_in(tmp: Path) -> None:
    assert list(tmp.iterdir()) == []


@pytest.fixture
def loose(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every object a file of its own, as small ones were before packs
    (a carrier written by an older sq holds such files)."""
    monkeypatch.setattr(objects, "LARGE_OBJECT", 1)


# Objects of their own: large ones, and the small ones of older carriers.


@pytest.mark.usefixtures("loose")
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
    assert _pack_files(tmp_path) == []


@pytest.mark.usefixtures("loose")
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


@pytest.mark.usefixtures("loose")
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


@pytest.mark.parametrize("kind", ["packed", "loose"])
def test_has_follows_the_stores_own_puts_and_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    if kind == "loose":
        monkeypatch.setattr(objects, "LARGE_OBJECT", 1)
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
    assert _read(_store(tmp_path), d) == contents[d]


@pytest.mark.usefixtures("loose")
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


# Packs: small objects read, verified and appended to one file.


def _sources(folder: Path, sizes: list[int]) -> dict[bytes, Path]:
    """Files of the given sizes, as on a drive: id -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, size in enumerate(sizes):
        p = folder / f"f{i:04d}"
        p.write_bytes(incompressible(size, i))
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


def _wanted(sources: dict[bytes, Path]) -> list[Wanted]:
    return [_from_file(oid, p) for oid, p in sources.items()]


def _put_with_fault(tmp_path: Path, sources: dict[bytes, Path], fault: str) -> list[objects.Result]:
    """Every source put into a new store, with `fault` injected (`SQ_FAULT`'s form)."""
    faults.configure(fault)
    try:
        return list(_store(tmp_path).put_many(_wanted(sources)))
    finally:
        faults.configure(None)


def test_small_objects_go_into_one_pack_and_large_ones_beside_it(tmp_path: Path) -> None:
    """Small objects (some streamed, not in a file) go into one pack, a large
    one into a file of its own; one held already is not written again:
    each is reported once, read back whole by every way a delivery takes
    it, by this store and by the next command's, and nothing stays in tmp."""
    sources = _sources(tmp_path / "drive", [100 + 37 * i for i in range(60)] + [LARGE_OBJECT + 5])
    store = _store(tmp_path)
    held = list(sources)[7]
    _put(store, {held: sources[held].read_bytes()})
    streamed = set(list(sources)[20:22])
    wanted = [_from_file(oid, p, span=oid not in streamed) for oid, p in sources.items()]

    results = list(store.put_many([*wanted, wanted[3]]))

    assert sorted(results) == sorted((oid, None) for oid in sources)
    large = list(sources)[-1]
    assert [p.name for p in _loose_files(tmp_path)] == [large.hex()]
    assert [n.rsplit(".")[1] for n in _pack_files(tmp_path)] == ["idx", "pack", "idx", "pack"]  # `held`'s, the rest's
    for reader in (store, _store(tmp_path)):
        for oid, p in sources.items():
            assert _read(reader, oid) == p.read_bytes()
            span = reader.span(oid)
            assert span is not None
            try:
                assert os.pread(span.fd, span.size, span.offset) == p.read_bytes()
            finally:
                os.close(span.fd)
            group = reader.group_span(oid, p.stat().st_size)
            if isinstance(group, fsops.SharedSpan):
                assert os.pread(group.fd, group.size, group.offset) == p.read_bytes()
            else:
                assert isinstance(group, fsops.FileAt) and Path(os.fsdecode(group.path)).read_bytes() == p.read_bytes()
        reader.close()
    _nothing_left_in(tmp_path / "tmp")


def test_a_pack_is_closed_at_its_size_and_the_next_one_begun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(objects, "PACK_BYTES", 10_000)
    sources = _sources(tmp_path / "drive", [3000] * 20)
    store = _store(tmp_path)
    assert sorted(store.put_many(_wanted(sources))) == sorted((oid, None) for oid in sources)
    assert len(_pack_files(tmp_path)) == 2 * 5  # four objects a pack: each closed once past 10,000 bytes
    assert store.usage() == 20 * 3000 == _store(tmp_path).usage()


def test_a_source_changed_before_it_is_read_fails_that_object_alone(tmp_path: Path) -> None:
    sources = _sources(tmp_path / "drive", [500] * 30)
    victim_oid, victim = list(sources.items())[12]
    wanted = _wanted(sources)
    victim.write_bytes(victim.read_bytes()[::-1])  # the same size, other bytes

    results = dict(_store(tmp_path).put_many(wanted))

    assert isinstance(results.pop(victim_oid), ChangedDuringOperation)
    assert results == {oid: None for oid in sources if oid != victim_oid}
    assert not _store(tmp_path).has(victim_oid)
    _nothing_left_in(tmp_path / "tmp")


@pytest.mark.parametrize("fault", ["write:1:eio", "fsync:1:eio", "fsync:2:eio", "rename:1:eio", "rename:2:eio"])
def test_a_fault_while_a_pack_is_written_fails_its_objects_and_leaves_nothing_half_stored(
    tmp_path: Path, fault: str
) -> None:
    """Every object of the pack fails with the error; none is held, by this
    store or the next command's, nothing stays in tmp, and a pack left
    without its index is removed by the next command that writes."""
    sources = _sources(tmp_path / "drive", [200] * 30)
    results = dict(_put_with_fault(tmp_path, sources, fault))
    assert set(results) == set(sources)
    assert all("Input/output error" in str(e) for e in results.values())
    assert not any(_store(tmp_path).has(oid) for oid in sources)
    _nothing_left_in(tmp_path / "tmp")

    store = _store(tmp_path)
    assert sorted(store.put_many(_wanted(sources))) == sorted((oid, None) for oid in sources)
    assert len(_pack_files(tmp_path)) == 2
    assert all(_read(_store(tmp_path), oid) == p.read_bytes() for oid, p in sources.items())


def test_a_full_disk_while_a_pack_is_written_fails_that_packs_objects_and_the_next_pack_is_begun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packs of four objects each flushed as it grows: the third write fails
    (ENOSPC) in the middle of a pack; the objects of that pack fail with
    the full disk's error, those before and after are stored."""
    monkeypatch.setattr(objects, "PACK_BYTES", 4 * 3000)
    monkeypatch.setattr(packs, "FLUSH", 3000)
    sources = _sources(tmp_path / "drive", [3000] * 12)
    results = _put_with_fault(tmp_path, sources, "write:6:enospc")
    assert sorted(oid for oid, _ in results) == sorted(sources)
    order = list(sources)
    failed = sorted(order.index(oid) for oid, e in results if e is not None)
    assert failed == [4, 5]  # the second pack's first two objects; the next pack began with the third
    assert all("no space left" in str(e) for _, e in results if e is not None)
    store = _store(tmp_path)
    assert sorted(o for o, _ in store) == sorted(o for o, e in results if e is None)
    assert all(_read(store, o) == sources[o].read_bytes() for o, e in results if e is None)
    _nothing_left_in(tmp_path / "tmp")


@pytest.mark.parametrize("fault", ["fsync:1:eio", "rename:3:eio"])
def test_a_fault_while_a_full_pack_is_committed_beside_the_next_fails_that_pack_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """A full pack is committed on a thread while the next one fills: an
    error there (its fsync, or the rename of the second pack) fails the
    objects of that pack alone; the other packs' objects are stored."""
    monkeypatch.setattr(objects, "PACK_BYTES", 4 * 3000)
    sources = _sources(tmp_path / "drive", [3000] * 12)
    results = _put_with_fault(tmp_path, sources, fault)
    order = list(sources)
    failed = sorted(order.index(oid) for oid, e in results if e is not None)
    assert failed == ([0, 1, 2, 3] if fault.startswith("fsync") else [4, 5, 6, 7])
    assert sorted(oid for oid, _ in results) == sorted(sources)
    store = _store(tmp_path)
    assert sorted(o for o, _ in store) == sorted(o for o, e in results if e is None)
    _nothing_left_in(tmp_path / "tmp")


def test_a_store_stopped_early_leaves_no_temporary_file_and_holds_nothing_half_written(tmp_path: Path) -> None:
    """The caller stops at the first failure (an error of its own): the pack
    being written is removed; what earlier packs stored is whole."""
    sources = _sources(tmp_path / "drive", [400] * 50)
    victim = list(sources.values())[30]
    wanted = _wanted(sources)
    victim.write_bytes(b"x" * 400)
    results = _store(tmp_path).put_many(wanted)
    for _, error in results:
        if error is not None:
            break
    results.close()  # type: ignore[attr-defined]
    _nothing_left_in(tmp_path / "tmp")
    assert list(_store(tmp_path)) == []
    assert _pack_files(tmp_path) == []


def _packed(tmp_path: Path, n: int, size: int = 1000) -> tuple[ObjectStore, dict[bytes, Path]]:
    sources = _sources(tmp_path / "drive", [size] * n)
    store = _store(tmp_path)
    assert all(e is None for _, e in store.put_many(_wanted(sources)))
    return store, sources


def test_a_pack_none_of_whose_objects_is_wanted_is_deleted_whole(tmp_path: Path) -> None:
    store, sources = _packed(tmp_path, 40)
    oids = list(sources)

    assert store.would_free(oids[:15]) == 0
    assert store.delete_many(oids[:15]) == (15, 0)  # the pack still serves 25 of 40: kept as it is
    assert len(_pack_files(tmp_path)) == 2
    assert not any(store.has(o) for o in oids[:15])
    assert store.would_free(oids[15:]) == 40 * 1000
    assert store.delete_many(oids[15:]) == (25, 40 * 1000)

    assert _pack_files(tmp_path) == [] and list(_store(tmp_path)) == []
    assert store.usage() == 0


def test_a_pack_that_serves_less_than_half_its_bytes_is_written_again(tmp_path: Path) -> None:
    store, sources = _packed(tmp_path, 40)
    oids = list(sources)
    before = _pack_files(tmp_path)

    assert store.would_free([*oids[:21], oids[0]]) == 21 * 1000
    count, freed = store.delete_many(oids[:21])

    assert (count, freed) == (21, 21 * 1000)
    after = _pack_files(tmp_path)
    assert len(after) == 2 and not set(after) & set(before)
    for reader in (store, _store(tmp_path)):
        assert sorted(reader) == sorted((o, 1000) for o in oids[21:])
        assert all(_read(reader, o) == sources[o].read_bytes() for o in oids[21:])
    assert store.usage() == 19 * 1000
    _nothing_left_in(tmp_path / "tmp")


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 1
    path.write_bytes(bytes(data))


def test_an_object_damaged_in_its_pack_is_found_by_the_hash_and_left_out_when_the_pack_is_written_again(
    tmp_path: Path,
) -> None:
    store, sources = _packed(tmp_path, 10)
    oids = list(sources)
    (pack,) = (tmp_path / "objects" / "packs").glob("*.pack")
    entries = {oid: offset for oid, offset, _ in packs.read(str(pack.parent), pack.stem).entries}
    damaged = oids[9]
    _flip(pack, entries[damaged] + 10)

    store = _store(tmp_path)
    assert store.hash_of(damaged, lambda n: None) != damaged
    assert store.hash_of(oids[8], lambda n: None) == oids[8]
    store.delete_many(oids[:6])

    assert sorted(o for o, _ in _store(tmp_path)) == sorted(oids[6:9])


def test_what_a_killed_command_left_in_the_packs_folder_goes_with_the_next_that_writes(tmp_path: Path) -> None:
    """A pack renamed without its index (killed between the two), a pack
    whose index is damaged, and an old pack whose objects a new one holds
    (killed while writing a pack again, before the old one went): a
    command that only reads leaves them and serves none of the first two;
    the next that writes removes all three."""
    store, sources = _packed(tmp_path, 10)
    folder = tmp_path / "objects" / "packs"
    (index,) = folder.glob("*.idx")
    shutil.copy(index.with_suffix(".pack"), folder / "0123.pack")
    shutil.copy(index.with_suffix(".pack"), folder / "4567.pack")
    shutil.copy(index, folder / "4567.idx")
    _flip(folder / "4567.idx", 40)
    shutil.copy(index.with_suffix(".pack"), folder / "89ab.pack")  # a second pack of the same objects
    shutil.copy(index, folder / "89ab.idx")

    reader = _store(tmp_path)
    assert sorted(o for o, _ in reader) == sorted(sources)
    assert len(_pack_files(tmp_path)) == 7

    writer = _store(tmp_path)
    writer.delete_many([])
    first = min(index.stem, "89ab")  # of two whole packs of the same objects, the first by name serves them
    assert _pack_files(tmp_path) == [f"{first}.idx", f"{first}.pack"]
    assert all(_read(writer, o) == p.read_bytes() for o, p in sources.items())


def test_a_pack_whose_header_is_not_a_packs_is_left_unread_and_a_newer_one_refused(tmp_path: Path) -> None:
    store, sources = _packed(tmp_path, 5)
    (pack,) = (tmp_path / "objects" / "packs").glob("*.pack")
    _flip(pack, 0)
    assert list(_store(tmp_path)) == []  # not read: its content is taken again by a later visit
    _flip(pack, 0)
    data = bytearray(pack.read_bytes())
    data[8] = packs.PACK_VERSION + 1
    pack.write_bytes(bytes(data))
    with pytest.raises(UnsupportedFormat, match="newer than this sq"):
        list(_store(tmp_path))


def test_an_index_that_cannot_be_read_stops_the_command_and_removes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error is not damage: the pack is not removed as a damaged one
    would be, and the error reaches the command."""
    _packed(tmp_path, 5)
    before = _pack_files(tmp_path)

    def unreadable(directory: str, name: str) -> packs.Pack:
        raise OSError(5, "Input/output error", os.path.join(directory, name + ".idx"))

    monkeypatch.setattr(packs, "read", unreadable)
    with pytest.raises(OSError, match="Input/output error"):
        _store(tmp_path).delete_many([])
    monkeypatch.undo()
    assert _pack_files(tmp_path) == before and len(list(_store(tmp_path))) == 5
