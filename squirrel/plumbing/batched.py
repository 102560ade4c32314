"""An LMDB environment whose writes are batched: the mechanism under the
replica index (`index`).

Writes wait in memory, every lookup and listing sees them overlaid on the
committed records (so code reads what it just wrote), and `commit` writes
them in one transaction: all of a batch or none of it. When the map is full,
it is doubled and the batch replayed, so an environment starts small.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lmdb

from squirrel.errors import CorruptIndex, OutOfSpace, SquirrelError
from squirrel.plumbing import faults


class BatchedEnv:
    """Named databases of one LMDB environment, with batched writes."""

    def __init__(
        self, directory: str, db_names: tuple[bytes, ...], *, create: bool, readonly: bool, map_size: int, max_dbs: int
    ) -> None:
        self.directory = directory
        self.readonly = readonly
        options: dict[str, Any] = dict(
            subdir=True, max_dbs=max_dbs, map_size=map_size, readonly=readonly, create=create, readahead=False
        )
        try:
            try:
                self.env = lmdb.open(directory, **options)
            except lmdb.ReadonlyError:
                # A read-only drive: readers cannot use the lock file there.
                if not readonly:
                    raise
                self.env = lmdb.open(directory, lock=False, **options)
            self._db: dict[str, Any] = {}
            for name in db_names:
                try:
                    self._db[name.decode()] = self.env.open_db(name, create=not readonly)
                except lmdb.NotFoundError:
                    self._db[name.decode()] = None  # read-only and never written: empty
        except lmdb.Error as e:
            raise CorruptIndex(f"cannot open index {directory}: {e}") from e
        # Pending writes: (db, key) -> value or None for a delete.
        self._pending: dict[tuple[str, bytes], bytes | None] = {}
        self._rtxn: Any = None
        self._held = False  # see `hold_writes`

    def _txn(self) -> Any:
        """The read snapshot of the committed records (renewed by `commit`)."""
        if self._rtxn is None:
            self._rtxn = self.env.begin(buffers=False)
        return self._rtxn

    def _end_snapshot(self) -> None:
        if self._rtxn is not None:
            self._rtxn.abort()
            self._rtxn = None

    def _get(self, db: str, key: bytes) -> bytes | None:
        k = (db, key)
        if k in self._pending:
            return self._pending[k]
        if self._db[db] is None:
            return None
        val: bytes | None = self._txn().get(key, db=self._db[db])
        return val

    def _put(self, db: str, key: bytes, value: bytes | None) -> None:
        self._pending[(db, key)] = value

    def has_pending(self) -> bool:
        """Are there writes not yet committed?"""
        return bool(self._pending)

    def _pending_in(self, db: str, prefix: bytes) -> dict[bytes, bytes | None]:
        """The pending writes of `db` whose key starts with `prefix` (a
        subclass may know them without looking at every pending write)."""
        return {k: v for (d, k), v in self._pending.items() if d == db and k.startswith(prefix)}

    def _scan_prefix(self, db: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Committed records whose key starts with `prefix`, in key order."""
        if self._db[db] is None:
            return
        cur = self._txn().cursor(db=self._db[db])
        if not cur.set_range(prefix):
            return
        for key, val in cur:
            if not key.startswith(prefix):
                return
            yield key, val

    def _committed_map(self, db: str, prefix: bytes) -> dict[bytes, bytes]:
        """Committed records whose key starts with `prefix`, by the rest of
        their key: `_scan_prefix` in one loop, without a generator."""
        out: dict[bytes, bytes] = {}
        if self._db[db] is None:
            return out
        cur = self._txn().cursor(db=self._db[db])
        if cur.set_range(prefix):
            n = len(prefix)
            for key, val in cur:
                if not key.startswith(prefix):
                    break
                out[key[n:]] = val
        return out

    def _scan(self, db: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Records whose key starts with `prefix` as this batch sees them: the
        committed ones overlaid with the pending writes, in key order. Every
        listing goes through here, so none can miss what was just written."""
        pend = self._pending_in(db, prefix)
        if not pend:
            yield from self._scan_prefix(db, prefix)
            return
        keys = sorted(pend)
        i = 0
        for key, val in self._scan_prefix(db, prefix):
            while i < len(keys) and keys[i] < key:
                if (new := pend[keys[i]]) is not None:
                    yield keys[i], new
                i += 1
            if i < len(keys) and keys[i] == key:
                if (new := pend[key]) is not None:
                    yield key, new
                i += 1
            else:
                yield key, val
        for k in keys[i:]:
            if (new := pend[k]) is not None:
                yield k, new

    def hold_writes(self) -> None:
        """From now on keep every change pending and write none: a dry run
        runs the code that records, and every lookup sees what it would
        have written, but `commit` leaves the environment as it was."""
        self._held = True

    def commit(self) -> None:
        """Write every pending change in one transaction (growing the map if full)."""
        if not self._pending or self._held:
            return
        if self.readonly:
            raise SquirrelError("internal error: write to a read-only index")
        self._end_snapshot()
        faults.point("commit")
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for (db, key), val in sorted(self._pending.items()):
                        if val is None:
                            txn.delete(key, db=self._db[db])
                        else:
                            txn.put(key, val, db=self._db[db])
                break
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
            except lmdb.DiskError as e:  # the drive is full: nothing of this transaction was written
                raise OutOfSpace(f"no space left on the drive to record the changes in its index ({e})") from e
        self._forget_pending()

    def rollback(self) -> None:
        """Forget every pending change."""
        self._forget_pending()

    def _forget_pending(self) -> None:
        self._pending.clear()

    def close(self) -> None:
        self._end_snapshot()
        self.env.close()
