"""`sq carrier forget`: a lost drive stops blocking the carrier, and comes
back as a known drive if it turns up again.

Through the porcelain (`visit`, `forget`, `carrier_status`) and the `sq`
entry point in this process (`sq_in_process`), on real drive folders and a
real carrier.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from squirrel.errors import BadUsage, IdentityConflict
from squirrel.plumbing.replica import Replica
from squirrel.porcelain.carrier import carrier_status
from squirrel.porcelain.forget import forget
from squirrel.porcelain.init import init
from squirrel.porcelain.visit import VisitReport, visit
from tests.carrier_tools import carrier_snapshot, object_bytes, stored_objects
from tests.fault_tools import crash_points, fresh_copy, run_forked
from tests.helpers import make_tree, sq_in_process, tree

KIB = 1024
BUDGET = 64 * KIB


def blob(rng: random.Random, tag: str, size: int = 4 * KIB) -> bytes:
    return tag.encode() + rng.randbytes(size - len(tag))


def three_drives(tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, Path, Path, Path]:
    """a (holding `files`), b and c (joined empty), and a carrier that knows all three."""
    a, b, c, carrier = tmp_path / "a", tmp_path / "b", tmp_path / "c", tmp_path / "carrier"
    make_tree(a, files)
    init(str(a), name="a")
    for d in (b, c):
        d.mkdir()
        init(str(d), name=d.name, join=str(a))
    for d in (b, c):
        go(d, carrier)
    return a, b, c, carrier


def go(drive: Path, carrier: Path) -> VisitReport:
    r = visit(str(drive), str(carrier), max_size=BUDGET)
    assert r.delivered.failed == [] and r.delivered.conflicts == []
    assert object_bytes(carrier) <= BUDGET
    return r


def drive_id(drive: Path) -> str:
    with Replica.open(str(drive), write=False) as rep:
        return rep.id


def vault_of(carrier: Path) -> Path:
    (vault,) = (carrier / "vaults").iterdir()
    return vault


def status(carrier: Path) -> dict[str, object]:
    (vault,) = carrier_status(str(carrier))["vaults"]
    return vault


def names(items: object) -> list[str]:
    assert isinstance(items, list)
    return sorted(d["name"] for d in items)


def test_forget_drops_what_was_kept_only_for_the_lost_drive_and_later_visits_take_nothing_for_it(
    tmp_path: Path,
) -> None:
    rng = random.Random(1)
    a, b, c, carrier = three_drives(tmp_path, {f"old{i}.jpg": blob(rng, f"old{i}") for i in range(3)})
    go(a, carrier)  # carries the three files for b and c
    go(b, carrier)  # b has them now; the carrier keeps them for c
    make_tree(a, {"new.jpg": blob(rng, "new")})
    go(a, carrier)  # for b and c
    assert object_bytes(carrier) == 16 * KIB

    report = forget(str(carrier), "c")
    assert (report.drive.name, report.already, report.dry_run) == ("c", False, False)
    assert (report.dropped, report.dropped_objects, report.dropped_bytes) == (3, 3, 12 * KIB)
    assert object_bytes(carrier) == 4 * KIB == report.carrier_bytes, "b still lacks new.jpg"
    vault = status(carrier)
    assert names(vault["drives"]) == ["a", "b"] and names(vault["forgotten"]) == ["c"]
    (gone,) = vault["forgotten"]  # type: ignore[misc]
    assert gone["replica"] == drive_id(c) and gone["forgotten"] >= gone["last_visit"] > 0

    # On disk: the record moved; what c held is still known, for its return.
    cid = drive_id(c)
    drives_dir, forgotten_dir = vault_of(carrier) / "drives", vault_of(carrier) / "forgotten"
    assert not (drives_dir / f"{cid}.json").exists() and (forgotten_dir / f"{cid}.json").exists()
    assert (drives_dir / f"{cid}.objects").exists()

    make_tree(a, {"newer.jpg": blob(rng, "newer")})
    r = go(a, carrier)
    assert (r.stored, r.known_drives) == (1, 2), "content is kept for b alone"
    go(b, carrier)
    assert object_bytes(carrier) == 0, "every remaining drive has everything"
    assert tree(a) == tree(b)


def test_a_dry_run_of_forget_changes_nothing_and_reports_what_forget_does(tmp_path: Path) -> None:
    rng = random.Random(2)
    a, b, c, carrier = three_drives(tmp_path, {f"f{i}.jpg": blob(rng, f"f{i}") for i in range(4)})
    go(a, carrier)
    go(b, carrier)
    before = carrier_snapshot(carrier)
    dry = forget(str(carrier), "c", dry_run=True)
    assert carrier_snapshot(carrier) == before
    assert status(carrier)["forgotten"] == []
    real = forget(str(carrier), "c")
    assert (dry.dropped, dry.dropped_objects, dry.dropped_bytes, dry.carrier_bytes) == (
        real.dropped,
        real.dropped_objects,
        real.dropped_bytes,
        real.carrier_bytes,
    )
    assert dry.dry_run and real.dropped == 4


def test_a_drive_is_named_by_its_name_or_its_id_and_a_bad_name_is_one_clear_error(tmp_path: Path) -> None:
    a, b, c, carrier = three_drives(tmp_path, {"x.jpg": b"x"})
    ran = sq_in_process("carrier", "forget", "nosuch", "--carrier", carrier)
    assert ran.code == BadUsage.exit_code and ran.error_lines == [
        "sq: error: the carrier knows no drive 'nosuch' (its drives: b, c)"
    ]
    # A second drive named b (say, a replacement), visited once: "b" is ambiguous.
    b2 = tmp_path / "b2"
    b2.mkdir()
    init(str(b2), name="b", join=str(a))
    go(b2, carrier)
    before = carrier_snapshot(carrier)
    ran = sq_in_process("carrier", "forget", "b", "--carrier", carrier)
    assert ran.code == BadUsage.exit_code and len(ran.error_lines) == 1
    assert drive_id(b) in ran.err and drive_id(b2) in ran.err and "replica id" in ran.err
    assert carrier_snapshot(carrier) == before, "a refused forget changed the carrier"

    doc = sq_in_process("carrier", "forget", drive_id(b), "--carrier", carrier, "--json").check().json
    assert (doc["replica"], doc["name"], doc["already_forgotten"]) == (drive_id(b), "b", False)
    # Known and forgotten drives share the name: still ambiguous, and the id still works.
    assert sq_in_process("carrier", "forget", "b", "--carrier", carrier).code == BadUsage.exit_code
    again = sq_in_process("carrier", "forget", drive_id(b), "--carrier", carrier, "--json").check()
    assert again.json["already_forgotten"] and "already forgotten" in again.err
    assert names(status(carrier)["drives"]) == ["b", "c"] and names(status(carrier)["forgotten"]) == ["b"]


def test_a_forgotten_drive_that_returns_is_known_again_and_catches_up_without_conflict(tmp_path: Path) -> None:
    rng = random.Random(3)
    a, b, c, carrier = three_drives(tmp_path, {f"f{i}.jpg": blob(rng, f"f{i}") for i in range(3)})
    for d in (a, b, c):
        go(d, carrier)
    assert tree(a) == tree(b) == tree(c)
    forget(str(carrier), "c")
    # While c is away: edits, a deletion and a move on a and b; c gets a file of its own.
    make_tree(a, {"while-away.jpg": blob(rng, "away")})
    (b / "f0.jpg").unlink()
    (a / "f1.jpg").rename(a / "f1-moved.jpg")
    make_tree(c, {"found-on-c.jpg": blob(rng, "c's own")})
    for d in (a, b, a, b):
        go(d, carrier)
    assert object_bytes(carrier) == 0, "nothing is kept for c while it is forgotten"

    back = go(c, carrier)
    assert back.forgotten is not None and back.known_drives == 3
    assert back.delivered.moved == 1 and back.delivered.bytes_copied == 0, "c is caught up from its own copies"
    got = tree(c, folders=False)
    assert "f0.jpg" not in got and "f1.jpg" not in got and "f1-moved.jpg" in got
    assert [p for p, _ in back.delivered.deferred] == [b"while-away.jpg"], "the only content c lacks"
    vault = status(carrier)
    assert names(vault["drives"]) == ["a", "b", "c"] and vault["forgotten"] == []
    for _ in range(3):
        for d in (a, b, c):
            go(d, carrier)
    assert tree(a) == tree(b) == tree(c)
    assert "found-on-c.jpg" in tree(a) and "f0.jpg" not in tree(c)
    assert object_bytes(carrier) == 0


def test_a_returning_drive_is_still_checked_for_the_mark_the_carrier_left(tmp_path: Path) -> None:
    a, b, c, carrier = three_drives(tmp_path, {"x.jpg": b"x"})
    go(c, carrier)
    forget(str(carrier), "c")
    clone = tmp_path / "c-clone"
    shutil.copytree(c, clone)
    assert go(c, carrier).forgotten is not None
    with pytest.raises(IdentityConflict):
        visit(str(clone), str(carrier))


def test_a_record_left_in_forgotten_by_an_older_sq_gives_way_to_the_known_one(tmp_path: Path) -> None:
    """An sq that does not know `forgotten/` sees a forgotten drive as one it
    never visited, and visiting it writes `drives/ID.json` again: the drive
    is known, and the stale forgotten record goes at the next visit."""
    a, b, c, carrier = three_drives(tmp_path, {"x.jpg": b"x"})
    forget(str(carrier), "c")
    cid = drive_id(c)
    vault = vault_of(carrier)
    record = json.loads((vault / "forgotten" / f"{cid}.json").read_text())
    del record["forgotten"]
    (vault / "drives" / f"{cid}.json").write_text(json.dumps(record))  # what the older visit leaves
    st = status(carrier)
    assert names(st["drives"]) == ["b", "c"] and st["forgotten"] == []
    r = go(c, carrier)
    assert r.forgotten is None, "the drive was known, not forgotten"
    assert not (vault / "forgotten" / f"{cid}.json").exists()


def test_forget_killed_at_any_point_leaves_the_drive_known_or_forgotten_and_again_finishes(tmp_path: Path) -> None:
    rng = random.Random(4)
    a, b, c, template = three_drives(tmp_path, {f"f{i}.jpg": blob(rng, f"f{i}") for i in range(3)})
    go(a, template)
    go(b, template)
    clean = fresh_copy(template, tmp_path / "clean")
    traced = run_forked(["carrier", "forget", "c", "--carrier", clean], trace=True)
    assert traced.code == 0 and traced.points >= 4
    expected = carrier_snapshot(clean)
    work = tmp_path / "work"
    for n in crash_points(traced.points, full=True, budget=traced.points):
        fresh_copy(template, work)
        killed = run_forked(["carrier", "forget", "c", "--carrier", work], f"any:{n}")
        assert killed.killed, f"point {n}: {killed.code} {killed.err}"
        vault = status(work)
        state = (names(vault["drives"]), names(vault["forgotten"]))
        assert state in ((["a", "b", "c"], []), (["a", "b"], ["c"])), f"point {n}: {state}"
        assert set(stored_objects(work)) <= set(stored_objects(template))
        assert run_forked(["carrier", "forget", "c", "--carrier", work]).code == 0
        finished = carrier_snapshot(work)
        assert finished.keys() == expected.keys(), f"point {n}: {finished.keys() ^ expected.keys()}"
        assert object_bytes(work) == 0
