"""A command that will scan a large replica starts its sweep's workers
before it loads its own code (`workers.started_early`): the sweep must
sweep with those and start none of its own, and no worker may outlive the
command, used or not (those not used are killed: they hold nothing)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from squirrel.plumbing import sweep, workers
from squirrel.plumbing.replica import Replica
from tests.helpers import make_tree, sq_in_process

FILES = {f"{d}/{n}": n.encode() for d in ("x", "x/y", "z") for n in ("a", "b", "c.jpg")}


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    """What happened, in order: each worker started ("start", the worker)
    and each sweep begun ("sweep", None)."""
    seen: list[tuple[str, object]] = []
    real_init, real_sweep = workers.Worker.__init__, sweep.sweep

    def init(self: workers.Worker) -> None:
        real_init(self)
        seen.append(("start", self))

    def swept(*args: object, **kwargs: object) -> object:
        seen.append(("sweep", None))
        return real_sweep(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(workers.Worker, "__init__", init)
    monkeypatch.setattr(sweep, "sweep", swept)
    return seen


@pytest.fixture
def two_processors() -> None:
    if workers.worker_count() < 1:
        pytest.skip("one processor: a sweep has no workers here")


def started(events: list[tuple[str, object]]) -> list[workers.Worker]:
    return [w for what, w in events if what == "start" and isinstance(w, workers.Worker)]


def exits(ws: list[workers.Worker]) -> list[int]:
    return [w.proc.wait(timeout=10) for w in ws]


def swept_with_early_workers(events: list[tuple[str, object]]) -> None:
    """Every worker started before the sweep, the sweep started none of
    its own, and each ended well once its findings were in."""
    assert [what for what, _ in events] == ["start"] * workers.worker_count() + ["sweep"]
    assert exits(started(events)) == [0] * workers.worker_count()


def replica(root: Path) -> Path:
    make_tree(root, FILES)
    sq_in_process("init", root, "--name", "A").check()
    return root


@pytest.mark.usefixtures("two_processors")
def test_a_scan_sweeps_with_the_workers_its_command_started_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, events: list[tuple[str, object]]
) -> None:
    root = replica(tmp_path / "A")
    (root / "x" / "y" / "b").write_bytes(b"edited")
    (root / "z" / "new").write_bytes(b"new")
    monkeypatch.setattr(workers, "SWEEP_MIN", 0)
    events.clear()
    ran = sq_in_process("scan", "--json", root).check()
    assert (ran.json["modified"], ran.json["added"]) == ([{"path": "x/y/b"}], [{"path": "z/new"}])
    swept_with_early_workers(events)


@pytest.mark.usefixtures("two_processors")
def test_a_visit_sweeps_with_the_workers_started_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, events: list[tuple[str, object]]
) -> None:
    root = replica(tmp_path / "A")
    carrier = tmp_path / "carrier"
    sq_in_process("sync", "--carrier", carrier, root).check()
    (root / "x" / "a").write_bytes(b"edited")
    monkeypatch.setattr(workers, "SWEEP_MIN", 0)
    events.clear()
    ran = sq_in_process("sync", "--carrier", carrier, "--json", root).check()
    assert ran.json["taken"] == 1
    swept_with_early_workers(events)


@pytest.mark.usefixtures("two_processors")
def test_workers_started_for_a_command_that_fails_before_its_scan_are_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, events: list[tuple[str, object]]
) -> None:
    root = replica(tmp_path / "A")
    monkeypatch.setattr(workers, "SWEEP_MIN", 0)
    events.clear()
    ran = sq_in_process("apply", tmp_path / "no-such.sqb", root)
    assert ran.code != 0 and "no-such.sqb" in ran.err
    assert [what for what, _ in events] == ["start"] * workers.worker_count()
    assert exits(started(events)) == [-signal.SIGKILL] * workers.worker_count()
    assert workers._early == []


def test_an_interrupt_while_workers_start_leaves_none_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, events: list[tuple[str, object]]
) -> None:
    root = replica(tmp_path / "A")
    monkeypatch.setattr(workers, "SWEEP_MIN", 0)
    monkeypatch.setattr(workers, "worker_count", lambda: 3)
    real_init = workers.Worker.__init__

    def second_interrupted(self: workers.Worker) -> None:
        if len(started(events)) == 1:
            raise KeyboardInterrupt
        real_init(self)

    monkeypatch.setattr(workers.Worker, "__init__", second_interrupted)
    events.clear()
    with pytest.raises(KeyboardInterrupt), workers.started_early(str(root)):
        pass
    assert len(started(events)) == 1
    assert exits(started(events)) == [-signal.SIGKILL]
    assert workers._early == []


def test_no_worker_starts_for_a_small_replica(tmp_path: Path, events: list[tuple[str, object]]) -> None:
    root = replica(tmp_path / "A")
    events.clear()
    assert sq_in_process("scan", root).check()
    assert sq_in_process("status", root).check()
    assert events == []


@pytest.mark.usefixtures("two_processors")
def test_the_paths_the_index_records_decide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, events: list[tuple[str, object]]
) -> None:
    """The count read from the index's file is the index's own, and no
    worker starts for an index of fewer than `SWEEP_MIN` paths, or for a
    folder that holds none (nothing is created there)."""
    root = replica(tmp_path / "A")
    with Replica.open(str(root), write=False) as rep:
        entries = rep.index.entry_count()
    assert entries == len(FILES) + 3 + 1  # the files, the folders x, x/y and z, and the root
    assert workers.recorded_paths(str(root)) == entries
    others = [tmp_path / "not a replica", root / "x", root / "x" / "a", tmp_path / "missing"]
    (tmp_path / "not a replica").mkdir()
    assert [workers.recorded_paths(str(p)) for p in others] == [0, 0, 0, 0]
    assert not (root / "x" / ".squirrel").exists() and not (tmp_path / "missing").exists()
    monkeypatch.setattr(workers, "SWEEP_MIN", entries + 1)
    events.clear()
    with workers.started_early(str(root), *map(str, others)):
        assert events == []
    monkeypatch.setattr(workers, "SWEEP_MIN", entries)
    with workers.started_early(str(others[0]), str(root)):
        assert len(started(events)) == workers.worker_count() == len(workers._early)
    assert exits(started(events)) == [-signal.SIGKILL] * workers.worker_count()
    assert workers._early == []
