"""The laptop carries only the changes: the real `sq sync` between drives that
never meet, through a carrier much smaller than the data.

A seeded history: three or four drive folders (the last one may join late,
from the carrier), a carrier whose budget is about a third of the data,
random creations, edits, moves and deletions on random drives, and visits
in random orders between them. Then whole rounds of visits until one is
quiet (nothing delivered, taken or carried).

After every visit the carrier holds no more content than its budget, and
every version that no user replaced or deleted on a drive holding it is still
on some drive. At the end every drive holds the same tree, the carrier holds
no content, and in the histories where every file has a single writer no
conflict was ever reported.

`make test` runs a few seeds (seed 12 empties and renames one folder on
several drives between visits). `SQ_CARRIER_SEEDS` runs others instead: a count (`SQ_CARRIER_SEEDS=40`
runs seeds 0 to 39) or seeds and ranges (`SQ_CARRIER_SEEDS=7,100-120`).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.carrier_tools import object_bytes
from tests.helpers import run_sq, tree

KIB = 1024
BUDGET = 40 * KIB  # the data grows to three or four times this
MAX_FILE = 12 * KIB  # every version must fit in the carrier on its own
INITIAL_FILES = 10
EPOCHS = 6
MAX_QUIET_ROUNDS = 12
MASS_DELETE_EXIT = 19
DIRS = ("", "photos/", "photos/2024/", "videos/", "docs/")


def seeds(default: list[int]) -> list[int]:
    """The seeds to run: SQ_CARRIER_SEEDS's, else `default`."""
    text = os.environ.get("SQ_CARRIER_SEEDS", "").strip()
    if not text:
        return default
    if text.isdigit():
        return list(range(int(text)))
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def is_quiet(doc: dict[str, Any]) -> bool:
    moved = doc["created"] + doc["updated"] + doc["deleted"] + doc["moved"]
    carried = doc["taken"] + doc["carried_in"]
    return not (moved or carried or doc["conflicts"] or doc["deferred"] or doc["left_behind"])


class History:
    """One seeded life of a vault: drives, a carrier, a user, a laptop."""

    def __init__(self, tmp: Path, seed: int, one_writer: bool) -> None:
        self.rng = random.Random(seed)
        self.one_writer = one_writer
        self.carrier = tmp / "laptop" / "carrier"
        self.drives = [tmp / f"drive{i}" for i in range(self.rng.choice((3, 4)))]
        self.active: list[int] = []
        self.versions: dict[bytes, int] = {}  # digest of a version's content -> its number
        self.superseded: set[int] = set()  # replaced or deleted by a user on a drive holding it
        self.owner: dict[str, int] = {}  # one-writer histories: path -> the only drive that writes it
        self.conflicts: list[tuple[str, dict[str, Any]]] = []
        self.visits = 0
        self.clock = time.time() - 2 * 86400  # every write gets its own mtime, 10 s after the last
        self.log: list[str] = []
        self.fresh = 0

    # The user ----------------------------------------------------------
    def content(self) -> bytes:
        number = len(self.versions)
        data = f"version {number}\n".encode() + self.rng.randbytes(self.rng.randint(KIB, MAX_FILE))
        self.versions[digest(data)] = number
        return data

    def write(self, path: Path) -> None:
        """A new version at path, with an mtime of its own: which version of a
        conflict stays at the path depends only on the seed, not on timing."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.content())
        self.clock += 10
        os.utime(path, (self.clock, self.clock))

    def version_at(self, path: Path) -> int:
        return self.versions[digest(path.read_bytes())]

    def new_name(self, d: int) -> str:
        self.fresh += 1
        if self.one_writer:
            return f"{self.rng.choice(DIRS)}w{d}-{self.fresh}.bin"
        return f"{self.rng.choice(DIRS)}n{self.rng.randrange(24)}.bin"  # a small pool: create/create happens

    def writable(self, d: int) -> list[str]:
        names = sorted(tree(self.drives[d], folders=False))
        if self.one_writer:
            names = [p for p in names if self.owner.get(p) == d]
        return names

    def user_edit(self, d: int) -> None:
        root = self.drives[d]
        files = self.writable(d)
        op = self.rng.choice(("create", "create", "edit", "edit", "move", "delete", "rmtree", "rename-dir"))
        if self.one_writer and op in ("rmtree", "rename-dir"):
            op = "move"
        if op in ("edit", "move", "delete") and not files:
            op = "create"
        if op == "create":
            rel = self.new_name(d)
            if (root / rel).exists():
                return
            self.write(root / rel)
            self.owner[rel] = d
        elif op == "edit":
            rel = self.rng.choice(files)
            self.superseded.add(self.version_at(root / rel))
            self.write(root / rel)
        elif op == "move":
            rel, to = self.rng.choice(files), self.new_name(d)
            if (root / to).exists():
                return
            (root / to).parent.mkdir(parents=True, exist_ok=True)
            os.rename(root / rel, root / to)
            self.owner[to] = d
        elif op == "delete":
            rel = self.rng.choice(files)
            self.superseded.add(self.version_at(root / rel))
            (root / rel).unlink()
        else:
            dirs = sorted(p.rstrip("/") for p in tree(root) if p.endswith("/"))
            if not dirs:
                return
            rel = self.rng.choice(dirs)
            if op == "rmtree":
                self.superseded |= {self.version_at(p) for p in (root / rel).rglob("*") if p.is_file()}
                shutil.rmtree(root / rel)
            else:
                to = f"album{self.fresh}"
                self.fresh += 1
                os.rename(root / rel, root / to)
        self.log.append(f"user on drive{d}: {op} {rel}")

    # The laptop ----------------------------------------------------------
    def visit(self, d: int) -> dict[str, Any]:
        args: list[str | Path] = ["sync", self.drives[d], "--json"]
        if self.visits == 0:
            args += ["--max-size", str(BUDGET)]
        if self.rng.random() < 0.5:
            args += ["--carrier", self.carrier]  # otherwise SQ_CARRIER names it
        self.visits += 1
        proc = run_sq(*args)
        if proc.code == MASS_DELETE_EXIT:
            # The user did delete (or move) most of this drive's files: say so.
            self.log.append(f"visit drive{d}: {proc.stderr.decode().strip()}")
            proc = run_sq(*args, "--allow-mass-delete")
        assert proc.code == 0, (proc.code, proc.stderr.decode(), self.log)
        doc: dict[str, Any] = json.loads(proc.stdout)
        self.log.append(
            f"visit drive{d}: +{doc['created']} ~{doc['updated']} -{doc['deleted']} took {doc['taken']}"
            f" carried {doc['carried_in_bytes']} holds {doc['carrier_bytes']} conflicts {len(doc['conflicts'])}"
            f" moved {doc['moved']} deferred {[x['path'] for x in doc['deferred']]}"
            f" left behind {[x['path'] for x in doc['left_behind']]}"
        )
        assert doc["drive"] == f"drive{d}"
        assert doc["budget"] == BUDGET
        held = object_bytes(self.carrier)
        assert held <= BUDGET, f"the carrier holds {held} bytes, over its budget of {BUDGET}: {self.log}"
        assert doc["carrier_bytes"] == held
        self.conflicts += [(f"drive{d}", c) for c in doc["conflicts"]]
        self.check_nothing_lost()
        return doc

    def check_nothing_lost(self) -> None:
        present = {digest(data) for d in self.active for data in tree(self.drives[d], folders=False).values()}
        lost = sorted(n for dg, n in self.versions.items() if n not in self.superseded and dg not in present)
        assert not lost, f"versions {lost} are on no drive, and no user replaced them: {self.log}"

    def init(self, d: int, *join: str | Path) -> None:
        args: list[str | Path] = ["init", self.drives[d], "--name", f"drive{d}"]
        if join:
            args += ["--join", *join]
        proc = run_sq(*args)
        assert proc.code == 0, proc.stderr.decode()
        self.active.append(d)

    # The story -------------------------------------------------------------
    def run(self) -> None:
        first = self.drives[0]
        for _ in range(INITIAL_FILES):
            owner = self.rng.randrange(len(self.drives))
            rel = self.new_name(owner)
            if rel in self.owner:
                continue
            self.write(first / rel)
            self.owner[rel] = owner
        self.init(0)
        late = len(self.drives) - 1 if len(self.drives) == 4 else None
        for d in range(1, len(self.drives)):
            self.drives[d].mkdir()
            if d != late:
                self.init(d, first)
        for epoch in range(EPOCHS):
            if epoch == 2 and late is not None:
                self.init(late, self.carrier)  # joins from the carrier, empty
            for _ in range(self.rng.randint(1, 4)):
                self.user_edit(self.rng.choice(self.active))
            for _ in range(self.rng.randint(1, len(self.active) + 1)):
                self.visit(self.rng.choice(self.active))
        for _ in range(MAX_QUIET_ROUNDS):
            order = list(self.active)
            self.rng.shuffle(order)
            docs = [self.visit(d) for d in order]
            if all(is_quiet(doc) for doc in docs):
                break
        else:
            pytest.fail(f"no quiet round after {MAX_QUIET_ROUNDS} rounds of visits: {self.log}")

    def check_end(self) -> None:
        trees = [tree(self.drives[d]) for d in self.active]
        for d, t in zip(self.active[1:], trees[1:], strict=True):
            assert t == trees[0], f"drive{d} differs from drive0: {sorted(set(t) ^ set(trees[0]))}"
        assert object_bytes(self.carrier) == 0, "every drive has everything, yet the carrier still holds content"
        proc = run_sq("carrier", "status", "--json")
        assert proc.code == 0, proc.stderr.decode()
        status = json.loads(proc.stdout)
        assert status["bytes"] == 0 and status["budget"] == BUDGET
        (vault,) = status["vaults"]
        assert sorted(x["name"] for x in vault["drives"]) == sorted(f"drive{d}" for d in self.active)
        assert all(x["waiting"] == 0 and x["missing"] == 0 for x in vault["drives"]), vault["drives"]


@pytest.fixture
def laptop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    carrier = tmp_path / "laptop" / "carrier"
    monkeypatch.setenv("SQ_CARRIER", str(carrier))
    return carrier


@pytest.mark.parametrize("seed", seeds([0, 2, 7, 12]))
def test_random_visits_converge_within_the_budget(tmp_path: Path, laptop: Path, seed: int) -> None:
    history = History(tmp_path, seed, one_writer=False)
    history.run()
    history.check_end()
    assert not (tmp_path / "xdg-data" / "squirrel").exists(), "a visit used the default carrier, not SQ_CARRIER"


@pytest.mark.parametrize("seed", seeds([5]))
def test_one_writer_per_file_never_conflicts(tmp_path: Path, laptop: Path, seed: int) -> None:
    history = History(tmp_path, seed, one_writer=True)
    history.run()
    history.check_end()
    assert history.conflicts == [], f"false conflicts: {history.conflicts}: {history.log}"
    final = tree(history.drives[0])
    assert not [p for p in final if ".sq-conflict-" in p]
    for d in history.active:
        proc = run_sq("conflicts", history.drives[d], "--json")
        assert proc.code == 0 and json.loads(proc.stdout) == []
