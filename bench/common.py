"""Helpers shared by the benchmark scripts in this directory.

The scripts are run by path (`python bench/bench_scan.py`, as bench/run.sh
and `make bench` do), so Python puts this directory first on sys.path and
each script imports this module as plain `common`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20
HOUR = 3600


def sq_command() -> list[str]:
    """The `sq` to benchmark: the one on PATH, else the one next to this
    interpreter. An installed sq has its bytecode compiled once: so that
    every timed run does not compile sq's sources again (a cost no user
    pays, some 50 ms a run), the commands run here may write it."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    found = shutil.which("sq")
    if found:
        return [found]
    local = Path(sys.executable).with_name("sq")
    if local.exists():
        return [str(local)]
    sys.exit("bench: sq not found on PATH (run through `make bench`)")


# Every module of sq imported, and nothing run: its command line's
# `__main__` is left out.
_IMPORT_ALL = (
    "import importlib, pkgutil, squirrel\n"
    "for m in pkgutil.walk_packages(squirrel.__path__, 'squirrel.'):\n"
    "    if not m.name.endswith('__main__'):\n"
    "        importlib.import_module(m.name)\n"
)


def program_warm_up(sq: list[str]) -> list[str]:
    """A command that reads all of sq's program into the page cache and
    none of a benchmark's data: each of its modules imported by the
    interpreter that runs `sq`. (`sq COMMAND --help` does not load what
    the command runs: a command loads that when it runs.)"""
    with open(sq[0], "rb") as f:
        first = f.readline()
    python = first[2:].decode().strip() if first.startswith(b"#!") else sys.executable
    return [python, "-c", _IMPORT_ALL]


def sweep_compare() -> str:
    """How the `sq` under test compares a large tree's folders with its
    index: in C (the part setup.py builds where it finds a compiler) or in
    Python. Figures of one are not figures of the other."""
    if os.environ.get("SQ_PURE_PYTHON"):
        return "folders compared in Python (SQ_PURE_PYTHON)"
    sq = sq_command()[0]
    with open(sq, "rb") as f:
        first = f.readline()
    python = first[2:].strip().decode() if first.startswith(b"#!") else sys.executable
    probe = "from squirrel.plumbing import sweep; print(sweep._compare is not None)"
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True).stdout.strip()
    return "folders compared in C" if out == "True" else "folders compared in Python (no C part built)"


def new_parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose --help shows the script's docstring as written."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_tmp_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--tmp", default="/tmp", help="where to create the temporary directory (default /tmp)")


@contextmanager
def bench_dir(prefix: str, where: str) -> Iterator[Path]:
    """A fresh temporary directory under `where` (made if it is missing),
    removed at the end whatever happens."""
    os.makedirs(where, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=where))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(cmd: Sequence[str]) -> str:
    """Run `cmd` and return its stdout; exit the benchmark with its stderr if it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def timed(cmd: Sequence[str]) -> tuple[float, str]:
    """(wall seconds, stdout) of `run(cmd)`."""
    t0 = time.perf_counter()
    out = run(cmd)
    return time.perf_counter() - t0, out


def timed_peak(cmd: Sequence[str]) -> tuple[float, str, int]:
    """(wall seconds, stdout, peak resident set in KiB) of `cmd`, which must
    succeed (as `run`). The peak is the kernel's, exact: the largest of
    the process and of the children it waited for (a sweep's workers)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"bench: {' '.join(cmd)} exited {proc.returncode}:\n{err.read().decode(errors='replace')}")
        return seconds, out.read().decode(), usage.ru_maxrss


def run_quiet(cmd: Sequence[str], cwd: str | None = None, env: dict[str, str] | None = None) -> None:
    """Run `cmd` with its stdout discarded; raise CalledProcessError if it fails."""
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def best_of(
    runs: int,
    cmd: Sequence[str],
    *,
    before: Sequence[str] | None = None,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> float:
    """Best wall time of `runs` runs of `cmd`, running `before` (untimed) ahead of each."""
    best = float("inf")
    for _ in range(runs):
        if before:
            run_quiet(before)
        t0 = time.perf_counter()
        run_quiet(cmd, cwd, env)
        best = min(best, time.perf_counter() - t0)
    return best


@dataclass(frozen=True)
class Timed:
    """A command to time, where and with what environment."""

    cmd: Sequence[str]
    cwd: str | None = None
    env: dict[str, str] | None = None


def times_in_turns(runs: int, contenders: dict[str, Timed]) -> dict[str, list[float]]:
    """Wall times of `runs` runs of each contender, run in turns (a, b, c,
    then c, b, a, ...) after a `sync`: the dirty pages of what the set-up
    wrote (a `git add` of 100,000 files writes as many objects) are written
    back before any timing, not during the first contender's runs, and a
    machine whose load comes and goes weighs on every contender alike."""
    subprocess.run(["sync"], check=True)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    order = list(contenders)
    for n in range(runs):
        for name in order if n % 2 == 0 else reversed(order):
            c = contenders[name]
            t0 = time.perf_counter()
            run_quiet(c.cmd, c.cwd, c.env)
            times[name].append(time.perf_counter() - t0)
    return times


@dataclass(frozen=True)
class Peak:
    """What one command used at most: its resident set (which counts the
    pages of files it maps, such as an LMDB index: clean page cache the
    kernel takes back first), the part of it that is the process's own
    (anonymous memory: what it allocated), in KiB, and its wall time."""

    rss_kib: int
    private_kib: int
    seconds: float


# Runs a command and prints its peak resident set and its peak anonymous
# memory, with its sweep workers', in KiB. It runs in a fresh, small
# interpreter: a child forked from a large process (this script holds a
# million paths at scale) starts with that process's resident set counted
# in its own peak, which exec keeps.
_MEASURE = """
import os, subprocess, sys, time

def private(pid):
    total = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    total += int(line.split()[1])
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except (OSError, ValueError):
        return total
    return total + sum(private(c) for c in children)

sample = float(sys.argv[1])
proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL)
peak = 0
while True:
    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
    if pid:
        break
    peak = max(peak, private(proc.pid))
    time.sleep(sample)
print(usage.ru_maxrss, peak)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_memory(cmd: Sequence[str], sample: float = 0.01) -> Peak:
    """Run `cmd` in a fresh process: its peak resident set (from the kernel,
    exact; a child's, such as a sweep worker's, where that is larger) and
    the peak anonymous memory of the process and its children together
    (read from /proc every `sample` seconds, so a spike shorter than that
    can be missed)."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(sample), *cmd], check=True, capture_output=True, text=True
    ).stdout
    rss, private = out.split()[-2:]
    return Peak(int(rss), int(private), time.perf_counter() - t0)


def peak_rss_kib(cmd: Sequence[str]) -> tuple[int, float]:
    """(peak RSS in KiB, wall seconds) of `cmd` run in a fresh process."""
    peak = peak_memory(cmd)
    return peak.rss_kib, peak.seconds


def allocated(root: Path, skip: str | None = None) -> int:
    """Bytes allocated on disk by the files under `root` (sparse files count
    what they use), leaving out directories named `skip`."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None:
            dirnames[:] = [d for d in dirnames if d != skip]
        for name in filenames:
            total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


def fmt_s(t: float) -> str:
    return f"{t * 1000:8.1f} ms" if t < 10 else f"{t:8.2f} s "


def age(path: Path, seconds_ago: float = HOUR) -> None:
    """Set the mtime of `path` this far in the past, outside sq's racy window."""
    t = time.time() - seconds_ago
    os.utime(path, (t, t))


def age_tree(root: Path, seconds_ago: float = HOUR) -> None:
    """`age` every file under `root`, all to the same time."""
    t = time.time() - seconds_ago
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            os.utime(os.path.join(dirpath, name), (t, t))


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MIB)
            f.write(os.urandom(n))
            left -= n


def build_tree(
    root: Path, files: int, dirs: int, *, big_first: int = 0, seconds_ago: float | None = HOUR
) -> list[Path]:
    """`files` small files (100-900 bytes) spread over `dirs` directories.

    With `big_first`, the very first file is that many bytes of random data
    instead. Each file is `age`d `seconds_ago` into the past, or left as
    written with None. Returns the files in the order they were made.
    """
    per_dir = -(-files // dirs)
    made: list[Path] = []
    for d in range(dirs):
        sub = root / f"album{d // 100:02d}" / f"d{d:04d}"
        sub.mkdir(parents=True, exist_ok=True)
        for _ in range(per_dir):
            if len(made) == files:
                return made
            path = sub / f"img_{len(made):06d}.jpg"
            if not made and big_first:
                write_random(path, big_first)
            else:
                path.write_bytes(os.urandom(100 + len(made) % 800))
            if seconds_ago is not None:
                age(path, seconds_ago)
            made.append(path)
    return made


def git_env(gitdir: Path, tree: Path) -> dict[str, str]:
    """git with its repository outside the tree (neither sq nor find sees
    it), no user or system config, and a fixed identity."""
    return {
        **os.environ,
        "GIT_DIR": str(gitdir),
        "GIT_WORK_TREE": str(tree),
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }


def git_repo_of(tree: Path, gitdir: Path) -> dict[str, str]:
    """Make `gitdir` a git repository of `tree` holding every file of it
    committed, as a user's repository would; returns the environment to
    run git in. git's background work is turned off (`gc.auto 0`): a
    commit of 100,000 new files otherwise starts a `git gc` that packs them
    for the next 20 seconds, on the processors the timings share."""
    env = git_env(gitdir, tree)
    run_quiet(["git", "init", "-q"], cwd=str(tree), env=env)
    run_quiet(["git", "config", "gc.auto", "0"], cwd=str(tree), env=env)
    (gitdir / "info").mkdir(exist_ok=True)
    (gitdir / "info" / "exclude").write_text(".squirrel/\n")
    run_quiet(["git", "add", "-A"], cwd=str(tree), env=env)
    run_quiet(["git", "commit", "-q", "-m", "bench"], cwd=str(tree), env=env)
    return env
