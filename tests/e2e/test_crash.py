"""A kill at any I/O point of `sq apply` or `sq sync` loses nothing, and
running the same command again finishes the work (docs/safety.md).

Each history (tests/crash_scenarios.py) is about fifty paths of work: new,
modified, deleted and moved files, a removed folder, two conflicts. The
command is killed (SIGKILL, through SQ_FAULT=any:N) at its N-th write,
fsync, rename, unlink, utime or index commit, for N = 1, 2, 3, ... until it
completes without being killed. After each kill:

- every file at a user's path is its old version or its new one, never a
  partial or stray file, and no version that existed before is lost (each
  is at a path, in a conflict copy, or in `.squirrel/trash/<id>`, verified
  by its blake3 id);
- running the command again exits 0 and leaves exactly the files a clean
  run leaves, with the same conflicts recorded and no other;
- `sq verify` passes on the drive (and the carrier), and no temporary file
  is left.

`make test` kills each command at an even spread of its points (the first
few, the last few, about 24 in all); SQ_CRASH_FULL=1 kills at every one.

Small histories are killed at every point in `make test`: applies of an
update (on a file system with hard links and on one without), a conflict,
a folder replaced by a file and the reverse, each scanned before the re-run
(the intent log must have put back whatever the kill left half done, so
that the scan records nothing; docs/safety.md, "The intent log"); and a
resolve and a first visit, each simply run again.
The kills go through `run_forked` (tests/fault_tools.py); the seeded random
kills of a larger history use the real `sq` executable, as do those of a
history of two intent-log batches, killed in the first while the second's
content is fetched ahead.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from squirrel.porcelain.verify import verify
from tests.crash_scenarios import (
    Scenario,
    check_finished,
    check_interrupted,
    kill_everywhere_then_scan_and_rerun,
    open_conflicts,
    pack_for,
    shared,
    two_replicas,
)
from tests.fault_tools import (
    KILLED,
    Outcome,
    crash_points,
    fresh_copy,
    leftovers,
    lost,
    run_forked,
    versions,
)
from tests.helpers import make_tree, run_sq, tree, write

FULL = os.environ.get("SQ_CRASH_FULL") == "1"
KILLS_PER_COMMAND = 24
RANDOM_KILLS = [(c, s) for c in ("apply", "sync") for s in (range(12) if FULL else [1])]


@pytest.fixture(scope="module")
def apply_history(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return shared("apply", tmp_path_factory)


@pytest.fixture(scope="module")
def sync_history(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return shared("sync", tmp_path_factory)


def kill_and_rerun(scn: Scenario, where: Path, fault: str) -> tuple[Outcome, list[str]]:
    """Run the command with `fault`, check what it left, run it again, check the end."""
    scn.copies(where)
    first = scn.run(where, fault)
    problems = check_interrupted(scn, where, first)
    end = check_finished(scn, where, scn.run(where))
    problems += end.problems
    if end.new:
        problems.append(f"new conflicts: {sorted(end.new, key=str)}")
    if end.missing:
        problems.append(f"conflicts not recorded: {sorted(end.missing, key=str)}")
    return first, problems


def kill_the_real_sq_and_rerun(scn: Scenario, where: Path, n: int) -> None:
    """Kill the real `sq` at its `n`-th I/O point, check what it left, run it
    again and check the end."""
    drive, carrier = scn.copies(where)
    first = run_sq(*scn.argv(drive, carrier), fault=f"any:{n}", timeout=120)
    assert first.killed, f"any:{n} of {scn.points} did not kill the real sq: {first.code}"
    problems = check_interrupted(scn, where, first)
    end = check_finished(scn, where, run_sq(*scn.argv(drive, carrier), timeout=120))
    assert not problems + end.problems and not end.new and not end.missing, (n, problems, end)
    shutil.rmtree(where)


def enumerate_kills(scn: Scenario, tmp_path: Path) -> None:
    assert scn.points > 100, f"the {scn.name} history passes only {scn.points} I/O points"
    failures: dict[str, list[str]] = {}
    killed = 0
    for n in crash_points(scn.points, FULL, KILLS_PER_COMMAND):
        first, problems = kill_and_rerun(scn, tmp_path / f"kill-{n}", f"any:{n}")
        assert first.code == KILLED, f"any:{n} of {scn.points} did not kill {scn.name}: {first.code}"
        killed += 1
        if problems:
            failures[f"any:{n} ({scn.ops[n - 1]})"] = problems
        shutil.rmtree(tmp_path / f"kill-{n}")
    # One point past the last, the command completes.
    last = scn.points + 1
    first, problems = kill_and_rerun(scn, tmp_path / "complete", f"any:{last}")
    assert first.code == 0, first.stderr.decode()
    assert not problems
    assert not failures, f"{len(failures)} of {killed} kill points of {scn.name} went wrong: {failures}"


def test_a_kill_at_any_io_point_of_apply_loses_nothing_and_a_rerun_finishes(
    apply_history: Scenario, tmp_path: Path
) -> None:
    enumerate_kills(apply_history, tmp_path)


def test_a_kill_at_any_io_point_of_a_visit_loses_nothing_and_a_rerun_finishes(
    sync_history: Scenario, tmp_path: Path
) -> None:
    enumerate_kills(sync_history, tmp_path)


def test_the_histories_exercise_every_kind_of_io_point(apply_history: Scenario, sync_history: Scenario) -> None:
    """The kill points cover writes, fsyncs, renames, unlinks, utimes and commits."""
    for scn in (apply_history, sync_history):
        for op in ("write", "fsync", "rename", "unlink", "utime", "commit"):
            assert scn.points_of(op) > 0, f"{scn.name} passes no {op} point"


@pytest.mark.parametrize(("command", "seed"), RANDOM_KILLS)
def test_the_real_sq_killed_at_random_points_of_a_larger_history(
    tmp_path_factory: pytest.TempPathFactory, command: str, seed: int
) -> None:
    """A history five times larger, killed at a seeded random point through the real `sq`."""
    scn = shared(command, tmp_path_factory, scale=5)
    n = random.Random(seed).randint(1, scn.points)
    kill_the_real_sq_and_rerun(scn, tmp_path_factory.mktemp(f"random-{command}-{seed}"), n)


@pytest.mark.parametrize("seed", range(8) if FULL else [1, 2])
def test_an_apply_of_two_batches_killed_in_its_first_loses_nothing(
    tmp_path_factory: pytest.TempPathFactory, seed: int
) -> None:
    """A history larger than one batch of the intent log (1,024 actions),
    killed at a seeded random point of its first batch's second half,
    through the real `sq`: content of the second batch has been fetched
    ahead by then, into temporary files no batch has logged yet (some 500
    in this history). Nothing is lost, and the re-run finishes and leaves
    none of them."""
    scn = shared("apply", tmp_path_factory, scale=25)
    first_commit = scn.ops.index("commit") + 1
    assert first_commit < scn.points, "the history fits in one batch"
    n = random.Random(seed).randint(first_commit // 2, first_commit - 1)
    kill_the_real_sq_and_rerun(scn, tmp_path_factory.mktemp(f"two-batches-{seed}"), n)


# Small histories, killed at every point, then scanned before the re-run ----------------------
# A scan between the kill and the re-run is what a user may well do; it must
# find no change that nobody made (the intent log undid the half-done steps).
@pytest.mark.parametrize("hard_links", [True, False], ids=["hard-links", "no-hard-links"])
def test_an_update_killed_anywhere_is_undone_then_finished_without_a_conflict(
    tmp_path: Path, request: pytest.FixtureRequest, hard_links: bool
) -> None:
    """With hard links the old version is linked into the trash and the new
    one renamed over it: no kill leaves the path empty. Without (exFAT), the
    old version moves to the trash first: a kill before the new one is in
    leaves the path empty, and the intent log puts the old one back."""
    refused = None if hard_links else request.getfixturevalue("no_hard_links")
    a, b = two_replicas(tmp_path / "A", tmp_path / "B", {"x.txt": "the old version\n"})
    write(a / "x.txt", "the new version\n")
    left: list[dict[str, bytes]] = []
    expected, conflicts = kill_everywhere_then_scan_and_rerun(
        b, pack_for(a, b, tmp_path), tmp_path, lambda work: left.append(tree(work, folders=False))
    )
    assert expected == {"x.txt": b"the new version\n"} and conflicts == set()
    emptied = [n for n, files in enumerate(left, 1) if "x.txt" not in files]
    if hard_links:
        assert emptied == [], f"kills at any:{emptied} left x.txt missing"
    else:
        assert refused is not None and refused.refused, "the file system was never asked for a hard link"
        assert emptied, "no kill fell between moving the old version out and the new one in"


def test_a_conflict_killed_between_moving_aside_and_writing_is_recorded_once(tmp_path: Path) -> None:
    """B's edit goes to a conflict copy and A's takes the path: two steps."""
    a, b = two_replicas(tmp_path / "A", tmp_path / "B", {"x.txt": "base\n"})
    write(b / "x.txt", "B's edit\n", seconds_ago=600)
    write(a / "x.txt", "A's later edit\n", seconds_ago=60)
    expected, conflicts = kill_everywhere_then_scan_and_rerun(b, pack_for(a, b, tmp_path), tmp_path)
    (copy,) = [p for p in expected if ".sq-conflict-" in p]
    assert expected == {"x.txt": b"A's later edit\n", copy: b"B's edit\n"}
    assert conflicts == {("x.txt", "update/update", copy)}


def test_a_folder_replaced_by_a_file_killed_anywhere_is_undone_then_finished(tmp_path: Path) -> None:
    a, b = two_replicas(tmp_path / "A", tmp_path / "B", {"album/one.jpg": "one", "album/two.jpg": "two", "keep": "k"})
    shutil.rmtree(a / "album")
    write(a / "album", "now a file\n")
    expected, _ = kill_everywhere_then_scan_and_rerun(b, pack_for(a, b, tmp_path), tmp_path)
    assert expected == {"album": b"now a file\n", "keep": b"k"}


def test_a_file_replaced_by_a_folder_killed_anywhere_is_undone_then_finished(tmp_path: Path) -> None:
    a, b = two_replicas(tmp_path / "A", tmp_path / "B", {"album": "a file\n", "keep": "k"})
    (a / "album").unlink()
    make_tree(a, {"album/one.jpg": "one", "album/two.jpg": "two"})
    expected, _ = kill_everywhere_then_scan_and_rerun(b, pack_for(a, b, tmp_path), tmp_path)
    assert expected == {"album/one.jpg": b"one", "album/two.jpg": b"two", "keep": b"k"}


@pytest.mark.parametrize("hard_links", [True, False], ids=["hard-links", "no-hard-links"])
def test_an_update_whose_rename_fails_keeps_the_old_version_at_its_path(
    tmp_path: Path, request: pytest.FixtureRequest, hard_links: bool
) -> None:
    refused = None if hard_links else request.getfixturevalue("no_hard_links")
    a, b = two_replicas(tmp_path / "A", tmp_path / "B", {"x.txt": "the old version\n"})
    write(a / "x.txt", "the new version\n")
    bundle = pack_for(a, b, tmp_path)
    ops = run_forked(["apply", bundle, fresh_copy(b, tmp_path / "traced")], trace=True).ops
    install = ops[: len(ops) - ops[::-1].index("rename")].count("rename")  # the last rename puts it in place
    failed = run_forked(["apply", bundle, b], f"rename:{install}:eio")
    assert failed.code == 18
    assert tree(b, folders=False) == {"x.txt": b"the old version\n"}
    assert refused is None or refused.refused, "the file system was never asked for a hard link"
    assert run_forked(["apply", bundle, b]).code == 0
    assert tree(b, folders=False) == {"x.txt": b"the new version\n"}


def test_a_first_visit_killed_anywhere_is_finished_by_the_next(tmp_path: Path) -> None:
    """Even between the carrier recording the drive's first mark and the
    drive receiving it: a drive never marked is accepted until it is."""
    d1, d2 = two_replicas(tmp_path / "D1", tmp_path / "D2", {"a.jpg": "a", "b/c.jpg": "c"})
    carrier = tmp_path / "carrier"
    assert run_forked(["sync", d1, "--carrier", carrier, "--max-size", "1M"]).code == 0
    write(d2 / "new.jpg", "new on D2\n")
    clean = tmp_path / "clean"
    traced = run_forked(
        ["sync", fresh_copy(d2, clean / "D2"), "--carrier", fresh_copy(carrier, clean / "carrier")], trace=True
    )
    assert traced.code == 0, traced.stderr.decode()
    for n in range(1, len(traced.ops) + 1):
        work = tmp_path / f"kill-{n}"
        drive, bag = fresh_copy(d2, work / "D2"), fresh_copy(carrier, work / "carrier")
        assert run_forked(["sync", drive, "--carrier", bag], f"any:{n}").killed
        again = run_forked(["sync", drive, "--carrier", bag])
        assert again.code == 0, (n, traced.ops[n - 1], again.stderr.decode())
        assert tree(drive, folders=False)["new.jpg"] == b"new on D2\n"
        shutil.rmtree(work)


@pytest.mark.parametrize("keep", ["copy", "path"])
def test_a_resolve_killed_anywhere_is_finished_by_running_it_again(tmp_path: Path, keep: str) -> None:
    a, b = two_replicas(tmp_path / "A", tmp_path / "B", {"x.txt": "base\n"})
    write(b / "x.txt", "B's edit\n", seconds_ago=600)
    write(a / "x.txt", "A's later edit\n", seconds_ago=60)
    assert run_forked(["apply", pack_for(a, b, tmp_path), b]).code == 0
    (conflict,) = open_conflicts(b)
    before = versions(b)
    clean = fresh_copy(b, tmp_path / "clean")
    traced = run_forked(["resolve", clean, "x.txt", "--keep", keep], trace=True)
    assert traced.code == 0, traced.stderr.decode()
    expected = tree(clean, folders=False)
    assert len(expected) == 1 and open_conflicts(clean) == set()
    for n in range(1, len(traced.ops) + 1):
        work = fresh_copy(b, tmp_path / f"kill-{n}")
        assert run_forked(["resolve", work, "x.txt", "--keep", keep], f"any:{n}").killed
        again = run_forked(["resolve", work, "x.txt", "--keep", keep])
        where = (n, traced.ops[n - 1], again.stderr.decode())
        # Killed after the resolution committed: it is done, and says so.
        assert again.code == 0 or (again.code == 14 and "no open conflict" in again.stderr.decode()), where
        assert tree(work, folders=False) == expected, where
        assert open_conflicts(work) == set() and not lost(before, work), where
        assert verify(str(work)).ok and not leftovers(work), where
        shutil.rmtree(work)
    assert conflict[1] == "update/update"


# The trash: a purge and a restore killed at every point ---------------------------------
def trash_state(root: Path) -> tuple[list[tuple[int, str]], set[str]]:
    """The trash's items (number, path) and its files."""
    listed = run_forked(["trash", "list", root, "--json"])
    assert listed.code == 0, listed.err
    items = sorted((it["id"], it["path"]) for it in listed.json["items"])
    return items, set(os.listdir(root / ".squirrel" / "trash"))


def trashed_replica(tmp_path: Path) -> Path:
    """B's trash: five versions, two of them of one content, in three files."""
    a, b = two_replicas(
        tmp_path / "A",
        tmp_path / "B",
        {"album/one.jpg": "one", "album/two.jpg": "same", "album/sub/three.jpg": "same", "x.txt": "x", "k": "k"},
    )
    (a / "x.txt").unlink()
    assert run_forked(["push", a, b]).code == 0
    shutil.rmtree(a / "album")
    assert run_forked(["push", a, b]).code == 0
    return b


def kill_trash_command_everywhere(b: Path, args: list[str], tmp_path: Path) -> None:
    """Run `sq ARGS` (B last among them) on copies of B killed at each
    point; the next command that writes (a scan) finds the old state or the
    new one (a restore's files recorded as the user's additions), with
    every record matching a file and every file a record."""

    def argv(work: Path) -> list[str | Path]:
        return [work if a == "{b}" else a for a in args]

    clean = fresh_copy(b, tmp_path / "clean")
    traced = run_forked(argv(clean), trace=True)
    assert traced.code == 0, traced.err
    assert run_forked(["scan", clean]).code == 0
    old = (tree(b, folders=False), trash_state(b))
    new = (tree(clean, folders=False), trash_state(clean))
    assert old != new
    before = versions(b)
    for n in range(1, len(traced.ops) + 1):
        work = fresh_copy(b, tmp_path / f"kill-{n}")
        assert run_forked(argv(work), f"any:{n}").killed
        assert run_forked(["scan", work]).code == 0
        where = f"killed at any:{n} ({traced.ops[n - 1]})"
        state = (tree(work, folders=False), trash_state(work))
        assert state in (old, new), (where, state)
        assert verify(str(work)).ok, (where, verify(str(work)).problems)
        assert not leftovers(work), where
        if state == old:
            assert not lost(before, work), where
            again = run_forked(argv(work))
            assert again.code == 0, (where, again.err)
            assert run_forked(["scan", work]).code == 0
            assert (tree(work, folders=False), trash_state(work)) == new, where
        shutil.rmtree(work)


def test_a_purge_killed_anywhere_is_finished_by_the_next_command(tmp_path: Path) -> None:
    b = trashed_replica(tmp_path)
    kill_trash_command_everywhere(b, ["trash", "purge", "{b}", "--keep-size", "3"], tmp_path)


@pytest.mark.parametrize("hard_links", [True, False], ids=["hard-links", "no-hard-links"])
def test_a_restore_killed_anywhere_is_undone_or_done_by_the_next_command(
    tmp_path: Path, request: pytest.FixtureRequest, hard_links: bool
) -> None:
    """The folder comes back under a new name: folders to make, a file moved
    out of the trash, and two of one content (one copied, one moved)."""
    if not hard_links:
        request.getfixturevalue("no_hard_links")
    b = trashed_replica(tmp_path)
    kill_trash_command_everywhere(b, ["trash", "restore", "{b}", "album", "--to", "back/album"], tmp_path)
