"""A reference model of exact Tra, in memory, for checking what `sq` reports.

This module re-states the rules of /work/shared/spec/design.md (vector time
pairs, Cox & Josephson 2005) with nothing approximated: every replica keeps,
for every path, either its version or the exact time of its deletion. It
imports nothing from `squirrel` (not the planner, not `tra`, not the
executor, not the index), so that it can serve as an independent oracle: a
test runs the same history through real replicas and through this model and
compares the conflicts each reports and the trees each ends with.

Vocabulary (paths are `str`, `/`-separated, relative; `""` is the root):

- `VT` is a vector time: replica -> counter, `<=` element-wise, `|` join.
  A creation time is a VT too; `c.seen_by(s)` asks whether some creation
  event of the lineage is in `s`; `c.union(d)` keeps the earliest counter
  per replica (a file's lineages; a folder's join, see choice 3).
- Per replica and path, one state: `File(oid, mtime_ns, m, c)`,
  `Dir(m_self, c)` or `Absent(n)`, where `n` is the exact time of the
  deletion (the empty VT means "never existed here").
- Sync times are stored per path with inheritance (a path without a stored
  value takes its nearest ancestor's); a replica's own component is always
  its current counter.
- The effective modification time: a file's `m`; an absent path's `n`; a
  directory's `m_self` joined with everything below it (files' `m`,
  directories' `m_self`, and the `n` of every absent path below it, at any
  depth). `subtree` is the same join for any path, and is what a sync uses
  to skip a subtree the receiver already knows.

Scan (`Replica.scan`, run when the real commands scan): if anything changed
(content, existence, kind), ONE new event e for the whole scan: a new file
is `File(m=e, c=e)`, a new directory `Dir(m_self=e, c=e)`, a modified file
gets `m=e` and keeps `c`, a path that disappeared (with everything present
under it) becomes `Absent(e)`; absent paths below keep their own times; a
kind change is a deletion plus an addition. A file whose content did not
change only has its mtime refreshed.

One-way sync A -> B of a subtree (`sync`): one settlement event of B, taken
the first time the sync needs one and shared by every settlement. The rows
are those of the spec's table (and the task's statement of them), decided
per path; see the methods of `_Sync` for each.

Choices where the spec is silent (the honest, exact version; where the
implementation's planner differs on purpose, it over-approximates):

1. Every path is decided on its own states; directories only add structure.
   A subtree is skipped when the receiver's sync time covers the sender's
   `subtree` time (exact: sync times never decrease downwards). Below a path
   that is a file or absent on the sender, its absent paths are still
   visited when the receiver does not know them, so deletion times under a
   deleted directory (or under a file that replaced a directory) travel
   exactly; the both-absent row merges them.
2. A directory B makes (A's directory against B's absence, or A's directory
   replacing B's file) is `Dir(m_self = A's m_self, c = A's c)`: it starts
   from A's directory version, not from B's parent's time.
3. Two directories: B's `m_self` joins A's and B's directory holds both
   lineages (two folders made independently under one name are one folder
   of two lineages: `c` is the join of both, the latest creation of each
   replica, since the only question asked of a folder's `c` is whether a
   replica saw every lineage it holds, and one replica may have made,
   deleted and made again a folder of one name); nothing else of A's subtree is
   joined into B's directory (B's subtree time is then exactly what B holds
   and knows the deletion of).
4. A directory B holds against A's absence: B's children are synced against
   A's absent ones; afterwards B's directory goes (becoming `Absent(n_A)`)
   when nothing is left in it, A saw every lineage it holds (`c_B <= s_A`:
   A deleted all of it, not just a folder of the same name), and it is not
   newer than A's deletion: newer is kept or emptied knowing the deletion
   (`n_A <= s_B`) and holding a time A does not know (`not subtree_B <=
   s_A`: B's own deletion inside, say). A folder B kept knowing the
   deletion is visited even so when A knows all it holds: one that a sync
   emptied then goes. Kept, it would carry no time newer than what the
   replicas that know the deletion know, they would skip it, and the
   replicas would not converge. A folder B keeps does not take the time of
   A's deletion of the path: it absorbed nothing of what A deleted.
5. A's directory against B's absence: B makes the directory when something
   was created inside it, or B did not see every lineage of it (`not c_A
   <= s_B`), or A's directory was made knowing B's deletion (`n_B <= s_A`);
   otherwise B stays without it (B's deletion is concurrent only with
   deletions inside: no conflict).
6. A partial sync of a subtree T whose directories above T are missing on
   B makes them (as in 2) only when B ends with something at T; their own
   sync times are not raised (they are outside T), so until a sync covers
   them their `m_self` is the one place where `m <= s` does not hold. When B has a file at a
   directory above T, the sync starts at the highest such file (it must be
   settled before anything can be put below it).
7. A's file replacing B's whole directory (B's directory time is known to
   A): every path B had below becomes absent with A's deletion time for it.
8. A's file against B's directory that A does not fully know: B's
   directory is first synced against A's absent paths below it. Left
   empty, of lineages A saw (`c_B <= s_A`: what B did there that A does
   not know was only deletions), it goes and A's file takes the path, with
   no conflict, as choice 4 drops such a folder against A's absence.
   Otherwise it is a file/dir conflict where B keeps its directory, even
   empty: A's file becomes a conflict copy (named from A's object id, a
   new lineage m = c = e_B, unless B already holds that content under that
   name).
   Where B's file loses to A's directory, B's file moves to a conflict copy
   (named from B's object id, new lineage) and B takes A's directory.
9. Conflict copies in update/update and create/create: the winner (later
   mtime in 2-second ticks, then the larger object id) stays at the path
   with m = e_B and the union of both lineages; the loser is written as a
   copy, a new lineage m = c = e_B, named `stem.sq-conflict-<8 hex>.ext`
   (16, then 64 hex digits when B holds something else under that name).
   When B already holds the loser's content under that name, that file is
   left as it is.
10. Identical content on both sides: m = m_A | m_B, c = union; B's mtime
    stays.
11. A's file of a lineage B never saw, against B's deletion A does not
    know: B takes it with no conflict, with m = m_A | n_B. B's deletion
    stays in the time of what B now holds, so that a replica still holding
    the deleted version (and knowing A's file) sees B's path as newer;
    with m_A alone, each would skip the other's version for ever.

Nothing in the model fails: every path finishes, so after a sync of T,
`s_B(p) := s_B(p) | s_A(p)` for every path under T.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

FAT_TICK_NS = 2_000_000_000
CONFLICT_TAG = ".sq-conflict-"

UPDATE_UPDATE = "update/update"
CREATE_CREATE = "create/create"
DELETE_UPDATE = "delete/update"
UPDATE_DELETE = "update/delete"
FILE_DIR = "file/dir"


class VT:
    """A vector time (also used for creation times). Immutable."""

    __slots__ = ("v",)

    def __init__(self, v: Mapping[str, int] | None = None) -> None:
        self.v: dict[str, int] = {r: n for r, n in (v or {}).items() if n}

    def __le__(self, o: VT) -> bool:
        return all(n <= o.v.get(r, 0) for r, n in self.v.items())

    def __or__(self, o: VT) -> VT:
        out = dict(self.v)
        for r, n in o.v.items():
            out[r] = max(n, out.get(r, 0))
        return VT(out)

    def __eq__(self, o: object) -> bool:
        return isinstance(o, VT) and self.v == o.v

    def __hash__(self) -> int:
        return hash(frozenset(self.v.items()))

    def __bool__(self) -> bool:
        return bool(self.v)

    def __repr__(self) -> str:
        return "{" + ",".join(f"{r}:{n}" for r, n in sorted(self.v.items())) + "}"

    def seen_by(self, s: VT) -> bool:
        """As a creation time: is some creation event of the lineage in s?"""
        return any(n <= s.v.get(r, 0) for r, n in self.v.items())

    def union(self, o: VT) -> VT:
        """As creation times: the lineage holding both (earliest per replica)."""
        out = dict(self.v)
        for r, n in o.v.items():
            out[r] = min(n, out.get(r, n))
        return VT(out)

    def without(self, r: str) -> VT:
        return VT({k: n for k, n in self.v.items() if k != r})


EMPTY = VT()


@dataclass(frozen=True)
class File:
    oid: str  # hex
    mtime_ns: int
    m: VT
    c: VT


@dataclass(frozen=True)
class Dir:
    m_self: VT
    c: VT


@dataclass(frozen=True)
class Absent:
    n: VT  # the time of the deletion; EMPTY: never existed here


Node = File | Dir | Absent
NEVER = Absent(EMPTY)


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def parent_of(p: str) -> str:
    return p.rpartition("/")[0]


def ancestors(p: str) -> Iterator[str]:
    """Proper ancestors, nearest first, ending with the root."""
    while p:
        p = parent_of(p)
        yield p


def is_under(p: str, top: str) -> bool:
    return not top or p == top or p.startswith(top + "/")


def conflict_name(name: str, short: str) -> str:
    """`IMG.jpg` -> `IMG.sq-conflict-<short>.jpg`; `a` -> `a.sq-conflict-<short>`."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name + CONFLICT_TAG + short
    return stem + CONFLICT_TAG + short + "." + ext


def winner_is_a(a: File, b: File) -> bool:
    """The later mtime (in 2-second ticks) stays at the path; ties: larger oid."""
    return (a.mtime_ns // FAT_TICK_NS, a.oid) > (b.mtime_ns // FAT_TICK_NS, b.oid)


# What a scan sees on disk: path -> ("dir", "", 0) or ("file", oid hex, mtime_ns).
DiskTree = Mapping[str, tuple[str, str, int]]


class Replica:
    def __init__(self, name: str) -> None:
        self.name = name
        self.counter = 0
        self.nodes: dict[str, Node] = {"": Dir(EMPTY, EMPTY)}  # present, or absent with a time
        self.stored: dict[str, VT] = {"": EMPTY}  # sync times, without our own component

    # States and times ------------------------------------------------------
    def state(self, p: str) -> Node:
        return self.nodes.get(p, NEVER)

    def put(self, p: str, node: Node) -> None:
        if node == NEVER:
            self.nodes.pop(p, None)
        else:
            self.nodes[p] = node

    def s(self, p: str) -> VT:
        """The effective sync time of p (nearest stored, plus our counter)."""
        q = p
        while q not in self.stored:
            q = parent_of(q)
        return self.stored[q] | VT({self.name: self.counter})

    def below(self, p: str) -> Iterator[tuple[str, Node]]:
        """Every recorded path strictly below p."""
        prefix = p + "/" if p else ""
        for q, node in self.nodes.items():
            if q and q.startswith(prefix) and q != p:
                yield q, node

    def child_names(self, p: str) -> set[str]:
        prefix = p + "/" if p else ""
        return {q[len(prefix) :] for q, _ in self.below(p) if "/" not in q[len(prefix) :]}

    def present_below(self, p: str) -> list[str]:
        return [q for q, node in self.below(p) if not isinstance(node, Absent)]

    @staticmethod
    def own(node: Node) -> VT:
        if isinstance(node, File):
            return node.m
        if isinstance(node, Dir):
            return node.m_self
        return node.n

    def subtree(self, p: str) -> VT:
        """Join of p's own time and of every recorded path below it."""
        t = self.own(self.state(p))
        for _, node in self.below(p):
            t = t | self.own(node)
        return t

    def m(self, p: str) -> VT:
        """The effective modification time of p."""
        node = self.state(p)
        return self.subtree(p) if isinstance(node, Dir) else self.own(node)

    def event(self) -> VT:
        self.counter += 1
        return VT({self.name: self.counter})

    def tree(self) -> dict[str, str | None]:
        """What the replica holds: path -> oid (None for a directory), root excluded."""
        return {
            p: (n.oid if isinstance(n, File) else None)
            for p, n in self.nodes.items()
            if p and not isinstance(n, Absent)
        }

    def snapshot(self) -> tuple[dict[str, Node], dict[str, VT], int]:
        """Everything the replica records (to tell whether a sync changed anything)."""
        return dict(self.nodes), dict(self.stored), self.counter

    # Scan --------------------------------------------------------------------
    def scan(self, disk: DiskTree) -> bool:
        """Record what changed on disk; returns True when an event was taken."""
        gone: list[str] = []
        added: list[tuple[str, tuple[str, str, int]]] = []
        modified: list[tuple[str, File, tuple[str, str, int]]] = []
        for p, node in list(self.nodes.items()):
            if not p or isinstance(node, Absent):
                continue
            d = disk.get(p)
            kind = "file" if isinstance(node, File) else "dir"
            if d is None or d[0] != kind:
                gone.append(p)
            elif isinstance(node, File) and d[1] != node.oid:
                modified.append((p, node, d))
            elif isinstance(node, File) and d[2] != node.mtime_ns:
                self.nodes[p] = File(node.oid, d[2], node.m, node.c)  # touched: not a version
        for p, d in disk.items():
            node = self.state(p)
            if isinstance(node, Absent) or p in gone:
                added.append((p, d))
        if not (gone or added or modified):
            return False
        e = self.event()
        for p in gone:
            self.nodes[p] = Absent(e)
        for p, d in added:
            self.nodes[p] = File(d[1], d[2], e, e) if d[0] == "file" else Dir(e, e)
        for p, old, d in modified:
            self.nodes[p] = File(d[1], d[2], e, old.c)
        return True


class _Sync:
    """One one-way sync A -> B. `conflicts` lists (path, kind) as reported."""

    def __init__(self, a: Replica, b: Replica) -> None:
        self.A = a
        self.B = b
        self.ev: VT | None = None
        self.conflicts: list[tuple[str, str]] = []

    def e(self) -> VT:
        """B's settlement event for this sync, taken the first time it is needed."""
        if self.ev is None:
            self.ev = self.B.event()
        return self.ev

    def kids(self, p: str) -> list[str]:
        return sorted(join(p, n) for n in self.A.child_names(p) | self.B.child_names(p))

    def visit_below(self, p: str) -> None:
        for q in self.kids(p):
            self.visit(q)

    def visit(self, p: str) -> None:
        A, B = self.A, self.B
        a, b = A.state(p), B.state(p)
        s_a, s_b = A.s(p), B.s(p)
        if A.subtree(p) <= s_b:
            return  # B knows everything A has at and below p (both absent included)
        if isinstance(a, Dir):
            self.a_dir(p, a, b, s_a, s_b)
        elif A.m(p) <= s_b and not (isinstance(a, Absent) and isinstance(b, Dir) and B.subtree(p) <= s_a):
            # B knows A's version at p; only deletions below are new. (A
            # folder B kept knowing A's deletion, holding nothing A does not
            # know, is not newer than that deletion: choice 4 decides it.)
            self.visit_below(p)
        elif isinstance(a, Absent):
            self.a_absent(p, a, b, s_a, s_b)
        else:
            self.a_file(p, a, b, s_a, s_b)

    # A has nothing at p (A's deletion, n_a, is not known to B) -----------------
    def a_absent(self, p: str, a: Absent, b: Node, s_a: VT, s_b: VT) -> None:
        B = self.B
        if isinstance(b, Absent):
            B.put(p, Absent(a.n if b.n <= s_a else b.n | a.n))
            self.visit_below(p)
        elif isinstance(b, File):
            if b.m <= s_a:
                B.put(p, Absent(a.n))  # A deleted the version B has: delete it
            elif not b.c.seen_by(s_a):
                pass  # A never saw B's lineage: B keeps its file
            elif a.n <= s_b:
                pass  # B's version was made knowing A's deletion
            else:
                self.conflicts.append((p, DELETE_UPDATE))
                B.put(p, File(b.oid, b.mtime_ns, self.e(), b.c))
            self.visit_below(p)
        else:
            self.visit_below(p)
            # (B knows A's deletion only where A knows all B holds here:
            # `visit` leaves a newer folder alone.)
            if not B.present_below(p) and b.c <= s_a:
                B.put(p, Absent(a.n))

    # A has a file at p that B does not know ------------------------------------
    def a_file(self, p: str, a: File, b: Node, s_a: VT, s_b: VT) -> None:
        B = self.B
        if isinstance(b, Absent):
            if b.n <= s_a:
                B.put(p, a)  # made knowing B's deletion
            elif not a.c.seen_by(s_b):
                # A new lineage for B: no conflict, but B's deletion, which A
                # does not know, stays in the time of what B now holds
                # (choice 11).
                B.put(p, File(a.oid, a.mtime_ns, a.m | b.n, a.c))
            else:
                self.conflicts.append((p, UPDATE_DELETE))
                B.put(p, File(a.oid, a.mtime_ns, self.e(), a.c))
            self.visit_below(p)
        elif isinstance(b, File):
            if a.oid == b.oid:
                B.put(p, File(b.oid, b.mtime_ns, a.m | b.m, a.c.union(b.c)))
            elif b.m <= s_a:
                B.put(p, a)
            else:
                seen = a.c.seen_by(s_b) or b.c.seen_by(s_a)
                self.conflicts.append((p, UPDATE_UPDATE if seen else CREATE_CREATE))
                union, e = a.c.union(b.c), self.e()
                if winner_is_a(a, b):
                    B.put(p, File(a.oid, a.mtime_ns, e, union))
                    self.copy(p, b)
                else:
                    B.put(p, File(b.oid, b.mtime_ns, e, union))
                    self.copy(p, a)
            self.visit_below(p)
        elif B.m(p) <= s_a:
            # A's file supersedes B's whole directory (choice 7).
            self.visit_below(p)
            for q in sorted(B.present_below(p), reverse=True):
                qa = self.A.state(q)
                B.put(q, Absent(qa.n) if isinstance(qa, Absent) else NEVER)
            B.put(p, a)
        else:
            # B's directory is synced against A's absent paths below it
            # first. Emptied of all A deleted, and of lineages A saw, it goes
            # and A's file takes the path (B's own changes there were only
            # deletions); otherwise it keeps the path and A's file becomes
            # a copy (choice 8).
            self.visit_below(p)
            if not B.present_below(p) and b.c <= s_a:
                B.put(p, a)
            else:
                self.conflicts.append((p, FILE_DIR))
                self.copy(p, a)

    # A has a directory at p that B does not fully know -------------------------
    def a_dir(self, p: str, a: Dir, b: Node, s_a: VT, s_b: VT) -> None:
        B = self.B
        if isinstance(b, Dir):
            self.visit_below(p)
            B.put(p, Dir(b.m_self | a.m_self, b.c | a.c))
        elif isinstance(b, File):
            if not b.m <= s_a:
                self.conflicts.append((p, FILE_DIR))
                self.copy(p, b)  # B's file moves aside, as a new lineage
            B.put(p, Dir(a.m_self, a.c))
            self.visit_below(p)
        else:
            self.visit_below(p)
            if B.present_below(p) or not a.c <= s_b or b.n <= s_a:
                B.put(p, Dir(a.m_self, a.c))

    def copy(self, p: str, f: File) -> None:
        """Write f beside p as a conflict copy on B (a new lineage of B)."""
        B = self.B
        parent, _, name = p.rpartition("/")
        for n in (8, 16, 64):
            cand = join(parent, conflict_name(name, f.oid[:n]))
            there = B.state(cand)
            if isinstance(there, Absent) or (isinstance(there, File) and there.oid == f.oid):
                break
        there = B.state(cand)
        if isinstance(there, File) and there.oid == f.oid:
            return  # B already holds this content under that name: left as it is
        e = self.e()
        B.put(cand, File(f.oid, f.mtime_ns, e, e))


def sync(a: Replica, b: Replica, top: str = "") -> list[tuple[str, str]]:
    """One-way sync A -> B of the subtree `top`; returns the conflicts B reports."""
    for anc in ancestors(top):
        if anc and isinstance(b.state(anc), File):
            top = anc  # choice 6: settle B's file above `top` first
    run = _Sync(a, b)
    run.visit(top)
    if top and not isinstance(b.state(top), Absent):
        for anc in ancestors(top):
            a_anc = a.state(anc)
            if anc and not isinstance(b.state(anc), Dir) and isinstance(a_anc, Dir):
                b.put(anc, Dir(a_anc.m_self, a_anc.c))
    keys = {top} | {k for k in a.stored if is_under(k, top)} | {k for k in b.stored if is_under(k, top)}
    raised = {k: b.s(k) | a.s(k) for k in keys}
    for k, s in raised.items():
        b.stored[k] = s.without(b.name)
    return run.conflicts


def reconcile(a: Replica, b: Replica) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """A -> B, then B -> A: the conflicts reported on B, then on A."""
    return sync(a, b), sync(b, a)
