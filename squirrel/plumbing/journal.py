"""The intent log: how the file changes of a command killed halfway are
rolled back (format: docs/formats/journal.md).

A sync changes a drive in steps that are atomic one by one (a rename, an
rmdir) but not together: a conflict moves B's file aside and then writes A's
at the path; a file replaced by a directory is deleted before the directory
is made; on exFAT, which has no hard links, an update moves the old version
into the trash before the new one is renamed into place. A kill between two
such steps leaves the drive in a state no command meant, and the next scan
would record it as the user's own doing (a deleted file, a moved one).

So the executor works in batches. Before it changes anything of a batch, it
writes one undo step per possible change to `.squirrel/journal` and fsyncs
it. The batch's index changes are committed together with the batch's id
(index meta `journal`); then the log is removed. Opening a replica for
writing calls `recover` first: a log whose id the index holds belongs to a
batch that committed, and is removed; any other is undone, last step first,
so that the files are again what the committed index says, and the command
run again does the work afresh.

Every undo step looks at the disk before acting and does nothing when its
change did not happen (or was undone already), so undoing a batch that
stopped anywhere, even a recovery that was itself killed, is safe to repeat.
Nothing is deleted by an undo: content it moves away goes to the trash.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import stat as statmod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from squirrel.errors import ChangedDuringOperation, CorruptIndex, UnsafePath, UnsupportedFormat
from squirrel.plumbing import faults, ids, place
from squirrel.plumbing.durable import fsync_dir
from squirrel.plumbing.index import Entry, ReplicaIndex

MAGIC = "sq-journal"
VERSION = 1
# One encoder for every step (json.dumps with an option builds one per call).
_encode_step = json.JSONEncoder(sort_keys=True).encode
META_KEY = "journal"  # index meta: the id of the last batch whose changes committed

# The undo steps, each made from what an action is about to change ------------
PLACED, REMOVED, MOVED, MKDIR, RMDIR = "placed", "removed", "moved", "mkdir", "rmdir"
_WITH_VERSION = (PLACED, REMOVED, MOVED)


@dataclass(frozen=True)
class FileVersion:
    """The file a step is about: its content id and what its stat shows."""

    oid: bytes
    size: int
    mtime_ns: int
    mode: int

    @classmethod
    def of(cls, e: Entry) -> FileVersion:
        return cls(e.oid, e.size, e.mtime_ns, e.mode)


@dataclass(frozen=True)
class Step:
    """One possible change of a batch, by what undoing it needs.

    placed:  a file `version` may be put at `path`; undo moves it to the trash.
    removed: `version` may leave `path` for the trash; undo puts it back.
    moved:   the file `version` at `path` may be renamed to `to`; undo renames it back.
    mkdir:   a directory may be made at `path`; undo removes it if it is empty.
    rmdir:   the directory at `path` may be removed; undo makes it again.
    """

    kind: str
    path: bytes
    version: FileVersion | None = None
    to: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"t": self.kind, "p": _b64(self.path)}
        if self.to is not None:
            doc["to"] = _b64(self.to)
        if self.version is not None:
            v = self.version
            doc.update(oid=v.oid.hex(), size=v.size, mtime_ns=v.mtime_ns, mode=v.mode)
        return doc

    def line(self) -> str:
        """The step's line in the log: `to_json` as JSON with sorted keys,
        written out directly (a batch writes a thousand of them; the
        encoder took 3 µs a step, this half a µs)."""
        p = _b64(self.path)
        v = self.version
        if v is None:
            return _encode_step(self.to_json()) if self.to is not None else f'{{"p": "{p}", "t": "{self.kind}"}}'
        to = "" if self.to is None else f', "to": "{_b64(self.to)}"'
        return (
            f'{{"mode": {v.mode}, "mtime_ns": {v.mtime_ns}, "oid": "{v.oid.hex()}", '
            f'"p": "{p}", "size": {v.size}, "t": "{self.kind}"{to}}}'
        )

    @classmethod
    def from_json(cls, doc: Any) -> Step:
        """ValueError unless every field the step's undo reads is there, with
        its type, and its paths stay inside the replica: a log with one bad
        step is refused before any step is undone."""
        if not isinstance(doc, dict) or doc.get("t") not in (*_WITH_VERSION, MKDIR, RMDIR):
            raise ValueError("unknown step")
        kind = doc["t"]
        try:
            path = _inside(base64.b64decode(doc["p"], validate=True))
            to = _inside(base64.b64decode(doc["to"], validate=True)) if kind == MOVED else None
        except (KeyError, TypeError, binascii.Error) as e:
            raise ValueError("bad path") from e
        if kind not in _WITH_VERSION:
            return cls(kind, path)
        oid = doc.get("oid")
        if not (isinstance(oid, str) and len(oid) == 64 and all(c in "0123456789abcdef" for c in oid)):
            raise ValueError("bad object id")
        size, mtime_ns, mode = (_count(doc.get(k)) for k in ("size", "mtime_ns", "mode"))
        return cls(kind, path, FileVersion(bytes.fromhex(oid), size, mtime_ns, mode), to)


def _count(n: Any) -> int:
    if type(n) is not int or not 0 <= n < 1 << 63:
        raise ValueError("bad size, mtime or mode")
    return n


def _b64(path: bytes) -> str:
    return base64.b64encode(path).decode("ascii")


def placed(path: bytes, new: Entry) -> Step:
    return Step(PLACED, path, FileVersion.of(new))


def removed(path: bytes, old: Entry) -> Step:
    return Step(REMOVED, path, FileVersion.of(old))


def moved(src: bytes, dst: bytes, e: Entry) -> Step:
    return Step(MOVED, src, FileVersion.of(e), dst)


def made_dir(path: bytes) -> Step:
    return Step(MKDIR, path)


def removed_dir(path: bytes) -> Step:
    return Step(RMDIR, path)


class Journal:
    """The intent log of one replica (`.squirrel/journal`)."""

    def __init__(self, sq_dir: str) -> None:
        self.path = os.path.join(sq_dir, "journal")

    def begin(self, batch: str, steps: Iterable[Step]) -> None:
        """Write a batch's undo steps, durably, before any of them happens."""
        lines = [json.dumps({"format": MAGIC, "version": VERSION, "batch": batch})]
        lines += [s.line() for s in steps]
        data = ("\n".join(lines) + "\n").encode()
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            faults.point("write")
            f.write(data)
            f.flush()
            faults.point("fsync")
            os.fsync(f.fileno())
        faults.point("rename")
        os.replace(tmp, self.path)
        fsync_dir(os.path.dirname(self.path))

    @contextmanager
    def batch(self, index: ReplicaIndex, steps: list[Step]) -> Iterator[None]:
        """Log `steps`, run the block (which makes the changes), then commit
        the index with the batch's id and drop the log. Without steps there
        is nothing to undo: no log, and the index is left uncommitted. If the
        block raises, nothing is committed and the log stays for the next
        command to undo."""
        if not steps:
            yield
            return
        batch_id = os.urandom(8).hex()
        self.begin(batch_id, steps)
        yield
        index.set_meta_json(META_KEY, batch_id)
        index.commit()
        self.end()

    def end(self) -> None:
        """The batch committed: its log is no longer needed."""
        try:
            faults.point("unlink")
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def read(self) -> tuple[str, list[Step]] | None:
        """The batch id and undo steps of a log left behind, or None."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        try:
            head, *rest = raw.decode("utf-8").splitlines()
            header = json.loads(head)
            docs = [json.loads(line) for line in rest]
        except (UnicodeDecodeError, ValueError) as e:
            raise CorruptIndex(f"the intent log {self.path} is damaged ({e}); nothing was undone") from None
        if not isinstance(header, dict) or header.get("format") != MAGIC:
            raise CorruptIndex(f"{self.path} is not an sq intent log")
        if header.get("version") != VERSION:
            raise UnsupportedFormat(
                f"intent log version {header.get('version')} is not one this sq understands ({VERSION}); upgrade sq"
            )
        try:
            steps = [Step.from_json(doc) for doc in docs]
        except ValueError as e:
            raise CorruptIndex(f"the intent log {self.path} holds a malformed step ({e}); nothing was undone") from None
        return str(header.get("batch")), steps


def recover(
    root: str,
    journal: Journal,
    index: ReplicaIndex,
    trash_dir: str,
    tmp_dir: str,
    after_undo: Callable[[list[Step]], object] | None = None,
) -> int:
    """Undo what an interrupted batch changed, unless it committed; returns
    the number of steps undone. Call with the replica's lock held, before
    anything reads the tree. `after_undo(steps)` runs after an undo and
    before the log goes, so that a recovery killed during it runs again:
    the trash records what the undo left in it there (see `trashcan.adopt`)."""
    left = journal.read()
    if left is None:
        return 0
    batch, steps = left
    undone = 0
    if index.get_meta_json(META_KEY) != batch:
        top = os.fsencode(root)
        for step in reversed(steps):
            undone += UNDO[step.kind](top, step, Places(os.fsencode(trash_dir), os.fsencode(tmp_dir)))
        if after_undo is not None:
            after_undo(steps)
    journal.end()
    return undone


# Undoing, by looking at the disk -------------------------------------------
@dataclass(frozen=True)
class Places:
    """The replica's own folders that the intent log's steps may name."""

    trash: bytes  # .squirrel/trash/
    tmp: bytes  # .squirrel/tmp/


def _inside(rel: bytes) -> bytes:
    """A step's path, refused (ValueError) when it could reach outside the replica."""
    if not rel or rel.startswith(b"/") or b"\x00" in rel or b".." in rel.split(b"/"):
        raise ValueError(f"path {rel!r} is outside the replica")
    return rel


def _abs(top: bytes, rel: bytes) -> bytes:
    return top + b"/" + rel


def _parents_ok(top: bytes, *fulls: bytes) -> bool:
    """Is every directory above each path a real directory of the replica?
    An undo never reads or writes through a symlink put in since."""
    try:
        for full in fulls:
            place.check_parents(top, full[len(top) + 1 :])
    except (UnsafePath, ChangedDuringOperation, OSError):
        return False
    return True


def _there(path: bytes) -> bool:
    """Is there an entry by exactly this name? On a case-folding drive,
    `lstat` also finds a file by another case of its name."""
    parent, name = os.path.split(path)
    try:
        return name in os.listdir(parent)
    except (FileNotFoundError, NotADirectoryError):
        return False


def _holds(path: bytes, v: FileVersion) -> bool:
    """Is `path` (by exactly this name) a regular file with this content?"""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    if not statmod.S_ISREG(st.st_mode) or st.st_size != v.size or not _there(path):
        return False
    oid, _ = ids.hash_file(path)
    return oid == v.oid


def _undo_placed(top: bytes, step: Step, at: Places) -> int:
    path, v = _abs(top, step.path), _version(step)
    if not _parents_ok(top, path) or not _holds(path, v):
        return 0
    dest = os.path.join(at.trash, v.oid.hex().encode())
    if os.path.lexists(dest):
        os.unlink(path)
    else:
        os.rename(path, dest)
    fsync_dir(os.fsdecode(os.path.dirname(path)))
    return 1


def _undo_removed(top: bytes, step: Step, at: Places) -> int:
    path, v = _abs(top, step.path), _version(step)
    src = os.path.join(at.trash, v.oid.hex().encode())
    if not _parents_ok(top, path) or os.path.lexists(path) or not os.path.isfile(src):
        return 0
    # A copy, not a rename: the trash keeps what its records say it holds.
    # It is made in .squirrel/tmp/ (cleaned by every sync), never beside the
    # user's files, so a recovery killed here leaves nothing at their paths.
    os.makedirs(at.tmp, exist_ok=True)
    tmp = os.path.join(at.tmp, b"restore-" + v.oid.hex().encode())
    if os.path.lexists(tmp):
        os.unlink(tmp)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.utime(tmp, ns=(v.mtime_ns, v.mtime_ns))
    try:
        os.chmod(tmp, v.mode & 0o777 or 0o644)
    except OSError:
        pass  # filesystems without Unix permissions
    os.rename(tmp, path)
    fsync_dir(os.fsdecode(os.path.dirname(path)))
    return 1


def _undo_moved(top: bytes, step: Step, at: Places) -> int:
    assert step.to is not None
    src, dst, v = _abs(top, step.path), _abs(top, step.to), _version(step)
    # A case-only rename's two names reach one file: ask for the exact name.
    if not _parents_ok(top, src, dst) or _there(src) or not _holds(dst, v):
        return 0  # never moved, or moved back already
    os.rename(dst, src)
    os.utime(src, ns=(v.mtime_ns, v.mtime_ns), follow_symlinks=False)
    for d in {os.path.dirname(src), os.path.dirname(dst)}:
        fsync_dir(os.fsdecode(d))
    return 1


def _undo_mkdir(top: bytes, step: Step, at: Places) -> int:
    path = _abs(top, step.path)
    if not _parents_ok(top, path):
        return 0
    try:
        os.rmdir(path)
    except OSError:
        return 0  # gone already, or not empty: something else is in it
    fsync_dir(os.fsdecode(os.path.dirname(path)))
    return 1


def _undo_rmdir(top: bytes, step: Step, at: Places) -> int:
    path = _abs(top, step.path)
    if not _parents_ok(top, path) or os.path.lexists(path):
        return 0
    os.mkdir(path)
    fsync_dir(os.fsdecode(os.path.dirname(path)))
    return 1


def _version(step: Step) -> FileVersion:
    assert step.version is not None  # from_json and the constructors give every file step one
    return step.version


UNDO = {
    PLACED: _undo_placed,
    REMOVED: _undo_removed,
    MOVED: _undo_moved,
    MKDIR: _undo_mkdir,
    RMDIR: _undo_rmdir,
}
