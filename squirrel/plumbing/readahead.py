"""Asking the disk for the next files before their turn.

Copying or hashing many small files one after the other waits for the
disk once per file: each read is asked for only when the last file is
done, so the disk holds one request at a time. A drive just plugged in
holds nothing in the page cache, and there that wait is most of the time:
`sq push` of 10,000 files of 1-20 KiB took 2.1 s from a cold cache, against
1.0 s for `cp -r` + `sync`. Opening the next files ahead and asking the
kernel to start reading them (posix_fadvise(2) WILLNEED, which does not
wait) gives the disk many requests at once, to serve in the order that
suits it: the same push took 1.0 s. The fetcher, the carrier's store and
pack take spans in order (`spans_ahead`); the scanner takes a folder's
files by name (`FilesAhead`). Where the kernel has no such call, nothing
is opened ahead.

Only a window is opened ahead (`READ_AHEAD_FILES` descriptors, fewer where
the process may open few; about `READ_AHEAD_BYTES` asked for), and a span
larger than that is left to the kernel's own read-ahead, which follows a
file read from start to end.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Generator, Iterable
from typing import TypeVar

from squirrel.errors import SquirrelError
from squirrel.plumbing import ids
from squirrel.plumbing.fsops import Span

READ_AHEAD_FILES = 256  # spans opened ahead, at most
READ_AHEAD_BYTES = 32 << 20  # and about this many bytes asked for before their turn

T = TypeVar("T")
Opened = Span | None | SquirrelError | OSError  # a span, none (the content is streamed), or why it failed


def files_ahead() -> int:
    """How many spans to open ahead here: none without posix_fadvise, and
    at most a quarter of the descriptors this process may open."""
    if not hasattr(os, "posix_fadvise"):
        return 0
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 0
    if soft == resource.RLIM_INFINITY:
        return READ_AHEAD_FILES
    return max(0, min(READ_AHEAD_FILES, soft // 4))


def will_need(span: Span) -> None:
    """Ask the kernel to start reading the span from the disk, without
    waiting for it."""
    ids.advise(span.fd, "POSIX_FADV_WILLNEED", span.offset, span.size)


def spans_ahead(items: Iterable[T], open_span: Callable[[T], Span | None]) -> Generator[tuple[T, Opened], None, None]:
    """Each item with its span (`open_span(item)`), or None, or the error
    that opening it raised, in order; the spans of the items after it are
    already open and being read. The caller owns each span it is given
    (`fsops.copy_temp` closes it); the spans opened ahead that it never
    takes (it stopped early) are closed here, when it closes this
    generator (or drops it)."""
    ahead = files_ahead()
    window: deque[tuple[T, Opened, int]] = deque()  # item, span, bytes asked for ahead
    asked = 0
    it = iter(items)
    try:
        while True:
            while len(window) < max(1, ahead) and asked < READ_AHEAD_BYTES:
                try:
                    item = next(it)
                except StopIteration:
                    break
                try:
                    span: Opened = open_span(item)
                except (SquirrelError, OSError) as e:
                    span = e
                n = 0
                if ahead and isinstance(span, Span) and span.size <= READ_AHEAD_BYTES:
                    will_need(span)
                    n = span.size
                    asked += n
                window.append((item, span, n))
            if not window:
                return
            item, span, n = window.popleft()
            asked -= n
            yield item, span
    finally:
        for _, span, _ in window:
            if isinstance(span, Span):
                os.close(span.fd)


class FilesAhead:
    """The files of a folder that may be read, opened ahead in name order
    (`ids.open_to_read`) and their reading asked for; each is taken by name
    at its turn (`take`), and those passed over are closed. `close` closes
    the rest."""

    def __init__(self, folder: bytes, files: list[tuple[bytes, int]]) -> None:
        def open_file(f: tuple[bytes, int]) -> Span:
            return Span(ids.open_to_read(folder + b"/" + f[0]), 0, f[1])

        self._opened = spans_ahead(files, open_file)

    def take(self, name: bytes) -> int | None:
        """The descriptor of `name`, opened ahead, for the caller to read and
        close; None if it could not be opened ahead (the caller opens it and
        meets the error itself) or was not named ahead."""
        for (n, _), span in self._opened:
            if n == name:
                return span.fd if isinstance(span, Span) else None
            if isinstance(span, Span):
                os.close(span.fd)
        return None

    def close(self) -> None:
        self._opened.close()
