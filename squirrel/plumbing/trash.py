"""The trash's records: one item per version a replica moved aside
(docs/formats/index.md, `trash`; the folder: docs/formats/replica.md).

A version goes to `.squirrel/trash/` under the 64 hex digits of its object
id, so identical content is stored once however often it is trashed. Each
time a version goes there is one *item*: where it was, its size, when and
why it went (`TrashReason`). Items are numbered per replica (1, 2, 3, ...):
the number is the id a user types to restore one. Several items may share
one content file; the file goes with its last item.

A folder of ignored files that a sync found in a folder it removed
(`.DS_Store` and the like) is moved aside whole, as `leftovers-N/`: one item
without an object id.

The index stores an item under its object id and number, in the compact
binary record `encode` writes, so that listing 100,000 of them stays well
under a second. Records written before items existed (keyed by the object id
alone, a JSON value, no reason) still read: as items numbered in the order
they were trashed (`number_legacy`); the first command that writes renumbers
them for good (`ReplicaIndex` does, when it opens).
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import operator
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from squirrel.errors import CorruptIndex
from squirrel.plumbing import paths

OID_SIZE = 32
ID_SIZE = 8  # the item's number, big-endian after the object id in the key
NO_OID = bytes(OID_SIZE)  # the key prefix of an item without content id (a folder)
LEFTOVERS_PREFIX = "leftovers-"  # the folders of ignored files, in trash/

# Why a version went to the trash ------------------------------------------------
UNKNOWN = "unknown"  # recorded before reasons were
REPLACED = "replaced"  # a sync wrote a newer version over it
DELETED = "deleted"  # a sync deleted it
RESOLVED = "resolved"  # `sq resolve` kept the other version
DAMAGED = "damaged"  # its content no longer matched the index (reserved for a repair)
INTERRUPTED = "interrupted"  # left there by a sync killed halfway, whose change was undone
UNRECORDED = "unrecorded"  # found in trash/ without a record
LEFTOVERS = "leftovers"  # ignored files in a folder a sync removed
CAUSES = (UNKNOWN, REPLACED, DELETED, RESOLVED, DAMAGED, INTERRUPTED, UNRECORDED, LEFTOVERS)

# The binary record: cause, flags, time, size, mtime_ns; then the sender's
# name, the folder's name (both u8-length-prefixed), and the path.
_HEAD = struct.Struct("<BBqQq")
_HEAD_N = struct.Struct("<BBqQqB")  # the head and the length of `from`, read in one go
FLAG_MTIME = 0x01  # mtime_ns is known


_TEXTS = {
    UNKNOWN: "from before reasons were recorded",
    REPLACED: "replaced by a sync{by}",
    DELETED: "deleted by a sync{by}",
    RESOLVED: "conflict resolved",
    DAMAGED: "damaged",
    INTERRUPTED: "left by an interrupted sync",
    UNRECORDED: "found in the trash without a record",
    LEFTOVERS: "ignored files in a folder a sync{by} removed",
}


@dataclass(frozen=True)
class TrashReason:
    """Why a version went to the trash: a cause, and the replica whose sync
    did it (for `replaced`, `deleted` and `leftovers`)."""

    cause: str
    sender: str | None = None

    @functools.cached_property
    def text(self) -> str:
        by = f" from {self.sender}" if self.sender else ""
        return _TEXTS.get(self.cause, self.cause).format(by=by)


@dataclass(frozen=True)
class TrashItem:
    """One time a version went to the trash.

    `id` is the item's number in this replica (0 for a record from before
    items, until it is numbered). `oid` names the content file
    `trash/<oid hex>`; a folder item has none and names its folder in
    `folder`. `time` is when it went (Unix seconds), `mtime_ns` the file's
    own modification time, when known.
    """

    id: int
    oid: bytes | None
    path: bytes  # where the version was, relative to the replica root
    size: int
    time: int
    reason: TrashReason
    mtime_ns: int | None = None
    folder: str | None = None

    @property
    def name(self) -> str:
        """Its content's name in `.squirrel/trash/`."""
        if self.oid is not None:
            return self.oid.hex()
        assert self.folder is not None
        return self.folder

    @property
    def key(self) -> bytes:
        """Its key in the index's `trash` table (the object id alone for a
        record from before items)."""
        prefix = self.oid if self.oid is not None else NO_OID
        return prefix if self.id == 0 else prefix + self.id.to_bytes(ID_SIZE, "big")

    # The index's form --------------------------------------------------------------
    def encode(self) -> bytes:
        sender = (self.reason.sender or "").encode("utf-8")[:255]
        folder = (self.folder or "").encode("ascii")
        head = _HEAD.pack(
            CAUSES.index(self.reason.cause) if self.reason.cause in CAUSES else 0,
            FLAG_MTIME if self.mtime_ns is not None else 0,
            self.time,
            self.size,
            self.mtime_ns or 0,
        )
        return b"".join((head, bytes([len(sender)]), sender, bytes([len(folder)]), folder, self.path))

    @classmethod
    def decode(cls, key: bytes, raw: bytes) -> TrashItem:
        """The item stored under `key`; `CorruptIndex` for anything else."""
        if len(key) != OID_SIZE + ID_SIZE:
            if len(key) == OID_SIZE:
                return cls._legacy(key, raw)
            raise CorruptIndex("damaged trash record: bad key")
        try:
            cause, flags, when, size, mtime_ns, n = _HEAD_N.unpack_from(raw)
            at = _HEAD_N.size + n
            m = raw[at]
        except (struct.error, IndexError) as e:
            raise CorruptIndex("damaged trash record: too short") from e
        oid: bytes | None = key[:OID_SIZE]
        if cause >= len(CAUSES) or flags > FLAG_MTIME or at + 1 + m > len(raw) or (oid == NO_OID) != (m > 0):
            raise CorruptIndex("damaged trash record")
        folder = None
        if m:
            oid = None
            try:
                folder = raw[at + 1 : at + 1 + m].decode("ascii")
            except UnicodeDecodeError as e:
                raise CorruptIndex("damaged trash record: bad folder") from e
        return cls(
            int.from_bytes(key[OID_SIZE:], "big"),
            oid,
            raw[at + 1 + m :],
            size,
            when,
            _reason(cause, raw[_HEAD_N.size : at]),
            mtime_ns if flags else None,
            folder,
        )

    @classmethod
    def _legacy(cls, oid: bytes, raw: bytes) -> TrashItem:
        """A record from before items: `{"path", "size", "time"}` (JSON)."""
        try:
            doc = json.loads(raw)
        except ValueError as e:
            raise CorruptIndex("damaged trash record") from e
        if not isinstance(doc, dict) or type(doc.get("size")) is not int or type(doc.get("time")) is not int:
            raise CorruptIndex("damaged trash record")
        return cls(0, oid, _path_from_json(doc, "path"), doc["size"], doc["time"], TrashReason(UNKNOWN))

    # What `sq trash list --json` prints ------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **paths.json_path(self.path),
            "size": self.size,
            "oid": self.oid.hex() if self.oid is not None else None,
            "time": self.time,
            "reason": self.reason.text,
            "cause": self.reason.cause,
            "from": self.reason.sender,
            "mtime_ns": self.mtime_ns,
            "folder": self.folder,
        }

    @classmethod
    def from_json(cls, doc: Any) -> TrashItem:
        if not isinstance(doc, dict):
            raise CorruptIndex("damaged trash item")
        try:
            oid = bytes.fromhex(doc["oid"]) if doc.get("oid") is not None else None
        except (TypeError, ValueError) as e:
            raise CorruptIndex("damaged trash item: bad oid") from e
        cause, sender, folder, mtime = doc.get("cause"), doc.get("from"), doc.get("folder"), doc.get("mtime_ns")
        if (
            (oid is not None and len(oid) != OID_SIZE)
            or (oid is None) == (folder is None)
            or not all(type(doc.get(k)) is int for k in ("id", "size", "time"))
            or cause not in CAUSES
            or not (sender is None or isinstance(sender, str))
            or not (folder is None or isinstance(folder, str))
            or not (mtime is None or type(mtime) is int)
        ):
            raise CorruptIndex("damaged trash item")
        return cls(
            doc["id"],
            oid,
            _path_from_json(doc, "path"),
            doc["size"],
            doc["time"],
            TrashReason(cause, sender),
            mtime,
            folder,
        )


@functools.lru_cache(maxsize=256)
def _reason(cause: int, sender: bytes) -> TrashReason:
    """One shared (immutable) reason per cause and sender: a trash holds
    many items, and few reasons."""
    return TrashReason(CAUSES[cause], sender.decode("utf-8", "replace") or None)


def _path_from_json(doc: dict[str, Any], key: str) -> bytes:
    b64 = doc.get(f"{key}_b64")
    try:
        if b64 is not None:
            return base64.b64decode(b64, validate=True)
        text = doc[key]
        if not isinstance(text, str):
            raise TypeError(key)
        return text.encode("utf-8")
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise CorruptIndex(f"damaged trash record: bad {key}") from e


def number_legacy(items: Iterable[TrashItem], last_id: int) -> list[TrashItem]:
    """Records from before items (id 0) numbered after `last_id`, in the
    order they were trashed (ties by object id): every reader numbers them
    alike, and the first writer stores those numbers."""
    legacy = sorted((it for it in items if it.id == 0), key=lambda it: (it.time, it.oid or b""))
    return [replace(it, id=last_id + n) for n, it in enumerate(legacy, start=1)]


_WHEN = operator.attrgetter("time", "id")


def newest_first(items: Iterable[TrashItem]) -> list[TrashItem]:
    return sorted(items, key=_WHEN, reverse=True)


def oldest_first(items: Iterable[TrashItem]) -> list[TrashItem]:
    return sorted(items, key=_WHEN)


def held_bytes(items: Iterable[TrashItem]) -> int:
    """The space these items hold: each content file counted once."""
    sizes: dict[bytes | str | None, int] = {}
    for it in items:
        sizes[it.oid or it.folder] = it.size
    return sum(sizes.values())
