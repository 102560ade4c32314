"""Making writes durable: fsync of a directory after a rename, and the atomic
replacement of a small file (write a temporary, fsync, rename, fsync the
directory). Every fault point of these steps is here (see `faults`)."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from squirrel.plumbing import faults

# The system calls below are looked up on first use, not at import: every
# command imports this module, and most never write.


@functools.cache
def _syncfs_call() -> Callable[[int], int] | None:
    """syncfs(2), where it reports write-back errors (Linux 5.8 and later)."""
    import platform

    try:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
    except ValueError:
        return None
    if (major, minor) < (5, 8):
        return None
    call: Callable[[int], int] | None = linux_call("syncfs", lambda c: (c.c_int,))
    return call


def linux_call(name: str, argtypes: Callable[[Any], tuple[Any, ...]]) -> Any:
    """The C library's function `name` on Linux, with the argument types
    `argtypes(ctypes)` gives (ctypes is imported only here, on first use),
    errno kept for `ctypes.get_errno`; None elsewhere or where the C
    library lacks it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        fn = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes = argtypes(ctypes)
    return fn


@functools.cache
def _sync_file_range_call() -> Callable[[int, int, int, int], int] | None:
    call: Callable[[int, int, int, int], int] | None = linux_call(
        "sync_file_range", lambda c: (c.c_int, c.c_int64, c.c_int64, c.c_uint)
    )
    return call


_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing these bytes of a file to the disk now,
    without waiting (Linux's sync_file_range(2); elsewhere nothing). A large
    file written this way keeps the disk busy while the rest is written and
    few pages dirty, and its fsync has little left to do. It makes nothing
    durable: the fsync still does."""
    call = _sync_file_range_call()
    if call is not None:
        call(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def fsync_many(names: list[str]) -> None:
    """Make these files' data durable; raise OSError if that fails. Many
    small files written together cost one commit of the filesystem's
    journal this way, where fsyncing each costs one each: on Linux, one
    syncfs(2) of their filesystem (which reports write-back errors since
    5.8), elsewhere one fsync per file."""
    if not names:
        return
    syncfs = _syncfs_call() if len(names) > 1 else None
    if syncfs is not None:
        fd = os.open(names[0], os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            if syncfs(fd) != 0:
                import ctypes

                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err))
        finally:
            os.close(fd)
        return
    for name in names:
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_dir(path: str) -> None:
    faults.point("fsync")
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as e:  # some FUSE filesystems refuse fsync on directories
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.ENOSYS):
            raise
    finally:
        os.close(fd)


def write_file_atomic(path: str, data: bytes) -> None:
    """Write via a temporary name, fsync, rename, fsync the directory. The
    temporary is removed when any step fails: a failed write leaves only
    what was there before."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            faults.point("fsync")
            os.fsync(f.fileno())
        faults.point("rename")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(path))
