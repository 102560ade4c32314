"""Object ids: the blake3 hash of a file's content.

An object id is 32 raw bytes, written as 64 lowercase hex digits. Files are
hashed in blocks of 256 KiB, so that a 20 GB video never sits in memory and
each block is still in the processor's cache when blake3 reads it: measured
on 1 GiB of photo-sized files read from the disk, 256 KiB blocks hashed at
0.8 of the speed of `cat`, 1 MiB blocks at 0.65, and blake3's own threads
(on 2 cores) made both slower. A file that changes while it is read (its size or
mtime differ before and after) is read again, and after a few tries reported,
so that a mixed hash is never recorded.
"""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Callable
from typing import TYPE_CHECKING

import blake3

from squirrel.errors import BadUsage, ChangedDuringOperation, FileSystemError

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

OID_BYTES = 32
BLOCK = 256 << 10
EMPTY_OID = blake3.blake3(b"").digest()

# Counts files read, so tests can assert that an unchanged tree is not rehashed.
files_hashed = 0


def oid_hex(oid: bytes) -> str:
    return oid.hex()


def parse_oid(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != OID_BYTES:
        raise BadUsage(f"not an object id: {text!r} (want {OID_BYTES * 2} hex digits)")
    return raw


THREADED_HASH = 16 << 20  # from this size content is hashed on blake3's own threads


def hasher(size: int) -> blake3.blake3:
    """A blake3 hasher for content of `size` bytes: on blake3's own threads
    for large content, which it hashes in about half the time on two cores
    when handed blocks of a few MiB (512 MiB: 0.049 s against 0.090 s in
    blocks of 2 MiB); one thread for small content, which threads only
    slow down."""
    return blake3.blake3(max_threads=blake3.blake3.AUTO if size >= THREADED_HASH else 1)


def hash_bytes(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


_dropper: ThreadPoolExecutor | None = None
_dropping: Future[None] | None = None


def _drop_and_close(fd: int) -> None:
    """Drop the cached pages of a file just read from the media, and close
    it, on a thread of its own, so that the next file's reads need not wait:
    on 1.5 GiB of photo-sized files read from the disk, a scrub's loop ran
    at 0.72-0.74 of the speed of `cat` with the drop in line, 0.76-0.77
    with it on a thread. The thread owns `fd` from here on. One file at a
    time: the previous file's drop is over before this one's starts, and
    `drops_done` waits for the last."""
    global _dropper, _dropping
    if _dropper is None:
        # Imported here: a scan of an unchanged tree reads no file, and the
        # module (with logging, which it loads) was some 6 ms of its start.
        from concurrent.futures import ThreadPoolExecutor

        _dropper = ThreadPoolExecutor(1, thread_name_prefix="sq-drop")
    drops_done()

    def drop() -> None:
        try:
            _drop_cache(fd)
        finally:
            os.close(fd)

    _dropping = _dropper.submit(drop)


def _forget_dropper() -> None:
    """In a forked child the thread is gone: a new one starts on first use."""
    global _dropper, _dropping
    _dropper = _dropping = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_dropper)


def drops_done() -> None:
    """Wait until every file read from the media is closed: a scrub calls
    this before it returns, so that nothing it read is still open when the
    files are changed next (on FUSE file systems, exFAT drives among them,
    a file removed while open lingers as a hidden file in its folder)."""
    global _dropping
    if _dropping is not None:
        _dropping.result()
        _dropping = None


def _drop_cache(fd: int) -> None:
    """Ask the kernel to forget the file's cached (clean) pages, where it can."""
    advise(fd, "POSIX_FADV_DONTNEED")


def advise(fd: int, what: str, offset: int = 0, length: int = 0) -> None:
    """posix_fadvise of `what` (a name such as "POSIX_FADV_WILLNEED") for
    these bytes of the file (all of it by default), where the system and the
    file system take it: only a hint, so nothing is lost where it is not."""
    fadvise, flag = getattr(os, "posix_fadvise", None), getattr(os, what, None)
    if fadvise is not None and flag is not None:
        try:
            fadvise(fd, offset, length, flag)
        except OSError:
            pass  # a file system that does not take advice: read what it gives


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns


def open_to_read(path: str | bytes) -> int:
    """Open a file to read as `hash_file` does: with O_NOFOLLOW | O_NONBLOCK,
    so a symlink or FIFO swapped in after the scan saw a regular file is
    never followed or blocked on."""
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))


def hash_file(
    path: str | bytes,
    progress: Callable[[int], None] | None = None,
    tries: int = 3,
    *,
    from_media: bool = False,
    opened: int | None = None,
) -> tuple[bytes, os.stat_result]:
    """Hash a regular file; returns its id and the stat it was hashed under.

    Opens it with `open_to_read`, or, for the first try, takes `opened`, a
    descriptor the caller opened that way (ahead, for the disk to read it
    early); it is closed here. With `from_media` (a scrub), the file's
    cached pages are dropped first, so that what is hashed is what the
    drive holds, not a copy in memory, and again after, so that a scrub of
    a large drive does not push everything else out of the page cache.
    """
    global files_hashed
    for _ in range(tries):
        try:
            fd = open_to_read(path) if opened is None else opened
            opened = None
        except OSError as e:
            raise FileSystemError(f"cannot read {os.fsdecode(path)}: {e.strerror}") from e
        try:
            before = os.fstat(fd)
            if not statmod.S_ISREG(before.st_mode):
                raise FileSystemError(f"not a regular file: {os.fsdecode(path)}")
            files_hashed += 1
            if from_media:
                _drop_cache(fd)
                advise(fd, "POSIX_FADV_SEQUENTIAL")  # read all of it, in order: a larger read-ahead
            h = blake3.blake3()
            with os.fdopen(fd, "rb", buffering=0, closefd=False) as f:
                buf = bytearray(BLOCK)
                view = memoryview(buf)
                while True:
                    n = f.readinto(buf)
                    if not n:
                        break
                    h.update(view[:n])
                    if progress is not None:
                        progress(n)
            after = os.fstat(fd)
            if from_media:
                _drop_and_close(fd)
                fd = -1
        except OSError as e:
            raise FileSystemError(f"cannot read {os.fsdecode(path)}: {e.strerror}") from e
        finally:
            if fd >= 0:
                os.close(fd)
        if _same(before, after):
            return h.digest(), after
    raise ChangedDuringOperation(f"file keeps changing while it is read: {os.fsdecode(path)}")
