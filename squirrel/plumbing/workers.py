"""The worker processes of a sweep (squirrel/plumbing/sweep.py): started,
spoken to and ended here.

A worker is a new interpreter (`python -m squirrel.sweep_worker`, which
calls `sweep.serve`), not a fork: the scanner's process may hold threads
and an open index, and its main module is not theirs to run. It reads
messages through its stdin and answers through its stdout, each a pickle
after its length.

A new interpreter takes some 50 ms to be ready, and a scan that starts its
workers when it reaches its sweep sweeps alone until then. A command that
will scan a large replica therefore starts them first (`started_early`),
before it loads its own modules: 20 to 40 ms of work on one processor,
while the workers start on the others. This module loads little (no
index code, no records) for that reason: it reads how many paths an
index records straight from its LMDB file. The first pool that starts
workers takes those started early (`SweepWorkers.start`); the command
ends any left over, at once.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import lmdb

from squirrel.plumbing.paths import MARKER

SWEEP_MIN = 30_000  # index entries from which workers sweep (below, a worker's start costs what it saves)
WORKERS = 7

# The worker's entry point, a module of its own beside the packages: it owns
# the worker's standard streams, as the command line owns the command's.
WORKER_MODULE = "squirrel.sweep_worker"

INDEX_DIR = os.path.join(MARKER.decode(), "index")  # where Replica.open opens a replica's index
ENTRIES_DB = b"entries"  # the index's table of paths (index.DB_NAMES)


def worker_count() -> int:
    """The worker processes of a sweep: one for each processor but the
    scanner's, which sweeps too (at most `WORKERS`)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(WORKERS, cpus - 1)


class Worker:
    """One worker process: a setup or a batch of folders in through its
    stdin, what it found out through its stdout."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            # -P: the command's working folder is not searched for modules
            # (a folder named `squirrel` there would be imported instead).
            [sys.executable, "-P", "-m", WORKER_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.fd = self.stdout.fileno()

    def set_up(self, setup: object) -> None:
        """The tree and index the next batches are of."""
        write_message(self.stdin, setup)

    def send(self, tops: list[bytes]) -> None:
        write_message(self.stdin, tops)

    def give_back(self) -> None:
        """Ask the worker to end its batch after the folder at hand, and
        send what it found with the folders it has not swept (a worker that
        is already done reads the request later, and ignores it)."""
        write_message(self.stdin, None)

    def receive(self) -> Any:
        return read_message(self.stdout)

    def hang_up(self) -> None:
        """No more batches: the worker ends when it reads the end of its input."""
        try:
            self.stdin.close()
        except OSError:
            pass

    def close(self) -> None:
        self.hang_up()
        self.stdout.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# Workers started ahead of the scan that will sweep with them
# (`started_early`), waiting for the first pool that starts workers.
_early: list[Worker] = []


class SweepWorkers:
    """Worker processes kept for several sweeps (a reconcile sweeps both of
    its replicas with the same ones): each is started once, on first use
    (or taken from those started early), and told which tree and index to
    sweep before each sweep. `close` (or the end of a `with` block) tells
    them to end. `count` workers (by default `worker_count()`); with 0,
    the scanner's process sweeps alone."""

    def __init__(self, count: int | None = None) -> None:
        self._workers: list[Worker] = []
        self._count = count

    def start(self) -> list[Worker]:
        if not self._workers:
            count = worker_count() if self._count is None else self._count
            self._workers = _early[:count]
            del _early[:count]
            while len(self._workers) < count:
                self._workers.append(Worker())  # one by one: those started are ended, whatever fails
        return self._workers

    def close(self) -> None:
        _end(self._workers)
        self._workers = []

    def __enter__(self) -> SweepWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def started_early(*roots: str) -> Iterator[None]:
    """Start the workers that a scan of the replicas at `roots` will sweep
    with, now, where the index of one of them records `SWEEP_MIN` paths
    or more; any that no pool took are killed when the block ends (they
    hold nothing yet). A worker that cannot start is left to the scan,
    which starts its own or walks the tree."""
    try:
        if not _early and worker_count() >= 1 and any(recorded_paths(root) >= SWEEP_MIN for root in roots):
            try:
                for _ in range(worker_count()):
                    _early.append(Worker())
            except OSError:
                pass
        yield
    finally:
        left = _early[:]
        _early.clear()
        for w in left:
            w.proc.kill()
        _end(left)


def recorded_paths(root: str) -> int:
    """How many paths the index of the replica at `root` records, read
    from its LMDB file without the index's code (0 where there is none,
    or it cannot be read). Read without LMDB's locks: a figure to decide
    by, which a writer at work may make a commit out of date."""
    try:
        env = lmdb.open(os.path.join(root, INDEX_DIR), readonly=True, lock=False, max_dbs=1, readahead=False)
    except (lmdb.Error, OSError, ValueError, TypeError):
        return 0
    try:
        with env.begin() as txn:
            return int(txn.stat(env.open_db(ENTRIES_DB, txn=txn, create=False))["entries"])
    except lmdb.Error:
        return 0
    finally:
        env.close()


def _end(workers: list[Worker]) -> None:
    """Tell the workers to end, all at once so that they end together, and
    wait for them (killing one that does not) on a thread of its own:
    their findings are in, and the scanner goes on meanwhile instead of
    waiting for interpreters to shut down (waits with a timeout poll in
    steps of up to 50 ms: 24 ms a sweep). The thread is not a daemon: the
    process waits for it before it exits, so no worker outlives the
    command."""
    for w in workers:
        w.hang_up()

    def close_all() -> None:
        for w in workers:
            w.close()

    if workers:
        threading.Thread(target=close_all, name="sq-sweep-reaper").start()


_LENGTH = struct.Struct("<I")


def write_message(f: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(_LENGTH.pack(len(data)) + data)
    f.flush()


def read_message(f: IO[bytes]) -> Any:
    (n,) = _LENGTH.unpack(_read_exactly(f, _LENGTH.size))
    return pickle.loads(_read_exactly(f, n))


def _read_exactly(f: IO[bytes], n: int) -> bytes:
    """`n` bytes of `f`, which may give fewer at a time (an unbuffered pipe)."""
    data = f.read(n)
    while data is not None and 0 < len(data) < n:
        more = f.read(n - len(data))
        if not more:
            break
        data += more
    if data is None or len(data) < n:
        raise EOFError("sweep worker ended")
    return data
