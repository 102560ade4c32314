"""Vector times: the clocks of the Tra algorithm.

A `VectorTime` maps replica ids to event counters; a missing replica means 0.
Modification and sync times use the usual partial order (`<=`), `join`
(element-wise max) and `meet` (element-wise min). Creation times are sets of
creation events; since the only question asked of them is "is some creation
event known?", it is enough to keep the earliest counter per replica, and
`lineage_union` combines two of them. A folder's creation time is asked
"is every creation event known?" instead, so folders keep the latest counter
per replica and combine by `join`. Binary encoding: docs/formats/vtime.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from squirrel.errors import BadVectorTime
from squirrel.text import counted

REPLICA_ID_BYTES = 8
MAX_COUNTER = (1 << 63) - 1  # the binary form holds at most 63 bits
_ID_RE = re.compile(r"[0-9a-f]{16}")


class VectorTime(Mapping[str, int]):
    """An immutable vector time; entries with counter 0 are never stored."""

    __slots__ = ("_v", "_hash")

    def __init__(self, entries: Mapping[str, int] | None = None) -> None:
        v: dict[str, int] = {}
        if entries:
            for rid, n in entries.items():
                if n < 0:
                    raise BadVectorTime(f"negative counter for {rid}: {n}")
                if n > MAX_COUNTER:
                    raise BadVectorTime(f"counter for {rid} too large: {n}")
                if n:
                    v[rid] = n
        self._v = v
        self._hash: int | None = None

    @classmethod
    def event(cls, replica: str, counter: int) -> VectorTime:
        return cls({replica: counter})

    # Mapping protocol -------------------------------------------------
    def __getitem__(self, rid: str) -> int:
        return self._v[rid]

    def get(self, rid: str, default: int = 0) -> int:  # type: ignore[override]
        return self._v.get(rid, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._v)

    def __len__(self) -> int:
        return len(self._v)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, VectorTime):
            return self._v == other._v
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._v.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"VectorTime({self._v!r})"

    # Order ------------------------------------------------------------
    def __le__(self, other: VectorTime) -> bool:
        ov = other._v
        return all(n <= ov.get(r, 0) for r, n in self._v.items())

    def __lt__(self, other: VectorTime) -> bool:
        return self <= other and self != other

    def __ge__(self, other: VectorTime) -> bool:
        return other <= self

    def __gt__(self, other: VectorTime) -> bool:
        return other < self

    def compare(self, other: VectorTime) -> str:
        """'equal', 'before', 'after' or 'concurrent'."""
        le, ge = self <= other, other <= self
        if le and ge:
            return "equal"
        if le:
            return "before"
        if ge:
            return "after"
        return "concurrent"

    def join(self, other: VectorTime) -> VectorTime:
        if not other._v or other <= self:
            return self
        if not self._v or self <= other:
            return other
        v = dict(self._v)
        for r, n in other._v.items():
            if n > v.get(r, 0):
                v[r] = n
        return VectorTime(v)

    def meet(self, other: VectorTime) -> VectorTime:
        v = {}
        ov = other._v
        for r, n in self._v.items():
            m = min(n, ov.get(r, 0))
            if m:
                v[r] = m
        return VectorTime(v)

    def with_entry(self, replica: str, counter: int) -> VectorTime:
        v = dict(self._v)
        v[replica] = counter
        return VectorTime(v)

    def without(self, replica: str) -> VectorTime:
        if replica not in self._v:
            return self
        v = dict(self._v)
        del v[replica]
        return VectorTime(v)

    def contains_event(self, replica: str, counter: int) -> bool:
        return 0 < counter <= self._v.get(replica, 0)

    # Creation times ----------------------------------------------------
    def lineage_seen_by(self, sync: VectorTime) -> bool:
        """True when some creation event of this lineage is known to `sync`."""
        sv = sync._v
        return any(n <= sv.get(r, 0) for r, n in self._v.items())

    def lineage_union(self, other: VectorTime) -> VectorTime:
        """The lineage holding both: the earliest creation counter per replica."""
        v = dict(self._v)
        for r, n in other._v.items():
            cur = v.get(r)
            if cur is None or n < cur:
                v[r] = n
        return VectorTime(v)

    # Encoding ------------------------------------------------------------
    def encode(self) -> bytes:
        out = bytearray(encode_varint(len(self._v)))
        for r in sorted(self._v):
            out += bytes.fromhex(r)
            out += encode_varint(self._v[r])
        return bytes(out)

    @classmethod
    def decode_from(cls, buf: bytes | memoryview, pos: int = 0) -> tuple[VectorTime, int]:
        """Decode a vector time at `pos`; returns it and the position after it."""
        count, pos = decode_varint(buf, pos)
        if count > 1 << 16:
            raise BadVectorTime(f"vector time with {counted(count, 'entry')}")
        v: dict[str, int] = {}
        for _ in range(count):
            raw = bytes(buf[pos : pos + REPLICA_ID_BYTES])
            if len(raw) != REPLICA_ID_BYTES:
                raise BadVectorTime("truncated vector time")
            pos += REPLICA_ID_BYTES
            n, pos = decode_varint(buf, pos)
            rid = raw.hex()
            if n == 0 or rid in v:
                raise BadVectorTime("malformed vector time entry")
            v[rid] = n
        return cls(v), pos

    @classmethod
    def decode(cls, data: bytes) -> VectorTime:
        vt, pos = cls.decode_from(data, 0)
        if pos != len(data):
            raise BadVectorTime("trailing bytes after vector time")
        return vt

    # Text ------------------------------------------------------------------
    def format(self, names: Mapping[str, str] | None = None) -> str:
        """`name:counter,name:counter`, sorted; ids stand in for unknown names."""
        names = names or {}
        parts = sorted(f"{names.get(r, r)}:{n}" for r, n in self._v.items())
        return ",".join(parts)

    @classmethod
    def parse(cls, text: str, ids: Mapping[str, str] | None = None) -> VectorTime:
        """Parse `name:counter,...`; `ids` maps names to replica ids.

        Names that are not in `ids` are used as keys as they are, so two
        vector times written with the same names compare correctly.
        """
        ids = ids or {}
        v: dict[str, int] = {}
        text = text.strip()
        if not text:
            return cls()
        for part in text.split(","):
            name, sep, num = part.strip().rpartition(":")
            if not sep or not name or not (num.isascii() and num.isdigit()) or len(num.lstrip("0")) > 19:
                raise BadVectorTime(f"bad vector time element {part.strip()!r} (want name:counter)")
            key = ids.get(name, name)
            if key in v:
                raise BadVectorTime(f"replica {name!r} appears twice in {text!r}")
            v[key] = int(num)
        return cls(v)


EMPTY = VectorTime()


def is_replica_id(text: str) -> bool:
    return bool(_ID_RE.fullmatch(text))


def encode_varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def decode_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    n = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise BadVectorTime("truncated varint")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            if n > MAX_COUNTER:
                raise BadVectorTime("varint longer than 63 bits")
            return n, pos
        shift += 7
        if shift > 63:
            raise BadVectorTime("varint too long")
