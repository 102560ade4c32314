"""Fuzzing real bundles: seeded truncations, bit flips, overwritten,
deleted and inserted bytes.

Every mutated bundle must be either refused cleanly (only BadBundle,
UnsupportedFormat or WrongVault) or read with every object either refused
(BadBundle) or verified; never another exception, and never a hang (each
case has a time limit). A sample of the cases is applied to a copy of the
receiver: a refused bundle leaves it exactly as it was, an accepted one
leaves only content that was there before or that the original bundle
carried.

SQ_FUZZ_CASES sets the number of cases (default 3000); SQ_FUZZ_SEED the seed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import blake3
import pytest

from squirrel.errors import BadBundle, DamagedObject, UnsupportedFormat, WrongVault
from squirrel.plumbing.bundle import BundleReader
from squirrel.porcelain.apply import apply
from squirrel.porcelain.pack import pack
from tests.bundle_tools import (
    copy_replica,
    object_positions,
    offsets,
    sender_and_receiver,
    snapshot,
)
from tests.helpers import tree, write

CASES = int(os.environ.get("SQ_FUZZ_CASES", "3000"))
SEED = int(os.environ.get("SQ_FUZZ_SEED", "20240501"))
APPLY_EVERY = 20  # one case in this many is also applied to a replica
TIME_LIMIT = 10.0  # seconds per case: a mutated bundle must never make sq hang
REFUSALS = (BadBundle, UnsupportedFormat, WrongVault)
FAST_TMP = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


@dataclass
class Corpus:
    bundles: list[bytes]
    receivers: list[Path]  # the replica each bundle was packed for, before applying it
    allowed: list[set[bytes]]  # content a replica may hold after applying a mutation of it


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """Two real bundles: a first sync, and one with edits, a deletion and a conflict."""
    tmp = tmp_path_factory.mktemp("fuzz")
    a, b, first = sender_and_receiver(tmp)
    b0 = copy_replica(b, tmp / "B0")
    objects_first = read_objects(first)
    apply(str(first), str(b))
    write(a / "notes.txt", "A's new notes\n" * 30)
    write(b / "notes.txt", "B's concurrent notes\n", seconds_ago=100)
    (a / "photos" / "img1.jpg").unlink()
    write(a / "docs" / "new.md", b"new and compressible\n" * 100)
    second = tmp / "second.sqb"
    pack(str(a), str(second), for_replica=str(b))
    b1 = copy_replica(b, tmp / "B1")
    return Corpus(
        [first.read_bytes(), second.read_bytes()],
        [b0, b1],
        [
            set(tree(b0, folders=False).values()) | objects_first,
            set(tree(b1, folders=False).values()) | read_objects(second),
        ],
    )


def read_objects(path: Path) -> set[bytes]:
    with BundleReader(str(path)) as r:
        return {b"".join(r.object_chunks(oid)) for oid in r.objects}


def regions(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the bundle's parts, so that small parts get their share of mutations."""
    off = offsets(data)
    out = [(0, 14), (off["header"], off["manifest"]), (off["manifest"], off["objects"])]
    for head, payload, obj in object_positions(data):
        out.append((head, payload))
        if obj.payload:
            out.append((payload, payload + len(obj.payload)))
    out.append((off["end_tag"], len(data)))
    return out


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    start, end = rng.choice(regions(data))
    pos = rng.randrange(start, end)
    kind = rng.choice(["truncate", "flip", "flip", "flips", "byte", "delete", "insert", "extend"])
    if kind == "truncate":
        return f"truncate at {pos}", data[:pos]
    if kind == "flip":
        bit = rng.randrange(8)
        return f"flip bit {bit} at {pos}", data[:pos] + bytes([data[pos] ^ (1 << bit)]) + data[pos + 1 :]
    if kind == "flips":
        out = bytearray(data)
        spots = [rng.randrange(len(data)) for _ in range(rng.randint(2, 4))]
        for s in spots:
            out[s] ^= 1 << rng.randrange(8)
        return f"flip bits at {spots}", bytes(out)
    if kind == "byte":
        value = rng.choice([0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        return f"set byte {pos} to {value}", data[:pos] + bytes([value]) + data[pos + 1 :]
    if kind == "delete":
        n = rng.randint(1, 16)
        return f"delete {n} bytes at {pos}", data[:pos] + data[pos + n :]
    if kind == "insert":
        junk = rng.randbytes(rng.randint(1, 16))
        return f"insert {len(junk)} bytes at {pos}", data[:pos] + junk + data[pos:]
    return "extend", data + rng.randbytes(rng.randint(1, 64))


class Hang(Exception):
    pass


@pytest.fixture
def time_limit() -> Iterator[None]:
    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"a case took more than {TIME_LIMIT} s")

    old = signal.signal(signal.SIGALRM, alarm)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


def read_everything(path: Path) -> str:
    """Read a (mutated) bundle as `sq bundle verify` would; returns what happened."""
    try:
        r = BundleReader(str(path))
    except REFUSALS:
        return "refused"
    with r:
        for oid, ref in r.objects.items():
            h = blake3.blake3()
            n = 0
            try:
                for chunk in r.object_chunks(oid):
                    n += len(chunk)
                    assert n <= ref.size, "an object produced more than its declared size"
                    h.update(chunk)
            except BadBundle:
                continue
        r.verify()
    return "read"


def test_mutated_bundles_are_refused_cleanly_or_only_verified_content_is_written(
    corpus: Corpus, time_limit: None
) -> None:
    rng = random.Random(SEED)
    outcomes: dict[str, int] = {"refused": 0, "read": 0, "applied": 0, "apply-refused": 0}
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as scratch:
        path = Path(scratch) / "mutant.sqb"
        for case in range(CASES):
            which = rng.randrange(len(corpus.bundles))
            what, data = mutate(corpus.bundles[which], rng)
            if data == corpus.bundles[which]:
                continue
            path.write_bytes(data)
            signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
            try:
                outcomes[read_everything(path)] += 1
                if case % APPLY_EVERY == 0:
                    outcomes[apply_to_copy(corpus, which, path, Path(scratch) / f"case{case}")] += 1
            except Exception as e:
                raise AssertionError(f"case {case} (seed {SEED}, bundle {which}, {what}): {e!r}") from e
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    # The mutations reach past the first checks often enough to mean something.
    assert outcomes["refused"] > CASES // 4
    assert outcomes["read"] > CASES // 20
    assert outcomes["applied"] + outcomes["apply-refused"] >= CASES // APPLY_EVERY * 9 // 10


def apply_to_copy(corpus: Corpus, which: int, bundle: Path, where: Path) -> str:
    b = copy_replica(corpus.receivers[which], where)
    before = snapshot(b)
    try:
        apply(str(bundle), str(b))
    except REFUSALS as e:
        # A damaged object is found only as it is copied: it ends the apply,
        # and what came before it stays, complete and verified (checked below).
        if not isinstance(e, DamagedObject):
            assert snapshot(b) == before, "a refused bundle changed the receiver"
            return "apply-refused"
    assert list((b / ".squirrel" / "tmp").iterdir()) == [], "temporary files left behind"
    unknown = set(tree(b, folders=False).values()) - corpus.allowed[which]
    assert not unknown, f"content that is neither the receiver's nor the bundle's: {sorted(unknown)[:3]}"
    shutil.rmtree(where)
    return "applied"
