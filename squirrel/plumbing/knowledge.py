"""What a receiver knows: its sync times, for packing a bundle against.

`sq knowledge PATH -o FILE` writes a replica's knowledge so that the sender
can pack exactly what it lacks without the receiver being mounted
(`sq pack --base FILE`). Format: docs/formats/knowledge.md.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any

from squirrel.errors import BadBundle, SquirrelError, UnsupportedFormat
from squirrel.plumbing import paths
from squirrel.plumbing.durable import write_file_atomic
from squirrel.plumbing.idset import ObjectIds
from squirrel.plumbing.index import ReplicaIndex
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.userfiles import open_input_file
from squirrel.plumbing.vtime import VectorTime, is_replica_id

KNOWLEDGE_FORMAT = 1
MAX_KNOWLEDGE_BYTES = 256 << 20


@dataclass
class Knowledge:
    """A receiver's sync times: stored ones (compressed) plus its own counter."""

    vault: str
    replica: str | None
    counter: int
    stored: dict[bytes, VectorTime] = field(default_factory=dict)
    index: ReplicaIndex | None = None  # a mounted receiver's index, to find content it has
    objects: ObjectIds = field(default_factory=ObjectIds)  # content ids the receiver holds (from a file)
    wanted: dict[bytes, bytes] = field(default_factory=dict)  # damaged path -> the object it waits for

    def sync_time(self, path: bytes) -> VectorTime:
        s = paths.nearest(path, self.stored.get)
        if s is None:
            return VectorTime()
        return s.with_entry(self.replica, self.counter) if self.replica else s

    def sync_time_below(self, path: bytes, inherited: VectorTime) -> VectorTime:
        s = self.stored.get(path)
        if s is None:
            return inherited
        return s.with_entry(self.replica, self.counter) if self.replica else s

    def held_among(self, oids: set[bytes]) -> set[bytes]:
        """Which of `oids` the receiver holds: those of the knowledge file,
        and for a mounted receiver those its index records (one pass over it,
        keeping no more than `oids` in memory: a million-file receiver's
        whole list would be a hundred megabytes). The content a damaged file
        waits for is not held there (`wanted`)."""
        found = {oid for oid in oids if oid in self.objects}
        if self.index is not None and len(found) < len(oids):
            for path, oid, _ in self.index.files():
                if oid in oids and path not in self.wanted:
                    found.add(oid)
        return found

    def held_objects(self) -> ObjectIds:
        """What the receiver's files hold: not the content its damaged files
        wait for, unless another of its files has it too."""
        assert self.index is not None
        if not self.wanted:
            return ObjectIds.build(self.index.object_ids())
        return ObjectIds.build(oid for path, oid, _ in self.index.files() if path not in self.wanted)

    @classmethod
    def nothing(cls, vault: str) -> Knowledge:
        return cls(vault, None, 0, {b"": VectorTime()})

    @classmethod
    def of_replica(cls, rep: Replica) -> Knowledge:
        idx = rep.index
        stored = {b"": idx.stored_sync(b"") or VectorTime()}
        stored.update(dict(idx.stored_syncs_under(b"")))
        wanted = {w.path: w.oid for w in idx.wanted_marks()}
        return cls(rep.identity.vault, rep.id, idx.counter, stored, idx, wanted=wanted)

    def all_objects(self) -> ObjectIds:
        if self.index is None:
            return self.objects
        return ObjectIds.build(itertools.chain(self.objects, self.held_objects()))

    def to_json(self, objects: bool = True) -> dict[str, object]:
        """The knowledge file's document; without `objects`, the content list
        (a pass over the whole object table) is left empty."""
        doc: dict[str, object] = {
            "objects": base64.b64encode(self.all_objects().raw).decode() if objects else "",
            "format": KNOWLEDGE_FORMAT,
            "vault": self.vault,
            "replica": self.replica,
            "counter": self.counter,
            "sync": [{"path_b64": base64.b64encode(p).decode(), "s": dict(s)} for p, s in sorted(self.stored.items())],
        }
        if self.wanted:  # only then: a replica without damaged files writes what it always wrote
            doc["wanted"] = [
                {"path_b64": base64.b64encode(p).decode(), "oid": o.hex()} for p, o in sorted(self.wanted.items())
            ]
        return doc

    def write(self, path: str) -> None:
        write_file_atomic(os.path.abspath(path), json.dumps(self.to_json(), sort_keys=True).encode())

    @classmethod
    def read(cls, path: str) -> Knowledge:
        """A knowledge file; a folder or a missing file raises BadPath (exit
        5), anything else that is not a knowledge file BadBundle (exit 10)."""
        try:
            with open_input_file(path, "knowledge", " (`sq knowledge DRIVE -o FILE` writes one)") as f:
                raw = f.read(MAX_KNOWLEDGE_BYTES + 1)
        except OSError as e:
            raise BadBundle(f"cannot read knowledge file {path}: {e.strerror}") from e
        if len(raw) > MAX_KNOWLEDGE_BYTES:
            raise BadBundle(f"knowledge file {path} is too large")
        try:
            return cls.from_json(json.loads(raw))
        except UnsupportedFormat as e:
            raise UnsupportedFormat(f"knowledge file {path}: {e}") from e
        except (ValueError, RecursionError) as e:
            raise BadBundle(f"not a knowledge file (or damaged): {path}") from e

    @classmethod
    def from_json(cls, doc: Any) -> Knowledge:
        """The knowledge a document describes; ValueError when it is not one
        (UnsupportedFormat for a newer format)."""
        try:
            fmt = doc["format"]
            if not isinstance(fmt, int):
                raise TypeError("format")
            if fmt > KNOWLEDGE_FORMAT:
                raise UnsupportedFormat(f"format {fmt} is newer than this sq ({KNOWLEDGE_FORMAT}); upgrade sq")
            vault, replica, counter = doc["vault"], doc["replica"], doc["counter"]
            if not (isinstance(vault, str) and is_replica_id(vault)):
                raise TypeError("vault")
            if replica is not None and not (isinstance(replica, str) and is_replica_id(replica)):
                raise TypeError("replica")
            if not isinstance(counter, int) or counter < 0:
                raise TypeError("counter")
            raw_ids = base64.b64decode(doc.get("objects", ""), validate=True)
            if len(raw_ids) % 32:
                raise ValueError("objects")
            objects = ObjectIds.read(raw_ids)
            stored: dict[bytes, VectorTime] = {}
            for item in doc["sync"]:
                p = paths.check_relpath(base64.b64decode(item["path_b64"], validate=True))
                s = item["s"]
                if not isinstance(s, dict) or not all(
                    isinstance(k, str) and is_replica_id(k) and isinstance(v, int) and v >= 0 for k, v in s.items()
                ):
                    raise TypeError("sync time")
                stored[p] = VectorTime(s)
            wanted: dict[bytes, bytes] = {}
            for item in doc.get("wanted", []):  # absent in files from before damaged files
                oid = bytes.fromhex(item["oid"])
                if len(oid) != 32:
                    raise ValueError("oid")
                wanted[paths.check_relpath(base64.b64decode(item["path_b64"], validate=True))] = oid
        except UnsupportedFormat:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, SquirrelError) as e:
            raise ValueError(f"not a knowledge document: {e}") from e
        stored.setdefault(b"", VectorTime())
        return cls(vault, replica, counter, stored, None, objects, wanted)
