"""Random histories: pack + apply must do exactly what push does.

Each example builds two identical sets of 2-3 replicas of one vault and
performs the same random user edits on both (same content, same mtimes, so
conflict winners agree). To sync A into B, set 1 runs `push`; set 2 runs
`pack` (for the mounted B, or against a knowledge file of B) and `apply`,
then applies the same bundle a second time, which must change nothing.
After every step both sets must hold the same trees and the same index
state (every record with its times translated to replica names, the open
conflicts), and each sync must report the same conflicts and counts.

SQ_HYPOTHESIS_EXAMPLES raises the number of examples (default 50).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from squirrel.errors import SquirrelError
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.vtime import VectorTime
from squirrel.porcelain.apply import apply
from squirrel.porcelain.engine import SyncReport
from squirrel.porcelain.init import init
from squirrel.porcelain.knowledge import write_knowledge
from squirrel.porcelain.pack import pack
from squirrel.porcelain.push import push
from squirrel.porcelain.scan import scan
from tests.helpers import tree

FILES = ["a", "b", "d/x", "d/y", "d/e/z", "f/w", "d", "f"]
DIRS = ["d", "d/e", "f"]
SUBPATHS = ["d", "d/e", "f", "a"]
MOVE_TARGETS = FILES + ["m", "d/m", "d/e/m", "f/m", "g"]
T0 = int(time.time()) - 30 * 86400  # every write gets a distinct mtime in the past
# Memory-backed when available: each example makes dozens of index commits,
# and their fsyncs, not the sync logic, would dominate the run time.
FAST_TMP = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


def index_state(root: Path) -> dict[str, Any]:
    """Every index record and open conflict, with replica ids shown as names."""
    with Replica.open(str(root), write=False) as rep:
        names = rep.names()
        idx = rep.index

        def fmt(v: VectorTime) -> str:
            assert all(r in names for r in v), f"unnamed replica in {v}"
            return v.format(names)

        records = {
            p: (e.kind, e.oid, e.size, e.mode, e.mtime_ns, e.flags, fmt(e.m), fmt(e.c), fmt(idx.sync_time(p)))
            for p, e in idx.walk(b"")
        }
        conflicts = sorted((c["path"], c["kind"], c["copy"]) for c in (x.to_json() for x in idx.conflicts()))
        return {"records": records, "conflicts": conflicts, "counter": idx.counter}


def summary(r: SyncReport) -> dict[str, Any]:
    return {
        "created": r.created,
        "updated": r.updated,
        "deleted": r.deleted,
        "moved": r.moved,
        "conflicts": sorted((c["kind"], c["path"], c["copy"]) for c in r.to_json()["conflicts"]),
        "failed": r.failed,
        "deferred": r.deferred,
    }


class BundleRoundTrip(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="sq-roundtrip-", dir=FAST_TMP))
        self.sets: tuple[list[Path], list[Path]] = ([], [])
        self.counter = 0
        self.packed = 0
        self.converged = False

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize(n=st.integers(min_value=2, max_value=3))
    def make_replicas(self, n: int) -> None:
        for s, replicas in enumerate(self.sets):
            for i in range(n):
                p = self.tmp / f"set{s}" / f"r{i}"
                p.mkdir(parents=True)
                init(str(p), name=f"r{i}", join=str(replicas[0]) if replicas else None)
                replicas.append(p)
        for path in ("a", "d/x", "d/e/z", "f/w"):
            self.write(0, path)
        for i in range(1, n):
            self.sync(0, i, None, via_knowledge=i == 2)

    def roots(self, r: int) -> list[Path]:
        return [replicas[r % len(replicas)] for replicas in self.sets]

    # User edits, the same on both sets ---------------------------------------
    def write(self, r: int, path: str) -> None:
        self.counter += 1
        data = f"version {self.counter} of {path}\n".encode()
        for root in self.roots(r):
            target = root / path
            if any((root / parent).exists() and not (root / parent).is_dir() for parent in Path(path).parents):
                return
            if target.is_dir():
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            t = T0 + self.counter
            os.utime(target, (t, t))

    def delete(self, r: int, path: str) -> None:
        for root in self.roots(r):
            target = root / path
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def move(self, r: int, src: str, dst: str) -> None:
        for root in self.roots(r):
            s, d = root / src, root / dst
            inside = dst == src or dst.startswith(src + "/")
            if s.exists() and not d.exists() and d.parent.is_dir() and not inside:
                s.rename(d)

    @rule(
        r=st.integers(0, 2),
        edits=st.lists(
            st.tuples(
                st.sampled_from(["write", "write", "delete", "move", "move"]),
                st.sampled_from(FILES + DIRS),
                st.sampled_from(MOVE_TARGETS),
            ),
            min_size=1,
            max_size=4,
        ),
    )
    def edit(self, r: int, edits: list[tuple[str, str, str]]) -> None:
        for kind, path, other in edits:
            if kind == "write" and path in FILES:
                self.write(r, path)
            elif kind == "delete":
                self.delete(r, path)
            elif kind == "move":
                self.move(r, path, other)

    @rule(r=st.integers(0, 2))
    def scan_replica(self, r: int) -> None:
        for root in self.roots(r):
            scan(str(root), allow_mass_delete=True)
        self.agree(r)

    # Syncs: push on set 0, pack + apply on set 1 -------------------------------
    @rule(
        a=st.integers(0, 2),
        b=st.integers(0, 2),
        sub=st.none() | st.sampled_from(SUBPATHS),
        via_knowledge=st.booleans(),
    )
    def sync(self, a: int, b: int, sub: str | None, via_knowledge: bool) -> None:
        (src1, src2), (dst1, dst2) = self.roots(a), self.roots(b)
        if src1 == dst1:
            return
        if sub is not None and not (src1 / sub).exists():
            sub = None
        try:
            pushed = push(str(src1), str(dst1), [str(src1 / sub)] if sub else [], allow_mass_delete=True)
        except SquirrelError as e:
            pushed_error: SquirrelError | None = e
        else:
            pushed_error = None
        self.packed += 1
        out = self.tmp / f"b{self.packed}.sqb"
        # Push scans the receiver before it plans; the packer must see the
        # same receiver (see test_pack_apply: an unscanned receiver defers).
        scan(str(dst2), allow_mass_delete=True)
        kw: dict[str, Any] = {"subpaths": [str(src2 / sub)] if sub else []}
        if via_knowledge:
            write_knowledge(str(dst2), str(self.tmp / "k.json"))  # as `sq knowledge`: scans first
            kw["base"] = str(self.tmp / "k.json")
        else:
            kw["for_replica"] = str(dst2)
        try:
            pack(str(src2), str(out), allow_mass_delete=True, **kw)
            applied = apply(str(out), str(dst2), allow_mass_delete=True)
        except SquirrelError as e:
            assert pushed_error is not None and type(e) is type(pushed_error), (e, pushed_error)
            self.agree(a, b)
            return
        assert pushed_error is None, pushed_error
        assert summary(applied) == summary(pushed)
        assert applied.incomplete == []
        if not applied.failed:  # a failed path stays unsynced, so a second apply may finish it
            again = apply(str(out), str(dst2))
            assert (again.created, again.updated, again.deleted, again.moved, again.conflicts) == (0, 0, 0, 0, [])
        self.agree(a, b)

    def agree(self, *replicas: int) -> None:
        """Both sets hold the same trees and index states (edits are the same
        by construction, so only scans and syncs can make them differ)."""
        for r in replicas:
            r1, r2 = self.roots(r)
            assert tree(r1) == tree(r2), f"{r1.name}: trees differ"
            assert index_state(r1) == index_state(r2), f"{r1.name}: index states differ"

    @precondition(lambda self: len(self.sets[0]) > 0 and not self.converged)
    @rule()
    def converge(self) -> None:
        """Syncs around the ring until quiet (once per example): both sets converge alike."""
        self.converged = True
        n = len(self.sets[0])
        for _ in range(4):
            before = [tree(r) for r in self.sets[1]]
            for i in range(n):
                self.sync(i, (i + 1) % n, None, via_knowledge=bool(i % 2))
            if [tree(r) for r in self.sets[1]] == before and len({str(sorted(t)) for t in before}) == 1:
                break
        trees = [tree(r) for r in self.sets[1]]
        assert all(t == trees[0] for t in trees), "set 1 did not converge"
        self.agree(*range(n))


BundleRoundTrip.TestCase.settings = settings(
    max_examples=int(os.environ.get("SQ_HYPOTHESIS_EXAMPLES", "50")),
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestBundleRoundTrip = BundleRoundTrip.TestCase
