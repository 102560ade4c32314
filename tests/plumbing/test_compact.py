"""Repacking an index whose pages went half empty (squirrel/plumbing/compact.py):
the records stay byte for byte, the file shrinks, and a kill at any step
leaves the old index or the new one, settled by the next command."""

from __future__ import annotations

import os
from pathlib import Path

import lmdb
import pytest

from squirrel.plumbing import compact, faults
from squirrel.plumbing.replica import Replica
from squirrel.porcelain.init import init
from squirrel.porcelain.reconcile import reconcile
from squirrel.porcelain.scan import scan
from tests.helpers import make_tree

FILES = 3000


def tables(index_dir: Path) -> dict[bytes, list[tuple[bytes, bytes]]]:
    env = lmdb.open(str(index_dir), readonly=True, lock=False, max_dbs=16)
    try:
        with env.begin() as txn:
            return {name: list(txn.cursor(db=env.open_db(name, txn=txn, create=False))) for name, _ in txn.cursor()}
    finally:
        env.close()


@pytest.fixture
def sparse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Drive B's index after its first reconcile with A: every record grew
    (A's events joined into each version's time), so every page split."""
    monkeypatch.setattr(compact, "MIN_BYTES", 1 << 62)  # not yet
    files = {f"album{i // 100:02d}/img_{i:05d}.jpg": f"photo {i}" for i in range(FILES)}
    a, b = make_tree(tmp_path / "a", files), make_tree(tmp_path / "b", files)
    init(str(a), name="a")
    init(str(b), name="b", join=str(a))
    reconcile(str(a), str(b))
    index = b / ".squirrel" / "index"
    assert compact.worth_compacting(str(index)) is False  # smaller than MIN_BYTES
    monkeypatch.setattr(compact, "MIN_BYTES", 0)
    assert compact.worth_compacting(str(index))
    return b


@pytest.mark.parametrize("copy_bytes", [compact.COPY_BYTES, 4096], ids=["one-transaction", "many-transactions"])
def test_a_command_that_wrote_repacks_a_sparse_index_at_its_end(
    sparse: Path, copy_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copied in one transaction or in many (as a large index is), the
    repacked index holds the same records, byte for byte."""
    monkeypatch.setattr(compact, "COPY_BYTES", copy_bytes)
    index = sparse / ".squirrel" / "index"
    before, size = tables(index), os.path.getsize(index / "data.mdb")
    scan(str(sparse))
    assert tables(index) == before
    assert os.path.getsize(index / "data.mdb") < size / 2
    assert not compact.worth_compacting(str(index))
    assert not (sparse / ".squirrel" / "index.new").exists() and not (sparse / ".squirrel" / "index.old").exists()
    assert scan(str(sparse)).added == []  # the repacked index reads as the old one


def test_a_command_that_failed_leaves_the_index_alone(sparse: Path) -> None:
    index = sparse / ".squirrel" / "index"
    size = os.path.getsize(index / "data.mdb")
    with pytest.raises(RuntimeError), Replica.open(str(sparse)):
        raise RuntimeError("the command failed")
    assert os.path.getsize(index / "data.mdb") == size


@pytest.mark.parametrize("fault", ["fsync:1", "rename:1", "rename:2"])
def test_a_repacking_stopped_at_any_step_is_settled_by_the_next_command(sparse: Path, fault: str) -> None:
    """An I/O error at each step stands for a kill there: the files stay as
    that step left them, and the next command starts from them."""
    index = sparse / ".squirrel" / "index"
    before = tables(index)
    faults.configure(f"{fault}:eio")
    try:
        with Replica.open(str(sparse)):
            pass  # closing repacks, and the fault stops it
    finally:
        faults.configure(None)
    with Replica.open(str(sparse)) as rep:  # settles, then reads the index
        assert rep.index.get(b"album00/img_00000.jpg") is not None
    assert tables(index) == before
    assert not (sparse / ".squirrel" / "index.new").exists()
    assert not (sparse / ".squirrel" / "index.old").exists()
