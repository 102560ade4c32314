"""Tools for the crash, fault and hazard tests: run `sq` with a fault armed,
and check what a failed or killed command left behind.

`run_forked` runs the real entry point (`squirrel.cli.main`) in a forked
child, which costs a few milliseconds where a new `sq` process costs a few
hundred, so that a test can kill a command at each of its hundreds of I/O
points. The child has the same SQ_FAULT hook as the real `sq`; the only
difference is that its fsync does not flush: a kill models a process crash,
after which the kernel still holds every written page, so what a kill test
checks does not depend on the flush, and 300 kills stay fast. With `trace`,
it lists the kind of every fault point a command passes.

`versions` lists every file version a replica holds (at its paths, as
`tests.helpers.tree` reads them, and in its trash, by blake3 id); `lost`
says which of them are nowhere after a command: neither at a path, nor in a
conflict copy, nor in `.squirrel/trash/<id hex>` with content that still
hashes to its id. A forked run's `Outcome` is the `tests.helpers.Ran` the
other ways of running `sq` return, plus the fault points it passed.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import blake3

from squirrel.cli import main
from squirrel.plumbing import faults
from tests.helpers import SQUIRREL, Ran, argv_of, exit_code_of, tree

KILLED = -signal.SIGKILL
CHILD_CRASHED = 99  # the forked child raised something main() did not handle


@dataclass
class Outcome(Ran):
    """A forked run's `Ran`, with the fault points it passed."""

    points: int = 0  # fault points passed (with trace, or a fault armed past the last)
    ops: list[str] = field(default_factory=list)  # with trace: each point's kind, in order


def _no_fsync(fd: int) -> None:
    return None


Hook = Callable[[str], None]


class Child:
    """A forked `sq` (see `spawn`); `wait` returns its Outcome."""

    def __init__(self, pid: int, files: list[IO[bytes]], trace: bool) -> None:
        self.pid = pid
        self._files = files
        self._trace = trace

    def wait(self, timeout: float = 120) -> Outcome:
        out, err, counter = self._files
        try:
            status = _wait(self.pid, timeout)
            for f in self._files:
                f.seek(0)
            raw = counter.read().strip()
            code = os.waitstatus_to_exitcode(status)
            if self._trace:
                ops = raw.decode().split()
                return Outcome(code, out.read(), err.read(), len(ops), ops)
            return Outcome(code, out.read(), err.read(), int(raw) if raw.isdigit() else 0)
        finally:
            for f in self._files:
                f.close()


def spawn(
    args: Sequence[str | Path],
    fault: str | None = None,
    trace: bool = False,
    hook: Hook | None = None,
    uid: int | None = None,
) -> Child:
    """Start `sq ARGS` through `main` in a forked child, with SQ_FAULT=`fault`.
    With `trace`, the outcome lists the kind of every fault point passed;
    `hook(op)` runs in the child at each fault point, before the fault;
    with `uid`, the child drops to that user (and its group) first."""
    argv = argv_of(args)
    files = [tempfile.TemporaryFile() for _ in range(3)]
    out, err, counter = files
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = CHILD_CRASHED
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
            sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), write_through=True)
            os.environ.pop("SQ_FAULT", None)
            if fault is not None:
                os.environ["SQ_FAULT"] = fault
            os.fsync = _no_fsync
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            if trace or hook is not None:
                _wrap_points(counter.fileno() if trace else None, hook)
            try:
                main(argv)
            except SystemExit as e:
                code = exit_code_of(e)
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                if not trace:
                    os.write(counter.fileno(), str(faults._count).encode())
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    return Child(pid, files, trace)


def run_forked(
    args: Sequence[str | Path],
    fault: str | None = None,
    timeout: float = 120,
    trace: bool = False,
    hook: Hook | None = None,
    uid: int | None = None,
) -> Outcome:
    """Run `sq ARGS` in a forked child (see `spawn`) and wait for it."""
    return spawn(args, fault, trace, hook, uid).wait(timeout)


def _wrap_points(fd: int | None, hook: Hook | None) -> None:  # pragma: no cover - runs in the child
    original = faults.point

    def point(op: str) -> None:
        if fd is not None:
            os.write(fd, op.encode() + b" ")
        if hook is not None:
            hook(op)
        original(op)

    faults.point = point


def _wait(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise TimeoutError(f"sq did not finish within {timeout} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


# What a replica holds ----------------------------------------------------------
def oid(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def trash_ids(root: Path | str) -> set[str]:
    """Object ids (hex) of the trash files whose content still hashes to their name."""
    trash = Path(root) / SQUIRREL / "trash"
    good: set[str] = set()
    if not trash.is_dir():
        return good
    for p in trash.iterdir():
        if p.is_file() and len(p.name) == 64 and oid(p.read_bytes()) == p.name:
            good.add(p.name)
    return good


def versions(root: Path | str) -> set[str]:
    """Every file version a replica holds: in its tree or its trash."""
    return {oid(data) for data in tree(root, folders=False).values()} | trash_ids(root)


def lost(before: Iterable[str], root: Path | str) -> set[str]:
    """The versions of `before` that are nowhere in `root` any more."""
    return set(before) - versions(root)


def leftovers(root: Path | str) -> list[str]:
    """Temporary files a finished command left in `.squirrel/tmp/`, and its
    intent log if it left one."""
    tmp = Path(root) / SQUIRREL / "tmp"
    left = sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []
    journal = Path(root) / SQUIRREL / "journal"
    return left + ([journal.name] if journal.exists() else [])


def fresh_copy(template: Path, dst: Path) -> Path:
    """A byte-for-byte copy of a replica or carrier (locks aside), replacing `dst`."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(template, dst, symlinks=True, ignore=shutil.ignore_patterns("lock", "lock.mdb"))
    return dst


def crash_points(total: int, full: bool, budget: int) -> list[int]:
    """Which of the kill points 1..total to try: every one when `full`, else
    the first few, the last few, and an even spread of `budget` in between."""
    every = list(range(1, total + 1))
    if full or total <= budget:
        return every
    head, tail = every[:6], every[-6:]
    middle = every[6:-6]
    step = max(1, len(middle) // max(1, budget - 12))
    return sorted(set(head + middle[::step] + tail))
