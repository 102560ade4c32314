"""Repacking an index whose pages went half empty.

LMDB never moves a record to fill a page. When a sync makes every record a
few bytes longer (a second drive's events joined into each version's
modification time, say), every page splits, and the tree ends up with its
pages about half full; the pages it left behind stay in the file, free for
later use but never given back. A drive's index of a million files then
takes three times the space it needs, and the carrier's too.

So when a command that wrote to a replica closes it, and the index file is
large (`MIN_BYTES`) and its pages are far from full (`worth_compacting`),
the index is written again, every table in key order with LMDB's append
mode, which fills each page: what the records need, and nothing more. The
records themselves are copied byte for byte: the format does not change.
The copy is written in transactions of `COPY_BYTES` of records: LMDB keeps
a transaction's pages in memory until it commits, and one transaction for
a million-file index held some 500 MB.

The swap is crash-safe (docs/formats/index.md, "Repacking"):

1. the packed copy is written to `index.new/` and fsynced;
2. `index/` is renamed to `index.old/`, then `index.new/` to `index/`, and
   the directory fsynced;
3. `index.old/` is removed.

A command that opens the index first settles what a kill left
(`settle`): with no `index/`, the complete `index.new/` takes its place; an
`index.new/` beside an `index/` was not swapped in and goes; `index.old/`
goes. Until step 2 the old index is whole, after it the new one is.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import lmdb

from squirrel.plumbing import faults
from squirrel.plumbing.durable import fsync_dir
from squirrel.plumbing.index import DB_NAMES, INITIAL_MAP_SIZE

MIN_BYTES = 16 << 20  # smaller indexes are left as they are: the savings would be small
SPARSE = 1.5  # repack when the file holds this many times the pages its records need
SAMPLE = 4096  # records of `entries` that tell their average size
COPY_BYTES = 16 << 20  # records copied per transaction: the memory a repacking holds


def worth_compacting(directory: str) -> bool:
    """Is the index at `directory` large, and its file `SPARSE` times the
    pages its records need packed? (The `entries` table, nearly all of it,
    is estimated from the size of its first records: pages that splits
    left half full are as much waste as free pages.)"""
    data = os.path.join(directory, "data.mdb")
    try:
        size = os.path.getsize(data)
    except OSError:
        return False
    if size < MIN_BYTES:
        return False
    env = lmdb.open(directory, readonly=True, lock=False, subdir=True, max_dbs=len(DB_NAMES) + 2)
    try:
        page = env.stat()["psize"]
        needed = _pages(env.stat())
        with env.begin() as txn:
            for name in _tables(env, txn):
                db = env.open_db(name, txn=txn, create=False)
                stat = txn.stat(db)
                needed += _packed(txn, db, stat["entries"], page) if name == b"entries" else _pages(stat)
        file_pages = env.info()["last_pgno"] + 1
    finally:
        env.close()
    return file_pages >= SPARSE * max(1, needed)


def _packed(txn: Any, db: Any, entries: int, page: int) -> int:
    """The pages `entries` records of a table would fill, packed, judged by
    the first `SAMPLE` of them (a node is the key, the value and 8 bytes of
    header, plus 2 bytes of the page's pointer to it)."""
    n = total = 0
    for key, value in txn.cursor(db=db):
        total += len(key) + len(value) + 10
        n += 1
        if n == SAMPLE:
            break
    return -(-entries * total // max(1, n) // (page - 16)) if n else 0


def compact(directory: str) -> None:
    """Rewrite the index at `directory` packed, and swap it in (see above).
    The caller holds the replica's lock and has closed its environment."""
    new, old = directory + ".new", directory + ".old"
    shutil.rmtree(new, ignore_errors=True)
    src = lmdb.open(directory, readonly=True, lock=False, subdir=True, max_dbs=len(DB_NAMES) + 2)
    try:
        size = os.path.getsize(os.path.join(directory, "data.mdb"))
        # Not synced transaction by transaction: the copy is made durable
        # once, whole, below, before anything points to it.
        dst = lmdb.open(
            new,
            subdir=True,
            max_dbs=len(DB_NAMES) + 2,
            map_size=max(INITIAL_MAP_SIZE, size * 2),
            sync=False,
            metasync=False,
        )
        try:
            with src.begin() as rtxn:
                for name in _tables(src, rtxn):
                    records = rtxn.cursor(db=src.open_db(name, txn=rtxn, create=False)).iternext()
                    with dst.begin(write=True) as wtxn:
                        to = dst.open_db(name, txn=wtxn)
                    while True:
                        batch = _Batch(records)
                        with dst.begin(write=True) as wtxn:
                            wtxn.cursor(db=to).putmulti(batch, append=True)
                        if batch.last:
                            break
            faults.point("fsync")
            dst.sync(True)
        finally:
            dst.close()
    finally:
        src.close()
    fsync_dir(new)
    faults.point("rename")
    os.rename(directory, old)
    faults.point("rename")
    os.rename(new, directory)
    fsync_dir(os.path.dirname(directory))
    shutil.rmtree(old, ignore_errors=True)


class _Batch:
    """The next records of `records` up to `COPY_BYTES` of them; `last`
    once `records` ran out."""

    def __init__(self, records: Iterator[tuple[bytes, bytes]]) -> None:
        self.records = records
        self.last = False

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        used = 0
        for key, value in self.records:
            yield key, value
            used += len(key) + len(value)
            if used >= COPY_BYTES:
                return
        self.last = True


def settle(directory: str) -> None:
    """Finish or undo a repacking that a kill interrupted (see above)."""
    new, old = directory + ".new", directory + ".old"
    if os.path.isdir(new):
        if os.path.isdir(directory):
            shutil.rmtree(new)  # not swapped in: the index is the old one, whole
        else:
            os.rename(new, directory)  # written whole before the old one moved away
            fsync_dir(os.path.dirname(directory))
    if os.path.isdir(old) and os.path.isdir(directory):
        shutil.rmtree(old)


def _tables(env: Any, txn: Any) -> list[bytes]:
    """The named tables of the index (the main table holds their names only)."""
    return [name for name, _ in txn.cursor()]


def _pages(stat: Any) -> int:
    return int(stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"])
