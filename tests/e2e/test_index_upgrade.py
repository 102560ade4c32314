"""An index written by format 1 keeps working: commands that only read read
it as it is, the first command that writes upgrades it to format 2 in one
step (a kill in the middle leaves it whole), and nothing a user had is lost
or changed on the way.

`tests/data/golden-index-v1.tar.gz` holds two replicas of one vault made by
the format-1 code, with a conflict, a trash item, a stored sync time below
the root, a non-UTF-8 name and an empty folder, next to the output of
`sq ls-index --json` and `sq conflicts --json` they gave then.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import lmdb
import pytest

from squirrel.plumbing import index
from tests.fault_tools import run_forked
from tests.helpers import make_tree, run_sq, tree, write

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden-index-v1.tar.gz"


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    with tarfile.open(GOLDEN) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "vault"


def meta(drive: Path) -> dict[str, bytes]:
    env = lmdb.open(str(drive / ".squirrel" / "index"), max_dbs=10, readonly=True, lock=False)
    try:
        with env.begin(db=env.open_db(b"meta", create=False)) as txn:
            return {bytes(k).decode(): bytes(v) for k, v in txn.cursor()}
    finally:
        env.close()


def recorded(vault: Path, drive: str, what: str) -> object:
    return json.loads((vault / f"{drive}.{what}.json").read_bytes())


def listing(drive: Path, what: str) -> object:
    ran = run_sq(what, drive, "--json")
    assert ran.code == 0, ran.err
    return json.loads(ran.stdout)


def test_reading_commands_read_a_format_1_index_as_it_is(vault: Path) -> None:
    for name in ("drive1", "drive2"):
        drive = vault / name
        before = (drive / ".squirrel" / "index" / "data.mdb").read_bytes()
        assert listing(drive, "ls-index") == recorded(vault, name, "ls-index")
        assert [{k: v for k, v in c.items()} for c in listing(drive, "conflicts")] == recorded(vault, name, "conflicts")
        assert run_sq("status", drive, "--exit-code").code == (1 if name == "drive2" else 0)  # an open conflict
        assert (drive / ".squirrel" / "index" / "data.mdb").read_bytes() == before, "reading wrote nothing"
        assert meta(drive)["format"] == b"1"


def test_the_first_write_upgrades_and_keeps_everything(vault: Path) -> None:
    files = {name: tree(vault / name) for name in ("drive1", "drive2")}
    for name in ("drive1", "drive2"):
        drive = vault / name
        scanned = run_sq("scan", drive, "--json")
        assert scanned.code == 0, scanned.err
        assert json.loads(scanned.stdout)["added"] == [] and json.loads(scanned.stdout)["deleted"] == []
        assert meta(drive)["format"] == str(index.FORMAT_VERSION).encode()
        assert json.loads(meta(drive)[index.LEGACY_KEY]) is True
        assert listing(drive, "ls-index") == recorded(vault, name, "ls-index"), "every record reads the same"
        assert listing(drive, "conflicts") == recorded(vault, name, "conflicts")
        assert run_sq("verify", drive).code == 0
        assert tree(drive) == files[name]
    # The upgraded replicas sync on: the conflict resolves and travels.
    assert run_sq("resolve", vault / "drive2", "notes.txt", "--keep", "copy").code == 0
    ran = run_sq("reconcile", vault / "drive1", vault / "drive2", "--json")
    assert ran.code == 0, ran.err
    assert json.loads(ran.stdout)["conflicts"] == []
    assert tree(vault / "drive1") == tree(vault / "drive2")
    assert (vault / "drive1" / "notes.txt").read_bytes() == b"B's edit\n"


def test_an_upgrade_killed_halfway_leaves_format_1_whole(vault: Path) -> None:
    drive = vault / "drive2"
    killed = run_forked(["scan", drive], "commit:1")
    assert killed.killed
    assert meta(drive)["format"] == b"1"
    assert listing(drive, "ls-index") == recorded(vault, "drive2", "ls-index")
    again = run_sq("scan", drive)
    assert again.code == 0, again.err
    assert meta(drive)["format"] == str(index.FORMAT_VERSION).encode()
    assert listing(drive, "ls-index") == recorded(vault, "drive2", "ls-index")


def test_a_deletion_after_the_upgrade_is_reported_once(vault: Path) -> None:
    """After the upgrade a deletion keeps its exact time: the edit settled
    against it is not reported again when it goes back to the replica that
    deleted, even after that replica made unrelated edits in the folder."""
    d1, d2 = vault / "drive1", vault / "drive2"
    assert run_sq("reconcile", d1, d2).code == 0
    (d1 / "photos" / "2024" / "img_0001.jpg").unlink()
    write(d2 / "photos" / "2024" / "img_0001.jpg", "edited on drive2 meanwhile")
    first = run_sq("push", d1, d2, "--json")
    assert first.code == 0, first.err
    assert [c["kind"] for c in json.loads(first.stdout)["conflicts"]] == ["delete/update"]
    make_tree(d1, {"photos/2024/later.jpg": "an unrelated later edit in the same folder"})
    ran = run_sq("reconcile", d1, d2, "--json")
    assert ran.code == 0, ran.err
    assert json.loads(ran.stdout)["conflicts"] == [], "the settled conflict is not reported again"
    assert (d1 / "photos" / "2024" / "img_0001.jpg").read_bytes() == b"edited on drive2 meanwhile"
    assert tree(d1) == tree(d2)
