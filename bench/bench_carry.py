"""Benchmark: does sq carry bytes at the disk's speed?

Every way sq moves content is timed against `cp -r SRC DST && sync` of the
same bytes, measured in the same run on the same disk, and reported as the
ratio (cp + sync) / sq: 1.0 is the disk's speed, higher is faster.

- `sq pack SRC -o FILE --for DST`: the bundle written (DST an empty replica);
- `sq apply FILE DST`: that bundle applied to an empty replica;
- `sq push SRC DST` into an empty replica;
- a carrier transfer: `sq sync A` (the laptop takes the new content) then
  `sq sync B` (it delivers it), against two `cp -r && sync`.

Two data sets: large incompressible media (--large-mib, default 512, in
files of --large-file-mib, default 64) and many small files (--small-files,
default 10,000, of 1-20 KiB of random bytes, 200 to a folder). The sizes
the goals are set at are `--large-mib 2048 --small-files 100000`. A size of 0 skips
that set. The sender is hashed by an untimed `sq init` first, as a copy
hashes nothing. Each sq command is paired with a `cp -r && sync` timed just
before it in even runs and just after it in odd ones (a virtual disk
may slow down after a burst of writes, which would weigh on whichever goes
second), and each ratio is the median over --carry-runs runs (default 3)
of the pairs' ratios: the machine's load may come and go, and weighs on
both sides of a pair alike. Every run writes into fresh directories, and
each timed command is preceded by `sync`, so no one pays for another's
dirty pages.

Each set runs twice (--cache both, the default): with a warm page cache
(the sources were just written, and read by `sq init`), and cold, the
case of a drive just plugged in: before each timed command the page cache
is dropped (`echo 1 > /proc/sys/vm/drop_caches`, which needs root; without
it the cold runs are skipped) and the program alone is read back into it
(`sq COMMAND --help` and an import of every module of sq, which a
command's --help alone does not load, and `cp --version`), so that the
data comes from the disk and the program does not. The warm runs are removed before the cold ones
start, so that both need the disk of one.

Beside each ratio is the command's peak memory: its largest resident set
over the runs (the kernel's count, which takes in the sweep's workers),
for a carrier transfer the larger visit's. Memory must stay flat: under
200 MB for 100,000 files and for a file of 4 GiB (`--large-mib 4096
--large-file-mib 4096`).

Everything lives in one temporary directory under /tmp (or --tmp), removed
at the end; nothing is deleted before a set is done, except the runs of
more than 1 GiB of media. The default sizes need about 16 GiB of free disk,
the full sizes about 25 GiB.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    MIB,
    add_tmp_option,
    age,
    bench_dir,
    fmt_s,
    new_parser,
    program_warm_up,
    run,
    sq_command,
    timed,
    timed_peak,
    write_random,
)

KIB = 1 << 10
PER_DIR = 200
WORKS = ("pack --for", "apply", "push", "carrier A->B")
GOALS = {"large": 0.8, "small": 0.5}


@dataclass
class SetResult:
    name: str
    cold: bool
    files: int
    size: int
    cp_sync: dict[str, list[float]] = field(default_factory=lambda: {w: [] for w in WORKS})  # the paired copies
    sq: dict[str, list[float]] = field(default_factory=lambda: {w: [] for w in WORKS})
    peak_kib: dict[str, int] = field(default_factory=lambda: {w: 0 for w in WORKS})  # the largest of the runs

    def timed(self, work: str, cmd: list[str]) -> tuple[float, str]:
        """`cmd` run and timed for `work`, its peak memory kept."""
        t, out, peak = timed_peak(cmd)
        self.peak_kib[work] = max(self.peak_kib[work], peak)
        return t, out

    def ratio(self, work: str) -> float:
        """The median of the runs' ratios, each against the copy timed next to it."""
        return statistics.median(c / t for c, t in zip(self.cp_sync[work], self.sq[work], strict=True))


def make_large(src: Path, total: int, file_size: int) -> int:
    count = max(1, total // file_size)
    for i in range(count):
        p = src / "media" / f"clip{i:03d}.mov"
        p.parent.mkdir(parents=True, exist_ok=True)
        write_random(p, file_size)
        age(p)
    return count


def make_small(src: Path, files: int, seed: int = 11) -> int:
    rng = random.Random(seed)
    total = 0
    for i in range(files):
        d = src / "photos" / f"roll{i // PER_DIR:04d}"
        if i % PER_DIR == 0:
            d.mkdir(parents=True)
        size = rng.randint(1 * KIB, 20 * KIB)
        p = d / f"img_{i:06d}.jpg"
        p.write_bytes(os.urandom(size))
        age(p)
        total += size
    return total


def sync_disk() -> None:
    run(["sync"])


DROP_CACHES = Path("/proc/sys/vm/drop_caches")
RECENT_S = 65  # seconds ext4 treats a deleted inode as recently deleted, once written out


def can_drop_cache() -> bool:
    return os.access(DROP_CACHES, os.W_OK)


def settle(cold: bool, *warm_up: list[str]) -> None:
    """Before a timed command: the disk synced and, for a cold run, the page
    cache dropped, then the program read back into it by `warm_up` (runs
    that load what the timed command loads and read no data: the program
    was not just plugged in; the data was)."""
    sync_disk()
    if cold:
        DROP_CACHES.write_text("1\n")
        for command in warm_up:
            run(command)


def empty_replica(sq: list[str], path: Path, name: str, join: Path) -> None:
    path.mkdir()
    run([*sq, "init", str(path), "--name", name, "--join", str(join)])


def check(doc: dict[str, object], files: int, what: str) -> None:
    created = doc.get("created", 0)
    if doc.get("failed") or doc.get("conflicts") or not isinstance(created, int) or created < files:
        sys.exit(f"bench: {what} did not create every file: {doc}")


def one_run(sq: list[str], tmp: Path, src: Path, files: int, n: int, res: SetResult) -> None:
    """Fresh directories for every contender; each timed step starts on a
    synced disk, and each sq command is paired with a `cp -r && sync` of the
    same bytes timed next to it (two for the carrier's two visits), so
    that a load that comes and goes on the machine weighs on both alike."""
    run_dir = tmp / f"run{n}"
    run_dir.mkdir()
    copies = 0

    def cp_sync() -> float:
        nonlocal copies
        copies += 1
        settle(res.cold, ["cp", "--version"])
        t, _ = timed(["sh", "-c", 'cp -r "$1" "$2" && sync', "sh", str(src), str(run_dir / f"cp{copies}")])
        return t

    def paired(work: str, copies_: int, timed_sq: Callable[[], float], command: str) -> None:
        """Time `timed_sq` and `copies_` copies of the same bytes, the copies
        first in even runs and last in odd ones: a disk that slows down
        after a burst of writes weighs on both sides alike."""
        first = n % 2 == 0
        c = sum(cp_sync() for _ in range(copies_)) if first else 0.0
        settle(res.cold, [*sq, command, "--help"], program_warm_up(sq))
        res.sq[work].append(timed_sq())
        res.cp_sync[work].append(c if first else sum(cp_sync() for _ in range(copies_)))

    recv = run_dir / "P"
    empty_replica(sq, recv, f"P{n}", src)
    bundle = run_dir / "b.sqb"

    def do_pack() -> float:
        t, out = res.timed("pack --for", [*sq, "pack", str(src), "-o", str(bundle), "--for", str(recv), "--json"])
        if json.loads(out)["objects"] < files:
            sys.exit(f"bench: the bundle lacks content: {out}")
        return t

    def do_apply() -> float:
        t, out = res.timed("apply", [*sq, "apply", str(bundle), str(recv), "--json"])
        check(json.loads(out), files, "sq apply")
        return t

    paired("pack --for", 1, do_pack, "pack")
    paired("apply", 1, do_apply, "apply")

    dst = run_dir / "Q"
    empty_replica(sq, dst, f"Q{n}", src)

    def do_push() -> float:
        t, out = res.timed("push", [*sq, "push", str(src), str(dst), "--json"])
        check(json.loads(out), files, "sq push")
        return t

    paired("push", 1, do_push, "push")

    # The carrier meets A alone first (it keeps no content: no other drive
    # is known), then the empty drive B: the timed visit of A then takes
    # the content B lacks, and the visit of B delivers it.
    carrier = run_dir / "carrier"
    visit = [*sq, "sync", "--carrier", str(carrier), "--json"]
    run([*sq, "carrier", "config", "--carrier", str(carrier), "--max-size", str(2 * res.size + 64 * MIB)])
    run([*visit, str(src)])
    b = run_dir / "B"
    empty_replica(sq, b, f"B{n}", src)
    run([*visit, str(b)])

    def do_visits() -> float:
        t_a, out = res.timed("carrier A->B", [*visit, str(src)])
        if json.loads(out)["carried_in"] < files:
            sys.exit(f"bench: the visit of A did not take the content: {out}")
        settle(res.cold, [*sq, "sync", "--help"], program_warm_up(sq))
        t_b, out = res.timed("carrier A->B", [*visit, str(b)])
        check(json.loads(out), files, "the visit of B")
        return t_a + t_b

    paired("carrier A->B", 2, do_visits, "sync")
    # The replica of the sender forgets this run's carrier and receivers.
    shutil.rmtree(src / ".squirrel")


def bench_set(
    sq: list[str], tmp: Path, name: str, runs: int, make: str, amount: int, file_mib: int, cold: bool
) -> SetResult:
    name = f"{name}, cold" if cold else name
    src = tmp / name / "A"
    src.mkdir(parents=True)
    if make == "large":
        files = make_large(src, amount * MIB, file_mib * MIB)
        size = files * file_mib * MIB
        print(f"{name}: {files} files of {file_mib} MiB of random bytes", flush=True)
    else:
        files = amount
        size = make_small(src, files)
        print(f"{name}: {files:,} files of 1-20 KiB ({size / MIB:.0f} MiB)", flush=True)
    res = SetResult(name, cold, files, size)
    for n in range(runs):
        run([*sq, "init", str(src), "--name", f"A{n}"])  # hashes A, untimed
        print(f"  run {n + 1}/{runs} ...", flush=True)
        # Nothing is deleted before the set is done (on ext4, creating files
        # right after deleting many is several times slower), unless the
        # disk would not hold it: a run of 1 GiB of media needs 10 GiB.
        one_run(sq, tmp / name, src, files, n, res)
        if make == "large" and amount > 1024:
            shutil.rmtree(tmp / name / f"run{n}")
            sync_disk()
    return res


def report(results: list[SetResult], runs: int) -> None:
    print()
    print(f"== carrying bytes: (cp -r && sync) / sq, median of {runs} paired runs, {os.cpu_count()} CPUs")
    print("   (1.0 is the disk's speed through cp; higher is faster)")
    for r in results:
        kind = "large" if r.name.startswith("large") else "small"
        goal = GOALS[kind]
        print(f"  {r.name}: {r.files:,} files, {r.size / MIB:,.0f} MiB")
        for w in WORKS:
            t = statistics.median(r.sq[w])
            cp = statistics.median(r.cp_sync[w])
            ratio = r.ratio(w)
            verdict = "met" if ratio >= goal else "NOT met"
            copies = "2 x cp+sync" if w == "carrier A->B" else "cp+sync"
            print(
                f"    sq {w:<14} {fmt_s(t)}  {copies} {fmt_s(cp)}  ratio {ratio:5.2f}   (goal >= {goal}: {verdict})"
                f"  peak {r.peak_kib[w] / 1024:.0f} MiB"
            )


def make_room(tmp: Path) -> None:
    """Remove the warm runs before the cold ones, so that both need the disk
    of one, then wait for ext4 to stop treating their inodes as recently
    deleted (a minute once their table is written), which would slow the
    cold runs' file creation."""
    for d in tmp.iterdir():
        shutil.rmtree(d)
    sync_disk()
    print(f"  (warm runs removed; waiting {RECENT_S} s before the cold ones)", flush=True)
    time.sleep(RECENT_S)


def main(argv: list[str] | None = None) -> None:
    ap = new_parser(__doc__)
    ap.add_argument("--large-mib", type=int, default=512, help="MiB of large media (default 512; 0 skips)")
    ap.add_argument("--large-file-mib", type=int, default=64, help="size of each media file, MiB (default 64)")
    ap.add_argument("--small-files", type=int, default=10_000, help="small files (default 10000; 0 skips)")
    ap.add_argument("--carry-runs", type=int, default=3, help="median of this many runs (default 3)")
    ap.add_argument(
        "--cache",
        choices=("warm", "cold", "both"),
        default="both",
        help="time with the page cache warm, dropped before each command (needs root), or both (default)",
    )
    add_tmp_option(ap)
    args, _ = ap.parse_known_args(argv)
    sq = sq_command()
    os.environ["SQ_NO_PROGRESS"] = "1"
    colds = {"warm": [False], "cold": [True], "both": [False, True]}[args.cache]
    if True in colds and not can_drop_cache():
        print(f"bench: cannot write {DROP_CACHES} (not root?): the cold runs are skipped", flush=True)
        colds = [c for c in colds if not c]
    results = []
    with bench_dir("sq-bench-carry-", args.tmp) as tmp:
        for cold in colds:
            if cold and len(colds) > 1:
                make_room(tmp)
            if args.large_mib:
                results.append(
                    bench_set(sq, tmp, "large", args.carry_runs, "large", args.large_mib, args.large_file_mib, cold)
                )
            if args.small_files:
                results.append(bench_set(sq, tmp, "small", args.carry_runs, "small", args.small_files, 0, cold))
        report(results, args.carry_runs)  # before the (slow) removal of the copies


if __name__ == "__main__":
    main()
