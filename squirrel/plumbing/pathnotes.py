"""A long list of (path, note) pairs kept in a few bytes a pair.

A sync report lists each path whose content waits for a later sync, with
why: the first visit of a new drive before the carrier holds anything for
it lists every file of the vault, with one of a few sentences. As a list of
tuples that is some 140 bytes a path (the tuple, its slot, the path's own
object); here it is the path's bytes and two or three more, in one buffer:
each pair is the note's number (among the notes seen so far) and the path's
length as varints, then the path. Pairs keep their order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from squirrel.plumbing.vtime import decode_varint, encode_varint


class PathNotes:
    """An ordered list of (path, note) pairs, compactly: append, extend
    (`+=`), iterate, len, added to a list, and equality with another or
    with a list."""

    __slots__ = ("_buf", "_notes", "_number", "_len")

    def __init__(self, pairs: Iterable[tuple[bytes, str]] = ()) -> None:
        self._buf = bytearray()
        self._notes: list[str] = []
        self._number: dict[str, int] = {}
        self._len = 0
        self.extend(pairs)

    def append(self, pair: tuple[bytes, str]) -> None:
        path, note = pair
        n = self._number.get(note)
        if n is None:
            n = self._number[note] = len(self._notes)
            self._notes.append(note)
        buf = self._buf
        if n < 0x80 and len(path) < 0x80:
            buf.append(n)
            buf.append(len(path))
        else:
            buf += encode_varint(n)
            buf += encode_varint(len(path))
        buf += path
        self._len += 1

    def extend(self, pairs: Iterable[tuple[bytes, str]]) -> None:
        for pair in pairs:
            self.append(pair)

    def __iadd__(self, pairs: Iterable[tuple[bytes, str]]) -> PathNotes:
        self.extend(pairs)
        return self

    def __radd__(self, other: list[tuple[bytes, str]]) -> list[tuple[bytes, str]]:
        """`a_list + notes`: a list, as when two lists are added."""
        return [*other, *self]

    def __iter__(self) -> Iterator[tuple[bytes, str]]:
        """The pairs held when the iteration starts (it sees none appended
        later, and appending meanwhile is allowed)."""
        buf, notes = self._buf, self._notes
        pos, end = 0, len(buf)
        while pos < end:
            n = buf[pos]
            if n < 0x80:
                pos += 1
            else:
                n, pos = decode_varint(buf, pos)
            size = buf[pos]
            if size < 0x80:
                pos += 1
            else:
                size, pos = decode_varint(buf, pos)
            yield bytes(buf[pos : pos + size]), notes[n]
            pos += size

    def __len__(self) -> int:
        return self._len

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PathNotes | list):
            return len(self) == len(other) and list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PathNotes({list(self)!r})"
