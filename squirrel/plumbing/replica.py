"""A replica on disk: the `.squirrel/` marker, its identity, its lock.

`.squirrel/replica.json` holds the identity (format, vault id, replica id,
name); `.squirrel/index/` the LMDB index; `.squirrel/tmp/` files being
written; `.squirrel/trash/` replaced and deleted versions; `.squirrel/lock`
the writer's lock. Every command opens a replica through `Replica.open`, which
refuses a path without the marker: an unmounted drive is never read as an
empty tree. Layout: docs/formats/replica.md.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from typing import Any

import lmdb

from squirrel.errors import AlreadyAReplica, BadPath, CorruptIndex, Locked, NotAReplica, UnsupportedFormat
from squirrel.plumbing import compact
from squirrel.plumbing.durable import write_file_atomic
from squirrel.plumbing.fsops import clean_tmp
from squirrel.plumbing.index import ReplicaIndex
from squirrel.plumbing.journal import Journal, Step, recover
from squirrel.plumbing.trash import INTERRUPTED
from squirrel.plumbing.trashcan import Trashcan
from squirrel.plumbing.vtime import is_replica_id

REPLICA_FORMAT = 1
SQ_DIR = ".squirrel"
REPLICA_MARKER = os.path.join(SQ_DIR, "replica.json")  # what makes a folder a replica, written last
CARRIER_CONFIG = "carrier.json"  # what makes a folder a carrier (plumbing.carrier)


@dataclass(frozen=True)
class Identity:
    """Who a replica is: its vault, its own id and its name (docs/formats/replica.md)."""

    vault: str
    replica: str
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"format": REPLICA_FORMAT, "vault": self.vault, "replica": self.replica, "name": self.name}


def new_id() -> str:
    return os.urandom(8).hex()


def read_identity(root: str) -> Identity:
    sq = os.path.join(root, SQ_DIR)
    if not os.path.isdir(root):
        raise not_a_directory(root)
    if not os.path.isdir(sq) or os.path.islink(sq):
        raise not_a_replica(root)
    try:
        with open(os.path.join(sq, "replica.json"), "rb") as f:
            data = json.loads(f.read())
    except FileNotFoundError as e:
        raise not_a_replica(root) from e
    except (OSError, ValueError) as e:
        raise CorruptIndex(f"damaged replica identity in {sq}: {e}") from e
    if not isinstance(data, dict):
        raise CorruptIndex(f"damaged replica identity in {sq}")
    fmt = data.get("format")
    if not isinstance(fmt, int) or fmt < 1:
        raise CorruptIndex(f"damaged replica identity in {sq}: no format")
    if fmt > REPLICA_FORMAT:
        raise UnsupportedFormat(f"replica {root} uses format {fmt}, newer than this sq ({REPLICA_FORMAT}); upgrade sq")
    vault, rid, name = data.get("vault"), data.get("replica"), data.get("name")
    if not (isinstance(vault, str) and is_replica_id(vault) and isinstance(rid, str) and is_replica_id(rid)):
        raise CorruptIndex(f"damaged replica identity in {sq}: bad ids")
    if not isinstance(name, str) or not name:
        raise CorruptIndex(f"damaged replica identity in {sq}: no name")
    return Identity(vault, rid, name)


def not_a_directory(path: str, given: str | None = None) -> BadPath:
    """The error for a replica path that is missing or not a folder, saying
    where a relative path was looked for, and what a bundle file is for."""
    if os.path.lexists(path):
        hint = " (a bundle? `sq apply BUNDLE PATH` applies one)" if path.endswith(".sqb") else ""
        return BadPath(f"not a directory: {path}{hint}")
    relative = (
        f" (the relative path {given!r} is taken from the current folder)" if given and not os.path.isabs(given) else ""
    )
    return BadPath(f"no such directory: {path}{relative}")


def not_a_replica(root: str) -> NotAReplica:
    """The error for a folder without the marker, saying what the folder is
    when sq can tell: the carrier's, or one inside a replica."""
    if os.path.isfile(os.path.join(root, CARRIER_CONFIG)):
        return NotAReplica(root, "it is the carrier's folder, not a drive: `sq sync DRIVE` visits a drive with it")
    outer = enclosing(root, CARRIER_CONFIG)
    if outer is not None:
        return NotAReplica(root, f"it is inside the carrier's folder {outer}, not a drive")
    outer = enclosing(root, REPLICA_MARKER)
    if outer is not None:
        return NotAReplica(root, f"it is a folder inside the replica {outer}: give the replica's own folder")
    return NotAReplica(root)


def enclosing(path: str, marker: str) -> str | None:
    """The nearest folder strictly above `path` that holds the file `marker`."""
    cur = os.path.abspath(path)
    while True:
        parent = os.path.dirname(cur)
        if parent == cur:
            return None
        cur = parent
        if os.path.isfile(os.path.join(cur, marker)):
            return cur


class ReplicaLock:
    """An exclusive writer lock: flock on `.squirrel/lock`, holding our pid.

    The kernel drops a flock when its process dies, so a lock left by a
    killed `sq` is never stale. Where flock is unsupported, the pid in the
    file is checked for a live process instead.
    """

    def __init__(self, sq_dir: str, root: str) -> None:
        self.path = os.path.join(sq_dir, "lock")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                pid = self._read_pid()
                os.close(self.fd)
                raise Locked(root, pid) from e
            if e.errno not in (errno.ENOLCK, errno.ENOTSUP, errno.EINVAL):
                os.close(self.fd)
                raise
            pid = self._read_pid()
            if pid and pid != os.getpid() and _alive(pid):
                os.close(self.fd)
                raise Locked(root, pid) from e
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def _read_pid(self) -> int:
        try:
            raw = os.pread(self.fd, 32, 0).strip()
            return int(raw) if raw.isdigit() else 0
        except OSError:
            return 0

    def release(self) -> None:
        if self.fd >= 0:
            try:
                os.ftruncate(self.fd, 0)
            finally:
                os.close(self.fd)
                self.fd = -1


def default_name(root: str, name: str | None = None) -> str:
    """The name a replica made at `root` takes: `name`, or its folder's."""
    return name or os.path.basename(os.path.abspath(root)) or "root"


def _interrupted_init(sq: str) -> bool:
    if os.path.islink(sq) or not os.path.isdir(sq) or os.path.exists(os.path.join(sq, "replica.json")):
        return False
    allowed = {"tmp", "trash", "index", "lock", "replica.json.tmp"}
    names = set(os.listdir(sq))
    if not names <= allowed:
        return False
    return not any(os.listdir(os.path.join(sq, d)) for d in ("tmp", "trash") if d in names)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Replica:
    """An opened replica: identity, index and (for writers) the lock."""

    def __init__(self, root: str, identity: Identity, index: ReplicaIndex, lock: ReplicaLock | None) -> None:
        self.root = root
        self.identity = identity
        self.index = index
        self.lock = lock
        self.sq_dir = os.path.join(root, SQ_DIR)
        self.tmp_dir = os.path.join(self.sq_dir, "tmp")
        self.trash_dir = os.path.join(self.sq_dir, "trash")
        self.journal = Journal(self.sq_dir)

    @property
    def id(self) -> str:
        return self.identity.replica

    @property
    def name(self) -> str:
        return self.identity.name

    @staticmethod
    def check_creatable(root: str) -> str:
        """The absolute path of `root`, once it is known that `create` can
        make a replica there: a folder holding no `.squirrel/` but what an
        interrupted init left."""
        given, root = root, os.path.abspath(root)
        if not os.path.isdir(root):
            raise not_a_directory(root, given)
        sq = os.path.join(root, SQ_DIR)
        if os.path.lexists(sq) and not _interrupted_init(sq):
            raise AlreadyAReplica(root)
        return root

    @classmethod
    def create(cls, root: str, name: str | None = None, vault: str | None = None) -> Replica:
        root = cls.check_creatable(root)
        sq = os.path.join(root, SQ_DIR)
        if os.path.lexists(sq):
            # An init that died before writing replica.json (the marker it
            # writes last) left only empty structure: start again.
            shutil.rmtree(sq)
        identity = Identity(vault or new_id(), new_id(), default_name(root, name))
        os.mkdir(sq)
        for sub in ("tmp", "trash", "index"):
            os.mkdir(os.path.join(sq, sub))
        lock = ReplicaLock(sq, root)
        index = ReplicaIndex(os.path.join(sq, "index"), identity.replica, create=True)
        index.set_meta_json("names", {identity.replica: identity.name})
        index.commit()
        # The identity file is written last: it is the marker that says the
        # replica is complete.
        write_file_atomic(os.path.join(sq, "replica.json"), json.dumps(identity.to_json(), indent=1).encode())
        return cls(root, identity, index, lock)

    @classmethod
    def open(cls, root: str, *, write: bool = True) -> Replica:
        given, root = root, os.path.abspath(root)
        if not os.path.exists(root):
            raise not_a_directory(root, given)
        identity = read_identity(root)
        sq = os.path.join(root, SQ_DIR)
        lock = ReplicaLock(sq, root) if write else None
        try:
            if write:
                compact.settle(os.path.join(sq, "index"))  # a repacking a kill interrupted
            index = ReplicaIndex(os.path.join(sq, "index"), identity.replica, readonly=not write)
            if write:
                for sub in ("tmp", "trash"):
                    os.makedirs(os.path.join(sq, sub), exist_ok=True)
            rep = cls(root, identity, index, lock)
            if write:
                # Before anything reads the tree: undo the file changes of a
                # command killed halfway (docs/safety.md, "The intent log").
                try:
                    recover(root, rep.journal, index, rep.trash_dir, rep.tmp_dir, rep._adopt_after_undo)
                    rep.trash.finish_purge()  # a purge killed halfway: its files go
                    clean_tmp(rep.tmp_dir)  # temporary files of a killed command
                except BaseException:
                    index.close()
                    raise
        except BaseException:
            if lock:
                lock.release()
            raise
        return rep

    @property
    def trash(self) -> Trashcan:
        """The replica's trash: `.squirrel/trash/` and its items in the index."""
        return Trashcan(self.index, self.trash_dir)

    def _adopt_after_undo(self, steps: list[Step]) -> None:
        """An undone batch leaves content in the trash that its uncommitted
        records no longer describe (a version it had put in place, or a copy
        of one it put back): each gets an item, so that the trash's records
        and files agree again."""
        where = {s.version.oid: s.path for s in steps if s.version is not None}
        if self.trash.adopt(where, INTERRUPTED):
            self.index.commit()

    def recheck_identity(self) -> None:
        """Before committing: the drive is still there and still this replica."""
        if read_identity(self.root) != self.identity:
            raise NotAReplica(self.root, "it changed while sq was working: is the drive still mounted?")

    def names(self) -> dict[str, str]:
        """Replica id -> name, for every replica this one has heard of."""
        names: dict[str, str] = self.index.get_meta_json("names", {}) or {}
        names[self.id] = self.name
        return names

    def learn_names(self, names: dict[str, str]) -> None:
        known = self.names()
        merged = {**names, **known}
        if merged != known:
            self.index.set_meta_json("names", merged)

    def close(self, tidy: bool = True) -> None:
        """Close the index and release the lock; after a command that went
        well (`tidy`), first repack an index whose pages went half empty
        (plumbing/compact.py). Repacking is housekeeping: where it fails, the
        index stays as it was, or the next command finishes the swap."""
        directory = self.index.directory
        repack = tidy and self.lock is not None and not self.index.readonly
        self.index.close()
        if self.lock:
            try:
                if repack and compact.worth_compacting(directory):
                    compact.compact(directory)
            except (OSError, lmdb.Error):
                pass
            finally:
                self.lock.release()
                self.lock = None

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(tidy=exc_type is None)
