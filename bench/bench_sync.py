"""Benchmark: what does a sync cost when little changed, and how fast does content move?

1. Change detection between two big replicas. Two replicas of the same
   100,000 small files in 2,000 directories differ in 10 files (5 edited on
   each side). `sq reconcile A B` (scan both, plan, copy both ways) is timed
   against `rsync -an --delete A/ B/` (a dry run that only compares, one way,
   `.squirrel/` excluded), best of N, warm page cache. sq is expected to cost
   about what rsync's comparison costs: both must stat every file, because
   inode numbers and directory mtimes cannot be trusted on the drives sq
   targets. Each sq run gets 10 fresh edits, so every timed run does the
   same work.
2. Content throughput. 1 GiB of new files (64 files of 16 MiB of random
   bytes) pushed by `sq push` into a fresh replica, against `cp -r` of the same
   files (and `cp -r` followed by `sync`, since sq fsyncs every file before
   renaming it into place). The sender is scanned before the timing, so the
   figure is the copy (read, verify, write, fsync), not the first hashing.

Everything lives in one temporary directory under /tmp (or --tmp), removed at
the end. Full size needs about 3 GiB of disk and several minutes.
`bench/run.sh` passes its arguments to both benchmark scripts; each ignores
the options it does not know.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import (
    HOUR,
    MIB,
    add_tmp_option,
    age,
    bench_dir,
    build_tree,
    fmt_s,
    new_parser,
    run,
    sq_command,
    timed,
    write_random,
)


@dataclass
class ReconcileResult:
    t_sq: float
    t_rsync: float | None
    rsync_lines: int
    changed: int


@dataclass
class PushResult:
    size: int
    t_sq: float
    t_cp: float
    t_cp_sync: float


def edit_some(a: Path, b: Path, rel: list[str], round_no: int) -> None:
    """Edit half of `rel` on A and the other half on B, with content new to both."""
    for i, r in enumerate(rel):
        side = a if i % 2 == 0 else b
        p = side / r
        p.write_bytes(os.urandom(200) + f"round {round_no}".encode())
        age(p, HOUR / 2 - round_no)


def bench_reconcile(tmp: Path, files: int, dirs: int, diff: int, runs: int, sq: list[str]) -> ReconcileResult:
    a, b = tmp / "A", tmp / "B"
    a.mkdir()
    print(f"building {files:,} files in {dirs:,} directories ...", flush=True)
    t0 = time.perf_counter()
    made = build_tree(a, files, dirs)
    run(["cp", "-a", f"{a}/.", str(b)])
    print(f"  built and copied in {time.perf_counter() - t0:.1f} s", flush=True)

    t0 = time.perf_counter()
    run([*sq, "init", str(a), "--name", "A"])
    run([*sq, "init", str(b), "--name", "B", "--join", str(a)])
    first = json.loads(run([*sq, "reconcile", str(a), str(b), "--json"]))
    if first["conflicts"] or first["failed"]:
        sys.exit(f"bench: the identical replicas did not reconcile cleanly: {first}")
    print(f"  sq init x2 + first reconcile (matching by content): {time.perf_counter() - t0:.1f} s", flush=True)

    step = max(1, len(made) // diff)
    rel = [str(p.relative_to(a)) for p in made[::step][:diff]]
    rsync = shutil.which("rsync")
    rsync_cmd = ["rsync", "-an", "--delete", "--exclude=/.squirrel/", "--out-format=%n", f"{a}/", f"{b}/"]

    print(f"  timing, best of {runs} ({diff} files differ each time) ...", flush=True)
    t_sq = t_rsync = float("inf")
    rsync_lines = changed = 0
    for n in range(runs):
        edit_some(a, b, rel, n + 1)
        if rsync is not None:
            t, out = timed(rsync_cmd)
            t_rsync = min(t_rsync, t)
            rsync_lines = len([line for line in out.splitlines() if line and not line.endswith("/")])
        t, out = timed([*sq, "reconcile", str(a), str(b), "--json"])
        t_sq = min(t_sq, t)
        doc = json.loads(out)
        changed = doc["created"] + doc["updated"] + doc["deleted"]
        if doc["conflicts"] or doc["failed"]:
            sys.exit(f"bench: unexpected conflicts or failures: {doc}")
    if rsync is None:
        print("  rsync not found: skipping the rsync comparison", flush=True)
    shutil.rmtree(a)
    shutil.rmtree(b)
    return ReconcileResult(t_sq, t_rsync if rsync else None, rsync_lines, changed)


def bench_push(tmp: Path, count: int, size: int, runs: int, sq: list[str]) -> PushResult:
    a = tmp / "P"
    (a / "new").mkdir(parents=True)
    run([*sq, "init", str(a), "--name", "P"])
    print(f"writing {count} files of {size // MIB} MiB of random bytes ...", flush=True)
    for i in range(count):
        p = a / "new" / f"clip{i:03d}.mov"
        write_random(p, size)
        age(p)
    run([*sq, "scan", str(a)])  # hash once, untimed: the push then only copies

    print(f"  timing, best of {runs} ...", flush=True)
    t_sq = t_cp = t_cp_sync = float("inf")
    for n in range(runs):
        dst = tmp / f"Q{n}"
        dst.mkdir()
        run([*sq, "init", str(dst), "--name", f"Q{n}", "--join", str(a)])
        t, out = timed([*sq, "push", str(a), str(dst), "--json"])
        doc = json.loads(out)
        if doc["created"] != count + 1 or doc["failed"]:
            sys.exit(f"bench: the push did not create every file: {doc}")
        t_sq = min(t_sq, t)
        shutil.rmtree(dst)
        run(["sync"])

        target = tmp / f"cp{n}"
        t, _ = timed(["cp", "-r", str(a / "new"), str(target)])
        t_cp = min(t_cp, t)
        shutil.rmtree(target)
        run(["sync"])
        t, _ = timed(["sh", "-c", 'cp -r "$1" "$2" && sync', "sh", str(a / "new"), str(target)])
        t_cp_sync = min(t_cp_sync, t)
        shutil.rmtree(target)
        run(["sync"])
    shutil.rmtree(a)
    return PushResult(count * size, t_sq, t_cp, t_cp_sync)


def main(argv: list[str] | None = None) -> None:
    ap = new_parser(__doc__)
    ap.add_argument("--files", type=int, default=100_000, help="files in each replica (default 100000)")
    ap.add_argument("--dirs", type=int, default=None, help="number of directories (default files/50)")
    ap.add_argument("--diff", type=int, default=10, help="files that differ between the replicas (default 10)")
    ap.add_argument("--runs", type=int, default=3, help="take the best of this many runs (default 3)")
    ap.add_argument("--push-files", type=int, default=64, help="new files pushed (default 64)")
    ap.add_argument("--push-mib", type=int, default=16, help="size of each pushed file, MiB (default 16)")
    add_tmp_option(ap)
    args, _ = ap.parse_known_args(argv)
    dirs = args.dirs or max(1, args.files // 50)
    sq = sq_command()

    print(f"sq sync benchmark: {args.files:,} files, {dirs:,} dirs; {os.cpu_count()} CPUs", flush=True)
    with bench_dir("sq-bench-sync-", args.tmp) as tmp:
        r = bench_reconcile(tmp, args.files, dirs, args.diff, args.runs, sq)
        p = bench_push(tmp, args.push_files, args.push_mib * MIB, args.runs, sq)
    report(args.files, dirs, args.diff, args.runs, r, p)


def report(files: int, dirs: int, diff: int, runs: int, r: ReconcileResult, p: PushResult) -> None:
    print()
    print(f"== two replicas of {files:,} files ({dirs:,} dirs) that differ in {diff} (best of {runs}, warm cache)")
    print(f"  sq reconcile A B        {fmt_s(r.t_sq)}   ({r.changed} files copied, both ways)")
    if r.t_rsync is None:
        print("  rsync not found: no rsync baseline, no ratio")
    else:
        print(f"  rsync -an --delete A/ B/ {fmt_s(r.t_rsync)}  ({r.rsync_lines} files listed, one way, dry run)")
        print(f"  ratio sq/rsync {r.t_sq / r.t_rsync:6.2f}")
    print()
    gib = p.size / (1 << 30)
    print(f"== push of {gib:.2f} GiB of new files into a fresh replica (best of {runs})")
    print(f"  sq push          {fmt_s(p.t_sq)}   ({p.size / MIB / p.t_sq:,.0f} MiB/s)")
    print(f"  cp -r            {fmt_s(p.t_cp)}   ({p.size / MIB / p.t_cp:,.0f} MiB/s)")
    print(f"  cp -r && sync    {fmt_s(p.t_cp_sync)}   ({p.size / MIB / p.t_cp_sync:,.0f} MiB/s)")
    print(f"  throughput ratio sq/cp {p.t_cp / p.t_sq:6.2f}")
    print(f"  throughput ratio sq/(cp+sync) {p.t_cp_sync / p.t_sq:6.2f}")


if __name__ == "__main__":
    main()
