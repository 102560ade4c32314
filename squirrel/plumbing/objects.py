"""A content-addressed object store: small objects in packs, the others
as `objects/<2 hex>/<64 hex>` files.

The carrier keeps content here for versions some drive still lacks. Every
object is verified against its id on the way in: a large one hashed as it
is written (or, where the kernel copied it from a drive's file, read back
once and hashed), fsynced and renamed into place, so that an object that
exists under its name is complete and correct; small ones read, hashed
and appended to a pack (`packs`), which is made durable and whose index
is renamed into place last, so that an object a pack's index names is
complete and correct too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING

import blake3

from squirrel.errors import ChangedDuringOperation, CorruptCarrier, SquirrelError
from squirrel.plumbing import faults, fsops, groups, ids, packs
from squirrel.plumbing.readahead import spans_ahead

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

BLOCK = 1 << 20
# Objects a caller hands to `put_many` at once: at most this many (the small
# ones of a call go into one pack, or more past `PACK_BYTES`) and about this
# many bytes (the large ones are made durable together).
TOGETHER_FILES = 4096
TOGETHER_BYTES = 256 << 20
LARGE_OBJECT = 1 << 20  # from this size an object is a file of its own, fsynced on a thread
SYNC_THREADS = 4
UNLINK_GROUP = 64  # objects a thread deletes at a time
UNLINK_THREADS = 16  # unlinks wait for the file system more than for the processor
PACK_BYTES = 64 << 20  # a pack is closed once it holds this many bytes: dropped whole, or rewritten
PACKS = "packs"  # the packs' folder, in the objects' folder


@dataclass(frozen=True)
class Wanted:
    """An object for `put_many` to store: its id and size, a function giving
    its content, and, where the content lies as is in a file, a function
    giving that file range (`span`), for the kernel to copy or for a pack
    to read; `progress` hears the bytes copied or read."""

    oid: bytes
    size: int
    content: Callable[[], Iterable[bytes]]
    span: Callable[[], fsops.Span | None] | None = None
    progress: Callable[[int], None] | None = None


def _span(item: Wanted) -> fsops.Span | None:
    return item.span() if item.span is not None else None


Result = tuple[bytes, SquirrelError | OSError | None]  # an object's id, and why it was not stored (None: it was)


class ObjectStore:
    def __init__(self, directory: str, tmp_dir: str, before_pack: Callable[[], None] | None = None) -> None:
        """`before_pack` is called before the first pack this store
        writes (the carrier records that it holds packs)."""
        self.directory = directory
        self.tmp_dir = tmp_dir
        self.packs_dir = os.path.join(directory, PACKS)
        self._before_pack = before_pack
        self._held: dict[bytes, int | None] | None = None  # id -> size (None: not asked yet); see `has`
        self._packs: dict[str, packs.Pack] = {}  # name -> the pack, read with `_held`
        self._packed: dict[bytes, tuple[packs.Pack, int, int]] = {}  # id -> the pack serving it, offset, size
        self._unsound: list[str] = []  # packs whose index is damaged, or files of no whole pack
        self._tidied = False
        os.makedirs(directory, exist_ok=True)
        os.makedirs(tmp_dir, exist_ok=True)

    def path(self, oid: bytes) -> str:
        """Where the object is stored as a file of its own."""
        h = oid.hex()
        return os.path.join(self.directory, h[:2], h)

    def has(self, oid: bytes) -> bool:
        """Is the object stored? Its folder and the packs' indexes are read
        once, on first use, and what they hold follows this store's own puts
        and deletes: the carrier's lock keeps every other command out
        meanwhile. A stat for each question took longer than the copy of a
        small object: most ask for an object not yet stored, a name searched
        for among thousands."""
        return oid in self._listed() or oid in self._packed

    def _listed(self) -> dict[bytes, int | None]:
        if self._held is None:
            self._held = {oid: None for oid, _ in self._names()}
            self._read_packs()
        return self._held

    def _read_packs(self) -> None:
        """Every whole pack's index read; an object in two packs (a pack
        rewritten by a command killed before it removed the old one) is
        served by the first read. A damaged index (or a pack missing, of
        another size, or without a pack's header) leaves its pack out, for
        `_tidy` to remove: the carrier then lacks that content, which a
        later visit brings again, as for a version that did not fit."""
        whole, stray = packs.names(self.packs_dir)
        self._unsound = [os.path.join(self.packs_dir, name) for name in stray]
        for name in whole:
            try:  # an index that cannot be read (an I/O error) stops the command: nothing is removed
                pack = packs.read(self.packs_dir, name)
            except FileNotFoundError:  # removed since the folder was listed (by a command that writes)
                continue
            except CorruptCarrier:
                self._unsound += [os.path.join(self.packs_dir, name + ext) for ext in (".idx", ".pack")]
                continue
            self._packs[name] = pack
            for oid, offset, size in pack.entries:
                if oid not in self._packed:
                    self._serve(pack, oid, offset, size)

    def _serve(self, pack: packs.Pack, oid: bytes, offset: int, size: int) -> None:
        self._packed[oid] = (pack, offset, size)
        pack.live += 1
        pack.live_bytes += size

    def _tidy(self) -> None:
        """Remove what no whole pack serves: files of a pack whose index was
        never written or is damaged, and packs none of whose objects are
        served from them. Only a command that writes (under the carrier's
        lock) calls this, once."""
        if self._tidied:
            return
        self._tidied = True
        self._listed()
        for name in self._unsound:
            faults.point("unlink")
            try:
                os.unlink(name)
            except (FileNotFoundError, IsADirectoryError):  # a folder made there by hand is left alone
                pass
        self._unsound = []
        for pack in [p for p in self._packs.values() if not p.live]:
            self._drop_pack(pack)

    def put_many(self, wanted: list[Wanted]) -> Iterator[Result]:
        """Store verified content for many objects: (oid, None) for each
        stored (or already held), (oid, error) for each that failed, each
        once, as they are done. No object is renamed to its name, or named
        by a pack's index, before it is durable. Small objects go into
        packs (`_put_packed`); the others are written in this thread, in
        groups made durable together, each large one fsynced on a thread
        while the next is written."""
        self._tidy()
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
        yield from self._put_packed([item for item in todo.values() if item.size < LARGE_OBJECT])
        group: list[Wanted] = []
        size = 0
        for item in todo.values():
            if item.size < LARGE_OBJECT:
                continue
            group.append(item)
            size += item.size
            if len(group) >= TOGETHER_FILES or size >= TOGETHER_BYTES:
                yield from self._put_group(group)
                group, size = [], 0
        yield from self._put_group(group)

    def _put_packed(self, small: list[Wanted]) -> Iterator[Result]:
        """Small objects read (the next files opened and being read ahead),
        verified and appended to a pack of up to `PACK_BYTES`; each is
        stored once its pack is committed, on a thread while the next pack
        is filled (the pack's fsync took 2.5 s of a take of 100,000 small
        files, in this thread). One that cannot be read, or does not match
        its id, fails alone, at once; a write of the pack that fails (a
        full disk) fails every object in it, and the next ones go into a
        new pack."""
        writer: packs.Writer | None = None
        written: list[Wanted] = []
        committing: _Committing | None = None
        pool: ThreadPoolExecutor | None = None
        try:
            with closing(spans_ahead(small, _span)) as opened:
                for item, span in opened:
                    try:
                        data = _verified(item, span)
                    except (SquirrelError, OSError) as e:
                        yield item.oid, e
                        continue
                    written.append(item)
                    try:
                        if writer is None:
                            if self._before_pack is not None and not self._packs and committing is None:
                                self._before_pack()
                            writer = packs.Writer(self.tmp_dir)
                        writer.add(item.oid, data)
                    except OSError as e:
                        error = fsops.write_error(e, writer.size if writer is not None else item.size)
                        if writer is not None:
                            writer.discard()
                            writer = None
                        for failed in written:
                            yield failed.oid, error
                        written = []
                        continue
                    if writer.size >= PACK_BYTES:
                        if committing is not None:
                            yield from self._committed(committing)
                        pool = pool or _threads(1)
                        committing = _Committing(pool.submit(writer.commit, self.packs_dir), writer, written)
                        writer, written = None, []
            if committing is not None:
                yield from self._committed(committing)
                committing = None
            if writer is not None:
                last, writer = writer, None
                yield from self._committed(_Committing(None, last, written))
        finally:
            if committing is not None:  # closed early, or an error of sq itself: what it committed is stored
                for _ in self._committed(committing):
                    pass
            if writer is not None:
                writer.discard()
            if pool is not None:
                pool.shutdown()

    def _committed(self, committing: _Committing) -> Iterator[Result]:
        """The results of a pack's objects once it is committed (on its
        thread, or here where `done` is None)."""
        writer, written = committing.writer, committing.written
        try:
            pack = committing.done.result() if committing.done is not None else writer.commit(self.packs_dir)
        except OSError as e:
            writer.discard()
            error = fsops.write_error(e, writer.size)
            for item in written:
                yield item.oid, error
            return
        self._packs[pack.name] = pack
        for oid, offset, size in pack.entries:
            self._packed[oid] = (pack, offset, size)
        for item in written:
            yield item.oid, None

    def _put_group(self, group: list[Wanted]) -> Iterator[Result]:
        """Large objects, each a file of its own: copied by the kernel where
        it can (or written from their content), each fsynced on a thread
        while the next is written, renamed into place once durable."""
        failed: dict[bytes, SquirrelError | OSError] = {}
        sizes = {item.oid: item.size for item in group}
        synced: list[tuple[list[tuple[bytes, str]], Future[None]]] = []
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
                synced.append(([(oid, tmp)], pool.submit(fsops.fsync_temps, [tmp], size)))
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

    def _place(self, oid: bytes, tmp: str, size: int) -> None:
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
        """The object's content, in blocks of at most `BLOCK` bytes."""
        self._listed()
        if oid in self._packed:
            pack, offset, size = self._packed[oid]
            yield from packs.chunks(pack, offset, size, BLOCK)
            return
        with open(self.path(oid), "rb") as f:
            while True:
                block = f.read(BLOCK)
                if not block:
                    return
                yield block

    def size(self, oid: bytes) -> int:
        """The size of a stored object."""
        self._listed()
        where = self._packed.get(oid)
        return where[2] if where is not None else os.path.getsize(self.path(oid))

    def span(self, oid: bytes) -> fsops.Span | None:
        """The object as a range of a file, on a descriptor of its own (the
        caller closes it); None where it is not stored."""
        self._listed()
        where = self._packed.get(oid)
        try:
            if where is not None:
                pack, offset, size = where
                return fsops.Span(os.open(pack.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)), offset, size)
            if oid in self._listed():
                fd = os.open(self.path(oid), os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                return fsops.Span(fd, 0, os.fstat(fd).st_size)
        except FileNotFoundError:  # removed by hand since the store was listed
            pass
        return None

    def group_span(self, oid: bytes, size: int) -> groups.GroupSpan | None:
        """Where a group's C call takes the object from: a range of its pack,
        read at its offsets from the descriptor the store keeps open, or
        its own file, of `size` bytes; None where it is not stored."""
        self._listed()
        where = self._packed.get(oid)
        if where is not None:
            pack, offset, size = where
            return fsops.SharedSpan(pack.fd(), offset, size)
        if oid in self._listed():
            return fsops.FileAt(os.fsencode(self.path(oid)), size, None)
        return None

    def hash_of(self, oid: bytes, progress: Callable[[int], None]) -> bytes:
        """The blake3 hash of the object's stored bytes (`progress` hears
        each block read): what `sq verify` compares with its id."""
        self._listed()
        if oid not in self._packed:
            return ids.hash_file(self.path(oid), progress)[0]
        h = blake3.blake3()
        for block in self.chunks(oid):
            h.update(block)
            progress(len(block))
        return h.digest()

    def close(self) -> None:
        """Close the packs this store opened."""
        for pack in self._packs.values():
            pack.close()

    def delete_many(self, oids: Iterable[bytes]) -> tuple[int, int]:
        """Delete these objects; returns (how many were there, the bytes
        freed). An object in a pack is no longer served from it: a pack
        that serves none any more is deleted, one that serves less than
        half of its bytes is written again with those it serves
        (`_rewrite`). Objects of their own are unlinked in the order of
        their inode numbers (`_inode_order`), on `UNLINK_THREADS` threads,
        `UNLINK_GROUP` at a time: each waits for the file system more than
        it works, and they do not wait for one another (a thread's task for
        each object took longer to hand over than its unlink). 100,000
        small files took 7 s to unlink on one thread, 3.1-3.6 s on 4 and
        1.9-2.4 s on 16, where the kernel's own work (2.4 s of processor
        time) on 2 cores is the floor; as one pack, well under a second."""
        self._tidy()
        held = self._listed()
        count = freed = 0
        doomed: list[bytes] = []
        touched: dict[str, packs.Pack] = {}
        for oid in oids:
            where = self._packed.pop(oid, None)
            if where is not None:
                pack = where[0]
                pack.live -= 1
                pack.live_bytes -= where[2]
                touched[pack.name] = pack
                count += 1
                continue
            if oid not in held:
                continue
            size = held.pop(oid)
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
        for pack in touched.values():
            if not pack.live:
                freed += self._drop_pack(pack)
            elif pack.rewritten_at(pack.live_bytes):
                freed += self._rewrite(pack)
        return count, freed

    def would_free(self, oids: Iterable[bytes]) -> int:
        """The bytes `delete_many(oids)` would free, nothing deleted (what
        a dry run tells)."""
        held = self._listed()
        freed = 0
        left: dict[str, tuple[int, int]] = {}  # pack -> what it would still serve: objects, bytes
        for oid in set(oids):
            where = self._packed.get(oid)
            if where is not None:
                pack = where[0]
                live, live_bytes = left.get(pack.name, (pack.live, pack.live_bytes))
                left[pack.name] = (live - 1, live_bytes - where[2])
            elif oid in held:
                try:
                    freed += self.size(oid)
                except FileNotFoundError:
                    pass
        for name, (live, live_bytes) in left.items():
            pack = self._packs[name]
            if not live:
                freed += pack.content
            elif pack.rewritten_at(live_bytes):
                freed += pack.content - live_bytes
        return freed

    def _serves(self, pack: packs.Pack, oid: bytes) -> bool:
        where = self._packed.get(oid)
        return where is not None and where[0] is pack

    def _drop_pack(self, pack: packs.Pack) -> int:
        """Delete a pack (its index first); returns its content's bytes."""
        packs.remove(pack)
        del self._packs[pack.name]
        return pack.content

    def _rewrite(self, pack: packs.Pack) -> int:
        """The objects `pack` still serves, each read and verified again,
        written to a new pack that then serves them, and the old pack
        deleted; returns the bytes freed. One that no longer matches its id
        (damaged in the carrier) is left out: a later visit brings its
        content again. Killed before the old pack is gone, both packs hold
        the objects, and the next command that writes deletes the one that
        serves none (`_tidy`)."""
        served = sorted(
            (offset, oid, size) for oid, offset, size in pack.entries if self._packed.get(oid, (None,))[0] is pack
        )
        writer = packs.Writer(self.tmp_dir)
        try:
            for offset, oid, size in served:
                data = b"".join(packs.chunks(pack, offset, size, BLOCK))
                if blake3.blake3(data).digest() != oid:
                    del self._packed[oid]
                    continue
                writer.add(oid, data)
            new = writer.commit(self.packs_dir) if writer.entries else None
        except BaseException:
            writer.discard()
            raise
        if new is None:
            writer.discard()
            return self._drop_pack(pack)
        self._packs[new.name] = new
        for oid, offset, size in new.entries:
            self._packed[oid] = (new, offset, size)
        return self._drop_pack(pack) - new.content

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
        """(object id, size) of every stored object."""
        yield from list(self._loose_sizes().items())
        for oid, (_, _, size) in list(self._packed.items()):
            yield oid, size

    def _loose_sizes(self) -> dict[bytes, int]:
        """Each object of its own and its size; each size is asked of the
        file system once (a visit asks for the store's usage three times)."""
        held = self._listed()
        for oid, size in list(held.items()):
            if size is None:
                try:
                    held[oid] = os.path.getsize(self.path(oid))
                except FileNotFoundError:
                    del held[oid]
        return held  # type: ignore[return-value]  # every size is known now

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
        """The content the store holds, what the carrier's budget bounds:
        its objects of their own, and every object in its packs (with those
        a pack no longer serves, until it is written again or deleted); a
        pack's header and index are not content, as the carrier's own index
        is not."""
        return sum(self._loose_sizes().values()) + sum(pack.content for pack in self._packs.values())


def _threads(n: int) -> ThreadPoolExecutor:
    """A pool of `n` threads. concurrent.futures is imported on first use:
    it brings logging and traceback with it, 6-7 ms of every visit that
    has nothing to store or drop."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(n)


@dataclass(frozen=True)
class _Committing:
    """A pack being committed (`done`: its thread's work, or None where it
    is committed when its results are asked for) and the objects it holds."""

    done: Future[packs.Pack] | None
    writer: packs.Writer
    written: list[Wanted]


def _verified(item: Wanted, span: fsops.Span | None | SquirrelError | OSError) -> bytes:
    """The content of a small object, read from its span (closed here) or
    its content function, and checked against its id and size."""
    if isinstance(span, (SquirrelError, OSError)):
        raise span
    if span is None:
        data = b"".join(item.content())
    else:
        try:
            data = os.pread(span.fd, item.size + 1, span.offset)
        finally:
            os.close(span.fd)
        if item.progress is not None:
            item.progress(len(data))
    if len(data) != item.size or blake3.blake3(data).digest() != item.oid:
        raise ChangedDuringOperation("content does not match its object id")
    return data
