"""The Tra decision for one path of a one-way sync A -> B. Pure: no I/O.

Given the sender's and the receiver's versions of a path (or None where the
path is absent) and both sync times, `decide` returns what B must do. The
rules are the table in docs/design.md ("The decision for one path"); the
names below follow it. "B knows X" means m_X <= s_B; "B saw the lineage"
means some creation event of X is in s_B.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from squirrel.plumbing.index import FAT_TICK_NS, Entry
from squirrel.plumbing.vtime import VectorTime


class Op(Enum):
    NOTHING = "nothing"  # B already knows A's version (or both absent)
    TAKE = "take"  # A's version supersedes B's: copy it
    CREATE = "create"  # B never saw A's lineage: create it
    DELETE = "delete"  # A deleted a version it knew: delete B's
    KEEP = "keep"  # A never saw B's lineage: B keeps its version
    SAME = "same"  # identical content on both sides: m := m_a | m_b
    DESCEND = "descend"  # two directories (or a dir against an absent path): recurse
    CONFLICT = "conflict"  # concurrent: keep both, as a new event of B


UPDATE_UPDATE = "update/update"
CREATE_CREATE = "create/create"
DELETE_UPDATE = "delete/update"
UPDATE_DELETE = "update/delete"
FILE_DIR = "file/dir"
CONFLICT_KINDS = (UPDATE_UPDATE, CREATE_CREATE, DELETE_UPDATE, UPDATE_DELETE, FILE_DIR)


@dataclass(frozen=True)
class Decision:
    """Tra's answer for one path: what to do, and the kind of conflict when it is one."""

    op: Op
    conflict: str | None = None  # one of CONFLICT_KINDS when op is CONFLICT


NOTHING = Decision(Op.NOTHING)


def decide(
    a: Entry | None,
    s_a: VectorTime,
    b: Entry | None,
    s_b: VectorTime,
    a_deleted: VectorTime | None = None,
    b_deleted: VectorTime | None = None,
) -> Decision:
    """What B does with one path, given A's state (a, s_a) and B's (b, s_b).

    Where a side is absent, `a_deleted` / `b_deleted` is the time of its
    deletion: exact, from its deletion notice, or for a deletion older than
    notices a bound from above (the modification time of its nearest
    directory, which covers every deletion below it). An absence is a
    version like any other: when the other side knows it, what the other
    side has was made knowing the deletion and is newer, so it is neither
    taken away nor a conflict (a version kept or re-created after a
    delete/update conflict is not a new conflict).
    """
    if a is None and b is None:
        return NOTHING
    if a is None:
        assert b is not None
        if b.m <= s_a and not a_deleted:
            # A knows B's version and lacks it, with no notice: A deleted it
            # and dropped the notice once every replica it knew had it (B
            # did not, so B is older than that).
            return Decision(Op.DELETE)
        if a_deleted is not None and a_deleted <= s_b:
            if b.is_dir and b.m <= s_a:
                # B kept the folder knowing A's deletion, yet A knows all it
                # holds: nothing in it is newer. Its children decide, and an
                # emptied folder goes. (Kept, it would carry no time newer
                # than the deletion, so it could reach no replica that knows
                # the deletion: their syncs skip what they know.)
                return Decision(Op.DESCEND)
            return NOTHING  # B knows A's deletion: what B has now is as new or newer
        if b.m <= s_a:
            return Decision(Op.DELETE)
        if b.is_dir:
            # A directory A never saw may still hold files A saw and deleted
            # (both sides made the same folder): its children decide.
            return Decision(Op.DESCEND)
        if not b.c.lineage_seen_by(s_a):
            return Decision(Op.KEEP)
        return Decision(Op.CONFLICT, DELETE_UPDATE)
    if a.m <= s_b:
        return NOTHING
    if b is None:
        if a.is_dir:
            return Decision(Op.DESCEND)
        if not a.c.lineage_seen_by(s_b):
            return Decision(Op.CREATE)
        if b_deleted is not None and b_deleted <= s_a:
            return Decision(Op.CREATE)  # A's version was made knowing B's deletion
        return Decision(Op.CONFLICT, UPDATE_DELETE)
    if a.is_dir and b.is_dir:
        return Decision(Op.DESCEND)
    if a.is_file and b.is_file and a.oid == b.oid:
        return Decision(Op.SAME)
    if b.m <= s_a:
        return Decision(Op.TAKE)
    if a.is_dir != b.is_dir:
        return Decision(Op.CONFLICT, FILE_DIR)
    seen = a.c.lineage_seen_by(s_b) or b.c.lineage_seen_by(s_a)
    return Decision(Op.CONFLICT, UPDATE_UPDATE if seen else CREATE_CREATE)


def winner_is_a(a: Entry, b: Entry) -> bool:
    """In an update/update or create/create conflict, does A's version stay at
    the path? The later mtime wins (compared in 2-second ticks, so FAT's
    rounding cannot change the answer), ties go to the larger object id.
    Every replica meeting the same two versions picks the same winner."""
    ka = (a.mtime_ns // FAT_TICK_NS, a.oid)
    kb = (b.mtime_ns // FAT_TICK_NS, b.oid)
    return ka > kb
