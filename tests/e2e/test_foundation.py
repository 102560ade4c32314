"""The real `sq` entry point, as users and their scripts run it."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import lmdb

from squirrel.plumbing import ids, index
from squirrel.plumbing.replica import Replica
from tests.helpers import make_tree, run_sq, write

NON_UTF8 = b"\xff\xfephoto.jpg"


def stderr_line(proc_stderr: bytes) -> str:
    lines = proc_stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def replica_json(root: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((root / ".squirrel" / "replica.json").read_text())
    return data


def test_a_drive_from_init_to_clean(tmp_path: Path) -> None:
    drive = make_tree(tmp_path / "drive", {"photos/a.jpg": b"a", "photos/b.jpg": b"b", "notes.txt": b"n"})
    init = run_sq("init", drive, "--json")
    assert init.code == 0, init.stderr
    doc = json.loads(init.stdout)
    assert doc["files"] == 3
    assert doc["replica"] == replica_json(drive)["replica"]
    assert run_sq("status", drive, "--exit-code").code == 0

    write(drive / "notes.txt", b"N")
    (drive / "photos/b.jpg").unlink()
    os.rename(drive / "photos/a.jpg", drive / "a.jpg")
    make_tree(drive, {"new/c.jpg": b"c"})
    status = run_sq("status", drive, "--exit-code")
    assert status.code == 1
    assert b"moved     photos/a.jpg -> a.jpg" in status.stdout

    scan = run_sq("scan", drive, "--json")
    assert scan.code == 0, scan.stderr
    doc = json.loads(scan.stdout)
    assert doc["modified"] == [{"path": "notes.txt"}]
    assert sorted(d["path"] for d in doc["deleted"]) == ["photos/a.jpg", "photos/b.jpg"]
    assert sorted(d["path"] for d in doc["added"]) == ["a.jpg", "new", "new/c.jpg"]
    assert doc["moved"] == [{"from": "photos/a.jpg", "to": "a.jpg"}]
    assert run_sq("status", drive, "--exit-code").code == 0

    again = json.loads(run_sq("scan", drive, "--json").stdout)
    assert again["added"] == again["modified"] == again["deleted"] == []
    assert again["hashed"] == 0


def test_ls_index_for_scripts(tmp_path: Path) -> None:
    drive = make_tree(tmp_path / "drive", {"dir/x.txt": b"x"})
    with open(os.path.join(os.fsencode(drive), NON_UTF8), "wb") as f:
        f.write(b"raw name")
    assert run_sq("init", drive, "--name", "d1").code == 0

    z = run_sq("ls-index", drive, "-z")
    assert z.code == 0
    records = z.stdout.split(b"\0")
    assert records.pop() == b""
    assert sorted(r.split(b"\t", 1)[1] for r in records) == sorted([b"dir", b"dir/x.txt", NON_UTF8])

    js = run_sq("ls-index", drive, "--json")
    assert js.code == 0
    docs = json.loads(js.stdout)
    raw = [d for d in docs if "path_b64" in d]
    assert len(raw) == 1
    assert base64.b64decode(raw[0]["path_b64"]) == NON_UTF8
    assert raw[0]["oid"] == ids.hash_bytes(b"raw name").hex()
    assert raw[0]["m"] == "d1:1"
    assert {d["path"] for d in docs if "path_b64" not in d} == {"dir", "dir/x.txt"}


def test_an_unmounted_drive_is_not_a_replica(tmp_path: Path) -> None:
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    for args in (("scan", mount_point), ("status", mount_point, "--exit-code"), ("ls-index", mount_point)):
        proc = run_sq(*args)
        assert proc.code == 3
        assert "not a replica" in stderr_line(proc.stderr)
    assert list(mount_point.iterdir()) == [], "nothing is created on a path that is not a replica"


def test_init_refuses_a_replica_a_missing_path_and_a_file(tmp_path: Path) -> None:
    drive = make_tree(tmp_path / "drive", {"f": b"f"})
    assert run_sq("init", drive).code == 0
    identity = replica_json(drive)
    again = run_sq("init", drive)
    assert again.code == 4
    assert "already a replica" in stderr_line(again.stderr)
    assert replica_json(drive) == identity
    missing = run_sq("init", tmp_path / "missing")
    assert missing.code == 5
    stderr_line(missing.stderr)
    assert not (tmp_path / "missing").exists()
    assert run_sq("init", drive / "f").code == 5


def test_an_index_from_a_newer_sq_is_refused_and_left_alone(tmp_path: Path) -> None:
    drive = make_tree(tmp_path / "drive", {"keep.txt": b"k", "gone.txt": b"g"})
    assert run_sq("init", drive).code == 0
    listing = run_sq("ls-index", drive).stdout
    index_dir = drive / ".squirrel" / "index"
    env = lmdb.open(str(index_dir), max_dbs=10)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(b"format", b"99", db=meta)
    env.close()
    data_before = (index_dir / "data.mdb").read_bytes()
    (drive / "gone.txt").unlink()

    for args in (("scan", drive), ("status", drive), ("ls-index", drive)):
        proc = run_sq(*args)
        assert proc.code == 8, (args, proc.stderr)
        assert "upgrade sq" in stderr_line(proc.stderr)
    assert (index_dir / "data.mdb").read_bytes() == data_before

    env = lmdb.open(str(index_dir), max_dbs=10)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(b"format", str(index.FORMAT_VERSION).encode(), db=meta)
    env.close()
    assert run_sq("ls-index", drive).stdout == listing, "the refused commands recorded nothing"


def test_a_locked_replica_names_the_writer(tmp_path: Path) -> None:
    drive = make_tree(tmp_path / "drive", {"f": b"f"})
    assert run_sq("init", drive).code == 0
    write(drive / "f", b"changed")
    with Replica.open(str(drive)):
        scan = run_sq("scan", drive)
        assert scan.code == 7
        assert f"locked by pid {os.getpid()}" in stderr_line(scan.stderr)
        status = run_sq("status", drive, "--exit-code")
        assert status.code == 1, "status only reads, so it works under the lock"
    assert run_sq("scan", drive).code == 0


def test_init_join_makes_a_second_replica_of_the_vault(tmp_path: Path) -> None:
    first = make_tree(tmp_path / "first", {"a.jpg": b"a"})
    assert run_sq("init", first, "--name", "first").code == 0
    second = make_tree(tmp_path / "second", {"a.jpg": b"a", "b.jpg": b"b"})
    proc = run_sq("init", second, "--join", first, "--name", "second", "--json")
    assert proc.code == 0, proc.stderr
    a, b = replica_json(first), replica_json(second)
    assert a["vault"] == b["vault"]
    assert a["replica"] != b["replica"]
    assert b["name"] == "second"
    assert json.loads(proc.stdout)["files"] == 2
    with Replica.open(str(second), write=False) as joined:
        assert joined.names() == {a["replica"]: "first", b["replica"]: "second"}


def test_plumbing_one_liners(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"content")
    proc = run_sq("hash-object", "--stdin-paths", input=f"{f}\n".encode())
    assert proc.code == 0
    assert proc.stdout == f"{ids.hash_bytes(b'content').hex()}  {f}\n".encode()
    proc = run_sq("vt", "compare", "a:1,b:2", "a:2,b:2")
    assert (proc.code, proc.stdout) == (0, b"before\n")
    bad = run_sq("vt", "compare", "a:one", "b:1")
    assert bad.code == 15
    stderr_line(bad.stderr)
