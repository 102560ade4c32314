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
import json
import os
import secrets
import shutil
import stat as statmod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from squirrel.errors import ChangedDuringOperation, CorruptIndex, UnsafePath, UnsupportedFormat
from squirrel.plumbing import faults, fsops, ids
from squirrel.plumbing.durable import fsync_dir
from squirrel.plumbing.index import Entry, ReplicaIndex

MAGIC = "sq-journal"
VERSION = 1
META_KEY = "journal"  # index meta: the id of the last batch whose changes committed

Step = dict[str, Any]


# The undo steps, each made from what an action is about to change ------------
def _p(path: bytes) -> str:
    return base64.b64encode(path).decode("ascii")


def _version(e: Entry) -> dict[str, Any]:
    return {"oid": e.oid.hex(), "size": e.size, "mtime_ns": e.mtime_ns, "mode": e.mode}


def placed(path: bytes, new: Entry) -> Step:
    """A file with `new`'s content may be put at `path`; undo moves it to the trash."""
    return {"t": "placed", "p": _p(path), **_version(new)}


def removed(path: bytes, old: Entry) -> Step:
    """`old` may leave `path` for the trash; undo puts it back from there."""
    return {"t": "removed", "p": _p(path), **_version(old)}


def moved(src: bytes, dst: bytes, e: Entry) -> Step:
    """The file `e` at `src` may be renamed to `dst`; undo renames it back."""
    return {"t": "moved", "p": _p(src), "to": _p(dst), **_version(e)}


def made_dir(path: bytes) -> Step:
    """A directory may be made at `path`; undo removes it if it is empty."""
    return {"t": "mkdir", "p": _p(path)}


def removed_dir(path: bytes) -> Step:
    """The directory at `path` may be removed; undo makes it again."""
    return {"t": "rmdir", "p": _p(path)}


class Journal:
    """The intent log of one replica (`.squirrel/journal`)."""

    def __init__(self, sq_dir: str) -> None:
        self.path = os.path.join(sq_dir, "journal")

    def begin(self, batch: str, steps: Iterable[Step]) -> None:
        """Write a batch's undo steps, durably, before any of them happens."""
        lines = [json.dumps({"format": MAGIC, "version": VERSION, "batch": batch})]
        lines += [json.dumps(s, sort_keys=True) for s in steps]
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
        batch_id = secrets.token_hex(8)
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
            steps = [json.loads(line) for line in rest]
        except (UnicodeDecodeError, ValueError) as e:
            raise CorruptIndex(f"the intent log {self.path} is damaged ({e}); nothing was undone") from None
        if not isinstance(header, dict) or header.get("format") != MAGIC:
            raise CorruptIndex(f"{self.path} is not an sq intent log")
        if header.get("version") != VERSION:
            raise UnsupportedFormat(
                f"intent log version {header.get('version')} is not one this sq understands ({VERSION}); upgrade sq"
            )
        if not all(_well_formed(s) for s in steps):
            raise CorruptIndex(f"the intent log {self.path} holds a malformed step; nothing was undone")
        return str(header.get("batch")), steps


_PATH_FIELDS = {"placed": ("p",), "removed": ("p",), "moved": ("p", "to"), "mkdir": ("p",), "rmdir": ("p",)}
_INT_FIELDS = ("size", "mtime_ns", "mode")


def _well_formed(step: object) -> bool:
    """Every field a step's undo reads is there, with its type."""
    if not isinstance(step, dict) or step.get("t") not in _PATH_FIELDS:
        return False
    if not all(isinstance(step.get(k), str) for k in _PATH_FIELDS[step["t"]]):
        return False
    if step["t"] in ("mkdir", "rmdir"):
        return True
    oid = step.get("oid")
    if not (isinstance(oid, str) and len(oid) == 64 and all(c in "0123456789abcdef" for c in oid)):
        return False
    return all(type(step.get(k)) is int and 0 <= step[k] < 1 << 63 for k in _INT_FIELDS)


def recover(root: str, journal: Journal, index: ReplicaIndex, trash_dir: str, tmp_dir: str) -> int:
    """Undo what an interrupted batch changed, unless it committed; returns
    the number of steps undone. Call with the replica's lock held, before
    anything reads the tree."""
    left = journal.read()
    if left is None:
        return 0
    batch, steps = left
    undone = 0
    if index.get_meta_json(META_KEY) != batch:
        top = os.fsencode(root)
        for step in reversed(steps):
            try:
                undone += UNDO[step["t"]](top, step, Places(os.fsencode(trash_dir), os.fsencode(tmp_dir)))
            except ValueError as e:  # a path outside the replica, bad base64
                raise CorruptIndex(f"the intent log {journal.path} holds a bad step ({e})") from None
    journal.end()
    return undone


# Undoing, by looking at the disk -------------------------------------------
@dataclass(frozen=True)
class Places:
    trash: bytes  # .squirrel/trash/
    tmp: bytes  # .squirrel/tmp/


def _abs(top: bytes, step: Step, key: str = "p") -> bytes:
    rel = base64.b64decode(step[key], validate=True)
    if not rel or rel.startswith(b"/") or b"\x00" in rel or b".." in rel.split(b"/"):
        raise ValueError(f"path {rel!r} is outside the replica")
    return top + b"/" + rel


def _parents_ok(top: bytes, *fulls: bytes) -> bool:
    """Is every directory above each path a real directory of the replica?
    An undo never reads or writes through a symlink put in since."""
    try:
        for full in fulls:
            fsops.check_parents(top, full[len(top) + 1 :])
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


def _holds(path: bytes, step: Step) -> bool:
    """Is `path` (by exactly this name) a regular file with the step's content?"""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    if not statmod.S_ISREG(st.st_mode) or st.st_size != step["size"] or not _there(path):
        return False
    oid, _ = ids.hash_file(path)
    return bool(oid.hex() == step["oid"])


def _undo_placed(top: bytes, step: Step, at: Places) -> int:
    path = _abs(top, step)
    if not _parents_ok(top, path) or not _holds(path, step):
        return 0
    dest = os.path.join(at.trash, step["oid"].encode())
    if os.path.lexists(dest):
        os.unlink(path)
    else:
        os.rename(path, dest)
    fsync_dir(os.fsdecode(os.path.dirname(path)))
    return 1


def _undo_removed(top: bytes, step: Step, at: Places) -> int:
    path = _abs(top, step)
    src = os.path.join(at.trash, step["oid"].encode())
    if not _parents_ok(top, path) or os.path.lexists(path) or not os.path.isfile(src):
        return 0
    # A copy, not a rename: the trash keeps what its records say it holds.
    # It is made in .squirrel/tmp/ (cleaned by every sync), never beside the
    # user's files, so a recovery killed here leaves nothing at their paths.
    os.makedirs(at.tmp, exist_ok=True)
    tmp = os.path.join(at.tmp, b"restore-" + step["oid"].encode())
    if os.path.lexists(tmp):
        os.unlink(tmp)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.utime(tmp, ns=(step["mtime_ns"], step["mtime_ns"]))
    try:
        os.chmod(tmp, step["mode"] & 0o777 or 0o644)
    except OSError:
        pass  # filesystems without Unix permissions
    os.rename(tmp, path)
    fsync_dir(os.fsdecode(os.path.dirname(path)))
    return 1


def _undo_moved(top: bytes, step: Step, at: Places) -> int:
    src, dst = _abs(top, step), _abs(top, step, "to")
    # A case-only rename's two names reach one file: ask for the exact name.
    if not _parents_ok(top, src, dst) or _there(src) or not _holds(dst, step):
        return 0  # never moved, or moved back already
    os.rename(dst, src)
    os.utime(src, ns=(step["mtime_ns"], step["mtime_ns"]), follow_symlinks=False)
    for d in {os.path.dirname(src), os.path.dirname(dst)}:
        fsync_dir(os.fsdecode(d))
    return 1


def _undo_mkdir(top: bytes, step: Step, at: Places) -> int:
    path = _abs(top, step)
    if not _parents_ok(top, path):
        return 0
    try:
        os.rmdir(path)
    except OSError:
        return 0  # gone already, or not empty: something else is in it
    fsync_dir(os.fsdecode(os.path.dirname(path)))
    return 1


def _undo_rmdir(top: bytes, step: Step, at: Places) -> int:
    path = _abs(top, step)
    if not _parents_ok(top, path) or os.path.lexists(path):
        return 0
    os.mkdir(path)
    fsync_dir(os.fsdecode(os.path.dirname(path)))
    return 1


UNDO = {
    "placed": _undo_placed,
    "removed": _undo_removed,
    "moved": _undo_moved,
    "mkdir": _undo_mkdir,
    "rmdir": _undo_rmdir,
}
