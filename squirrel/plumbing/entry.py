"""One indexed version of a path (`Entry`) and its binary forms.

The index stores entries, and bundles carry them in their manifests, in the
record described in docs/formats/index.md ("entries"). Format 2 is compact:
a file record is a 17-byte head the scanner compares without decoding the
rest (kind and flags, size, mtime), then the mode as a varint, the object id
and the vector times; a directory record is a head byte and its times; the
creation time is left out when it equals the modification time (a file never
edited since it was created). Format 1, a fixed 54-byte head, is still read:
it is what older indexes and bundles hold.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from squirrel.errors import CorruptIndex, SquirrelError
from squirrel.plumbing.vtime import VectorTime, decode_varint, encode_varint

KIND_FILE = 1
KIND_DIR = 2
KIND_NAMES = {KIND_FILE: "file", KIND_DIR: "dir"}
FLAG_RACY = 1  # mtime too close to the scan that recorded it: rehash next time
FLAG_PARTIAL = 2  # in a bundle: a directory whose children the bundle does not list
DIR_MODE = 0o755
NO_OID = bytes(32)

# FAT and exFAT keep file times in 2-second steps. A file recorded within this
# window of its mtime is racy (a same-size edit could keep size and mtime),
# and a conflict's winner is chosen on this grid, so rounding cannot change it.
FAT_TICK_NS = 2_000_000_000

# Format 2: the head byte holds the kind (bits 0-1) and flag bits.
BIT_RACY = 0x04
BIT_PARTIAL = 0x08
BIT_C_IS_M = 0x10  # no creation time stored: it equals the modification time
_FILE_HEAD = struct.Struct("<BQq")  # head byte, size, mtime_ns
_KNOWN_BITS = 0x03 | BIT_RACY | BIT_PARTIAL | BIT_C_IS_M

# Format 1: a fixed head (kind, flags, size, mtime_ns, mode, oid), then m and c.
_V1_HEAD = struct.Struct("<BBQqI32s")

# Records decoded since the process started: the planner's cost, for tests.
records_read = 0


@dataclass(frozen=True, slots=True)
class Entry:
    """One indexed version of a path."""

    kind: int
    oid: bytes
    size: int
    mode: int
    mtime_ns: int
    m: VectorTime
    c: VectorTime
    flags: int = 0

    @property
    def is_dir(self) -> bool:
        return self.kind == KIND_DIR

    @property
    def is_file(self) -> bool:
        return self.kind == KIND_FILE

    def with_times(self, m: VectorTime | None = None, c: VectorTime | None = None) -> Entry:
        # Built field by field: `dataclasses.replace` takes twice as long,
        # and a scan that records a million files calls this for each.
        m = self.m if m is None else m
        c = self.c if c is None else c
        return Entry(self.kind, self.oid, self.size, self.mode, self.mtime_ns, m, c, self.flags)


def racy_flag(mtime_ns: int, now_ns: int) -> int:
    """FLAG_RACY when a file recorded at `now_ns` was modified too recently to trust its mtime."""
    return FLAG_RACY if abs(now_ns - mtime_ns) < FAT_TICK_NS else 0


def new_dir(m: VectorTime, c: VectorTime) -> Entry:
    return Entry(KIND_DIR, NO_OID, 0, DIR_MODE, 0, m, c)


# Format 2 ----------------------------------------------------------------------
def encode_entry(e: Entry) -> bytes:
    head = e.kind | (BIT_RACY if e.flags & FLAG_RACY else 0) | (BIT_PARTIAL if e.flags & FLAG_PARTIAL else 0)
    same = e.c == e.m
    if same:
        head |= BIT_C_IS_M
    if e.kind == KIND_FILE:
        out = _FILE_HEAD.pack(head, e.size, e.mtime_ns) + encode_varint(e.mode) + (e.oid or NO_OID)
    else:
        out = bytes([head])
    out += e.m.encode()
    return out if same else out + e.c.encode()


def decode_entry(data: bytes | memoryview) -> Entry:
    global records_read
    records_read += 1
    try:
        head = data[0]
        kind = head & 0x03
        if kind not in KIND_NAMES or head & ~_KNOWN_BITS:
            raise CorruptIndex("damaged index record: bad kind or flags")
        flags = (FLAG_RACY if head & BIT_RACY else 0) | (FLAG_PARTIAL if head & BIT_PARTIAL else 0)
        if kind == KIND_FILE:
            _, size, mtime_ns = _FILE_HEAD.unpack_from(data, 0)
            mode, pos = decode_varint(data, _FILE_HEAD.size)
            oid = bytes(data[pos : pos + 32])
            if len(oid) != 32 or size < 0:
                raise CorruptIndex("damaged index record: truncated")
            pos += 32
        else:
            size, mtime_ns, mode, oid, pos = 0, 0, DIR_MODE, NO_OID, 1
        # The times are the record's tail. Many records share theirs (a
        # scan's new files, a sync's from one sender): a tail decoded
        # before is not decoded again.
        tail = (b"m" if head & BIT_C_IS_M else b"c") + bytes(data[pos:])
        times = _TIMES.get(tail)
        if times is None:
            m, pos = VectorTime.decode_from(data, pos)
            c = m
            if not head & BIT_C_IS_M:
                c, pos = VectorTime.decode_from(data, pos)
            if pos != len(data):
                raise CorruptIndex("damaged index record: bad length")
            if len(_TIMES) >= _TIMES_KEPT:
                _TIMES.clear()
            times = _TIMES[tail] = (m, c)
    except (IndexError, struct.error, SquirrelError) as e:
        if isinstance(e, CorruptIndex):
            raise
        raise CorruptIndex(f"damaged index record: {e}") from e
    return Entry(kind, oid, size, mode, mtime_ns, times[0], times[1], flags)


# Decoded times by the record tail that holds them (after `m` when the tail
# holds one time, `c` when both), at most `_TIMES_KEPT`: vector times are
# immutable, so records may share them.
_TIMES: dict[bytes, tuple[VectorTime, VectorTime]] = {}
_TIMES_KEPT = 4096


_SIZE_MTIME = struct.Struct("<Qq")


def unchanged_file(data: bytes, st: os.stat_result) -> bool:
    """Is this a file record, not racy, with exactly this size and mtime?
    The scanner's question for every file, answered from the fixed head."""
    return data[0] & 0x07 == KIND_FILE and data[1:17] == _SIZE_MTIME.pack(st.st_size, st.st_mtime_ns)


def file_oid(data: bytes) -> bytes | None:
    """The object id of an encoded file entry (None for a directory)."""
    if not data or data[0] & 0x03 != KIND_FILE:
        return None
    try:
        _, pos = decode_varint(data, _FILE_HEAD.size)
    except SquirrelError as e:
        raise CorruptIndex(f"damaged index record: {e}") from e
    return bytes(data[pos : pos + 32])


def file_fields(data: bytes) -> tuple[bytes, int, int] | None:
    """(object id, size, offset of the modification time) of an encoded file
    entry, None for a directory: what counting versions needs, without
    building an Entry (`VectorTime.decode_from(data, offset)` reads m)."""
    if not data or data[0] & 0x03 != KIND_FILE:
        return None
    pos = _FILE_HEAD.size  # the mode follows, a varint: mostly 2 bytes (0o644)
    try:
        while data[pos] & 0x80:
            pos += 1
    except IndexError as e:
        raise CorruptIndex("damaged index record: truncated") from e
    pos += 1
    oid = data[pos : pos + 32]
    if len(oid) != 32:
        raise CorruptIndex("damaged index record: truncated")
    return oid, int.from_bytes(data[1:9], "little"), pos + 32


# Format 1 (read only) --------------------------------------------------------------
def decode_entry_v1(data: bytes | memoryview) -> Entry:
    global records_read
    records_read += 1
    try:
        kind, flags, size, mtime_ns, mode, oid = _V1_HEAD.unpack_from(data, 0)
        m, pos = VectorTime.decode_from(data, _V1_HEAD.size)
        c, pos = VectorTime.decode_from(data, pos)
    except (struct.error, SquirrelError) as e:
        raise CorruptIndex(f"damaged index record: {e}") from e
    if kind not in KIND_NAMES or pos != len(data):
        raise CorruptIndex("damaged index record: bad kind or length")
    return Entry(kind, bytes(oid), size, mode, mtime_ns, m, c, flags)


def unchanged_file_v1(data: bytes, st: os.stat_result) -> bool:
    kind, flags, size, mtime_ns, _mode, _oid = _V1_HEAD.unpack_from(data, 0)
    return kind == KIND_FILE and not flags & FLAG_RACY and size == st.st_size and mtime_ns == st.st_mtime_ns


def file_oid_v1(data: bytes) -> bytes | None:
    kind, _flags, _size, _mtime, _mode, oid = _V1_HEAD.unpack_from(data, 0)
    return bytes(oid) if kind == KIND_FILE else None


def file_fields_v1(data: bytes) -> tuple[bytes, int, int] | None:
    try:
        kind, _flags, size, _mtime, _mode, oid = _V1_HEAD.unpack_from(data, 0)
    except struct.error as e:
        raise CorruptIndex(f"damaged index record: {e}") from e
    return (bytes(oid), size, _V1_HEAD.size) if kind == KIND_FILE else None
