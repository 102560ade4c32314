"""A set of object ids kept as one sorted string of 32-byte ids.

The carrier remembers, for every drive, the content ids its files hold
(`drives/ID.objects`), and a visit reads the lists of the other drives to
decide what to carry. A Python set of a million ids takes some 110 MB (a
bytes object and a table slot per id); the same ids sorted and concatenated
take 32 MB, and membership is a binary search: the first byte narrows it to
one of 256 runs, found once per list.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from squirrel.plumbing.ids import OID_BYTES


class ObjectIds:
    """An immutable set of object ids: `in`, `len` and iteration in order."""

    __slots__ = ("raw", "_runs")

    def __init__(self, raw: bytes = b"") -> None:
        """`raw` must be whole ids, sorted and without repeats (`is_sorted`);
        `build` makes such a string from ids in any order."""
        if len(raw) % OID_BYTES:
            raise ValueError("not a whole number of object ids")
        self.raw = raw
        self._runs: list[int] | None = None

    @classmethod
    def build(cls, oids: Iterable[bytes]) -> ObjectIds:
        """The ids of `oids`, in any order and with repeats. They are spread
        over 256 byte strings by their first byte, then each is sorted on
        its own: never a Python object per id for the whole set at once."""
        buckets = [bytearray() for _ in range(256)]
        for oid in oids:
            buckets[oid[0]] += oid
        out = []
        for first, bucket in enumerate(buckets):
            if bucket:
                ids = {bytes(bucket[i : i + OID_BYTES]) for i in range(0, len(bucket), OID_BYTES)}
                out.append(b"".join(sorted(ids)))
                buckets[first] = bytearray()
        return cls(b"".join(out))

    @classmethod
    def read(cls, raw: bytes) -> ObjectIds:
        """The ids of a stored list; one that is not sorted (a file written
        by hand, or damaged) is sorted rather than trusted."""
        raw = raw[: len(raw) - len(raw) % OID_BYTES]
        ids = cls(raw)
        return ids if ids.is_sorted() else cls.build(ids._slices())

    def is_sorted(self) -> bool:
        raw, n = self.raw, OID_BYTES
        return all(raw[i - n : i] < raw[i : i + n] for i in range(n, len(raw), n))

    def _slices(self) -> Iterator[bytes]:
        raw = self.raw
        return (raw[i : i + OID_BYTES] for i in range(0, len(raw), OID_BYTES))

    def __iter__(self) -> Iterator[bytes]:
        return self._slices()

    def __len__(self) -> int:
        return len(self.raw) // OID_BYTES

    def __bool__(self) -> bool:
        return bool(self.raw)

    def __contains__(self, oid: object) -> bool:
        if not isinstance(oid, bytes) or len(oid) != OID_BYTES:
            return False
        runs = self._runs if self._runs is not None else self._index()
        raw, n = self.raw, OID_BYTES
        lo, hi = runs[oid[0]], runs[oid[0] + 1]
        while lo < hi:
            mid = (lo + hi) // 2
            at = raw[mid * n : mid * n + n]
            if at < oid:
                lo = mid + 1
            elif at > oid:
                hi = mid
            else:
                return True
        return False

    def _index(self) -> list[int]:
        """Where the ids of each first byte start: 257 binary searches."""
        raw, n, count = self.raw, OID_BYTES, len(self)
        runs = []
        lo = 0
        for first in range(256):
            hi = count
            while lo < hi:  # the first id whose first byte is `first` or more
                mid = (lo + hi) // 2
                if raw[mid * n] < first:
                    lo = mid + 1
                else:
                    hi = mid
            runs.append(lo)
        runs.append(count)
        self._runs = runs
        return runs

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectIds) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"ObjectIds({len(self)} ids)"
