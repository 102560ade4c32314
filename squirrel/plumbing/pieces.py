"""A large sync in pieces, so that memory does not grow with the vault.

A plan holds every action of a sync in memory, some 450 bytes for each
path it changes: fine for the import of a photo library of 100,000 files,
not for the first sync of a million-file vault. A sync whose plan would
hold more than `PIECE` actions is made instead of pieces, each a sync of
one subtree:

- the subtrees below a directory go first, each as a piece of its own (or
  split again), then the directory itself, whose plan now finds its
  subdirectories known (their sync times were raised) and plans only its
  own files and its own settling;
- each piece is carried out and its sync times raised before the next one
  is planned, exactly as a sync of that SUBPATH would be (`sync_in_pieces`);
  sibling subtrees that fit in one piece together are planned one after
  the other and carried out as one plan (`plan.joined`): a folder of a
  photo library is a few hundred actions, and each carrying out has costs
  of its own (the executor's threads, an index commit, a last batch of the
  intent log that is not full);
- a directory is split only where both sides have a directory (or one side
  has nothing): a file against a directory is settled by one plan.

The end state is the one a single sync reaches: a partial sync is a sync
like any other, and the directory's own plan comes last. Memory is bounded
by `PIECE` and by the number of entries of the largest single folder.

The checks a sync makes before changing anything (the mass-delete guard,
the free space, the progress line's totals) need the whole sync's figures:
`outline` plans every piece without carrying anything out and keeps only
those figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from squirrel.plumbing import paths
from squirrel.plumbing.execute import moves_a_file
from squirrel.plumbing.plan import DELETE, WRITE, Plan, Planner, PlanTooLarge, ReceiverTree, SourceTree, joined
from squirrel.plumbing.space import room

# A sync in pieces plans everything twice before it is done (the checks
# made before it changes anything need the whole sync's figures, see
# `outline`), and its first attempt at one plan up to this size once more:
# a push of 30,000 small files spent a sixth of its time planning when
# pieces were of 20,000 actions. One plan is kept up to some 60 MB.
PIECE = 1 << 17  # actions

CarryOut = Callable[[Plan, set[bytes]], set[bytes]]


def sync_in_pieces(
    src: SourceTree,
    dst: ReceiverTree,
    top: bytes,
    carry_out: CarryOut,
    limit: int | None = None,
    too_large: set[bytes] | None = None,
) -> set[bytes]:
    """Sync `top` one piece at a time; returns where it stopped short: the
    paths that failed in its own plan, and for the pieces below, the child
    of `top` each failure lies in (empty when everything finished).

    `carry_out(plan, failed)` carries out a piece's plan and raises its
    sync times, leaving out the paths `failed` and everything below them,
    and those that fail now, which it returns. A subtree that did not
    finish is not planned again by the directory above it: its failures are
    reported once, and planning it again could take as much memory as the
    pieces were meant to save. The directory's own plan hears of it as one
    path, not as every file that failed in it (a new drive's first visit
    may defer a million): its sync times were raised by its own pieces,
    which left out each failure, and the directory above keeps its own
    time below the subtree as a whole. `too_large`: see `whole_plan`."""
    limit = PIECE if limit is None else limit
    plan = whole_plan(src, dst, top, limit, too_large)
    if plan is not None:
        return carry_out(plan, set())
    below = _split(src, dst, top)
    stopped: set[bytes] = set()  # children of `top` that did not finish, and failures above them
    group: list[Plan] = []  # subtrees that fit, held to be carried out together
    held = 0  # their actions

    def carry_out_group() -> None:
        nonlocal held
        if not group:
            return
        hit = _stopped_at(top, carry_out(joined(group), set()))
        if hit - {g.top for g in group}:
            # A failure outside every subtree of the group (a folder above
            # them that could not be made) leaves them all unfinished.
            hit.update(g.top for g in group)
        stopped.update(hit)
        group.clear()
        held = 0

    for child in below:
        plan = None
        if group and held < limit and child not in (too_large or ()):
            # Without `too_large`: a subtree that does not fit the room
            # left may still fit a piece of its own.
            plan = whole_plan(src, dst, child, limit - held)
        if plan is None:
            carry_out_group()
            plan = whole_plan(src, dst, child, limit, too_large)
        if plan is None:
            f = sync_in_pieces(src, dst, child, carry_out, limit, too_large)
            if f:
                stopped.add(child)
                stopped.update(_stopped_at(top, f))
            continue
        group.append(plan)
        held += len(plan.actions)
        plan = None  # held by the group only, freed once it is carried out
    carry_out_group()
    unfinished = frozenset(stopped.intersection(below))
    last = Planner(src, dst, skip=unfinished, settled=frozenset(below)).run(top)
    return stopped | carry_out(last, stopped)


def _stopped_at(top: bytes, failed: set[bytes]) -> set[bytes]:
    """Where a sync below `top` stopped short, as `top`'s children: the
    child each failed path lies in, or the path itself where it is not
    below `top` (a folder above it that could not be made)."""
    out: set[bytes] = set()
    for p in failed:
        child = _child_of(top, p)
        out.add(p if child is None else child)
    return out


def _child_of(top: bytes, path: bytes) -> bytes | None:
    """The child of `top` that `path` is or lies below; None where `path`
    is not below `top`."""
    if top and not path.startswith(top + b"/"):
        return None
    rest = path[len(top) + 1 :] if top else path
    return paths.join(top, rest.split(b"/", 1)[0]) if rest else None


def outline_pieces(
    src: SourceTree, dst: ReceiverTree, top: bytes, limit: int | None = None, too_large: set[bytes] | None = None
) -> Iterator[Plan]:
    """The plans of a sync of `top` when nothing is carried out between
    them: each directory that is split is planned without the subtrees
    planned on their own. Together they hold every action of the sync once
    (a dry run, and the checks made before a sync changes anything).
    `too_large`: see `whole_plan`."""
    limit = PIECE if limit is None else limit
    plan = whole_plan(src, dst, top, limit, too_large)
    if plan is not None:
        yield plan
        return
    below = _split(src, dst, top)
    for child in below:
        yield from outline_pieces(src, dst, child, limit, too_large)
    yield Planner(src, dst, skip=frozenset(below)).run(top)


def whole_plan(
    src: SourceTree, dst: ReceiverTree, top: bytes, limit: int | None = None, too_large: set[bytes] | None = None
) -> Plan | None:
    """The plan of a sync of all of `top`, or None when it holds more than
    `limit` actions. `too_large` holds the directories this sync already
    found too large (its check, its outline and the sync itself each start
    with the whole plan): they are split at once, not planned up to `limit`
    again. A split is always correct (pieces end where one plan would), so
    one that has since shrunk costs only a split."""
    if too_large is not None and top in too_large:
        return None
    try:
        return Planner(src, dst, PIECE if limit is None else limit).run(top)
    except PlanTooLarge:
        if too_large is not None:
            too_large.add(top)
        return None


def _split(src: SourceTree, dst: ReceiverTree, top: bytes) -> list[bytes]:
    """The subdirectories of `top` to sync as pieces of their own; none
    where a side has a file at `top` (a file/directory decision needs the
    whole subtree at once)."""
    a, b = src.get(top), dst.get(top)
    if (a is not None and not a.is_dir) or (b is not None and not b.is_dir):
        return []
    names: set[bytes] = set()
    for side, e in ((src, a), (dst, b)):
        if e is not None:
            names.update(name for name, child in side.children(top) if child.is_dir)
    return [paths.join(top, name) for name in sorted(names)]


@dataclass
class Outline:
    """What a sync would do, summed over its pieces; `unit`: the receiving
    file system's allocation unit, which each file's room is rounded up to."""

    unit: int = 1
    plans: int = 0
    files: int = 0  # files written, deleted or moved aside
    write_bytes: int = 0  # content written
    deleted: list[bytes] = field(default_factory=list)  # content of each file deleted
    deleted_bytes: int = 0
    write_room: int = 0  # what the files written take on the receiver, each rounded up to `unit`
    deleted_room: int = 0  # what the files deleted took

    @classmethod
    def of(cls, plan: Plan, unit: int = 1) -> Outline:
        out = cls(unit)
        out.add(plan)
        return out

    def add(self, plan: Plan) -> None:
        self.plans += 1
        for act in plan.actions:
            self.files += moves_a_file(act)
            if act.kind == WRITE and act.a is not None:
                self.write_bytes += act.a.size
                self.write_room += room(act.a.size, self.unit)
            elif act.kind == DELETE and act.b is not None and act.b.is_file:
                self.deleted.append(act.b.oid)
                self.deleted_bytes += act.b.size
                self.deleted_room += room(act.b.size, self.unit)

    def new_bytes(self) -> int:
        """A lower bound of the room the new content needs on the receiver
        (a file the sync deletes may be the content it writes elsewhere)."""
        return max(0, self.write_room - self.deleted_room)


def outline(
    src: SourceTree,
    dst: ReceiverTree,
    top: bytes,
    limit: int | None = None,
    too_large: set[bytes] | None = None,
    unit: int = 1,
) -> Outline:
    out = Outline(unit)
    for plan in outline_pieces(src, dst, top, limit, too_large):
        out.add(plan)
    return out


def moved_away(
    src: SourceTree, dst: ReceiverTree, top: bytes, oids: set[bytes], limit: int | None = None
) -> set[bytes]:
    """Which of `oids` the sync also writes somewhere (a deletion that is a move)."""
    found: set[bytes] = set()
    for plan in outline_pieces(src, dst, top, limit):
        found.update(a.a.oid for a in plan.actions if a.kind == WRITE and a.a is not None and a.a.oid in oids)
    return found
