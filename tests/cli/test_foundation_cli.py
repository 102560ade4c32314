"""`sq init`, `scan`, `status`, `hash-object`, `ls-index` and `vt compare` through click.

Every command runs through the `sq` entry point (`main()`) in this process:
output and exit codes as a user gets them.
"""

from __future__ import annotations

import base64
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from squirrel import __version__
from squirrel.plumbing import ids
from squirrel.plumbing.records import ConflictRecord
from squirrel.plumbing.replica import Replica, read_identity
from tests.helpers import Ran, make_tree, sq_executable, sq_in_process, write

NON_UTF8 = b"caf\xe9.jpg"


def one_error_line(ran: Ran, code: int, *needles: str) -> None:
    assert ran.code == code, ran.err
    lines = ran.err.strip().splitlines()
    assert len(lines) == 1, ran.err
    assert lines[0].startswith("sq: error: ")
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture
def drive(tmp_path: Path) -> Path:
    root = make_tree(tmp_path / "drive", {"a/one.jpg": b"one", "a/two.jpg": b"two", "top.txt": b"top"})
    assert sq_in_process("init", root, "--name", "drive").code == 0
    return root


# init ----------------------------------------------------------------------------
def test_init_json_describes_the_new_replica(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "Media", {"x/y.jpg": b"y", "z.txt": b"z"})
    result = sq_in_process("init", root, "--json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    ident = read_identity(str(root))
    assert doc == {
        "vault": ident.vault,
        "replica": ident.replica,
        "name": "Media",
        "files": 2,
        "dirs": 2,
        "bytes": 2,
        "dry_run": False,
    }
    assert result.err.count("\n") == 1
    assert "initialized replica Media" in result.err and "new vault" in result.err


def test_init_join_joins_the_source_vault(drive: Path, tmp_path: Path) -> None:
    other = make_tree(tmp_path / "other", {"a/one.jpg": b"one"})
    result = sq_in_process("init", other, "--join", drive, "--name", "laptop", "--json")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    source = read_identity(str(drive))
    assert doc["vault"] == source.vault
    assert doc["replica"] != source.replica
    assert doc["name"] == "laptop"
    assert "joined vault" in result.err


def test_init_errors(drive: Path, tmp_path: Path) -> None:
    one_error_line(sq_in_process("init", drive), 4, "already a replica")
    one_error_line(sq_in_process("init", tmp_path / "missing"), 5)
    (tmp_path / "file").write_bytes(b"")
    one_error_line(sq_in_process("init", tmp_path / "file"), 5)
    (tmp_path / "plain").mkdir()
    (tmp_path / "target").mkdir()
    one_error_line(sq_in_process("init", tmp_path / "target", "--join", tmp_path / "plain"), 3, "not a replica")
    assert not (tmp_path / "target" / ".squirrel").exists()


# scan ----------------------------------------------------------------------------
def test_scan_json_lists_what_was_recorded(drive: Path) -> None:
    write(drive / "top.txt", b"TOP")
    os.rename(drive / "a/one.jpg", drive / "moved.jpg")
    (drive / "a/two.jpg").unlink()
    with open(os.path.join(os.fsencode(drive), NON_UTF8), "wb") as f:
        f.write(b"latin-1 name")
    (drive / "link").symlink_to(drive / "top.txt")
    ran = sq_in_process("scan", drive, "--json")
    assert ran.code == 0, ran.err
    doc = ran.json
    assert {"added", "modified", "deleted", "moved", "files", "hashed", "skipped"} <= doc.keys()
    assert doc["modified"] == [{"path": "top.txt"}]
    assert sorted(d["path"] for d in doc["deleted"]) == ["a/one.jpg", "a/two.jpg"]
    assert doc["moved"] == [{"from": "a/one.jpg", "to": "moved.jpg"}]
    latin = [d for d in doc["added"] if "path_b64" in d]
    assert [base64.b64decode(d["path_b64"]) for d in latin] == [NON_UTF8]
    assert {"path": "moved.jpg"} in doc["added"]
    assert doc["files"] == 3
    assert doc["hashed"] == 3
    assert doc["skipped"] == [{"path": "link", "reason": "symlink: not synchronized"}]
    assert "skipped link" in ran.err
    assert "scanned 3 files" in ran.err


def test_a_second_scan_records_and_hashes_nothing(drive: Path) -> None:
    doc = sq_in_process("scan", drive, "--json").json
    assert doc["added"] == doc["modified"] == doc["deleted"] == doc["moved"] == []
    assert doc["hashed"] == 0
    assert doc["files"] == 3


def test_scan_text_output(drive: Path) -> None:
    make_tree(drive, {"new.txt": b"n"})
    (drive / "top.txt").unlink()
    result = sq_in_process("scan", drive)
    assert result.code == 0
    assert result.out.splitlines() == ["added     new.txt", "deleted   top.txt"]


def test_scan_of_a_non_replica(tmp_path: Path) -> None:
    one_error_line(sq_in_process("scan", tmp_path), 3, "not a replica", str(tmp_path))


# status ----------------------------------------------------------------------------
def test_status_json_and_exit_code(drive: Path) -> None:
    clean = sq_in_process("status", drive, "--json", "--exit-code")
    assert clean.code == 0
    assert clean.json == {
        "changes": [],
        "conflicts": [],
        "interrupted": False,
        "trash": {"count": 0, "bytes": 0},
        "waiting": [],
        "last_full_scrub": None,
    }
    write(drive / "top.txt", b"TOP")
    os.rename(drive / "a/one.jpg", drive / "moved.jpg")
    (drive / "new").mkdir()
    ran = sq_in_process("status", drive, "--json", "--exit-code")
    assert ran.code == 1
    changes = sorted(ran.json["changes"], key=lambda c: c["path"])
    assert changes == [
        {"path": "moved.jpg", "change": "moved", "from": "a/one.jpg", "kind": "file"},
        {"path": "new", "change": "added", "kind": "dir"},
        {"path": "top.txt", "change": "modified", "kind": "file"},
    ]
    assert sq_in_process("status", drive).code == 0, "without --exit-code, pending changes are not an error"


def test_status_summary_counts_a_move_once(drive: Path) -> None:
    os.rename(drive / "a/one.jpg", drive / "moved.jpg")
    ran = sq_in_process("status", drive)
    assert ran.stdout.decode().splitlines() == ["moved     a/one.jpg -> moved.jpg"]
    assert "1 pending change," in ran.err


def test_status_exit_code_counts_open_conflicts(drive: Path) -> None:
    with Replica.open(str(drive)) as rep:
        rep.index.put_conflict(ConflictRecord(b"top.txt", "update/update", b"top.txt", None, tracked=False))
        rep.index.commit()
    ran = sq_in_process("status", drive, "--json", "--exit-code")
    assert ran.code == 1
    assert ran.json["changes"] == []
    assert [c["path"] for c in ran.json["conflicts"]] == ["top.txt"]


def test_status_text_lists_changes(drive: Path) -> None:
    (drive / "top.txt").unlink()
    result = sq_in_process("status", drive)
    assert result.code == 0
    assert result.out.splitlines() == ["deleted   top.txt"]


def test_status_of_a_non_replica(tmp_path: Path) -> None:
    one_error_line(sq_in_process("status", tmp_path, "--exit-code"), 3, "not a replica")


def test_a_damaged_replica_is_a_corrupt_index(drive: Path) -> None:
    (drive / ".squirrel" / "replica.json").write_bytes(b"{damaged")
    one_error_line(sq_in_process("status", drive), 9, "damaged replica identity")


def test_a_missing_index_is_a_corrupt_index(drive: Path) -> None:
    (drive / ".squirrel" / "index" / "data.mdb").unlink()
    one_error_line(sq_in_process("scan", drive), 9, "index missing")
    assert not (drive / ".squirrel" / "index" / "data.mdb").exists(), "a missing index is not silently recreated"


# hash-object --------------------------------------------------------------------------
def test_hash_object(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"alpha")
    b.write_bytes(b"")
    one = sq_in_process("hash-object", a)
    assert one.code == 0
    assert one.out == ids.hash_bytes(b"alpha").hex() + "\n"
    two = sq_in_process("hash-object", a, b)
    assert two.out.splitlines() == [f"{ids.hash_bytes(b'alpha').hex()}  {a}", f"{ids.EMPTY_OID.hex()}  {b}"]
    piped = sq_in_process("hash-object", "--stdin-paths", input=f"{a}\n\n{b}\n")
    assert piped.out == two.out


def test_hash_object_errors(tmp_path: Path) -> None:
    assert sq_in_process("hash-object").code == 2
    one_error_line(sq_in_process("hash-object", tmp_path / "missing"), 16, "cannot read")
    one_error_line(sq_in_process("hash-object", tmp_path), 16, "not a regular file")


# ls-index ----------------------------------------------------------------------------
def test_ls_index_text(drive: Path) -> None:
    result = sq_in_process("ls-index", drive)
    assert result.code == 0
    lines = result.out.splitlines()
    assert [line.split("\t")[1] for line in lines] == ["a", "a/one.jpg", "a/two.jpg", "top.txt"]
    head, path = lines[3].split("\t")
    kind, oid, size, mtime_ns, m, s = head.split(" ")
    assert (kind, oid, size) == ("file", ids.hash_bytes(b"top").hex(), "3")
    assert int(mtime_ns) == (drive / "top.txt").stat().st_mtime_ns
    assert m == "drive:1" and s == "drive:1"
    assert lines[0].split(" ")[:2] == ["dir", "-"]


def test_ls_index_z_writes_names_verbatim(drive: Path) -> None:
    with open(os.path.join(os.fsencode(drive), NON_UTF8), "wb") as f:
        f.write(b"x")
    assert sq_in_process("scan", drive).code == 0
    ran = sq_in_process("ls-index", drive, "-z")
    assert ran.code == 0
    records = ran.stdout.split(b"\0")
    assert records[-1] == b""
    names = [r.split(b"\t", 1)[1] for r in records[:-1]]
    assert names == [b"a", b"a/one.jpg", b"a/two.jpg", NON_UTF8, b"top.txt"]


def test_ls_index_json(drive: Path) -> None:
    with open(os.path.join(os.fsencode(drive), NON_UTF8), "wb") as f:
        f.write(b"x")
    assert sq_in_process("scan", drive).code == 0
    ran = sq_in_process("ls-index", drive, "--json")
    assert ran.code == 0
    records = {r.get("path_b64", r["path"]): r for r in ran.json}
    top = records["top.txt"]
    assert top["kind"] == "file"
    assert top["oid"] == ids.hash_bytes(b"top").hex()
    assert top["size"] == 3
    assert top["mtime_ns"] == (drive / "top.txt").stat().st_mtime_ns
    assert top["m"] == "drive:1" and top["s"] == "drive:2" and top["c"] == "drive:1"
    assert records["a"]["kind"] == "dir" and records["a"]["oid"] is None
    latin = records[base64.b64encode(NON_UTF8).decode()]
    assert latin["oid"] == ids.hash_bytes(b"x").hex()
    assert latin["m"] == "drive:2"


def test_ls_index_of_a_non_replica(tmp_path: Path) -> None:
    one_error_line(sq_in_process("ls-index", tmp_path), 3, "not a replica")


# vt compare ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ("laptop:1,drive:2", "drive:2,laptop:1", "equal"),
        ("", "laptop:1", "before"),
        ("laptop:1", "laptop:2,drive:1", "before"),
        ("laptop:3", "laptop:2", "after"),
        ("laptop:1", "drive:1", "concurrent"),
    ],
)
def test_vt_compare(a: str, b: str, want: str) -> None:
    result = sq_in_process("vt", "compare", a, b)
    assert result.code == 0
    assert result.out == want + "\n"


@pytest.mark.parametrize("bad", ["laptop", "laptop:x", "laptop:1,laptop:2", "laptop:\u00b2"])
def test_vt_compare_refuses_malformed_vector_times(bad: str) -> None:
    one_error_line(sq_in_process("vt", "compare", bad, "laptop:1"), 15, "laptop")


# The group ----------------------------------------------------------------------------
def test_usage_errors_exit_2(drive: Path) -> None:
    assert sq_in_process("no-such-command").code == 2
    assert sq_in_process("scan").code == 2
    assert sq_in_process("status", drive, "--no-such-option").code == 2


def test_help_and_version() -> None:
    ran = sq_in_process("--help")
    assert ran.code == 0
    for command in ("init", "scan", "status", "hash-object", "ls-index", "vt"):
        assert command.encode() in ran.stdout
    ran = sq_in_process("--version")
    assert ran.code == 0
    assert __version__.encode() in ran.stdout


def test_the_sq_program_and_python_m_run_the_same_command_line(drive: Path) -> None:
    """The console script (`run`) and `python -m squirrel.cli` are the
    command line `main` is: same output, same exit codes."""
    write(drive / "a" / "new.jpg", b"new")
    expected = sq_in_process("status", drive, "--json")
    assert expected.code == 0 and json.loads(expected.stdout)["changes"]
    refused = sq_in_process("status", drive / "no-such")
    assert refused.code not in (0, 1)
    for argv in ([sq_executable()], [sys.executable, "-m", "squirrel.cli"]):
        shown = subprocess.run([*argv, "status", str(drive), "--json"], capture_output=True, check=False)
        assert (shown.returncode, json.loads(shown.stdout)) == (0, json.loads(expected.stdout)), shown.stderr
        missing = subprocess.run([*argv, "status", str(drive / "no-such")], capture_output=True, check=False)
        assert (missing.returncode, missing.stderr) == (refused.code, refused.stderr)


def test_only_the_program_freezes_the_collector_main_in_a_process_does_not(drive: Path) -> None:
    """`run` tells the collector that what the imports made lives on (the
    interpreter's last collection then skips it); `main`, run in-process as
    here, must not freeze a caller's objects."""
    before = gc.get_freeze_count()
    assert sq_in_process("status", drive).code == 0
    assert gc.get_freeze_count() == before
    probe = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print(gc.get_freeze_count(), file=sys.stderr))\n"
        "from squirrel.cli import run\n"
        "sys.argv = ['sq', '--version']\n"
        "run()\n"
    )
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, check=False)
    assert ran.returncode == 0 and __version__.encode() in ran.stdout
    assert int(ran.stderr.split()[-1]) > 1000  # the imports' objects, frozen before the last collection
