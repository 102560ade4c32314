"""Writing a bundle (docs/formats/bundle.md): `BundleWriter` streams the
objects from disk into `FILE.part`, verifying each against its id, and
renames it when complete; `header_for` makes the header it starts from.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO

import blake3
import zstandard

from squirrel.errors import ChangedDuringOperation, SquirrelError
from squirrel.plumbing import faults, fsops
from squirrel.plumbing.bundle import (
    BLOCK,
    CONFLICTS_2,
    ENC_RAW,
    ENC_ZSTD,
    OBJ_HEAD,
    PRELUDE,
    REC_CONFLICT,
    REC_DELETED,
    REC_END,
    REC_ENTRY,
    REC_SYNC,
    SIGNATURE,
    TRAILER,
    VERSION,
)
from squirrel.plumbing.durable import start_writeback
from squirrel.plumbing.entry import Entry, encode_entry
from squirrel.plumbing.fsops import WRITEBACK_STEP, Span
from squirrel.plumbing.ids import hasher
from squirrel.plumbing.progress import Meter
from squirrel.plumbing.records import ConflictRecord
from squirrel.plumbing.vtime import VectorTime, encode_varint

SAMPLE = 1 << 20
# The sample is compressed at a fast level, only to learn whether the
# object compresses at all: for a photo's 10 KiB thumbnail that takes 3 µs,
# where the storing level (3) took 30, setting up its tables on every call.
# The two disagree only on data that level 3 shrinks by little more than
# the 5% the test asks for; such an object is then stored raw.
SAMPLE_LEVEL = -1
# A raw object this small, read whole for its sample, is kept in memory
# until the bundle is written, up to KEEP_TOTAL for the whole bundle, and
# beyond that written to the side file with the compressed ones, up to
# STAGE_TOTAL (the room a pack takes beside its bundle): a thumbnail or a
# sidecar is then read once, not twice. Past both, it is read again.
KEEP_SMALL = 256 << 10
KEEP_TOTAL = 64 << 20
STAGE_TOTAL = 1 << 30
# The bundle is written in blocks of this size where its pieces are small
# (object heads, small objects), and the side file read and written through
# a buffer of it.
OUT_BLOCK = 1 << 20


class BundleWriter:
    """Write a bundle: `add_entry`/`add_sync` for the manifest, then
    `add_object` for each object, then `close` (or `abort`). With
    `dry_run`, every object is sampled and compressed as it would be, and
    `close` returns the bundle's exact size, but no file is written."""

    def __init__(self, path: str, header: dict[str, Any], level: int = 3, dry_run: bool = False) -> None:
        self.path = os.path.abspath(path)
        self.dry_run = dry_run
        self.part = self.path + ".part"
        self.header = dict(header)
        self.level = level
        self.manifest = io.BytesIO()
        self.entries = 0
        self.syncs = 0
        self.notices = 0
        self.conflicts = 0
        self._conflict_paths: set[bytes] = set()
        self._capabilities = {"zstd"}
        self.objects = 0
        self.object_bytes = 0
        self._seen_paths: set[bytes] = set()
        self._objects_file: BinaryIO | None = None
        self._pending: list[_Pending] = []  # every object, in the order the bundle holds them
        self._kept = 0  # bytes of small raw objects kept in memory
        self._staged = 0  # and in the side file
        self._sampler = zstandard.ZstdCompressor(level=SAMPLE_LEVEL)

    def _record(self, tag: int, path: bytes, value: bytes) -> None:
        """One manifest record: tag, path and value, each length-prefixed."""
        self.manifest.write(bytes([tag]) + encode_varint(len(path)) + path + encode_varint(len(value)) + value)

    def add_entry(self, path: bytes, entry: Entry) -> None:
        self._record(REC_ENTRY, path, encode_entry(entry))
        self.entries += 1

    def add_notice(self, path: bytes, n: VectorTime) -> None:
        """The exact time at which the sender's `path` was deleted."""
        self._record(REC_DELETED, path, n.encode())
        self.notices += 1

    def add_conflict(self, record: ConflictRecord) -> None:
        """An open conflict of the sender's: the receiver lists it too once
        it holds both of its files."""
        self._record(REC_CONFLICT, record.path, json.dumps(record.to_json(), sort_keys=True).encode())
        self.conflicts += 1
        if record.resolved or record.path in self._conflict_paths:
            self._capabilities.add(CONFLICTS_2)
        self._conflict_paths.add(record.path)

    def add_sync(self, path: bytes, s: VectorTime) -> None:
        self._record(REC_SYNC, path, s.encode())
        self.syncs += 1

    def _objects(self) -> BinaryIO:
        if self._objects_file is None:
            # Compressed objects are staged in a side file: the header, which
            # precedes them, needs their stored sizes (and so are small raw
            # ones past KEEP_TOTAL, not to be read twice). A dry run needs
            # the sizes alone.
            self._objects_file = (
                _Discard() if self.dry_run else open(self.part + ".objects", "w+b", buffering=OUT_BLOCK)  # noqa: SIM115
            )
        return self._objects_file

    def add_object(
        self,
        oid: bytes,
        size: int,
        read: Callable[[], Iterator[bytes]],
        meter: Meter | None = None,
        span: Callable[[], Span] | None = None,
    ) -> int:
        """Add one object, read from `read()`; returns the bytes it will take
        in the bundle. Its first MiB decides the encoding. A compressed
        object is compressed (and verified) now, into the side file, and
        `meter` hears of it; a raw one is only noted, and `close` calls
        `read()` again to stream it into the bundle, verified on the way,
        so its bytes are written once (with `span`, the file range that
        holds it, by the kernel). A small one read whole already is not
        read again (`KEEP_SMALL`): it is kept in memory and verified as it
        is written, or, once `KEEP_TOTAL` is kept, verified now and put in
        the side file (up to `STAGE_TOTAL`)."""
        it = read()
        first = b""
        try:
            for chunk in it:
                first += chunk
                if len(first) >= SAMPLE:
                    break
            sample = self._sampler.compress(first) if first else b""
            if not first or len(sample) >= len(first) * 0.95:
                if len(first) == size <= KEEP_SMALL and self._kept + size <= KEEP_TOTAL:
                    # Read whole already: written from memory, not read again
                    # (`close` verifies it like any raw object).
                    self._kept += size
                    read, span = partial(iter, (first,)), None
                elif len(first) == size <= KEEP_SMALL and self._staged + size <= STAGE_TOTAL:
                    self._stage_raw(oid, first, meter)
                    return size
                self._pending.append(_Pending(oid, size, ENC_RAW, size, read, span=span))
                self.objects += 1
                self.object_bytes += size
                return size
            f = self._objects()
            payload_start = f.tell()
            h = hasher(size)
            total = 0
            cctx = zstandard.ZstdCompressor(level=self.level, write_content_size=True)
            with cctx.stream_writer(f, size=size, closefd=False) as w:
                for chunk in _chain(first, it):
                    h.update(chunk)
                    total += len(chunk)
                    w.write(chunk)
                    if meter is not None:
                        meter.add_bytes(len(chunk))
        finally:
            _close(it)
        stored = f.tell() - payload_start
        if total != size or h.digest() != oid:
            raise ChangedDuringOperation("a file changed while it was packed; scan and pack again")
        self._pending.append(_Pending(oid, size, ENC_ZSTD, stored, None, payload_start))
        if meter is not None:
            meter.file_done(size, total)
        self.objects += 1
        self.object_bytes += stored
        return stored

    def _stage_raw(self, oid: bytes, content: bytes, meter: Meter | None) -> None:
        """A small raw object read whole, verified and put in the side file."""
        if blake3.blake3(content).digest() != oid:
            raise ChangedDuringOperation("a file changed while it was packed; scan and pack again")
        f = self._objects()
        at = f.tell()
        f.write(content)
        self._staged += len(content)
        self._pending.append(_Pending(oid, len(content), ENC_RAW, len(content), None, at))
        if meter is not None:
            meter.add_bytes(len(content))
            meter.file_done(len(content), len(content))
        self.objects += 1
        self.object_bytes += len(content)

    def close(self, meter: Meter | None = None, finish: Meter | None = None) -> int:
        """Write FILE.part (the raw objects streamed from their files or
        from memory and verified, the staged ones copied from the side
        file), fsync, rename to FILE; returns the bundle's size. `meter`
        hears how the raw objects go, `finish` the final flush to the disk."""
        self.manifest.write(bytes([REC_END]))
        raw_manifest = self.manifest.getvalue()
        stored_manifest = zstandard.ZstdCompressor(level=self.level).compress(raw_manifest)
        header = {
            **self.header,
            "format": VERSION,
            "capabilities": sorted(self._capabilities),
            "entries": self.entries,
            "syncs": self.syncs,
            "notices": self.notices,
            "conflicts": self.conflicts,
            "objects": self.objects,
            "manifest_size": len(raw_manifest),
            "manifest_stored": len(stored_manifest),
            "manifest_hash": blake3.blake3(raw_manifest).hexdigest(),
            "total_size": 0,
        }
        objects_size = sum(OBJ_HEAD.size + p.stored for p in self._pending) + 1

        def encode_header(total: int) -> bytes:
            header["total_size"] = total
            return json.dumps(header, sort_keys=True).encode()

        # total_size is part of the header, whose length depends on it: fix point.
        total = 0
        for _ in range(4):
            hb = encode_header(total)
            new_total = PRELUDE.size + len(hb) + 32 + len(stored_manifest) + objects_size + len(TRAILER) + 32
            if new_total == total:
                break
            total = new_total
        if self.dry_run:
            self._drop_objects_file()
            return total
        hb = encode_header(total)
        meter = meter if meter is not None else Meter("")
        h = hasher(total)
        written = flushed = 0
        small = bytearray()  # small pieces not yet written, at most OUT_BLOCK
        with open(self.part, "w+b", buffering=0) as out:

            def write(piece: bytes | bytearray | memoryview) -> None:
                nonlocal written, flushed
                h.update(piece)
                view = memoryview(piece)
                while view:
                    n = out.write(view)
                    assert n is not None
                    view = view[n:]
                written += len(piece)
                if written - flushed >= WRITEBACK_STEP:  # the disk works while the rest is read
                    start_writeback(out.fileno(), flushed, written - flushed)
                    flushed = written

            def drain() -> None:
                if small:
                    write(small)
                    small.clear()

            def put(piece: bytes | memoryview) -> None:
                if len(small) + len(piece) > OUT_BLOCK:
                    drain()
                if len(piece) >= OUT_BLOCK:
                    write(piece)
                else:
                    small.extend(piece)

            for piece in (PRELUDE.pack(SIGNATURE, VERSION, len(hb)), hb, blake3.blake3(hb).digest(), stored_manifest):
                put(piece)

            def copy_raw(p: _Pending) -> int | None:
                """Have the kernel copy a raw object from its file into the
                bundle, and read the copy once for its id and the bundle's
                hash: what is verified is what was written. None where the
                file systems cannot copy this way."""
                nonlocal written, flushed
                assert p.span is not None
                drain()  # the kernel copies to where the file ends
                span = p.span()
                ho = hasher(p.size)

                def both(block: memoryview) -> None:
                    ho.update(block)
                    h.update(block)

                try:
                    copied = fsops.copy_range(span, out.fileno(), meter.add_bytes, both)
                finally:
                    os.close(span.fd)
                if copied is None:
                    return None
                written += p.size
                if p.size >= WRITEBACK_STEP:  # copy_range asked the disk to write it already
                    flushed = written
                if ho.digest() != p.oid:
                    raise ChangedDuringOperation("a file changed while it was packed; scan and pack again")
                return copied

            staged = self._objects_file
            if staged is not None:
                staged.flush()
                staged.seek(0)
            for p in self._pending:
                put(OBJ_HEAD.pack(1, p.oid, p.size, p.encoding, p.stored))
                if p.read is not None:
                    copied = copy_raw(p) if p.span is not None else None
                    meter.file_done(p.size, copied if copied is not None else self._put_raw(p, put, meter))
                else:
                    assert staged is not None
                    _put_staged(staged, p, put)
            put(bytes([0]))
            drain()
            out.write(TRAILER + h.digest())
            if finish is not None:
                finish.expect(1, 0)
            faults.point("fsync")
            os.fsync(out.fileno())
            if finish is not None:
                finish.file_done()
        self._drop_objects_file()
        if os.path.getsize(self.part) != total:
            raise SquirrelError("internal error: bundle size mismatch")
        faults.point("rename")
        os.replace(self.part, self.path)
        return total

    def _put_raw(self, p: _Pending, put: Callable[[bytes], None], meter: Meter) -> int:
        """Stream a raw object from its file into the bundle, verified."""
        assert p.read is not None
        h = hasher(p.size)
        total = 0
        it = p.read()
        try:
            for chunk in it:
                total += len(chunk)
                if total > p.size:
                    break
                h.update(chunk)
                put(chunk)
                meter.add_bytes(len(chunk))
        finally:
            _close(it)
        if total != p.size or h.digest() != p.oid:
            raise ChangedDuringOperation("a file changed while it was packed; scan and pack again")
        return total

    def _drop_objects_file(self) -> None:
        if self._objects_file is not None:
            self._objects_file.close()
            self._objects_file = None
            if self.dry_run:
                return
            try:
                os.unlink(self.part + ".objects")
            except FileNotFoundError:
                pass

    def abort(self) -> None:
        self._drop_objects_file()
        for p in (self.part,):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


class _Discard(io.BytesIO):
    """A dry run's side file: it counts what is written, and keeps none of it."""

    def __init__(self) -> None:
        super().__init__()
        self._size = 0

    def write(self, data: Any, /) -> int:
        n = memoryview(data).nbytes
        self._size += n
        return n

    def tell(self) -> int:
        return self._size


@dataclass(slots=True)
class _Pending:
    """An object added to a bundle being written: a raw one is read again
    from its file (`read`); a compressed one, or a small raw one once
    `KEEP_TOTAL` is kept, waits in the side file (`at`)."""

    oid: bytes
    size: int
    encoding: int
    stored: int
    read: Callable[[], Iterator[bytes]] | None
    at: int = 0
    span: Callable[[], Span] | None = None


def _put_staged(f: BinaryIO, p: _Pending, put: Callable[[bytes], None]) -> None:
    """Copy an object from the side file into the bundle. The side file
    holds them in the bundle's order, so it is read straight through."""
    if f.tell() != p.at:
        f.seek(p.at)
    left = p.stored
    while left:
        block = f.read(min(BLOCK, left))
        if not block:
            raise SquirrelError("internal error: the side file is short")
        left -= len(block)
        put(block)


def _close(it: Iterator[bytes]) -> None:
    """Close a generator early, so that the file it reads is closed now."""
    close = getattr(it, "close", None)
    if close is not None:
        close()


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def header_for(
    vault: str,
    source_id: str,
    source_name: str,
    counter: int,
    names: dict[str, str],
    base: dict[str, Any] | None,
    tops: list[bytes],
) -> dict[str, Any]:
    return {
        "vault": vault,
        "source": {"replica": source_id, "name": source_name, "counter": counter},
        "names": names,
        "base": base,
        "tops": [base64.b64encode(t).decode() for t in tops],
        "created": int(time.time()),
    }
