"""The replica index's keys, and its tables of records beside the paths'
versions: open and resolved conflicts, trash items, files wanted back (damage
marks) and the scrub's position. Byte layout: docs/formats/index.md.

`RecordTables` is the part of the index (`index.ReplicaIndex`) that reads and
writes these records; the paths' versions, deletion notices and sync times,
and opening and upgrading the index, are `index`'s.
"""

from __future__ import annotations

import json
from typing import Any

from squirrel.errors import CorruptIndex
from squirrel.plumbing.batched import BatchedEnv
from squirrel.plumbing.records import ConflictRecord
from squirrel.plumbing.trash import OID_SIZE, TrashItem, number_legacy
from squirrel.plumbing.wanted import ScrubState, WantedMark

TRASH_IDS_KEY = "trash_ids"  # meta: the number of the last trash item
SCRUB_KEY = "scrub"  # meta: where the scrub in slices stands (wanted.ScrubState)


def entry_key(path: bytes) -> bytes:
    """The key of `path` in `entries` and `deleted`: its parent, NUL, its
    name, so that a folder's children are one range of keys."""
    parent, _, name = path.rpartition(b"/")
    return parent + b"\0" + name


def path_key(path: bytes) -> bytes:
    """The key of `path` in the tables keyed by whole paths (`sync`, `wanted`)."""
    return b"/" + path


# The `conflicts` keys: an open conflict's under `/` (the only one earlier
# versions read, so they never list a resolved one), a resolved one's under
# `!`; then the path, and NUL + the copy's path when there is a copy.
OPEN_CONFLICT, RESOLVED_CONFLICT = b"/", b"!"


def conflict_key(record: ConflictRecord, resolved: bool | None = None) -> bytes:
    """The `conflicts` key of `record` (as open or resolved when `resolved` says)."""
    resolved = record.resolved if resolved is None else resolved
    key = (RESOLVED_CONFLICT if resolved else OPEN_CONFLICT) + record.path
    return key if record.copy is None else key + b"\0" + record.copy


class RecordTables(BatchedEnv):
    """The conflicts, trash, wanted and scrub records of an index."""

    _wanted: bool  # the `wanted` table may have records (set by the index on open)

    def _record(self, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError as e:
            raise CorruptIndex(f"damaged index record: {e}") from e

    def conflicts(self) -> list[ConflictRecord]:
        """Every conflict record, the resolved ones included."""
        return [
            ConflictRecord.from_json(self._record(raw))
            for prefix in (OPEN_CONFLICT, RESOLVED_CONFLICT)
            for _, raw in self._scan("conflicts", prefix)
        ]

    def conflicts_at(self, path: bytes) -> list[ConflictRecord]:
        """The conflict records at `path`, open and resolved (keyed by the
        path, then a NUL and the copy: not those of a longer path)."""
        found = []
        for prefix in (OPEN_CONFLICT, RESOLVED_CONFLICT):
            key = prefix + path
            for k, raw in self._scan("conflicts", key):
                if len(k) == len(key) or k[len(key)] == 0:
                    found.append(ConflictRecord.from_json(self._record(raw)))
        return found

    def put_conflict(self, record: ConflictRecord) -> None:
        """Store `record`, replacing the one with its path and copy."""
        self.drop_conflict(record)
        self._put("conflicts", conflict_key(record), _dump(record.to_json()))

    def drop_conflict(self, record: ConflictRecord) -> None:
        """Remove the record with the path and copy of `record`, open or resolved."""
        for resolved in (False, True):
            self._put("conflicts", conflict_key(record, resolved), None)
        # Before records were keyed by their copy, one with a copy was keyed
        # by its path alone.
        legacy = self._get("conflicts", path_key(record.path))
        if legacy is not None and record.copy is not None:
            if ConflictRecord.from_json(self._record(legacy)).copy == record.copy:
                self._put("conflicts", path_key(record.path), None)

    # The trash's items (docs/formats/index.md, `trash`; plumbing/trash.py).
    def next_trash_id(self) -> int:
        """Take the next item number (committed with the batch)."""
        raw = self._get("meta", TRASH_IDS_KEY.encode())
        n = (int(raw) if raw is not None and raw.isdigit() else 0) + 1
        self._put("meta", TRASH_IDS_KEY.encode(), str(n).encode())
        return n

    def trash_put(self, item: TrashItem) -> None:
        self._put("trash", item.key, item.encode())

    def trash_drop(self, item: TrashItem) -> None:
        self._put("trash", item.key, None)

    def trash_items(self) -> list[TrashItem]:
        """Every item, in key order. Records from before items are numbered
        as the first writer will number them."""
        items = [TrashItem.decode(key, raw) for key, raw in self._scan("trash", b"")]
        if any(it.id == 0 for it in items):
            raw = self._get("meta", TRASH_IDS_KEY.encode())
            last = int(raw) if raw is not None and raw.isdigit() else 0
            items = [it for it in items if it.id] + number_legacy(items, last)
        return items

    def trash_items_of(self, oid: bytes) -> list[TrashItem]:
        """The items whose content is `oid`."""
        return [TrashItem.decode(key, raw) for key, raw in self._scan("trash", oid) if key[:OID_SIZE] == oid]

    # Damaged files waiting for healing (plumbing/wanted.py).
    def wanted(self, path: bytes) -> WantedMark | None:
        raw = self._get("wanted", path_key(path)) if self._wanted else None
        return None if raw is None else WantedMark.from_json(path, self._record(raw))

    def put_wanted(self, mark: WantedMark) -> None:
        self._wanted = True
        self._put("wanted", path_key(mark.path), _dump(mark.to_json()))

    def drop_wanted(self, path: bytes) -> None:
        if self._wanted and self._get("wanted", path_key(path)) is not None:
            self._put("wanted", path_key(path), None)

    def wanted_marks(self, top: bytes = b"") -> list[WantedMark]:
        """The marks at or below `top`, in path order."""
        if not self._wanted:
            return []
        marks = [WantedMark.from_json(key[1:], self._record(raw)) for key, raw in self._scan("wanted", b"/")]
        return [w for w in marks if not top or w.path == top or w.path.startswith(top + b"/")]

    def scrub_state(self) -> ScrubState:
        raw = self._get("meta", SCRUB_KEY.encode())
        return ScrubState() if raw is None else ScrubState.from_json(self._record(raw))

    def set_scrub_state(self, state: ScrubState) -> None:
        self._put("meta", SCRUB_KEY.encode(), _dump(state.to_json()))


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True).encode()
