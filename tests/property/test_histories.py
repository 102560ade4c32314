"""Random multi-replica histories must converge, lose no update and report
no false conflict.

Each example builds 2-4 real replicas (real directories, real LMDB) of one
vault, applies random user edits (create, edit, delete, move, directory
create/delete, file<->directory) on random replicas, interleaved with random
one-way pushes, some of them partial (a SUBPATH), and pushes killed at a
random I/O point (the intent log must undo what they left half done). Every
written version has unique content, so a version is identified by its bytes.

- No lost update: a version that no user replaced or deleted on a replica
  holding it must still exist in some replica's tree, after every push.
- Convergence: after full pushes around the ring, all trees are identical.
- No false conflict: in histories where each file has one writer, no push
  may report a conflict.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from squirrel.porcelain.init import init
from squirrel.porcelain.push import push
from tests.fault_tools import run_forked
from tests.helpers import tree

FILES = ["a", "b", "d/x", "d/y", "d/e/z", "f/w", "d", "f"]
DIRS = ["d", "d/e", "f"]
SUBPATHS = ["d", "d/e", "f", "a"]


class Histories(RuleBasedStateMachine):
    single_writer = False

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="sq-hist-"))
        self.replicas: list[Path] = []
        self.required: set[bytes] = set()
        self.counter = 0
        self.conflicts = 0
        self.log: list[str] = []

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize(n=st.integers(min_value=2, max_value=4))
    def make_replicas(self, n: int) -> None:
        for i in range(n):
            p = self.tmp / f"r{i}"
            p.mkdir()
            init(str(p), name=f"r{i}", join=str(self.replicas[0]) if self.replicas else None)
            self.replicas.append(p)

    def _writer_ok(self, r: int, path: str) -> bool:
        """With one writer per file, a path and its parent directories must
        never be written as files by two replicas, so `d` and `f` are left out."""
        if not self.single_writer:
            return True
        return path not in DIRS and FILES.index(path) % len(self.replicas) == r

    # User edits -----------------------------------------------------------
    @rule(r=st.integers(0, 3), path=st.sampled_from(FILES))
    def write(self, r: int, path: str) -> None:
        r %= len(self.replicas)
        if not self._writer_ok(r, path):
            return
        root = self.replicas[r]
        target = root / path
        for parent in list(Path(path).parents)[:-1][::-1]:
            p = root / parent
            if p.exists() and not p.is_dir():
                return
        if target.is_dir():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            self.required.discard(target.read_bytes())
        self.counter += 1
        data = f"version {self.counter} of {path} on r{r}\n".encode()
        target.write_bytes(data)
        self.required.add(data)

    @rule(r=st.integers(0, 3), path=st.sampled_from(FILES + DIRS))
    def delete(self, r: int, path: str) -> None:
        r %= len(self.replicas)
        if self.single_writer:
            return
        target = self.replicas[r] / path
        if target.is_dir():
            if not (target / ".squirrel").exists():
                self.required -= set(tree(target, folders=False).values())
            shutil.rmtree(target)
        elif target.exists():
            self.required.discard(target.read_bytes())
            target.unlink()

    @rule(r=st.integers(0, 3), src=st.sampled_from(FILES), dst=st.sampled_from(FILES))
    def move(self, r: int, src: str, dst: str) -> None:
        r %= len(self.replicas)
        if self.single_writer:
            return
        root = self.replicas[r]
        s, d = root / src, root / dst
        if s.is_file() and not d.exists() and d.parent.is_dir():
            s.rename(d)

    # Syncs ----------------------------------------------------------------------
    @rule(a=st.integers(0, 3), b=st.integers(0, 3), sub=st.none() | st.sampled_from(SUBPATHS))
    def push(self, a: int, b: int, sub: str | None) -> None:
        a %= len(self.replicas)
        b %= len(self.replicas)
        if a == b:
            return
        if sub is not None and not (self.replicas[a] / sub).exists():
            sub = None
        rep = push(str(self.replicas[a]), str(self.replicas[b]), [str(self.replicas[a] / sub)] if sub else [])
        assert rep.failed == [], rep.failed
        self.conflicts += len(rep.conflicts)
        if self.single_writer:
            assert rep.conflicts == [], f"false conflict: {rep.conflicts}"

    @rule(a=st.integers(0, 3), b=st.integers(0, 3), n=st.integers(1, 80))
    def killed_push(self, a: int, b: int, n: int) -> None:
        """A push killed at its n-th I/O point (the real entry point, forked).
        Whatever it left, the next command undoes or finishes it: the
        invariants and the final convergence must hold all the same."""
        a %= len(self.replicas)
        b %= len(self.replicas)
        if a == b:
            return
        out = run_forked(["push", self.replicas[a], self.replicas[b], "--json"], f"any:{n}")
        assert out.killed or out.code == 0, (out.code, out.stderr.decode())
        if out.code == 0:
            conflicts = json.loads(out.stdout)["conflicts"]
            self.conflicts += len(conflicts)
            if self.single_writer:
                assert conflicts == [], f"false conflict: {conflicts}"

    @invariant()
    def no_lost_update(self) -> None:
        everywhere: set[bytes] = set()
        for r in self.replicas:
            everywhere |= set(tree(r, folders=False).values())
        lost = self.required - everywhere
        assert not lost, f"lost versions: {sorted(lost)}"

    def teardown_checks(self) -> None:
        n = len(self.replicas)
        for _ in range(6):
            changed = 0
            for i in range(n):
                rep = push(str(self.replicas[i]), str(self.replicas[(i + 1) % n]))
                assert rep.failed == []
                changed += rep.created + rep.updated + rep.deleted + len(rep.conflicts)
                if self.single_writer:
                    assert rep.conflicts == [], f"false conflict: {rep.conflicts}"
            if not changed:
                break
        trees = [tree(r) for r in self.replicas]
        for i in range(1, n):
            assert trees[i] == trees[0], f"r{i} differs from r0"
        self.no_lost_update()

    @precondition(lambda self: len(self.replicas) > 0)
    @rule()
    def converge(self) -> None:
        self.teardown_checks()


class SingleWriterHistories(Histories):
    single_writer = True


SETTINGS = settings(
    max_examples=int(os.environ.get("SQ_HYPOTHESIS_EXAMPLES", "60")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

TestHistories = Histories.TestCase
TestHistories.settings = SETTINGS
TestSingleWriter = SingleWriterHistories.TestCase
TestSingleWriter.settings = SETTINGS
