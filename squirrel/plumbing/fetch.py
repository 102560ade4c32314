"""The sender's content, fetched for the executor into verified temporary
files in `.squirrel/tmp/` (see `fsops`, "Writing files safely").

A run of writes from the sender is fetched ahead: a group of files is
copied (by the kernel where the content lies as is in a file) or streamed,
each verified against its id, and fsynced together on a few threads while
the next ones are written, so the disk writes while the sender is read and
the journal commits once for many files; the next files are opened, and
the disk asked to read them, before their turn (`readahead`). Each file is
still durable before the executor renames it into place. What fails while
fetching ahead is kept and reported by the action it belongs to, when its
turn comes.

Where the C part was built (`groups`), the next groups of small files
are then written on threads of their own while the executor renames the
group before into place: the system calls of one run beside the Python
of the other. The threads only write temporary files; what they wrote is
taken in (`_settle`) before any of it is used. The executor hands the
fetcher the writes of its next batch too, so that the threads go on
writing while a batch ends (its folders fsynced, the index committed)
and the next begins.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from functools import partial
from typing import TYPE_CHECKING, Protocol

from squirrel.errors import ChangedDuringOperation, SquirrelError
from squirrel.plumbing import faults, fsops, groups
from squirrel.plumbing.groups import Fetched
from squirrel.plumbing.index import Entry
from squirrel.plumbing.plan import Action
from squirrel.plumbing.progress import Meter
from squirrel.plumbing.readahead import spans_ahead

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

AHEAD_FILES = 256  # the sender's content fetched ahead into .squirrel/tmp: at most this many files
AHEAD_BYTES = 256 << 20  # and about this many bytes
SYNC_THREADS = 4  # large files fsynced at once while the next ones are written
LARGE_FILE = 1 << 20  # from this size a file fetched ahead is fsynced on its own
SMALL_GROUP = 64  # smaller files are made durable together, this many at a time
# Groups written at once on fetching threads, ahead of the executor. With
# the fetching threads also running ahead into the executor's next batch,
# two beat one on two cores: an apply of 10,000 small files took 1.35 s
# against 1.49 s (six alternating rounds), a push 1.31 against 1.58.
WRITERS = 2


def _group_of(acts: list[Action]) -> int:
    """How many of the first `acts` make a group (`groups.group_of`), of
    at most `AHEAD_FILES`."""
    sizes = [act.a.size for act in acts if act.a is not None]
    return groups.group_of(sizes, min(AHEAD_FILES, groups.group_files()), LARGE_FILE)


class ContentSource(Protocol):
    """Where the sender's content comes from (a mounted replica, a bundle).
    A source may also have `span(path, entry) -> fsops.Span | None`: where
    the content lies as is in a file, for the kernel to copy (see `span_of`),
    and `group_span(path, entry) -> groups.GroupSpan | None`: where a group
    of small files takes it from, opened at less cost (see
    `group_span_of`); `complete = True` when it can give the content of
    every version it describes (a mounted replica, unlike a bundle or the
    carrier); and `mismatch(path, entry) -> SquirrelError`, the error that
    content of its own not matching its id is (see `Fetcher.source_error`;
    without it, a file that changed while it was read). A source of
    content by id (a bundle, the carrier) has `has(oid) -> bool` and
    `waits: str`, why content it does not hold waits: the message of the
    ContentUnavailable its `chunks` raises, one sentence for every file
    (see `missing_content`)."""

    def chunks(self, path: bytes, entry: Entry) -> Iterable[bytes]: ...


def missing_content(source: ContentSource, path: bytes, entry: Entry) -> str | None:
    """Why `source` cannot give the content of `entry` (at the sender's
    `path`), or None when it can, as far as it can tell before reading:
    what a dry run reports as deferred."""
    holds: Callable[[bytes], bool] | None = getattr(source, "has", None)
    if holds is None or holds(entry.oid):
        return None
    waits: str = source.waits  # type: ignore[attr-defined]
    return waits


def span_of(source: ContentSource, path: bytes, entry: Entry) -> fsops.Span | None:
    """The file range holding the content, where the source can give one."""
    span: Callable[[bytes, Entry], fsops.Span | None] | None = getattr(source, "span", None)
    return span(path, entry) if span is not None else None


def group_span_of(source: ContentSource, path: bytes, entry: Entry) -> groups.GroupSpan | None:
    """Where the content lies for a group of small files (`groups`): as
    the source gives it for a group (`group_span`), else its span."""
    group_span: Callable[[bytes, Entry], groups.GroupSpan | None] | None = getattr(source, "group_span", None)
    return group_span(path, entry) if group_span is not None else span_of(source, path, entry)


class Fetcher:
    """Fetches A's content of WRITE actions from the source into `tmp_dir`,
    counting its bytes into `meter`, `streamed` (by path) and
    `bytes_from_source`."""

    def __init__(self, source: ContentSource, tmp_dir: str, meter: Meter) -> None:
        self.source = source
        self.tmp_dir = tmp_dir
        self.meter = meter
        self.streamed: dict[bytes, int] = {}  # path -> bytes of its new content counted so far
        self.bytes_from_source = 0
        self.prepared: dict[bytes, str] = {}  # path -> A's content, fetched before its turn
        self.failed: dict[bytes, SquirrelError | OSError] = {}  # path -> why fetching it ahead failed
        self._durable: dict[bytes, Future[None]] = {}  # path -> the fsync its prepared file waits for
        self._pool: ThreadPoolExecutor | None = None
        # The groups being written on the fetching threads (`_start`), oldest
        # first, the paths they hold, and those threads.
        self._groups: deque[tuple[list[Action], Future[list[Fetched]]]] = deque()
        self._in_flight: set[bytes] = set()
        self._writer: ThreadPoolExecutor | None = None
        self._writes = groups.Groups(tmp_dir)
        self._oids: set[bytes] = set()  # the content fetched ahead so far, for one path each

    def put(self, path: bytes, tmp: str) -> None:
        """A's content for `path`, durable already, waiting for its turn."""
        self.prepared[path] = tmp

    def take(self, path: bytes) -> str | None:
        """The durable temporary file prepared for `path`, if any: waits for
        its fsync (the caller renames it into place next), and raises what
        that fsync raised (the file is gone then)."""
        tmp = self.prepared.pop(path, None)
        durable = self._durable.pop(path, None)
        if durable is not None:
            durable.result()
        return tmp

    def waiting(self, path: bytes) -> bool:
        """Was `path` fetched ahead, or did fetching it fail?"""
        return path in self.prepared or path in self.failed

    def from_source(self, act: Action) -> str:
        """A's content streamed from the source into a durable, verified
        temporary file."""
        a = act.a
        assert a is not None
        try:
            return fsops.write_temp(self.tmp_dir, self.chunks(act), a.oid, a.size, a.mtime_ns, a.mode)
        except ChangedDuringOperation as e:
            raise self.source_error(act, e) from e

    def source_error(self, act: Action, e: SquirrelError | OSError) -> SquirrelError | OSError:
        """What failing to fetch `act`'s content from the source means: a
        mismatch with its id is what the source says it is (a damaged
        bundle, which no retry mends); anything else is `e` itself."""
        mismatch: Callable[[bytes, Entry], SquirrelError] | None = getattr(self.source, "mismatch", None)
        if mismatch is None or not isinstance(e, ChangedDuringOperation):
            return e
        assert act.a is not None
        return mismatch(act.src_path or act.path, act.a)

    def chunks(self, act: Action) -> Iterator[bytes]:
        assert act.a is not None
        return self.counted(self.source.chunks(act.src_path or act.path, act.a), act.path, True)

    def counted(self, chunks: Iterable[bytes], path: bytes, from_source: bool) -> Iterator[bytes]:
        """The content for `path` as it streams, block by block, into the
        progress (and, from the source, into the bytes copied)."""
        for chunk in self.meter.stream(chunks):
            n = len(chunk)
            self.streamed[path] = self.streamed.get(path, 0) + n
            if from_source:
                self.bytes_from_source += n
            yield chunk

    def ahead(self, candidates: Iterable[Action]) -> None:
        """Fetch the content of the next writes that come from the source
        (`candidates`, in the order they will be written; the first is
        wanted now) into verified temporary files, at most `AHEAD_FILES` or
        about `AHEAD_BYTES`, and make them durable together; then start
        writing the next small ones on the fetching thread (see the
        module's docstring)."""
        it = iter(candidates)
        first = next(it, None)
        if first is None:
            return
        self._settle(first.path)  # a group on a fetching thread may hold the first
        if not self.waiting(first.path):
            assert first.a is not None
            self._oids.discard(first.a.oid)  # fetched ahead for a path that failed before its turn
            wanted = self._wanted(itertools.chain([first], it), AHEAD_FILES, AHEAD_BYTES)
            # The small files first, in groups, in this thread; what a group
            # did not reach (it stopped early), and the large files, one by one.
            while self._writes.usable and (n := _group_of(wanted)):
                group, wanted = wanted[:n], wanted[n:]
                self._take_in(group, self._write_group(group))
                left = [act for act in group if not self.waiting(act.path)]
                if left:
                    wanted = left + wanted
                    break
            self._fetch(wanted)
        while self._writes.usable and len(self._groups) < WRITERS:
            group = self._wanted(it, min(AHEAD_FILES, groups.group_files()), groups.GROUP_BYTES, LARGE_FILE)
            if not group:
                break
            self._start(group)

    def _wanted(self, candidates: Iterator[Action], files: int, size: int, below: int | None = None) -> list[Action]:
        """The next candidates to fetch, up to `files` or about `size` bytes
        (and with `below`, up to the first file of that size or larger):
        those not fetched already, and one of each content: a later write
        of content fetched ahead for another path, in this call or an
        earlier one, is copied from that one, locally, once it is in place
        (if it never is, that write's turn fetches it: `ahead`)."""
        wanted: list[Action] = []
        total = 0
        for act in candidates:
            assert act.a is not None
            if below is not None and act.a.size >= below:
                break
            if self.waiting(act.path) or act.path in self._in_flight or act.a.oid in self._oids:
                continue
            self._oids.add(act.a.oid)
            wanted.append(act)
            total += act.a.size
            if len(wanted) >= files or total >= size:
                break
        return wanted

    def _fetch(self, wanted: list[Action]) -> None:
        """Fetch `wanted` in this thread, one file at a time."""
        if not wanted:
            return
        # A large file is fsynced on its own, on a thread, while the next
        # is written; the small ones in groups (one commit for each). Their
        # files wait for their fsync only when their turn comes (`take`):
        # the disk writes a group while the next is written and the first
        # are renamed into place.
        if self._pool is None:
            # Imported on first use: concurrent.futures brings logging and
            # traceback with it, 6-7 ms of every visit that has nothing to do.
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(SYNC_THREADS, thread_name_prefix="sq-fsync")
        pool = self._pool
        small: list[tuple[Action, str]] = []

        def flush(files: list[tuple[Action, str]], size: int) -> None:
            done = pool.submit(fsops.fsync_temps, [tmp for _, tmp in files], size)
            for act, tmp in files:
                self.prepared[act.path] = tmp
                self._durable[act.path] = done

        # The next files are opened and being read while this one is copied
        # (readahead); the first that fails ends the run, as it would alone.
        with closing(spans_ahead(wanted, self._span)) as opened:
            for act, span in opened:
                a = act.a
                assert a is not None
                try:
                    if isinstance(span, (SquirrelError, OSError)):
                        raise span
                    tmp = self._copy(act, a, span) if span is not None else None
                    if tmp is None:
                        tmp = fsops.write_temp(
                            self.tmp_dir, self.chunks(act), a.oid, a.size, a.mtime_ns, a.mode, durable=False
                        )
                except (SquirrelError, OSError) as e:
                    self.failed[act.path] = self.source_error(act, e)
                    break
                try:
                    faults.point("fsync")
                except OSError as e:
                    os.unlink(tmp)
                    self.failed[act.path] = fsops.write_error(e, a.size)
                    break
                if a.size >= LARGE_FILE:
                    flush([(act, tmp)], a.size)
                    continue
                small.append((act, tmp))
                if len(small) >= SMALL_GROUP:
                    flush(small, sum(act.a.size for act, _ in small if act.a is not None))
                    small = []
        if small:
            flush(small, sum(act.a.size for act, _ in small if act.a is not None))
        self._release(wanted)  # after a failure, the rest waits for its turn

    def _span(self, act: Action) -> fsops.Span | None:
        assert act.a is not None
        return span_of(self.source, act.src_path or act.path, act.a)

    def _copy(self, act: Action, a: Entry, span: fsops.Span) -> str | None:
        """A's content copied by the kernel from where the source holds it
        as is (`span`), and verified (fsops.copy_temp); None where it cannot be."""
        return fsops.copy_temp(
            self.tmp_dir, span, a.oid, a.size, a.mtime_ns, a.mode, durable=False, progress=self._counter(act.path)
        )

    def _counter(self, path: bytes) -> Callable[[int], None]:
        """Counts bytes copied from the source for `path`, as `counted` does."""

        def count(n: int) -> None:
            self.streamed[path] = self.streamed.get(path, 0) + n
            self.bytes_from_source += n
            self.meter.add_bytes(n)

        return count

    def _start(self, wanted: list[Action]) -> None:
        """Start writing the small files `wanted` on a fetching thread."""
        if self._writer is None:
            from concurrent.futures import ThreadPoolExecutor  # see `ahead`

            self._writer = ThreadPoolExecutor(WRITERS, thread_name_prefix="sq-fetch")
        self._groups.append((wanted, self._writer.submit(self._write_group, wanted)))
        self._in_flight.update(act.path for act in wanted)

    def _settle(self, path: bytes | None = None) -> None:
        """Take in what the fetching threads wrote, oldest group first, each
        once it is done, until the group holding `path` is (None: every
        group): each file prepared for its path, or why it failed kept for
        its turn."""
        while self._groups and (path is None or path in self._in_flight):
            acts, future = self._groups[0]
            results = future.result()  # interrupted, the group stays for `discard` to take in
            self._take_in(acts, results)
            self._groups.popleft()
            self._in_flight.difference_update(act.path for act in acts)

    def _take_in(self, acts: list[Action], results: list[Fetched]) -> None:
        """What `_write_group` wrote for `acts`, taken in. The files it did
        not reach are fetched another way: their content may be fetched
        ahead again (`_release`)."""
        self._release(acts[len(results) :])
        for act, got in zip(acts, results, strict=False):  # the group may have ended early
            assert act.a is not None
            if self.waiting(act.path):  # fetched meanwhile, in its turn (content for a conflict)
                if isinstance(got, str):
                    os.unlink(got)
            elif isinstance(got, str):
                self.prepared[act.path] = got
                self._counter(act.path)(act.a.size)
            else:
                self.failed[act.path] = got

    def _release(self, acts: Iterable[Action]) -> None:
        """Forget that the content of `acts` is fetched ahead (`_wanted`),
        for those neither fetched nor failed: it was not."""
        for act in acts:
            if act.a is not None and not self.waiting(act.path):
                self._oids.discard(act.a.oid)

    def _write_group(self, acts: list[Action]) -> list[Fetched]:
        """The content of `acts` (small files, in order) copied from the
        source's spans into durable, verified temporary files by one C call
        (`groups.Groups.write`): for each file as far as the group went,
        its temporary file or why it failed. A file the group did not
        reach is fetched in its turn."""
        return self._writes.write([self._small(act) for act in acts])

    def _small(self, act: Action) -> groups.Small:
        a = act.a
        assert a is not None
        return groups.Small(
            a.oid,
            a.size,
            a.mode,
            a.mtime_ns,
            partial(group_span_of, self.source, act.src_path or act.path, a),
            partial(self.source_error, act),
        )

    def discard(self) -> None:
        """Remove what was fetched and not taken (content fetched for a
        conflict that then failed, or for a sync that stopped), once its
        fsync is over."""
        unexpected: BaseException | None = None  # what a fetching thread raised: raised once all is removed
        while self._groups:
            acts, future = self._groups.popleft()
            self._in_flight.difference_update(act.path for act in acts)
            try:
                self._take_in(acts, future.result())
            except BaseException as e:
                unexpected = unexpected or e
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for tmp in self.prepared.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.prepared.clear()
        self._durable.clear()
        self._writes.remove_folders()
        if unexpected is not None:
            raise unexpected
