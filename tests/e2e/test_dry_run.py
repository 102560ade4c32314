"""A dry run tells the truth: `--dry-run` reports what the real run then
does (the same counts, the same lists, the same paths left for later), and
changes nothing on any replica or carrier, `.squirrel/` included, byte for
byte (but for the lock files: the writer's, and LMDB's table of readers).

The changes are left unscanned before each dry run: a dry run scans as the
real run does, and records none of what it finds (docs/commands.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.helpers import HOUR, make_tree, run_sq, tree, write

SYNC_FIELDS = ("created", "updated", "deleted", "skipped", "moved", "bytes_copied", "conflicts", "failed", "deferred")


def sq(*args: str | Path) -> Any:
    return run_sq(*args, "--json").check().json


LOCKS = ("lock", "lock.mdb")  # the writer's lock, and LMDB's table of readers


def on_disk(*roots: Path) -> dict[str, dict[str, bytes]]:
    """Every file and folder under each root, `.squirrel/` and the carrier's
    storage included, but for the lock files any opening touches."""
    return {str(r): {k: v for k, v in tree(r, skip=()).items() if k.rsplit("/", 1)[-1] not in LOCKS} for r in roots}


def dry_then_real(args: list[str | Path], *roots: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run `sq ARGS --dry-run`, check it changed nothing under `roots`, then
    run `sq ARGS`: both JSON documents, without their `dry_run`."""
    before = on_disk(*roots)
    dry = sq(*args, "--dry-run")
    assert on_disk(*roots) == before, "a dry run changes nothing"
    real = sq(*args)
    assert dry.pop("dry_run") is True and real.pop("dry_run") is False
    return dry, real


def vault_of(tmp_path: Path, *names: str) -> list[Path]:
    roots = [tmp_path / n for n in names]
    for r in roots:
        r.mkdir(exist_ok=True)
    sq("init", roots[0], "--name", names[0])
    for r in roots[1:]:
        sq("init", r, "--name", r.name, "--join", roots[0])
    return roots


def test_a_dry_push_and_reconcile_report_what_the_real_ones_do(tmp_path: Path) -> None:
    a, b = vault_of(tmp_path, "a", "b")
    make_tree(a, {"photos/x.jpg": "x", "photos/y.jpg": "y", "notes.txt": "v1"})
    sq("reconcile", a, b)
    # A move, an edit, a new file, a deletion, and a conflict.
    (a / "photos/x.jpg").rename(a / "x-moved.jpg")
    write(a / "notes.txt", "v2 from a", seconds_ago=HOUR / 4)
    write(b / "notes.txt", "v2 from b", seconds_ago=HOUR / 8)
    make_tree(a, {"new/z.txt": "z"})
    (b / "photos/y.jpg").unlink()

    dry, real = dry_then_real(["push", a, b], a, b)
    assert dry == real
    assert (real["moved"], len(real["conflicts"])) == (1, 1) and real["created"] >= 3

    write(b / "other.txt", "from b")
    make_tree(a, {"more/w.txt": "w"})
    dry, real = dry_then_real(["reconcile", a, b], a, b)
    # B -> A is planned against B before A -> B: what A -> B brings is not
    # yet known to B, so not counted as skipped (docs/commands.md).
    assert dry.pop("skipped") <= real.pop("skipped")
    assert dry == real and real["created"] >= 3


def test_a_dry_apply_defers_what_a_bundle_packed_with_max_size_lacks(tmp_path: Path) -> None:
    a, b = vault_of(tmp_path, "a", "b")
    make_tree(a, {"x.txt": "hi\n", "y.txt": "big\n", "dir/z.txt": "zz"})
    make_tree(b, {"y.txt": "b's own\n"})  # a create/create conflict whose content waits too
    bundle = tmp_path / "s.sqb"
    sq("pack", a, "-o", bundle, "--max-size", "3")

    dry, real = dry_then_real(["apply", bundle, b], b)
    assert dry == real
    assert real["conflicts"] == [] and {d["path"] for d in real["deferred"]} >= {"y.txt"}
    assert tree(b)["y.txt"] == b"b's own\n"

    # The rest, everything present, in a bundle of its own.
    sq("pack", a, "-o", tmp_path / "rest.sqb", "--for", b)
    dry, real = dry_then_real(["apply", tmp_path / "rest.sqb", b], b)
    assert dry == real and real["deferred"] == [] and len(real["conflicts"]) == 1


def test_a_dry_visit_defers_what_the_carrier_does_not_hold(tmp_path: Path, monkeypatch: Any) -> None:
    carrier = tmp_path / "carrier"
    monkeypatch.setenv("SQ_CARRIER", str(carrier))
    a, c = tmp_path / "a", tmp_path / "c"
    make_tree(a, {"x.txt": "hi\n", "big.bin": b"b" * 4096})
    c.mkdir()
    sq("init", a, "--name", "a")
    sq("sync", a)
    sq("init", c, "--name", "c", "--join", carrier)
    sq("sync", c)  # the carrier knows c now, and carries for it
    sq("sync", a, "--max-size", "100")  # x fits, big.bin is left behind
    make_tree(c, {"c-only.txt": "c"})  # not scanned yet

    dry, real = dry_then_real(["sync", c], c, carrier)
    assert {k: dry[k] for k in SYNC_FIELDS} == {k: real[k] for k in SYNC_FIELDS}
    assert dry["known_drives"] == real["known_drives"]
    assert real["created"] == 1 and [d["path"] for d in real["deferred"]] == ["big.bin"]
    assert tree(c) == {"x.txt": b"hi\n", "c-only.txt": b"c"}


def test_a_dry_scan_reports_what_the_scan_records_and_records_nothing(tmp_path: Path) -> None:
    (a,) = vault_of(tmp_path, "a")
    make_tree(a, {"photos/x.jpg": "x", "notes.txt": "v1", "old.txt": "old"})
    sq("scan", a)
    (a / "photos/x.jpg").rename(a / "x.jpg")
    write(a / "notes.txt", "v2")
    (a / "old.txt").unlink()
    make_tree(a, {"new/y.txt": "y"})

    dry, real = dry_then_real(["scan", a], a)
    assert dry == real
    assert [m["to"] for m in real["moved"]] == ["x.jpg"] and real["modified"] == [{"path": "notes.txt"}]
    assert sq("scan", a, "--dry-run")["added"] == [], "the real scan recorded it all"
    text = run_sq("scan", a, "--dry-run").check()
    assert "dry run: nothing recorded" in text.err


def test_a_dry_init_reports_the_replica_init_makes_and_creates_nothing(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, {"photos/x.jpg": "x", "notes.txt": "v1", "empty/": ""})
    make_tree(b, {"photos/x.jpg": "x", "mine.txt": "b only"})
    text = run_sq("init", a, "--dry-run").check()
    assert "new vault, 2 files (3 B) indexed (dry run: nothing written)" in text.err

    dry, real = dry_then_real(["init", a, "--name", "a"], tmp_path)
    assert dry.pop("vault") is None and dry.pop("replica") is None, "only the real init makes ids"
    assert dry == {k: real[k] for k in dry} == {"name": "a", "files": 2, "dirs": 3, "bytes": 3}

    dry, real = dry_then_real(["init", b, "--join", a], tmp_path)
    assert dry.pop("replica") is None
    assert dry == {k: real[k] for k in dry} and set(dry) == set(real) - {"replica"}
    assert dry["vault"] == real["vault"] and (dry["files"], dry["bytes"]) == (2, 7)


def test_a_dry_pack_reports_the_bundle_pack_writes_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "drives").mkdir()
    a, b = vault_of(tmp_path / "drives", "a", "b")
    make_tree(a, {"photos/x.jpg": "x" * 3000, "notes.txt": "v1", "big.bin": os.urandom(4000)})
    sq("push", a, b)
    # Not scanned yet: pack scans first, and a dry pack records none of it.
    write(a / "notes.txt", "v2 " * 500)
    make_tree(a, {"new/y.jpg": os.urandom(2000), "new/z.bin": os.urandom(3000)})
    out = tmp_path / "out"
    out.mkdir()
    run_sq("knowledge", b, "-o", out / "b.know").check()

    for how in (["--for", b], ["--base", out / "b.know"], []):
        args: list[str | Path] = ["pack", a, "-o", out / "b.sqb", *how, "--max-size", "2500"]
        dry, real = dry_then_real(args, tmp_path)
        assert dry == real
        assert real["size"] == (out / "b.sqb").stat().st_size
        assert real["left_behind"] and real["objects"], "some content goes, some waits"
        (out / "b.sqb").unlink()
    text = run_sq("pack", a, "-o", out / "b.sqb", "--dry-run").check()
    assert "(dry run: nothing written)" in text.err and not (out / "b.sqb").exists()


def test_a_dry_resolve_reports_what_resolve_keeps_and_trashes_and_changes_nothing(tmp_path: Path) -> None:
    a, b, c = vault_of(tmp_path, "a", "b", "c")
    make_tree(a, {"p.txt": "v1", "q.txt": "v1", "r.txt": "v1", "gone.txt": "v1"})
    sq("push", a, b)
    sq("push", a, c)
    for name, secs in (("p.txt", 300), ("q.txt", 300), ("r.txt", 300)):
        write(a / name, f"{name} from a", seconds_ago=secs)
        write(b / name, f"{name} from b", seconds_ago=secs / 2)
    write(c / "r.txt", "r.txt from c", seconds_ago=60)
    (a / "gone.txt").unlink()
    write(b / "gone.txt", "b's edit", seconds_ago=60)
    sq("push", a, b)
    sq("push", a, c)
    sq("push", b, c)
    by_path = {(x["path"], x["copy"]) for x in sq("conflicts", b)}
    assert ("gone.txt", None) in by_path, "a conflict without a copy"
    assert len([x for x in sq("conflicts", c) if x["path"] == "r.txt"]) == 2
    # Changes not scanned yet: resolve scans first, and a dry one records none of it.
    write(b / "unscanned.txt", "new")

    for file, keep in (("p.txt", "path"), ("q.txt", "copy"), ("gone.txt", "path")):
        dry, real = dry_then_real(["resolve", b, file, "--keep", keep], b)
        assert dry == real
    assert [x["path"] for x in sq("conflicts", b)] == ["r.txt"], "the real runs settled the others"

    before = on_disk(b, c)
    # Nothing to resolve (14), and two conflicts at one path (2): the real run's errors.
    for args, code in (([b, "p.txt"], 14), ([c, "r.txt"], 2)):
        for how in ([], ["--dry-run"]):
            ran = run_sq("resolve", *args, "--keep", "path", *how)
            assert ran.code == code and ran.error_lines == run_sq("resolve", *args, "--keep", "path").error_lines
    assert on_disk(b, c) == before

    text = run_sq("resolve", c, c / "unknown", "--keep", "copy", "--dry-run")
    assert text.code == 14
    copies = [x["copy"] for x in sq("conflicts", c) if x["path"] == "r.txt"]
    text = run_sq("resolve", c, copies[0], "--keep", "copy", "--dry-run").check()
    assert "would resolve r.txt: keep the copy version, r.txt to the trash (dry run: nothing written)" in text.err
    assert on_disk(b, c) == before


def test_a_dry_reidentify_reports_the_names_the_replica_would_have_and_changes_nothing(tmp_path: Path) -> None:
    carrier = tmp_path / "carrier"
    (tmp_path / "drives").mkdir()
    a, b = vault_of(tmp_path / "drives", "a", "b")
    make_tree(a, {"x.txt": "x"})
    sq("sync", a, "--carrier", carrier)  # a remembers the carrier's visit
    assert any(n.startswith("carrier-") for n in os.listdir(a / ".squirrel")), "which a real run forgets"

    dry, real = dry_then_real(["reidentify", a, "--name", "a2"], tmp_path)
    assert dry.pop("replica") is None and real.pop("replica") != dry["old_replica"], "only the real run makes an id"
    assert dry == real and (real["name"], real["old_name"]) == ("a2", "a-old")
    text = run_sq("reidentify", b, "--dry-run").check()
    assert "would get a new id, named b; its past as b-old (dry run: nothing written)" in text.err


def test_a_dry_carrier_config_reports_the_settings_and_writes_nothing(tmp_path: Path) -> None:
    carrier = tmp_path / "carrier"
    dry, real = dry_then_real(["carrier", "config", "--carrier", carrier, "--max-size", "1M"], tmp_path)
    assert dry == real and (real["max_size"], real["was_max_size"]) == (1 << 20, None), "made by the real run"

    args: list[str | Path] = ["carrier", "config", "--carrier", carrier, "--max-size", "2M", "--scrub", "5M"]
    dry, real = dry_then_real(args, tmp_path)
    assert dry == real
    assert (real["max_size"], real["was_max_size"], real["scrub"], real["was_scrub"]) == (2 << 20, 1 << 20, 5 << 20, 0)
    text = run_sq(*args[:4], "--max-size", "3M", "--dry-run").check()
    assert "max-size 3.0 MiB (was 2.0 MiB) (dry run: nothing written)" in text.err
    assert sq("carrier", "config", "--carrier", carrier)["max_size"] == 2 << 20


def test_a_dry_run_after_a_killed_push_reports_from_the_replica_put_back(tmp_path: Path) -> None:
    """A push killed halfway leaves b with an intent log. A dry run, like
    every command that opens b to write, first puts back what the killed
    push had half done: its report is what the real push then does."""
    a, b = vault_of(tmp_path, "a", "b")
    make_tree(a, {f"photos/{i:02d}.jpg": f"picture {i}" for i in range(12)})
    sq("scan", a)
    before = tree(b)
    assert run_sq("push", a, b, fault="rename:4").killed
    assert run_sq("status", b, "--json").check().json["interrupted"] is True

    dry = sq("push", a, b, "--dry-run")

    assert run_sq("status", b, "--json").check().json["interrupted"] is False
    assert tree(b) == before, "the killed push's half is undone, and the dry run adds nothing"
    real = sq("push", a, b)
    assert dry.pop("dry_run") is True and real.pop("dry_run") is False
    assert dry == real and real["created"] == 13  # the twelve files and their folder
    assert tree(b) == tree(a)
