"""Benchmark at a million files: does every figure grow no faster than the vault?

`make bench-scale` runs this on 1,000,000 small files, 100 to a folder (a
photo library's shape: 100 albums of 100 folders of 100 pictures), and
writes what it measured, and on what machine, to docs/scale.md.

Each figure is taken next to the baseline users compare it with, in the same
run, on the same warm page cache; a figure is the median of --runs runs:

- init: `sq init` (hashes every file) against `git add -A` + `git commit`.
- scan of an unchanged tree: `sq scan` against `git status`.
- reconcile of two replicas that differ in 10 files (5 edited on each side):
  `sq reconcile A B` against `rsync -an --delete A/ B/` (one way, dry run).
- the laptop: the first visits of both drives, then a visit with nothing to
  do against `sq scan` of the same drive; last, the first visit of a new,
  empty drive before the carrier holds anything for it (every file waits).
- `sq pack --for B` of 10 edits of A.
- sizes: the index on a drive and the carrier's metadata, in bytes a file.
- peak memory (max RSS) of init, scan, reconcile, the visits and pack. The
  figure includes the pages of the index that LMDB maps into the process:
  they are the drive's file, shared and dropped first under pressure.

The files are 100 to 900 bytes: what these steps cost depends on the number
of files, not their size (bench_scan.py and bench_sync.py measure bytes).
Everything lives in one temporary directory under /tmp (or --tmp), removed at
the end. At 1,000,000 files it needs about 12 GiB of disk and about 20
minutes on 2 quiet cores; `--files 100000` takes under 2 minutes.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    HOUR,
    Peak,
    Timed,
    add_tmp_option,
    age,
    allocated,
    bench_dir,
    build_tree,
    git_env,
    new_parser,
    peak_memory,
    run,
    run_quiet,
    sq_command,
    sweep_compare,
    timed,
    times_in_turns,
)

PER_DIR = 100
DIFF = 10


@dataclass
class Figure:
    label: str
    value: float
    unit: str  # "s", "x", "B/file", "MiB", "files/s"
    goal: str = ""

    def cell(self) -> str:
        if self.unit == "s":
            return f"{self.value:.2f} s"
        if self.unit == "x":
            return f"{self.value:.2f}×"
        if self.unit == "files/s":
            return f"{self.value:,.0f} files/s"
        return f"{self.value:,.0f} {self.unit}"


@dataclass
class Results:
    files: int
    figures: list[Figure] = field(default_factory=list)

    def add(self, label: str, value: float, unit: str, goal: str = "") -> None:
        f = Figure(label, value, unit, goal)
        self.figures.append(f)
        print(f"  {label:<64} {f.cell():>16}  {goal}", flush=True)


def median_of(runs: int, step: Callable[[int], float]) -> float:
    return statistics.median(step(n) for n in range(runs))


def median_time(runs: int, cmd: Sequence[str], cwd: str | None = None, env: dict[str, str] | None = None) -> float:
    def once(_: int) -> float:
        t0 = time.perf_counter()
        run_quiet(cmd, cwd, env)
        return time.perf_counter() - t0

    return median_of(runs, once)


def sq_json(cmd: Sequence[str]) -> tuple[float, dict[str, Any]]:
    t, out = timed(cmd)
    doc: dict[str, Any] = json.loads(out)
    if doc.get("failed") or doc.get("conflicts"):
        sys.exit(f"bench: {' '.join(cmd)} met conflicts or failures: {doc}")
    return t, doc


def edit_some(a: Path, b: Path, rel: list[str], round_no: int) -> None:
    """Edit half of `rel` on A and the other half on B, with content new to both."""
    for i, r in enumerate(rel):
        p = (a if i % 2 == 0 else b) / r
        p.write_bytes(os.urandom(200) + f"round {round_no}".encode())
        age(p, HOUR / 2 - round_no)


def bench(tmp: Path, files: int, runs: int, sq: list[str]) -> Results:
    res = Results(files)
    a, b, carrier, gitdir = tmp / "A", tmp / "B", tmp / "carrier", tmp / "git"
    dirs = max(1, files // PER_DIR)
    a.mkdir()
    print(f"building {files:,} files in {dirs:,} folders ...", flush=True)
    t0 = time.perf_counter()
    made = build_tree(a, files, dirs, seconds_ago=None)
    print(f"  built in {time.perf_counter() - t0:.0f} s; copying to a second drive ...", flush=True)
    run(["cp", "-a", f"{a}/.", str(b)])
    # Older than sq's 2-second racy window, so the scans below hash nothing.
    run(["find", str(a), str(b), "-type", "f", "-exec", "touch", "-d", "2 hours ago", "{}", "+"])

    print("init", flush=True)
    mem_init = peak_memory([*sq, "init", str(a), "--name", "A"])
    t_init = mem_init.seconds
    env = git_env(gitdir, a)
    run_quiet(["git", "init", "-q"], cwd=str(a), env=env)
    run_quiet(["git", "config", "gc.auto", "0"], cwd=str(a), env=env)
    (gitdir / "info").mkdir(exist_ok=True)
    (gitdir / "info" / "exclude").write_text(".squirrel/\n")
    t0 = time.perf_counter()
    run_quiet(["git", "add", "-A"], cwd=str(a), env=env)
    run_quiet(["git", "commit", "-q", "-m", "bench"], cwd=str(a), env=env)
    t_git_add = time.perf_counter() - t0
    res.add("sq init", t_init, "s")
    res.add("sq init throughput", files / t_init, "files/s")
    res.add("git add -A + git commit", t_git_add, "s")
    res.add("ratio sq init / git add + commit", t_init / t_git_add, "x")
    res.add("index on the drive", allocated(a / ".squirrel") / files, "B/file", "≤ 300")

    print(f"scan of an unchanged tree (median of {runs})", flush=True)
    git_status = ["git", "-c", "core.untrackedCache=false", "-c", "core.fsmonitor=false", "status", "--porcelain"]
    run_quiet(git_status, cwd=str(a), env=env)  # git refreshes its index once
    if json.loads(run([*sq, "scan", str(a), "--json"]))["hashed"]:
        sys.exit("bench: the first scan after init hashed files: the tree is not unchanged")
    times = times_in_turns(runs, {"sq": Timed([*sq, "scan", str(a)]), "git": Timed(git_status, str(a), env)})
    t_scan, t_git = statistics.median(times["sq"]), statistics.median(times["git"])
    mem_scan = peak_memory([*sq, "scan", str(a)])
    shutil.rmtree(gitdir)
    res.add("sq scan", t_scan, "s")
    res.add("git status", t_git, "s")
    res.add("ratio sq scan / git status", t_scan / t_git, "x", "≤ 1.5")

    print("the laptop's first visits", flush=True)
    run([*sq, "carrier", "config", "--carrier", str(carrier), "--max-size", "1G"])
    visit = [*sq, "sync", "--carrier", str(carrier), "--json"]
    mem_visit_a = peak_memory([*visit, str(a)])
    t_visit_a = mem_visit_a.seconds
    res.add("first visit of A (takes the whole vault's metadata)", t_visit_a, "s")
    run([*sq, "init", str(b), "--name", "B", "--join", str(carrier)])
    mem_visit_b = peak_memory([*visit, str(b)])
    t_visit_b = mem_visit_b.seconds
    res.add("first visit of B (matches its files by content)", t_visit_b, "s")
    for drive in (a, b, a):  # until both are quiet: B's visit taught the carrier B's sync times
        sq_json([*visit, str(drive)])
    res.add("carrier metadata", allocated(carrier, skip="objects") / files, "B/file", "≤ 200")

    def quiet_visit(_: int) -> float:
        t, doc = sq_json([*visit, str(a)])
        busy = doc["created"] + doc["updated"] + doc["deleted"] + doc["taken"] + doc["carried_in"]
        if busy or doc["deferred"] or doc["left_behind"]:
            sys.exit(f"bench: a visit with nothing to do did something: {doc}")
        return t

    def scan_a(_: int) -> float:
        return timed([*sq, "scan", "--json", str(a)])[0]

    # The visits and the scans in turns, as every other pair: the carrier's
    # set-up has just written a lot, and the disk's minute moves both alike.
    subprocess.run(["sync"], check=True)
    turns: dict[str, list[float]] = {"visit": [], "scan": []}
    steps = {"visit": quiet_visit, "scan": scan_a}
    for n in range(runs):
        for name in steps if n % 2 == 0 else reversed(steps):
            turns[name].append(steps[name](n))
    t_quiet, t_scan_a = statistics.median(turns["visit"]), statistics.median(turns["scan"])
    mem_quiet = peak_memory([*visit, str(a)])
    res.add("visit with nothing to do", t_quiet, "s")
    res.add("sq scan of the same drive, in turns with the visits", t_scan_a, "s")
    res.add("ratio quiet visit / sq scan", t_quiet / t_scan_a, "x", "≤ 1.1")

    print(f"reconcile of two drives differing in {DIFF} files (median of {runs})", flush=True)
    step = max(1, len(made) // DIFF)
    rel = [str(p.relative_to(a)) for p in made[::step][:DIFF]]
    rsync_cmd = ["rsync", "-an", "--delete", "--exclude=/.squirrel/", f"{a}/", f"{b}/"]
    t_sq: list[float] = []
    t_rsync: list[float] = []
    mem_reconcile = Peak(0, 0, 0.0)
    for n in range(runs):
        edit_some(a, b, rel, n + 1)
        t_rsync.append(timed(rsync_cmd)[0])
        if n == 0:
            mem_reconcile = peak_memory([*sq, "reconcile", str(a), str(b)])
            t = mem_reconcile.seconds
        else:
            t, _ = sq_json([*sq, "reconcile", str(a), str(b), "--json"])
        t_sq.append(t)
    res.add("sq reconcile A B", statistics.median(t_sq), "s")
    res.add("rsync -an --delete A/ B/", statistics.median(t_rsync), "s")
    res.add("ratio sq reconcile / rsync -an", statistics.median(t_sq) / statistics.median(t_rsync), "x", "≤ 1.0")

    print(f"pack of {DIFF} edits", flush=True)
    edit_some(a, a, rel, runs + 1)
    run([*sq, "scan", str(a)])
    mem_pack = peak_memory([*sq, "pack", str(a), "-o", str(tmp / "edits.sqb"), "--for", str(b)])
    t_pack = mem_pack.seconds
    res.add(f"sq pack --for B ({DIFF} edits)", t_pack, "s")

    # Last: once the carrier knows a drive that lacks everything, visits of
    # A take content for it, and nothing above would be quiet.
    print("the first visit of a new, empty drive", flush=True)
    empty = tmp / "N"
    empty.mkdir()
    run([*sq, "init", str(empty), "--name", "N", "--join", str(carrier)])
    mem_empty = peak_memory([*visit, str(empty)])
    _, doc = sq_json([*visit, "--dry-run", str(empty)])
    if len(doc["deferred"]) != files or doc["created"]:
        sys.exit(f"bench: the empty drive does not wait for {files} files after its first visit: {doc}")
    res.add("first visit of an empty drive (all deferred)", mem_empty.seconds, "s")

    peaks = {
        "sq init": mem_init,
        "sq scan": mem_scan,
        "first visit of A": mem_visit_a,
        "first visit of B": mem_visit_b,
        "visit with nothing to do": mem_quiet,
        "sq reconcile": mem_reconcile,
        "sq pack --for": mem_pack,
        "first visit, empty drive": mem_empty,
    }
    for what, peak in peaks.items():
        res.add(f"peak memory of its own: {what}", peak.private_kib / 1024, "MiB", "≤ 300")
    for what, peak in peaks.items():
        res.add(f"peak resident set, mapped index included: {what}", peak.rss_kib / 1024, "MiB")
    return res


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    fs = subprocess.run(["df", "-T", "/tmp"], capture_output=True, text=True).stdout.split()[-6:-5]
    tools = []
    for tool in (["git", "--version"], ["rsync", "--version"]):
        words = subprocess.run(tool, capture_output=True, text=True).stdout.split()
        tools.append(f"{words[0]} {words[2]}" if len(words) > 2 else tool[0])  # "git version 2.39.5"
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, /tmp on {fs[0] if fs else '?'}, "
        f"Python {platform.python_version()}, {', '.join(tools)}, {platform.system()} {platform.release()}; "
        f"sq: {sweep_compare()}"
    )


def write_markdown(path: Path, res: Results, runs: int, seconds: float) -> None:
    day = datetime.date.today().isoformat()
    lines = [
        "# Figures at scale",
        "",
        f"Written by `make bench-scale` (bench/bench_scale.py) on {day}: {res.files:,} files,",
        f"{PER_DIR} to a folder, 100 to 900 bytes each; times are medians of {runs} runs where a",
        f"step is repeated; the whole run took {seconds / 60:.0f} minutes.",
        "",
        f"Machine: {machine()}.",
        "",
        "Peak memory of its own is the largest anonymous memory of the `sq` process",
        "and its sweep workers together, read from /proc every 10 ms: what `sq`",
        "allocates. The peak resident set adds the pages of the index that LMDB",
        "maps from the drive: clean page cache, shared, which the kernel takes",
        "back first when memory is short.",
        "",
        "| figure | measured | goal |",
        "|---|---|---|",
    ]
    lines += [f"| {f.label} | {f.cell()} | {f.goal} |" for f in res.figures]
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = new_parser(__doc__)
    ap.add_argument("--files", type=int, default=1_000_000, help="files in the vault (default 1000000)")
    ap.add_argument("--runs", type=int, default=3, help="median of this many runs (default 3)")
    ap.add_argument("--write", metavar="FILE", help="also write the figures as markdown to FILE")
    add_tmp_option(ap)
    args = ap.parse_args(argv)
    for tool in ("git", "rsync", "cp", "find"):
        if shutil.which(tool) is None:
            sys.exit(f"bench: {tool} is needed (make bench-scale installs it)")
    sq = sq_command()
    print(f"sq at scale: {args.files:,} files; {machine()}", flush=True)
    t0 = time.perf_counter()
    with bench_dir("sq-scale-", args.tmp) as tmp:
        res = bench(tmp, args.files, args.runs, sq)
    if args.write:
        write_markdown(Path(args.write), res, args.runs, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
