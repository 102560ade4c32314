"""The replica index: an LMDB environment in `.squirrel/index/`.

It maps every indexed path to its version (kind, object id, size, mode,
mtime, modification time, creation time) and keeps the deletion notices and
the compressed sync times; its conflict, trash, wanted and scrub records are
read and written by its base class (`index_records.RecordTables`). Byte
layout: docs/formats/index.md.

Writes are buffered and committed in one LMDB transaction per batch; reads
see the buffered writes, so code can read what it just wrote. When the map is
full it is doubled and the batch replayed: the index starts small (the
mechanism is `batched.BatchedEnv`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterator
from typing import Any

import lmdb

from squirrel.errors import CorruptIndex, SquirrelError, UnsafePath, UnsupportedFormat
from squirrel.plumbing import entry as entry_codec
from squirrel.plumbing import faults, ids, paths
from squirrel.plumbing.entry import (
    FAT_TICK_NS,
    FLAG_PARTIAL,
    FLAG_RACY,
    KIND_DIR,
    KIND_FILE,
    KIND_NAMES,
    Entry,
    decode_entry,
    encode_entry,
    new_dir,
    racy_flag,
)
from squirrel.plumbing.index_records import TRASH_IDS_KEY, RecordTables, entry_key, path_key
from squirrel.plumbing.trash import TrashItem, number_legacy
from squirrel.plumbing.vtime import EMPTY, VectorTime
from squirrel.text import counted

FORMAT_VERSION = 3
INITIAL_MAP_SIZE = 16 << 20
AUTO_FLUSH = 100_000
LEGACY_KEY = "legacy_deletions"  # meta: deletions from before format 2 have no notice
NAMES_CHECKED_KEY = "names_checked"  # meta: records of uncarriable names are gone (forget_uncarriable)

__all__ = [
    "FAT_TICK_NS",
    "FLAG_PARTIAL",
    "FLAG_RACY",
    "FORMAT_VERSION",
    "KIND_DIR",
    "KIND_FILE",
    "KIND_NAMES",
    "Entry",
    "ReplicaIndex",
    "decode_entry",
    "encode_entry",
    "entry_key",
    "new_dir",
    "path_key",
    "racy_flag",
]


DB_NAMES = (b"meta", b"entries", b"sync", b"deleted", b"conflicts", b"trash", b"wanted")


class ReplicaIndex(RecordTables):
    """A replica's index. `self_id` is the replica's own id: its component of
    every sync time is implicit (a replica knows itself up to its counter)."""

    def __init__(self, directory: str, self_id: str, *, create: bool = False, readonly: bool = False) -> None:
        self.self_id = self_id
        try:
            size = os.path.getsize(os.path.join(directory, "data.mdb"))
        except OSError:
            size = 0
        if not create and not os.path.exists(os.path.join(directory, "data.mdb")):
            raise CorruptIndex(f"index missing: {directory}")
        super().__init__(
            directory,
            DB_NAMES,
            create=create,
            readonly=readonly,
            map_size=max(INITIAL_MAP_SIZE, size * 2),
            max_dbs=len(DB_NAMES) + 2,  # and format 1's `objects`, dropped by the upgrade
        )
        # Every table keyed by a path makes its key one byte longer than the
        # path (`entry_key`, `path_key`; the trash is keyed by ids), and
        # LMDB refuses keys past its limit: a longer path cannot be recorded.
        self.max_path = self.env.max_key_size() - 1
        # The names of pending entries per parent, so that listing one
        # directory finds its pending children without looking at the rest.
        self._pending_children: dict[bytes, set[bytes]] = {}
        self._notices = True  # until the header says the table is empty
        self._syncs = True  # until the header says only the root has a stored sync time
        self._covers: tuple[bytes, VectorTime, VectorTime] | None = None  # see raise_ancestors
        self._wanted = True  # likewise
        try:
            self._open_header(create)
        except BaseException:
            self.close()  # a refused index must not stay open in this process
            raise

    def _open_header(self, create: bool) -> None:
        self.format = FORMAT_VERSION
        self._use_codec()
        if create:
            self._put("meta", b"format", str(FORMAT_VERSION).encode())
            self._put("meta", b"counter", b"0")
            self._put("meta", TRASH_IDS_KEY.encode(), b"0")
            self.put(b"", new_dir(EMPTY, EMPTY))
            self.set_stored_sync(b"", EMPTY, force=True)
            self.commit()
        fmt = self._get("meta", b"format")
        if fmt is None or not fmt.isdigit():
            raise CorruptIndex(f"index has no format version: {self.directory}")
        if int(fmt) > FORMAT_VERSION:
            raise UnsupportedFormat(
                f"index format {int(fmt)} is newer than this sq understands ({FORMAT_VERSION}); upgrade sq"
            )
        self.format = int(fmt)
        if self.format < 2 and not self.readonly:
            self._upgrade()
        if self.format == 2 and not self.readonly:
            # Format 3 adds the `wanted` table (created empty on open): an
            # older sq would take a damaged file waiting for healing as deleted.
            self._put("meta", b"format", str(FORMAT_VERSION).encode())
            self.commit()
            self.format = FORMAT_VERSION
        if not self.readonly and self._get("meta", TRASH_IDS_KEY.encode()) is None:
            self._number_trash()
        self._use_codec()
        raw = self._get("meta", b"counter")
        if raw is None or not raw.isdigit():
            raise CorruptIndex("index has no event counter")
        self._counter = int(raw)
        self.exact_deletions = self.format >= 2 and not self.get_meta_json(LEGACY_KEY, False)
        self._notices = self._db["deleted"] is not None and self._txn().stat(self._db["deleted"])["entries"] > 0
        self._syncs = self._db["sync"] is not None and self._txn().stat(self._db["sync"])["entries"] > 1
        self._wanted = self._db["wanted"] is not None and self._txn().stat(self._db["wanted"])["entries"] > 0

    def _use_codec(self) -> None:
        """Format 1 indexes are read (read-only opens) with the format-1 codec."""
        v1 = self.format < 2
        self._decode: Callable[[bytes | memoryview], Entry] = entry_codec.decode_entry_v1 if v1 else decode_entry
        self._file_oid: Callable[[bytes], bytes | None] = entry_codec.file_oid_v1 if v1 else entry_codec.file_oid
        self.unchanged_file: Callable[[bytes, os.stat_result], bool] = (
            entry_codec.unchanged_file_v1 if v1 else entry_codec.unchanged_file
        )
        self.file_fields: Callable[[bytes], tuple[bytes, int, int] | None] = (
            entry_codec.file_fields_v1 if v1 else entry_codec.file_fields
        )

    def _upgrade(self) -> None:
        """Rewrite a format-1 index as format 2 in one transaction: entries in
        the compact encoding, no object table, an empty table of deletion
        notices, and a mark that deletions made before now are only known
        through directory times (docs/formats/index.md, "Versions"). A crash
        leaves the format-1 index whole."""
        self._end_snapshot()  # a snapshot of format 1 must not be read after
        faults.point("commit")
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    entries = self._db["entries"]
                    try:
                        txn.drop(self.env.open_db(b"objects", txn=txn, create=False), delete=True)
                    except lmdb.NotFoundError:
                        pass
                    cursor, start = txn.cursor(db=entries), b""
                    while cursor.set_range(start):  # in slices: rewriting moves the cursor
                        chunk = [kv for _, kv in zip(range(10_000), cursor, strict=False)]
                        for key, raw in chunk:
                            txn.put(key, encode_entry(entry_codec.decode_entry_v1(raw)), db=entries)
                        start = chunk[-1][0] + b"\0"  # the smallest key after the last one
                    txn.put(LEGACY_KEY.encode(), b"true", db=self._db["meta"])
                    txn.put(b"format", str(FORMAT_VERSION).encode(), db=self._db["meta"])
                break
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
        self.format = FORMAT_VERSION

    def _number_trash(self) -> None:
        """Trash records from before items (keyed by the object id alone) get
        the numbers every reader has shown them under (`trash.number_legacy`),
        in one transaction with the counter that says it is done."""
        legacy = number_legacy((TrashItem.decode(key, raw) for key, raw in self._scan("trash", b"")), 0)
        for item in legacy:
            self._put("trash", item.oid or b"", None)
            self.trash_put(item)
        self._put("meta", TRASH_IDS_KEY.encode(), str(len(legacy)).encode())
        self.commit()

    # Low level ---------------------------------------------------------
    def fits(self, path: bytes) -> bool:
        """Can the index hold `path` (see `max_path`)?"""
        return len(path) <= self.max_path

    def check_fits(self, path: bytes) -> bytes:
        """`path`, or `UnsafePath` when the index cannot hold it."""
        if len(path) > self.max_path:
            raise UnsafePath(too_long(path, self.max_path))
        return path

    def _get(self, db: str, key: bytes) -> bytes | None:
        if len(key) > self.max_path + 1:
            return None  # a key LMDB cannot hold is nowhere in the index
        return super()._get(db, key)

    def _scan_prefix(self, db: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        if len(prefix) > self.max_path + 1:
            return iter(())  # no key that LMDB holds is that long
        return super()._scan_prefix(db, prefix)

    def _put(self, db: str, key: bytes, value: bytes | None) -> None:
        # The one place every path key passes: a path too long reaches no
        # commit (where LMDB would fail the whole batch), whoever sent it.
        if len(key) > self.max_path + 1:
            if value is None:
                return  # nothing stored there to remove
            # An entry's key is its parent, NUL and its name; the others
            # are a one-byte prefix and the path.
            self.check_fits(key.replace(b"\0", b"/").lstrip(b"/") if db == "entries" else key[1:])
        if db == "sync" and value is not None and key != b"/":
            self._syncs = True
        super()._put(db, key, value)

    def _pending_in(self, db: str, prefix: bytes) -> dict[bytes, bytes | None]:
        """A directory's pending entries are found by its name alone."""
        if db == "entries" and prefix:
            names = self._pending_children.get(prefix[:-1])
            return {prefix + n: self._pending[("entries", prefix + n)] for n in names} if names else {}
        return super()._pending_in(db, prefix)

    def _forget_pending(self) -> None:
        super()._forget_pending()
        self._pending_children.clear()

    def state(self) -> str:
        """A mark of the committed index that changes with every commit (the
        last transaction's number, the event counter, the number of paths,
        and the data file's inode, new when the index is repacked and its
        transactions count from 1 again): what was read from an index with
        the same mark is still true of it."""
        try:
            inode = os.stat(os.path.join(self.directory, "data.mdb")).st_ino
        except OSError:
            inode = 0
        return f"{self.env.info()['last_txnid']}:{self._counter}:{self.entry_count()}:{inode}"

    def read_ahead(self) -> None:
        """Ask the kernel to start reading the whole index file, without
        waiting: a pass over every record (a scan of the whole tree) from a
        drive just plugged in otherwise faults its pages in a few at a time.
        Only a hint: where it is not taken, nothing changes."""
        try:
            fd = os.open(os.path.join(self.directory, "data.mdb"), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return
        try:
            ids.advise(fd, "POSIX_FADV_WILLNEED")
        finally:
            os.close(fd)

    def entry_count(self) -> int:
        """How many paths the committed index records (no pass over them)."""
        return int(self._txn().stat(self._db["entries"])["entries"]) if self._db["entries"] is not None else 0

    def maybe_commit(self) -> None:
        """Commit when the batch is large; call only where the index is consistent."""
        if len(self._pending) >= AUTO_FLUSH:
            self.commit()

    def rollback(self) -> None:
        """Forget every pending change."""
        super().rollback()
        self._covers = None
        self._counter = int(self._get("meta", b"counter") or b"0")

    def forget_uncarriable(self) -> int:
        """Forget, once, every record of a path that `paths.check_relpath`
        refuses (a name with a backslash): scans of earlier versions of sq
        recorded them, though no sync or bundle can carry them. No deletion notice is
        made: no other replica ever received such a path, so none has to
        hear it is gone; the file, if still there, is reported as skipped by
        the scan from now on. Returns how many records went."""
        if self.get_meta_json(NAMES_CHECKED_KEY, False):
            return 0
        gone = 0
        for key, _ in list(self._scan("entries", b"")):
            if paths.uncarriable(key.replace(b"\0", b"/")):  # parent NUL name: a NUL is no name's
                self.delete(key.replace(b"\0", b"/").lstrip(b"/"))
                gone += 1
        for db in ("deleted", "sync", "conflicts", "wanted"):
            doomed = [key for key, _ in self._scan(db, b"") if paths.uncarriable(key.replace(b"\0", b"/"))]
            for key in doomed:
                self._put(db, key, None)
            gone += len(doomed)
        self.set_meta_json(NAMES_CHECKED_KEY, True)
        return gone

    # Events ------------------------------------------------------------------
    @property
    def counter(self) -> int:
        return self._counter

    def next_event(self) -> VectorTime:
        """Take this replica's next event counter (committed with the batch)."""
        self._counter += 1
        self._put("meta", b"counter", str(self._counter).encode())
        return VectorTime.event(self.self_id, self._counter)

    def change_identity(self, new_id: str) -> None:
        """Start counting events anew under `new_id`. The old id's events stay
        known: the implicit own component of every stored sync time is made
        explicit for the old id first."""
        old, counter = self.self_id, self._counter
        stored = [(b"", self.stored_sync(b"") or EMPTY), *self.stored_syncs_under(b"")]
        for p, s in stored:
            s = s.with_entry(old, max(counter, s.get(old))).without(new_id)
            self._put("sync", path_key(p), s.encode())
        self.self_id = new_id
        self._counter = 0
        self._put("meta", b"counter", b"0")

    def get_meta_json(self, key: str, default: Any = None) -> Any:
        raw = self._get("meta", key.encode())
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except ValueError as e:
            raise CorruptIndex(f"damaged index metadata {key}") from e

    def set_meta_json(self, key: str, value: Any) -> None:
        self._put("meta", key.encode(), json.dumps(value, sort_keys=True).encode())

    # Entries -----------------------------------------------------------------
    def get(self, path: bytes) -> Entry | None:
        raw = self._get("entries", entry_key(path))
        return None if raw is None else self._decode(raw)

    def put(self, path: bytes, entry: Entry) -> None:
        """Record `entry` at `path`; a path present again has no deletion notice."""
        parent, _, name = path.rpartition(b"/")
        if path:  # the root is nobody's child
            self._pending_children.setdefault(parent, set()).add(name)
            if self._notices:
                self.drop_notice(path)
        if self._covers is not None and self._covers[0] == path:
            self._covers = None
        self._put("entries", entry_key(path), encode_entry(entry))

    def delete(self, path: bytes) -> None:
        """Forget `path`; a deleted path wants nothing back."""
        parent, _, name = path.rpartition(b"/")
        if path:
            self._pending_children.setdefault(parent, set()).add(name)
        if self._covers is not None and self._covers[0] == path:
            self._covers = None
        self._put("entries", entry_key(path), None)
        self.drop_wanted(path)

    def object_ids(self) -> Iterator[bytes]:
        """The content id of every file, in path order, repeats and all (one
        pass over the entries that decodes nothing else)."""
        file_oid = self._file_oid
        for _, raw in self._scan("entries", b""):
            oid = file_oid(raw)
            if oid is not None:
                yield oid

    def files(self) -> Iterator[tuple[bytes, bytes, int]]:
        """(path, object id, size) of every file record, in key order: one
        pass over the entries that decodes only what these need."""
        fields = self.file_fields
        for key, raw in self._scan("entries", b""):
            f = fields(raw)
            if f is not None:
                parent, _, name = key.partition(b"\0")
                yield (parent + b"/" + name if parent else name), f[0], f[1]

    def paths_with_objects(self, oids: Collection[bytes]) -> dict[bytes, list[bytes]]:
        """Every indexed path holding one of `oids` (the receiver's local
        copies), in one pass over the entries: there is no table by content,
        so callers ask once for all the ids they need."""
        wanted = set(oids)
        found: dict[bytes, list[bytes]] = {}
        if not wanted:
            return found
        for key, raw in self._scan("entries", b""):
            oid = self._file_oid(raw)
            if oid in wanted:
                parent, _, name = key.partition(b"\0")
                found.setdefault(oid, []).append(paths.join(parent, name))
        return found

    def paths_with_object(self, oid: bytes) -> list[bytes]:
        """Every indexed path whose content is `oid` (one pass: see above)."""
        return self.paths_with_objects([oid]).get(oid, [])

    # Deletion notices ------------------------------------------------------------
    # The exact time of a deletion, kept at the deleted path (docs/formats/index.md,
    # "deleted"). A path present again has none.
    def notice(self, path: bytes) -> VectorTime | None:
        raw = self._get("deleted", entry_key(path)) if self._notices else None
        return None if raw is None else self._vt(raw, path)

    def set_notice(self, path: bytes, n: VectorTime) -> None:
        self._notices = True
        self._put("deleted", entry_key(path), n.encode())

    def drop_notice(self, path: bytes) -> None:
        if self._notices and self._get("deleted", entry_key(path)) is not None:
            self._put("deleted", entry_key(path), None)

    def notices(self, path: bytes) -> Iterator[tuple[bytes, VectorTime]]:
        """(name, deletion time) of the absent children of `path` that have a notice."""
        if not self._notices:
            return
        prefix = path + b"\0"
        for key, raw in self._scan("deleted", prefix):
            name = key[len(prefix) :]
            if name:
                yield name, self._vt(raw, paths.join(path, name))

    def notices_under(self, path: bytes) -> Iterator[tuple[bytes, VectorTime]]:
        """(path, deletion time) of every notice strictly below `path`."""
        if not self._notices:
            return
        prefixes = [path + b"\0", path + b"/"] if path else [b""]
        for prefix in prefixes:
            for key, raw in self._scan("deleted", prefix):
                parent, _, name = key.partition(b"\0")
                if name:
                    p = paths.join(parent, name)
                    yield p, self._vt(raw, p)

    def drop_notices_known_to(self, everyone: VectorTime) -> int:
        """Forget every deletion notice that `everyone` covers; returns how many.

        `everyone` must be a time every replica of the vault knows (the meet
        of their sync times). Then no replica holds a version older than the
        deletion, nor lacks the notice and still has to learn it, and an
        absent path without a notice (which the planner takes as never
        held) decides exactly as the notice would. An index with deletions
        older than notices keeps them: there, a missing notice means "bounded
        by the folder above", not "never held"."""
        if not self.exact_deletions:
            return 0
        gone = [p for p, n in self.notices_under(b"") if n <= everyone]
        for p in gone:
            self.drop_notice(p)
        return len(gone)

    def _vt(self, raw: bytes, path: bytes) -> VectorTime:
        try:
            return VectorTime.decode(raw)
        except SquirrelError as e:
            raise CorruptIndex(f"damaged deletion notice for {paths.display(path)}") from e

    def delete_tree(self, path: bytes) -> list[tuple[bytes, Entry]]:
        """Remove `path` and everything under it; returns what was removed."""
        removed: list[tuple[bytes, Entry]] = []
        entry = self.get(path)
        if entry is None:
            return removed
        if entry.is_dir:
            for name, child in list(self.children(path)):
                if child.is_dir:
                    removed += self.delete_tree(paths.join(path, name))
                else:
                    removed.append((paths.join(path, name), child))
                    self.delete(paths.join(path, name))
        removed.append((path, entry))
        if path:
            self.delete(path)
        return removed

    def children(self, path: bytes) -> Iterator[tuple[bytes, Entry]]:
        """(name, entry) of the direct children of directory `path`, sorted by name."""
        for name, raw in self.children_raw(path):
            yield name, self._decode(raw)

    def children_raw(self, path: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(name, encoded entry) of the direct children, undecoded: the
        scanner compares sizes and mtimes with `unchanged_file` and decodes only
        what changed (`decode`)."""
        prefix = path + b"\0"
        for key, raw in self._scan("entries", prefix):
            name = key[len(prefix) :]
            if name:  # the root's own key is the bare prefix of its children
                yield name, raw

    def children_map(self, path: bytes) -> dict[bytes, bytes]:
        """`children_raw` as a dict (name -> encoded entry): the scanner's and
        the sweep's question for every folder. Read off one cursor in a
        single loop when no write below `path` is pending (a tenth of an
        unchanged folder's time went to the generators of `_scan`)."""
        prefix = path + b"\0"
        if self._pending_in("entries", prefix):
            return dict(self.children_raw(path))
        if len(prefix) > self.max_path + 1:
            return {}
        out = self._committed_map("entries", prefix)
        out.pop(b"", None)  # the root's own key is the bare prefix of its children
        return out

    def decode(self, raw: bytes) -> Entry:
        return self._decode(raw)

    def child_names(self, path: bytes) -> list[bytes]:
        return [name for name, _ in self.children(path)]

    def walk(self, top: bytes = b"") -> Iterator[tuple[bytes, Entry]]:
        """Every record under `top` (itself included), parents before children."""
        entry = self.get(top)
        if entry is None:
            return
        yield top, entry
        if entry.is_dir:
            for name, child in self.children(top):
                p = paths.join(top, name)
                if child.is_dir:
                    yield from self.walk(p)
                else:
                    yield p, child

    def raise_ancestors(self, path: bytes, m: VectorTime, *, missing_ok: bool = False) -> None:
        """Join `m` into the modification time of every ancestor of `path`.

        A directory's modification time covers its whole subtree (deletions
        included); that is what lets a sync skip a subtree the receiver knows.
        With `missing_ok` (a deletion notice below a folder this replica does
        not have, or below a file that stands where the folder was), the
        raising starts at the nearest directory it has: a file's times are
        its own version's.

        The folder last found or made to cover a time is remembered, with
        its time and the time asked about, until that folder's record is
        written again: the files of one folder, written one after the other
        with one time (a scan's new files, a sync's from one scan), then
        read and decode its record once, and compare times once.
        """
        parent = paths.parent_of(path)
        covers = self._covers
        if path and covers is not None and covers[0] == parent and (m is covers[2] or m <= covers[1]):
            return  # the parent covers it, so do all above it
        for anc in paths.ancestors(path):
            e = self.get(anc)
            if e is None or (missing_ok and not e.is_dir):
                if missing_ok:
                    continue
                raise CorruptIndex(f"index has {paths.display(path)} but not its parent {paths.display(anc)}")
            if m <= e.m:
                if anc == parent and e.is_dir:
                    self._covers = (parent, e.m, m)
                return  # an ancestor covers it, so do all above it
            joined = e.m.join(m)
            self.put(anc, e.with_times(m=joined))
            if anc == parent and e.is_dir:
                self._covers = (parent, joined, m)

    # Sync times --------------------------------------------------------------
    def stored_sync(self, path: bytes) -> VectorTime | None:
        if path and not self._syncs:
            # Most indexes store the root's alone (a sync that completes
            # drops the rest): a sync plan asks for every path, both sides.
            return None
        raw = self._get("sync", path_key(path))
        if raw is None:
            return None
        try:
            return VectorTime.decode(raw)
        except SquirrelError as e:
            raise CorruptIndex(f"damaged sync time for {paths.display(path)}") from e

    def sync_time(self, path: bytes) -> VectorTime:
        """The effective sync time: the nearest stored one, plus this replica's counter."""
        s = paths.nearest(path, self.stored_sync)
        if s is None:
            raise CorruptIndex("index has no root sync time")
        return s.with_entry(self.self_id, self._counter)

    def sync_time_below(self, path: bytes, inherited: VectorTime) -> VectorTime:
        """The sync time of `path` when its parent's effective one is `inherited`."""
        s = self.stored_sync(path)
        return inherited if s is None else s.with_entry(self.self_id, self._counter)

    def set_stored_sync(self, path: bytes, s: VectorTime, *, force: bool = False) -> None:
        """Store `s` for `path` unless it equals what the path would inherit.
        A sync time that does not change is not written again: a quiet sync
        leaves the index untouched (the carrier's record of a drive's
        content stays valid while the drive's index does not change)."""
        s = s.without(self.self_id)
        if path and not force:
            inherited = self.sync_time(paths.parent_of(path)).without(self.self_id)
            if s == inherited:
                self._put_if_changed("sync", path_key(path), None)
                return
        self._put_if_changed("sync", path_key(path), s.encode())

    def drop_stored_sync(self, path: bytes) -> None:
        if path:
            self._put_if_changed("sync", path_key(path), None)

    def _put_if_changed(self, db: str, key: bytes, value: bytes | None) -> None:
        if self._get(db, key) != value:
            self._put(db, key, value)

    def stored_syncs_under(self, path: bytes) -> list[tuple[bytes, VectorTime]]:
        """Stored sync times strictly below `path`."""
        prefix = path_key(path) + b"/" if path else b"/"
        out = []
        for key, val in self._scan("sync", prefix):
            if key == b"/":
                continue
            try:
                out.append((key[1:], VectorTime.decode(val)))
            except SquirrelError as e:
                raise CorruptIndex(f"damaged sync time for {paths.display(key[1:])}") from e
        return out

    def file_records_after(self, key: bytes | None) -> Iterator[tuple[bytes, bytes, Entry]]:
        """(entries key, path, entry) of every file record after `key` (from
        the first with None), in key order: what a scrub in slices walks.
        Committed records only."""
        if self._db["entries"] is None:
            return
        cur = self._txn().cursor(db=self._db["entries"])
        start = b"" if key is None else key + b"\0"  # the smallest key after `key`
        if not cur.set_range(start):
            return
        for k, raw in cur:
            if self.file_fields(raw) is None:
                continue
            parent, _, name = k.partition(b"\0")
            yield k, (parent + b"/" + name if parent else name), self._decode(raw)

    def drop_meta(self, key: str) -> None:
        self._put("meta", key.encode(), None)


def too_long(path: bytes, limit: int) -> str:
    """Why a path cannot be recorded: more bytes than the index's keys hold."""
    return f"path too long ({counted(len(path), 'byte')}, the index holds at most {limit})"
