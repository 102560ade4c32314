"""Benchmark: how fast does `sq trash list` show a trash of 100,000 versions?

A replica's trash gets 100,000 items (through the index API, which is what
a sync calls for each version it moves aside: only the setup is quick) and
as many files in `.squirrel/trash/`, each named by its object id. Then,
best of --runs, on a warm page cache:

- `sq trash list --json` and `sq trash list` (every item, newest first);
- baselines: `find .squirrel/trash -printf '%s %T@ %p'` and `ls -l` of the
  folder, the floor for listing as many files with their size and time,
  and `sq --version`, the interpreter's start-up, included in every sq run.

Everything lives in one temporary directory under /tmp (or --tmp), removed
at the end: about 100,000 empty files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import add_tmp_option, bench_dir, best_of, fmt_s, new_parser, run, sq_command

from squirrel.plumbing.replica import Replica
from squirrel.plumbing.trash import DELETED, REPLACED, TrashItem, TrashReason

DAY = 86_400


def fill_trash(root: Path, items: int) -> None:
    """`items` trash items of distinct content, trashed over the last year,
    and their (empty) files."""
    now = int(time.time())
    reasons = [TrashReason(REPLACED, "drive1"), TrashReason(DELETED, "carrier")]
    with Replica.open(str(root)) as rep:
        trash = Path(rep.trash_dir)
        for i in range(items):
            oid = i.to_bytes(8, "big") + os.urandom(24)
            path = f"album{i % 100:02d}/d{i % 1000:04d}/img_{i:06d}.jpg".encode()
            when = now - (items - i) * 365 * DAY // items
            item = TrashItem(rep.index.next_trash_id(), oid, path, 100_000 + i, when, reasons[i % 2], when * 10**9)
            rep.index.trash_put(item)
            (trash / oid.hex()).touch()
            if i % 20_000 == 19_999:
                rep.index.commit()
        rep.index.commit()


def main(argv: list[str] | None = None) -> None:
    ap = new_parser(__doc__)
    ap.add_argument("--trash-items", type=int, default=100_000, help="items in the trash (default 100000)")
    ap.add_argument("--runs", type=int, default=3, help="take the best of this many runs (default 3)")
    add_tmp_option(ap)
    args, _ = ap.parse_known_args(argv)  # run.sh passes every script the same options
    sq = sq_command()
    n = args.trash_items
    print(f"sq trash benchmark: {n:,} items; {os.cpu_count()} CPUs, python {sys.version.split()[0]}", flush=True)
    with bench_dir("sq-bench-trash-", args.tmp) as tmp:
        drive = tmp / "drive"
        drive.mkdir()
        run([*sq, "init", str(drive), "--name", "bench"])
        print(f"filling the trash with {n:,} items ...", flush=True)
        t0 = time.perf_counter()
        fill_trash(drive, n)
        print(f"  filled in {time.perf_counter() - t0:.1f} s", flush=True)
        doc = json.loads(run([*sq, "trash", "list", str(drive), "--json"]))
        if doc["count"] != n:
            sys.exit(f"bench: sq trash list listed {doc['count']} items, not {n}")
        trash = str(drive / ".squirrel" / "trash")
        print(f"  timing, best of {args.runs} ...", flush=True)
        t_json = best_of(args.runs, [*sq, "trash", "list", str(drive), "--json"])
        t_text = best_of(args.runs, [*sq, "trash", "list", str(drive)])
        t_find = best_of(args.runs, ["find", trash, "-printf", "%s %T@ %p\\n"])
        t_ls = best_of(args.runs, ["ls", "-l", trash])
        t_start = best_of(args.runs, [*sq, "--version"])
        t_status = best_of(args.runs, [*sq, "status", str(drive)])
    print()
    print(f"== listing a trash of {n:,} versions (best of {args.runs}, warm cache)")
    print(f"  sq trash list --json {fmt_s(t_json)}   ({n / t_json:,.0f} items/s)")
    print(f"  sq trash list        {fmt_s(t_text)}")
    print(f"  find -printf         {fmt_s(t_find)}")
    print(f"  ls -l                {fmt_s(t_ls)}")
    print(f"  sq --version         {fmt_s(t_start)}   (interpreter start-up, included in each sq run)")
    print(f"  sq status            {fmt_s(t_status)}   (an empty tree; counts the trash)")
    print(f"  ratio sq list --json / find {t_json / t_find:6.2f}")
    print(f"  ratio sq list --json / ls   {t_json / t_ls:6.2f}")


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as e:
        sys.exit(f"bench: {e}")
