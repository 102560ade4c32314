"""The histories the crash and fault tests interrupt, and the checks they make.

Two commands are interrupted: `sq apply` of a bundle, and `sq sync` (a
visit of the laptop's carrier to a drive). Before each, the receiving drive
and the sender share a base tree; then the sender creates, modifies, deletes
and moves files (a whole directory goes, two deleted files share their
content), and the receiver edits two of the files the sender modified (two
update/update conflicts) and adds files of its own. The command's work is
about fifty paths at scale 1.

A `Scenario` holds templates of the receiving drive (and of the carrier)
from just before the command, and what a clean, uninterrupted run leaves:
the user's files, the open conflicts and the carrier's objects. A test
copies the templates, runs the command with a fault, runs it again without,
and calls `check_interrupted` and `check_finished`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from squirrel.porcelain.conflicts import conflicts
from squirrel.porcelain.verify import verify
from tests.carrier_tools import stored_objects
from tests.fault_tools import Outcome, fresh_copy, leftovers, lost, oid, run_forked, versions
from tests.helpers import Ran, age, make_tree, tree, write

ConflictKey = tuple[str, str, str | None]

# Exit codes a failed command may end with (docs/exit-codes.md): out of space,
# a file-system error, or finished with some paths failed.
FAULT_EXITS = {11, 16, 18}


@dataclass
class Scenario:
    name: str
    drive: Path  # template of the receiving drive
    carrier: Path | None  # template of the carrier (sync only)
    bundle: Path | None  # the bundle (apply only)
    before: dict[str, bytes]  # the drive's user files before the command
    before_versions: set[str]
    expected: dict[str, bytes]  # the drive's user files after a clean run
    conflicts: set[ConflictKey]  # open conflicts after a clean run
    carrier_objects: set[str] = field(default_factory=set)  # after a clean run
    ops: list[str] = field(default_factory=list)  # the kind of each fault point of a clean run

    @property
    def points(self) -> int:
        return len(self.ops)

    def points_of(self, op: str) -> int:
        return self.ops.count(op)

    def argv(self, drive: Path, carrier: Path | None) -> list[str | Path]:
        if self.bundle is not None:
            return ["apply", self.bundle, drive, "--json"]
        assert carrier is not None
        return ["sync", drive, "--carrier", carrier, "--json"]

    def copies(self, where: Path) -> tuple[Path, Path | None]:
        """Fresh working copies of the templates under `where`."""
        drive = fresh_copy(self.drive, where / "drive")
        carrier = fresh_copy(self.carrier, where / "carrier") if self.carrier is not None else None
        return drive, carrier

    def run(self, where: Path, fault: str | None = None) -> Outcome:
        drive, carrier = where / "drive", (where / "carrier" if self.carrier is not None else None)
        return run_forked(self.argv(drive, carrier), fault)


def open_conflicts(root: Path) -> set[ConflictKey]:
    return {(c["path"], c["kind"], c["copy"]) for c in (r.summary_json() for r in conflicts(str(root)))}


def carrier_objects(carrier: Path) -> set[str]:
    return set(stored_objects(carrier))


def _ok(args: Sequence[str | Path]) -> Outcome:
    out = run_forked(args)
    assert out.code == 0, (list(args), out.code, out.stderr.decode())
    return out


def _base(scale: int) -> dict[str, bytes | str]:
    files: dict[str, bytes | str] = {
        f"d{i % 4}/f{i:03d}.txt": f"base version of file {i}\n" * (1 + i % 7) for i in range(60 * scale)
    }
    for i in range(3 * scale):
        files[f"gone/g{i}.txt"] = f"a file in a folder the sender removes: {i}\n"
    files["dup1.txt"] = files["dup2.txt"] = "two files, one content\n"
    return files


def _sender_changes(root: Path, scale: int) -> None:
    """Create, modify, delete and move files."""
    n = 12 * scale
    for i in range(n):
        write(root / f"new/n{i:03d}.txt", f"new file {i}\n")
    for i in range(n, 2 * n):
        rel = f"d{i % 4}/f{i:03d}.txt"
        write(root / rel, f"the sender's edit of file {i}\n")
    for i in range(2 * n, 3 * n):
        (root / f"d{i % 4}/f{i:03d}.txt").unlink()
    (root / "moved").mkdir()
    for i in range(3 * n, 4 * n):
        os.rename(root / f"d{i % 4}/f{i:03d}.txt", root / f"moved/f{i:03d}.txt")
    for p in sorted((root / "gone").iterdir()):
        p.unlink()
    (root / "gone").rmdir()
    (root / "dup1.txt").unlink()
    (root / "dup2.txt").unlink()


def _receiver_changes(root: Path, scale: int) -> None:
    """Edit two files the sender modified too, and add files."""
    n = 12 * scale
    edited = {f"d{n % 4}/f{n:03d}.txt", f"d{(n + 1) % 4}/f{n + 1:03d}.txt"}
    for rel in sorted(edited):
        write(root / rel, f"the receiver's edit of {rel}\n", seconds_ago=60)
    for i in range(3):
        write(root / f"mine/m{i}.txt", f"the receiver's own file {i}\n")


def _finish(scn: Scenario, tmp: Path) -> Scenario:
    work = tmp / "clean-run"
    drive, carrier = scn.copies(work)
    out = run_forked(scn.argv(drive, carrier), trace=True)
    assert out.code == 0, out.stderr.decode()
    scn.ops = out.ops
    scn.expected = tree(drive, folders=False)
    scn.conflicts = open_conflicts(drive)
    if carrier is not None:
        scn.carrier_objects = carrier_objects(carrier)
    scn.before = tree(scn.drive, folders=False)
    scn.before_versions = versions(scn.drive)
    return scn


def apply_scenario(tmp: Path, scale: int = 1) -> Scenario:
    """Replica B about to apply a bundle packed by A."""
    a, b = tmp / "A", tmp / "B"
    make_tree(a, _base(scale))
    _ok(["init", a, "--name", "A"])
    b.mkdir()
    _ok(["init", b, "--name", "B", "--join", a])
    _ok(["push", a, b])
    age(b)
    _ok(["scan", b])
    _sender_changes(a, scale)
    _receiver_changes(b, scale)
    _ok(["scan", a])
    _ok(["scan", b])
    bundle = tmp / "a-for-b.sqb"
    _ok(["pack", a, "-o", bundle, "--for", b])
    scn = Scenario("apply", b, None, bundle, {}, set(), {}, set())
    return _finish(scn, tmp)


def sync_scenario(tmp: Path, scale: int = 1) -> Scenario:
    """Drive D2 about to be visited by a carrier that holds drive D1's changes."""
    d1, d2, carrier = tmp / "D1", tmp / "D2", tmp / "carrier"
    make_tree(d1, _base(scale))
    _ok(["init", d1, "--name", "D1"])
    d2.mkdir()
    _ok(["init", d2, "--name", "D2", "--join", d1])
    _ok(["push", d1, d2])
    age(d2)
    _ok(["scan", d2])
    _ok(["sync", d1, "--carrier", carrier, "--max-size", "1G"])
    _ok(["sync", d2, "--carrier", carrier])
    _sender_changes(d1, scale)
    _ok(["sync", d1, "--carrier", carrier])
    _receiver_changes(d2, scale)
    scn = Scenario("sync", d2, carrier, None, {}, set(), {}, set())
    return _finish(scn, tmp)


# Checks ---------------------------------------------------------------------------
def check_interrupted(scn: Scenario, where: Path, first: Ran) -> list[str]:
    """What a killed or failed command left: problems found (empty when all is well)."""
    drive = where / "drive"
    problems = []
    if first.code == 0:
        pass
    elif first.killed:
        pass
    else:
        if first.code not in FAULT_EXITS:
            problems.append(f"exit code {first.code} is not one a fault may cause ({sorted(FAULT_EXITS)})")
        errors = [line for line in first.error_lines if line.startswith("sq: error: ")]
        if len(errors) != 1 or len(first.error_lines) != 1:
            problems.append(f"not one `sq: error:` line: {first.error_lines}")
    known = set(scn.before_versions) | {oid(data) for data in scn.expected.values()}
    for path, data in tree(drive, folders=False).items():
        if ".sq-conflict-" in path:
            if oid(data) not in known:
                problems.append(f"conflict copy {path} holds content that never existed")
        elif data != scn.before.get(path) and data != scn.expected.get(path):
            problems.append(f"{path} holds neither its old nor its new version (a partial or stray file)")
    gone = lost(scn.before_versions, drive)
    if gone:
        problems.append(f"versions lost: {sorted(gone)}")
    return problems


@dataclass
class Finished:
    problems: list[str]  # empty when all is well
    new: set[ConflictKey]  # open conflicts a clean run does not have
    missing: set[ConflictKey]  # a clean run's conflicts that are not open


def check_finished(scn: Scenario, where: Path, rerun: Ran) -> Finished:
    """After the re-run: problems found, and how its conflicts differ from a clean run's."""
    drive = where / "drive"
    problems = []
    if rerun.code != 0:
        problems.append(f"the re-run exited {rerun.code}: {rerun.stderr.decode()!r}")
    got = tree(drive, folders=False)
    if got != scn.expected:
        wrong = sorted(p for p in got.keys() & scn.expected.keys() if got[p] != scn.expected[p])
        extra, missing = sorted(got.keys() - scn.expected.keys()), sorted(scn.expected.keys() - got.keys())
        problems.append(f"the tree differs from a clean run's: extra {extra}, missing {missing}, different {wrong}")
    gone = lost(scn.before_versions, drive)
    if gone:
        problems.append(f"versions lost after the re-run: {sorted(gone)}")
    report = verify(str(drive))
    if not report.ok:
        problems.append(f"sq verify of the drive: {report.problems}")
    if leftovers(drive):
        problems.append(f"temporary files left: {leftovers(drive)}")
    if scn.carrier is not None:
        carrier = where / "carrier"
        report = verify(str(carrier))
        if not report.ok:
            problems.append(f"sq verify of the carrier: {report.problems}")
        missing_objects = scn.carrier_objects - carrier_objects(carrier)
        if missing_objects:
            problems.append(f"the carrier lacks objects a clean run keeps: {sorted(missing_objects)}")
    found = open_conflicts(drive)
    return Finished(problems, found - scn.conflicts, scn.conflicts - found)


_SHARED: dict[tuple[str, int], Scenario] = {}


def shared(command: str, factory: pytest.TempPathFactory, scale: int = 1) -> Scenario:
    """The history of `command` ("apply" or "sync"), built once per test session."""
    key = (command, scale)
    if key not in _SHARED:
        build = apply_scenario if command == "apply" else sync_scenario
        _SHARED[key] = build(factory.mktemp(f"{command}-history-x{scale}"), scale)
    return _SHARED[key]


# Small histories, killed at every point ------------------------------------------------
def two_replicas(a: Path, b: Path, files: dict[str, bytes | str]) -> tuple[Path, Path]:
    """Replica A holding `files`, and B (at another place) joined and in sync."""
    make_tree(a, files)
    assert run_forked(["init", a, "--name", "A"]).code == 0
    b.mkdir()
    assert run_forked(["init", b, "--name", "B", "--join", a]).code == 0
    assert run_forked(["push", a, b]).code == 0
    return a, b


def pack_for(a: Path, b: Path, tmp: Path) -> Path:
    """A bundle of A's changes for B."""
    assert run_forked(["scan", b]).code == 0
    bundle = tmp / "a-for-b.sqb"
    assert run_forked(["pack", a, "-o", bundle, "--for", b]).code == 0
    return bundle


def kill_everywhere_then_scan_and_rerun(
    b: Path, bundle: Path, tmp: Path, after_kill: Callable[[Path], object] | None = None
) -> tuple[dict[str, bytes], set[ConflictKey]]:
    """Apply `bundle` to copies of `b` killed at each point in turn; after each
    kill, the tree is as before or as after (never in between), a scan
    records nothing, and the re-run ends as a clean run does. `after_kill`
    sees each copy as the kill left it, before the scan.
    Returns the clean run's files and conflicts."""
    clean = fresh_copy(b, tmp / "clean")
    traced = run_forked(["apply", bundle, clean], trace=True)
    assert traced.code == 0, traced.stderr.decode()
    expected, conflicts = tree(clean, folders=False), open_conflicts(clean)
    before, before_versions = tree(b, folders=False), versions(b)
    for n in range(1, len(traced.ops) + 1):
        work = fresh_copy(b, tmp / f"kill-{n}")
        assert run_forked(["apply", bundle, work], f"any:{n}").killed
        if after_kill is not None:
            after_kill(work)
        scanned = run_forked(["scan", work, "--json"])
        assert scanned.code == 0, scanned.stderr.decode()
        doc = json.loads(scanned.stdout)
        where = f"killed at any:{n} ({traced.ops[n - 1]})"
        assert doc["added"] == doc["modified"] == doc["deleted"] == doc["moved"] == [], (where, doc)
        # One batch: undone, or committed whole (a kill after the commit).
        assert tree(work, folders=False) in (before, expected), where
        assert not lost(before_versions, work), where
        again = run_forked(["apply", bundle, work])
        assert again.code == 0, (where, again.stderr.decode())
        assert tree(work, folders=False) == expected, where
        assert open_conflicts(work) == conflicts, where
        assert verify(str(work)).ok and not leftovers(work), where
        shutil.rmtree(work)
    return expected, conflicts
