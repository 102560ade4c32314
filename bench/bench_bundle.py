"""Benchmark: bundles. How fast are `sq pack` and `sq apply`, how small is a
bundle of compressible data, and how much memory do they need?

Baselines, on the same warm page cache:

- incompressible media (random bytes, --mib, default 2 GiB in 64 files):
  `sq pack` against `cp -r` of the same files and `rsync --only-write-batch`
  (rsync's own "changes in one file"; skipped when rsync is missing);
  `sq apply` of that bundle against `cp -r` (and `cp -r` followed by `sync`,
  since apply fsyncs every file it writes).
- compressible text (varied log lines, --text-mib, default 200 MiB): the
  bundle's size against `tar cf - | zstd -3`, and the packing time against
  `zstd -3 -T0` on that tar (python-zstandard level 3, single-threaded, when
  the zstd command is missing; the report says which).
- memory: peak RSS of `sq pack` and `sq apply` of a single file of
  --big-mib (default 4 GiB), in a fresh process each.

Everything lives in one temporary directory under /tmp (or --tmp), removed
at the end. Full size needs about 14 GiB of free disk and several minutes.
A size of 0 skips that part.
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import (
    MIB,
    add_tmp_option,
    age_tree,
    bench_dir,
    best_of,
    fmt_s,
    new_parser,
    peak_rss_kib,
    run_quiet,
    sq_command,
    write_random,
)


def warm(root: Path) -> None:
    """Read every file once so that every contender reads from the page cache."""
    run_quiet(["sh", "-c", 'find "$1" -type f -exec cat {} + > /dev/null', "sh", str(root)])


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


LEVELS = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]
COMPONENTS = ["api.request", "db.pool", "auth", "cache", "worker.thumbs", "sync.scan", "http.client"]
PATHS = ["/v1/items", "/v1/albums", "/v1/users", "/v2/search", "/static/img", "/health"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "okhttp/4.12", "python-requests/2.31"]


def write_logs(root: Path, total: int, files: int, seed: int = 7) -> None:
    """Varied log lines: timestamps, ids, paths, numbers, some free text."""
    rng = random.Random(seed)
    per_file = total // files
    t = 1_714_550_400.0
    for i in range(files):
        lines: list[str] = []
        size = 0
        while size < per_file:
            t += rng.expovariate(50.0)
            level = rng.choice(LEVELS)
            comp = rng.choice(COMPONENTS)
            if comp == "api.request":
                msg = (
                    f"id={rng.getrandbits(64):016x} method={rng.choice(['GET', 'GET', 'POST', 'PUT'])}"
                    f" path={rng.choice(PATHS)}/{rng.randrange(100000)} status={rng.choice([200, 200, 304, 404, 500])}"
                    f" bytes={rng.randrange(20, 900000)} ms={rng.randrange(1, 3000)}"
                    f" ip=10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"
                    f' ua="{rng.choice(AGENTS)}"'
                )
            elif comp == "db.pool":
                msg = f"active={rng.randrange(64)} idle={rng.randrange(64)} wait_ms={rng.random() * 40:.2f}"
            else:
                msg = (
                    f"job {rng.getrandbits(32):08x} step {rng.randrange(12)} took {rng.random() * 900:.1f} ms"
                    f" on {rng.choice(['img', 'vid', 'doc'])}_{rng.randrange(10**6):06d}"
                )
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
            line = f"{stamp}.{int(t * 1000) % 1000:03d}Z {level:<5} {comp}: {msg}\n"
            lines.append(line)
            size += len(line)
        (root / f"app-{i:03d}.log").write_text("".join(lines))


def make_pair(tmp: Path, name: str, sq: list[str]) -> tuple[Path, Path]:
    """Replica `name`-A around the data already in it, and an empty `name`-B of its vault."""
    a, b = tmp / f"{name}-A", tmp / f"{name}-B"
    b.mkdir()
    age_tree(a)
    run_quiet([*sq, "init", str(a), "--name", f"{name}-A"])
    run_quiet([*sq, "init", str(b), "--name", f"{name}-B", "--join", str(a)])
    return a, b


@dataclass
class MediaResult:
    size: int
    t_pack: float
    t_cp: float
    t_cp_sync: float
    t_rsync: float | None
    rsync_size: int
    t_apply: float
    bundle: int


@dataclass
class TextResult:
    size: int
    t_pack: float
    bundle: int
    t_zstd: float
    tar_zst: int
    tar: int
    how: str


@dataclass
class MemoryResult:
    size: int
    rss_pack: int
    t_pack: float
    rss_apply: int
    t_apply: float


def bench_media(tmp: Path, mib: int, runs: int, sq: list[str]) -> MediaResult:
    files = 64
    size = mib * MIB
    a_media = tmp / "media-A" / "media"
    a_media.mkdir(parents=True)
    print(f"writing {mib:,} MiB of random bytes in {files} files ...", flush=True)
    for i in range(files):
        write_random(a_media / f"VID_{i:04d}.MP4", size // files)
    a, b = make_pair(tmp, "media", sq)
    warm(a_media)
    bundle = tmp / "media.sqb"
    print(f"  timing, best of {runs} ...", flush=True)
    t_pack = best_of(runs, [*sq, "pack", str(a), "-o", str(bundle), "--for", str(b)])
    dst = tmp / "cp-dst"
    rm_dst = ["rm", "-rf", str(dst)]
    t_cp = best_of(runs, ["cp", "-r", str(a_media), str(dst)], before=rm_dst)
    t_cp_sync = best_of(runs, ["sh", "-c", 'cp -r "$1" "$2" && sync', "sh", str(a_media), str(dst)], before=rm_dst)
    run_quiet(rm_dst)
    t_rsync: float | None = None
    rsync_size = 0
    if shutil.which("rsync"):
        empty = tmp / "rsync-empty"
        batch = tmp / "rsync.batch"
        empty.mkdir()
        t_rsync = best_of(
            runs,
            ["rsync", "-a", f"--only-write-batch={batch}", f"{a_media}/", f"{empty}/"],
            before=["rm", "-f", str(batch), f"{batch}.sh"],
        )
        rsync_size = batch.stat().st_size
        batch.unlink()
    else:
        print("  rsync is not installed: no rsync baseline", flush=True)
    # Each apply starts from an empty receiver: a copy of B as it was.
    b_clean = tmp / "media-B-clean"
    shutil.copytree(b, b_clean, symlinks=True)
    reset = ["sh", "-c", 'rm -rf "$1" && cp -a "$2" "$1"', "sh", str(b), str(b_clean)]
    t_apply = best_of(runs, [*sq, "apply", str(bundle), str(b)], before=reset)
    result = MediaResult(size, t_pack, t_cp, t_cp_sync, t_rsync, rsync_size, t_apply, bundle.stat().st_size)
    for p in (a, b, b_clean, bundle):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return result


def bench_text(tmp: Path, mib: int, runs: int, sq: list[str]) -> TextResult:
    a_logs = tmp / "text-A" / "logs"
    a_logs.mkdir(parents=True)
    print(f"writing {mib:,} MiB of log lines ...", flush=True)
    write_logs(a_logs, mib * MIB, files=20)
    size = du(a_logs)
    a, b = make_pair(tmp, "text", sq)
    warm(a_logs)
    bundle = tmp / "text.sqb"
    print(f"  timing, best of {runs} ...", flush=True)
    t_pack = best_of(runs, [*sq, "pack", str(a), "-o", str(bundle), "--for", str(b)])
    tar = tmp / "logs.tar"
    run_quiet(["tar", "cf", str(tar), "-C", str(a), "logs"])
    out = tmp / "logs.tar.zst"
    if shutil.which("zstd"):
        how = "zstd -3 -T0 on the tar (all cores)"
        t_zstd = best_of(runs, ["zstd", "-q", "-3", "-T0", "-f", str(tar), "-o", str(out)])
    else:
        import zstandard

        how = "python zstandard -3 on the tar (no zstd CLI)"
        best = float("inf")
        for _ in range(runs):
            t0 = time.perf_counter()
            with open(tar, "rb") as src, open(out, "wb") as dst:
                zstandard.ZstdCompressor(level=3).copy_stream(src, dst)
            best = min(best, time.perf_counter() - t0)
        t_zstd = best
    result = TextResult(size, t_pack, bundle.stat().st_size, t_zstd, out.stat().st_size, tar.stat().st_size, how)
    for p in (a, b, bundle, tar, out):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return result


def bench_memory(tmp: Path, mib: int, sq: list[str]) -> MemoryResult:
    a = tmp / "big-A"
    a.mkdir()
    print(f"writing one file of {mib:,} MiB ...", flush=True)
    write_random(a / "huge.bin", mib * MIB)
    a, b = make_pair(tmp, "big", sq)
    bundle = tmp / "big.sqb"
    rss_pack, t_pack = peak_rss_kib([*sq, "pack", str(a), "-o", str(bundle), "--for", str(b)])
    print(f"  sq pack: {t_pack:.1f} s, peak RSS {rss_pack / 1024:.0f} MiB", flush=True)
    rss_apply, t_apply = peak_rss_kib([*sq, "apply", str(bundle), str(b)])
    print(f"  sq apply: {t_apply:.1f} s, peak RSS {rss_apply / 1024:.0f} MiB", flush=True)
    for p in (a, b, bundle):
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return MemoryResult(mib * MIB, rss_pack, t_pack, rss_apply, t_apply)


def row(label: str, value: str) -> None:
    print(f"  {label:<42} {value}")


def report(m: MediaResult | None, t: TextResult | None, mem: MemoryResult | None, runs: int) -> None:
    if m is not None:
        print()
        print(f"== incompressible media, {m.size / (1 << 30):.2f} GiB in 64 files (best of {runs}, warm cache)")
        row("sq pack --for", f"{fmt_s(m.t_pack)}   ({m.size / MIB / m.t_pack:,.0f} MiB/s)")
        row("cp -r", f"{fmt_s(m.t_cp)}   ({m.size / MIB / m.t_cp:,.0f} MiB/s)")
        if m.t_rsync is not None:
            row("rsync -a --only-write-batch", f"{fmt_s(m.t_rsync)}   (batch {m.rsync_size / MIB:,.0f} MiB)")
        else:
            row("rsync -a --only-write-batch", "(rsync is not installed)")
        row("ratio pack/cp", f"{m.t_pack / m.t_cp:6.2f}")
        if m.t_rsync is not None:
            row("ratio pack/rsync", f"{m.t_pack / m.t_rsync:6.2f}")
        row("bundle size / data", f"{m.bundle / m.size:8.4f}  ({m.bundle - m.size:+,} bytes)")
        row("sq apply (fsyncs every file)", f"{fmt_s(m.t_apply)}   ({m.size / MIB / m.t_apply:,.0f} MiB/s)")
        row("cp -r && sync", fmt_s(m.t_cp_sync))
        row("ratio apply/cp", f"{m.t_apply / m.t_cp:6.2f}")
        row("ratio apply/(cp && sync)", f"{m.t_apply / m.t_cp_sync:6.2f}")
    if t is not None:
        print()
        print(f"== compressible text, {t.size / MIB:,.0f} MiB of log lines in 20 files (best of {runs})")
        row("sq pack: bundle size", f"{t.bundle / MIB:10.2f} MiB  ({t.size / t.bundle:5.2f}:1)")
        row("tar | zstd -3: size", f"{t.tar_zst / MIB:10.2f} MiB  ({t.tar / t.tar_zst:5.2f}:1)")
        row("size ratio bundle/tar.zst", f"{t.bundle / t.tar_zst:6.3f}")
        row("sq pack --for", f"{fmt_s(t.t_pack)}   ({t.size / MIB / t.t_pack:,.0f} MiB/s)")
        row(t.how, fmt_s(t.t_zstd))
        row("time ratio pack/zstd", f"{t.t_pack / t.t_zstd:6.2f}")
    if mem is not None:
        print()
        print(f"== peak memory (max RSS), one file of {mem.size / (1 << 30):.2f} GiB")
        row("sq pack", f"{mem.rss_pack / 1024:8.1f} MiB   ({fmt_s(mem.t_pack).strip()})")
        row("sq apply", f"{mem.rss_apply / 1024:8.1f} MiB   ({fmt_s(mem.t_apply).strip()})")


def main(argv: list[str] | None = None) -> None:
    ap = new_parser(__doc__)
    ap.add_argument("--mib", type=int, default=2048, help="MiB of incompressible media (default 2048; 0 skips)")
    ap.add_argument("--text-mib", type=int, default=200, help="MiB of log text (default 200; 0 skips)")
    ap.add_argument("--big-mib", type=int, default=4096, help="size of the single file, MiB (default 4096; 0 skips)")
    ap.add_argument("--runs", type=int, default=3, help="take the best of this many runs (default 3)")
    add_tmp_option(ap)
    args, _ = ap.parse_known_args(argv)
    sq = sq_command()
    os.environ["SQ_NO_PROGRESS"] = "1"  # for every sq this script starts
    print(f"sq bundle benchmark; {os.cpu_count()} CPUs, python {sys.version.split()[0]}", flush=True)
    with bench_dir("sq-bench-bundle-", args.tmp) as tmp:
        m = bench_media(tmp, args.mib, args.runs, sq) if args.mib else None
        t = bench_text(tmp, args.text_mib, args.runs, sq) if args.text_mib else None
        mem = bench_memory(tmp, args.big_mib, sq) if args.big_mib else None
    report(m, t, mem, args.runs)


if __name__ == "__main__":
    main()
