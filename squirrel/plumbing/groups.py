"""Groups of small files written into verified, durable temporary files by
one call of the C part each (`_copygroup.c`), where it was built.

For a small file almost all the time of writing it is system calls:
creating the file, the kernel's copy, the read-back the hash checks, the
mode and the mtime. The C call makes them for a whole group without the
interpreter lock, so that a group can be written on a thread of its own
while the caller's thread puts the group before into place, as the
fetcher (`fetch`, content for a drive) does. What a group wrote is only
temporary files, each verified against its id and all made durable
before `write` returns them.

Each group's files go to a folder of its own in the temporary folder,
placed apart by the file system (`fsops.spread_subfolders`): all in one
folder, every new inode comes from one block group, and ext4 then searches
it past every inode freed in the last minutes (a third of a push's
processor time, after other files were deleted), while the renames out of
it wait for its lock.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import blake3

from squirrel.errors import ChangedDuringOperation, SquirrelError
from squirrel.plumbing import faults, fsops
from squirrel.plumbing.readahead import files_ahead

GROUP_FILES = 256  # a group holds at most this many files, each with its source open during the C call
GROUP_BYTES = 16 << 20  # and about this many bytes: they are read back into memory

# (src_fd, offset, size, name, create_perms, final_perms, mtime_ns or None,
# path or None, expected mtime_ns or None): see _copygroup.c
Item = tuple[int, int, int, bytes, int, int, int | None, bytes | None, int | None]
_copy_group: Callable[[int, list[Item], bytearray], list[int]] | None = None
try:  # where setup.py built it
    from squirrel.plumbing._copygroup import copy as _copy_group
except ImportError:  # an install without a C compiler: callers write the same files in Python, one at a time
    pass
_SHORT, _NO_COPY, _SOURCE = -1, -2, -3  # what _copygroup.copy answers for a file, besides 0 and an errno

Fetched = str | SquirrelError | OSError  # a durable temporary file, or why writing it failed
GroupSpan = fsops.Span | fsops.SharedSpan | fsops.FileAt  # where a group's C call takes a file's content from


def copy_in_python() -> None:
    """Write every file in Python, one at a time, even where the C part was
    built: what `SQ_PURE_PYTHON` asks (read by the command line), as for
    the sweep (`sweep.compare_in_python`)."""
    global _copy_group
    _copy_group = None


def available() -> bool:
    """Was the C part built (and not set aside by `copy_in_python`)?"""
    return _copy_group is not None


def group_files() -> int:
    """How many files a group holds at most: each has its source open
    during the C call (see `readahead.files_ahead`)."""
    return min(GROUP_FILES, max(1, files_ahead()))


def group_of(sizes: Sequence[int], files: int, below: int) -> int:
    """How many of the first files (of `sizes`) make a group: each smaller
    than `below`, at most `files` of them and about `GROUP_BYTES` (one
    file more at the end)."""
    total = 0
    for n, size in enumerate(sizes):
        if n >= files or size >= below or (n and total + size > GROUP_BYTES):
            return n
        total += size
    return len(sizes)


@dataclass(frozen=True)
class Small:
    """A small file for a group: the id and size its content must have, the
    mode and mtime its temporary file ends with (mtime None: its own, for
    content that is no user's file), where the content lies as is in a
    file (`span`: a span of its own, one of a file its source keeps open,
    a file the C call opens, or None where it does not; the group ends
    before it), and what an error fetching it from there means for its
    caller (`error`)."""

    oid: bytes
    size: int
    mode: int
    mtime_ns: int | None
    span: Callable[[], GroupSpan | None]
    error: Callable[[SquirrelError | OSError], SquirrelError | OSError]


class Groups:
    """Writes groups of small files into folders of their own in `tmp_dir`
    (any thread may call `write`), until the file system shows it cannot
    copy this way (`usable`)."""

    def __init__(self, tmp_dir: str) -> None:
        self.tmp_dir = tmp_dir
        self.usable = available()  # False once the kernel could not copy to this drive
        self._folders: list[str] = []  # removed by `remove_folders`
        self._numbers = itertools.count()  # of the folders

    def write(self, files: Sequence[Small]) -> list[Fetched]:
        """The content of `files`, in order, copied from their spans into
        temporary files by one C call, each verified against its id, all
        made durable: for each file as far as the group went, its
        temporary file or why it failed. A file the kernel cannot copy, or
        whose content does not lie in a file, or whose file (`FileAt`) the
        C call could not open as it was, ends the group with nothing said
        for it: the caller writes it another way (and says why)."""
        copy = _copy_group
        assert copy is not None
        spans: list[GroupSpan] = []
        stop: Fetched | None = None  # why the file after the last span cannot be written
        try:
            for small in files:
                try:
                    span = small.span()
                except (SquirrelError, OSError) as e:
                    stop = small.error(e)
                    break
                if span is None:
                    break
                spans.append(span)
                if span.size != small.size:
                    stop = small.error(ChangedDuringOperation("content does not match its object id"))
                    spans.pop()
                    _close(span)
                    break
            if not spans:  # nothing to copy: no folder, no call
                return [stop] if stop is not None else []
            return self._copy(copy, files[: len(spans)], spans, stop)
        finally:
            for span in spans:
                _close(span)

    def _copy(
        self,
        copy: Callable[[int, list[Item], bytearray], list[int]],
        files: Sequence[Small],
        spans: list[GroupSpan],
        stop: Fetched | None,
    ) -> list[Fetched]:
        """`write`'s copy, verification and fsync, of files whose spans are
        open; `stop`: why the file after them cannot be written."""
        # Each file passes the fault points the write of one file passes
        # (docs/safety.md, in the same number): a fault armed at one fails
        # that file, and the group ends before it.
        for j, small in enumerate(files):
            try:
                faults.point("write")
                if small.mtime_ns is not None:
                    faults.point("utime")
            except OSError as e:
                files, spans, stop = files[:j], spans[:j], fsops.write_error(e, small.size)
                break
        if not files:  # a fault at the first
            return [stop] if stop is not None else []
        if not self._folders:
            fsops.spread_subfolders(self.tmp_dir)
        # Unique even when two threads ask in the same nanosecond.
        folder = f"{fsops.temp_path(self.tmp_dir, 'group')}-{next(self._numbers)}"
        try:
            os.mkdir(folder)
        except OSError as e:  # a full drive, as the first file's write would meet it
            return [fsops.write_error(e, files[0].size)]
        self._folders.append(folder)
        names = [os.path.join(folder, str(i)) for i in range(len(files))]
        items: list[Item] = []
        for small, span, name in zip(files, spans, names, strict=True):
            create, final = fsops.temp_perms(small.mode)
            base = os.fsencode(os.path.basename(name))
            if isinstance(span, fsops.FileAt):
                items.append((-1, 0, span.size, base, create, final, small.mtime_ns, span.path, span.mtime_ns))
            else:  # a span, open
                items.append((span.fd, span.offset, span.size, base, create, final, small.mtime_ns, None, None))
        buf = bytearray(sum(span.size for span in spans))
        made: list[str] = []  # what the C call wrote, removed again if this fails unexpectedly
        try:
            dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:  # out of descriptors, as the first file's open would be
            return [fsops.write_error(e, files[0].size)]
        try:
            codes = copy(dir_fd, items, buf)
            made = [name for name, code in zip(names, codes, strict=False) if code == 0]
            out = self._verified(files, names, codes, buf)
            if stop is not None and len(codes) == len(files) and not any(codes):
                out.append(stop)
            out = self._durable(files, out)
            made = []
            return out
        finally:
            os.close(dir_fd)
            for name in made:
                try:
                    os.unlink(name)
                except FileNotFoundError:
                    pass

    def _verified(self, files: Sequence[Small], names: list[str], codes: list[int], buf: bytearray) -> list[Fetched]:
        """What the C call's `codes` and the bytes it read back (`buf`) mean
        for each file: its temporary file, verified against its id, or why
        it failed (a file the kernel could not copy is left out: the caller
        writes it another way)."""
        out: list[Fetched] = []
        view = memoryview(buf)
        at = 0
        for small, name, code in zip(files, names, codes, strict=False):  # the C call may have stopped early
            size = small.size
            if code == 0 and blake3.blake3(view[at : at + size]).digest() == small.oid:
                out.append(name)
            elif code == 0:
                os.unlink(name)
                out.append(small.error(ChangedDuringOperation("content does not match its object id")))
            elif code == _SHORT:
                out.append(small.error(ChangedDuringOperation("content is shorter than its declared size")))
            elif code == _NO_COPY:  # this drive's file system: no group is tried again
                self.usable = False
            elif code == _SOURCE:  # its file was not as expected: the caller opens it, and says why
                pass
            else:
                out.append(fsops.write_error(OSError(code, os.strerror(code)), size))
            at += size
        return out

    def _durable(self, files: Sequence[Small], out: list[Fetched]) -> list[Fetched]:
        """The temporary files of `out` made durable together, each past
        its fault point: a fault fails its file, and the files after it are
        removed (the caller writes them another way); a failed fsync fails
        them all."""
        good: list[tuple[str, int]] = []
        for i, got in enumerate(out):
            if not isinstance(got, str):
                continue
            size = files[i].size
            try:
                faults.point("fsync")
            except OSError as e:
                for later in out[i:]:
                    if isinstance(later, str):
                        os.unlink(later)
                out = [*out[:i], fsops.write_error(e, size)]
                break
            good.append((got, size))
        if good:
            try:
                fsops.fsync_temps([name for name, _ in good], sum(size for _, size in good))
            except (SquirrelError, OSError) as e:  # the files are gone: each fails with the error
                out = [e if isinstance(got, str) else got for got in out]
        return out

    def remove_folders(self) -> None:
        """Remove the groups' folders, once every file written into them
        was taken or removed; what is left in one waits for the next
        `fsops.clean_tmp`."""
        for folder in self._folders:
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        self._folders.clear()


def _close(span: GroupSpan) -> None:
    """Close a span's descriptor, where it has one of its own (a shared
    span's source keeps its own open; the C call opens and closes the file
    of a `FileAt`)."""
    if isinstance(span, fsops.Span):
        os.close(span.fd)
