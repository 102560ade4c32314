"""`sq carrier at-risk` against a brute-force count from the drives' own
indexes, in random carrier histories.

Each example is a vault of three real drives (one more may join later from
the carrier) and a carrier whose budget holds only a few files. Random steps:
files created, copied (the same content at a second path), edited, moved and
deleted on random drives; visits, some of them dry runs; a known drive
forgotten; a forgotten drive visited again. After every step, for N = 1, 2
and 3, the versions the carrier reports on fewer than N drives must be
exactly those the brute force finds, with the same drives and the same
"in the carrier":

- the current versions are the files of the carrier's index;
- the drives that hold one are the known drives (visited, and not forgotten
  since) whose own index, as it was at the end of their last visit, held a
  file with that content at any path;
- the carrier holds a copy when `objects/XX/ID` exists in its folder, or
  the index of one of its packs (`objects/packs/`) names it.

It also checks that the walk `next` and `status` use to count what each
drive lacks finds exactly what a visit's walk finds.

The test keeps its own model of which drives are known and what each held,
taken from the drives themselves, never from the carrier's records.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from squirrel.plumbing.carrier import Carrier
from squirrel.plumbing.replica import Replica
from squirrel.porcelain.at_risk import at_risk
from squirrel.porcelain.carrier import carrier_status
from squirrel.porcelain.forget import forget
from squirrel.porcelain.init import init
from squirrel.porcelain.visit import visit
from tests.carrier_tools import carrier_snapshot, stored_objects
from tests.helpers import make_tree, tree

BUDGET = 5000  # two or three files
NAMES = ["a.jpg", "b.jpg", "p/c.jpg", "p/d.jpg", "p/q/e.jpg", "f.jpg"]

Expected = dict[tuple[bytes, bytes], tuple[tuple[str, ...], bool]]


class CarrierHistories(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="sq-at-risk-"))
        self.carrier = self.tmp / "carrier"
        self.drives: list[Path] = []
        self.known: set[int] = set()  # visited, and not forgotten since
        self.held: dict[int, set[bytes]] = {}  # what each drive's index held at the end of its last visit
        self.counter = 0

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def content(self, size: int) -> bytes:
        self.counter += 1
        return f"version {self.counter}\n".encode().ljust(size, b".")

    @initialize(sizes=st.lists(st.integers(100, 2500), min_size=1, max_size=4))
    def three_drives(self, sizes: list[int]) -> None:
        first = self.tmp / "d0"
        make_tree(first, {NAMES[i]: self.content(n) for i, n in enumerate(sizes)})
        init(str(first), name="d0")
        self.drives.append(first)
        for i in (1, 2):
            d = self.tmp / f"d{i}"
            d.mkdir()
            init(str(d), name=f"d{i}", join=str(first))
            self.drives.append(d)

    # The user ---------------------------------------------------------------------
    @rule(d=st.integers(0, 3), name=st.sampled_from(NAMES), size=st.integers(100, 2500))
    def write(self, d: int, name: str, size: int) -> None:
        root = self.drives[d % len(self.drives)]
        if (root / name).is_dir() or any((root / p).is_file() for p in Path(name).parents if str(p) != "."):
            return
        make_tree(root, {name: self.content(size)}, old=False)

    @rule(d=st.integers(0, 3), src=st.sampled_from(NAMES), dst=st.sampled_from(NAMES), keep=st.booleans())
    def copy_or_move(self, d: int, src: str, dst: str, keep: bool) -> None:
        root = self.drives[d % len(self.drives)]
        s, t = root / src, root / dst
        if not s.is_file() or t.exists() or not t.parent.is_dir():
            return
        if keep:
            shutil.copy2(s, t)  # the same content at a second path
        else:
            s.rename(t)

    @rule(d=st.integers(0, 3), name=st.sampled_from(NAMES))
    def delete(self, d: int, name: str) -> None:
        target = self.drives[d % len(self.drives)] / name
        if target.is_file():
            target.unlink()

    # The laptop ---------------------------------------------------------------------
    @rule(d=st.integers(0, 3))
    def visit(self, d: int) -> None:
        d %= len(self.drives)
        visit(str(self.drives[d]), str(self.carrier), max_size=BUDGET, allow_mass_delete=True)
        self.known.add(d)
        with Replica.open(str(self.drives[d]), write=False) as rep:
            self.held[d] = {e.oid for _, e in rep.index.walk(b"") if e.is_file}

    @precondition(lambda self: self.carrier.exists())
    @rule(d=st.integers(0, 3))
    def dry_run(self, d: int) -> None:
        before = carrier_snapshot(self.carrier)
        visit(str(self.drives[d % len(self.drives)]), str(self.carrier), dry_run=True, allow_mass_delete=True)
        assert carrier_snapshot(self.carrier) == before, "a dry run changed the carrier"

    @precondition(lambda self: bool(self.known))
    @rule(pick=st.integers(0, 3))
    def forget(self, pick: int) -> None:
        d = sorted(self.known)[pick % len(self.known)]
        with Replica.open(str(self.drives[d]), write=False) as rep:
            drive_id = rep.id
        report = forget(str(self.carrier), drive_id)
        assert report.drive.name == f"d{d}" and not report.already
        self.known.discard(d)

    @precondition(lambda self: self.carrier.exists() and len(self.drives) < 4)
    @rule()
    def new_drive(self) -> None:
        d = self.tmp / f"d{len(self.drives)}"
        d.mkdir()
        init(str(d), name=d.name, join=str(self.carrier))
        self.drives.append(d)

    # The check ----------------------------------------------------------------------
    def vault_dir(self) -> Path:
        (vault,) = (self.carrier / "vaults").iterdir()
        return vault

    def brute_force(self, copies: int) -> Expected:
        vault = self.vault_dir()
        with Replica.open(str(vault), write=False) as rep:
            current = [(p, e.oid) for p, e in rep.index.walk(b"") if e.is_file]
        out: Expected = {}
        for path, oid in current:
            drives = tuple(sorted(f"d{d}" for d in self.known if oid in self.held[d]))
            if len(drives) < copies:
                stored = oid.hex() in stored_objects(self.carrier)
                out[(path, oid)] = (drives, stored)
        return out

    @invariant()
    def at_risk_is_the_brute_force_count(self) -> None:
        if not self.carrier.exists():
            return
        for copies in (1, 2, 3):
            report = at_risk(str(self.carrier), copies)
            got = {(h.path, h.oid): (tuple(sorted(report.drive_names(h))), h.in_carrier) for h in report.at_risk}
            want = self.brute_force(copies)
            differ = {k: (got.get(k), want.get(k)) for k in set(got) | set(want) if got.get(k) != want.get(k)}
            assert not differ, f"copies={copies}: (reported, brute force) differ: {differ}"
            assert report.known_drives == len(self.known)
            assert len(got) == len(report.at_risk), "a version listed twice"
        # What each drive lacks is found by a walk that skips the subtrees
        # the drive knows and does not decode entries: it must find every
        # file version of the carrier the drive's sync time does not cover.
        carrier = Carrier(str(self.carrier))
        v = carrier.open_vault(self.vault_dir().name)
        try:
            for d in v.drives():
                want = {
                    (p, e.oid, e.size) for p, e in v.index.walk() if e.is_file and not e.m <= d.knowledge.sync_time(p)
                }
                assert set(v.lacking_files(d)) == want, f"what {d.name} lacks"
        finally:
            v.close()
        (vault,) = carrier_status(str(self.carrier))["vaults"]
        two = self.brute_force(2)
        assert vault["one_drive"] == sum(1 for drives, _ in two.values() if len(drives) == 1)
        assert vault["no_drive"] == sum(1 for drives, _ in two.values() if not drives)
        assert sorted(d["name"] for d in vault["drives"]) == sorted(f"d{d}" for d in self.known)

    def teardown_checks(self) -> None:
        """Every drive visited in rounds until nothing moves: nothing is at
        risk (with three or more drives known), and the carrier is empty."""
        for _ in range(8):
            for d in range(len(self.drives)):
                self.visit(d)
            trees = [tree(d) for d in self.drives]
            if all(t == trees[0] for t in trees) and not stored_objects(self.carrier):
                break
        else:
            raise AssertionError("the drives did not converge, or the carrier did not empty, in 8 rounds")
        self.at_risk_is_the_brute_force_count()
        assert at_risk(str(self.carrier), 3).at_risk == [], "every drive holds everything"

    @precondition(lambda self: len(self.drives) > 0)
    @rule()
    def converge(self) -> None:
        self.teardown_checks()


TestCarrierHistories = CarrierHistories.TestCase
TestCarrierHistories.settings = settings(
    max_examples=int(os.environ.get("SQ_HYPOTHESIS_EXAMPLES", "25")),
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
