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
The kills go through `run_forked` (tests/fault_tools.py); the seeded random
kills of a larger history use the real `sq` executable.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from tests.crash_scenarios import (
    Scenario,
    check_finished,
    check_interrupted,
    open_conflicts,
    shared,
    spurious_update_delete,
)
from tests.fault_tools import KILLED, Outcome, crash_points, fresh_copy, run_forked, run_real, user_files
from tests.helpers import make_tree, write

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
    other = spurious_update_delete(scn, end.new)
    if other:
        problems.append(f"new conflicts: {sorted(other, key=str)}")
    if end.missing:
        problems.append(f"conflicts not recorded: {sorted(end.missing, key=str)}")
    return first, problems


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
    where = tmp_path_factory.mktemp(f"random-{command}-{seed}")
    drive, carrier = scn.copies(where)
    first = run_real(scn.argv(drive, carrier), f"any:{n}")
    assert first.killed, f"any:{n} of {scn.points} did not kill the real sq: {first.code}"
    problems = check_interrupted(scn, where, first)
    end = check_finished(scn, where, run_real(scn.argv(drive, carrier)))
    other = spurious_update_delete(scn, end.new)
    assert not problems + end.problems and not other and not end.missing, (n, problems, end, other)
    shutil.rmtree(where)


# The known bug: an update interrupted between trash and rename --------------------------
def one_update(tmp: Path) -> tuple[Path, Path, Path]:
    """Replicas A and B share x.txt; A edits it; the bundle carries the edit."""
    a, b = tmp / "A", tmp / "B"
    make_tree(a, {"x.txt": "the old version\n"})
    assert run_forked(["init", a, "--name", "A"]).code == 0
    b.mkdir()
    assert run_forked(["init", b, "--name", "B", "--join", a]).code == 0
    assert run_forked(["push", a, b]).code == 0
    write(a / "x.txt", "the new version\n")
    bundle = tmp / "x.sqb"
    assert run_forked(["pack", a, "-o", bundle, "--for", b]).code == 0
    return a, b, bundle


# An update passes two renames: the old version into the trash, the new one into place.
BETWEEN_TRASH_AND_RENAME = "rename:2"


def test_an_update_killed_between_trash_and_rename_is_finished_without_a_conflict(tmp_path: Path) -> None:
    _, b, bundle = one_update(tmp_path)
    killed = run_forked(["apply", bundle, b], BETWEEN_TRASH_AND_RENAME)
    assert killed.killed
    again = run_forked(["apply", bundle, b])
    assert again.code == 0
    assert user_files(b) == {"x.txt": b"the new version\n"}
    assert open_conflicts(b) == set()


def test_an_update_whose_rename_fails_keeps_the_old_version_at_its_path(tmp_path: Path) -> None:
    _, b, bundle = one_update(tmp_path)
    failed = run_forked(["apply", bundle, b], BETWEEN_TRASH_AND_RENAME + ":eio")
    assert failed.code == 18
    assert user_files(b) == {"x.txt": b"the old version\n"}


def test_a_kill_in_the_replace_window_loses_nothing_and_its_rerun_ends_with_the_right_file(tmp_path: Path) -> None:
    """What the bug does do: the old version is in the trash, the re-run installs the new one."""
    _, b, bundle = one_update(tmp_path)
    before = fresh_copy(b, tmp_path / "B-before")
    assert run_forked(["apply", bundle, b], BETWEEN_TRASH_AND_RENAME).killed
    trash = b / ".squirrel" / "trash"
    assert [p.read_bytes() for p in trash.iterdir()] == [b"the old version\n"]
    assert run_forked(["apply", bundle, b]).code == 0
    assert user_files(b) == {"x.txt": b"the new version\n"}
    assert user_files(before) == {"x.txt": b"the old version\n"}
