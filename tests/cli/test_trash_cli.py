"""The retention policy is applied at the end of every command that writes
to a replica, and by none that only reads; a dry run applies nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from squirrel.plumbing.replica import Replica
from squirrel.plumbing.retention import Policy
from tests.helpers import age_trash, make_tree, sq_in_process, write


def sq(*args: Any, code: int = 0) -> Any:
    ran = sq_in_process(*args)
    assert ran.code == code, (args, ran.code, ran.err)
    return ran


def ids(root: Path) -> list[int]:
    return [it["id"] for it in sq("trash", "list", root, "--json").json["items"]]


@pytest.fixture
def vault(tmp_path: Path) -> tuple[Path, Path]:
    """A and B in sync; B keeps its trash 7 days, and holds a version
    trashed 10 days ago and another trashed now."""
    a = make_tree(tmp_path / "A", {"old.txt": "old", "new.txt": "new", "x.txt": "base\n"})
    b = tmp_path / "B"
    b.mkdir()
    sq("init", a, "--name", "A")
    sq("init", b, "--name", "B", "--join", a)
    sq("push", a, b)
    sq("trash", "policy", b, "--keep-days", "7")
    (a / "old.txt").unlink()
    sq("push", a, b)
    (a / "new.txt").unlink()
    sq("push", a, b)
    age_trash(b, 10, [min(ids(b))])
    return a, b


def conflict_then_resolve(a: Path, b: Path, tmp: Path) -> list[Any]:
    # The push that meets the conflict would apply the policy itself: it
    # runs without one, which is then stored as it was, untried.
    policy = sq("trash", "policy", b, "--json").json
    sq("trash", "policy", b, "--keep-everything")
    write(a / "x.txt", "A's edit\n", seconds_ago=600)
    write(b / "x.txt", "B's edit\n", seconds_ago=60)
    sq("push", a, b)
    with Replica.open(str(b)) as rep:
        rep.trash.set_policy(Policy(policy["keep_days"], policy["max_size"]))
        rep.index.commit()
    return ["resolve", b, "x.txt", "--keep", "copy"]


WRITERS: dict[str, Callable[[Path, Path, Path], list[Any]]] = {
    "scan": lambda a, b, t: ["scan", b],
    "push into it": lambda a, b, t: ["push", a, b],
    "push from it": lambda a, b, t: ["push", b, a],
    "reconcile": lambda a, b, t: ["reconcile", a, b],
    "apply": lambda a, b, t: (sq("pack", a, "-o", t / "x.sqb"), ["apply", t / "x.sqb", b])[1],
    "sync": lambda a, b, t: ["sync", b, "--carrier", t / "carrier"],
    "pack": lambda a, b, t: ["pack", b, "-o", t / "b.sqb"],
    "pack --for it": lambda a, b, t: ["pack", a, "-o", t / "a.sqb", "--for", b],
    "knowledge": lambda a, b, t: ["knowledge", b, "-o", t / "b.knowledge"],
    "reidentify": lambda a, b, t: ["reidentify", b],
    "resolve": conflict_then_resolve,
    "trash restore": lambda a, b, t: ["trash", "restore", b, "new.txt"],
}


@pytest.mark.parametrize("command", WRITERS)
def test_every_command_that_writes_applies_the_policy_at_its_end(
    vault: tuple[Path, Path], tmp_path: Path, command: str
) -> None:
    a, b = vault
    args = WRITERS[command](a, b, tmp_path)
    before = ids(b)
    assert len(before) >= 2
    sq(*args)
    after = ids(b)
    assert min(before) not in after, "the version trashed 10 days ago went"
    assert max(before) in after or command == "trash restore", "the one trashed today stays"
    sq("verify", b)


@pytest.mark.parametrize(
    "args",
    [
        ["status", "{b}"],
        ["verify", "{b}"],
        ["conflicts", "{b}"],
        ["ls-index", "{b}"],
        ["trash", "list", "{b}"],
        ["trash", "policy", "{b}"],
        ["push", "{a}", "{b}", "--dry-run"],
        ["trash", "restore", "{b}", "new.txt", "--dry-run"],
        ["trash", "policy", "{b}", "--keep-days", "3", "--dry-run"],
    ],
    ids=lambda args: " ".join(a for a in args if not a.startswith("{")),
)
def test_commands_that_only_read_or_dry_run_apply_nothing(vault: tuple[Path, Path], args: list[str]) -> None:
    a, b = vault
    before = ids(b)
    sq(*[str(a) if x == "{a}" else str(b) if x == "{b}" else x for x in args])
    assert ids(b) == before
