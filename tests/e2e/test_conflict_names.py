"""Conflicts on names near the file system's 255-byte limit, through the real `sq`.

The copy of such a conflict is cut to fit, keeping its `.sq-conflict-<id>`
marker and extension, so the conflict is settled like any other, and every
replica that meets it names the copy the same way.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import blake3
import pytest

from tests.helpers import HOUR, make_tree, run_sq, tree, write

# (the long name, the part of it the copy keeps before the marker)
LONG_NAMES = [
    pytest.param(b"L" * 240 + b".jpg", b"L" * 230, id="ascii"),
    pytest.param("é".encode() * 120 + b".jpg", "é".encode() * 115, id="utf8"),
    pytest.param(b"\xe9" * 240 + b".jpg", b"\xe9" * 230, id="not-utf8"),
]


def sq_json(*args: str | Path) -> Any:
    return run_sq(*args, "--json").check().json


def name_in(doc: dict[str, Any], key: str) -> bytes:
    """A name from sq's JSON: the exact bytes of `KEY_b64` when it is there."""
    if f"{key}_b64" in doc:
        return base64.b64decode(doc[f"{key}_b64"])
    return str(doc[key]).encode()


def copy_name(kept_stem: bytes, content: bytes) -> bytes:
    return kept_stem + b".sq-conflict-" + blake3.blake3(content).hexdigest()[:8].encode() + b".jpg"


def replicas(tmp_path: Path, name: bytes, *names: str) -> list[Path]:
    """Replicas of one vault, each holding `name` with the same first version."""
    first, *others = (tmp_path / n for n in names)
    make_tree(first, {os.fsdecode(name): "v0"})
    run_sq("init", first, "--name", first.name).check()
    for r in others:
        r.mkdir()
        run_sq("init", r, "--name", r.name, "--join", first).check()
        run_sq("push", first, r).check()
    return [first, *others]


@pytest.mark.parametrize(("name", "kept_stem"), LONG_NAMES)
def test_a_conflict_on_a_long_name_is_settled_with_a_copy_cut_to_fit(
    tmp_path: Path, name: bytes, kept_stem: bytes
) -> None:
    a, b = replicas(tmp_path, name, "a", "b")
    write(a / os.fsdecode(name), "one", seconds_ago=HOUR / 4)
    write(b / os.fsdecode(name), "two", seconds_ago=HOUR / 8)  # the later edit stays at the name

    proc = run_sq("reconcile", a, b)
    assert proc.code == 0, proc.err
    assert proc.error_lines == [] and not [x for x in proc.out.splitlines() if x.startswith("failed")]
    assert "1 conflict (both versions kept), 0 failed" in proc.err
    copy = copy_name(kept_stem, b"one")
    assert len(copy) <= 255
    assert f"copy {copy.decode('utf-8', 'backslashreplace')}\n" in proc.out  # as sq shows a name

    want = {os.fsdecode(name): b"two", os.fsdecode(copy): b"one"}
    assert tree(a) == tree(b) == want
    for r in (a, b):
        (listed,) = sq_json("conflicts", r)
        assert (name_in(listed, "path"), listed["kind"], name_in(listed, "copy")) == (name, "update/update", copy)

    again = sq_json("reconcile", a, b)
    assert (again["created"], again["updated"], again["conflicts"], again["failed"]) == (0, 0, [], [])
    assert tree(a) == tree(b) == want


def test_replicas_that_meet_a_long_name_conflict_apart_name_the_copy_alike(tmp_path: Path) -> None:
    name = b"L" * 250 + b".jpg"
    a, b, c = replicas(tmp_path, name, "a", "b", "c")
    write(a / os.fsdecode(name), "one", seconds_ago=HOUR / 4)
    write(b / os.fsdecode(name), "two", seconds_ago=HOUR / 8)
    sq_json("push", a, c)  # C holds A's edit too

    met = [sq_json("push", b, r)["conflicts"] for r in (a, c)]  # A and C each meet it
    copy = copy_name(b"L" * 230, b"one")
    assert [[name_in(x, "copy") for x in m] for m in met] == [[copy], [copy]]
    assert tree(a) == tree(c) == {os.fsdecode(name): b"two", os.fsdecode(copy): b"one"}

    for x, y in ((a, c), (a, b), (b, c)):
        doc = sq_json("reconcile", x, y)
        assert (doc["conflicts"], doc["failed"]) == ([], [])
    assert tree(a) == tree(b) == tree(c) == {os.fsdecode(name): b"two", os.fsdecode(copy): b"one"}
    for r in (a, b, c):
        assert [name_in(x, "copy") for x in sq_json("conflicts", r)] == [copy]
