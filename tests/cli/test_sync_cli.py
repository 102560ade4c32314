"""`sq push`, `sq reconcile`, `sq conflicts` and `sq resolve` through click.

Every command runs through the `sq` entry point (`main()`) in this process:
output, JSON and exit codes as a user gets them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import blake3
import pytest

from squirrel.porcelain.init import init
from tests.helpers import HOUR, make_tree, sq_in_process, tree, write

SYNC_FIELDS = {"created", "updated", "deleted", "skipped", "conflicts"}


def short_id(content: bytes) -> str:
    return blake3.blake3(content).hexdigest()[:8]


def sq(*args: str | Path) -> Any:
    """Run `sq ARGS --json` in-process; returns the decoded JSON document."""
    return sq_in_process(*args, "--json").check().json


def exit_code(*args: str | Path) -> int:
    """Run `sq ARGS` in-process; returns its exit code."""
    return sq_in_process(*args).code


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    init(str(a), name="a")
    init(str(b), name="b", join=str(a))
    return a, b


def conflicted(a: Path, b: Path) -> str:
    """An update/update conflict met on B (A's version stays); returns the copy's name."""
    make_tree(a, {"pics/p.jpg": "v1"})
    sq("push", a, b)
    write(a / "pics/p.jpg", "A's edit", seconds_ago=HOUR / 8)
    write(b / "pics/p.jpg", "B's edit", seconds_ago=HOUR / 4)
    doc = sq("push", a, b)
    copy = "pics/p.sq-conflict-" + short_id(b"B's edit") + ".jpg"
    assert [{k: c[k] for k in ("path", "kind", "kept", "copy")} for c in doc["conflicts"]] == [
        {"path": "pics/p.jpg", "kind": "update/update", "kept": "pics/p.jpg", "copy": copy}
    ]
    return copy


def test_push_json_has_the_documented_fields(pair: tuple[Path, Path]) -> None:
    a, b = pair
    make_tree(a, {"x": "1", "d/y": "2"})
    doc = sq("push", a, b)
    assert SYNC_FIELDS <= doc.keys()
    assert (doc["created"], doc["updated"], doc["deleted"], doc["conflicts"]) == (3, 0, 0, [])
    write(a / "x", "1, edited")
    (a / "d/y").unlink()
    doc = sq("push", a, b)
    assert (doc["created"], doc["updated"], doc["deleted"], doc["conflicts"]) == (0, 1, 1, [])
    assert tree(b, folders=False) == {"x": b"1, edited"}
    doc = sq("push", a, b)
    assert (doc["created"], doc["updated"], doc["deleted"], doc["conflicts"]) == (0, 0, 0, [])


def test_skipped_counts_what_the_receiver_already_knows(pair: tuple[Path, Path]) -> None:
    a, b = pair
    make_tree(a, {"d/x": "1", "e/y": "2"})
    sq("push", a, b)
    write(a / "d/x", "1, edited")
    doc = sq("push", a, b)
    assert doc["updated"] == 1
    assert doc["skipped"] >= 1  # e/ at least: B knows it, so it is not visited


def test_push_json_reports_each_conflict(pair: tuple[Path, Path]) -> None:
    a, b = pair
    copy = conflicted(a, b)
    assert tree(b, folders=False) == {"pics/p.jpg": b"A's edit", copy: b"B's edit"}


def test_push_of_a_subpath(pair: tuple[Path, Path]) -> None:
    a, b = pair
    make_tree(a, {"one/f": "1", "two/g": "2"})
    doc = sq("push", a, b, "one")
    assert doc["conflicts"] == []
    assert tree(b, folders=False) == {"one/f": b"1"}


def test_reconcile_json_goes_both_ways(pair: tuple[Path, Path]) -> None:
    a, b = pair
    make_tree(a, {"from-a": "a"})
    make_tree(b, {"from-b": "b"})
    doc = sq("reconcile", a, b)
    assert SYNC_FIELDS <= doc.keys()
    assert (doc["created"], doc["conflicts"]) == (2, [])
    assert tree(a, folders=False) == tree(b, folders=False) == {"from-a": b"a", "from-b": b"b"}


def test_reconcile_json_names_the_replica_of_each_conflict(pair: tuple[Path, Path]) -> None:
    a, b = pair
    make_tree(a, {"f.txt": "from a"})
    make_tree(b, {"f.txt": "from b"})
    write(a / "f.txt", "from a", seconds_ago=HOUR / 8)
    doc = sq("reconcile", a, b)
    copy = f"f.sq-conflict-{short_id(b'from b')}.txt"
    assert [(c["path"], c["kind"], c["kept"], c["copy"], c["replica"]) for c in doc["conflicts"]] == [
        ("f.txt", "create/create", "f.txt", copy, "b")
    ]
    assert tree(a, folders=False) == tree(b, folders=False) == {"f.txt": b"from a", copy: b"from b"}


@pytest.mark.parametrize("command", ["push", "reconcile"])
def test_dry_run_changes_nothing(pair: tuple[Path, Path], command: str) -> None:
    a, b = pair
    make_tree(a, {"x": "1", "gone": "g"})
    sq("push", a, b)
    write(a / "x", "1, edited")
    (a / "gone").unlink()
    make_tree(a, {"new": "n"})
    make_tree(b, {"only-b": "b"})
    before_a, before_b = tree(a, folders=False), tree(b, folders=False)
    doc = sq(command, a, b, "--dry-run")
    assert doc["created"] >= 1 and doc["updated"] == 1 and doc["deleted"] == 1
    assert tree(a, folders=False) == before_a and tree(b, folders=False) == before_b
    real = sq(command, a, b)
    assert (real["created"], real["updated"], real["deleted"]) == (doc["created"], doc["updated"], doc["deleted"])


def test_dry_run_reports_the_conflicts_it_would_meet(pair: tuple[Path, Path]) -> None:
    a, b = pair
    make_tree(a, {"p.jpg": "v1"})
    sq("push", a, b)
    write(a / "p.jpg", "A's edit", seconds_ago=HOUR / 8)
    write(b / "p.jpg", "B's edit", seconds_ago=HOUR / 4)
    doc = sq("push", a, b, "--dry-run")
    assert [(c["path"], c["kind"]) for c in doc["conflicts"]] == [("p.jpg", "update/update")]
    assert tree(b, folders=False) == {"p.jpg": b"B's edit"}
    assert sq("conflicts", b) == []


def test_human_output_goes_to_stderr_and_names_the_conflict(pair: tuple[Path, Path]) -> None:
    a, b = pair
    make_tree(a, {"f": "from a"})
    make_tree(b, {"f": "from b"})
    result = sq_in_process("push", a, b)
    assert result.code == 0
    assert "create/create" in result.out and "conflict" in result.out
    assert "1 conflict (both versions kept)" in result.err


def test_conflicts_json_lists_open_conflicts(pair: tuple[Path, Path]) -> None:
    a, b = pair
    copy = conflicted(a, b)
    listed = sq("conflicts", b)
    assert [(c["path"], c["kind"], c["kept"], c["copy"]) for c in listed] == [
        ("pics/p.jpg", "update/update", "pics/p.jpg", copy)
    ]
    assert listed[0]["ours"]["oid"] == blake3.blake3(b"B's edit").hexdigest()
    assert listed[0]["theirs"]["oid"] == blake3.blake3(b"A's edit").hexdigest()
    assert sq("conflicts", a) == []


def test_resolve_keep_copy_then_reconcile(pair: tuple[Path, Path]) -> None:
    a, b = pair
    conflicted(a, b)
    doc = sq("resolve", b, "pics/p.jpg", "--keep", "copy")
    assert doc["path"] == "pics/p.jpg" and doc["kept"] == "copy"
    assert sq("conflicts", b) == []
    assert tree(b, folders=False) == {"pics/p.jpg": b"B's edit"}
    rec = sq("reconcile", a, b)
    assert rec["conflicts"] == []
    assert tree(a, folders=False) == tree(b, folders=False) == {"pics/p.jpg": b"B's edit"}


def test_resolve_keep_path(pair: tuple[Path, Path]) -> None:
    a, b = pair
    copy = conflicted(a, b)
    doc = sq("resolve", b, "pics/p.jpg", "--keep", "path")
    assert doc["trashed"] == copy
    assert tree(b, folders=False) == {"pics/p.jpg": b"A's edit"}
    assert sq("reconcile", a, b)["conflicts"] == []
    assert tree(a, folders=False) == tree(b, folders=False)


def test_resolve_without_a_conflict_exits_14(pair: tuple[Path, Path]) -> None:
    a, b = pair
    make_tree(b, {"fine.txt": "ok"})
    ran = sq_in_process("resolve", b, "fine.txt", "--keep", "path")
    assert ran.code == 14
    assert "no open conflict" in ran.err
    assert tree(b, folders=False) == {"fine.txt": b"ok"}


def test_resolve_keep_copy_of_a_conflict_without_copy_exits_14(pair: tuple[Path, Path]) -> None:
    a, b = pair
    make_tree(a, {"n.txt": "v1"})
    sq("push", a, b)
    (a / "n.txt").unlink()
    write(b / "n.txt", "B's edit")
    doc = sq("push", a, b)
    assert [c["kind"] for c in doc["conflicts"]] == ["delete/update"]
    assert exit_code("resolve", str(b), "n.txt", "--keep", "copy") == 14
    assert tree(b, folders=False) == {"n.txt": b"B's edit"}
    assert exit_code("resolve", str(b), "n.txt", "--keep", "path") == 0
    assert sq("conflicts", b) == []


def test_resolve_with_a_bad_keep_is_a_usage_error(pair: tuple[Path, Path]) -> None:
    _, b = pair
    assert exit_code("resolve", str(b), "x", "--keep", "both") == 2


def test_push_between_vaults_exits_6(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, {"f": "a"})
    make_tree(b, {"g": "b"})
    init(str(a))
    init(str(b))
    assert exit_code("push", str(a), str(b)) == 6
    assert exit_code("reconcile", str(a), str(b)) == 6
    assert tree(b, folders=False) == {"g": b"b"}


def test_push_to_a_directory_that_is_not_a_replica_exits_3(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = pair
    empty = tmp_path / "unmounted"
    empty.mkdir()
    assert exit_code("push", str(a), str(empty)) == 3
    assert os.listdir(empty) == []


def test_push_successful_exit_code_is_0_even_with_conflicts(pair: tuple[Path, Path]) -> None:
    a, b = pair
    make_tree(a, {"f": "from a"})
    make_tree(b, {"f": "from b"})
    assert exit_code("push", str(a), str(b), "--json") == 0


def test_resolve_by_the_copy_name(pair: tuple[Path, Path]) -> None:
    a, b = pair
    copy = conflicted(a, b)
    assert exit_code("resolve", str(b), copy, "--keep", "copy") == 0
    assert tree(b, folders=False) == {"pics/p.jpg": b"B's edit"}
