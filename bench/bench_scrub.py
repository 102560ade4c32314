"""Benchmark: how fast does a scrub re-read a replica, against `cat`?

A replica of photo-sized files (1 to 24 MiB of random bytes, --scrub-mib in
all, 2 GiB by default) is indexed with `sq init`. A scrub is meant to read the drive, not a
copy in memory: `sq verify` drops each file's cached pages before it reads
it. So both contenders are timed from the disk, with the files' cached
pages dropped (posix_fadvise DONTNEED) before each run, and each sq run is
paired with a `cat` run just before it: the disk of a shared machine reads
at 1.3 to 2.3 GB/s from one minute to the next, and weighs on both sides of
a pair alike. A ratio is the median of --runs pairs:

- `sq verify PATH --max-bytes TOTAL`: one slice that covers every file, a
  whole scrub cycle (every byte re-read and hashed, the position recorded);
- `sq verify PATH --max-bytes TOTAL/4`: the same cycle in slices, each a
  process of its own, all of them timed together;
- baseline: `cat FILES > /dev/null` over the same files, the floor for
  reading them.

The ratio printed is throughput (cat's time over sq's); the goal is 0.8 or
more. For reference, the same with a warm cache (sq hashing from memory,
which a scrub never does): that ratio is blake3 against memcpy.

Everything lives in one temporary directory under /tmp (or --tmp), removed
at the end.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

from common import MIB, add_tmp_option, age_tree, bench_dir, best_of, fmt_s, new_parser, run, run_quiet, sq_command


def paired(runs: int, cmd: list[str], cat: list[str], drop: list[str]) -> tuple[float, float, float]:
    """(median ratio cat/cmd, median cmd time, median cat time) over `runs`
    pairs, each timed from the disk, cat just before cmd."""
    t_cmd: list[float] = []
    t_cat: list[float] = []
    for _ in range(runs):
        for cmd_, times in ((cat, t_cat), (cmd, t_cmd)):
            run_quiet(drop)
            t0 = time.perf_counter()
            run_quiet(cmd_)
            times.append(time.perf_counter() - t0)
    ratio = statistics.median(c / t for c, t in zip(t_cat, t_cmd, strict=True))
    return ratio, statistics.median(t_cmd), statistics.median(t_cat)


def build(root: Path, total: int, seed: int = 15) -> list[Path]:
    """Files of 1 to 24 MiB of random bytes adding up to about `total`."""
    rng = random.Random(seed)
    files: list[Path] = []
    done = 0
    while done < total:
        size = min(rng.randint(1 * MIB, 24 * MIB), total - done)
        p = root / f"{2000 + len(files) // 50}" / f"img_{len(files):05d}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as f:
            left = size
            while left:
                n = min(left, 8 * MIB)
                f.write(os.urandom(n))
                left -= n
        files.append(p)
        done += size
    age_tree(root)
    return files


DROP = (
    "import os, sys\n"
    "for p in sys.argv[1:]:\n"
    "    fd = os.open(p, os.O_RDONLY)\n"
    "    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)\n"
    "    os.close(fd)\n"
)


def slices(sq: list[str], drive: Path, max_bytes: int) -> tuple[float, int, int]:
    """(seconds, bytes read, runs) of one scrub cycle in slices of `max_bytes`."""
    t0 = time.perf_counter()
    read = runs = 0
    while True:
        doc = json.loads(run([*sq, "verify", str(drive), "--max-bytes", str(max_bytes), "--json"]))
        read += doc["bytes"]
        runs += 1
        if doc["scrub"]["cycle_done"]:
            return time.perf_counter() - t0, read, runs


def main(argv: list[str] | None = None) -> None:
    ap = new_parser(__doc__)
    ap.add_argument("--scrub-mib", type=int, default=2048, help="content to scrub, MiB (default 2048)")
    ap.add_argument("--runs", type=int, default=5, help="the median of this many paired runs (default 5)")
    add_tmp_option(ap)
    args, _ = ap.parse_known_args(argv)  # run.sh passes every script the same options
    sq = sq_command()
    total = args.scrub_mib * MIB
    print(f"sq scrub benchmark: {args.scrub_mib:,} MiB; {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    with bench_dir("sq-bench-scrub-", args.tmp) as tmp:
        drive = tmp / "drive"
        drive.mkdir()
        print(f"writing {args.scrub_mib:,} MiB of photo-sized files ...", flush=True)
        files = build(drive, total)
        run([*sq, "init", str(drive), "--name", "bench"])
        cat = ["sh", "-c", 'cat "$@" > /dev/null', "sh", *map(str, files)]
        run_quiet(cat)  # warm-up read
        whole = [*sq, "verify", str(drive), "--max-bytes", str(2 * total)]
        doc = json.loads(run([*whole, "--json"]))
        if doc["bytes"] != total or not doc["scrub"]["cycle_done"]:
            sys.exit(f"bench: one slice read {doc['bytes']} bytes, not the {total} of the replica")
        drop = [sys.executable, "-c", DROP, *map(str, files)]
        print(f"  timing {args.runs} pairs ...", flush=True)
        ratio, t_sq, t_cat = paired(args.runs, whole, cat, drop)
        cycles = []
        for _ in range(args.runs):
            run_quiet(drop)
            t0 = time.perf_counter()
            run_quiet(cat)
            t_cat_here = time.perf_counter() - t0
            run_quiet(drop)
            t, read, n = slices(sq, drive, total // 4)
            if read != total:
                sys.exit(f"bench: a cycle in slices read {read} bytes, not {total}")
            cycles.append((t_cat_here / t, t))
        sliced_ratio = statistics.median(r for r, _ in cycles)
        t_sliced = statistics.median(t for _, t in cycles)
        # What a scrub costs whatever its size (start-up, opening the index,
        # recording the position): a slice of a replica of one small file.
        tiny = tmp / "tiny"
        tiny.mkdir()
        (tiny / "one.jpg").write_bytes(b"one")
        run([*sq, "init", str(tiny), "--name", "tiny"])
        t_fixed = best_of(args.runs, [*sq, "verify", str(tiny), "--max-bytes", str(total)])
        run_quiet(cat)
        t_warm_sq = best_of(args.runs, [*sq, "hash-object", *map(str, files)])
        t_warm_cat = best_of(args.runs, cat)
    print()
    print(f"== scrub of {len(files):,} files, {args.scrub_mib:,} MiB (medians of {args.runs} pairs, from the disk)")
    print(f"  sq verify --max-bytes (one slice)  {fmt_s(t_sq)}   ({total / MIB / t_sq:,.0f} MiB/s)")
    print(f"  sq verify in {n} slices            {fmt_s(t_sliced)}   ({total / MIB / t_sliced:,.0f} MiB/s)")
    print(f"  cat FILES > /dev/null              {fmt_s(t_cat)}   ({total / MIB / t_cat:,.0f} MiB/s)")
    print(f"  sq verify of one small file (best) {fmt_s(t_fixed)}   (start-up, index, position: included above)")
    print(f"  throughput ratio sq/cat          {ratio:6.2f}   (goal >= 0.8; median of the pairs)")
    print(f"  the same without that            {t_cat / (t_sq - t_fixed):6.2f}   (what a scrub of a large drive sees)")
    print(f"  throughput ratio sliced/cat      {sliced_ratio:6.2f}   ({n} processes: start-up included)")
    print(
        f"  warm cache, for reference: sq hash-object {fmt_s(t_warm_sq)}, cat {fmt_s(t_warm_cat)},"
        f" ratio {t_warm_cat / t_warm_sq:.2f}"
    )


if __name__ == "__main__":
    main()
