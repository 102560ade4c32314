"""Bundles between real replicas: `pack` + `apply` against `push`, moves,
chains, replays and reordering, partial bundles, and bad bundles.

A bundle that is refused must leave the receiver exactly as it was: every
refusal test compares a snapshot of the receiver (files, mode, mtime, trash,
`sq ls-index --json` and every raw index record) before and after, both
through the library and through the real `sq` executable.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path

import blake3
import pytest
import zstandard

from squirrel.errors import BadBundle, DamagedObject, SquirrelError, UnsupportedFormat, WrongVault
from squirrel.plumbing import bundle_writer, fetch, pieces
from squirrel.plumbing.bundle import BundleReader
from squirrel.plumbing.groups import Fetched
from squirrel.plumbing.index import FLAG_PARTIAL, ReplicaIndex, decode_entry, encode_entry
from squirrel.plumbing.knowledge import Knowledge
from squirrel.plumbing.plan import Action
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.vtime import VectorTime
from squirrel.porcelain.apply import apply
from squirrel.porcelain.engine import SyncReport
from squirrel.porcelain.init import init
from squirrel.porcelain.knowledge import write_knowledge
from squirrel.porcelain.pack import PackReport, pack
from squirrel.porcelain.push import push
from squirrel.porcelain.scan import scan
from tests.bundle_tools import (
    ENC_RAW,
    ENC_ZSTD,
    REC_ENTRY,
    REC_SYNC,
    BundleParts,
    Record,
    copy_replica,
    incompressible,
    join_bundle,
    ls_index,
    object_positions,
    offsets,
    paths_of,
    sender_and_receiver,
    snapshot,
    split_bundle,
)
from tests.helpers import make_tree, run_sq, sq_in_process, tree, write

KIB = 1024
MIB = 1024 * KIB


def changed(r: SyncReport) -> int:
    return r.created + r.updated + r.deleted + r.moved + len(r.conflicts) + len(r.failed) + len(r.deferred)


def conflicts_of(r: SyncReport) -> list[tuple[str, str, str | None]]:
    return sorted((c["kind"], c["path"], c["copy"]) for c in r.to_json()["conflicts"])


def new_vault(tmp: Path, *names: str) -> list[Path]:
    roots: list[Path] = []
    for name in names:
        root = tmp / name
        root.mkdir(exist_ok=True)
        init(str(root), name=name, join=str(roots[0]) if roots else None)
        roots.append(root)
    return roots


def bundle_to(src: Path, dst: Path, out: Path, **kw: object) -> tuple[PackReport, SyncReport]:
    """Pack what `dst` lacks (as --for) and apply it to `dst`."""
    packed = pack(str(src), str(out), for_replica=str(dst), **kw)  # type: ignore[arg-type]
    return packed, apply(str(out), str(dst))


# Pack + apply does what push does -------------------------------------------
def test_pack_and_apply_do_exactly_what_push_does(tmp_path: Path) -> None:
    a, b, bundle = sender_and_receiver(tmp_path)
    twin = copy_replica(b, tmp_path / "B-twin")  # same identity: same index after the same sync
    write(b / "notes.txt", "the receiver's concurrent notes\n")  # a create/create conflict
    write(twin / "notes.txt", "the receiver's concurrent notes\n")
    os.utime(twin / "notes.txt", ns=(os.stat(b / "notes.txt").st_mtime_ns,) * 2)
    via_bundle = apply(str(bundle), str(b))
    via_push = push(str(a), str(twin))
    assert tree(b) == tree(twin)
    assert ls_index(b) == ls_index(twin)
    assert conflicts_of(via_bundle) == conflicts_of(via_push)
    assert [c.kind for c in via_bundle.conflicts] == ["create/create"]
    for field in ("created", "updated", "deleted", "skipped"):
        assert getattr(via_bundle, field) == getattr(via_push, field), field
    assert via_bundle.bytes_copied == via_push.bytes_copied > 0


def test_a_library_of_small_photos_past_the_memory_budget_arrives_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thumbnails beyond what a pack keeps in memory go through its side
    file, and beyond that are read again: each arrives as it was."""
    monkeypatch.setattr(bundle_writer, "KEEP_TOTAL", 20 * KIB)
    monkeypatch.setattr(bundle_writer, "STAGE_TOTAL", 40 * KIB)
    files = {f"roll{i // 10}/img_{i:03d}.jpg": incompressible(2 * KIB + 97 * i, i) for i in range(40)}
    files["roll0/notes.txt"] = "caption\n" * 500  # compressed, in the side file too
    a, b = new_vault(tmp_path, "A", "B")
    make_tree(a, files)
    packed, applied = bundle_to(a, b, tmp_path / "photos.sqb")
    assert packed.objects == 41
    assert applied.created == 45 and applied.failed == [] and applied.deferred == []
    assert tree(b) == tree(a)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("photos")] == ["photos.sqb"]


def test_a_bundle_for_anyone_brings_a_new_replica_everything(tmp_path: Path) -> None:
    a, _, _ = sender_and_receiver(tmp_path)
    c = tmp_path / "C"
    c.mkdir()
    init(str(c), name="C", join=str(a))
    report = pack(str(a), str(tmp_path / "all.sqb"))
    assert report.objects == 6  # every distinct content, once
    applied = apply(str(tmp_path / "all.sqb"), str(c))
    assert tree(c) == tree(a)
    assert applied.deferred == [] and applied.failed == []


def test_a_subpath_bundle_syncs_only_that_subtree(tmp_path: Path) -> None:
    a, b, _ = sender_and_receiver(tmp_path)
    packed = pack(str(a), str(tmp_path / "photos.sqb"), for_replica=str(b), subpaths=[str(a / "photos")])
    assert packed.objects == 3
    apply(str(tmp_path / "photos.sqb"), str(b))
    got = tree(b)
    assert {p for p in got if p.startswith("photos")} == {p for p in tree(a) if p.startswith("photos")}
    assert "notes.txt" not in got
    again = pack(str(a), str(tmp_path / "rest.sqb"), for_replica=str(b))
    assert again.objects == 3  # notes.txt, readme.md, empty.txt: photos/ is known now
    apply(str(tmp_path / "rest.sqb"), str(b))
    assert tree(b, folders=False) == {
        **tree(a, folders=False),
        "mine.txt": b"the receiver's own file\n",
        "docs/local.md": b"only on the receiver\n",
    }


@pytest.mark.parametrize("receiver", ["--for", "--base"])
def test_a_subpath_bundle_below_a_file_of_the_receiver_does_what_its_push_does(tmp_path: Path, receiver: str) -> None:
    a, b = new_vault(tmp_path, "A", "B")
    make_tree(a, {"d/e/z.jpg": "A's photo"})
    make_tree(b, {"d": "B's file named d"})
    twin = copy_replica(b, tmp_path / "B-twin")
    out = tmp_path / "d-e.sqb"
    if receiver == "--for":
        pack(str(a), str(out), for_replica=str(b), subpaths=[str(a / "d" / "e")])
    else:
        write_knowledge(str(b), str(tmp_path / "b.knowledge"))
        pack(str(a), str(out), base=str(tmp_path / "b.knowledge"), subpaths=[str(a / "d" / "e")])
    via_bundle = apply(str(out), str(b))
    via_push = push(str(a), str(twin), [str(a / "d" / "e")])
    assert via_bundle.incomplete == [] and via_bundle.deferred == []
    assert tree(b) == tree(twin)
    assert conflicts_of(via_bundle) == conflicts_of(via_push) != []
    assert tree(b, folders=False)["d/e/z.jpg"] == b"A's photo"


def test_duplicate_content_travels_once(tmp_path: Path) -> None:
    a, b = new_vault(tmp_path, "A", "B")
    same = incompressible(50 * KIB, 9)
    make_tree(a, {"one.bin": same, "two.bin": same, "d/three.bin": same})
    packed, applied = bundle_to(a, b, tmp_path / "dup.sqb")
    assert packed.objects == 1 and packed.content_bytes == len(same)
    assert tree(b, folders=False) == tree(a, folders=False)
    assert applied.bytes_copied == len(same)


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    a, b, bundle = sender_and_receiver(tmp_path)
    before = snapshot(b)
    report = apply(str(bundle), str(b), dry_run=True)
    assert report.dry_run and report.created > 0
    assert snapshot(b) == before


# Moves cost no content ---------------------------------------------------------
@pytest.fixture(scope="module")
def moved_100mb(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A and B hold the same 100 MiB folder, among other files; A then moved it."""
    tmp = tmp_path_factory.mktemp("move")
    a, b = tmp / "A", tmp / "B"
    files = {f"shoot/raw/IMG_{i:04d}.CR2": os.urandom(MIB) for i in range(100)}
    others = {f"notes/{i:03d}.txt": f"note {i}" for i in range(150)}
    make_tree(a, {**files, **others})
    b.mkdir()
    init(str(a), name="A")
    init(str(b), name="B", join=str(a))
    push(str(a), str(b))
    (a / "archive" / "2024").mkdir(parents=True)
    (a / "shoot").rename(a / "archive" / "2024" / "shoot")
    return tmp, a, b


@pytest.mark.parametrize("how", ["for", "base"])
def test_moving_a_100_mb_folder_makes_a_tiny_bundle_and_apply_renames(
    moved_100mb: tuple[Path, Path, Path], tmp_path: Path, how: str
) -> None:
    _, a, b_orig = moved_100mb
    b = copy_replica(b_orig, tmp_path / "B")
    out = tmp_path / "move.sqb"
    if how == "for":
        packed = pack(str(a), str(out), for_replica=str(b))
    else:
        res = run_sq("knowledge", b, "-o", tmp_path / "b.knowledge")
        assert res.code == 0, res.stderr
        packed = pack(str(a), str(out), base=str(tmp_path / "b.knowledge"))
    assert out.stat().st_size < 100_000
    assert packed.objects == 0 and packed.known_elsewhere == 100
    applied = apply(str(out), str(b))
    assert applied.moved == 100
    assert applied.bytes_copied == 0
    assert applied.failed == [] and applied.deferred == []
    assert tree(b) == tree(a)
    assert list((b / ".squirrel" / "trash").iterdir()) == []


def test_moving_the_folder_that_holds_most_files_is_not_a_mass_delete(tmp_path: Path) -> None:
    a, b = new_vault(tmp_path, "A", "B")
    make_tree(a, {**{f"all/{i}.jpg": f"photo {i}" for i in range(10)}, "index.txt": "i"})
    push(str(a), str(b))
    (a / "2024").mkdir()
    (a / "all").rename(a / "2024" / "all")
    _, applied = bundle_to(a, b, tmp_path / "move.sqb")
    assert applied.moved == 10 and applied.bytes_copied == 0
    assert tree(b) == tree(a)


# Chains ---------------------------------------------------------------------------
def chain(tmp: Path, replicas: list[Path], tag: str) -> list[SyncReport]:
    """Each replica packs for the next, which applies it."""
    out = []
    for i, (src, dst) in enumerate(zip(replicas, replicas[1:], strict=False)):
        _, rep = bundle_to(src, dst, tmp / f"{tag}-{i}.sqb")
        assert rep.failed == [] and rep.deferred == []
        out.append(rep)
    return out


def test_changes_travel_along_a_chain_of_bundles(tmp_path: Path) -> None:
    a, b, c = new_vault(tmp_path, "A", "B", "C")
    make_tree(a, {"keep.txt": "k", "edit.txt": "v1", "gone.txt": "g", "olddir/x.txt": "x", "move/me.txt": "m"})
    chain(tmp_path, [a, b, c], "r1")
    assert tree(c) == tree(a)
    write(a / "edit.txt", "v2")
    (a / "gone.txt").unlink()
    shutil.rmtree(a / "olddir")
    (a / "move" / "me.txt").rename(a / "moved.txt")
    write(a / "new" / "file.txt", "new")
    reports = chain(tmp_path, [a, b, c], "r2")
    assert tree(b) == tree(c) == tree(a)
    assert reports[1].deleted >= 3  # gone.txt, olddir/x.txt, olddir (and the move's source)
    assert reports[1].moved == 1
    assert reports[1].conflicts == []


def test_a_conflict_settled_midway_travels_as_plain_versions(tmp_path: Path) -> None:
    a, b, c = new_vault(tmp_path, "A", "B", "C")
    make_tree(a, {"f.txt": "base"})
    chain(tmp_path, [a, b, c], "r1")
    write(a / "f.txt", "A's edit", seconds_ago=100)
    write(b / "f.txt", "B's edit", seconds_ago=200)
    at_b, at_c = chain(tmp_path, [a, b, c], "r2")
    assert conflicts_of(at_b) == [("update/update", "f.txt", at_b.to_json()["conflicts"][0]["copy"])]
    assert at_c.conflicts == []  # C never had a concurrent version
    assert tree(c) == tree(b)
    assert (b / "f.txt").read_bytes() == b"A's edit"  # the later mtime stays at the path
    # Back to A: B's settlement knows both versions, so A takes it quietly.
    back = chain(tmp_path, [c, b, a], "r3")
    assert all(r.conflicts == [] for r in back)
    assert tree(a) == tree(b) == tree(c)


def test_a_conflict_and_a_deletion_meet_along_the_chain(tmp_path: Path) -> None:
    a, b, c = new_vault(tmp_path, "A", "B", "C")
    make_tree(a, {"doc.txt": "base", "other.txt": "o"})
    chain(tmp_path, [a, b, c], "r1")
    (a / "doc.txt").unlink()  # A deletes, C edits: delete/update at C, the edit survives
    write(c / "doc.txt", "C's edit")
    (a / "other.txt").unlink()
    at_b, at_c = chain(tmp_path, [a, b, c], "r2")
    assert at_c.conflicts and at_c.conflicts[0].kind == "delete/update"
    assert (c / "doc.txt").read_bytes() == b"C's edit"
    assert not (c / "other.txt").exists()
    chain(tmp_path, [c, b, a], "r3")
    assert tree(a) == tree(b) == tree(c) == {"doc.txt": b"C's edit"}


# Replays and order --------------------------------------------------------------
def test_applying_the_same_bundle_twice_is_a_no_op(tmp_path: Path) -> None:
    a, b, bundle = sender_and_receiver(tmp_path)
    apply(str(bundle), str(b))
    before = snapshot(b)
    again = apply(str(bundle), str(b))
    assert changed(again) == 0
    assert snapshot(b) == before


def test_an_old_bundle_after_a_newer_one_changes_nothing(tmp_path: Path) -> None:
    a, b, old = sender_and_receiver(tmp_path)
    apply(str(old), str(b))
    write(a / "notes.txt", "rewritten")
    (a / "photos" / "img1.jpg").unlink()
    shutil.rmtree(a / "photos" / "2024")
    _, newer = bundle_to(a, b, tmp_path / "newer.sqb")
    assert newer.deleted == 3
    before = snapshot(b)
    replay = apply(str(old), str(b))
    assert changed(replay) == 0
    assert snapshot(b) == before
    assert (b / "notes.txt").read_bytes() == b"rewritten"


def test_bundles_applied_out_of_order_lose_nothing_and_converge(tmp_path: Path) -> None:
    a, b = new_vault(tmp_path, "A", "B")
    make_tree(a, {"f.txt": "v0", "g.txt": "g0", "d1/x": "x0", "d2/y": "y0"})
    push(str(a), str(b))
    with Replica.open(str(b), write=False) as rep:
        Knowledge.of_replica(rep).write(str(tmp_path / "k0.json"))
    write(a / "f.txt", "v1", seconds_ago=300)
    pack(str(a), str(tmp_path / "b1.sqb"), base=str(tmp_path / "k0.json"))
    write(a / "f.txt", "v2", seconds_ago=200)
    (a / "g.txt").unlink()
    write(a / "d1" / "x", "x2", seconds_ago=200)
    pack(str(a), str(tmp_path / "b2.sqb"), base=str(tmp_path / "k0.json"))
    # Meanwhile B edits g.txt (A deleted it: B's edit must survive) and adds a file.
    write(b / "g.txt", "B's g", seconds_ago=250)
    write(b / "h.txt", "B's h", seconds_ago=250)
    twin = copy_replica(b, tmp_path / "B-twin")

    r2 = apply(str(tmp_path / "b2.sqb"), str(b))
    r1 = apply(str(tmp_path / "b1.sqb"), str(b))
    assert [c.kind for c in r2.conflicts] == ["delete/update"]
    assert changed(r1) == 0  # everything in b1 is older than what b2 brought
    t1 = apply(str(tmp_path / "b1.sqb"), str(twin))
    t2 = apply(str(tmp_path / "b2.sqb"), str(twin))
    assert len(t1.conflicts) + len(t2.conflicts) == 1
    expected = {"f.txt": b"v2", "g.txt": b"B's g", "h.txt": b"B's h", "d1/x": b"x2", "d2/y": b"y0"}
    assert tree(b, folders=False) == tree(twin, folders=False) == expected
    # And back: A converges with B, without a new conflict.
    _, back = bundle_to(b, a, tmp_path / "back.sqb")
    assert back.conflicts == []
    assert tree(a) == tree(b)


def test_subtree_bundles_applied_in_either_order_converge(tmp_path: Path) -> None:
    a, b = new_vault(tmp_path, "A", "B")
    make_tree(a, {"d1/x": "x", "d2/y": "y", "top.txt": "t"})
    push(str(a), str(b))
    write(a / "d1" / "x", "x2")
    write(a / "d2" / "y", "y2")
    (a / "top.txt").unlink()
    pack(str(a), str(tmp_path / "d1.sqb"), for_replica=str(b), subpaths=[str(a / "d1")])
    pack(str(a), str(tmp_path / "d2.sqb"), for_replica=str(b), subpaths=[str(a / "d2")])
    pack(str(a), str(tmp_path / "all.sqb"), for_replica=str(b))
    twin = copy_replica(b, tmp_path / "B-twin")
    for name in ("d2", "d1", "all"):
        apply(str(tmp_path / f"{name}.sqb"), str(b))
    for name in ("all", "d1", "d2"):
        apply(str(tmp_path / f"{name}.sqb"), str(twin))
    assert tree(b) == tree(twin) == tree(a)
    assert ls_index(b) == ls_index(twin)


def test_a_bundle_packed_for_another_replica_leaves_what_it_does_not_describe(tmp_path: Path) -> None:
    a, b, c = new_vault(tmp_path, "A", "B", "C")
    make_tree(a, {"old/1.txt": "one", "old/2.txt": "two"})
    push(str(a), str(b))  # B knows old/, C does not
    write(a / "new.txt", "new")
    pack(str(a), str(tmp_path / "for-b.sqb"), for_replica=str(b))
    with BundleReader(str(tmp_path / "for-b.sqb")) as r:
        assert r.entries[b"old"].flags & FLAG_PARTIAL
    report = apply(str(tmp_path / "for-b.sqb"), str(c))
    assert tree(c, folders=False) == {"new.txt": b"new"}
    assert report.incomplete == [b"old"]
    _, rest = bundle_to(a, c, tmp_path / "for-c.sqb")
    assert tree(c) == tree(a)


# Partial bundles -------------------------------------------------------------------
def a_sync_time(root: Path, path: bytes, replica: str) -> int:
    with Replica.open(str(root), write=False) as rep:
        return rep.index.sync_time(path).get(replica, 0)


def test_partial_bundles_stay_within_the_limit_defer_the_rest_and_converge(tmp_path: Path) -> None:
    a, b = new_vault(tmp_path, "A", "B")
    contents = {f"pics/{i:02d}.jpg": incompressible(40 * KIB + i, i) for i in range(12)}
    make_tree(a, {**contents, "small.txt": "s"})
    with Replica.open(str(a), write=False) as rep:
        a_id = rep.id
    limit = 100 * KIB
    allowance = 8 * KIB  # header, manifest and object headers
    rounds = 0
    while True:
        rounds += 1
        assert rounds <= 8, "partial bundles do not converge"
        out = tmp_path / f"part-{rounds}.sqb"
        before = {p.encode(): a_sync_time(b, p.encode(), a_id) for p in contents}
        before[b"pics"] = a_sync_time(b, b"pics", a_id)
        packed = pack(str(a), str(out), for_replica=str(b), max_size=limit)
        assert packed.content_bytes <= limit
        assert out.stat().st_size <= limit + allowance
        applied = apply(str(out), str(b))
        assert applied.failed == []
        deferred = {p for p, _ in applied.deferred}
        assert deferred == {p for p, _ in packed.left_behind}
        for p in deferred:
            assert not (b / p.decode()).exists()
            assert a_sync_time(b, p, a_id) == before[p], "a deferred path claims to be synced"
        if deferred:
            assert a_sync_time(b, b"pics", a_id) == before[b"pics"]
        if not deferred:
            break
    assert rounds == 6  # two 40 KiB objects fit in 100 KiB, twelve need six bundles
    assert tree(b) == tree(a)
    final = pack(str(a), str(tmp_path / "final.sqb"), for_replica=str(b))
    assert final.objects == 0


def test_an_object_larger_than_the_limit_is_left_behind_every_time(tmp_path: Path) -> None:
    a, b = new_vault(tmp_path, "A", "B")
    make_tree(a, {"big.bin": incompressible(200 * KIB, 1), "small.bin": incompressible(10 * KIB, 2)})
    for i in range(2):
        packed, applied = bundle_to(a, b, tmp_path / f"p{i}.sqb", max_size=100 * KIB)
        assert [p for p, _ in packed.left_behind] == [b"big.bin"]
        assert [p for p, _ in applied.deferred] == [b"big.bin"]
    assert tree(b, folders=False) == {"small.bin": incompressible(10 * KIB, 2)}


# Bad bundles: refused whole, nothing changes -------------------------------------------
@dataclass
class Base:
    a: Path
    b: Path
    bundle: Path
    other_vault_bundle: Path


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    tmp = tmp_path_factory.mktemp("bad")
    a, b, bundle = sender_and_receiver(tmp)
    z = tmp / "Z"
    make_tree(z, {"notes.txt": "another vault"})
    init(str(z), name="Z")
    pack(str(z), str(tmp / "z.sqb"))
    return Base(a, b, bundle, tmp / "z.sqb")


Mutation = Callable[[bytes], bytes]


def truncate(where: str, delta: int = 0) -> Mutation:
    return lambda data: data[: offsets(data)[where] + delta]


def truncate_to(n: int) -> Mutation:
    return lambda data: data[:n] if n >= 0 else data[:n]


def flip_byte(offset: Callable[[bytes], int], bit: int = 0) -> Mutation:
    def mutate(data: bytes) -> bytes:
        out = bytearray(data)
        out[offset(data)] ^= 1 << bit
        return bytes(out)

    return mutate


def other_hex_digit(offset: Callable[[bytes], int]) -> Mutation:
    """Another hex digit at `offset`: a different, well-formed replica id."""

    def mutate(data: bytes) -> bytes:
        pos = offset(data)
        return data[:pos] + (b"1" if data[pos : pos + 1] == b"0" else b"0") + data[pos + 1 :]

    return mutate


def set_byte(offset: Callable[[bytes], int], value: bytes) -> Mutation:
    return lambda data: data[: offset(data)] + value + data[offset(data) + 1 :]


def at(where: str, delta: int = 0) -> Callable[[bytes], int]:
    return lambda data: offsets(data)[where] + delta


def in_header(key: str, delta: int = 0) -> Callable[[bytes], int]:
    """The first byte of `key`'s JSON value (plus delta)."""
    return lambda data: data.index(b'"%s": ' % key.encode()) + len(key) + 4 + delta


def largest_raw(data: bytes) -> tuple[int, int, int]:
    """(record offset, payload offset, size) of the largest raw object."""
    raw = [(o.size, h, p) for h, p, o in object_positions(data) if o.encoding == ENC_RAW]
    size, head, payload = max(raw)
    return head, payload, size


def parts(change: Callable[[BundleParts], None], fix: bool = True) -> Mutation:
    def mutate(data: bytes) -> bytes:
        p = split_bundle(data)
        change(p)
        return join_bundle(p, fix=fix)

    return mutate


def file_value(p: BundleParts, path: bytes = b"notes.txt") -> bytes:
    return next(r.value for r in p.records if r.path == path)


def add_entry(path: bytes) -> Callable[[BundleParts], None]:
    return lambda p: p.records.append(Record(REC_ENTRY, path, file_value(p)))


def set_header(**values: object) -> Callable[[BundleParts], None]:
    return lambda p: p.header.update(values)


def set_source(**values: object) -> Callable[[BundleParts], None]:
    return lambda p: p.header["source"].update(values)


def dup_first_object(p: BundleParts) -> None:
    p.objects.append(p.objects[-1])


def grow_stored(p: BundleParts) -> None:
    p.objects[-1].stored = len(p.objects[-1].payload) + 10_000


def raw_size_mismatch(p: BundleParts) -> None:
    obj = next(o for o in p.objects if o.encoding == ENC_RAW and o.size)
    obj.size += 1


def make_partial_parent(p: BundleParts) -> None:
    for r in p.records:
        if r.path == b"photos":
            r.value = encode_entry(replace(decode_entry(r.value), flags=FLAG_PARTIAL))


def make_root_a_file(p: BundleParts) -> None:
    p.records[0] = Record(REC_ENTRY, b"", file_value(p))


def counts_off(p: BundleParts) -> None:
    p.header["entries"] += 1


def manifest_bomb(p: BundleParts) -> None:
    p.stored_manifest = zstandard.ZstdCompressor().compress(p.manifest() + b"\0" * (8 * MIB))


def manifest_window(p: BundleParts) -> None:
    params = zstandard.ZstdCompressionParameters(window_log=30, write_content_size=False)
    c = zstandard.ZstdCompressor(compression_params=params).compressobj()
    p.stored_manifest = c.compress(p.manifest()) + c.flush()


def deep_header(p: BundleParts) -> None:
    p.header_bytes = b"[" * 200_000 + b"]" * 200_000


BAD: dict[str, tuple[Mutation, type[SquirrelError]]] = {
    # Truncated anywhere, or extended.
    "empty-file": (lambda d: b"", BadBundle),
    "truncated-in-signature": (truncate_to(5), BadBundle),
    "truncated-in-prelude": (truncate_to(12), BadBundle),
    "truncated-in-header": (truncate("header", 100), BadBundle),
    "truncated-in-manifest": (truncate("manifest", 40), BadBundle),
    "truncated-at-objects": (truncate("objects"), BadBundle),
    "truncated-in-object-record": (truncate("objects", 20), BadBundle),
    "truncated-in-payload": (lambda d: d[: largest_raw(d)[1] + 1000], BadBundle),
    "truncated-before-end-tag": (truncate("end_tag"), BadBundle),
    "truncated-in-trailer": (truncate("trailer", 20), BadBundle),
    "truncated-by-one-byte": (truncate_to(-1), BadBundle),
    "extended-by-one-byte": (lambda d: d + b"\0", BadBundle),
    # A bit flipped in the structure.
    "flipped-signature": (flip_byte(lambda d: 2), BadBundle),
    "flipped-version": (flip_byte(lambda d: 8, bit=1), UnsupportedFormat),
    "flipped-header-length": (flip_byte(lambda d: 10, bit=3), BadBundle),
    "flipped-header-brace": (flip_byte(at("header")), BadBundle),
    "flipped-header-total-size": (flip_byte(in_header("total_size", 1)), BadBundle),
    "flipped-header-manifest-hash": (flip_byte(in_header("manifest_hash", 5)), BadBundle),
    "flipped-header-manifest-stored": (flip_byte(in_header("manifest_stored", 1)), BadBundle),
    "flipped-header-manifest-size": (flip_byte(in_header("manifest_size", 1)), BadBundle),
    "flipped-header-entries": (flip_byte(in_header("entries", 0), bit=1), BadBundle),
    "changed-header-vault-digit": (other_hex_digit(in_header("vault", 3)), BadBundle),  # the header's hash
    "non-hex-header-vault-digit": (set_byte(in_header("vault", 3), b"g"), BadBundle),
    "flipped-header-capability": (flip_byte(in_header("capabilities", 3)), BadBundle),
    "flipped-manifest-first-byte": (flip_byte(at("manifest")), BadBundle),
    "flipped-manifest-middle": (flip_byte(lambda d: (offsets(d)["manifest"] + offsets(d)["objects"]) // 2), BadBundle),
    "flipped-manifest-last-byte": (flip_byte(at("objects", -1), bit=4), BadBundle),
    "flipped-object-tag": (flip_byte(at("objects"), bit=1), BadBundle),
    "flipped-raw-object-size": (flip_byte(lambda d: largest_raw(d)[0] + 33), BadBundle),
    "flipped-object-encoding": (flip_byte(lambda d: largest_raw(d)[0] + 41, bit=1), BadBundle),
    "flipped-object-stored-length": (flip_byte(lambda d: largest_raw(d)[0] + 44), BadBundle),
    "flipped-end-tag": (flip_byte(at("end_tag"), bit=2), BadBundle),
    "flipped-trailer-tag": (flip_byte(at("trailer", 3)), BadBundle),
    # Formats this reader does not know.
    "unknown-version": (parts(lambda p: setattr(p, "version", 3)), UnsupportedFormat),
    "header-format-disagrees": (parts(set_header(format=1)), BadBundle),
    "unknown-capability": (parts(set_header(capabilities=["zstd", "delta-v9"])), UnsupportedFormat),
    "capabilities-not-a-list": (parts(set_header(capabilities="zstd")), BadBundle),
    "header-not-json": (parts(lambda p: setattr(p, "header_bytes", b"{not json")), BadBundle),
    "header-not-an-object": (parts(lambda p: setattr(p, "header_bytes", b"[1, 2]")), BadBundle),
    "header-deeply-nested": (parts(deep_header), BadBundle),
    "header-too-large": (parts(lambda p: setattr(p, "header_bytes", b" " * ((1 << 20) + 1))), BadBundle),
    "source-replica-not-hex": (parts(set_source(replica="zz")), BadBundle),
    "source-replica-too-long": (parts(set_source(replica="0123456789abcdef00")), BadBundle),
    "source-counter-negative": (parts(set_source(counter=-1)), BadBundle),
    "source-counter-too-large": (parts(set_source(counter=1 << 63)), BadBundle),
    "tops-with-dotdot": (parts(set_header(tops=["Li4="])), BadBundle),
    "tops-not-base64": (parts(set_header(tops=["!"])), BadBundle),
    # Hostile manifests, every length and hash consistent.
    "path-absolute": (parts(add_entry(b"/etc/cron.d/evil")), BadBundle),
    "path-dotdot": (parts(add_entry(b"../escape.txt")), BadBundle),
    "path-dotdot-inside": (parts(add_entry(b"docs/../../escape.txt")), BadBundle),
    "path-dot-component": (parts(add_entry(b"docs/./x.txt")), BadBundle),
    "path-empty-component": (parts(add_entry(b"docs//x.txt")), BadBundle),
    "path-trailing-slash": (parts(add_entry(b"docs/x.txt/")), BadBundle),
    "path-nul-byte": (parts(add_entry(b"docs/x\0.txt")), BadBundle),
    "path-backslash": (parts(add_entry(b"docs\\..\\..\\x.txt")), BadBundle),
    "path-into-squirrel": (parts(add_entry(b".squirrel/replica.json")), BadBundle),
    "path-into-squirrel-index": (parts(add_entry(b".squirrel/index/data.mdb")), BadBundle),
    "sync-path-into-squirrel": (
        parts(lambda p: p.records.append(Record(REC_SYNC, b".squirrel", VectorTime().encode()))),
        BadBundle,
    ),
    "duplicate-entry": (parts(add_entry(b"notes.txt")), BadBundle),
    "duplicate-sync": (parts(lambda p: p.records.append(Record(REC_SYNC, b"", VectorTime().encode()))), BadBundle),
    "entry-without-parent": (parts(add_entry(b"nowhere/x.txt")), BadBundle),
    "entry-under-a-file": (parts(add_entry(b"notes.txt/x.txt")), BadBundle),
    "entry-under-a-partial-dir": (parts(make_partial_parent), BadBundle),
    "no-root": (parts(lambda p: p.records.remove(p.records[0])), BadBundle),
    "root-is-a-file": (parts(make_root_a_file), BadBundle),
    "unknown-record-type": (parts(lambda p: p.records.append(Record(7, b"x", b""))), BadBundle),
    "damaged-entry-value": (parts(lambda p: p.records.append(Record(REC_ENTRY, b"x", b"\x09" * 30))), BadBundle),
    "damaged-sync-value": (parts(lambda p: p.records.append(Record(REC_SYNC, b"docs", b"\x05\x01"))), BadBundle),
    "manifest-without-end": (parts(lambda p: setattr(p, "manifest_tail", b"")), BadBundle),
    "bytes-after-manifest-end": (parts(lambda p: setattr(p, "manifest_tail", b"\0\0")), BadBundle),
    "entry-count-mismatch": (parts(counts_off, fix=False), BadBundle),
    "manifest-bomb": (parts(manifest_bomb), BadBundle),
    "manifest-window-1-gib": (parts(manifest_window), BadBundle),
    # Hostile object records.
    "duplicate-object": (parts(dup_first_object), BadBundle),
    "object-runs-past-the-end": (parts(grow_stored), BadBundle),
    "raw-object-size-not-stored-size": (parts(raw_size_mismatch), BadBundle),
    "object-count-mismatch": (parts(lambda p: p.header.update(objects=1), fix=False), BadBundle),
}


def one_error_line(stderr: bytes) -> str:
    lines = stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("sq: error: "), lines
    return lines[0]


# These also run through a real `sq` process; the others through `main` in this process.
IN_A_REAL_PROCESS = {"truncated-in-payload", "unknown-version", "unknown-capability", "changed-header-vault-digit"}


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_bundle_is_refused_and_the_receiver_is_untouched(base: Base, tmp_path: Path, name: str) -> None:
    mutate, error = BAD[name]
    original = base.bundle.read_bytes()
    data = mutate(original)
    assert data != original
    bad = tmp_path / "bad.sqb"
    bad.write_bytes(data)
    b = copy_replica(base.b, tmp_path / "B")
    before = snapshot(b)
    with pytest.raises(SquirrelError) as info:
        apply(str(bad), str(b))
    assert type(info.value) is error, info.value
    assert snapshot(b) == before
    ran = sq_in_process("apply", bad, b)
    assert ran.code == error.exit_code
    line = one_error_line(ran.stderr)
    assert "bundle" in line or "vault" in line
    assert ran.stdout == b""
    if name in IN_A_REAL_PROCESS:
        res = run_sq("apply", bad, b)
        assert res == ran, "a real process and main() in this one differ"
    assert snapshot(b) == before


def test_a_bundle_of_another_vault_is_refused(base: Base, tmp_path: Path) -> None:
    b = copy_replica(base.b, tmp_path / "B")
    before = snapshot(b)
    with pytest.raises(WrongVault):
        apply(str(base.other_vault_bundle), str(b))
    ran = sq_in_process("apply", base.other_vault_bundle, b)
    assert ran.code == 6
    assert "vault" in one_error_line(ran.stderr)
    assert snapshot(b) == before


def test_a_bundle_is_refused_by_the_replica_that_packed_it(base: Base, tmp_path: Path) -> None:
    a = copy_replica(base.a, tmp_path / "A")
    before = snapshot(a)
    with pytest.raises(WrongVault, match="packed from this replica"):
        apply(str(base.bundle), str(a))
    assert snapshot(a) == before


def test_every_bit_flip_in_the_header_is_refused(base: Base) -> None:
    data = base.bundle.read_bytes()
    start, end = offsets(data)["header"], offsets(data)["manifest"]
    accepted = []
    scratch = base.bundle.with_name("flip-scratch.sqb")
    for pos in range(start, end):
        out = bytearray(data)
        out[pos] ^= 1
        scratch.write_bytes(out)
        try:
            BundleReader(str(scratch)).close()
        except (BadBundle, UnsupportedFormat):
            continue
        with BundleReader(str(scratch)) as r:
            if r.vault != json.loads(data[start:end])["vault"]:
                continue  # refused as WrongVault by apply
        accepted.append(data[pos - 10 : pos + 10])
    assert accepted == []


def test_a_bit_flip_in_the_senders_counter_is_refused(tmp_path: Path) -> None:
    a, b = new_vault(tmp_path, "A", "B")
    make_tree(a, {"f.txt": "v1"})
    pack(str(a), str(tmp_path / "1.sqb"), for_replica=str(b))
    data = bytearray((tmp_path / "1.sqb").read_bytes())
    at = data.index(b'"counter": 1,') + len(b'"counter": ')
    data[at] ^= 0x02  # "1" -> "3": the receiver would believe it knows A's events 2 and 3
    (tmp_path / "bad.sqb").write_bytes(bytes(data))
    try:
        with pytest.raises(BadBundle):
            apply(str(tmp_path / "bad.sqb"), str(b))
    finally:
        # What accepting it costs: A's next edit (event 2) never reaches B.
        write(a / "f.txt", "v2")
        bundle_to(a, b, tmp_path / "2.sqb")
        assert (b / "f.txt").read_bytes() == b"v2"


# Bad objects: refused one by one, never written ----------------------------------------
def replace_object(oid_of: Callable[[BundleParts], int], payload: bytes | None = None, size_delta: int = 0) -> Mutation:
    def change(p: BundleParts) -> None:
        obj = p.objects[oid_of(p)]
        if payload is not None:
            obj.payload = payload
        obj.size += size_delta

    return parts(change)


def zstd_index(p: BundleParts) -> int:
    return next(i for i, o in enumerate(p.objects) if o.encoding == ENC_ZSTD and o.size > 1000)


def raw_index(p: BundleParts) -> int:
    return max(range(len(p.objects)), key=lambda i: (p.objects[i].encoding == ENC_RAW, p.objects[i].size))


def big_window_frame(window_log: int) -> Callable[[bytes], bytes]:
    def frame(content: bytes) -> bytes:
        params = zstandard.ZstdCompressionParameters(window_log=window_log, write_content_size=False)
        c = zstandard.ZstdCompressor(compression_params=params).compressobj()
        return c.compress(content) + c.flush()

    return frame


def with_zstd_payload(make: Callable[[bytes], bytes]) -> Mutation:
    """Replace the large zstd object's frame by `make(its content)`."""

    def change(p: BundleParts) -> None:
        obj = p.objects[zstd_index(p)]
        content = zstandard.ZstdDecompressor().decompress(obj.payload)
        obj.payload = make(content)

    return parts(change)


def flip_payload(which: Callable[[BundleParts], int]) -> Mutation:
    def change(p: BundleParts) -> None:
        obj = p.objects[which(p)]
        b = bytearray(obj.payload)
        b[len(b) // 2] ^= 0x10
        obj.payload = bytes(b)

    return parts(change)


def entry_size_off(p: BundleParts) -> None:
    for r in p.records:
        if r.path == b"photos/img2.jpg":
            e = decode_entry(r.value)
            r.value = encode_entry(replace(e, size=e.size + 1))


def flip_oid(p: BundleParts) -> None:
    obj = p.objects[raw_index(p)]
    obj.oid = bytes([obj.oid[0] ^ 1]) + obj.oid[1:]


BAD_OBJECTS: dict[str, Mutation] = {
    "flipped-raw-payload": flip_payload(raw_index),
    "flipped-zstd-payload": flip_payload(zstd_index),
    "raw-content-not-matching-id": parts(lambda p: setattr(p.objects[raw_index(p)], "payload", bytes(5000))),
    "zstd-content-not-matching-id": with_zstd_payload(lambda c: zstandard.ZstdCompressor().compress(c[::-1])),
    "zstd-bomb": with_zstd_payload(lambda c: zstandard.ZstdCompressor(level=19).compress(c + b"\0" * (64 * MIB))),
    "zstd-window-256-mib": with_zstd_payload(big_window_frame(28)),
    "zstd-window-1-gib": with_zstd_payload(big_window_frame(30)),
    "zstd-shorter-than-declared": with_zstd_payload(lambda c: zstandard.ZstdCompressor().compress(c[:-1])),
    "declared-size-too-large": replace_object(zstd_index, size_delta=1),
    "entry-size-not-object-size": parts(entry_size_off),
    "object-id-flipped": parts(flip_oid),
}


def damaged_paths(original: bytes, data: bytes) -> set[bytes]:
    """Paths whose object differs between the two bundles (or went missing)."""
    before = {o.oid: o for _, _, o in object_positions(original)}
    after = {o.oid: o for _, _, o in object_positions(data)}
    by_oid = paths_of(original)
    hit = {oid for oid in before if after.get(oid) != before[oid]}
    out = {p for oid in hit for p in by_oid[oid]}
    for r in split_bundle(data).records:  # an entry changed in place
        if r.kind == REC_ENTRY and r not in split_bundle(original).records:
            out.add(r.path)
    return out


@pytest.mark.parametrize("name", list(BAD_OBJECTS))
def test_a_bad_object_is_never_written_and_a_later_bundle_brings_it(base: Base, tmp_path: Path, name: str) -> None:
    original = base.bundle.read_bytes()
    data = BAD_OBJECTS[name](original)
    hit = damaged_paths(original, data)
    assert hit
    bad = tmp_path / "bad.sqb"
    bad.write_bytes(data)
    b = copy_replica(base.b, tmp_path / "B")
    mine = tree(b, folders=False)
    cli_copy = copy_replica(base.b, tmp_path / "B-cli")

    # An object that does not match its id ends the apply (a retry meets it
    # again); one whose entry names an object the bundle lacks is deferred.
    try:
        report = apply(str(bad), str(b))
    except DamagedObject as e:
        assert e.path in hit
        assert "again" not in e.message
        damaged = True
    else:
        assert hit <= {p for p, _ in report.deferred} and report.failed == []
        damaged = False
    got = tree(b, folders=False)
    for p in hit:
        assert not (b / p.decode()).exists()
    sender = tree(base.a, folders=False)
    for path, content in got.items():
        assert content == sender.get(path) or content == mine.get(path), path
    assert list((b / ".squirrel" / "tmp").iterdir()) == []

    ran = sq_in_process("apply", bad, cli_copy)
    assert ran.code == (10 if damaged else 0)  # deferred paths alone are not a failure
    if damaged:
        assert len(ran.err.strip().splitlines()) == 1, ran.err
    assert tree(cli_copy, folders=False) == got

    # The next good bundle brings what the damaged one could not.
    _, again = bundle_to(base.a, b, tmp_path / "again.sqb")
    assert again.failed == [] and again.deferred == []
    assert tree(b, folders=False) == {**sender, **mine}


def damaged_bundle(tmp: Path, damaged: list[str], files: int = 1500) -> tuple[Path, Path, dict[str, bytes]]:
    """An empty replica B, and a bundle for it of `files` new files from A
    (new/0000.jpg, ...) whose objects for the `damaged` paths have a bit
    flipped."""
    a, b = new_vault(tmp, "A", "B")
    content = {f"new/{i:04d}.jpg": incompressible(2000 + i, i) for i in range(files)}
    make_tree(a, content)
    out = tmp / "x.sqb"
    pack(str(a), str(out), for_replica=str(b))
    data = bytearray(out.read_bytes())
    for path in damaged:
        oid = blake3.blake3(content[path]).digest()
        payload = next(p for _, p, o in object_positions(bytes(data)) if o.oid == oid)
        data[payload + 10] ^= 1
    out.write_bytes(bytes(data))
    return b, out, content


def test_a_damaged_object_late_in_the_first_batch_leaves_nothing_fetched_ahead(tmp_path: Path) -> None:
    """Content is fetched ahead past the intent log's batch being made (of
    1,024 actions): an apply that a damaged object ends late in its first
    batch leaves the files before it in place, none after, and no
    temporary file fetched for the batch after it."""
    b, out, files = damaged_bundle(tmp_path, ["new/0900.jpg"])
    with pytest.raises(DamagedObject) as e:
        apply(str(out), str(b))
    assert e.value.path == b"new/0900.jpg"
    assert tree(b, folders=False) == {p: files[p] for p in sorted(files)[:900]}
    assert list((b / ".squirrel" / "tmp").iterdir()) == []


def test_the_damaged_object_named_is_the_one_the_apply_stopped_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two groups of files are fetched at once, on two threads: the later
    damaged object may be found first. The error names the one whose turn
    ended the apply, and counts what was applied before it."""
    b, out, files = damaged_bundle(tmp_path, ["new/0300.jpg", "new/0600.jpg"])
    write_group = fetch.Fetcher._write_group

    def slower_for_the_first(self: fetch.Fetcher, acts: list[Action]) -> list[Fetched]:
        if any(act.path == b"new/0300.jpg" for act in acts):
            time.sleep(0.5)  # the group holding new/0600.jpg finishes first
        return write_group(self, acts)

    monkeypatch.setattr(fetch.Fetcher, "_write_group", slower_for_the_first)
    with pytest.raises(DamagedObject) as e:
        apply(str(out), str(b))
    assert e.value.path == b"new/0300.jpg"
    assert "new/0300.jpg" in e.value.message and "0600" not in e.value.message
    assert e.value.applied == 300 + 1  # the files before it, and their folder
    assert tree(b, folders=False) == {p: files[p] for p in sorted(files)[:300]}
    assert list((b / ".squirrel" / "tmp").iterdir()) == []


# The receiver's own symlinks ------------------------------------------------------------
@pytest.mark.parametrize("where", ["photos", "photos/2024"])
def test_a_symlinked_directory_on_the_receiver_is_never_written_through(base: Base, tmp_path: Path, where: str) -> None:
    b = copy_replica(base.b, tmp_path / "B")
    outside = tmp_path / "outside"
    outside.mkdir()
    if where == "photos/2024":
        (b / "photos").mkdir()
        scan(str(b))
    (b / where).symlink_to(outside, target_is_directory=True)
    report = apply(str(base.bundle), str(b))
    assert list(outside.iterdir()) == []
    failed = {p for p, _ in report.failed}
    assert f"{where}/trip.jpg".encode() in failed or b"photos/2024/trip.jpg" in failed
    assert os.path.islink(b / where)
    assert (b / "notes.txt").exists()  # the rest applied
    with Replica.open(str(b), write=False) as rep:
        assert rep.index.get(b"photos/2024/trip.jpg") is None
    ran = sq_in_process("apply", base.bundle, b)
    assert ran.code == 18
    assert ran.err.splitlines()[-1].startswith("sq: error: ")
    assert list(outside.iterdir()) == []


def test_a_symlinked_file_on_the_receiver_is_not_followed(base: Base, tmp_path: Path) -> None:
    b = copy_replica(base.b, tmp_path / "B")
    target = tmp_path / "outside.txt"
    target.write_bytes(b"outside, untouched")
    (b / "notes.txt").symlink_to(target)
    report = apply(str(base.bundle), str(b))
    assert target.read_bytes() == b"outside, untouched"
    assert os.path.islink(b / "notes.txt")
    assert b"notes.txt" in {p for p, _ in report.failed}


# Bugs --------------------------------------------------------------------------------------
def test_a_copy_of_a_file_the_receiver_deleted_still_arrives(tmp_path: Path) -> None:
    a, b = new_vault(tmp_path, "A", "B")
    make_tree(a, {"p.txt": "content X"})
    push(str(a), str(b))
    (b / "p.txt").unlink()
    scan(str(b))
    shutil.copy2(a / "p.txt", a / "q.txt")
    for i in range(3):
        _, report = bundle_to(a, b, tmp_path / f"copy-{i}.sqb")
    assert (b / "q.txt").read_bytes() == b"content X"


def test_deleting_a_folder_that_both_sides_created_converges(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    make_tree(a, {"d/x.txt": "A's x"})
    make_tree(b, {"d/mine.txt": "B's own"})
    init(str(a), name="A")
    init(str(b), name="B", join=str(a))
    bundle_to(a, b, tmp_path / "1.sqb")
    shutil.rmtree(a / "d")
    bundle_to(a, b, tmp_path / "2.sqb")
    bundle_to(b, a, tmp_path / "3.sqb")
    bundle_to(a, b, tmp_path / "4.sqb")
    assert tree(a) == tree(b) == {"d/": b"", "d/mine.txt": b"B's own"}


def test_packing_for_an_unscanned_receiver_carries_what_it_no_longer_holds(tmp_path: Path) -> None:
    a, b = new_vault(tmp_path, "A", "B")
    make_tree(a, {"a.txt": "v1"})
    push(str(a), str(b))
    (a / "a.txt").rename(a / "b.txt")
    write(b / "a.txt", "B's edit, not scanned yet")
    _, applied = bundle_to(a, b, tmp_path / "x.sqb")
    assert applied.deferred == []
    assert (b / "b.txt").read_bytes() == b"v1"


def test_a_folder_moved_away_and_replaced_by_a_file_syncs_in_one_go(tmp_path: Path) -> None:
    a, b = new_vault(tmp_path, "A", "B")
    make_tree(a, {"f/w": "w", "d/x": "x"})
    push(str(a), str(b))
    (a / "f").rename(a / "d" / "m")
    write(a / "f", "a file where the folder was")
    _, applied = bundle_to(a, b, tmp_path / "x.sqb")
    assert applied.failed == []
    assert tree(b) == tree(a)


def test_the_copy_arrives_by_push(tmp_path: Path) -> None:
    """The same history as above, with push: what the bundle should match."""
    a, b = new_vault(tmp_path, "A", "B")
    make_tree(a, {"p.txt": "content X"})
    push(str(a), str(b))
    (b / "p.txt").unlink()
    scan(str(b))
    shutil.copy2(a / "p.txt", a / "q.txt")
    push(str(a), str(b))
    assert (b / "q.txt").read_bytes() == b"content X"


def test_blake3_of_empty_content_is_carried_for_empty_files(base: Base) -> None:
    with BundleReader(str(base.bundle)) as r:
        empty = blake3.blake3(b"").digest()
        assert r.entries[b"docs/empty.txt"].oid == empty
        assert b"".join(r.object_chunks(empty)) == b""


def test_a_bundle_holding_every_object_is_applied_without_searching_the_receiver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large sync is made of many plans, and each looked through the
    whole receiver's index for copies of its content: applying 100,000
    files took 500 passes over a growing index. Content the bundle holds
    is taken from the bundle; the receiver is searched only for what the
    bundle lacks (a move, below)."""
    monkeypatch.setattr(pieces, "PIECE", 4)
    a, b = tmp_path / "A", tmp_path / "B"
    files = {f"d{i}/img{j}.jpg": incompressible(2000 + 10 * i + j, 10 * i + j) for i in range(4) for j in range(3)}
    make_tree(a, files)
    make_tree(b, {})
    init(str(a), name="A")
    init(str(b), name="B", join=str(a))
    bundle = tmp_path / "a.sqb"
    pack(str(a), str(bundle), for_replica=str(b))
    searched: list[int] = []
    real = ReplicaIndex.paths_with_objects

    def counted(self: ReplicaIndex, oids: Collection[bytes]) -> dict[bytes, list[bytes]]:
        searched.append(len(oids))
        return real(self, oids)

    monkeypatch.setattr(ReplicaIndex, "paths_with_objects", counted)
    report = apply(str(bundle), str(b))
    assert report.created == 16 and not report.failed
    assert tree(b) == tree(a)
    assert searched == []
    # A move on A: the bundle carries no content, and B finds it at home.
    (a / "d0").rename(a / "moved")
    scan(str(a))
    moved = tmp_path / "moved.sqb"
    pack(str(a), str(moved), for_replica=str(b))
    assert BundleReader(str(moved)).objects == {}
    report = apply(str(moved), str(b))
    assert not report.failed and searched
    assert tree(b) == tree(a)
