"""Trees a scan must leave partly out: paths longer than the index can hold,
names no sync could carry (a backslash), and the `skipped` lines of every
command that scans. Through the real `sq` (docs/guide.md, section 6)."""

from __future__ import annotations

import os
from pathlib import Path

from squirrel.errors import SyncIncomplete
from squirrel.plumbing import paths
from squirrel.plumbing.index import NAMES_CHECKED_KEY, Entry
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.vtime import VectorTime
from tests.bundle_tools import join_bundle, split_bundle
from tests.helpers import indexed, run_sq, tree, write

LONG_DIR = "a" * 200 + "/" + "b" * 200
LONG_FILE = LONG_DIR + "/" + "c" * 120 + ".jpg"  # 526 bytes: past LMDB's 511-byte keys
TOO_LONG_FOLDER = "d" * 250 + "/" + "e" * 255  # 506 bytes: fits; its folder ffff (511) does not
BACKSLASH = "back\\slash.jpg"


def skipped_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("skipped ")]


def test_a_path_too_long_for_the_index_is_skipped_not_a_crash(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    write(a / LONG_FILE, "x")
    write(a / TOO_LONG_FOLDER / "ffff" / "g.jpg", "y")
    write(a / "ok.jpg", "ok")
    init = run_sq("init", a).check()
    assert sorted(skipped_lines(init.err)) == [
        f"skipped {LONG_FILE}: path too long (526 bytes, the index holds at most 510)",
        f"skipped {TOO_LONG_FOLDER}/ffff: path too long (511 bytes, the index holds at most 510)",
    ]
    assert "1 file (2 B) indexed" in init.err
    doc = run_sq("scan", a, "--json").check().json
    assert sorted(s["path"] for s in doc["skipped"]) == [LONG_FILE, TOO_LONG_FOLDER + "/ffff"]
    assert b"ok.jpg" in indexed(a) and not any(len(p) > 510 for p in indexed(a))
    b.mkdir()
    run_sq("init", b, "--join", a).check()
    push = run_sq("push", a, b).check()
    assert len(skipped_lines(push.err)) == 2
    assert tree(b, folders=False) == {"ok.jpg": b"ok"}
    assert tree(a / LONG_DIR, folders=False) == {"c" * 120 + ".jpg": b"x"}, "the sender keeps it"


def test_a_path_too_long_for_the_index_in_a_bundle_is_refused_for_good_and_the_rest_applied(tmp_path: Path) -> None:
    # No scan records such a path, so no sq packs one: the bundle is made by hand.
    a, b = tmp_path / "A", tmp_path / "B"
    write(a / LONG_DIR / "short.jpg", "x")
    write(a / "ok.jpg", "ok")
    run_sq("init", a).check()
    b.mkdir()
    run_sq("init", b, "--join", a).check()
    run_sq("pack", a, "-o", tmp_path / "good.sqb").check()
    parts = split_bundle((tmp_path / "good.sqb").read_bytes())
    for r in parts.records:
        if r.path == f"{LONG_DIR}/short.jpg".encode():
            r.path = LONG_FILE.encode()
    (tmp_path / "long.sqb").write_bytes(join_bundle(parts))
    why = (
        "path too long (526 bytes, the index holds at most 510);"
        " no re-run can sync it: it must be renamed where it was made"
    )

    dry = run_sq("apply", tmp_path / "long.sqb", b, "--dry-run", "--json")
    assert dry.code == 18 and (dry.json["created"], dry.json["failed"]) == (3, [{"path": LONG_FILE, "error": why}])
    for created in (3, 0):  # a re-run meets the same refusal, and nothing else to do
        ran = run_sq("apply", tmp_path / "long.sqb", b)
        assert ran.code == SyncIncomplete.exit_code == 18
        assert [line for line in ran.out.splitlines() if line.startswith("failed ")] == [
            f"failed    {LONG_FILE}: {why}"
        ]
        assert f"apply: {created} created, 0 updated, 0 deleted" in ran.err
        assert ran.err.strip().splitlines()[-1] == (
            "sq: error: 1 path could not be synced (see above);"
            " running the command again will not help (see each reason)"
        )
        assert tree(b, folders=False) == {"ok.jpg": b"ok"}, "nothing of the long path is written"
        assert tree(b / LONG_DIR) == {}
        assert list((b / ".squirrel" / "tmp").iterdir()) == []
        assert not any(len(p) > 510 for p in indexed(b))
    doc = run_sq("apply", tmp_path / "long.sqb", b, "--json").json
    assert doc["failed"] == [{"path": LONG_FILE, "error": why}]


def test_a_backslash_name_is_skipped_and_never_blocks_a_sync(tmp_path: Path) -> None:
    a, b, c = tmp_path / "A", tmp_path / "B", tmp_path / "C"
    write(a / "ok.jpg", "ok")
    write(a / BACKSLASH, "bs")
    init = run_sq("init", a).check()
    assert skipped_lines(init.err) == [f"skipped {BACKSLASH}: {paths.UNCARRIABLE_REASON}"]
    b.mkdir()
    run_sq("init", b, "--join", a).check()
    c.mkdir()
    run_sq("init", c, "--join", a).check()
    push = run_sq("push", a, b).check()
    assert skipped_lines(push.err) == [f"skipped {BACKSLASH} (on A): {paths.UNCARRIABLE_REASON}"]
    run_sq("pack", a, "-o", tmp_path / "1.sqb").check()
    run_sq("apply", tmp_path / "1.sqb", c).check()
    (a / BACKSLASH).unlink()
    run_sq("push", a, b).check()
    run_sq("pack", a, "-o", tmp_path / "2.sqb").check()
    run_sq("apply", tmp_path / "2.sqb", c).check()
    assert tree(b, folders=False) == tree(c, folders=False) == {"ok.jpg": b"ok"}


def test_a_backslash_name_recorded_by_an_earlier_sq_is_forgotten_once(tmp_path: Path) -> None:
    a, b, c = tmp_path / "A", tmp_path / "B", tmp_path / "C"
    write(a / "ok.jpg", "ok")
    run_sq("init", a).check()
    b.mkdir()
    run_sq("init", b, "--join", a).check()
    c.mkdir()
    run_sq("init", c, "--join", a).check()
    write(a / BACKSLASH, "bs")
    bs = BACKSLASH.encode()
    with Replica.open(str(a)) as rep:  # what an earlier scan recorded: a file, then its deletion
        e = rep.index.next_event()
        rep.index.raise_ancestors(b"gone\\old.jpg", e)
        rep.index.set_notice(b"gone\\old.jpg", e)
        rep.index.raise_ancestors(bs, e)
        rep.index.put(bs, new_file_like(rep, e))
        rep.index.drop_meta(NAMES_CHECKED_KEY)
        rep.index.commit()
    push = run_sq("push", a, b).check()
    assert skipped_lines(push.err) == [f"skipped {BACKSLASH} (on A): {paths.UNCARRIABLE_REASON}"]
    assert bs not in indexed(a)
    with Replica.open(str(a)) as rep:
        assert rep.index.notice(b"gone\\old.jpg") is None
    run_sq("pack", a, "-o", tmp_path / "1.sqb").check()
    run_sq("apply", tmp_path / "1.sqb", c).check()
    (a / BACKSLASH).unlink()
    run_sq("push", a, b).check()
    assert tree(b, folders=False) == tree(c, folders=False) == {"ok.jpg": b"ok"}


def new_file_like(rep: Replica, e: VectorTime) -> Entry:
    """A record of ok.jpg's content, made at event `e`."""
    entry = rep.index.get(b"ok.jpg")
    assert entry is not None
    return entry.with_times(m=e, c=e)


def test_every_command_that_scans_reports_what_it_skipped(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    write(a / "ok.jpg", "ok")
    run_sq("init", a).check()
    b.mkdir()
    run_sq("init", b, "--join", a).check()
    os.mkfifo(a / "new.fifo")
    os.symlink("ok.jpg", a / "new.link")
    both = {"new.fifo": "special file: not synchronized", "new.link": "symlink: not synchronized"}
    on_a = sorted(f"skipped {p} (on A): {why}" for p, why in both.items())
    alone = sorted(f"skipped {p}: {why}" for p, why in both.items())
    assert sorted(skipped_lines(run_sq("push", a, b).check().err)) == on_a
    assert sorted(skipped_lines(run_sq("reconcile", a, b).check().err)) == on_a
    assert sorted(skipped_lines(run_sq("pack", a, "-o", tmp_path / "x.sqb").check().err)) == alone
    os.environ["SQ_CARRIER"] = str(tmp_path / "car")
    try:
        assert sorted(skipped_lines(run_sq("sync", a).check().err)) == alone
        doc = run_sq("sync", a, "--json").check().json
    finally:
        del os.environ["SQ_CARRIER"]
    assert sorted((s["replica"], s["path"], s["reason"]) for s in doc["scan_skipped"]) == [
        ("A", p, why) for p, why in sorted(both.items())
    ]
    doc = run_sq("push", a, b, "--json").check().json
    assert doc["skipped"] == 0 or isinstance(doc["skipped"], int), "the count keeps its meaning"
    assert sorted(s["path"] for s in doc["scan_skipped"]) == sorted(both)
    doc = run_sq("pack", a, "-o", tmp_path / "y.sqb", "--json").check().json
    assert sorted(s["path"] for s in doc["scan_skipped"]) == sorted(both)
    assert sorted(skipped_lines(run_sq("scan", a).check().err)) == alone
