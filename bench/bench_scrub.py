"""Benchmark: how fast does a scrub re-read a replica, against `cat`?

A replica of photo-sized files (1 to 24 MiB of random bytes, --scrub-mib in
all, 2 GiB by default) is indexed with `sq init`. A scrub is meant to read the drive, not a
copy in memory: `sq verify` drops each file's cached pages before it reads
it. So both contenders are timed from the disk, best of --runs, with the
files' cached pages dropped (posix_fadvise DONTNEED) before each run:

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
import sys
import time
from pathlib import Path

from common import MIB, add_tmp_option, age_tree, bench_dir, best_of, fmt_s, new_parser, run, run_quiet, sq_command


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
    ap.add_argument("--runs", type=int, default=3, help="take the best of this many runs (default 3)")
    add_tmp_option(ap)
    args, _ = ap.parse_known_args(argv)  # run.sh passes every script the same options
    sq = sq_command()
    # An installed sq has its bytecode compiled once; without this every run
    # here would compile sq's sources again, a cost no user pays.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
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
        print(f"  timing, best of {args.runs} ...", flush=True)
        t_sq = best_of(args.runs, whole, before=drop)
        t_cat = best_of(args.runs, cat, before=drop)
        cycles = []
        for _ in range(args.runs):
            run_quiet(drop)
            cycles.append(slices(sq, drive, total // 4))
        t_sliced, read, n = min(cycles)
        if read != total:
            sys.exit(f"bench: a cycle in slices read {read} bytes, not {total}")
        t_start = best_of(args.runs, [*sq, "--version"])
        run_quiet(cat)
        t_warm_sq = best_of(args.runs, [*sq, "hash-object", *map(str, files)])
        t_warm_cat = best_of(args.runs, cat)
    print()
    print(f"== scrub of {len(files):,} files, {args.scrub_mib:,} MiB (best of {args.runs}, from the disk)")
    print(f"  sq verify --max-bytes (one slice)  {fmt_s(t_sq)}   ({total / MIB / t_sq:,.0f} MiB/s)")
    print(f"  sq verify in {n} slices            {fmt_s(t_sliced)}   ({total / MIB / t_sliced:,.0f} MiB/s)")
    print(f"  cat FILES > /dev/null              {fmt_s(t_cat)}   ({total / MIB / t_cat:,.0f} MiB/s)")
    print(f"  sq --version                       {fmt_s(t_start)}   (interpreter start-up, included above)")
    print(f"  throughput ratio sq/cat          {t_cat / t_sq:6.2f}   (goal >= 0.8)")
    print(f"  the same without start-up        {t_cat / (t_sq - t_start):6.2f}   (what a scrub of a large drive sees)")
    print(f"  throughput ratio sliced/cat      {t_cat / t_sliced:6.2f}   ({n} processes: start-up included)")
    print(
        f"  warm cache, for reference: sq hash-object {fmt_s(t_warm_sq)}, cat {fmt_s(t_warm_cat)},"
        f" ratio {t_warm_cat / t_warm_sq:.2f}"
    )


if __name__ == "__main__":
    main()
