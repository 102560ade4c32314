"""Planning a one-way sync A -> B: walk both trees from the top, decide each
path with `tra.decide`, and skip every subtree B already knows.

The planner reads only what it must: a directory whose modification time is
covered by B's sync time is settled without reading its children, so two
replicas that differ in three files out of 100,000 cost a handful of index
records. It writes nothing; `execute` carries the plan out.

The sender is anything with the `SourceTree` methods (a replica's index, a
bundle's manifest); the receiver is a replica's index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

from squirrel.plumbing import paths
from squirrel.plumbing.index import FLAG_PARTIAL, Entry
from squirrel.plumbing.records import ConflictRecord, VersionInfo
from squirrel.plumbing.tra import (
    CREATE_CREATE,
    DELETE_UPDATE,
    FILE_DIR,
    UPDATE_DELETE,
    UPDATE_UPDATE,
    Op,
    decide,
    winner_is_a,
)
from squirrel.plumbing.vtime import EMPTY, VectorTime


class SourceTree(Protocol):
    """What the planner needs to know of a side of the sync.

    `notice` / `notices` give the exact time at which an absent path was
    deleted (its deletion notice). A side whose `exact_deletions` is False
    holds deletions from before notices existed: where it has no notice, a
    deletion's time is bounded by the modification time of the nearest
    directory above, which covers every deletion below it.
    """

    exact_deletions: bool

    def get(self, path: bytes) -> Entry | None: ...

    def children(self, path: bytes) -> Iterator[tuple[bytes, Entry]]: ...

    def notice(self, path: bytes) -> VectorTime | None: ...

    def notices(self, path: bytes) -> Iterator[tuple[bytes, VectorTime]]: ...

    def sync_time(self, path: bytes) -> VectorTime: ...

    def sync_time_below(self, path: bytes, inherited: VectorTime) -> VectorTime: ...

    def conflicts(self) -> list[ConflictRecord]: ...


class ReceiverTree(SourceTree, Protocol):
    """The receiving side: a replica's index."""

    def notices_under(self, path: bytes) -> Iterator[tuple[bytes, VectorTime]]: ...


# Action kinds, in the order the executor understands them.
MKDIR = "mkdir"  # make a directory (if absent) and record it
WRITE = "write"  # write A's content at `path` (replacing `b`, which goes to the trash)
META = "meta"  # index only: B's version gets new times
DELETE = "delete"  # B's file goes to the trash
RMDIR = "rmdir"  # B's directory goes, after its children
MOVE_ASIDE = "move-aside"  # B's file is renamed to the conflict copy `target`
DIRMETA = "dirmeta"  # after B's directory finished: join `m` into its modification time
NOTICE = "notice"  # index only: B, absent too, learns when A's path was deleted (`m`)


@dataclass(slots=True)
class Action:
    """One step of a plan: what the receiver does at `path`."""

    kind: str
    path: bytes
    a: Entry | None = None  # the sender's version (content source for WRITE)
    b: Entry | None = None  # what B must still have at `path` before acting
    m: VectorTime | None = None  # new modification time; None means "a new event of B"
    c: VectorTime | None = None  # new creation time; None means "a new event of B"
    target: bytes = b""  # MOVE_ASIDE: the conflict copy's path
    deletion_m: VectorTime | None = None  # DELETE/RMDIR: covers A's deletion, for B's ancestors
    src_path: bytes | None = None  # WRITE: where A holds the content, when not at `path`
    conflict: int = -1  # index into Plan.conflicts when this settles one
    join: Entry | None = None  # a conflict copy A also has: its times join A's there

    def times(self, new_event: Callable[[], VectorTime]) -> tuple[VectorTime, VectorTime]:
        """The (m, c) the receiver records; None in `m` or `c` means a new
        event of the receiver (taken only when needed)."""
        m = self.m if self.m is not None else new_event()
        c = self.c if self.c is not None else new_event()
        if self.join is not None:
            m, c = m.join(self.join.m), c.lineage_union(self.join.c)
        return m, c


@dataclass
class Conflict:
    """A conflict a plan settles: the version that stays at the path, and the copy of the other, if any."""

    path: bytes
    kind: str
    kept: bytes
    copy: bytes | None
    ours: Entry | None  # the receiver's version
    theirs: Entry | None  # the sender's version
    kept_oid: bytes | None = None  # what stays at the path (None: a directory)
    copy_oid: bytes | None = None  # what the copy holds

    def record(self, names: dict[str, str], replica: str | None = None, when: int = 0) -> ConflictRecord:
        """The conflict as the receiver records and reports it."""

        def info(e: Entry | None) -> VersionInfo | None:
            return None if e is None else VersionInfo.of(e, names)

        return ConflictRecord(
            self.path,
            self.kind,
            self.kept,
            self.copy,
            info(self.ours),
            info(self.theirs),
            when,
            replica,
            self.kept_oid,
            self.copy_oid,
        )


@dataclass
class Plan:
    """What a one-way sync does to the receiver under `top`: its actions, in order, and its conflicts."""

    top: bytes
    actions: list[Action] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    skipped: int = 0
    visited: int = 0
    incomplete: list[bytes] = field(default_factory=list)  # the sender's view does not cover these
    more_tops: list[bytes] = field(default_factory=list)  # further subtrees this plan syncs whole (`joined`)

    @property
    def tops(self) -> list[bytes]:
        """The subtrees this plan syncs, each whole: their sync times are
        raised once it is carried out."""
        return [self.top, *self.more_tops]

    def count(self) -> dict[str, int]:
        created = sum(1 for a in self.actions if a.kind in (WRITE, MKDIR) and a.b is None)
        updated = sum(1 for a in self.actions if a.kind == WRITE and a.b is not None)
        deleted = sum(1 for a in self.actions if a.kind in (DELETE, RMDIR))
        return {"created": created, "updated": updated, "deleted": deleted, "skipped": self.skipped}


def joined(plans: list[Plan]) -> Plan:
    """The plans of disjoint subtrees of one sync (siblings, each planned
    before any is carried out) as one plan, carried out in one go: their
    actions in order, their conflicts renumbered, and a folder above them
    that more than one would make made once."""
    if len(plans) == 1:
        return plans[0]
    out = Plan(plans[0].top, more_tops=[p.top for p in plans[1:]])
    made: set[bytes] = set()
    for plan in plans:
        offset = len(out.conflicts)
        for act in plan.actions:
            if act.kind == MKDIR:
                if act.path in made:
                    continue
                made.add(act.path)
            out.actions.append(replace(act, conflict=act.conflict + offset) if act.conflict >= 0 and offset else act)
        out.conflicts += plan.conflicts
        out.skipped += plan.skipped
        out.visited += plan.visited
        out.incomplete += plan.incomplete
    return out


def short_id(oid: bytes, n: int = 8) -> str:
    return oid.hex()[:n]


class PlanTooLarge(Exception):
    """The plan grew past the planner's limit (see `pieces`)."""


class Planner:
    """Plans a one-way sync of one subtree.

    With `limit`, planning stops (PlanTooLarge) once the plan holds more
    actions than that, so that a large sync can be planned in pieces with
    bounded memory. Paths in `skip` are left out as if B knew them already
    (an outline of a sync whose pieces below were outlined on their own);
    paths in `settled` were synced by earlier pieces of the same sync, and
    are not counted as skipped when B now knows them."""

    def __init__(
        self,
        src: SourceTree,
        dst: ReceiverTree,
        limit: int | None = None,
        skip: frozenset[bytes] = frozenset(),
        settled: frozenset[bytes] = frozenset(),
    ) -> None:
        self.src = src
        self.dst = dst
        self.limit = limit
        self.skip = skip
        self.settled = settled
        self.plan = Plan(b"")
        self._writes: dict[bytes, Action] = {}  # this plan's WRITE actions, by path

    def _check_size(self) -> None:
        if self.limit is not None and len(self.plan.actions) > self.limit:
            raise PlanTooLarge(self.plan.top)

    def run(self, top: bytes = b"") -> Plan:
        self.plan = Plan(top)
        self._writes = {}
        a, b = self.src.get(top), self.dst.get(top)
        na = self.src.notice(top) if a is None else None
        nb = self.dst.notice(top) if b is None else None
        s_a, s_b = self.src.sync_time(top), self.dst.sync_time(top)
        self._path(top, a, b, s_a, s_b, na, nb, _ancestor_m(self.src, top), _ancestor_m(self.dst, top))
        # A partial sync of a subtree needs its directories on B first, when
        # something is to be made below them: B's deletion of a folder above
        # is not undone by a sync that brings nothing into it.
        if any(act.kind != NOTICE for act in self.plan.actions):
            above = []
            for anc in reversed(list(paths.ancestors(top)) if top else []):
                src_dir, dst_dir = self.src.get(anc), self.dst.get(anc)
                if anc and dst_dir is None and src_dir is not None and src_dir.is_dir:
                    above.append(Action(MKDIR, anc, src_dir, None, self._new_dir_m(anc), src_dir.c))
            self.plan.actions[:0] = above
        return self.plan

    @staticmethod
    def _gone(side: SourceTree, notice: VectorTime | None, bound: VectorTime) -> VectorTime:
        """When `side` deleted an absent path: its notice; without one, nothing
        to know on a side with exact deletions (it never held the path, or
        everyone knows), else the bound from its nearest directory."""
        if notice is not None:
            return notice
        return EMPTY if side.exact_deletions else bound

    def _new_dir_m(self, path: bytes) -> VectorTime:
        """The first modification time of a directory B makes at `path`: it
        covers every deletion B knows below it (and, for deletions older than
        notices, the bound its nearest directory gives)."""
        m = EMPTY
        for _, n in self.dst.notices_under(path):
            m = m.join(n)
        return m if self.dst.exact_deletions else m.join(_ancestor_m(self.dst, path))

    def _write(self, act: Action) -> None:
        self.plan.actions.append(act)
        self._writes[act.path] = act

    def _holds(self, path: bytes, oid: bytes) -> bool:
        """Does B hold (or does this plan give it) a file with `oid` at `path`?"""
        planned = self._writes.get(path)
        if planned is not None:
            content = planned.a if planned.kind == WRITE else planned.b
            return content is not None and content.oid == oid
        e = self.dst.get(path)
        return e is not None and e.is_file and e.oid == oid

    def _copy_path(self, path: bytes, oid: bytes) -> bytes:
        """The conflict copy's name: the first of the short, longer and whole
        id that neither side holds other content under (the same conflict
        met elsewhere leaves the same copy: it is taken as it is)."""
        parent, name = paths.split(path)
        for n in (8, 16, 64):
            cand = paths.join(parent, paths.conflict_name(name, short_id(oid, n)))
            if self._holds(cand, oid):
                return cand
            theirs = self.src.get(cand)
            free_here = cand not in self._writes and self.dst.get(cand) is None
            if free_here and (theirs is None or (theirs.is_file and theirs.oid == oid)):
                return cand
        return cand

    def _conflict(
        self,
        path: bytes,
        kind: str,
        copy: bytes | None,
        b: Entry | None,
        a: Entry | None,
        kept: Entry | None,
        copied: Entry | None,
    ) -> int:
        """Record a conflict settled at `path`: `kept` is the version that
        stays there, `copied` the one written to the conflict copy `copy`."""
        kept_oid = kept.oid if kept is not None and kept.is_file else None
        copy_oid = copied.oid if copied is not None else None
        self.plan.conflicts.append(Conflict(path, kind, path, copy, b, a, kept_oid, copy_oid))
        return len(self.plan.conflicts) - 1

    def _path(
        self,
        p: bytes,
        a: Entry | None,
        b: Entry | None,
        s_a: VectorTime,
        s_b: VectorTime,
        na: VectorTime | None,
        nb: VectorTime | None,
        a_bound: VectorTime,
        b_bound: VectorTime,
    ) -> bool:
        """Plan one path; returns True when B ends with nothing at `p`.

        `na` / `nb`: each side's deletion notice where it lacks the path;
        `a_bound` / `b_bound`: its nearest directory's modification time, the
        bound for a deletion older than notices."""
        self._check_size()
        if p in self.skip:
            return b is None
        gone, below = self._act(p, a, b, s_a, s_b, na, nb, a_bound, b_bound)
        if below is not None:
            # A has a file or nothing at `p`, yet may have deleted things
            # below it (when `p` was a folder, or learned of such deletions
            # since): B learns each one it does not know, so that raising
            # B's sync time over this subtree claims nothing B lacks.
            self._learn_below(p, s_a, s_b, keep_b=below, a_bound=a_bound, b_bound=b_bound)
        return gone

    def _act(
        self,
        p: bytes,
        a: Entry | None,
        b: Entry | None,
        s_a: VectorTime,
        s_b: VectorTime,
        na: VectorTime | None,
        nb: VectorTime | None,
        a_bound: VectorTime,
        b_bound: VectorTime,
    ) -> tuple[bool, bool | None]:
        """Plan `p` itself: (B ends with nothing at `p`, what remains to
        do below it: None when its children were planned already, else
        whether B keeps what it holds below `p`)."""
        self.plan.visited += 1
        a_gone = self._gone(self.src, na, a_bound) if a is None else None
        b_gone = self._gone(self.dst, nb, b_bound) if b is None else None
        d = decide(a, s_a, b, s_b, a_gone, b_gone)
        acts = self.plan.actions
        if d.op is Op.NOTHING:
            if a is None and b is None:
                assert a_gone is not None and b_gone is not None
                self._learn_deletion(p, na, a_gone, b_gone, s_a, s_b)
            elif a is not None and p not in self.settled:
                self.plan.skipped += 1
            return b is None, None if a is not None and a.is_dir else True
        if a is not None and a.is_dir and a.flags & FLAG_PARTIAL:
            # A bundle packed against more knowledge than this receiver has:
            # this subtree is not described, so it stays unsynced.
            self.plan.incomplete.append(p)
            return b is None, None
        if d.op is Op.KEEP:
            return False, False
        if d.op is Op.DELETE:
            assert b is not None and a_gone is not None
            self._delete_tree(p, b, a_gone)
            return True, False
        if d.op is Op.SAME:
            assert a is not None and b is not None
            acts.append(Action(META, p, a, b, a.m.join(b.m), a.c.lineage_union(b.c)))
            return False, False
        if d.op is Op.DESCEND:
            if a is not None and a.is_dir and (b is None or b.is_dir):
                return self._descend(p, a, b, s_a, s_b, a_bound, b_bound, b_gone=b_gone), None
            assert a is None and b is not None and b.is_dir and a_gone is not None
            return self._descend(p, None, b, s_a, s_b, a_bound, b_bound, a_gone=a_gone), None
        if d.op is Op.CREATE:
            assert a is not None and a.is_file
            planned = self._writes.get(p)
            if planned is not None and self._holds(p, a.oid):
                # A conflict met above wrote this copy here: it is A's copy of
                # the same conflict, so the two are one (times joined).
                planned.join = a
                return False, False
            # B's own deletion here, which A does not know, stays in the time
            # of what B now holds: a replica still holding the deleted
            # version must see B's path as newer than it.
            m = a.m if nb is None or nb <= s_a else a.m.join(nb)
            self._write(Action(WRITE, p, a, None, m, a.c))
            return False, False
        if d.op is Op.TAKE:
            assert a is not None and b is not None
            if b.is_dir:  # A's file supersedes B's whole directory
                self._delete_tree(p, b, a.m)
                self._write(Action(WRITE, p, a, None, a.m, a.c))
                return False, False
            if a.is_dir:  # A's directory supersedes B's file
                acts.append(Action(DELETE, p, None, b, deletion_m=a.m))
                self._descend(p, a, None, s_a, s_b, a_bound, b_bound, force_mkdir=True)
                return False, None
            self._write(Action(WRITE, p, a, b, a.m, a.c))
            return False, False
        assert d.op is Op.CONFLICT and d.conflict is not None
        gone = self._settle(p, d.conflict, a, b, s_a, s_b, a_bound, b_bound)
        # A file/directory conflict plans the directory's children itself.
        return gone, None if d.conflict == FILE_DIR else False

    def _learn_deletion(
        self,
        p: bytes,
        na: VectorTime | None,
        a_gone: VectorTime,
        b_gone: VectorTime,
        s_a: VectorTime,
        s_b: VectorTime,
    ) -> None:
        """Both sides lack `p`: B learns A's deletion notice, as it would take
        A's version of a file (the notice of a deletion A knew of B's is
        replaced, two concurrent deletions are joined)."""
        if na is None or na <= s_b:
            return
        new = na if b_gone <= s_a else b_gone.join(na)
        self.plan.actions.append(Action(NOTICE, p, m=new))

    def _learn_below(
        self,
        p: bytes,
        s_a: VectorTime,
        s_b: VectorTime,
        keep_b: bool,
        a_bound: VectorTime,
        b_bound: VectorTime,
    ) -> None:
        """A has a file or nothing at `p`: visit what A deleted below it.

        Where B lacks the path too, B learns A's notice; where B still holds
        something there and keeps its folder at `p` (`keep_b`), that path is
        planned like any other; where B's folder goes as a whole, the
        deletion of it has planned B's paths already."""
        for name, na in list(self.src.notices(p)):
            q = paths.join(p, name)
            cs_a = self.src.sync_time_below(q, s_a)
            cs_b = self.dst.sync_time_below(q, s_b)
            cb = self.dst.get(q)
            if cb is None:
                nb = self.dst.notice(q)
                self.plan.visited += 1
                self._learn_deletion(q, na, na, self._gone(self.dst, nb, b_bound), cs_a, cs_b)
                self._learn_below(q, cs_a, cs_b, False, a_bound, b_bound)
            elif keep_b:
                self._path(q, None, cb, cs_a, cs_b, na, None, a_bound, b_bound)
            else:
                self._learn_below(q, cs_a, cs_b, False, a_bound, b_bound)

    def _settle(
        self,
        p: bytes,
        kind: str,
        a: Entry | None,
        b: Entry | None,
        s_a: VectorTime,
        s_b: VectorTime,
        a_bound: VectorTime,
        b_bound: VectorTime,
    ) -> bool:
        """Keep both versions, as a new event of B (the settling replica)."""
        acts = self.plan.actions
        if kind == DELETE_UPDATE:
            assert b is not None
            ci = self._conflict(p, kind, None, b, None, kept=b, copied=None)
            acts.append(Action(META, p, None, b, None, b.c, conflict=ci))
            return False
        if kind == UPDATE_DELETE:
            assert a is not None
            ci = self._conflict(p, kind, None, None, a, kept=a, copied=None)
            self._write(Action(WRITE, p, a, None, None, a.c, conflict=ci))
            return False
        assert a is not None and b is not None
        if kind == FILE_DIR:
            if b.is_dir:
                # B's folder is synced first against A's absent paths below
                # it. Emptied of all A deleted, of lineages A saw (what B
                # did there that A does not know was only deletions), it
                # goes and A's file takes the path: no conflict. Otherwise
                # the folder keeps the path and A's file becomes a copy.
                if self._descend(p, None, b, s_a, s_b, a.m, b_bound, a_gone=a.m):
                    self._write(Action(WRITE, p, a, None, a.m, a.c))
                    return False
                copy = self._copy_path(p, a.oid)
                ci = self._conflict(p, kind, copy, b, a, kept=b, copied=a)
                if not self._holds(copy, a.oid):
                    self._write(Action(WRITE, copy, a, None, None, None, conflict=ci, src_path=p))
                return False
            copy = self._copy_path(p, b.oid)
            ci = self._conflict(p, kind, copy, b, a, kept=a, copied=b)
            self._aside(p, b, copy, ci)
            self._descend(p, a, None, s_a, s_b, a_bound, b.m, force_mkdir=True)
            return False
        assert kind in (UPDATE_UPDATE, CREATE_CREATE)
        union = a.c.lineage_union(b.c)
        if winner_is_a(a, b):
            copy = self._copy_path(p, b.oid)
            ci = self._conflict(p, kind, copy, b, a, kept=a, copied=b)
            self._aside(p, b, copy, ci)
            self._write(Action(WRITE, p, a, None, None, union, conflict=ci))
        else:
            copy = self._copy_path(p, a.oid)
            ci = self._conflict(p, kind, copy, b, a, kept=b, copied=a)
            if not self._holds(copy, a.oid):
                self._write(Action(WRITE, copy, a, None, None, None, conflict=ci, src_path=p))
            acts.append(Action(META, p, None, b, None, union, conflict=ci))
        return False

    def _aside(self, p: bytes, b: Entry, copy: bytes, ci: int) -> None:
        """B's version leaves the path for its conflict copy; where B already
        holds that copy (the same conflict met elsewhere), it just goes."""
        if self._holds(copy, b.oid):
            self.plan.actions.append(Action(DELETE, p, None, b, conflict=ci))
        else:
            act = Action(MOVE_ASIDE, p, None, b, None, None, target=copy, conflict=ci)
            self.plan.actions.append(act)
            self._writes[copy] = act

    def _descend(
        self,
        p: bytes,
        a: Entry | None,
        b: Entry | None,
        s_a: VectorTime,
        s_b: VectorTime,
        a_bound: VectorTime,
        b_bound: VectorTime,
        a_gone: VectorTime | None = None,
        b_gone: VectorTime | None = None,
        force_mkdir: bool = False,
        keep: bool = False,
    ) -> bool:
        """Recurse into a directory; returns True when B ends without it.

        Every name either side holds or has a deletion notice for is
        visited. `a_gone` / `b_gone` is when a side that lacks `p` deleted
        it. When both keep the directory, a DIRMETA action after its
        children joins A's directory time into B's.
        """
        acts = self.plan.actions
        mkdir_at = len(acts)
        a_kids = dict(self.src.children(p)) if a is not None and a.is_dir else {}
        b_kids = dict(self.dst.children(p)) if b is not None and b.is_dir else {}
        a_dels, b_dels = dict(self.src.notices(p)), dict(self.dst.notices(p))
        child_a_bound = a.m if a is not None else a_bound
        child_b_bound = b.m if b is not None else b_bound
        all_gone = True
        for name in sorted(a_kids.keys() | b_kids.keys() | a_dels.keys() | b_dels.keys()):
            cp = paths.join(p, name)
            ca, cb = a_kids.get(name), b_kids.get(name)
            na = a_dels.get(name) if ca is None else None
            nb = b_dels.get(name) if cb is None else None
            cs_a = self.src.sync_time_below(cp, s_a)
            cs_b = self.dst.sync_time_below(cp, s_b)
            gone = self._path(cp, ca, cb, cs_a, cs_b, na, nb, child_a_bound, child_b_bound)
            all_gone = all_gone and gone
        if b is None:
            assert a is not None
            created_inside = any(act.kind != NOTICE for act in acts[mkdir_at:])
            # A directory A kept or emptied knowing B's deletion of it is newer
            # than that deletion, so B takes it, even empty; otherwise B would
            # claim A's version below without holding it, and its absence
            # would never reach anyone.
            knew = b_gone is not None and b_gone <= s_a
            if created_inside or force_mkdir or not a.c <= s_b or knew:
                acts.insert(mkdir_at, Action(MKDIR, p, a, None, self._new_dir_m(p), a.c))
                acts.append(Action(DIRMETA, p, a, None, a.m))
                return False
            return True
        if a is None and all_gone and p and not keep and b.c <= s_a:
            # Emptied of what A deleted, and A knew every lineage of this
            # folder (two folders made under one name are one folder of two
            # lineages): it goes too. A folder A never saw (or not all of) is
            # B's own, even when empty. (One B kept or emptied knowing A's
            # deletion, holding a time A does not know, is newer than the
            # deletion: `tra.decide` does not descend into it.)
            acts.append(Action(RMDIR, p, None, b, deletion_m=a_gone))
            return True
        if a is None or keep:
            # B keeps its folder against A's absence: what B learned below
            # raised its time already, and A's deletion of the path itself
            # stays out of it (B's folder absorbed nothing of what A
            # deleted; joining that time in would make a later version
            # written knowing this folder look concurrent with it). The
            # same holds where a file/dir conflict kept B's folder and made
            # A's file a copy beside it.
            return False
        acts.append(Action(DIRMETA, p, a, b, a.m))
        return False

    def _delete_tree(self, p: bytes, b: Entry, gone: VectorTime) -> None:
        """B's version at `p` is known to A, which deleted it (or replaced
        it with a file): remove it all, each path noting A's deletion of it."""
        acts = self.plan.actions
        self._check_size()
        if b.is_dir:
            for name, child in self.dst.children(p):
                cp = paths.join(p, name)
                self._delete_tree(cp, child, self.src.notice(cp) or gone)
            acts.append(Action(RMDIR, p, None, b, deletion_m=gone))
        else:
            acts.append(Action(DELETE, p, None, b, deletion_m=gone))


def _ancestor_m(side: SourceTree, path: bytes) -> VectorTime:
    """The modification time of the nearest directory above `path` that
    `side` holds: it covers every deletion below it."""
    for anc in paths.ancestors(path):
        e = side.get(anc)
        if e is not None:
            return e.m
    return EMPTY


def plan_sync(src: SourceTree, dst: ReceiverTree, top: bytes = b"") -> Plan:
    return Planner(src, dst).run(top)


def widen_top(src: SourceTree, dst: SourceTree, top: bytes) -> bytes:
    """The subtree a partial sync of `top` must cover. Where the receiver
    has a file at a directory above `top`, nothing below can be written
    until that file/directory conflict is settled: the sync starts there."""
    widest = top
    for anc in paths.ancestors(top):
        if not anc:
            break
        b = dst.get(anc)
        if b is not None and not b.is_dir:
            widest = anc
    return widest
