"""The bundle format and its checking reader (the writer: `bundle_writer`).

Layout and rules: docs/formats/bundle.md. The reader checks the
header, the size, and the whole manifest before anything else, finds the
objects by walking their headers, and verifies every object against its id
as it streams it out. Garbage raises only `BadBundle` (or `UnsupportedFormat`
for a version or capability this reader does not know).
"""

from __future__ import annotations

import base64
import io
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import blake3
import zstandard

from squirrel.errors import BadBundle, SquirrelError, UnsupportedFormat
from squirrel.plumbing import paths
from squirrel.plumbing.entry import FLAG_PARTIAL, Entry, decode_entry, decode_entry_v1
from squirrel.plumbing.fsops import SharedSpan, Span
from squirrel.plumbing.ids import hasher
from squirrel.plumbing.progress import Meter
from squirrel.plumbing.records import ConflictRecord
from squirrel.plumbing.userfiles import open_input_file
from squirrel.plumbing.vtime import VectorTime, decode_varint, is_replica_id
from squirrel.text import counted

SIGNATURE = b"SQBUNDLE"
TRAILER = b"SQTRAILR"
VERSION = 2
READS = (1, 2)  # format 1: entries in the format-1 record, no deletion notices
# `conflicts-2`: resolved conflict records, and several records at one path
# (one per copy); named only by a bundle that holds either, so that other
# bundles stay readable by earlier versions, which would list a resolved
# record as open and refuse a second record at a path.
CONFLICTS_2 = "conflicts-2"
CAPABILITIES = frozenset({"zstd", CONFLICTS_2})
MAX_HEADER = 1 << 20
MAX_MANIFEST = 1 << 30
MAX_WINDOW = 1 << 27
REC_END, REC_ENTRY, REC_SYNC, REC_DELETED, REC_CONFLICT = 0, 1, 2, 3, 4
ENC_RAW, ENC_ZSTD = 0, 1
OBJ_HEAD = struct.Struct("<B32sQBQ")
PRELUDE = struct.Struct("<8sHI")
BLOCK = 1 << 20


@dataclass(frozen=True)
class ObjectRef:
    """Where an object lies in a bundle and how it is stored there (docs/formats/bundle.md)."""

    oid: bytes
    size: int
    encoding: int
    offset: int  # of the payload
    stored: int


# Reading -------------------------------------------------------------------
class BundleReader:
    """Open and check a bundle. After construction the header and the whole
    manifest have been validated and the objects located; nothing has been
    written anywhere."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.file: BinaryIO = open_input_file(path, "bundle")
        try:
            self._read_header()
            self.entries: dict[bytes, Entry] = {}
            self.syncs: dict[bytes, VectorTime] = {}
            self.notices: dict[bytes, VectorTime] = {}
            self.conflicts: list[ConflictRecord] = []
            self._read_manifest()
            self.objects: dict[bytes, ObjectRef] = {}
            self._locate_objects()
        except BadBundle:
            self.file.close()
            raise
        except (OSError, ValueError, struct.error, zstandard.ZstdError, SquirrelError) as e:
            self.file.close()
            if isinstance(e, UnsupportedFormat):
                raise
            raise BadBundle(f"damaged bundle {path}: {e}") from e

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _bad(self, why: str) -> BadBundle:
        return BadBundle(f"bad bundle {self.path}: {why}")

    def _read_exact(self, n: int) -> bytes:
        data = self.file.read(n)
        if len(data) != n:
            raise self._bad("truncated")
        return data

    def _read_header(self) -> None:
        sig, version, hlen = PRELUDE.unpack(self._read_exact(PRELUDE.size))
        if sig != SIGNATURE:
            raise self._bad("not a bundle (wrong signature)")
        if version not in READS:
            raise UnsupportedFormat(
                f"bundle {self.path} has format version {version}; this sq reads {', '.join(map(str, READS))}"
            )
        self.version = version
        if hlen > MAX_HEADER:
            raise self._bad("header too large")
        raw_header = self._read_exact(hlen)
        if self._read_exact(32) != blake3.blake3(raw_header).digest():
            raise self._bad("damaged header (it does not match its hash)")
        try:
            header = json.loads(raw_header)
        except (ValueError, RecursionError) as e:
            raise self._bad("damaged header") from e
        if not isinstance(header, dict):
            raise self._bad("damaged header")
        caps = header.get("capabilities")
        if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
            raise self._bad("damaged header (capabilities)")
        unknown = set(caps) - CAPABILITIES
        if unknown:
            raise UnsupportedFormat(
                f"bundle {self.path} needs {', '.join(sorted(unknown))}, unknown to this sq; upgrade"
            )
        ints: tuple[str, ...] = ("entries", "syncs", "objects", "manifest_size", "manifest_stored", "total_size")
        ints += ("created", "notices", "conflicts") if version >= 2 else ("created",)
        for key in ints:
            if not isinstance(header.get(key), int) or header[key] < 0:
                raise self._bad(f"damaged header ({key})")
        src = header.get("source")
        if (
            header.get("format") != version
            or not isinstance(header.get("vault"), str)
            or not isinstance(src, dict)
            or not isinstance(src.get("replica"), str)
            or not is_replica_id(header["vault"])
            or not isinstance(src.get("replica"), str)
            or not is_replica_id(src["replica"])
            or not isinstance(src.get("counter"), int)
            or not 0 <= src["counter"] < (1 << 63)
            or not isinstance(header.get("manifest_hash"), str)
            or not isinstance(header.get("tops"), list)
            or not isinstance(header.get("names", {}), dict)
        ):
            raise self._bad("damaged header")
        if header["manifest_size"] > MAX_MANIFEST or header["manifest_stored"] > header["total_size"]:
            raise self._bad("manifest too large")
        size = os.fstat(self.file.fileno()).st_size
        if size != header["total_size"]:
            raise self._bad(f"truncated or extended: {counted(size, 'byte')}, header says {header['total_size']}")
        try:
            self.tops = [paths.check_relpath(base64.b64decode(t, validate=True)) for t in header["tops"]]
        except (ValueError, TypeError, SquirrelError) as e:
            raise self._bad("damaged header (tops)") from e
        self.header = header
        self.vault: str = header["vault"]
        self.source_id: str = src["replica"]
        self.source_name: str = str(src.get("name") or src["replica"])
        self.source_counter: int = src["counter"]
        self.names: dict[str, str] = {str(k): str(v) for k, v in header.get("names", {}).items()}

    def _read_manifest(self) -> None:
        h = self.header
        stored = self._read_exact(h["manifest_stored"])
        try:
            dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
            raw = dctx.decompress(stored, max_output_size=h["manifest_size"])
        except zstandard.ZstdError as e:
            raise self._bad(f"damaged manifest ({e})") from e
        if len(raw) != h["manifest_size"] or blake3.blake3(raw).hexdigest() != h["manifest_hash"]:
            raise self._bad("manifest does not match its hash")
        decode = decode_entry if self.version >= 2 else decode_entry_v1
        check_path = paths.RelpathChecker()
        pos, end = 0, len(raw)
        while True:
            if pos >= end:
                raise self._bad("manifest has no end record")
            kind = raw[pos]
            pos += 1
            if kind == REC_END:
                break
            if kind not in (REC_ENTRY, REC_SYNC) and not (kind in (REC_DELETED, REC_CONFLICT) and self.version >= 2):
                raise self._bad(f"unknown manifest record {kind}")
            # Lengths are varints, nearly always of one byte: read in place.
            plen = raw[pos] if pos < end else 0x80
            if plen < 0x80:
                pos += 1
            else:
                plen, pos = decode_varint(raw, pos)
            path = raw[pos : pos + plen]
            pos += plen
            vlen = raw[pos] if pos < end else 0x80
            if vlen < 0x80:
                pos += 1
            else:
                vlen, pos = decode_varint(raw, pos)
            value = raw[pos : pos + vlen]
            pos += vlen
            if len(path) != plen or len(value) != vlen:
                raise self._bad("truncated manifest record")
            try:
                check_path(path)
            except SquirrelError as e:
                raise self._bad(str(e)) from e
            if kind == REC_ENTRY:
                if path in self.entries:
                    raise self._bad(f"duplicate path {paths.display(path)!r}")
                self.entries[path] = decode(value)
            elif kind == REC_CONFLICT:
                try:
                    record = ConflictRecord.from_json(json.loads(value))
                except (ValueError, RecursionError, SquirrelError) as e:
                    raise self._bad(f"damaged conflict record for {paths.display(path)!r}") from e
                same = ((r.path, r.copy) == (path, record.copy) for r in self.conflicts)
                if record.path != path or any(same):
                    raise self._bad(f"bad or duplicate conflict record for {paths.display(path)!r}")
                for p in (record.kept, record.copy):
                    if p is not None:
                        paths.check_relpath(p)
                self.conflicts.append(record)
            elif kind == REC_DELETED:
                if path in self.notices:
                    raise self._bad(f"duplicate deletion notice for {paths.display(path)!r}")
                self.notices[path] = VectorTime.decode(value)
            else:
                if path in self.syncs:
                    raise self._bad(f"duplicate sync time for {paths.display(path)!r}")
                self.syncs[path] = VectorTime.decode(value)
        if pos != len(raw):
            raise self._bad("bytes after the manifest's end record")
        if (
            len(self.entries) != h["entries"]
            or len(self.syncs) != h["syncs"]
            or len(self.notices) != h.get("notices", 0)
            or len(self.conflicts) != h.get("conflicts", 0)
        ):
            raise self._bad("manifest counts do not match the header")
        root = self.entries.get(b"")
        if root is None or not root.is_dir:
            raise self._bad("manifest has no root directory")
        me = VectorTime.event(self.source_id, self.source_counter)
        syncs = self.syncs
        # What the sender knows of a folder's files without a time of their
        # own, and the (version, knowledge) pairs found in order: the files
        # of a folder share the one, and mostly the other.
        known_in: dict[bytes, VectorTime] = {}
        fits: set[tuple[VectorTime, VectorTime]] = set()
        for p, ent in self.entries.items():
            if not ent.is_file:
                continue  # a directory's time may run ahead while a child is unsynced
            own = syncs.get(p)
            above = p.rpartition(b"/")[0]
            known = own.join(me) if own is not None else known_in.get(above)
            if known is None:
                known = known_in[above] = (paths.nearest(above, syncs.get) or VectorTime()).join(me)
            if (ent.m, known) in fits:
                continue
            if not ent.m <= known:
                raise self._bad(f"{paths.display(p)!r} claims a version its sender does not know")
            if len(fits) >= 4096:  # as many as the decoded times kept (entry.py)
                fits.clear()
            fits.add((ent.m, known))
        above_tops = {b""}
        for t in self.tops:
            above_tops.add(t)
            above_tops.update(paths.ancestors(t))
        for p, n in self.notices.items():
            if p in self.entries or not p:
                raise self._bad(f"{paths.display(p)!r} is both present and deleted")
            # The nearest entry above a deleted path (a folder, or a file that
            # replaced the folder it was in) is described in full, unless
            # the path is a top or near one.
            holder = next(self.entries[q] for q in paths.ancestors(p) if q in self.entries)
            near_top = p in above_tops or any(paths.is_under(p, t) for t in self.tops)
            if holder.flags & FLAG_PARTIAL and not near_top:
                raise self._bad(f"the deletion of {paths.display(p)!r} has no directory above it in the bundle")
            # A deletion notice is the sender's knowledge of the absent path
            # (its sync time there, which may be more than any stored sync
            # time says: learned from the replica that deleted it). What
            # bounds it is the index invariant: a directory's time covers
            # every deletion below it (a file that replaced a folder does not).
            folder = next(self.entries[q] for q in paths.ancestors(p) if q in self.entries and self.entries[q].is_dir)
            if not n <= folder.m:
                raise self._bad(f"the deletion of {paths.display(p)!r} is newer than the folder above it")
        entries = self.entries
        for p, ent in entries.items():
            if not p:
                continue
            parent = entries.get(p.rpartition(b"/")[0])
            if parent is None or not parent.is_dir or (parent.flags & FLAG_PARTIAL and p not in above_tops):
                raise self._bad(f"{paths.display(p)!r} has no directory above it in the bundle")
            if ent.is_file and len(ent.oid) != 32:
                raise self._bad("bad object id")

    def _locate_objects(self) -> None:
        """Walk the object records' heads, each read at its offset (one
        read per object, no seek), to where each object lies."""
        end = self.header["total_size"] - len(TRAILER) - 32
        fd = self.file.fileno()
        at = self.file.tell()
        while True:
            head = os.pread(fd, OBJ_HEAD.size, at)
            if not head:
                raise self._bad("truncated")
            if head[0] == 0:
                at += 1
                break
            if head[0] != 1:
                raise self._bad("damaged object record")
            if len(head) != OBJ_HEAD.size:
                raise self._bad("truncated")
            _, oid, size, enc, stored = OBJ_HEAD.unpack(head)
            if enc not in (ENC_RAW, ENC_ZSTD) or (enc == ENC_RAW and stored != size):
                raise self._bad("damaged object record")
            offset = at + OBJ_HEAD.size
            if offset + stored > end:
                raise self._bad("object runs past the end")
            if oid in self.objects:
                raise self._bad("duplicate object")
            self.objects[oid] = ObjectRef(oid, size, enc, offset, stored)
            at = offset + stored
        if len(self.objects) != self.header["objects"]:
            raise self._bad("object count does not match the header")
        if at != end or os.pread(fd, len(TRAILER), at) != TRAILER:
            raise self._bad("damaged trailer")

    def object_span(self, oid: bytes) -> Span | None:
        """Where a raw object lies in the bundle, on a handle of its own (the
        caller closes it and verifies the id); None for a compressed one.
        The handle duplicates the reader's: it reads the file that was
        checked, whatever its path names now, and costs no lookup of the
        path (a span is read at its own offsets, never at the handle's)."""
        ref = self.objects[oid]
        if ref.encoding != ENC_RAW:
            return None
        return Span(os.dup(self.file.fileno()), ref.offset, ref.stored)

    def object_in_file(self, oid: bytes) -> SharedSpan | None:
        """Where a raw object lies in the bundle, on the reader's own
        handle (read at its offsets only, never closed by the caller, used
        only while the reader is open); None for a compressed one."""
        ref = self.objects[oid]
        if ref.encoding != ENC_RAW:
            return None
        return SharedSpan(self.file.fileno(), ref.offset, ref.stored)

    def object_chunks(self, oid: bytes) -> Iterator[bytes]:
        """Stream an object's content. The caller verifies the id (fsops.write_temp
        does); the size and the decompression limits are enforced here.
        It is read from the file that was checked, at its own offsets (objects
        may be read interleaved), whatever the bundle's path names now."""
        ref = self.objects.get(oid)
        if ref is None:
            raise KeyError(oid)
        part = _Limited(self.file.fileno(), ref.offset, ref.stored)
        if ref.encoding == ENC_RAW:
            while block := part.read(BLOCK):
                yield block
            if part.left:
                raise self._bad("truncated object")
            return
        dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW)
        produced = 0
        try:
            with dctx.stream_reader(io.BufferedReader(part), read_across_frames=False) as r:
                while True:
                    block = r.read(BLOCK)
                    if not block:
                        break
                    produced += len(block)
                    if produced > ref.size:
                        raise self._bad("object decompresses past its declared size")
                    yield block
        except zstandard.ZstdError as e:
            raise self._bad(f"damaged object ({e})") from e
        if produced != ref.size:
            raise self._bad("object shorter than its declared size")

    def verify(self, meter: Meter | None = None) -> list[str]:
        """Read everything: every object against its id, and the trailer
        hash. `meter` hears of every block read."""
        problems: list[str] = []
        end = self.header["total_size"] - len(TRAILER) - 32
        meter = meter if meter is not None else Meter("")
        meter.expect(len(self.objects), sum(ref.size for ref in self.objects.values()) + end)
        for oid, ref in self.objects.items():
            h = hasher(ref.size)
            n = 0
            before = meter.progress.bytes_done
            try:
                for chunk in meter.stream(self.object_chunks(oid)):
                    h.update(chunk)
                    n += len(chunk)
            except BadBundle as e:
                problems.append(f"object {oid.hex()}: {e}")
                continue
            finally:
                meter.file_done(ref.size, meter.progress.bytes_done - before)
            if n != ref.size or h.digest() != oid:
                problems.append(f"object {oid.hex()} does not match its id")
        h = hasher(end)
        whole = _Limited(self.file.fileno(), 0, end)
        while block := whole.read(BLOCK):
            h.update(block)
            meter.add_bytes(len(block))
        tail = os.pread(self.file.fileno(), len(TRAILER) + 32, end)
        if whole.left or tail != TRAILER + h.digest():
            problems.append("whole-bundle checksum does not match (damaged)")
        return problems


class _Limited(io.RawIOBase):
    """A read-only view of `n` bytes of a file from `offset`, read at explicit
    offsets (pread): the descriptor's own position is neither used nor moved."""

    def __init__(self, fd: int, offset: int, n: int) -> None:
        self.fd = fd
        self.at = offset
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.left <= 0:
            return 0
        view = memoryview(b).cast("B")
        n = os.preadv(self.fd, [view[: min(len(view), self.left)]], self.at)
        self.at += n
        self.left -= n
        return n


class BundleTree:
    """The sender's tree as a bundle describes it, for the planner."""

    def __init__(self, reader: BundleReader) -> None:
        self.reader = reader
        self.exact_deletions = reader.version >= 2
        self._kids: dict[bytes, list[bytes]] = {}
        for p in reader.entries:
            if p:
                self._kids.setdefault(paths.parent_of(p), []).append(p)
        for lst in self._kids.values():
            lst.sort()
        self._deleted_kids: dict[bytes, list[bytes]] = {}
        for p in reader.notices:
            self._deleted_kids.setdefault(paths.parent_of(p), []).append(p)
        for lst in self._deleted_kids.values():
            lst.sort()

    def notice(self, path: bytes) -> VectorTime | None:
        return self.reader.notices.get(path)

    def conflicts(self) -> list[ConflictRecord]:
        return list(self.reader.conflicts)

    def notices(self, path: bytes) -> Iterator[tuple[bytes, VectorTime]]:
        for p in self._deleted_kids.get(path, []):
            yield paths.split(p)[1], self.reader.notices[p]

    def get(self, path: bytes) -> Entry | None:
        return self.reader.entries.get(path)

    def children(self, path: bytes) -> Iterator[tuple[bytes, Entry]]:
        for p in self._kids.get(path, []):
            yield paths.split(p)[1], self.reader.entries[p]

    def _with_self(self, s: VectorTime) -> VectorTime:
        return s.with_entry(self.reader.source_id, self.reader.source_counter)

    def sync_time(self, path: bytes) -> VectorTime:
        return self._with_self(paths.nearest(path, self.reader.syncs.get) or VectorTime())

    def sync_time_below(self, path: bytes, inherited: VectorTime) -> VectorTime:
        s = self.reader.syncs.get(path)
        return inherited if s is None else self._with_self(s)

    def stored_syncs_under(self, path: bytes) -> list[tuple[bytes, VectorTime]]:
        return sorted((p, s) for p, s in self.reader.syncs.items() if p and p != path and paths.is_under(p, path))
