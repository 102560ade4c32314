"""Injected ENOSPC, EIO and EROFS at the I/O points of `sq apply` and
`sq sync`: a clean failure, the old versions kept, nothing recorded for the
paths that failed, and a re-run finishes (docs/safety.md).

For each kind of point (write, fsync, rename, unlink, utime, index commit)
the fault is injected at the first, a middle and the last such point of the
histories of tests/crash_scenarios.py, the error changing from one to the
next; SQ_CRASH_FULL=1 injects every error at every point. Each time:

- the command exits with a documented code (11 out of space, 16 a file
  system error, or 18 finished with some paths failed) and one line
  `sq: error: ...`; each failed path names the injected error;
- every file at a user's path is its old version or its new one, and no
  version is lost;
- a failed path keeps its index record and its sync time (so a re-run
  still delivers it); for a visit, the same holds in the carrier for what
  it could not take;
- the re-run exits 0 and ends exactly as a clean run, `sq verify` passes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from squirrel.plumbing.replica import Replica
from squirrel.plumbing.vtime import VectorTime
from tests.bundle_tools import incompressible
from tests.carrier_tools import left_behind
from tests.crash_scenarios import (
    ConflictKey,
    Scenario,
    check_finished,
    check_interrupted,
    open_conflicts,
    shared,
)
from tests.fault_tools import Outcome, oid, run_forked
from tests.helpers import make_tree, run_sq, tree, write

MIB = 1 << 20

FULL = os.environ.get("SQ_CRASH_FULL") == "1"
OPS = ("write", "fsync", "rename", "unlink", "utime", "commit")
ERRORS = ("enospc", "eio", "erofs")
EXITS = {"enospc": {11, 18}, "eio": {16, 18}, "erofs": {16, 18}}
STRERROR = {"enospc": "no space left", "eio": "input/output error", "erofs": "read-only file system"}
NOT_TAKEN = "not taken into the carrier: "


@pytest.fixture(scope="module")
def histories(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Scenario]:
    return {"apply": shared("apply", tmp_path_factory), "sync": shared("sync", tmp_path_factory)}


def injections(scn: Scenario, op: str) -> list[tuple[int, str]]:
    """(N, error) to inject at the N-th point of kind `op`: every error at every
    point when FULL, else the first and the last point, the error changing."""
    total = scn.points_of(op)
    if FULL:
        return [(n, err) for n in range(1, total + 1) for err in ERRORS]
    ns = sorted({1, total} - {0})
    return [(n, ERRORS[(i + OPS.index(op)) % len(ERRORS)]) for i, n in enumerate(ns)]


def carrier_replica(carrier: Path) -> Path:
    (vault,) = (carrier / "vaults").iterdir()
    return vault


def unfinished(before: Path, after: Path, wanted: set[bytes], files_before: dict[str, bytes]) -> list[str]:
    """Problems with the failed paths `wanted` of replica `after` (a copy of
    `before` that a command failed on): a sync time raised (the replica's own
    counter aside: any new event moves it), or an index record of a version
    that is neither the one before nor the one on disk."""
    problems = []
    with Replica.open(str(before), write=False) as rb, Replica.open(str(after), write=False) as ra:
        for p in sorted(wanted):
            s_before: VectorTime = rb.index.sync_time(p).without(rb.id)
            s_after: VectorTime = ra.index.sync_time(p).without(ra.id)
            if s_after != s_before:
                problems.append(f"{p!r}: sync time raised from {s_before} to {s_after}")
            e, old = ra.index.get(p), rb.index.get(p)
            if e is None or (old is not None and (old.kind, old.oid) == (e.kind, e.oid)):
                continue
            full = after / os.fsdecode(p)
            if e.is_dir and full.is_dir() and not full.is_symlink():
                continue
            known = {oid(files_before[os.fsdecode(p)])} if os.fsdecode(p) in files_before else set()
            if e.is_file and full.is_file() and not full.is_symlink():
                known.add(oid(full.read_bytes()))
            if not (e.is_file and e.oid.hex() in known):
                problems.append(f"{p!r}: the index records a version that is not on disk")
    return problems


def failed_paths(first: Outcome) -> tuple[set[bytes], set[bytes], list[str]]:
    """(drive paths, carrier paths, reasons) of the failures a --json run lists."""
    if not first.stdout.strip():
        return set(), set(), []
    doc = json.loads(first.stdout)
    drive: set[bytes] = set()
    carrier: set[bytes] = set()
    reasons = []
    for f in doc["failed"]:
        p = f["path"].encode()
        why: str = f["error"]
        reasons.append(why)
        if why.startswith(NOT_TAKEN):
            carrier.add(p)
        else:
            drive.add(p)
    return drive, carrier, reasons


def inject(scn: Scenario, where: Path, op: str, n: int, err: str) -> list[str]:
    drive, carrier = scn.copies(where)
    first = scn.run(where, f"{op}:{n}:{err}")
    problems = check_interrupted(scn, where, first)
    if first.code == 0:
        # The step was retried or had a fallback: the command must then have done everything.
        if tree(drive, folders=False) != scn.expected:
            problems.append("exit 0, but the tree differs from a clean run's")
    elif first.code not in EXITS[err]:
        problems.append(f"exit {first.code} for {err}, want one of {sorted(EXITS[err])}")
    on_drive, on_carrier, reasons = failed_paths(first)
    if first.code == 18 and not reasons:
        problems.append("exit 18 with no failed path listed")
    if first.code != 0 and first.code != 18 and STRERROR[err] not in first.stderr.decode().lower():
        problems.append(f"the error line does not name the error: {first.error_lines}")
    if reasons and not any(STRERROR[err] in why.lower() for why in reasons):
        problems.append(f"no failed path names the error: {reasons}")
    problems += unfinished(scn.drive, drive, on_drive, scn.before)
    if on_carrier:
        assert carrier is not None and scn.carrier is not None
        problems += unfinished(carrier_replica(scn.carrier), carrier_replica(carrier), on_carrier, {})
    end = check_finished(scn, where, scn.run(where))
    problems += end.problems
    if end.new:
        problems.append(f"new conflicts: {sorted(end.new, key=str)}")
    missing = unreported_after_failed_delivery(scn, end.missing, on_drive)
    if missing:
        problems.append(f"conflicts not recorded: {sorted(missing, key=str)}")
    shutil.rmtree(where)
    return problems


def unreported_after_failed_delivery(scn: Scenario, missing: set[ConflictKey], failed: set[bytes]) -> set[ConflictKey]:
    """The missing conflicts that are not the known bug: a visit whose
    delivery of a conflict failed takes the drive's version into the carrier,
    which settles the conflict there and never reports it
    (test_a_conflict_whose_delivery_failed_is_reported_after_the_next_visit).
    The files end right; only the report is lost. Returns the others."""
    if scn.carrier is None:
        return missing
    return {c for c in missing if c[0].encode() not in failed and (c[2] or "").encode() not in failed}


@pytest.mark.parametrize("command", ["apply", "sync"])
@pytest.mark.parametrize("op", OPS)
def test_an_injected_error_fails_cleanly_keeps_every_version_and_a_rerun_finishes(
    histories: dict[str, Scenario], tmp_path: Path, command: str, op: str
) -> None:
    scn = histories[command]
    plan = injections(scn, op)
    if not plan:
        pytest.skip(f"{command} passes no {op} point")
    failures = {}
    for n, err in plan:
        problems = inject(scn, tmp_path / f"{op}-{n}-{err}", op, n, err)
        if problems:
            failures[f"{op}:{n}:{err}"] = problems
    assert not failures, failures


def test_out_of_space_while_writing_stops_the_command_and_keeps_the_rest_unsynced(
    histories: dict[str, Scenario], tmp_path: Path
) -> None:
    """ENOSPC while writing content: every later path fails too (the drive is
    full), none is recorded, and the re-run delivers them all."""
    scn = histories["apply"]
    drive, _ = scn.copies(tmp_path)
    first = scn.run(tmp_path, "write:2:enospc")  # write #1 is the intent log's
    assert first.code == 18, first.stderr.decode()
    doc = json.loads(first.stdout)
    assert len(doc["failed"]) > 10
    assert all("no space left" in f["error"].lower() for f in doc["failed"])
    assert check_interrupted(scn, tmp_path, first) == []
    again = scn.run(tmp_path)
    assert again.code == 0
    assert tree(drive, folders=False) == scn.expected


def test_a_conflict_whose_delivery_failed_is_reported_after_the_next_visit(tmp_path: Path) -> None:
    d1, d2, carrier = tmp_path / "D1", tmp_path / "D2", tmp_path / "carrier"
    make_tree(d1, {"x.txt": "the common version\n"})
    for args in (
        ["init", d1, "--name", "D1"],
        ["init", d2, "--name", "D2", "--join", d1],
        ["push", d1, d2],
        ["sync", d1, "--carrier", carrier],
        ["sync", d2, "--carrier", carrier],
    ):
        d2.mkdir(exist_ok=True)
        assert run_forked(args).code == 0, args
    write(d1 / "x.txt", "D1's edit\n", seconds_ago=3600)
    assert run_forked(["sync", d1, "--carrier", carrier]).code == 0
    write(d2 / "x.txt", "D2's edit\n", seconds_ago=60)
    failed = run_forked(["sync", d2, "--carrier", carrier, "--json"], "write:2:eio")  # #1: the intent log
    assert failed.code == 18
    reported = json.loads(failed.stdout)["conflicts"]
    for drive in (d2, d1):
        again = run_forked(["sync", drive, "--carrier", carrier, "--json"])
        assert again.code == 0
        reported += json.loads(again.stdout)["conflicts"]
    for drive in (d1, d2):
        files = tree(drive, folders=False)
        assert files.pop("x.txt") == b"D2's edit\n"
        assert list(files.values()) == [b"D1's edit\n"]
    assert [c["kind"] for c in reported] == ["update/update"]
    assert open_conflicts(d1) | open_conflicts(d2)


def test_a_replica_with_a_failed_path_still_verifies(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    make_tree(a, {"d/x.txt": "x", "d/y.txt": "y"})
    assert run_forked(["init", a, "--name", "A"]).code == 0
    b.mkdir()
    assert run_forked(["init", b, "--name", "B", "--join", a]).code == 0
    assert run_forked(["push", a, b]).code == 0
    write(a / "d/new1.txt", "new 1")
    write(a / "d/new2.txt", "new 2")
    failed = run_forked(["push", a, b], "write:2:eio")
    assert failed.code == 18
    verified = run_forked(["verify", b])
    assert verified.code == 0, verified.stdout.decode()


def test_a_full_laptop_leaves_what_the_visit_would_carry_in_behind_and_says_so(tmp_path: Path) -> None:
    """Out of space on the laptop while a visit copies in content another
    drive lacks: what did not fit (here the small files, whose pack is
    written first) is left behind, as when the budget is spent, and said
    so; the rest (a large file, in a file of its own) is carried, and the
    next visit brings the others."""
    carrier = tmp_path / "carrier"
    files = {f"roll/{i}.jpg": bytes([i]) * (1000 + i) for i in range(5)}
    files["roll/clip.mov"] = incompressible(MIB + 1, 5)
    a, c = left_behind(tmp_path, files, carrier)
    run_sq("carrier", "config", "--carrier", carrier, "--max-size", "4M").check(0)

    ran = run_sq("sync", a, "--carrier", carrier, "--json", fault="write:1:enospc").check(0)

    assert ran.json["left_behind"] == [{"path": f"roll/{i}.jpg", "size": 1000 + i} for i in range(5)]
    assert ran.json["failed"] == [] and ran.json["carried_in"] == 1
    run_sq("sync", c, "--carrier", carrier).check(0)
    assert sorted(p.name for p in (c / "roll").iterdir()) == ["clip.mov"]
    run_sq("sync", a, "--carrier", carrier).check(0)
    run_sq("sync", c, "--carrier", carrier).check(0)
    assert tree(c) == tree(a)


def test_a_full_laptop_while_a_visit_takes_new_content_leaves_it_behind_and_says_so(tmp_path: Path) -> None:
    """Out of space on the laptop as a visit puts new content another drive
    lacks into the carrier (the rename of the pack that holds it, after the
    write): the files of that pack are left behind and said so, nothing
    fails, nothing more is tried in that visit, and the next visits carry
    them."""
    carrier = tmp_path / "carrier"
    a, c = left_behind(tmp_path, {"roll/old.jpg": b"o" * 900}, carrier)
    run_sq("sync", a, "--carrier", carrier).check(0)
    run_sq("sync", c, "--carrier", carrier).check(0)
    for i in range(3):
        write(a / f"roll/new{i}.jpg", str(i) * (1000 + i))

    # Rename #1 is the laptop's own state; #2 the pack's, of all three new objects.
    ran = run_sq("sync", a, "--carrier", carrier, "--json", fault="rename:2:enospc").check(0)

    assert ran.json["failed"] == []
    assert ran.json["left_behind"] == [{"path": f"roll/new{i}.jpg", "size": 1000 + i} for i in range(3)]
    assert ran.json["carried_in"] == 0
    run_sq("sync", c, "--carrier", carrier).check(0)
    run_sq("sync", a, "--carrier", carrier).check(0)
    run_sq("sync", c, "--carrier", carrier).check(0)
    assert tree(c) == tree(a)
