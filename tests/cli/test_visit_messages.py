"""What a visit says when it could not carry or deliver everything: the
lines a newcomer reads after `sq sync DRIVE`, and that they tell what to
do next. The JSON of a visit stays what it was (docs/commands.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_tree, sq_in_process

SYNC_KEYS = {
    "created", "updated", "deleted", "skipped", "moved", "bytes_copied", "conflicts", "failed", "deferred",
    "dry_run", "drive", "taken", "carried_in", "carried_in_bytes", "left_behind", "left_behind_bytes",
    "dropped", "dropped_bytes", "carrier_bytes", "budget", "known_drives", "forgotten", "healed",
    "scrubbed_bytes", "damaged", "lost", "scan_skipped",
}  # fmt: skip


@pytest.fixture
def drive1(tmp_path: Path) -> Path:
    d1 = make_tree(tmp_path / "drive1", {"photos/a.jpg": "a", "photos/b.jpg": "b"})
    sq_in_process("init", d1, "--name", "drive1").check()
    return d1


def carrier(tmp_path: Path) -> Path:
    return tmp_path / "carrier"


def visit(tmp_path: Path, drive: Path, *more: str) -> list[str]:
    """`sq sync DRIVE`: the lines on stderr."""
    return sq_in_process("sync", drive, "--carrier", carrier(tmp_path), *more).check().err.splitlines()


def test_the_first_visit_says_why_it_carried_nothing_and_what_to_do(tmp_path: Path, drive1: Path) -> None:
    err = visit(tmp_path, drive1)
    assert err[0].startswith("sync drive1: delivered 0 created,") and "took 2 changes, carried in 0 B" in err[0]
    assert err[1] == (
        "nothing was carried in: drive1 is the only drive of its vault the carrier knows, and it carries content"
        " only for another drive. Next, join another drive to the vault"
        f" (`sq init DRIVE --join {carrier(tmp_path)}`) and visit it (`sq sync DRIVE`)"
    )
    # A dry run says it too; a second visit of the only drive still does.
    assert visit(tmp_path, drive1, "--dry-run")[1].startswith("nothing would be carried in: drive1 is the only drive")
    assert visit(tmp_path, drive1)[1].startswith("nothing was carried in: drive1 is the only drive")


def test_the_json_of_a_first_visit_is_unchanged(tmp_path: Path, drive1: Path) -> None:
    doc = sq_in_process("sync", drive1, "--carrier", carrier(tmp_path), "--json").check().json
    assert set(doc) == SYNC_KEYS
    assert (doc["taken"], doc["carried_in"], doc["known_drives"]) == (2, 0, 1)


def test_a_drive_of_the_vault_never_visited_is_named(tmp_path: Path, drive1: Path) -> None:
    d2 = tmp_path / "drive2"
    d2.mkdir()
    sq_in_process("init", d2, "--name", "drive2", "--join", drive1).check()  # drive2 knows drive1
    err = visit(tmp_path, d2)
    assert err[1].endswith("drive1 is in the vault but never visited: visit it next (`sq sync DRIVE`)"), err


def test_what_waits_names_the_drive_to_visit_first(tmp_path: Path, drive1: Path) -> None:
    visit(tmp_path, drive1)
    d2 = tmp_path / "drive2"
    d2.mkdir()
    sq_in_process("init", d2, "--name", "drive2", "--join", carrier(tmp_path)).check()
    err = visit(tmp_path, d2)
    assert err[-1] == (
        "2 versions for this drive wait for a later visit (the carrier does not hold them yet):"
        " visit drive1 (it holds 2) first, then drive2 again"
    )
    assert not any(line.startswith("nothing was carried in") for line in err)
    # Done as told: drive1, then drive2, and nothing waits any more.
    visit(tmp_path, drive1)
    err = visit(tmp_path, d2)
    assert err[0].startswith("sync drive2: delivered 2 created,") and len(err) == 1, err


def test_what_no_known_drive_holds_is_said_so(tmp_path: Path, drive1: Path) -> None:
    visit(tmp_path, drive1)
    d2 = tmp_path / "drive2"
    d2.mkdir()
    sq_in_process("init", d2, "--name", "drive2", "--join", carrier(tmp_path)).check()
    visit(tmp_path, d2)
    sq_in_process("carrier", "forget", "drive1", "--carrier", carrier(tmp_path)).check()
    err = visit(tmp_path, d2)
    assert err[-2].startswith("nothing was carried in: drive2 is the only drive")
    assert err[-1] == (
        "2 versions for this drive wait for a later visit (the carrier does not hold them yet):"
        " 2 versions of them are on no drive the carrier knows (see `sq carrier at-risk`)"
    )
