"""A content-addressed object store: `objects/<2 hex>/<64 hex>` files.

The carrier keeps content here for versions some drive still lacks. An object
is written to `tmp/` and verified against its id (hashed as it is written,
or, where the kernel copied it from a drive's file, read back once and
hashed), fsynced, and renamed into place, so an object that exists under
its name is complete and correct.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from squirrel.errors import SquirrelError
from squirrel.plumbing import faults, fsops, groups, place
from squirrel.plumbing.readahead import spans_ahead

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

BLOCK = 1 << 20
TOGETHER_FILES = 256  # objects made durable together: at most this many
TOGETHER_BYTES = 256 << 20  # and about this many bytes
LARGE_OBJECT = 1 << 20  # from this size an object is fsynced on its own, on a thread
SYNC_THREADS = 4
UNLINK_GROUP = 64  # objects a thread deletes at a time
UNLINK_THREADS = 16  # unlinks wait for the file system more than for the processor
SMALL_GROUP = 64  # small objects are made durable together, this many at a time
# Groups of small objects written at once, on threads, while the one
# before is renamed into place: a take of 10,000 small files took 1.30 s
# with two and 1.28 with three, against 1.67 with one and 1.53 in Python,
# one at a time (medians of four or five alternating rounds).
WRITERS = 2


@dataclass(frozen=True)
class Wanted:
    """An object for `put_many` to store: its id and size, a function giving
    its content, and, where the content lies as is in a file, a function
    giving that file range (`span`), for the kernel to copy, and, for a
    group of small files, where its C call takes it from (`group_span`: a
    file it opens itself, `fsops.FileAt`, or a span; without it, `span`);
    `progress` hears the bytes the kernel copies."""

    oid: bytes
    size: int
    content: Callable[[], Iterable[bytes]]
    span: Callable[[], fsops.Span | None] | None = None
    progress: Callable[[int], None] | None = None
    group_span: Callable[[], groups.GroupSpan | None] | None = None


def _span(item: Wanted) -> fsops.Span | None:
    return item.span() if item.span is not None else None


def _group_span(item: Wanted) -> groups.GroupSpan | None:
    return item.group_span() if item.group_span is not None else _span(item)


def _same(e: SquirrelError | OSError) -> SquirrelError | OSError:
    return e


def _small(item: Wanted) -> groups.Small:
    """The object as a file of a group (`groups.Small`): an object keeps
    the time it was written."""
    return groups.Small(item.oid, item.size, 0o644, None, partial(_group_span, item), _same)


class ObjectStore:
    def __init__(self, directory: str, tmp_dir: str) -> None:
        self.directory = directory
        self.tmp_dir = tmp_dir
        self._held: dict[bytes, int | None] | None = None  # id -> size (None: not asked yet); see `has`
        os.makedirs(directory, exist_ok=True)
        os.makedirs(tmp_dir, exist_ok=True)

    def path(self, oid: bytes) -> str:
        h = oid.hex()
        return os.path.join(self.directory, h[:2], h)

    def has(self, oid: bytes) -> bool:
        """Is the object stored? Its folder is listed once, on first use, and
        the list follows this store's own puts and deletes: the carrier's
        lock keeps every other command out meanwhile. A stat for each
        question took longer than the copy of a small object: most ask for
        an object not yet stored, a name searched for among thousands."""
        return oid in self._listed()

    def _listed(self) -> dict[bytes, int | None]:
        if self._held is None:
            self._held = {oid: None for oid, _ in self._names()}
        return self._held

    def put(self, oid: bytes, size: int, chunks: Iterable[bytes]) -> None:
        """Store verified content (the caller's chunks must hash to `oid`)."""
        if self.has(oid):
            return
        tmp = fsops.write_temp(self.tmp_dir, chunks, oid, size, None, 0o644)
        self._place(oid, tmp, size)

    def put_many(self, wanted: list[Wanted]) -> Iterator[tuple[bytes, SquirrelError | OSError | None]]:
        """Store verified content for many objects: (oid, None) for each
        stored (or already held), (oid, error) for each that failed, each
        once, as they are done. No object is renamed to its name before it
        is durable, and many are made durable together (`put` fsyncs each
        alone). Small objects are written in groups by the C part
        (`groups`), where it was built, the next group on a thread while
        the one before is renamed into place; the others in this thread,
        in groups of their own: a large object is fsynced on a thread
        while the next is written, the small ones together (`SMALL_GROUP`
        at a time, while the next are written)."""
        todo: dict[bytes, Wanted] = {}
        held: set[bytes] = set()
        for item in wanted:
            if item.oid in todo or item.oid in held:
                continue
            if self.has(item.oid):
                held.add(item.oid)
                yield item.oid, None
            else:
                todo[item.oid] = item
        rest = list(todo.values())
        small = [item for item in rest if item.size < LARGE_OBJECT] if groups.available() else []
        if small:
            rest = [item for item in rest if item.size >= LARGE_OBJECT]
            rest = (yield from self._put_grouped(small)) + rest
        group: list[Wanted] = []
        size = 0
        for item in rest:
            group.append(item)
            size += item.size
            if len(group) >= TOGETHER_FILES or size >= TOGETHER_BYTES:
                yield from self._put_group(group)
                group, size = [], 0
        yield from self._put_group(group)

    def _put_grouped(
        self, small: list[Wanted]
    ) -> Generator[tuple[bytes, SquirrelError | OSError | None], None, list[Wanted]]:
        """`put_many` of small objects, in groups written by the C part:
        returns those no group reached (the file system cannot copy them,
        or their content does not lie in a file), for the caller to write."""
        writes = groups.Groups(self.tmp_dir)
        limit = groups.group_files()
        chunks: deque[list[Wanted]] = deque()
        at = 0
        while at < len(small):
            n = groups.group_of([item.size for item in small[at : at + limit]], limit, LARGE_OBJECT)
            chunks.append(small[at : at + n])
            at += n
        left: list[Wanted] = []
        pending: deque[tuple[list[Wanted], Future[list[groups.Fetched]]]] = deque()
        pool = _threads(WRITERS)

        def start() -> None:
            while chunks and writes.usable and len(pending) < WRITERS:
                chunk = chunks.popleft()
                pending.append((chunk, pool.submit(writes.write, [_small(item) for item in chunk])))

        taken: list[str] = []  # the temporary files of the group being placed (those placed are gone)
        try:
            start()
            while pending:
                chunk, future = pending[0]
                results = future.result()
                taken = [got for got in results if isinstance(got, str)]
                pending.popleft()
                start()  # the next group is written while this one is renamed into place
                # The group may have ended early: the rest of the chunk is left.
                yield from zip((item.oid for item in chunk), self._placed(chunk, results), strict=False)
                left.extend(chunk[len(results) :])
        finally:
            for _, future in pending:  # closed early, or a group failed unexpectedly: its files go
                with contextlib.suppress(Exception):  # raised already, or raised by the first
                    taken += [got for got in future.result() if isinstance(got, str)]
            for name in taken:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)
            pool.shutdown()
            writes.remove_folders()
        return left + list(itertools.chain.from_iterable(chunks))

    def _placed(self, chunk: list[Wanted], results: list[groups.Fetched]) -> list[SquirrelError | OSError | None]:
        """Each temporary file of a group (`results`, for the first objects
        of `chunk`) renamed to its object's name, all in one call
        (`place.rename_each`): None for each, or why it was not (its file is
        removed then); a file the group could not write stays its error."""
        out: list[SquirrelError | OSError | None] = []
        moves: dict[int, tuple[bytes, bytes]] = {}  # at in out -> (temporary file, object's name)
        for item, got in zip(chunk, results, strict=False):
            out.append(got if not isinstance(got, str) else None)
            if isinstance(got, str):
                try:
                    faults.point("rename")
                except OSError as e:
                    fsops.remove_temp(got)
                    out[-1] = e
                else:
                    moves[len(out) - 1] = (os.fsencode(got), os.fsencode(self.path(item.oid)))
        for at, err in zip(moves, place.rename_each(list(moves.values())), strict=True):
            src, dest = moves[at]
            if err == errno.ENOENT:  # its folder (of 256) is made on first use
                err = _in_new_folder(src, dest)
            item = chunk[at]
            if err:
                fsops.remove_temp(src)
                out[at] = OSError(err, os.strerror(err), src, None, dest)
                continue
            if self._held is not None:
                self._held[item.oid] = item.size
            if item.progress is not None:
                item.progress(item.size)
        return out

    def _put_group(self, group: list[Wanted]) -> Iterator[tuple[bytes, SquirrelError | OSError | None]]:
        failed: dict[bytes, SquirrelError | OSError] = {}
        sizes = {item.oid: item.size for item in group}
        synced: list[tuple[list[tuple[bytes, str]], Future[None]]] = []
        small: list[tuple[bytes, str]] = []
        small_bytes = 0
        todo: dict[bytes, Wanted] = {}
        for item in group:
            if item.oid not in todo and not self.has(item.oid):
                todo[item.oid] = item
        # The next objects' files are opened and being read while this one
        # is copied (readahead).
        with _threads(SYNC_THREADS) as pool, closing(spans_ahead(todo.values(), _span)) as opened:
            for item, span in opened:
                oid, size = item.oid, item.size
                try:
                    if isinstance(span, (SquirrelError, OSError)):
                        raise span
                    tmp = self._copied(item, span) if span is not None else None
                    if tmp is None:
                        tmp = fsops.write_temp(self.tmp_dir, item.content(), oid, size, None, 0o644, durable=False)
                except (SquirrelError, OSError) as e:
                    failed[oid] = e
                    continue
                try:
                    faults.point("fsync")
                except OSError as e:
                    os.unlink(tmp)
                    failed[oid] = fsops.write_error(e, size)
                    continue
                if size >= LARGE_OBJECT:
                    synced.append(([(oid, tmp)], pool.submit(fsops.fsync_temps, [tmp], size)))
                else:
                    small.append((oid, tmp))
                    small_bytes += size
                    if len(small) >= SMALL_GROUP:  # fsynced while the next are written
                        synced.append((small, pool.submit(fsops.fsync_temps, [t for _, t in small], small_bytes)))
                        small, small_bytes = [], 0
            if small:
                synced.append((small, pool.submit(fsops.fsync_temps, [tmp for _, tmp in small], small_bytes)))
            for objects, done in synced:
                try:
                    done.result()
                except (SquirrelError, OSError) as e:
                    for oid, _ in objects:
                        failed[oid] = e
                    continue
                for oid, tmp in objects:
                    try:
                        self._place(oid, tmp, sizes[oid])
                    except OSError as e:
                        failed[oid] = e
        for item in group:
            yield item.oid, failed.get(item.oid)

    def _copied(self, item: Wanted, span: fsops.Span) -> str | None:
        """The object copied by the kernel from the file that holds it
        (`span`) and read back to verify it (fsops.copy_temp), not yet
        durable; None where the file systems cannot copy."""
        return fsops.copy_temp(self.tmp_dir, span, item.oid, item.size, None, 0o644, False, item.progress)

    def _place(self, oid: bytes, tmp: str, size: int) -> None:  # see also `_placed`, for a group
        dest = self.path(oid)
        faults.point("rename")
        try:
            os.replace(tmp, dest)
        except FileNotFoundError:  # its folder (of 256) is made on first use
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.replace(tmp, dest)
        if self._held is not None:
            self._held[oid] = size

    def chunks(self, oid: bytes) -> Iterator[bytes]:
        with open(self.path(oid), "rb") as f:
            while True:
                block = f.read(BLOCK)
                if not block:
                    return
                yield block

    def delete_many(self, oids: Iterable[bytes]) -> tuple[int, int]:
        """Delete these objects; returns (how many were there, their bytes).
        They are unlinked in the order of their inode numbers
        (`_inode_order`), on `UNLINK_THREADS` threads, `UNLINK_GROUP` at a
        time: each waits for the file system more than it works, and they
        do not wait for one another (a thread's task for each object took
        longer to hand over than its unlink). 100,000 small files took 7 s
        to unlink on one thread, 3.1-3.6 s on 4 and 1.9-2.4 s on 16, where
        the kernel's own work (2.4 s of processor time) on 2 cores is the
        floor."""
        count = freed = 0
        doomed: list[bytes] = []
        for oid in oids:
            size = self._held.pop(oid, None) if self._held is not None else None
            if size is None:
                try:
                    size = os.path.getsize(self.path(oid))
                except FileNotFoundError:
                    continue
            doomed.append(oid)
            count += 1
            freed += size

        def unlink(group: list[str]) -> None:
            for path in group:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass

        done: list[Future[None]] = []
        pool: ThreadPoolExecutor | None = None  # started with the first group: most visits drop nothing
        try:
            doomed = self._inode_order(doomed)
            for start in range(0, len(doomed), UNLINK_GROUP):
                group = []
                for oid in doomed[start : start + UNLINK_GROUP]:
                    faults.point("unlink")
                    group.append(self.path(oid))
                pool = pool or _threads(UNLINK_THREADS)
                done.append(pool.submit(unlink, group))
        finally:
            if pool is not None:
                pool.shutdown()  # every unlink handed over is waited for
        for d in done:
            d.result()  # an unlink that failed fails the call
        return count, freed

    def _inode_order(self, oids: list[bytes]) -> list[bytes]:
        """These objects in the order of their files' inode numbers, read
        from their folders' listings (one listing per folder, no stat per
        object); one whose file is not listed comes first. Files written
        one after another have neighbouring inodes and blocks: freed in
        that order, the file system writes each block of its tables once
        for many files and frees neighbouring extents together. 100,000
        objects took 10.7-16.9 s to unlink in this order (median 12.7 s of
        five runs) against 15.4-19.2 s (median 15.6 s) in the order of
        their ids, on 16 threads, on an ext4 mounted with `discard`."""
        by_folder: dict[int, list[bytes]] = {}
        for oid in oids:
            by_folder.setdefault(oid[0], []).append(oid)
        ordered: list[tuple[int, bytes]] = []
        for first, members in by_folder.items():
            try:
                with os.scandir(os.path.join(self.directory, f"{first:02x}")) as listing:
                    inodes = {e.name: e.inode() for e in listing}
            except OSError:
                inodes = {}
            ordered += ((inodes.get(oid.hex(), 0), oid) for oid in members)
        ordered.sort()
        return [oid for _, oid in ordered]

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        """(object id, size) of every stored object; each size is asked of
        the file system once (a visit asks for the store's usage three
        times)."""
        held = self._listed()
        for oid, size in list(held.items()):
            if size is None:
                try:
                    size = held[oid] = os.path.getsize(self.path(oid))
                except FileNotFoundError:
                    del held[oid]
                    continue
            yield oid, size

    def _names(self) -> Iterator[tuple[bytes, str]]:
        """(object id, path) of every file named as an object."""
        try:
            subdirs = os.listdir(self.directory)
        except FileNotFoundError:
            return
        for sub in subdirs:
            d = os.path.join(self.directory, sub)
            if len(sub) != 2 or not os.path.isdir(d):
                continue
            for name in os.listdir(d):
                try:
                    oid = bytes.fromhex(name)
                except ValueError:
                    continue
                if len(oid) == 32:
                    yield oid, os.path.join(d, name)

    def usage(self) -> int:
        return sum(size for _, size in self)


def _threads(n: int) -> ThreadPoolExecutor:
    """A pool of `n` threads. concurrent.futures is imported on first use:
    it brings logging and traceback with it, 6-7 ms of every visit that
    has nothing to store or drop."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(n)


def _in_new_folder(src: bytes, dest: bytes) -> int:
    """`src` renamed to `dest` once the folder of `dest` is made: 0, or
    the errno of the failure."""
    try:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.replace(src, dest)
    except OSError as e:
        return e.errno or errno.EIO
    return 0
