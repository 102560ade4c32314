"""The JSON records a replica's index keeps beside its entries: open
conflicts and the trash catalogue (docs/formats/index.md, `conflicts` and
`trash`).

Each record is a frozen dataclass with `to_json` / `from_json`: the index
stores `to_json()` and reads back `from_json()`, and the command line prints
the same documents. Paths are bytes; in JSON a path that is not valid UTF-8
is written as text with replacement characters plus `KEY_b64` holding the
exact bytes, and readers take `KEY_b64` when it is there. A record that does
not parse raises `CorruptIndex`: it is damaged index content.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from squirrel.errors import CorruptIndex
from squirrel.plumbing import paths

if TYPE_CHECKING:
    from squirrel.plumbing.index import Entry


def path_to_json(path: bytes, key: str = "path") -> dict[str, str]:
    return paths.json_path(path, key)


def path_from_json(doc: dict[str, Any], key: str = "path") -> bytes:
    """The exact bytes of `doc[key]` (from `KEY_b64` when present)."""
    b64 = doc.get(f"{key}_b64")
    try:
        if b64 is not None:
            return base64.b64decode(b64, validate=True)
        text = doc[key]
        if not isinstance(text, str):
            raise TypeError(key)
        return text.encode("utf-8")
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise CorruptIndex(f"damaged index record: bad {key}") from e


def _oid(doc: dict[str, Any], key: str) -> bytes | None:
    value = doc.get(key)
    if value is None:
        return None
    try:
        raw = bytes.fromhex(value)
    except (TypeError, ValueError) as e:
        raise CorruptIndex(f"damaged index record: bad {key}") from e
    if len(raw) != 32:
        raise CorruptIndex(f"damaged index record: bad {key}")
    return raw


def _int(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if type(value) is not int:
        raise CorruptIndex(f"damaged index record: bad {key}")
    return value


@dataclass(frozen=True)
class VersionInfo:
    """One side of a conflict, as shown to the user."""

    kind: str  # "file" or "dir"
    oid: bytes | None  # None for a directory
    size: int
    mtime_ns: int
    m: str  # the modification time in text form (names where known)

    @classmethod
    def of(cls, e: Entry, names: dict[str, str]) -> VersionInfo:
        return cls("dir" if e.is_dir else "file", e.oid if e.is_file else None, e.size, e.mtime_ns, e.m.format(names))

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "oid": self.oid.hex() if self.oid is not None else None,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "m": self.m,
        }

    @classmethod
    def from_json(cls, doc: Any) -> VersionInfo:
        if not isinstance(doc, dict) or doc.get("kind") not in ("file", "dir") or not isinstance(doc.get("m"), str):
            raise CorruptIndex("damaged index record: bad conflict version")
        oid = doc.get("oid")
        try:
            raw = bytes.fromhex(oid) if oid is not None else None
        except (TypeError, ValueError) as e:
            raise CorruptIndex("damaged index record: bad object id") from e
        if raw is not None and len(raw) != 32:
            raise CorruptIndex("damaged index record: bad object id")
        return cls(doc["kind"], raw, _int(doc, "size"), _int(doc, "mtime_ns"), doc["m"])


@dataclass(frozen=True)
class ConflictRecord:
    """A conflict a sync settled by keeping both versions.

    `path` is where it happened, `kept` the path of the version that stayed
    there, `copy` the conflict copy (None when none was written: a
    delete/update or update/delete keeps the one surviving version).
    `ours` is the receiver's version, `theirs` the sender's (None for a
    deletion). `replica` names the replica where the conflict was met.

    `kept_oid` is the content that stayed at the path (None for a
    directory), `copy_oid` the content of the copy: the conflict is open on
    a replica as long as it holds both (see `conflicts.is_open`). A record
    from before they were kept has `tracked` False and is open until
    resolved where it was met.

    `resolved` marks a conflict the user resolved while both sides stayed
    as they were (one without a copy: nothing on disk changes). It is never
    listed, travels like an open record and closes the same conflict
    wherever it arrives; like any record it goes when its files change.
    """

    path: bytes
    kind: str
    kept: bytes
    copy: bytes | None
    ours: VersionInfo | None = None
    theirs: VersionInfo | None = None
    time: int = 0
    replica: str | None = None
    kept_oid: bytes | None = None
    copy_oid: bytes | None = None
    tracked: bool = True
    resolved: bool = False

    def summary_json(self) -> dict[str, Any]:
        """What a sync reports for it: path, kind, kept, copy (+ replica)."""
        out: dict[str, Any] = {**path_to_json(self.path), "kind": self.kind}
        out.update(path_to_json(self.kept, "kept"))
        if self.copy is None:
            out["copy"] = None
        else:
            out.update(path_to_json(self.copy, "copy"))
        if self.replica is not None:
            out["replica"] = self.replica
        return out

    def to_json(self) -> dict[str, Any]:
        """The whole record: what the index stores and `sq conflicts` prints."""
        doc = {
            **self.summary_json(),
            "ours": self.ours.to_json() if self.ours is not None else None,
            "theirs": self.theirs.to_json() if self.theirs is not None else None,
            "time": self.time,
        }
        if self.tracked:
            doc["kept_oid"] = self.kept_oid.hex() if self.kept_oid is not None else None
            doc["copy_oid"] = self.copy_oid.hex() if self.copy_oid is not None else None
        if self.resolved:
            doc["resolved"] = True
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> ConflictRecord:
        if not isinstance(doc, dict) or not isinstance(doc.get("kind"), str):
            raise CorruptIndex("damaged index record: bad conflict")
        path = path_from_json(doc)
        kept = path_from_json(doc, "kept") if "kept" in doc else path
        copy = path_from_json(doc, "copy") if doc.get("copy") is not None else None
        replica = doc.get("replica")
        if replica is not None and not isinstance(replica, str):
            raise CorruptIndex("damaged index record: bad replica")
        tracked = "kept_oid" in doc
        resolved = doc.get("resolved", False)
        if type(resolved) is not bool:
            raise CorruptIndex("damaged index record: bad resolved")
        return cls(
            path,
            doc["kind"],
            kept,
            copy,
            VersionInfo.from_json(doc["ours"]) if doc.get("ours") is not None else None,
            VersionInfo.from_json(doc["theirs"]) if doc.get("theirs") is not None else None,
            _int(doc, "time") if "time" in doc else 0,
            replica,
            _oid(doc, "kept_oid") if tracked else None,
            _oid(doc, "copy_oid") if tracked else None,
            tracked,
            resolved,
        )


@dataclass(frozen=True)
class TrashRecord:
    """A version in the replica's trash: `.squirrel/trash/` + its object id."""

    oid: bytes
    path: bytes  # where the version last was
    size: int
    time: int  # Unix seconds when it went to the trash

    def to_json(self) -> dict[str, Any]:
        return {**path_to_json(self.path), "size": self.size, "time": self.time}

    @classmethod
    def from_json(cls, oid: bytes, doc: Any) -> TrashRecord:
        if not isinstance(doc, dict):
            raise CorruptIndex("damaged index record: bad trash item")
        return cls(oid, path_from_json(doc), _int(doc, "size"), _int(doc, "time"))
