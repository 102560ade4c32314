"""Finding the changed folders of a large tree in several processes.

A scan of an unchanged tree is a stat call and a comparison for every file,
and in Python the comparisons, not the system calls, take most of the time:
threads cannot share that work (the interpreter lock serializes it). For a
large index, worker processes (one per core, at most `workers.WORKERS`) first sweep
the tree and name the folders that differ from the index in any way; the
scanner then looks at those alone (`Scanner.changes`).

A folder is *clean* when every entry on disk is an unchanged file record, a
folder recorded as a folder, or an ignored name the index does not hold,
and every name the index holds is still on disk. Anything else (a new,
changed, racy, vanished, unreadable, ignored-but-recorded or unsupported
entry) makes it *unclean*, and the scanner's own pass over it decides what
changed, exactly as without the sweep: the sweep can only send the scanner
to look, never decide. It descends into the recorded, not ignored folders
of every folder, clean or not; a folder that is new on disk is walked by the
scanner itself, as a whole.

Each worker reads the committed index through its own read-only LMDB
environment (an environment is never used across processes); the sweep
runs only when the scanner's index has no pending writes, so both read the
same records. The workers (squirrel/plumbing/workers.py) are told
through pipes: a setup, then batches of folders in and findings out; then
another setup, where a caller keeps them for several sweeps (`SweepWorkers`:
a reconcile sweeps both replicas with the same workers, started once). A
sweep's results are in before its workers have ended: they are waited for
on a thread, while the scan goes on.

The scanner's own process sweeps too, in small batches between looks at
its workers' pipes: it starts while they are still starting (unless
the command started them early), and on 2 processors one worker
and the scanner share the tree, where two workers and a waiting scanner
paid for a second interpreter. When the scanner runs out of folders, it
asks its busy workers to hand theirs back at once (`give_back`): each
looks for that request after every folder, so no sweeper waits long for
another's batch.

A folder's files are compared with their records in C where that part
was built (`_folderstat.c`, made by setup.py where a C compiler is
found): it lists the folder and stats its files without the interpreter
lock, and makes no Python object for an unchanged file but its name,
where Python builds a stat result for each (the larger part of a sweep's
time in the interpreter). With it, an index too small for a worker's
start to pay (`HERE_MIN` to `workers.SWEEP_MIN` entries) is swept by the
scanner's process alone (`workers_for`), still quicker than the walk.
`_compare_py` is the same comparison in Python, for an install without
the C part, or with `SQ_PURE_PYTHON` set (`compare_in_python`); tests
hold the two to the same answers.
"""

from __future__ import annotations

import os
import pickle
import select
import selectors
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import IO

from squirrel.plumbing import paths, workers
from squirrel.plumbing.index import ReplicaIndex
from squirrel.plumbing.paths import IgnoreRules
from squirrel.plumbing.workers import SweepWorkers, Worker, read_message, worker_count, write_message

_Compare = Callable[[bytes, dict[bytes, bytes]], tuple[bool, int, list[bytes], list[bytes]]]
_compare: _Compare | None = None
try:  # the folder's comparison in C, where it was built (setup.py)
    from squirrel.plumbing._folderstat import compare as _compare
except ImportError:  # an install without a C compiler: the same comparison in Python
    pass

HERE_MIN = 5_000  # index entries from which, in C, the scanner's own process sweeps alone below SWEEP_MIN
BATCH = 200  # folders a worker sweeps before it hands the rest of its frontier back
OWN_BATCH = 16  # folders the scanner sweeps between looks at its workers' pipes

TickCallback = Callable[[int, int], None]  # (files, folders) found clean so far
_Setup = tuple[bytes, str, str, IgnoreRules, frozenset[bytes]]  # root, index, replica id, ignore rules, unclean
_Batch = tuple[list[bytes], list[bytes], int, int]  # unclean, frontier, files, dirs of clean folders


@dataclass
class Sweep:
    """What the workers found: the unclean folders, in the order the
    scanner walks (parents first, names in order), and the clean folders'
    counts."""

    unclean: list[bytes] = field(default_factory=list)
    files: int = 0
    dirs: int = 0


def compare_in_python() -> None:
    """Compare folders in Python even where the C part was built: what
    `SQ_PURE_PYTHON` asks (read by the command line and by each worker),
    to rule the C part out when a scan looks wrong, or to measure it."""
    global _compare
    _compare = None


def workers_for(index: ReplicaIndex) -> int | None:
    """How a scan of `index` sweeps its tree first: with this many worker
    processes beside its own, with none (0: its own process sweeps alone,
    where the comparison is in C and the index is too small for a
    worker's start to pay), or not at all (None: the scanner walks)."""
    if index.has_pending():
        return None  # the sweep reads committed records only
    entries = index.entry_count()
    if entries >= workers.SWEEP_MIN and worker_count() >= 1:
        return worker_count()
    if entries >= HERE_MIN and _compare_for(index) is not None:
        return 0
    return None


def _compare_for(index: ReplicaIndex) -> _Compare | None:
    """The comparison in C for this index's records, where it was built
    and reads them (format 2 and later; a format-1 index, read-only until
    it is upgraded, is compared in Python)."""
    return _compare if index.format >= 2 else None


def sweep(
    root: str,
    index: ReplicaIndex,
    ignore: IgnoreRules,
    top: bytes = b"",
    tick: TickCallback | None = None,
    unclean: Collection[bytes] = (),
    pool: SweepWorkers | None = None,
) -> Sweep | None:
    """Sweep the tree below `top` (a recorded folder) in worker processes
    (those of `pool`, else workers of its own; a pool of none leaves this
    process to sweep alone), taking the folders
    `unclean` as unclean whatever they hold; None when the workers cannot
    run here (the scanner then walks everything)."""
    found = Sweep()
    root_b, force = os.fsencode(root), frozenset(unclean)
    setup: _Setup = (root_b, index.directory, index.self_id, ignore, force)
    own = pool is None
    pool = pool if pool is not None else SweepWorkers()
    ok = False
    try:
        busy: dict[int, Worker] = {}
        asked: set[int] = set()  # busy workers asked to hand their folders back
        started = pool.start()
        for w in started:
            w.set_up(setup)
        sweepers = len(started) + 1  # the workers and this process
        # The first folders are swept here, while the workers start, until
        # there is work for each sweeper: given the top folder alone, one
        # worker swept its first batch (200 folders) while the others waited.
        todo = _share(_found(found, _sweep(root_b, index, ignore, force, [top], wide=2 * sweepers)), sweepers)
        if tick is not None:
            tick(found.files, found.dirs)
        with selectors.DefaultSelector() as sel:
            while todo or busy:
                for w in started:
                    if todo and w.fd not in busy:
                        w.send(todo.pop())
                        busy[w.fd] = w
                        sel.register(w.fd, selectors.EVENT_READ)
                if todo:
                    # This process's own share, a small batch at a time, so
                    # that a worker that is done waits little for more.
                    own_batch = _sweep(root_b, index, ignore, force, todo.pop(), limit=OWN_BATCH)
                    todo += _share(_found(found, own_batch), sweepers - len(busy))
                    ready = sel.select(timeout=0) if busy else []
                else:
                    for fd, w in busy.items():
                        if fd not in asked:
                            w.give_back()
                            asked.add(fd)
                    ready = sel.select()
                for key, _ in ready:
                    w = busy.pop(key.fd)
                    asked.discard(key.fd)
                    sel.unregister(key.fd)
                    batch: _Batch = w.receive()
                    todo += _share(_found(found, batch), sweepers - len(busy))
                if tick is not None:
                    tick(found.files, found.dirs)
        ok = True
    except (OSError, EOFError, pickle.PickleError, ValueError):
        return None  # no worker could start or one failed: the scanner walks it all
    finally:
        if own or not ok:  # workers that failed are not used again
            pool.close()
    found.unclean.sort(key=lambda rel: rel.split(b"/"))
    return found


def _found(found: Sweep, batch: _Batch) -> list[bytes]:
    """Add what a batch found to `found`; returns its frontier."""
    seen, frontier, files, dirs = batch
    found.unclean += seen
    found.files += files
    found.dirs += dirs
    return frontier


def _share(frontier: list[bytes], idle: int) -> list[list[bytes]]:
    """The frontier in one batch per idle sweeper, this process counted
    (at least one batch)."""
    if not frontier:
        return []
    parts = max(1, min(idle, len(frontier)))
    return [frontier[i::parts] for i in range(parts)]


# The worker's side --------------------------------------------------------------


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """A worker's life: a setup (a tuple), then batches (lists of folders)
    of that tree, then maybe another setup, until its stdin closes. A
    request to give a batch back (None) ends the batch at hand; between
    batches, one comes too late and is ignored. `stdin` should be
    unbuffered: a request read ahead into a buffer is not seen until the
    batch ends."""
    index: ReplicaIndex | None = None
    poller = select.poll()
    poller.register(stdin.fileno(), select.POLLIN)

    def asked() -> bool:
        """Has the scanner asked for the batch back? (A message while a
        batch is swept can only be that request.)"""
        if not poller.poll(0):
            return False
        if read_message(stdin) is not None:
            raise ValueError("sweep worker: a message other than a request to give back, mid-batch")
        return True

    try:
        while True:
            try:
                msg = read_message(stdin)
            except EOFError:
                return
            if msg is None:
                continue  # a request to give back a batch that had ended already
            if isinstance(msg, tuple):
                if index is not None:
                    index.close()
                    index = None
                root, index_dir, self_id, ignore, unclean = msg
                index = ReplicaIndex(index_dir, self_id, readonly=True)
                continue
            if index is None:
                raise ValueError("sweep worker: a batch before its setup")
            write_message(stdout, _sweep(root, index, ignore, unclean, msg, stop=asked))
    finally:
        if index is not None:
            index.close()


def _sweep(
    root: bytes,
    index: ReplicaIndex,
    ignore: IgnoreRules,
    force: frozenset[bytes],
    tops: list[bytes],
    wide: int | None = None,
    limit: int = BATCH,
    stop: Callable[[], bool] | None = None,
) -> _Batch:
    """Sweep from `tops`, depth first, until `limit` folders are done (or,
    with `wide`, until that many are left to sweep; or, once a folder is
    done, until `stop` says so); the folders in `force` are unclean
    whatever they hold."""
    stack = list(reversed(tops))
    unclean: list[bytes] = []
    files = dirs = done = 0
    while stack and done < limit and (wide is None or len(stack) < wide) and not (done and stop and stop()):
        rel = stack.pop()
        done += 1
        clean, n, below = _folder(root, index, ignore, rel)
        if clean and rel not in force:
            files += n
            dirs += 1
        else:
            unclean.append(rel)
        stack.extend(reversed(below))
    return unclean, stack, files, dirs


def _folder(root: bytes, index: ReplicaIndex, ignore: IgnoreRules, rel: bytes) -> tuple[bool, int, list[bytes]]:
    """(clean, regular files on disk, recorded folders to sweep) of one folder."""
    raw = index.children_map(rel)
    folder = root + b"/" + rel if rel else root
    try:
        if (in_c := _compare_for(index)) is not None:
            clean, files, folders, new_files = in_c(folder, raw)
        else:
            clean, files, folders, new_files = _compare_py(folder, raw, index.unchanged_file)
    except OSError:
        return False, 0, []
    for name in new_files:
        if clean and not ignore.ignored(paths.join(rel, name), False):
            clean = False
    below: list[bytes] = []
    for name in folders:
        old = raw.pop(name, None)
        child = paths.join(rel, name)
        if not rel and name.lower() == paths.MARKER and name != paths.MARKER:
            clean = False  # the scanner reports the reserved name
        elif ignore.ignored(child, True):
            clean = clean and old is None
        elif old is not None and index.decode(old).is_dir:
            below.append(child)
        else:
            clean = False
    below.sort()
    return clean and not raw, files, below


def _compare_py(
    folder: bytes, raw: dict[bytes, bytes], unchanged: Callable[[bytes, os.stat_result], bool]
) -> tuple[bool, int, list[bytes], list[bytes]]:
    """What `_folderstat.compare` answers, in Python: (clean, regular files,
    folders, regular files without a record) of `folder`, the records of
    the regular files found taken out of `raw`."""
    clean = True
    files = 0
    folders: list[bytes] = []
    new_files: list[bytes] = []
    # Each file is stat-ed by its name relative to the folder's descriptor,
    # not by its whole path: a tenth of a sweep's time.
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        with os.scandir(folder) as it:
            for de in it:
                name = de.name
                try:
                    if de.is_file(follow_symlinks=False):
                        files += 1
                        old = raw.pop(name, None)
                        if old is not None:
                            clean = clean and unchanged(old, os.stat(name, dir_fd=fd, follow_symlinks=False))
                        else:
                            new_files.append(name)
                    elif de.is_dir(follow_symlinks=False):
                        folders.append(name)
                    else:
                        clean = False  # a symlink or special file: the scanner reports it
                except OSError:
                    clean = False
    finally:
        os.close(fd)
    return clean, files, folders, new_files
