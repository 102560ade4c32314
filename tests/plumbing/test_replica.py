"""A replica on disk: the marker, its identity and the writer's lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from squirrel.errors import AlreadyAReplica, BadPath, CorruptIndex, Locked, NotAReplica, UnsupportedFormat
from squirrel.plumbing.replica import Replica, read_identity
from squirrel.plumbing.vtime import is_replica_id

HOLD_LOCK = """
import sys, time
from squirrel.plumbing.replica import Replica
rep = Replica.open(sys.argv[1])
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def lock_holder(replica_root: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds the replica's writer lock until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(replica_root)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_create_makes_the_marker_layout_and_a_fresh_identity(tmp_path: Path) -> None:
    root = tmp_path / "Photos"
    root.mkdir()
    with Replica.create(str(root)) as rep:
        assert rep.name == "Photos"
        assert is_replica_id(rep.id) and is_replica_id(rep.identity.vault)
        assert rep.id != rep.identity.vault
        assert rep.names() == {rep.id: "Photos"}
    sq = root / ".squirrel"
    assert sorted(p.name for p in sq.iterdir() if p.name != "lock") == ["index", "replica.json", "tmp", "trash"]
    data = json.loads((sq / "replica.json").read_text())
    assert data == {"format": 1, "vault": rep.identity.vault, "replica": rep.id, "name": "Photos"}


def test_create_takes_a_name_and_a_vault(tmp_path: Path) -> None:
    with Replica.create(str(tmp_path), name="drive-1", vault="00112233445566aa") as rep:
        assert rep.name == "drive-1"
        assert rep.identity.vault == "00112233445566aa"


def test_two_replicas_never_share_an_id(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    with Replica.create(str(a)) as ra, Replica.create(str(b)) as rb:
        assert ra.id != rb.id
        assert ra.identity.vault != rb.identity.vault


def test_open_reads_back_the_same_identity(replica_root: Path) -> None:
    ident = read_identity(str(replica_root))
    with Replica.open(str(replica_root)) as rep:
        assert rep.identity == ident
        assert rep.root == str(replica_root)
        assert rep.index.get(b"") is not None


def test_open_recreates_missing_work_directories(replica_root: Path) -> None:
    os.rmdir(replica_root / ".squirrel" / "tmp")
    with Replica.open(str(replica_root)) as rep:
        assert os.path.isdir(rep.tmp_dir)
        assert os.path.isdir(rep.trash_dir)


def test_a_directory_without_the_marker_is_not_a_replica(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"x")
    with pytest.raises(NotAReplica, match="not a replica"):
        Replica.open(str(tmp_path))
    with pytest.raises(NotAReplica):
        Replica.open(str(tmp_path), write=False)
    assert not (tmp_path / ".squirrel").exists(), "opening must not create anything"


def test_a_half_created_marker_is_not_a_replica(tmp_path: Path) -> None:
    (tmp_path / ".squirrel" / "index").mkdir(parents=True)
    with pytest.raises(NotAReplica):
        Replica.open(str(tmp_path))


def test_a_symlinked_marker_is_not_a_replica(tmp_path: Path, replica_root: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / ".squirrel").symlink_to(replica_root / ".squirrel")
    with pytest.raises(NotAReplica):
        Replica.open(str(other))


def test_a_missing_path_or_a_file_is_a_bad_path(tmp_path: Path) -> None:
    with pytest.raises(BadPath):
        Replica.open(str(tmp_path / "unmounted"))
    f = tmp_path / "file"
    f.write_bytes(b"")
    with pytest.raises(BadPath):
        Replica.open(str(f))
    with pytest.raises(BadPath):
        Replica.create(str(tmp_path / "unmounted"))
    with pytest.raises(BadPath):
        Replica.create(str(f))


def test_a_replica_cannot_be_created_twice(replica_root: Path, tmp_path: Path) -> None:
    before = (replica_root / ".squirrel" / "replica.json").read_bytes()
    with pytest.raises(AlreadyAReplica):
        Replica.create(str(replica_root))
    assert (replica_root / ".squirrel" / "replica.json").read_bytes() == before
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / ".squirrel").write_bytes(b"not a directory")
    with pytest.raises(AlreadyAReplica):
        Replica.create(str(stray))


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"vault": "00112233445566aa", "replica": "8899aabbccddeeff", "name": "x"}',
        b'{"format": 1, "vault": "nope", "replica": "8899aabbccddeeff", "name": "x"}',
        b'{"format": 1, "vault": "00112233445566aa", "replica": "8899aabbccddeeff", "name": ""}',
    ],
)
def test_a_damaged_identity_is_a_corrupt_index(replica_root: Path, content: bytes) -> None:
    (replica_root / ".squirrel" / "replica.json").write_bytes(content)
    with pytest.raises(CorruptIndex):
        Replica.open(str(replica_root))


def test_an_identity_from_a_newer_format_is_refused(replica_root: Path) -> None:
    path = replica_root / ".squirrel" / "replica.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "format": 2}))
    with pytest.raises(UnsupportedFormat, match="upgrade"):
        Replica.open(str(replica_root))


def test_recheck_identity_notices_a_different_drive_at_the_path(replica_root: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    Replica.create(str(other)).close()
    with Replica.open(str(replica_root)) as rep:
        rep.recheck_identity()
        marker = replica_root / ".squirrel" / "replica.json"
        marker.write_bytes((other / ".squirrel" / "replica.json").read_bytes())
        with pytest.raises(NotAReplica):
            rep.recheck_identity()


def test_learn_names_adds_others_but_never_renames_itself(replica_root: Path) -> None:
    with Replica.open(str(replica_root)) as rep:
        rep.learn_names({"00112233445566aa": "laptop", rep.id: "impostor"})
        rep.index.commit()
    with Replica.open(str(replica_root), write=False) as rep:
        assert rep.names() == {rep.id: "drive", "00112233445566aa": "laptop"}


# The lock -----------------------------------------------------------------------
def test_a_second_writer_is_refused_with_the_holders_pid(replica_root: Path) -> None:
    with Replica.open(str(replica_root)):
        with pytest.raises(Locked) as info:
            Replica.open(str(replica_root))
    assert info.value.pid == os.getpid()
    assert f"locked by pid {os.getpid()}" in str(info.value)
    assert info.value.exit_code == 7


def test_readers_do_not_need_the_lock(replica_root: Path, lock_holder: subprocess.Popen[str]) -> None:
    with Replica.open(str(replica_root), write=False) as reader:
        assert reader.index.get(b"") is not None


def test_the_lock_is_released_on_close(replica_root: Path) -> None:
    Replica.open(str(replica_root)).close()
    Replica.open(str(replica_root)).close()


def test_a_lock_held_by_another_process_names_it(replica_root: Path, lock_holder: subprocess.Popen[str]) -> None:
    with pytest.raises(Locked) as info:
        Replica.open(str(replica_root))
    assert info.value.pid == lock_holder.pid


def test_a_killed_writers_lock_is_never_stale(replica_root: Path, lock_holder: subprocess.Popen[str]) -> None:
    lock_holder.kill()
    lock_holder.wait()
    lock_file = replica_root / ".squirrel" / "lock"
    assert lock_file.read_text().strip() == str(lock_holder.pid), "the dead writer's pid is still in the file"
    with Replica.open(str(replica_root)) as rep:
        assert rep.lock is not None
        assert lock_file.read_text().strip() == str(os.getpid())
