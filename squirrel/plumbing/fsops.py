"""Safe writes into a replica (docs/safety.md, "Writing files safely").

The order is what makes a crash harmless:

1. content goes to a temporary file in `.squirrel/tmp/` on the same drive,
   hashed while written and compared with the object id it must have;
2. the temporary file gets its mode and mtime, then is fsynced;
3. just before the rename, the target is checked again against what the plan
   saw (an edit made meanwhile becomes a conflict, never an overwrite); a
   new file's rename itself refuses a file at its path, where the system
   can (`rename_new`; elsewhere it checks right before);
4. the old version moves to `.squirrel/trash/` (never deleted);
5. the temporary file is renamed into place and the directory fsynced
   (by the executor once per directory and batch, before its index commit).

This module makes the temporary files (steps 1 and 2); `place` puts them
at their paths (steps 3 to 5).

The index is committed only after the files. A crash leaves either the old
or the new file at the path, never a partial one; at worst a temporary file
in `.squirrel/tmp/`, which the next command removes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as statmod
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial

from squirrel.errors import ChangedDuringOperation, FileSystemError, SquirrelError
from squirrel.plumbing import faults, paths
from squirrel.plumbing.durable import fsync_many, start_writeback
from squirrel.plumbing.ids import advise, hasher
from squirrel.plumbing.index import Entry

BLOCK = 1 << 20
WRITEBACK_STEP = 8 << 20  # a large file's bytes are sent to the disk as they are written, this many at a time


def abspath(root: bytes, rel: bytes) -> bytes:
    return root + b"/" + rel if rel else root


def matches(st: os.stat_result | None, expected: Entry | None) -> bool:
    """Is what is on disk still the version the plan saw?"""
    if expected is None:
        return st is None
    if st is None:
        return False
    if expected.is_dir:
        return statmod.S_ISDIR(st.st_mode)
    return statmod.S_ISREG(st.st_mode) and st.st_size == expected.size and st.st_mtime_ns == expected.mtime_ns


def lstat_or_none(path: bytes) -> os.stat_result | None:
    """The stat of what is at `path`, None where nothing is: the path is
    missing, or a folder above it is now a file (a sync that replaces a
    folder with a file still asks about the paths that were below it)."""
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def clean_tmp(tmp_dir: str) -> int:
    """Remove leftovers of an interrupted command: the files in `tmp_dir`
    and in its folders (a group's, see `fetch`), and those folders; returns
    how many files."""
    n = 0
    try:
        names = os.listdir(tmp_dir)
    except FileNotFoundError:
        return 0
    for name in names:
        path = os.path.join(tmp_dir, name)
        try:
            os.unlink(path)
            n += 1
        except IsADirectoryError:
            n += clean_tmp(path)
            with contextlib.suppress(OSError):
                os.rmdir(path)
        except FileNotFoundError:
            pass
    return n


_FS_IOC_GETFLAGS, _FS_IOC_SETFLAGS = 0x80086601, 0x40086602  # Linux's ioctls of a file's attributes
_FS_TOPDIR_FL = 0x00020000  # chattr +T


def spread_subfolders(directory: str) -> None:
    """Ask the file system to place each new folder of `directory` apart,
    as it places the folders of a drive's root (ext2/3/4's attribute +T,
    which Linux lets the folder's owner set): the files made in each such
    folder then take their inodes from a block group of their own, not all
    from one. Elsewhere, or where it cannot, nothing changes."""
    if not sys.platform.startswith("linux"):
        return
    import array
    import fcntl

    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        flags = array.array("i", [0])  # the kernel reads and writes an int, whatever the ioctl says
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
        if not flags[0] & _FS_TOPDIR_FL:
            flags[0] |= _FS_TOPDIR_FL
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags, True)
    except OSError:
        pass  # not ext2/3/4 (exFAT, FUSE, tmpfs), or not allowed
    finally:
        os.close(fd)


_pid = os.getpid()


def _new_pid() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_pid)


def temp_path(tmp_dir: str, kind: str = "in") -> str:
    """A new name in `tmp_dir`, unique to this process and moment (the
    process id is asked of the system once, not for every file)."""
    return os.path.join(tmp_dir, f"{kind}-{_pid}-{time.monotonic_ns()}")


def _file_mode(mode: int) -> int:
    return mode & 0o777 or 0o644


def temp_perms(mode: int) -> tuple[int, int]:
    """The permissions a temporary file for content of `mode` is made with
    (its own, as far as the umask lets, but readable and writable by its
    owner while it is written, read back and fsynced), and those it ends
    with (`_finish_temp`)."""
    return _file_mode(mode) | statmod.S_IRUSR | statmod.S_IWUSR, _file_mode(mode)


def _create_temp(name: str, mode: int, flags: int = os.O_WRONLY) -> int:
    """Create a temporary file for content of `mode` (`temp_perms`)."""
    return os.open(name, flags | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), temp_perms(mode)[0])


def _finish_temp(fd: int, mode: int, mtime_ns: int | None, durable: bool, st: os.stat_result | None = None) -> None:
    """A verified temporary file takes its mode (unless `st`, its stat,
    shows it has it already) and mtime (None: it keeps its own, for content
    that is no user's file), and with `durable` is fsynced: what both ways
    of writing one end with."""
    if st is None or statmod.S_IMODE(st.st_mode) != _file_mode(mode):
        try:
            os.fchmod(fd, _file_mode(mode))
        except OSError:
            pass  # filesystems without Unix permissions (exFAT, NTFS)
    if durable:
        faults.point("fsync")
        os.fsync(fd)
    if mtime_ns is not None:
        faults.point("utime")
        os.utime(fd, ns=(mtime_ns, mtime_ns))


def write_temp(
    tmp_dir: str,
    chunks: Iterable[bytes],
    oid: bytes,
    size: int,
    mtime_ns: int | None,
    mode: int,
    durable: bool = True,
) -> str:
    """Write `chunks` to a new temporary file and verify it is object `oid`.

    Returns the temporary path; on any failure the temporary file is removed.
    Without `durable` the file is not fsynced: the caller fsyncs it
    (`fsync_temp`) before it renames it anywhere.
    """
    name = temp_path(tmp_dir)
    fd = _create_temp(name, mode)
    ok = False
    try:
        h = hasher(size)
        written = flushed = 0
        for chunk in chunks:
            written += len(chunk)
            if written > size:
                raise ChangedDuringOperation("content is longer than its declared size")
            h.update(chunk)
            view = memoryview(chunk)
            while view:
                faults.point("write")
                n = os.write(fd, view)
                view = view[n:]
            if written - flushed >= WRITEBACK_STEP:
                start_writeback(fd, flushed, written - flushed)
                flushed = written
        if written != size or h.digest() != oid:
            raise ChangedDuringOperation("content does not match its object id")
        _finish_temp(fd, mode, mtime_ns, durable)
        ok = True
        return name
    except OSError as e:
        raise write_error(e, size) from e
    finally:
        os.close(fd)
        if not ok:
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass


@dataclass(frozen=True)
class Span:
    """Content that lies, as is, in an open file: `size` bytes from
    `offset` of `fd` (a sender's file, a raw object in a bundle), on a
    descriptor of its own: `copy_temp` closes it, other users close it
    themselves."""

    fd: int
    offset: int
    size: int


@dataclass(frozen=True)
class SharedSpan:
    """Content that lies, as is, in a file its source keeps open while the
    content is read (a raw object in a bundle being applied): `size`
    bytes from `offset` of `fd`, read at those offsets only; no reader
    closes it. A group of small files reads its objects so, sparing a
    duplicate descriptor for each (`groups`)."""

    fd: int
    offset: int
    size: int


@dataclass(frozen=True)
class FileAt:
    """Content that is the whole of a local file, not opened yet: whoever
    copies it opens `path` as `open_span` does (no symlink followed) and
    takes it only while it is a regular file of `size` bytes and, where
    `mtime_ns` is not None, of that mtime. A group of small files opens
    its sources so, in its C call (`groups`)."""

    path: bytes
    size: int
    mtime_ns: int | None


COPY_STEP = 2 << 20  # the kernel copies this many bytes at a time: the progress moves on
# A copy that is read back goes a piece at a time: the kernel copies the next
# piece (on a thread) while this one is read back and hashed, so the two
# take the time of the longer, not of both. The hashing then keeps to one
# thread and to blocks that stay in the processor's cache: `sq pack` of
# 512 MiB of media took 0.77 s one step after the other, 0.64 s pipelined
# with blake3's threads on 8 MiB blocks, and 0.54 s like this.
COPY_PIECE = 16 << 20
READ_BUFFER = 2 << 20
_NO_COPY = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF, errno.EPERM)


def copy_range(
    span: Span,
    fd: int,
    progress: Callable[[int], None] | None = None,
    read_back: Callable[[memoryview], object] | None = None,
    start: int | None = None,
) -> int | None:
    """Copy the span to `fd` at its position, in the kernel
    (copy_file_range(2)), asking the disk to start writing each step of a
    large span (`start_writeback`); returns the bytes copied, or None,
    having copied nothing, where the file systems cannot copy this way.

    With `read_back`, the copy is read back and handed to it block by block
    (each block valid only during the call), so that what is verified is
    what was written, and `progress` hears each block read back; without,
    `progress` hears each step copied. `start`: the position of `fd`, where
    the caller knows it (a new file: 0).

    A large span is copied in pieces, and the disk is asked for each piece
    (WILLNEED) as the one before it starts to be copied: the kernel reads
    it meanwhile, where its own read-ahead, within the copy, waits for
    each window in turn."""
    if start is None:
        start = os.lseek(fd, 0, os.SEEK_CUR)
    if read_back is None:
        return _copy_piece(span, fd, start, 0, span.size, progress)
    first = min(COPY_PIECE, span.size)
    _ask_ahead(span, first)
    if _copy_piece(span, fd, start, 0, first) is None:
        return None
    buf = bytearray(min(READ_BUFFER, max(span.size, 1)))

    def verify(at: int, n: int) -> None:
        for block in pread_blocks(fd, start + at, n, buf):
            read_back(block)
            if progress is not None:
                progress(len(block))

    if first == span.size:
        verify(0, first)
        return first
    # Leaving the pool waits for its copy: neither descriptor is closed
    # under it, whatever this thread raises.
    from concurrent.futures import ThreadPoolExecutor  # only for large files (see `ids`)

    with ThreadPoolExecutor(1, thread_name_prefix="sq-copy") as pool:
        at = 0
        while at < span.size:
            n = min(COPY_PIECE, span.size - at)
            ahead = None
            if at + n < span.size:
                _ask_ahead(span, at + 2 * n)
                ahead = pool.submit(_copy_piece, span, fd, start, at + n, min(COPY_PIECE, span.size - at - n))
            verify(at, n)
            if ahead is not None:
                ahead.result()
            at += n
    return span.size


def _ask_ahead(span: Span, at: int) -> None:
    """Ask the disk for the piece of the span from `at`, without waiting."""
    if at < span.size:
        advise(span.fd, "POSIX_FADV_WILLNEED", span.offset + at, min(COPY_PIECE, span.size - at))


def _copy_piece(
    span: Span, fd: int, start: int, at: int, size: int, progress: Callable[[int], None] | None = None
) -> int | None:
    """Copy `size` bytes of the span from `at` to `fd` at its position
    (`start` + `at`); None where the file systems cannot copy this way,
    found at the span's first byte, with nothing copied."""
    done = 0
    while done < size:
        faults.point("write")
        try:
            n = os.copy_file_range(span.fd, fd, min(COPY_STEP, size - done), span.offset + at + done)
        except OSError as e:
            if at + done == 0 and e.errno in _NO_COPY:
                return None
            raise
        if n == 0:
            raise ChangedDuringOperation("content is shorter than its declared size")
        if span.size >= WRITEBACK_STEP:  # a smaller file goes to the disk with the group it is fsynced with
            start_writeback(fd, start + at + done, n)
        if progress is not None:
            progress(n)
        done += n
    return done


def pread_blocks(fd: int, offset: int, size: int, buf: bytearray) -> Iterator[memoryview]:
    """Read `size` bytes of `fd` from `offset`, in blocks of the reused
    buffer `buf` (each block is valid until the next is read)."""
    view = memoryview(buf)
    at, end = offset, offset + size
    while at < end:
        n = os.preadv(fd, [view[: min(len(buf), end - at)]], at)
        if not n:
            raise ChangedDuringOperation("a file was cut short while it was read")
        yield view[:n]
        at += n


def copy_temp(
    tmp_dir: str,
    span: Span,
    oid: bytes,
    size: int,
    mtime_ns: int | None,
    mode: int,
    durable: bool = True,
    progress: Callable[[int], None] | None = None,
) -> str | None:
    """Like `write_temp` (`size` is the size the content must have), for
    content that lies in a file: the kernel copies the bytes (`copy_range`,
    no trip through this process), and the copy is read back and verified
    against `oid`: what is checked is what was written. Returns None,
    having written nothing, where the file systems cannot copy this way
    (the caller then streams the content). Closes the span's descriptor,
    whatever happens."""
    try:
        name = temp_path(tmp_dir)
        fd = _create_temp(name, mode, os.O_RDWR)
    except BaseException:
        os.close(span.fd)
        raise
    ok = False
    try:
        if span.size != size:
            raise ChangedDuringOperation("content does not match its object id")
        h = hasher(size)
        if copy_range(span, fd, progress, h.update, start=0) is None:
            return None
        st = os.fstat(fd)
        if st.st_size != span.size or h.digest() != oid:
            raise ChangedDuringOperation("content does not match its object id")
        _finish_temp(fd, mode, mtime_ns, durable, st)
        ok = True
        return name
    except OSError as e:
        raise write_error(e, span.size) from e
    finally:
        os.close(span.fd)
        os.close(fd)
        if not ok:
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass


def open_span(path: bytes, expected: Entry) -> Span:
    """The content of a local file, opened as `read_chunks` opens it (no
    symlink followed, refused when it no longer matches `expected`)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not statmod.S_ISREG(st.st_mode):
            raise FileSystemError(f"not a regular file: {paths.display(path)}")
        if not matches(st, expected):
            raise ChangedDuringOperation(f"{paths.display(path)} changed since it was scanned")
    except BaseException:
        os.close(fd)
        raise
    return Span(fd, 0, expected.size)


def write_error(e: OSError, size: int) -> SquirrelError:
    """The error of a failed write of `size` bytes of content."""
    if e.errno == errno.ENOSPC:
        from squirrel.errors import OutOfSpace
        from squirrel.text import counted

        return OutOfSpace(f"no space left on the drive while writing {counted(size, 'byte')}")
    return FileSystemError(f"cannot write temporary file: {e.strerror}")


def fsync_temps(names: list[str], size: int) -> None:
    """Make durable the temporary files (of `size` bytes in all) that
    `write_temp` wrote without `durable`; any thread may call this. On
    failure they are removed."""
    try:
        fsync_many(names)
    except OSError as e:
        for name in names:
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass
        raise write_error(e, size) from e


def read_chunks(path: bytes, expected: Entry | None = None, block: int = BLOCK) -> Iterator[bytes]:
    """Stream a local file in blocks of `block` bytes without following
    symlinks; if `expected` is given, refuse when the file no longer matches it."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        if not statmod.S_ISREG(st.st_mode):
            raise FileSystemError(f"not a regular file: {paths.display(path)}")
        if expected is not None and not matches(st, expected):
            raise ChangedDuringOperation(f"{paths.display(path)} changed since it was scanned")
        yield from iter(partial(f.read, block), b"")


def file_chunks(span: Span, block: int = BLOCK) -> Iterator[bytes]:
    """Stream a local file opened by `open_span`, as `read_chunks` streams
    it by its path, and close it."""
    with os.fdopen(span.fd, "rb", buffering=0) as f:
        yield from iter(partial(f.read, block), b"")


def trash_path(trash_dir: str, oid: bytes) -> bytes:
    return os.path.join(os.fsencode(trash_dir), oid.hex().encode())


def remove_temp(tmp: str | bytes) -> None:
    """A temporary file that will not be renamed into place, removed."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)


def is_case_insensitive(directory: str) -> bool:
    """Does this filesystem fold case? (exFAT, NTFS, APFS by default do.)"""
    probe = os.path.join(directory, f"CaseProbe-{os.getpid()}")
    with open(probe, "wb"):
        pass
    try:
        return os.path.exists(probe.replace("CaseProbe", "caseprobe"))
    finally:
        os.unlink(probe)
