"""Finding local changes: walk the tree, compare with the index, hash only what moved.

A file is unchanged when its size and mtime (ns) equal the index record. Any
other difference means "hash it": only a different object id is a new
version. A file whose mtime is too close to the moment it was recorded is
flagged racy and hashed again next time, because a same-size edit within
the filesystem's timestamp resolution (2 s on FAT) would otherwise go unseen.
Inode numbers and directory mtimes are never used.

Symlinks, FIFOs, sockets and devices are never opened or followed; they are
reported once as skipped. A directory that cannot be read is left as the
index has it: an unreadable or vanished subtree is never taken as deleted.
"""

from __future__ import annotations

import os
import stat as statmod
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from squirrel.errors import FileSystemError, MassDelete, SquirrelError
from squirrel.plumbing import conflicts, ids, paths
from squirrel.plumbing.index import (
    FLAG_RACY,
    KIND_FILE,
    Entry,
    ReplicaIndex,
    new_dir,
    racy_flag,
)
from squirrel.plumbing.paths import IgnoreRules
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.vtime import EMPTY, VectorTime

ADDED = "added"
MODIFIED = "modified"
DELETED = "deleted"
TOUCHED = "touched"  # metadata only (mtime or mode): not a new version


@dataclass
class Change:
    kind: str
    path: bytes
    new: Entry | None  # the version on disk (times empty until recorded)
    old: Entry | None  # the indexed version


@dataclass
class ScanStats:
    files: int = 0
    dirs: int = 0
    bytes_hashed: int = 0
    files_hashed: int = 0
    skipped: list[tuple[bytes, str]] = field(default_factory=list)


ScanProgress = Callable[[ScanStats], None]


def _file_entry(oid: bytes, st: os.stat_result, now_ns: int) -> Entry:
    racy = racy_flag(st.st_mtime_ns, now_ns)
    return Entry(KIND_FILE, oid, st.st_size, statmod.S_IMODE(st.st_mode), st.st_mtime_ns, EMPTY, EMPTY, racy)


class Scanner:
    """Compares one replica's tree with its index and yields `Change`s."""

    def __init__(
        self,
        root: str,
        index: ReplicaIndex,
        ignore: IgnoreRules | None = None,
        progress: ScanProgress | None = None,
    ) -> None:
        self.root = root
        self.rootb = os.fsencode(root)
        self.index = index
        self.ignore = ignore or IgnoreRules.for_replica(root)
        self.progress = progress
        self.stats = ScanStats()
        self._last_progress = 0.0

    def _tick(self) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if now - self._last_progress >= 0.1:
            self._last_progress = now
            self.progress(self.stats)

    def _hash(self, rel: bytes) -> tuple[bytes, os.stat_result]:
        def on_bytes(n: int) -> None:
            self.stats.bytes_hashed += n
            self._tick()

        oid, st = ids.hash_file(self._abs(rel), on_bytes)
        self.stats.files_hashed += 1
        return oid, st

    def _abs(self, rel: bytes) -> bytes:
        return self.rootb + b"/" + rel if rel else self.rootb

    def changes(self, top: bytes = b"") -> Iterator[Change]:
        """Every change under `top` (a directory path), parents before children."""
        yield from self._dir(top)
        if self.progress is not None:
            self.progress(self.stats)

    def _list(self, rel: bytes) -> dict[bytes, tuple[str, os.stat_result | None]] | None:
        """Disk children of `rel`: name -> ('file'|'dir', stat). None if unreadable."""
        out: dict[bytes, tuple[str, os.stat_result | None]] = {}
        try:
            it = os.scandir(self._abs(rel))
        except OSError as e:
            self.stats.skipped.append((rel, f"cannot read directory: {e.strerror}"))
            return None
        with it:
            for de in it:
                name = de.name
                child = paths.join(rel, name)
                if not rel and name.lower() == paths.MARKER and name != paths.MARKER:
                    self.stats.skipped.append((child, "reserved name (the marker folder under another case)"))
                    continue
                try:
                    if de.is_dir(follow_symlinks=False):
                        if not self.ignore.ignored(child, True):
                            out[name] = ("dir", None)
                    elif de.is_file(follow_symlinks=False):
                        if not self.ignore.ignored(child, False):
                            out[name] = ("file", de.stat(follow_symlinks=False))
                    elif not self.ignore.ignored(child, False):
                        what = "symlink" if de.is_symlink() else "special file"
                        self.stats.skipped.append((child, f"{what}: not synchronized"))
                except OSError as e:
                    # Neither present nor deleted: the index keeps what it has.
                    out[name] = ("unknown", None)
                    self.stats.skipped.append((child, f"cannot stat: {e.strerror}"))
        return out

    def _dir(self, rel: bytes) -> Iterator[Change]:
        disk = self._list(rel)
        if disk is None:
            return  # unreadable: leave what the index has
        self.stats.dirs += 1
        raw = dict(self.index.children_raw(rel))
        for name in sorted(disk.keys() | raw.keys()):
            child = paths.join(rel, name)
            on_disk = disk.get(name)
            old_raw = raw.get(name)
            if old_raw is not None and on_disk is not None and on_disk[0] == "file":
                st = on_disk[1]
                kind_, flags, size, mtime_ns = self.index.file_head(old_raw)
                if (
                    kind_ == KIND_FILE
                    and st is not None
                    and size == st.st_size
                    and mtime_ns == st.st_mtime_ns
                    and not flags & FLAG_RACY
                ):
                    self.stats.files += 1
                    self._tick()
                    continue  # unchanged: the common case, decided without decoding times
            old = self.index.decode(old_raw) if old_raw is not None else None
            if on_disk is None:
                assert old is not None
                if self.ignore.ignored(child, old.is_dir):
                    continue  # newly ignored: neither present nor deleted
                yield Change(DELETED, child, None, old)
                continue
            kind, st = on_disk
            if kind == "unknown":
                continue
            if kind == "dir":
                if old is not None and not old.is_dir:
                    yield Change(DELETED, child, None, old)
                    old = None
                if old is None:
                    yield Change(ADDED, child, new_dir(EMPTY, EMPTY), None)
                yield from self._dir(child)
                continue
            assert st is not None
            self.stats.files += 1
            self._tick()
            if old is not None and old.is_dir:
                yield Change(DELETED, child, None, old)
                old = None
            if (
                old is not None
                and old.size == st.st_size
                and old.mtime_ns == st.st_mtime_ns
                and not old.flags & FLAG_RACY
            ):
                continue
            try:
                oid, hst = self._hash(child)
            except FileSystemError as e:
                self.stats.skipped.append((child, str(e)))
                continue
            except SquirrelError as e:
                self.stats.skipped.append((child, str(e)))
                continue
            new = _file_entry(oid, hst, time.time_ns())
            if old is None:
                yield Change(ADDED, child, new, None)
            elif old.oid != oid:
                yield Change(MODIFIED, child, new, old)
            elif (old.mtime_ns, old.size, old.mode, old.flags) != (new.mtime_ns, new.size, new.mode, new.flags):
                yield Change(TOUCHED, child, new, old)


@dataclass
class RecordResult:
    added: list[bytes] = field(default_factory=list)
    modified: list[bytes] = field(default_factory=list)
    deleted: list[bytes] = field(default_factory=list)
    moved: list[tuple[bytes, bytes]] = field(default_factory=list)
    touched: int = 0
    event: VectorTime | None = None


def find_moves(changes: list[Change]) -> list[tuple[bytes, bytes]]:
    """Pairs (from, to) of a deleted file and an added file with the same content."""
    gone: dict[bytes, list[bytes]] = {}
    for ch in changes:
        if ch.kind == DELETED and ch.old is not None and ch.old.is_file:
            gone.setdefault(ch.old.oid, []).append(ch.path)
    moves = []
    for ch in changes:
        if ch.kind == ADDED and ch.new is not None and ch.new.is_file and gone.get(ch.new.oid):
            moves.append((gone[ch.new.oid].pop(0), ch.path))
    return moves


def record(index: ReplicaIndex, changes: Iterator[Change] | list[Change]) -> RecordResult:
    """Record changes as new versions: one new event of this replica for the
    whole scan, joined into every ancestor's modification time. Every path a
    deletion removes keeps that event as its deletion notice.

    Ancestors are raised before a child is written, and the batch is only
    committed between changes, so a crash never leaves a child version that
    its directories do not cover.
    """
    res = RecordResult()
    deleted_files: list[Change] = []
    added_files: list[Change] = []
    event: VectorTime | None = None
    for ch in changes:
        if ch.kind == TOUCHED:
            assert ch.new is not None and ch.old is not None
            index.put(ch.path, ch.new.with_times(m=ch.old.m, c=ch.old.c))
            res.touched += 1
            continue
        if event is None:
            event = index.next_event()
            res.event = event
        index.raise_ancestors(ch.path, event)
        if ch.kind == DELETED:
            assert ch.old is not None
            for p, e in index.delete_tree(ch.path):
                index.set_notice(p, event)  # each deleted path keeps the time of its deletion
                if e.is_file:
                    deleted_files.append(Change(DELETED, p, None, e))
            res.deleted.append(ch.path)
        else:
            assert ch.new is not None
            c = event if ch.old is None else ch.old.c
            m = event
            if ch.new.is_dir and ch.old is None:  # a new folder covers the deletions known below it
                for _, n in index.notices_under(ch.path):
                    m = m.join(n)
            index.put(ch.path, ch.new.with_times(m=m, c=c))
            (res.added if ch.kind == ADDED else res.modified).append(ch.path)
            if ch.kind == ADDED and ch.new.is_file:
                added_files.append(ch)
        index.maybe_commit()
    index.commit()
    res.moved = find_moves(deleted_files + added_files)
    return res


@dataclass
class ScanReport:
    added: list[bytes] = field(default_factory=list)
    modified: list[bytes] = field(default_factory=list)
    deleted: list[bytes] = field(default_factory=list)
    moved: list[tuple[bytes, bytes]] = field(default_factory=list)
    touched: int = 0
    stats: ScanStats = field(default_factory=ScanStats)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.modified or self.deleted)


MASS_DELETE_SHARE = 0.5
MASS_DELETE_MIN = 50  # below this, a deletion is small enough to be deliberate


def check_mass_delete(deleted: int, total: int, where: str, allow: bool) -> None:
    """Refuse to delete more than half of a replica's files without being told to."""
    if allow or deleted < MASS_DELETE_MIN or deleted <= total * MASS_DELETE_SHARE:
        return
    raise MassDelete(
        f"{where} would delete {deleted} of {total} files; if that is really what happened,"
        " run again with --allow-mass-delete"
    )


def scan_replica(replica: Replica, progress: ScanProgress | None = None, allow_mass_delete: bool = False) -> ScanReport:
    """Scan a replica that is already open for writing and record what changed."""
    scanner = Scanner(replica.root, replica.index, progress=progress)
    changes = list(scanner.changes())
    # The tree may have vanished under us (a drive unplugged mid-scan): make
    # sure it is still this replica before recording anything as deleted.
    replica.recheck_identity()
    # Files that went away, less those that reappeared elsewhere (moves).
    gone: list[bytes] = []
    for ch in changes:
        if ch.kind == DELETED and ch.old is not None:
            if ch.old.is_dir:
                gone += [e.oid for _, e in replica.index.walk(ch.path) if e.is_file]
            else:
                gone.append(ch.old.oid)
    if gone:
        new_oids = [ch.new.oid for ch in changes if ch.kind == ADDED and ch.new is not None and ch.new.is_file]
        added = len(new_oids)
        arrived = set(new_oids)
        deleted = sum(1 for oid in gone if oid not in arrived)
        check_mass_delete(
            deleted, scanner.stats.files - added + len(gone), f"the scan of {replica.root}", allow_mass_delete
        )
    res = record(replica.index, changes)
    if res.event is not None:  # a copy deleted or a kept file edited by hand settles its conflict
        conflicts.prune(replica.index)
        replica.index.commit()
    return ScanReport(res.added, res.modified, res.deleted, res.moved, res.touched, scanner.stats)
