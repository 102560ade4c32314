"""Damaged files and the scrub: the two records that bit-rot handling keeps
in a replica's index (docs/formats/index.md, `wanted` and `meta` `scrub`).

A *wanted mark* says: the file at this path rotted (its content no longer
matched its recorded object id while its size and mtime had not changed),
its damaged bytes went to the trash, and the path wants its recorded object
back. The index entry keeps the old version and its vector times, so no
other replica hears of anything: the damage is not an edit.

The *scrub state* says where a scrub made in slices (`sq verify
--max-bytes`) stopped, and when the last full pass over the replica's files
ended.

Both are frozen dataclasses with `to_json` / `from_json`; a record that does
not parse raises `CorruptIndex`.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from typing import Any

from squirrel.errors import CorruptIndex
from squirrel.plumbing.records import _int, _oid


@dataclass(frozen=True)
class WantedMark:
    """A damaged file waiting for its recorded object."""

    path: bytes
    oid: bytes  # the recorded object id: what the path wants back
    size: int
    mtime_ns: int  # the recorded mtime, which the healed file gets back
    found: bytes  # the object id of the damaged bytes (its trash item's content)
    since: int  # when the damage was found, Unix seconds

    def to_json(self) -> dict[str, Any]:
        """The stored value (the path is in the key)."""
        return {
            "oid": self.oid.hex(),
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "found": self.found.hex(),
            "since": self.since,
        }

    @classmethod
    def from_json(cls, path: bytes, doc: Any) -> WantedMark:
        if not isinstance(doc, dict):
            raise CorruptIndex("damaged index record: a wanted mark is not an object")
        oid, found = _oid(doc, "oid"), _oid(doc, "found")
        if oid is None or found is None:
            raise CorruptIndex("damaged index record: a wanted mark without object ids")
        size = _int(doc, "size")
        if size < 0:
            raise CorruptIndex("damaged index record: bad size")
        return cls(path, oid, size, _int(doc, "mtime_ns"), found, _int(doc, "since"))


@dataclass(frozen=True)
class ScrubState:
    """Where the scrub of a replica stands.

    `cursor` is the `entries` key of the last file the current cycle
    checked (None: no cycle under way; the next slice starts at the first
    file). `began` is when the current cycle started, `read` how much of
    it has been read so far. `last_full` / `last_full_began`: when the last
    complete cycle ended and began (None: never)."""

    cursor: bytes | None = None
    began: int | None = None
    read: int = 0
    last_full: int | None = None
    last_full_began: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "cursor_b64": None if self.cursor is None else base64.b64encode(self.cursor).decode(),
            "began": self.began,
            "read": self.read,
            "last_full": self.last_full,
            "last_full_began": self.last_full_began,
        }

    @classmethod
    def from_json(cls, doc: Any) -> ScrubState:
        if not isinstance(doc, dict):
            raise CorruptIndex("damaged index metadata scrub")
        try:
            raw = doc.get("cursor_b64")
            cursor = None if raw is None else base64.b64decode(raw, validate=True)
        except (TypeError, ValueError, binascii.Error) as e:
            raise CorruptIndex("damaged index metadata scrub: bad cursor") from e
        times = {k: doc.get(k) for k in ("began", "last_full", "last_full_began")}
        if any(v is not None and type(v) is not int for v in times.values()):
            raise CorruptIndex("damaged index metadata scrub: bad time")
        return cls(cursor, times["began"], _int(doc, "read"), times["last_full"], times["last_full_began"])

    def advanced(self, cursor: bytes, nbytes: int, now: int) -> ScrubState:
        """After a slice that checked files up to `cursor` (reading `nbytes`)."""
        return replace(
            self, cursor=cursor, began=self.began if self.began is not None else now, read=self.read + nbytes
        )

    def completed(self, now: int, began: int) -> ScrubState:
        """The cycle reached the last file (a slice that began at `began`
        found nothing more to read): the next slice starts a new one."""
        return ScrubState(None, None, 0, now, self.began if self.began is not None else began)
