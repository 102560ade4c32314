"""Helpers for building trees, reading them back, and running the real `sq`.

Files written by a test are fresh, so the scanner treats them as racy (their
mtime is within 2 s of the scan) and re-hashes them on the next scan, on
purpose. Tests that count hashing first age the tree with `age()`.

What a user sees in a folder is `tree()` (`walk()` underneath, for tests
that need each entry's `lstat`). `age_trash()` makes trash items look old.

A test runs `sq` in one of two ways, and gets a `Ran` back: `run_sq` runs
the installed entry point as a process of its own (`start_sq` starts one
without waiting, for a test that acts while it runs); `sq_in_process` runs
its `main()` in this process, with the same argument parsing, output and
exit codes, a few hundred milliseconds cheaper. The forked runner that can
kill a command at a fault point is `tests.fault_tools.run_forked`.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from squirrel.cli import main
from squirrel.plumbing import groups, place, sweep
from squirrel.plumbing.index import Entry
from squirrel.plumbing.replica import Replica

HOUR = 3600.0
SQUIRREL = ".squirrel"
LINK = b"->"  # what tree() maps a symlink to, before its target


# Building trees -------------------------------------------------------------------
def make_tree(root: Path | str, files: Mapping[str, bytes | str], old: bool = True) -> Path:
    """Create files (`"a/b.txt": content`) and empty dirs (`"d/": ""`) under root.

    With `old`, every file created gets an mtime an hour ago, so a later scan
    does not treat it as racy; files already there keep theirs.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        p = root / rel
        if rel.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
        if old:
            set_mtime(p)
    return root


def set_mtime(path: Path | str | bytes, seconds_ago: float = HOUR) -> None:
    t = time.time() - seconds_ago
    os.utime(path, (t, t), follow_symlinks=False)


def age(root: Path | str, seconds_ago: float = HOUR) -> None:
    """Give every file under root (not `.squirrel/`, not symlinks) an mtime in the past."""
    for _, p, st in walk(root):
        if not stat.S_ISDIR(st.st_mode) and not stat.S_ISLNK(st.st_mode):
            set_mtime(p, seconds_ago)


def write(path: Path, content: bytes | str, seconds_ago: float | None = HOUR / 2) -> None:
    """Replace a file's content; by default give it a past mtime that differs from `age()`'s."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    if seconds_ago is not None:
        set_mtime(path, seconds_ago)


# Reading them back ------------------------------------------------------------------
def walk(root: Path | str, skip: Iterable[str] = (SQUIRREL,)) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Every entry under root, each folder before what it holds, as
    `(relative POSIX path, path, lstat)`. Symlinks are never followed. An
    entry whose relative path is in `skip` is left out with all it holds; by
    default that is the root's `.squirrel/` (a `.squirrel` deeper down is a
    user's folder like any other)."""
    root = Path(root)
    left_out = set(skip)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel = here.relative_to(root)
        keep = []
        for name in dirnames:
            if (rel / name).as_posix() not in left_out:
                keep.append(name)
        dirnames[:] = keep
        for name in dirnames + filenames:
            key = (rel / name).as_posix()
            if key not in left_out:
                yield key, here / name, os.lstat(here / name)


def tree(root: Path | str, folders: bool = True, skip: Iterable[str] = (SQUIRREL,)) -> dict[str, bytes]:
    """What a user sees under root, the root's `.squirrel/` aside:
    `{"a/b.jpg": content, "a/": b"", "c.lnk": b"->target"}`.

    A regular file maps to its content, a folder to b"" under its name and a
    slash, a symlink to `LINK` and its target (never followed). Without
    `folders`, folders are left out (the files and symlinks in them are not).
    Special files (FIFOs, sockets, devices) are left out: reading one could
    block, and sq never carries them. `skip` as for `walk`: the root's
    `.squirrel/` unless told otherwise.
    """
    out: dict[str, bytes] = {}
    for rel, p, st in walk(root, skip):
        if stat.S_ISREG(st.st_mode):
            out[rel] = p.read_bytes()
        elif stat.S_ISLNK(st.st_mode):
            out[rel] = LINK + os.fsencode(os.readlink(p))
        elif stat.S_ISDIR(st.st_mode) and folders:
            out[rel + "/"] = b""
    return out


def indexed(root: Path | str) -> dict[bytes, Entry]:
    """Every index record of the replica at root except the root itself."""
    with Replica.open(str(root), write=False) as rep:
        return {p: e for p, e in rep.index.walk(b"") if p}


def age_trash(root: Path | str, days: float, ids: Iterable[int] | None = None) -> None:
    """Make the trash items `ids` (every item when None) look trashed `days`
    ago, rewriting their records: the only way a test has to be a month
    older. Everything else about them stays as `sq` wrote it."""
    with Replica.open(str(root)) as rep:
        wanted = None if ids is None else set(ids)
        for item in rep.index.trash_items():
            if wanted is None or item.id in wanted:
                rep.index.trash_put(replace(item, time=int(time.time() - days * 86_400)))
        rep.index.commit()


# A file system without hard links --------------------------------------------------
class NoHardLinks:
    """A stand-in for `os.link` on a file system that has no hard links
    (exFAT, FAT): every call fails with EPERM, as Linux reports there. Each
    refused link is appended to `log`, so that runs in a forked child (which
    inherit the stand-in) are seen too."""

    def __init__(self, log: Path) -> None:
        self.log = log
        log.write_bytes(b"")

    def __call__(self, src: str | bytes | os.PathLike[str], dst: str | bytes | os.PathLike[str], **kw: Any) -> None:
        with open(self.log, "ab") as f:
            f.write(os.fsencode(dst) + b"\n")
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), os.fsdecode(src), None, os.fsdecode(dst))

    @property
    def refused(self) -> list[bytes]:
        """Where each refused link would have gone, in order."""
        return self.log.read_bytes().splitlines()


# Running sq -------------------------------------------------------------------------
@dataclass
class Ran:
    """How a run of `sq` ended: its exit code (minus the signal's number when
    a signal killed it) and everything it wrote."""

    code: int
    stdout: bytes
    stderr: bytes

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL

    @property
    def out(self) -> str:
        return self.stdout.decode(errors="surrogateescape")

    @property
    def err(self) -> str:
        return self.stderr.decode(errors="replace")

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error_lines(self) -> list[str]:
        """The lines of stderr that `sq` itself wrote (`sq: ...`)."""
        return [line for line in self.err.splitlines() if line.startswith("sq: ")]

    def check(self, code: int = 0) -> Ran:
        """Fail the test unless `sq` exited with `code`; returns the run, for `.json` and the like."""
        assert self.code == code, f"sq exited {self.code}, not {code}; stderr: {self.err!r}"
        return self


def argv_of(args: Iterable[str | bytes | Path]) -> list[str]:
    """Command-line arguments as `main()` and a new process get them."""
    return [a if isinstance(a, str) else os.fsdecode(a) for a in args]


def exit_code_of(e: SystemExit) -> int:
    """The exit code a process ending with this `SystemExit` has."""
    if e.code is None:
        return 0
    return e.code if isinstance(e.code, int) else 1


def sq_executable() -> str:
    candidate = Path(sys.executable).parent / "sq"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("sq")
    if found is None:
        pytest.skip("the sq entry point is not installed")
    return found


def _sq_process(args: Iterable[str | bytes | Path], fault: str | None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a new `sq` process, SQ_FAULT=`fault` (unset when None)."""
    env = {k: v for k, v in os.environ.items() if k != "SQ_FAULT"}
    if fault is not None:
        env["SQ_FAULT"] = fault
    return [sq_executable(), *argv_of(args)], env


def run_sq(*args: str | bytes | Path, input: bytes | None = None, timeout: float = 60, fault: str | None = None) -> Ran:
    """Run the installed `sq` entry point as a process of its own, with
    SQ_FAULT=`fault` (unset when None), and wait for it."""
    argv, env = _sq_process(args, fault)
    proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, check=False, env=env)
    return Ran(proc.returncode, proc.stdout, proc.stderr)


def start_sq(*args: str | bytes | Path, output: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """Start the installed `sq` as `run_sq` does, without waiting: for a test
    that acts while it runs (kills it, pulls its drive out). Its stdout and
    stderr go to `output` (a pipe, or e.g. `subprocess.DEVNULL`)."""
    argv, env = _sq_process(args, None)
    return subprocess.Popen(argv, stdout=output, stderr=output, env=env)


def sq_in_process(*args: str | bytes | Path, input: str | bytes | None = None) -> Ran:
    """Run `sq ARGS` through its real entry point (`main`: argument parsing,
    output, error messages, exit codes) in this process, with stdin, stdout
    and stderr swapped for `CliRunner`'s."""
    with CliRunner().isolation(input=input) as (out, err, _):
        try:
            main(argv_of(args))
        except SystemExit as e:
            code = exit_code_of(e)
        else:  # pragma: no cover - main() always exits
            code = 0
        return Ran(code, out.getvalue(), err.getvalue())


def pure_python(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep compares folders in Python, in this process and in its
    workers, the fetcher writes every file in Python, in its turn, and
    each is renamed into place in Python (`SQ_PURE_PYTHON`), as where the
    C parts were not built."""
    monkeypatch.setenv("SQ_PURE_PYTHON", "1")
    monkeypatch.setattr(sweep, "_compare", None)
    monkeypatch.setattr(groups, "_copy_group", None)
    monkeypatch.setattr(place, "_place", None)
    monkeypatch.setattr(place, "_place_new", None)


def third_group_breaks(monkeypatch: pytest.MonkeyPatch, message: str) -> None:
    """The third group written (`groups.Groups`, on whichever thread) raises
    RuntimeError(`message`) once its files are written, as a fault of sq
    itself would: what no file was told of."""
    real = groups.Groups._verified
    calls: list[int] = []

    def third_breaks(self: groups.Groups, *args: object) -> list[groups.Fetched]:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError(message)
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(groups.Groups, "_verified", third_breaks)
