"""Benchmark: how fast is `sq scan` of an unchanged tree, and `sq hash-object`?

Baselines, on the same warm page cache:

- scan: `git status` (untracked cache off) and `find -printf '%s %T@'` over
  the same tree of small files. `find` is the floor for "stat every file";
  `git status` is what users compare a sync tool's change detection with.
- hashing: `cat FILE > /dev/null`, the floor for reading a file.
- memory: peak RSS of `sq init` / `sq scan` on a tree of many small files and
  on a tree with the same count where one file is 1 GiB, to show that memory
  depends on the number of files, not their size.
- the index on the drive: the bytes `.squirrel/` takes on disk after `sq
  init` of the small files, per file.

Everything lives in one temporary directory under /tmp (or --tmp), removed at
the end. Full size needs several minutes and about 4 GiB of disk.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import (
    MIB,
    Timed,
    add_tmp_option,
    allocated,
    bench_dir,
    best_of,
    build_tree,
    fmt_s,
    git_repo_of,
    new_parser,
    peak_rss_kib,
    run_quiet,
    sq_command,
    sweep_compare,
    times_in_turns,
    write_random,
)

RACY_GAP = 2.5  # seconds: files newer than sq's racy window would be rehashed


def settle() -> None:
    """Wait until freshly written files are older than sq's racy window."""
    time.sleep(RACY_GAP)


@dataclass
class ScanResult:
    t_sq: float
    t_git: float
    t_find: float
    t_start: float
    t_init: float
    rss_init: int
    rss_scan: int
    index_bytes: int  # allocated on disk by the replica's .squirrel/ after init


@dataclass
class MemoryResult:
    t_init: float
    rss_init: int
    rss_scan: int


@dataclass
class HashResult:
    t_sq: float
    t_cat: float
    size: int


def bench_scan(tmp: Path, files: int, dirs: int, runs: int, sq: list[str]) -> ScanResult:
    tree = tmp / "tree"
    tree.mkdir()
    print(f"sq: {sweep_compare()}; building {files:,} files in {dirs:,} directories ...", flush=True)
    t0 = time.perf_counter()
    build_tree(tree, files, dirs, seconds_ago=None)
    print(f"  built in {time.perf_counter() - t0:.1f} s", flush=True)
    settle()

    rss_init, t_init = peak_rss_kib([*sq, "init", str(tree), "--name", "bench"])
    print(f"  sq init (hashes every file): {t_init:.1f} s, peak RSS {rss_init / 1024:.0f} MiB", flush=True)

    # One scan first: it must find nothing to hash, or the timing is not of an unchanged tree.
    out = subprocess.run([*sq, "scan", str(tree), "--json"], check=True, capture_output=True, text=True).stdout
    hashed = json.loads(out)["hashed"]
    if hashed:
        print(f"  warning: the first scan after init hashed {hashed} files", flush=True)

    # git keeps its repository outside the tree so that neither sq nor find sees it.
    gitdir = tmp / "gitdir"
    print("  git init + add + commit ...", flush=True)
    genv = git_repo_of(tree, gitdir)
    git_status = ["git", "-c", "core.untrackedCache=false", "-c", "core.fsmonitor=false", "status", "--porcelain"]
    run_quiet(git_status, cwd=str(tree), env=genv)  # let git refresh its index once

    print(f"  timing, best of {runs} ...", flush=True)
    times = times_in_turns(
        runs,
        {
            "sq": Timed([*sq, "scan", str(tree)]),
            "git": Timed(git_status, str(tree), genv),
            "find": Timed(["sh", "-c", "find . -printf '%s %T@\\n' > /dev/null"], str(tree)),
            "start": Timed([*sq, "--version"]),
        },
    )
    t_sq, t_git, t_find, t_start = (min(times[k]) for k in ("sq", "git", "find", "start"))

    rss_scan, _ = peak_rss_kib([*sq, "scan", str(tree)])
    index_bytes = allocated(tree / ".squirrel")
    shutil.rmtree(gitdir)
    shutil.rmtree(tree)
    return ScanResult(t_sq, t_git, t_find, t_start, t_init, rss_init, rss_scan, index_bytes)


def bench_memory_big(tmp: Path, files: int, dirs: int, big: int, sq: list[str]) -> MemoryResult:
    tree = tmp / "tree-big"
    tree.mkdir()
    print(f"building {files:,} files, one of them {big // MIB:,} MiB ...", flush=True)
    build_tree(tree, files, dirs, big_first=big, seconds_ago=None)
    settle()
    rss_init, t_init = peak_rss_kib([*sq, "init", str(tree), "--name", "bench-big"])
    print(f"  sq init: {t_init:.1f} s, peak RSS {rss_init / 1024:.0f} MiB", flush=True)
    rss_scan, _ = peak_rss_kib([*sq, "scan", str(tree)])
    shutil.rmtree(tree)
    return MemoryResult(t_init, rss_init, rss_scan)


def bench_hash(tmp: Path, size: int, runs: int, sq: list[str]) -> HashResult:
    big = tmp / "big.bin"
    print(f"writing a {size / (1 << 30):.2f} GiB file of random bytes ...", flush=True)
    write_random(big, size)
    cat = ["sh", "-c", 'cat "$1" > /dev/null', "sh", str(big)]
    run_quiet(cat)  # warm-up read: both contenders then read from the page cache
    print(f"  timing, best of {runs} ...", flush=True)
    t_sq = best_of(runs, [*sq, "hash-object", str(big)])
    t_cat = best_of(runs, cat)
    big.unlink()
    return HashResult(t_sq, t_cat, size)


def main(argv: list[str] | None = None) -> None:
    ap = new_parser(__doc__)
    ap.add_argument("--files", type=int, default=100_000, help="number of small files (default 100000)")
    ap.add_argument("--dirs", type=int, default=None, help="number of directories (default files/50)")
    ap.add_argument("--runs", type=int, default=3, help="take the best of this many runs (default 3)")
    ap.add_argument("--hash-mib", type=int, default=2048, help="size of the file to hash, MiB (default 2048)")
    ap.add_argument("--big-mib", type=int, default=1024, help="size of the big file in the memory test (1024)")
    add_tmp_option(ap)
    args, _ = ap.parse_known_args(argv)  # run.sh passes every script the same options
    dirs = args.dirs or max(1, args.files // 50)
    sq = sq_command()

    env_note = f"{os.cpu_count()} CPUs, python {sys.version.split()[0]}, git {git_version()}"
    print(f"sq benchmark: {args.files:,} files, {dirs:,} dirs; {env_note}", flush=True)
    with bench_dir("sq-bench-", args.tmp) as tmp:
        s = bench_scan(tmp, args.files, dirs, args.runs, sq)
        m = bench_memory_big(tmp, args.files, dirs, args.big_mib * MIB, sq)
        h = bench_hash(tmp, args.hash_mib * MIB, args.runs, sq)

    report(args.files, dirs, args.runs, args.big_mib, s, m, h)


def report(files: int, dirs: int, runs: int, big_mib: int, s: ScanResult, m: MemoryResult, h: HashResult) -> None:
    print()
    print(f"== scan of an unchanged tree ({files:,} files, {dirs:,} dirs; best of {runs}, warm cache)")
    print(f"  sq scan              {fmt_s(s.t_sq)}   ({files / s.t_sq:,.0f} files/s)")
    print(f"  git status           {fmt_s(s.t_git)}")
    print(f"  find -printf         {fmt_s(s.t_find)}")
    print(f"  sq --version         {fmt_s(s.t_start)}   (interpreter start-up, included in sq scan)")
    print(f"  ratio sq/git  {s.t_sq / s.t_git:6.2f}")
    print(f"  ratio sq/find {s.t_sq / s.t_find:6.2f}")
    print(f"  index on the drive   {s.index_bytes / files:6.0f} B/file   (goal <= 300)")
    print()
    print(f"== hashing a {h.size / (1 << 30):.2f} GiB file (best of {runs}, after a warm-up read)")
    print(f"  sq hash-object       {fmt_s(h.t_sq)}   ({h.size / MIB / h.t_sq:,.0f} MiB/s)")
    print(f"  cat > /dev/null      {fmt_s(h.t_cat)}   ({h.size / MIB / h.t_cat:,.0f} MiB/s)")
    print(f"  throughput ratio sq/cat {h.t_cat / h.t_sq:6.2f}")
    print()
    print(f"== peak memory (max RSS), {files:,} files")
    rows = [
        ("sq init, small files", s.rss_init),
        ("sq scan, small files", s.rss_scan),
        (f"sq init, one file {big_mib} MiB", m.rss_init),
        (f"sq scan, one file {big_mib} MiB", m.rss_scan),
    ]
    for label, kib in rows:
        print(f"  {label:<28} {kib / 1024:8.1f} MiB")
    print(f"  (sq init took {s.t_init:.1f} s for the small files, {m.t_init:.1f} s with the big file)")


def git_version() -> str:
    try:
        return subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.split()[-1]
    except OSError:
        return "missing"


if __name__ == "__main__":
    main()
