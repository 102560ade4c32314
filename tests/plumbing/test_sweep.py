"""The sweep finds a large tree's changed folders in worker processes; the
scanner must then find exactly what its own walk finds (test_scan.py runs
every scan test both ways; these add random trees and the fallbacks)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from squirrel.plumbing import sweep, workers
from squirrel.plumbing.paths import IgnoreRules
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.scan import Scanner, record
from tests.helpers import age, make_tree, pure_python

NAMES = ["a", "b", "c.jpg", "d", "Thumbs.db"]
DIRS = ["", "x", "x/y", "z"]


def changes(root: Path, parallel: bool) -> tuple[list[tuple[str, bytes]], int, int, list[bytes]]:
    with Replica.open(str(root), write=False) as rep:
        scanner = Scanner(str(root), rep.index, parallel=parallel)
        found = [(c.kind, c.path) for c in scanner.changes()]
        return found, scanner.stats.files, scanner.stats.dirs, [p for p, _ in scanner.stats.skipped]


def scanned(root: Path, files: dict[str, bytes]) -> None:
    make_tree(root, files)
    (root / ".squirrel" / "ignore").write_text("Thumbs.db\n")
    with Replica.open(str(root)) as rep:
        record(rep.index, Scanner(str(root), rep.index, parallel=False).changes())
        rep.index.commit()


@pytest.fixture(autouse=True)
def always(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "SWEEP_MIN", 0)


def test_the_sweep_runs_in_worker_processes_and_finds_nothing_in_an_unchanged_tree(replica_root: Path) -> None:
    scanned(replica_root, {f"{d}/{n}".lstrip("/"): n.encode() for d in DIRS for n in NAMES[:3]})
    with Replica.open(str(replica_root), write=False) as rep:
        found = sweep.sweep(str(replica_root), rep.index, IgnoreRules.for_replica(str(replica_root)))
    assert found is not None
    assert (found.unclean, found.files, found.dirs) == ([], 12, 4)


def test_it_names_each_changed_folder_once_parents_first(replica_root: Path) -> None:
    scanned(replica_root, {f"{d}/{n}".lstrip("/"): n.encode() for d in DIRS for n in NAMES[:3]})
    (replica_root / "x" / "y" / "new").write_bytes(b"new")
    (replica_root / "z" / "a").unlink()
    (replica_root / "Thumbs.db").write_bytes(b"ignored, unrecorded: not a change")
    with Replica.open(str(replica_root), write=False) as rep:
        found = sweep.sweep(str(replica_root), rep.index, IgnoreRules.for_replica(str(replica_root)))
    assert found is not None
    assert found.unclean == [b"x/y", b"z"]
    assert (found.files, found.dirs) == (7, 2)  # the clean ones: the root (with Thumbs.db) and x


def test_without_worker_processes_the_scanner_walks_alone(replica_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scanned(replica_root, {"x/a": b"a", "x/b": b"b"})
    (replica_root / "x" / "c").write_bytes(b"c")
    monkeypatch.setattr(sys, "executable", str(replica_root / "no-such-python"))
    with Replica.open(str(replica_root), write=False) as rep:
        assert sweep.sweep(str(replica_root), rep.index, IgnoreRules()) is None
    assert changes(replica_root, True)[0] == [("added", b"x/c")]


def test_a_folder_named_squirrel_where_the_command_runs_is_not_imported_by_the_workers(
    replica_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m` searches the working folder first: a photo folder named
    squirrel there must not stand in for the package in a worker."""
    scanned(replica_root, {f"{d:02}/a": b"a" for d in range(4 * workers.WORKERS)})  # a batch for every worker
    (replica_root / "07" / "b").write_bytes(b"b")
    work = tmp_path / "elsewhere"
    (work / "squirrel").mkdir(parents=True)
    (work / "squirrel" / "__init__.py").write_text("raise SystemExit(3)\n")
    monkeypatch.chdir(work)
    with Replica.open(str(replica_root), write=False) as rep:
        found = sweep.sweep(str(replica_root), rep.index, IgnoreRules())
    assert found is not None and found.unclean == [b"07"]


def test_a_worker_that_dies_leaves_the_walk_to_the_scanner(replica_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scanned(replica_root, {"x/a": b"a"})
    (replica_root / "x" / "a").write_bytes(b"edited")
    monkeypatch.setattr(workers, "WORKER_MODULE", "no_such_module_here")
    assert changes(replica_root, True)[0] == [("modified", b"x/a")]


def new_replica(root: Path) -> Path:
    root.mkdir()
    Replica.create(str(root), name=root.name).close()
    return root


def test_workers_kept_for_several_sweeps_sweep_each_tree_against_its_own_index(tmp_path: Path) -> None:
    a, b = new_replica(tmp_path / "A"), new_replica(tmp_path / "B")
    scanned(a, {"x/a": b"a", "z/b": b"b"})
    scanned(b, {"x/a": b"a", "x/y/c": b"c", "z/b": b"b"})
    (a / "z" / "new").write_bytes(b"new on A")
    (b / "x" / "y" / "c").unlink()
    pool = workers.SweepWorkers()
    with pool, Replica.open(str(a), write=False) as ra, Replica.open(str(b), write=False) as rb:
        first = sweep.sweep(str(a), ra.index, IgnoreRules(), pool=pool)
        started = [w.proc.pid for w in pool.start()]
        second = sweep.sweep(str(b), rb.index, IgnoreRules(), pool=pool)
        again = sweep.sweep(str(a), ra.index, IgnoreRules(), pool=pool)
        assert [w.proc.pid for w in pool.start()] == started  # the same processes, set up three times
    assert first is not None and second is not None and again is not None
    assert first.unclean == again.unclean == [b"z"]
    assert second.unclean == [b"x/y"]
    assert (second.files, second.dirs) == (2, 3)


def test_workers_told_to_end_end_at_once_and_cleanly(replica_root: Path) -> None:
    """A worker leaves without the interpreter's shutdown, which the scanner
    would wait for: it must still end, and with success."""
    scanned(replica_root, {"x/a": b"a", "z/b": b"b"})
    with workers.SweepWorkers() as pool, Replica.open(str(replica_root), write=False) as rep:
        assert sweep.sweep(str(replica_root), rep.index, IgnoreRules(), pool=pool) is not None
        started = list(pool.start())
    assert [w.proc.wait(timeout=10) for w in started] == [0] * len(started)


def test_workers_that_failed_a_sweep_are_replaced_for_the_next(tmp_path: Path) -> None:
    a = new_replica(tmp_path / "A")
    scanned(a, {"x/a": b"a"})
    (a / "x" / "b").write_bytes(b"b")
    with workers.SweepWorkers() as pool, Replica.open(str(a), write=False) as ra:
        dead = pool.start()[0]
        dead.proc.kill()
        dead.proc.wait()
        assert sweep.sweep(str(a), ra.index, IgnoreRules(), pool=pool) is None  # the scanner walks instead
        found = sweep.sweep(str(a), ra.index, IgnoreRules(), pool=pool)
        assert dead not in pool.start()
    assert found is not None and found.unclean == [b"x"]


edits = st.lists(
    st.tuples(
        st.sampled_from(["write", "delete", "mkdir", "rmdir", "touch", "symlink", "swap"]),
        st.sampled_from(DIRS),
        st.sampled_from(NAMES),
    ),
    max_size=8,
)


@settings(
    max_examples=int(os.environ.get("SQ_HYPOTHESIS_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(start=st.sets(st.tuples(st.sampled_from(DIRS), st.sampled_from(NAMES)), max_size=12), steps=edits)
@pytest.mark.parametrize("how", ["workers", "workers-python", "here"])
def test_the_sweep_changes_nothing_the_scanner_finds(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    start: set[tuple[str, str]],
    steps: list[tuple[str, str, str]],
) -> None:
    if how == "workers-python":
        pure_python(monkeypatch)
    if how == "here":  # the scanner's process alone, as for a middling index
        monkeypatch.setattr(workers, "SWEEP_MIN", 1 << 62)
        monkeypatch.setattr(sweep, "HERE_MIN", 0)
    # A fresh folder for each example: the last example's sweep workers
    # may still be ending while this one starts.
    root = Path(tempfile.mkdtemp(dir=tmp_path)) / "r"
    root.mkdir()
    Replica.create(str(root), name="r").close()
    scanned(root, {f"{d}/{n}".lstrip("/"): f"{d}{n}".encode() for d, n in start if not (d and d.startswith(n))})
    for what, d, n in steps:
        p = root / d / n
        try:
            if what == "write":
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(b"w" + os.urandom(4))
                age(p)
            elif what == "delete" and p.is_file():
                p.unlink()
            elif what == "mkdir":
                p.mkdir(parents=True)
            elif what == "rmdir" and (root / d).is_dir() and d:
                shutil.rmtree(root / d)
            elif what == "touch" and p.is_file():
                os.utime(p, (1_000_000_000, 1_000_000_000))
            elif what == "symlink":
                p.parent.mkdir(parents=True, exist_ok=True)
                p.symlink_to("elsewhere")
            elif what == "swap" and p.is_file():
                p.unlink()
                p.mkdir()
        except OSError:
            pass  # the step does not apply to this tree
    assert changes(root, True) == changes(root, False)


def test_a_damaged_file_put_back_by_hand_ends_its_wait_though_its_folder_looks_unchanged(replica_root: Path) -> None:
    from squirrel.porcelain.verify import verify

    scanned(replica_root, {"x/a.jpg": b"photo", "x/b.jpg": b"other"})
    target = replica_root / "x" / "a.jpg"
    st = target.stat()
    target.write_bytes(b"phoTo")  # a flipped bit: same size, same mtime
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    verify(str(replica_root), repair=True)
    assert not target.exists()  # moved to the trash, waiting for healing
    target.write_bytes(b"photo")  # the user copies the good version back, size and mtime too
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    with Replica.open(str(replica_root)) as rep:
        assert [m.path for m in rep.index.wanted_marks()] == [b"x/a.jpg"]
        record(rep.index, Scanner(str(replica_root), rep.index).changes())
        rep.index.commit()
        assert rep.index.wanted_marks() == []


def test_every_worker_has_work_from_the_start(replica_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep reads the top folders itself until there is a batch for
    each worker: handed the top folder alone, one worker swept its first
    batch while the others waited."""
    if workers.worker_count() < 1:
        pytest.skip("one processor: the scanner walks alone")
    scanned(
        replica_root,
        {
            f"{year}/{month:02}/IMG_{n}.jpg": b"x"
            for year in range(2000, 2004)
            for month in range(1, 13)
            for n in range(2)
        },
    )
    events: list[tuple[str, int]] = []
    real_send, real_receive = workers.Worker.send, workers.Worker.receive

    def send(self, batch):  # type: ignore[no-untyped-def]
        events.append(("send", id(self)))
        return real_send(self, batch)

    def receive(self):  # type: ignore[no-untyped-def]
        events.append(("receive", id(self)))
        return real_receive(self)

    monkeypatch.setattr(workers.Worker, "send", send)
    monkeypatch.setattr(workers.Worker, "receive", receive)
    with Replica.open(str(replica_root), write=False) as rep:
        found = sweep.sweep(str(replica_root), rep.index, IgnoreRules.for_replica(str(replica_root)))
    assert found is not None and found.unclean == [] and (found.files, found.dirs) == (96, 53)
    first_round = events[: next(i for i, (what, _) in enumerate(events) if what == "receive")]
    assert len({worker for _, worker in first_round}) == workers.worker_count()


def test_a_worker_asked_to_give_its_batch_back_hands_back_what_it_has_not_swept(replica_root: Path) -> None:
    """The scanner, out of folders, asks its busy workers for theirs: a
    worker ends its batch after the folder at hand and sends the rest back,
    and a request that comes after its batch ended is ignored."""
    scanned(replica_root, {f"{d:02}/a": b"a" for d in range(30)})
    (replica_root / "17" / "b").write_bytes(b"new")
    with Replica.open(str(replica_root), write=False) as rep:
        setup = (os.fsencode(replica_root), rep.index.directory, rep.index.self_id, IgnoreRules(), frozenset())
        worker = workers.Worker()
        try:
            # All three are in its pipe before its interpreter has started.
            worker.set_up(setup)
            worker.send([f"{d:02}".encode() for d in range(30)])
            worker.give_back()
            unclean, frontier, files, dirs = worker.receive()
            assert (unclean, files, dirs) == ([], 1, 1)  # one folder swept, "00"
            assert frontier == [f"{d:02}".encode() for d in range(29, 0, -1)]  # the next one last

            worker.give_back()  # too late: nothing is being swept
            worker.send(frontier)
            assert worker.receive() == ([b"17"], [], 28, 28)
        finally:
            worker.close()


def test_a_middling_index_is_swept_by_the_scanner_alone_where_the_comparison_is_in_c(
    replica_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below SWEEP_MIN a worker's start costs more than it saves; in C the
    scanner's own sweep is still quicker than its walk (20,000 files:
    0.15 s against 0.19 s)."""
    scanned(replica_root, {f"{d}/{n}".lstrip("/"): n.encode() for d in DIRS for n in NAMES[:3]})
    monkeypatch.setattr(workers, "SWEEP_MIN", 1_000)
    monkeypatch.setattr(sweep, "HERE_MIN", 10)
    with Replica.open(str(replica_root), write=False) as rep:
        entries = rep.index.entry_count()
        assert 10 <= entries < 1_000
        if sweep._compare is not None:
            assert sweep.workers_for(rep.index) == 0
        monkeypatch.setattr(sweep, "_compare", None)
        assert sweep.workers_for(rep.index) is None  # in Python the walk is as quick
        monkeypatch.setattr(workers, "SWEEP_MIN", entries)
        assert sweep.workers_for(rep.index) == workers.worker_count()
        monkeypatch.setattr(sweep, "HERE_MIN", entries + 1)
        monkeypatch.setattr(workers, "SWEEP_MIN", entries + 1)
        assert sweep.workers_for(rep.index) is None


def test_a_pool_of_no_workers_sweeps_in_this_process_and_finds_what_workers_find(replica_root: Path) -> None:
    scanned(replica_root, {f"{d}/{n}".lstrip("/"): n.encode() for d in DIRS for n in NAMES[:3]})
    (replica_root / "x" / "y" / "new").write_bytes(b"new")
    (replica_root / "z" / "a").unlink()
    ignore = IgnoreRules.for_replica(str(replica_root))
    with Replica.open(str(replica_root), write=False) as rep:
        alone = workers.SweepWorkers(0)
        assert alone.start() == []
        here = sweep.sweep(str(replica_root), rep.index, ignore, pool=alone)
        there = sweep.sweep(str(replica_root), rep.index, ignore)
    assert here is not None and there is not None
    assert (
        (here.unclean, here.files, here.dirs)
        == (there.unclean, there.files, there.dirs)
        == ([b"x/y", b"z"], 6, 2)  # the clean ones: the root and x
    )
