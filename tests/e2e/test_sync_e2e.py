"""The real `sq` entry point, three replica folders, a life of edits and syncs.

init and join, edits on every replica, push and reconcile, a conflict met,
listed with `sq conflicts --json` and settled with `sq resolve`; at the end
every tree is identical and no conflict is open.
"""

from __future__ import annotations

import json
import resource
import subprocess
from pathlib import Path
from typing import Any

from tests.helpers import HOUR, _sq_process, make_tree, run_sq, tree, write


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


def test_many_files_cross_under_a_low_limit_of_open_files(tmp_path: Path) -> None:
    """The next files of a run are opened ahead; under a soft limit of 48
    descriptors (a quarter of it for the window) push, pack and apply, and
    both visits of a carrier still carry every file, byte-exact."""
    a, b, c, d = (tmp_path / n for n in ("drive-a", "drive-b", "drive-c", "drive-d"))
    make_tree(a, {f"photos/roll{i // 100}/img_{i:04d}.jpg": b"%d " % i * (50 + i % 300) for i in range(400)})
    for x in (b, c, d):
        x.mkdir()
    run_sq("init", a, "--name", "a").check()
    for x in (b, c, d):
        run_sq("init", x, "--name", x.name, "--join", a).check()
    bundle, carrier = tmp_path / "a.sqb", tmp_path / "carrier"

    def low(*args: str | Path) -> Any:
        argv, env = _sq_process([*args, "--json"], None)
        proc = subprocess.run(argv, env=env, capture_output=True, check=False, preexec_fn=few_files, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    assert low("push", a, b)["created"] == 405  # 400 files, 5 folders
    assert low("pack", a, "-o", bundle, "--for", c)["objects"] == 400
    assert low("apply", bundle, c)["created"] == 405
    low("sync", d, "--carrier", carrier)  # the carrier learns of D
    assert low("sync", a, "--carrier", carrier)["carried_in"] == 400  # takes what D lacks
    assert low("sync", d, "--carrier", carrier)["created"] == 405
    assert tree(b) == tree(c) == tree(d) == tree(a)


def few_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (48, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


def test_a_file_moved_out_of_a_folder_that_becomes_a_file(tmp_path: Path) -> None:
    """B moves d/y to f/w and puts a file where the folder d was: pushing
    that to A moves A's d/y out of the folder the same push replaces."""
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, {"f/": "", "d/y": "photo", "a": "notes"})
    b.mkdir()
    run_sq("init", a, "--name", "a").check()
    run_sq("init", b, "--name", "b", "--join", a).check()
    run_sq("push", a, b).check()
    (b / "d/y").rename(b / "f/w")
    (b / "d").rmdir()
    (b / "a").rename(b / "d")

    doc = sq_json("push", b, a)
    assert doc["failed"] == []
    assert tree(a) == tree(b) == {"f/": b"", "f/w": b"photo", "d": b"notes"}
