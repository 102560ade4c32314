"""The trash with the real `sq`: every version a sync or `sq resolve` moved
aside is listed with why it went, comes back byte-exact with
`sq trash restore` (never over anything) and travels on from there like any
edit, and goes for good with `sq trash purge` or the retention policy,
oldest first. `sq verify` checks the trash's records against its files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import blake3
import lmdb

from tests.helpers import Ran, age_trash, make_tree, run_sq, tree, write

DAY = 86_400


def sq(*args: str | Path, code: int = 0) -> Ran:
    return run_sq(*args).check(code)


def pair(tmp: Path, files: dict[str, bytes | str]) -> tuple[Path, Path]:
    """Replica A holding `files`, and B joined and in sync with it."""
    a, b = make_tree(tmp / "A", files), tmp / "B"
    b.mkdir()
    sq("init", a, "--name", "A")
    sq("init", b, "--name", "B", "--join", a)
    sq("push", a, b)
    return a, b


def listed(root: Path, *pattern: str) -> list[dict[str, Any]]:
    doc = sq("trash", "list", root, *pattern, "--json").json
    assert doc["count"] == len(doc["items"])
    items: list[dict[str, Any]] = doc["items"]
    return items


def why(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(it["path"], it["reason"]) for it in items]


def oid(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def trash_files(root: Path) -> set[str]:
    return set(os.listdir(root / ".squirrel" / "trash"))


# Listing, and each reason -------------------------------------------------------------------
def test_a_sync_lists_what_it_replaced_and_deleted_newest_first_with_the_sender(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"x.txt": "x v1\n", "y.txt": "y\n", "album/one.jpg": "one", "keep.txt": "k"})
    write(a / "x.txt", "x v2\n")
    (a / "y.txt").unlink()
    sq("push", a, b)
    (a / "album/one.jpg").unlink()
    sq("push", a, b)
    items = listed(b)
    assert why(items)[0] == ("album/one.jpg", "deleted by a sync from A"), "the newest first"
    assert sorted(why(items)[1:]) == [("x.txt", "replaced by a sync from A"), ("y.txt", "deleted by a sync from A")]
    assert [it["id"] for it in items] == sorted((it["id"] for it in items), reverse=True)
    by_path = {it["path"]: it for it in items}
    assert by_path["x.txt"]["oid"] == oid(b"x v1\n") and by_path["x.txt"]["size"] == 5
    assert (by_path["x.txt"]["cause"], by_path["x.txt"]["from"]) == ("replaced", "A")
    assert (by_path["y.txt"]["cause"], by_path["y.txt"]["from"]) == ("deleted", "A")
    doc = sq("trash", "list", b, "--json").json
    assert doc["bytes"] == len("x v1\n") + len("y\n") + len("one")
    assert listed(b, "*.jpg") == [by_path["album/one.jpg"]]
    assert listed(b, "album") == [by_path["album/one.jpg"]]
    text = sq("trash", "list", b)
    assert "x.txt  (replaced by a sync from A)" in text.out and "3 versions in the trash" in text.err
    status = sq("status", b, "--json").json
    assert status["trash"] == {"count": 3, "bytes": doc["bytes"]}
    assert "the trash holds 3 versions" in sq("status", b).err


def test_a_visit_and_an_applied_bundle_name_who_sent_the_change(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"v.txt": "visited\n", "p.txt": "packed\n"})
    carrier = tmp_path / "carrier"
    sq("sync", a, "--carrier", carrier)
    sq("sync", b, "--carrier", carrier)
    (a / "v.txt").unlink()
    sq("sync", a, "--carrier", carrier)
    sq("sync", b, "--carrier", carrier)
    assert why(listed(b)) == [("v.txt", "deleted by a sync from carrier")]
    write(a / "p.txt", "packed, edited\n")
    bundle = tmp_path / "a.sqb"
    sq("pack", a, "-o", bundle, "--for", b)
    sq("apply", bundle, b)
    assert why(listed(b))[0] == ("p.txt", "replaced by a sync from A")


def test_resolving_a_conflict_lists_the_version_it_set_aside(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"notes.txt": "base\n"})
    write(a / "notes.txt", "A's edit\n", seconds_ago=600)
    write(b / "notes.txt", "B's edit\n", seconds_ago=60)
    (conflict,) = sq("push", a, b, "--json").json["conflicts"]
    sq("resolve", b, conflict["path"], "--keep", "copy")
    (item,) = listed(b)
    assert (item["path"], item["reason"], item["oid"]) == ("notes.txt", "conflict resolved", oid(b"B's edit\n"))


def test_ignored_files_in_a_folder_a_sync_removed_are_one_item_purged_whole(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"album/one.jpg": "one", "keep.txt": "k"})
    write(b / "album/.DS_Store", "finder clutter")
    (a / "album/one.jpg").unlink()
    (a / "album").rmdir()
    sq("push", a, b)
    assert not (b / "album").exists()
    folder = next(it for it in listed(b) if it["oid"] is None)
    assert (folder["path"], folder["size"]) == ("album", len("finder clutter"))
    assert folder["reason"] == "ignored files in a folder a sync from A removed"
    stored = b / ".squirrel" / "trash" / folder["folder"] / ".DS_Store"
    assert stored.read_bytes() == b"finder clutter"
    refused = sq("trash", "restore", b, str(folder["id"]), code=2)
    assert folder["folder"] in refused.err, "it says where the files are"
    sq("verify", b)
    sq("trash", "purge", b, "--all")
    assert trash_files(b) == set() and listed(b) == []


def test_versions_trashed_before_reasons_were_recorded_are_listed_and_restored(tmp_path: Path) -> None:
    """A trash record of the kind older `sq` wrote: keyed by the object id,
    {path, size, time}, and its content file."""
    _, b = pair(tmp_path, {"keep.txt": "k"})
    old = b"a version from long ago\n"
    (b / ".squirrel" / "trash" / oid(old)).write_bytes(old)
    env = lmdb.open(str(b / ".squirrel" / "index"), max_dbs=10)
    try:
        trash_db, meta = env.open_db(b"trash"), env.open_db(b"meta")
        with env.begin(write=True) as txn:
            doc = {"path": "photos/old.jpg", "size": len(old), "time": 1_700_000_000}
            txn.put(bytes.fromhex(oid(old)), json.dumps(doc).encode(), db=trash_db)
            txn.delete(b"trash_ids", db=meta)
    finally:
        env.close()
    (item,) = listed(b)
    assert (item["id"], item["path"], item["cause"]) == (1, "photos/old.jpg", "unknown")
    assert item["reason"] == "from before reasons were recorded"
    sq("trash", "restore", b, "1")
    assert (b / "photos/old.jpg").read_bytes() == old
    assert listed(b) == [] and trash_files(b) == set()
    sq("verify", b)


# Restoring -----------------------------------------------------------------------------
def test_a_restored_version_reaches_the_other_replica_without_a_conflict(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"album/one.jpg": "one", "album/two.jpg": "two", "x.txt": "x v1\n"})
    os.rename(a / "album", a / "elsewhere")  # a careless reorganisation...
    (a / "elsewhere/one.jpg").unlink()  # ...that lost a photo
    write(a / "x.txt", "x v2\n")
    sq("push", a, b)
    assert not (b / "album").exists()
    restored = sq("trash", "restore", b, "album", "--json").json
    assert [(r["path"], r["to"]) for r in restored["restored"]] == [("album/one.jpg", "album/one.jpg")]
    (x,) = [it for it in listed(b) if it["path"] == "x.txt"]
    sq("trash", "restore", b, str(x["id"]), "--to", "x-v1.txt")
    assert (b / "album/one.jpg").read_bytes() == b"one" and (b / "x-v1.txt").read_bytes() == b"x v1\n"
    doc = sq("reconcile", b, a, "--json").json
    assert doc["conflicts"] == [] and doc["failed"] == []
    assert tree(a) == tree(b)
    assert tree(a, folders=False) == {
        "album/one.jpg": b"one",
        "elsewhere/two.jpg": b"two",
        "x.txt": b"x v2\n",
        "x-v1.txt": b"x v1\n",
    }
    assert sq("reconcile", a, b, "--json").json["conflicts"] == []
    sq("verify", a)
    sq("verify", b)


def test_a_restore_never_overwrites_and_says_to_use_to(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"x.txt": "old\n", "dir/keep.txt": "k"})
    write(a / "x.txt", "new\n")
    sq("push", a, b)
    (item,) = listed(b)
    refused = sq("trash", "restore", b, "x.txt", code=23)
    assert len(refused.error_lines) == 1 and "--to" in refused.err
    assert (b / "x.txt").read_bytes() == b"new\n" and listed(b) == [item], "nothing moved"
    sq("trash", "restore", b, str(item["id"]), "--to", "dir/keep.txt", code=23)
    sq("trash", "restore", b, "x.txt", "--to", "../outside.txt", code=12)
    sq("trash", "restore", b, "x.txt", "--to", ".squirrel/x.txt", code=12)
    would = sq("trash", "restore", b, str(item["id"]), "--to", "dir", "--dry-run", "--json").json
    assert would["dry_run"] and [r["to"] for r in would["restored"]] == ["dir/x.txt"]
    assert not (b / "dir/x.txt").exists() and listed(b) == [item], "a dry run writes nothing"
    sq("trash", "restore", b, str(item["id"]), "--to", "dir")  # into an existing folder
    assert (b / "dir/x.txt").read_bytes() == b"old\n"
    assert os.stat(b / "dir/x.txt").st_mtime_ns == item["mtime_ns"], "with its own modification time"
    missing = sq("trash", "restore", b, "no/such.txt", code=22)
    assert "sq trash list" in missing.err
    sq("trash", "restore", b, "99", code=22)


def test_a_restore_puts_back_only_content_that_matches_its_id(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"x.txt": "the old version\n", "y.txt": "y"})
    (a / "x.txt").unlink()
    sq("push", a, b)
    stored = b / ".squirrel" / "trash" / oid(b"the old version\n")
    stored.write_bytes(b"the old versioX\n")  # damaged in the trash, same size
    refused = sq("trash", "restore", b, "x.txt", code=17)
    assert "damaged" in refused.err
    assert not (b / "x.txt").exists() and len(listed(b)) == 1
    assert sq("verify", b, code=1).out.count("trash object") == 1


def test_restoring_a_folder_brings_the_newest_version_of_each_path_below_it(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"album/one.jpg": "one v1", "album/sub/two.jpg": "two", "other.txt": "o"})
    write(a / "album/one.jpg", "one v2")
    sq("push", a, b)
    (a / "album/one.jpg").unlink()
    (a / "album/sub/two.jpg").unlink()
    sq("push", a, b)
    doc = sq("trash", "restore", b, "album", "--to", "restored", "--json").json
    assert sorted(r["to"] for r in doc["restored"]) == ["restored/one.jpg", "restored/sub/two.jpg"]
    assert tree(b / "restored", folders=False) == {"one.jpg": b"one v2", "sub/two.jpg": b"two"}
    assert why(listed(b)) == [("album/one.jpg", "replaced by a sync from A")], "the older version stays"


# Purging ----------------------------------------------------------------------------------
def trashed_history(tmp: Path) -> tuple[Path, Path]:
    """B's trash: four versions of 100 bytes each, trashed 40, 20, 10 and 0 days ago."""
    a, b = pair(tmp, {f"f{n}.bin": bytes([n]) * 100 for n in range(4)} | {"keep.txt": "k"})
    for n, days in enumerate((40, 20, 10, 0)):
        (a / f"f{n}.bin").unlink()
        sq("push", a, b)
        (item,) = [it for it in listed(b) if it["path"] == f"f{n}.bin"]
        age_trash(b, days, [item["id"]])
    return a, b


def test_every_purge_lists_what_it_removes_oldest_first(tmp_path: Path) -> None:
    _, b = trashed_history(tmp_path)
    modes = {
        ("--all",): ["f0.bin", "f1.bin", "f2.bin", "f3.bin"],
        ("--older-than", "5d"): ["f0.bin", "f1.bin", "f2.bin"],
        ("--keep-size", "0"): ["f0.bin", "f1.bin", "f2.bin", "f3.bin"],
        ("--older-than", "30d", "--keep-size", "100"): ["f0.bin", "f1.bin", "f2.bin"],
    }
    for mode, oldest_first in modes.items():
        dry = sq("trash", "purge", b, *mode, "--dry-run", "--json").json
        assert [it["path"] for it in dry["removed"]] == oldest_first, mode
    doc = sq("trash", "purge", b, "--all", "--json").json
    assert [it["path"] for it in doc["removed"]] == ["f0.bin", "f1.bin", "f2.bin", "f3.bin"]
    assert listed(b) == [] and trash_files(b) == set()


def test_a_purge_by_age_or_by_size_keeps_the_newest(tmp_path: Path) -> None:
    _, b = trashed_history(tmp_path)
    dry = sq("trash", "purge", b, "--older-than", "15d", "--dry-run", "--json").json
    assert [it["path"] for it in dry["removed"]] == ["f0.bin", "f1.bin"] and dry["freed"] == 200
    assert len(listed(b)) == 4 and len(trash_files(b)) == 4, "a dry run removes nothing"
    doc = sq("trash", "purge", b, "--older-than", "15d", "--json").json
    assert (doc["count"], doc["freed"], doc["trash"]) == (2, 200, {"count": 2, "bytes": 200})
    assert [it["path"] for it in listed(b)] == ["f3.bin", "f2.bin"]
    assert trash_files(b) == {oid(bytes([n]) * 100) for n in (2, 3)}
    doc = sq("trash", "purge", b, "--keep-size", "150", "--json").json
    assert [it["path"] for it in doc["removed"]] == ["f2.bin"]
    assert [it["path"] for it in listed(b)] == ["f3.bin"]
    sq("verify", b)
    usage = sq("trash", "purge", b, code=2)
    assert "--older-than" in usage.err
    sq("trash", "purge", b, "--older-than", "soon", code=2)


def test_a_purge_tidies_records_and_files_that_verify_reports(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"x.txt": "x", "y.txt": "y", "keep.txt": "k"})
    (a / "x.txt").unlink()
    (a / "y.txt").unlink()
    sq("push", a, b)
    (b / ".squirrel" / "trash" / oid(b"x")).unlink()  # emptied by hand
    stray = b"left here by hand\n"
    (b / ".squirrel" / "trash" / oid(stray)).write_bytes(stray)
    problems = sq("verify", b, "--json", code=1).json["problems"]
    assert len(problems) == 2 and any("x.txt" in p and "missing" in p for p in problems)
    assert any(oid(stray) in p and "no record" in p for p in problems)
    doc = sq("trash", "purge", b, "--older-than", "30d", "--json").json
    assert [it["path"] for it in doc["missing"]] == ["x.txt"]
    assert [it["oid"] for it in doc["adopted"]] == [oid(stray)] and doc["removed"] == []
    assert {it["reason"] for it in listed(b)} == {"deleted by a sync from A", "found in the trash without a record"}
    sq("verify", b)
    (found,) = [it for it in listed(b) if it["cause"] == "unrecorded"]
    assert found["path"] == "" and "(path unknown)" in sq("trash", "list", b).out
    unknown = sq("trash", "restore", b, str(found["id"]), code=2)
    assert "--to" in unknown.err
    sq("trash", "restore", b, str(found["id"]), "--to", "found.txt")
    assert (b / "found.txt").read_bytes() == stray


# The retention policy ----------------------------------------------------------------------
def test_the_policy_runs_at_the_end_of_a_sync_and_spares_versions_younger_than_a_day(tmp_path: Path) -> None:
    a, b = trashed_history(tmp_path)
    shown = sq("trash", "policy", b, "--json").json
    assert (shown["keep_days"], shown["max_size"], shown["removed"]) == (None, None, [])
    set_ = sq("trash", "policy", b, "--keep-days", "30", "--dry-run", "--json").json
    assert [it["path"] for it in set_["removed"]] == ["f0.bin"] and len(listed(b)) == 4
    assert sq("trash", "policy", b, "--json").json["keep_days"] is None, "a dry run stores nothing"
    done = sq("trash", "policy", b, "--keep-days", "30", "--json").json
    assert (done["keep_days"], [it["path"] for it in done["removed"]]) == (30, ["f0.bin"])
    assert "keep-days 30" in sq("trash", "policy", b).out
    # Ten days later the 20-day-old version is past its time: the next sync takes it.
    age_trash(b, 35, [it["id"] for it in listed(b) if it["path"] == "f1.bin"])
    write(a / "new.txt", "new\n")
    sq("push", a, b)
    assert [it["path"] for it in listed(b)] == ["f3.bin", "f2.bin"]
    # A size limit: oldest first, never the version trashed today.
    sq("trash", "policy", b, "--max-size", "0")
    assert [it["path"] for it in listed(b)] == ["f3.bin"]
    assert sq("trash", "policy", b, "--json").json == {
        "keep_days": 30,
        "max_size": 0,
        "trash": {"count": 1, "bytes": 100},
        "removed": [],
        "freed": 0,
        "dry_run": False,
    }
    sq("trash", "policy", b, "--keep-everything", "--keep-days", "3", code=2)
    sq("trash", "policy", b, "--keep-everything")
    assert "keep everything" in sq("trash", "policy", b).out
    sq("verify", b)
