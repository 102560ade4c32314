"""Putting a verified file at its path in a replica: steps 3 to 5 of the
safe write (docs/safety.md; the temporary file itself is `fsops`'s).

Just before the rename, every folder above the path is checked again (one
swapped for a symlink since the plan is never written through) and the
target against what the plan saw; a new file's rename itself refuses a
file at its path where the system can (`rename_new`; elsewhere it checks
right before). An older version goes to `.squirrel/trash/` first, in one
atomic step with the rename where hard links exist
(`replace_keeping_old`). The checks and renames are made in C where that
part was built (`_place.c`), one file at a time (`install`) or a run of
new files in one call (`install_new`), with the same results in Python.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import stat as statmod
from collections.abc import Callable
from typing import NamedTuple, Protocol

from squirrel.errors import ChangedDuringOperation, SquirrelError, UnsafePath
from squirrel.plumbing import faults, paths
from squirrel.plumbing.durable import fsync_dir, linux_call
from squirrel.plumbing.fsops import abspath, lstat_or_none, matches, temp_path, trash_path
from squirrel.plumbing.index import Entry, ReplicaIndex
from squirrel.plumbing.trash import TrashItem, TrashReason
from squirrel.plumbing.trashcan import record_version

_place: Callable[[bytes, bytes, bytes, bool], tuple[int, int]] | None = None
_place_new: Callable[[bytes, list[tuple[bytes, bytes]]], list[tuple[int, int, int, int, int, int]]] | None = None
try:  # where setup.py built it
    from squirrel.plumbing._place import place as _place
    from squirrel.plumbing._place import place_new as _place_new
except ImportError:  # an install without a C compiler: `install` makes the same calls in Python
    pass
_VANISHED, _NOT_A_FOLDER, _RENAME_FAILED, _STAT_FAILED = 1, 2, 3, 4  # what _place answers, besides 0


def place_in_python() -> None:
    """Rename files into place in Python even where the C part was built:
    what `SQ_PURE_PYTHON` asks (read by the command line), as for the
    sweep (`sweep.compare_in_python`)."""
    global _place, _place_new
    _place = _place_new = None


def check_parents(root: bytes, rel: bytes) -> None:
    """Every directory above `rel` is a real directory, not a symlink."""
    cur = root
    for comp in rel.split(b"/")[:-1]:
        cur = cur + b"/" + comp
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            raise _vanished(cur) from None
        if not statmod.S_ISDIR(st.st_mode):
            raise _not_a_folder(cur)


def _vanished(folder: bytes) -> ChangedDuringOperation:
    return ChangedDuringOperation(f"directory vanished: {paths.display(folder)}")


def _not_a_folder(folder: bytes) -> UnsafePath:
    return UnsafePath(f"refusing to write through {paths.display(folder)}: not a directory (symlink?)")


def recheck(root: bytes, rel: bytes, expected: Entry | None) -> None:
    if not matches(lstat_or_none(abspath(root, rel)), expected):
        raise _changed(rel)


def trash(index: ReplicaIndex, trash_dir: str, root: bytes, rel: bytes, entry: Entry, reason: TrashReason) -> TrashItem:
    """Move a file version into the trash, content-addressed by its object
    id, and record why (a new trash item, committed with the caller's batch)."""
    dest = os.path.join(os.fsencode(trash_dir), entry.oid.hex().encode())
    src = abspath(root, rel)
    if os.path.lexists(dest):
        faults.point("unlink")
        os.unlink(src)  # the same content is already in the trash
    else:
        faults.point("rename")
        os.rename(src, dest)
    return record_version(index, entry.oid, rel, entry.size, reason, entry.mtime_ns)


def replace_keeping_old(
    index: ReplicaIndex,
    trash_dir: str,
    tmp: str | bytes,
    root: bytes,
    rel: bytes,
    old: Entry,
    sync: bool = True,
    *,
    reason: TrashReason,
) -> os.stat_result:
    """Put a verified temporary file in place of `old`, keeping `old` in the
    trash (recorded with `reason`). The old version is hard-linked into the
    trash first and the new one renamed over it in one atomic step, so a
    crash leaves the old or the new version at the path, never neither.
    Where hard links are unsupported (exFAT, FAT), the old version is moved
    to the trash and, if putting the new one in place fails, moved back."""
    src = abspath(root, rel)
    dest = trash_path(trash_dir, old.oid)
    check_parents(root, rel)
    try:
        if not os.path.lexists(dest):
            faults.point("rename")
            os.link(src, dest, follow_symlinks=False)
        linked = True
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        linked = False
    if linked:
        record_version(index, old.oid, rel, old.size, reason, old.mtime_ns)
        return install(tmp, root, rel, sync)
    shared = os.path.lexists(dest)
    item = trash(index, trash_dir, root, rel, old, reason)
    try:
        return install(tmp, root, rel, sync)
    except BaseException:
        # Put the old version back, and the trash as it was.
        if not os.path.lexists(src) and os.path.exists(dest):
            if shared:  # the trash held this content before: it keeps its copy
                back = temp_path(os.path.join(os.path.dirname(trash_dir), "tmp"), "back")
                shutil.copyfile(dest, back)
                os.utime(back, ns=(old.mtime_ns, old.mtime_ns))
                os.rename(back, src)
            else:
                os.rename(dest, src)
        index.trash_drop(item)
        raise


def install(tmp: str | bytes, root: bytes, rel: bytes, sync: bool = True, *, new: bool = False) -> os.stat_result:
    """Rename a verified temporary file (or a file of this replica being moved)
    into place; returns its stat. The directories above are checked again
    just before: one swapped for a symlink since the plan is never written
    through. `new`: nothing was at `rel` when the plan was made: whatever
    is there now is never replaced (`rename_new`, which checks), the
    rename fails with ChangedDuringOperation. Without `sync`, the caller
    fsyncs the directory later (the executor does once per directory and
    batch, before it commits)."""
    dest = abspath(root, rel)
    if _place is not None:  # the same calls in C, in one (_place.c)
        faults.point("rename")
        code, at = _place(os.fsencode(tmp), root, rel, new)
        if code:
            raise _not_placed(code, at, at, tmp, root, rel, new)
    else:
        _install_in_python(tmp, root, rel, dest, new)
    if sync:
        fsync_dir(os.fsdecode(os.path.dirname(dest)))
    return os.lstat(dest)


class Stat(Protocol):
    """The fields of a file's lstat that its index entry records."""

    @property
    def st_size(self) -> int: ...
    @property
    def st_mode(self) -> int: ...
    @property
    def st_mtime_ns(self) -> int: ...


class Placed(NamedTuple):
    """What `install_new` found at a path it renamed a file to: the
    fields of its lstat that an index entry records."""

    st_size: int
    st_mode: int
    st_mtime_ns: int


def install_new(root: bytes, items: list[tuple[bytes, bytes]]) -> list[Stat | SquirrelError | OSError]:
    """`install(tmp, root, rel, sync=False, new=True)` of each (tmp, rel) of
    `items`, in turn: the same checks and renames, in one call to the C
    part (_place.c) where it was built, so that a run of small files costs
    the executor's thread one wait for the interpreter lock, not one each.
    For each item, in order, what `install` would have returned (the stat
    of the file placed) or raised: an item that fails does not stop the
    others, and its temporary file stays (the caller removes it)."""
    out: list[Stat | SquirrelError | OSError] = []
    if _place_new is None:
        for tmp, rel in items:
            try:
                out.append(install(tmp, root, rel, sync=False, new=True))
            except (SquirrelError, OSError) as e:
                out.append(e)
        return out
    faulted: dict[int, OSError] = {}
    for i in range(len(items)):
        try:
            faults.point("rename")
        except OSError as e:  # an injected fault: this item's, as in `install`
            faulted[i] = e
    placed = iter(_place_new(root, [item for i, item in enumerate(items) if i not in faulted]))
    for i, (tmp, rel) in enumerate(items):
        if i in faulted:
            out.append(faulted[i])
            continue
        code, at, err, size, mode, mtime_ns = next(placed)
        if code:
            out.append(_not_placed(code, at, err, tmp, root, rel, True))
        elif size >= 0:
            out.append(Placed(size, mode, mtime_ns))
        else:  # renamed, then gone or unreadable: what install's lstat says
            try:
                out.append(os.lstat(abspath(root, rel)))
            except OSError as e:
                out.append(e)
    return out


def _not_placed(
    code: int, at: int, err: int, tmp: str | bytes, root: bytes, rel: bytes, new: bool
) -> SquirrelError | OSError:
    """The error of a rename into place that `_place` answered with `code`
    (`at`: the offset in `rel` of the folder it is about; `err`: the
    errno of a failed rename or folder lstat)."""
    if code == _VANISHED:
        return _vanished(abspath(root, rel[:at]))
    if code == _NOT_A_FOLDER:
        return _not_a_folder(abspath(root, rel[:at]))
    if code == _STAT_FAILED:
        return OSError(err, os.strerror(err), abspath(root, rel[:at]))
    if new and err == errno.EEXIST:
        return _changed(rel)
    return OSError(err, os.strerror(err), os.fsencode(tmp), None, abspath(root, rel))


def _changed(rel: bytes) -> ChangedDuringOperation:
    return ChangedDuringOperation(f"{paths.display(rel)} changed since it was scanned")


def _install_in_python(tmp: str | bytes, root: bytes, rel: bytes, dest: bytes, new: bool) -> None:
    """`install`'s checks and rename to `dest` (`rel` under `root`), where
    the C part was not built."""
    check_parents(root, rel)
    faults.point("rename")
    if new:
        try:
            rename_new(os.fsencode(tmp), dest)
        except FileExistsError:
            raise _changed(rel) from None
    else:
        os.rename(os.fsencode(tmp), dest)


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_NO_NOREPLACE = (errno.EINVAL, errno.ENOSYS)  # the file system (FUSE's, exFAT's) or the kernel cannot


@functools.cache
def _renameat2_call() -> Callable[[bytes, bytes], int] | None:
    """renameat2(2) with RENAME_NOREPLACE (Linux 3.15, through the C library
    of glibc 2.28 and later), looked up on first use; None elsewhere. The
    call returns 0 or the error's number."""
    fn = linux_call("renameat2", lambda c: (c.c_int, c.c_char_p, c.c_int, c.c_char_p, c.c_uint))
    if fn is None:
        return None
    import ctypes

    def call(src: bytes, dest: bytes) -> int:
        return 0 if fn(_AT_FDCWD, src, _AT_FDCWD, dest, _RENAME_NOREPLACE) == 0 else ctypes.get_errno()

    return call


def rename_new(src: bytes, dest: bytes) -> None:
    """Rename `src` to `dest`, where nothing may be: a file made at `dest`
    (by the user, by another program) is never replaced, the rename fails
    with FileExistsError. Where the system can (Linux's RENAME_NOREPLACE,
    on ext4, btrfs, XFS, tmpfs...), the rename itself refuses; elsewhere (a
    FUSE file system such as exFAT's, other systems) `dest` is checked
    right before a plain rename."""
    if b"\0" in src or b"\0" in dest:  # the C library would stop at it, and rename another file
        raise ValueError("embedded null byte")
    call = _renameat2_call()
    err = call(src, dest) if call is not None else errno.ENOSYS
    if err in _NO_NOREPLACE:
        if lstat_or_none(dest) is not None:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dest)
        os.rename(src, dest)
    elif err:
        raise OSError(err, os.strerror(err), src, None, dest)
