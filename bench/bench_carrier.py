"""Benchmark: what does a visit of the laptop (`sq sync DRIVE`) cost?

1. A visit with nothing to do. Two drives hold the same 100,000 small files
   in 2,000 directories and the carrier has seen both (it holds no content).
   `sq sync A` is timed against `sq scan A` of the same unchanged drive, best
   of N, warm page cache. A visit must stat every file like the scan (inode
   numbers and directory mtimes cannot be trusted on the drives sq targets),
   and then plan both ways; the planner skips every subtree the other side
   already knows, so the visit should cost little more than its scan.
   Goal: below 1.3 times the scan.
2. Carrying new media. 2 GiB of new files (32 MiB each, random bytes) on
   drive A; drives B and C are known to the carrier and lack them. Three
   visits carry them: A (into the carrier), B and C (out of it; the last
   one drops them). Timed against `cp -r` of the same bytes three times
   (drive -> laptop -> drive -> drive), and `cp -r` followed by `sync` each
   time, since sq fsyncs every file it writes. A's new files are hashed by
   an untimed `sq init` first, so the figure is the carrying (read, verify,
   write, fsync), not the first hashing, which a copy does not do.
3. The carrier's metadata: the bytes of everything in the carrier except
   `objects/` (its index, its drive records, its config) once it has seen the
   two drives of part 1, per 100,000 indexed files.
4. What the carrier answers from its records alone: `sq carrier at-risk`,
   `sq carrier next` and `sq carrier status` on the carrier of part 1, with
   no drive read. Three states: quiet (nothing at risk); 1% of the files
   new on drive A and taken by a visit (at risk until B is visited); and a
   third drive C joined empty and visited once (it lacks every version,
   which `next` and `status` walk). Timed against `sq carrier config`, which
   only starts `sq` and reads `carrier.json`: the difference is the work.
   Goal: each answer under a second, start-up included.

Everything lives in one temporary directory under /tmp (or --tmp), removed at
the end, with its own carrier (the user's is never touched). Full size needs
about 8 GiB of disk and several minutes. `bench/run.sh` passes its arguments
to every benchmark script; each ignores the options it does not know.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
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

GOAL_QUIET_VISIT = 1.3
GOAL_RECORDS_S = 1.0
RECORD_COMMANDS = (("at-risk",), ("next",), ("status",))


def tree_bytes(root: Path, skip: str | None = None) -> tuple[int, int]:
    """(apparent bytes, bytes allocated on disk) of the files under root,
    leaving out any directory named `skip`."""
    apparent = allocated = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if skip is not None:
            dirnames[:] = [d for d in dirnames if d != skip]
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return apparent, allocated


class Laptop:
    def __init__(self, sq: list[str], carrier: Path) -> None:
        self.sq = sq
        self.carrier = carrier

    def visit(self, drive: Path, *extra: str) -> tuple[float, dict[str, Any]]:
        t, out = timed([*self.sq, "sync", str(drive), "--carrier", str(self.carrier), "--json", *extra])
        doc: dict[str, Any] = json.loads(out)
        if doc["failed"] or doc["conflicts"]:
            sys.exit(f"bench: the visit of {drive} met conflicts or failures: {doc}")
        return t, doc

    def until_quiet(self, drives: Sequence[Path], rounds: int = 10) -> None:
        for _ in range(rounds):
            docs = [self.visit(d)[1] for d in drives]
            if all(quiet(doc) for doc in docs):
                return
        sys.exit(f"bench: the drives {drives} did not settle in {rounds} rounds")


def quiet(doc: dict[str, Any]) -> bool:
    busy = doc["created"] + doc["updated"] + doc["deleted"] + doc["taken"] + doc["carried_in"]
    return not (busy or doc["deferred"] or doc["left_behind"])


@dataclass
class RecordsResult:
    state: str
    at_risk: int  # versions at risk in this state
    t_baseline: float  # `sq carrier config`
    times: dict[str, float]  # command -> best wall time


@dataclass
class QuietResult:
    t_visit: float
    t_scan: float
    meta_apparent: int
    meta_allocated: int
    records: list[RecordsResult]


@dataclass
class CarryResult:
    size: int
    t_visits: list[float]
    t_cp: float
    t_cp_sync: float


def bench_quiet_visit(tmp: Path, files: int, dirs: int, runs: int, sq: list[str]) -> QuietResult:
    a, b = tmp / "A", tmp / "B"
    a.mkdir()
    print(f"building {files:,} files in {dirs:,} directories ...", flush=True)
    t0 = time.perf_counter()
    build_tree(a, files, dirs)
    run(["cp", "-a", f"{a}/.", str(b)])
    print(f"  built and copied in {time.perf_counter() - t0:.1f} s", flush=True)

    laptop = Laptop(sq, tmp / "carrier")
    t0 = time.perf_counter()
    run([*sq, "init", str(a), "--name", "A"])
    run([*sq, "carrier", "config", "--carrier", str(laptop.carrier), "--max-size", "1G"])
    laptop.visit(a)
    run([*sq, "init", str(b), "--name", "B", "--join", str(laptop.carrier)])
    laptop.until_quiet([b, a])
    print(f"  sq init x2 and the first visits (matching by content): {time.perf_counter() - t0:.1f} s", flush=True)
    meta_apparent, meta_allocated = tree_bytes(laptop.carrier, skip="objects")

    print(f"  timing, best of {runs} ...", flush=True)
    t_visit = t_scan = float("inf")
    for _ in range(runs):
        t, doc = laptop.visit(a)
        if not quiet(doc):
            sys.exit(f"bench: a visit with nothing to do did something: {doc}")
        t_visit = min(t_visit, t)
        t, _ = timed([*sq, "scan", str(a)])
        t_scan = min(t_scan, t)
    records = bench_records(tmp, laptop, a, files, runs, sq)
    shutil.rmtree(a)
    shutil.rmtree(b)
    shutil.rmtree(laptop.carrier)
    return QuietResult(t_visit, t_scan, meta_apparent, meta_allocated, records)


def time_records(laptop: Laptop, state: str, runs: int, sq: list[str]) -> RecordsResult:
    """Best-of-`runs` wall times of the commands that read only the carrier's records."""
    where = ["--carrier", str(laptop.carrier)]
    t_base = min(timed([*sq, "carrier", "config", *where])[0] for _ in range(runs))
    times: dict[str, float] = {}
    count = 0
    for cmd in RECORD_COMMANDS:
        best = float("inf")
        for _ in range(runs):
            t0 = time.perf_counter()
            proc = subprocess.run([*sq, "carrier", *cmd, *where, "--json"], capture_output=True, text=True)
            best = min(best, time.perf_counter() - t0)
            if proc.returncode not in (0, 1):
                sys.exit(f"bench: sq carrier {cmd[0]} exited {proc.returncode}: {proc.stderr}")
            if cmd == ("at-risk",):
                count = json.loads(proc.stdout)["count"]
        times[cmd[0]] = best
    return RecordsResult(state, count, t_base, times)


def bench_records(tmp: Path, laptop: Laptop, a: Path, files: int, runs: int, sq: list[str]) -> list[RecordsResult]:
    print("  the carrier's records: at-risk, next, status ...", flush=True)
    out = [time_records(laptop, "quiet", runs, sq)]
    new = max(1, files // 100)
    for i in range(new):
        p = a / "imports" / f"new_{i:06d}.jpg"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(os.urandom(100 + i % 800))
        age(p)
    laptop.visit(a)
    out.append(time_records(laptop, f"{new:,} new on A", runs, sq))
    c = tmp / "C"
    c.mkdir()
    run([*sq, "init", str(c), "--name", "C", "--join", str(laptop.carrier)])
    laptop.visit(c)
    out.append(time_records(laptop, "C lacks everything", runs, sq))
    shutil.rmtree(c)
    return out


def bench_carry(tmp: Path, total: int, runs: int, sq: list[str]) -> CarryResult:
    count = max(1, total // (32 * MIB))
    size = total // count
    drives = [tmp / name for name in ("MA", "MB", "MC")]
    a = drives[0]
    (a / "new").mkdir(parents=True)
    print(f"writing {count} files of {size / MIB:.0f} MiB of random bytes ...", flush=True)
    for i in range(count):
        p = a / "new" / f"clip{i:03d}.mov"
        write_random(p, size)
        age(p)

    t_visits = [float("inf")] * 3
    t_cp = t_cp_sync = float("inf")
    for n in range(runs):
        laptop = Laptop(sq, tmp / f"carrier{n}")
        run([*sq, "init", str(a), "--name", f"MA{n}"])
        run([*sq, "carrier", "config", "--carrier", str(laptop.carrier), "--max-size", str(count * size + 64 * MIB)])
        laptop.visit(a)  # the carrier meets A alone: it keeps no content yet
        for i, d in enumerate(drives[1:], 1):
            d.mkdir()
            run([*sq, "init", str(d), "--name", f"M{'ABC'[i]}{n}", "--join", str(a)])
            laptop.visit(d)
        run(["sync"])
        print(f"  run {n + 1}/{runs}: three visits ...", flush=True)
        times = []
        for d in drives:
            t, doc = laptop.visit(d)
            times.append(t)
            if d != a and doc["created"] < count:
                sys.exit(f"bench: the visit of {d} did not deliver every file: {doc}")
        if any(laptop.carrier.glob("vaults/*/objects/*/*")):
            sys.exit("bench: the carrier still holds content after the last visit")
        t_visits = [min(x, y) for x, y in zip(t_visits, times, strict=True)]
        for d in drives:
            shutil.rmtree(d / ".squirrel")
        for d in drives[1:]:
            shutil.rmtree(d)
        shutil.rmtree(laptop.carrier)
        run(["sync"])

        print(f"  run {n + 1}/{runs}: cp -r three times ...", flush=True)
        hops = [a / "new", tmp / "cp-laptop", tmp / "cp-b", tmp / "cp-c"]
        t = 0.0
        for src, dst in zip(hops[:1] + [hops[1]] * 2, hops[1:], strict=True):
            dt, _ = timed(["cp", "-r", str(src), str(dst)])
            t += dt
        t_cp = min(t_cp, t)
        for p in hops[1:]:
            shutil.rmtree(p)
        run(["sync"])
        t = 0.0
        for src, dst in zip(hops[:1] + [hops[1]] * 2, hops[1:], strict=True):
            dt, _ = timed(["sh", "-c", 'cp -r "$1" "$2" && sync', "sh", str(src), str(dst)])
            t += dt
        t_cp_sync = min(t_cp_sync, t)
        for p in hops[1:]:
            shutil.rmtree(p)
        run(["sync"])
    shutil.rmtree(a)
    return CarryResult(count * size, t_visits, t_cp, t_cp_sync)


def main(argv: list[str] | None = None) -> None:
    ap = new_parser(__doc__)
    ap.add_argument("--files", type=int, default=100_000, help="files on the quiet drive (default 100000)")
    ap.add_argument("--dirs", type=int, default=None, help="number of directories (default files/50)")
    ap.add_argument("--runs", type=int, default=3, help="best of this many quiet visits (default 3)")
    ap.add_argument("--mib", type=int, default=2048, help="MiB of new media carried (default 2048)")
    ap.add_argument("--carry-runs", type=int, default=1, help="best of this many carrying runs (default 1)")
    add_tmp_option(ap)
    args, _ = ap.parse_known_args(argv)
    dirs = args.dirs or max(1, args.files // 50)
    sq = sq_command()
    os.environ["SQ_NO_PROGRESS"] = "1"

    print(f"sq carrier benchmark: {args.files:,} files, {dirs:,} dirs, {args.mib:,} MiB of media", flush=True)
    with bench_dir("sq-bench-carrier-", args.tmp) as tmp:
        q = bench_quiet_visit(tmp, args.files, dirs, args.runs, sq)
        c = bench_carry(tmp, args.mib * MIB, args.carry_runs, sq)
    report(args.files, dirs, args.runs, q, c)


def report(files: int, dirs: int, runs: int, q: QuietResult, c: CarryResult) -> None:
    print()
    print(f"== a visit with nothing to do, drive of {files:,} files ({dirs:,} dirs), best of {runs}, warm cache")
    print(f"  sq sync A          {fmt_s(q.t_visit)}")
    print(f"  sq scan A          {fmt_s(q.t_scan)}")
    ratio = q.t_visit / q.t_scan
    verdict = "met" if ratio < GOAL_QUIET_VISIT else "NOT met"
    print(f"  ratio visit/scan {ratio:6.2f}   (goal < {GOAL_QUIET_VISIT}: {verdict})")
    print()
    per = 100_000 / files
    print(f"== carrier metadata (everything but objects/) after seeing two drives of {files:,} files")
    print(f"  {q.meta_apparent / MIB:8.1f} MiB ({q.meta_allocated / MIB:.1f} MiB on disk)")
    print(f"  {q.meta_apparent * per / MIB:8.1f} MiB per 100,000 files ({q.meta_apparent / files:.0f} bytes a file)")
    print()
    print(f"== answers from the carrier's records alone, {files:,} files, best of {runs}")
    print(f"  {'state':<22} {'at risk':>8} {'config':>11}" + "".join(f" {c[0]:>11}" for c in RECORD_COMMANDS))
    worst = 0.0
    for r in q.records:
        cells = "".join(f" {fmt_s(r.times[c[0]])}" for c in RECORD_COMMANDS)
        print(f"  {r.state:<22} {r.at_risk:>8,} {fmt_s(r.t_baseline)}{cells}")
        worst = max([worst, *r.times.values()])
    for r in q.records:
        ratios = ", ".join(f"{c[0]} {r.times[c[0]] / r.t_baseline:.2f}" for c in RECORD_COMMANDS)
        print(f"  ratio to `sq carrier config` ({r.state}): {ratios}")
    verdict = "met" if worst < GOAL_RECORDS_S else "NOT met"
    print(f"  slowest answer {fmt_s(worst)}   (goal < {GOAL_RECORDS_S:.1f} s: {verdict})")
    print()
    gib = c.size / (1 << 30)
    t_sq = sum(c.t_visits)
    moved = 3 * c.size / MIB
    print(f"== {gib:.2f} GiB of new media carried from drive A to drives B and C")
    for name, t in zip(("A (in)", "B (out)", "C (out, drop)"), c.t_visits, strict=True):
        print(f"  sq sync {name:<14} {fmt_s(t)}   ({c.size / MIB / t:,.0f} MiB/s)")
    print(f"  three visits           {fmt_s(t_sq)}   ({moved / t_sq:,.0f} MiB/s)")
    print(f"  cp -r x3               {fmt_s(c.t_cp)}   ({moved / c.t_cp:,.0f} MiB/s)")
    print(f"  (cp -r && sync) x3     {fmt_s(c.t_cp_sync)}   ({moved / c.t_cp_sync:,.0f} MiB/s)")
    print(f"  throughput ratio sq/cp {c.t_cp / t_sq:6.2f}")
    print(f"  throughput ratio sq/(cp+sync) {c.t_cp_sync / t_sq:6.2f}")


if __name__ == "__main__":
    main()
