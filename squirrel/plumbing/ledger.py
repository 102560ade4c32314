"""The index half of a sync's actions: what each finished action records.

The executor (`execute`) records an action once its files are in place;
the carrier's executor (`carrier_executor`), whose replica has no files,
records the same actions alone. Both keep the rules of docs/design.md here
in one place: a version's directories cover its modification time, a
deletion keeps its notice, and a directory whose subtree did not finish
never takes the sender's time.
"""

from __future__ import annotations

from collections.abc import Iterable

from squirrel.plumbing import paths
from squirrel.plumbing.index import Entry, ReplicaIndex
from squirrel.plumbing.plan import Action
from squirrel.plumbing.vtime import VectorTime


def record_version(idx: ReplicaIndex, path: bytes, entry: Entry, m: VectorTime, c: VectorTime) -> None:
    """Record `entry` at `path` with times (m, c); its directories first cover m."""
    if m:
        idx.raise_ancestors(path, m)
    idx.put(path, entry.with_times(m=m, c=c))


def record_deletion(idx: ReplicaIndex, path: bytes, deletion_m: VectorTime | None) -> None:
    """Forget `path` and keep the time of its deletion (its notice); its
    directories cover the deletion so it travels on."""
    if deletion_m:
        idx.raise_ancestors(path, deletion_m)
    idx.delete(path)
    if deletion_m:
        idx.set_notice(path, deletion_m)


def record_notice(idx: ReplicaIndex, path: bytes, n: VectorTime) -> None:
    """The receiver lacks `path` too, and learns when the sender deleted it."""
    idx.raise_ancestors(path, n, missing_ok=True)
    idx.set_notice(path, n)


def record_move_aside(idx: ReplicaIndex, act: Action, event: VectorTime) -> None:
    """The receiver's version now lives at the conflict copy, as a new event
    (joined with the sender's copy of the same conflict, when it has one)."""
    assert act.b is not None
    idx.delete(act.path)
    m, c = act.times(lambda: event)
    record_version(idx, act.target, act.b, m, c)


class FailedPaths(set[bytes]):
    """The paths a sync could not finish, and the directories above them
    (which must not take the sender's time for their subtree)."""

    def __init__(self, failed: Iterable[bytes] = ()) -> None:
        super().__init__()
        self._above: set[bytes] = set()
        for p in failed:
            self.add(p)

    def add(self, path: bytes) -> None:
        if path not in self:
            super().add(path)
            self._above.update(paths.ancestors(path))

    def holds_failure(self, directory: bytes) -> bool:
        return directory in self or directory in self._above


def record_dirmeta(idx: ReplicaIndex, act: Action, failed_paths: FailedPaths) -> None:
    """A finished directory joins the sender's time for it, and the
    sender's lineage of it: two folders of one name are one folder of two
    lineages (see plan.DIRMETA). A folder's creation time keeps the latest
    creation of each replica, not the earliest as a file's does: the only
    question asked of it is whether a replica saw every lineage it holds
    (one replica may have made the folder, deleted it and made it again)."""
    if failed_paths.holds_failure(act.path):
        return
    e = idx.get(act.path)
    if e is None or not e.is_dir or act.m is None:
        return
    c = e.c.join(act.a.c) if act.a is not None and act.a.is_dir else e.c
    if act.m <= e.m and c == e.c:
        return
    record_version(idx, act.path, e, e.m.join(act.m), c)
