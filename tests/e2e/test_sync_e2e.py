"""The real `sq` entry point, three replica folders, a life of edits and syncs.

init and join, edits on every replica, push and reconcile, a conflict met,
listed with `sq conflicts --json` and settled with `sq resolve`; at the end
every tree is identical and no conflict is open.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import HOUR, make_tree, run_sq, tree, write


def sq_json(*args: str | Path) -> Any:
    return run_sq(*args, "--json").check().json


def test_three_replicas_converge_through_push_reconcile_and_resolve(tmp_path: Path) -> None:
    a, b, c = tmp_path / "drive-a", tmp_path / "drive-b", tmp_path / "drive-c"
    make_tree(a, {"photos/2021/beach.jpg": "sand", "photos/2021/sea.jpg": "waves", "notes.txt": "v1"})
    make_tree(c, {"photos/2021/beach.jpg": "sand"})  # C already holds one identical file
    b.mkdir()

    assert sq_json("init", a, "--name", "a")["files"] == 3
    vault = sq_json("init", b, "--name", "b", "--join", a)["vault"]
    assert sq_json("init", c, "--name", "c", "--join", a)["vault"] == vault

    doc = sq_json("push", a, b)
    assert (doc["created"], doc["conflicts"]) == (5, [])  # 3 files, 2 directories
    doc = sq_json("reconcile", b, c)
    assert doc["conflicts"] == []  # identical content is never a conflict
    assert tree(a) == tree(b) == tree(c)

    # Independent edits on all three.
    write(a / "notes.txt", "v2 from a")
    (c / "photos/2021/sea.jpg").unlink()
    make_tree(b, {"photos/2022/snow.jpg": "white"})
    for x, y in ((a, b), (b, c), (a, b)):
        doc = sq_json("reconcile", x, y)
        assert doc["conflicts"] == [] and doc["failed"] == []
    expected = {
        "photos/": b"",
        "photos/2021/": b"",
        "photos/2022/": b"",
        "photos/2021/beach.jpg": b"sand",
        "photos/2022/snow.jpg": b"white",
        "notes.txt": b"v2 from a",
    }
    assert tree(a) == tree(b) == tree(c) == expected

    # A conflict: A and C edit the same file; C's edit is the later one.
    write(a / "notes.txt", "v3 from a", seconds_ago=HOUR / 4)
    write(c / "notes.txt", "v3 from c", seconds_ago=HOUR / 8)
    doc = sq_json("reconcile", a, c)
    assert len(doc["conflicts"]) == 1
    conflict = doc["conflicts"][0]
    assert (conflict["path"], conflict["kind"], conflict["kept"]) == ("notes.txt", "update/update", "notes.txt")
    copy = conflict["copy"]
    assert copy.startswith("notes.sq-conflict-") and copy.endswith(".txt")
    assert tree(a) == tree(c)
    assert (c / "notes.txt").read_bytes() == b"v3 from c" and (c / copy).read_bytes() == b"v3 from a"

    assert conflict["replica"] == "c"  # A -> C runs first: C meets the conflict and settles it
    # The copy came back to A in the other direction, and the conflict with it.
    for r in (a, c):
        listed = sq_json("conflicts", r)
        assert [(x["path"], x["kind"], x["copy"], x["replica"]) for x in listed] == [
            ("notes.txt", "update/update", copy, "c")
        ]

    # Resolved on A, which did not meet it.
    proc = run_sq("resolve", a, "notes.txt", "--keep", "copy")
    assert proc.code == 0, proc.stderr.decode()
    assert sq_json("conflicts", a) == []
    assert (a / "notes.txt").read_bytes() == b"v3 from a"

    for x, y in ((a, c), (c, b), (a, b)):
        doc = sq_json("reconcile", x, y)
        assert doc["conflicts"] == [] and doc["failed"] == []
    assert tree(a) == tree(b) == tree(c) == {**expected, "notes.txt": b"v3 from a"}
    for r in (a, b, c):
        assert sq_json("conflicts", r) == []
    # Everything has been exchanged: nothing left to do in any direction.
    for x, y in ((a, b), (b, c), (c, a)):
        doc = sq_json("reconcile", x, y)
        assert (doc["created"], doc["updated"], doc["deleted"], doc["conflicts"]) == (0, 0, 0, [])


def test_errors_have_their_documented_exit_codes(tmp_path: Path) -> None:
    a, b, other = tmp_path / "a", tmp_path / "b", tmp_path / "other"
    for r in (a, b, other):
        make_tree(r, {"f": r.name})
    assert run_sq("init", a).code == 0
    assert run_sq("init", b, "--join", a).code == 0
    assert run_sq("init", other).code == 0

    proc = run_sq("push", a, other)
    assert proc.code == 6 and b"different vaults" in proc.stderr
    proc = run_sq("resolve", b, "f", "--keep", "path")
    assert proc.code == 14
    proc = run_sq("push", a, tmp_path / "missing")
    assert proc.code == 5
    unmounted = tmp_path / "mnt"
    unmounted.mkdir()
    proc = run_sq("reconcile", a, unmounted)
    assert proc.code == 3
    assert tree(other) == {"f": b"other"} and tree(unmounted) == {}

    proc = run_sq("reconcile", a, b, "--dry-run", "--json")
    assert proc.code == 0
    assert json.loads(proc.stdout)["conflicts"][0]["kind"] == "create/create"
    assert tree(b) == {"f": b"b"}
