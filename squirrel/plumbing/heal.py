"""Repairing and healing damaged files (docs/safety.md, "Damaged files").

`repair` moves a file whose content rotted (its size and mtime unchanged)
to the trash, with cause `damaged`, and marks its path as wanting its
recorded object back (plumbing/wanted.py). `heal` puts that object back,
byte-exact and with the recorded mtime, from wherever it is found. Neither
is a new version: the index entry and its vector times stay as they were,
so no other replica sees anything to take.

Both follow the write order of every sync: the intent log names the step
first (`removed` for a repair, `placed` for a heal), the file is moved,
its directory fsynced, and the index committed with the batch. A command
killed at any point leaves the old state (the log's undo puts the damaged
file back, or takes the healed one away again) or the new one.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from squirrel.errors import ChangedDuringOperation, ContentUnavailable, OutOfSpace, SquirrelError, reason
from squirrel.plumbing import fsops, ids, journal, paths, place
from squirrel.plumbing.durable import fsync_dir
from squirrel.plumbing.index import Entry, racy_flag
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.trash import DAMAGED, TrashReason
from squirrel.plumbing.wanted import WantedMark

# Where a wanted object's bytes come from: a function that returns them
# (raising ContentUnavailable when the source does not have them after all).
Fetch = Callable[[], Iterable[bytes]]


@dataclass
class HealResult:
    """What giving damaged files their recorded content back did."""

    healed: list[bytes] = field(default_factory=list)
    healed_bytes: int = 0
    waiting: list[tuple[bytes, str]] = field(default_factory=list)  # path, why it is not healed yet
    failed: list[tuple[bytes, str]] = field(default_factory=list)


def repair(rep: Replica, path: bytes, entry: Entry, found: bytes) -> WantedMark:
    """Move the damaged file at `path` (indexed as `entry`, its bytes now
    hashing to `found`) to the trash and mark the path wanted, in one batch.
    Refuses (ChangedDuringOperation) when the file changed since it was read."""
    idx, root = rep.index, os.fsencode(rep.root)
    place.check_parents(root, path)
    place.recheck(root, path, entry)
    damaged = replace(entry, oid=found)
    mark = WantedMark(path, entry.oid, entry.size, entry.mtime_ns, found, int(time.time()))
    with rep.journal.batch(idx, [journal.removed(path, damaged)]):
        place.trash(idx, rep.trash_dir, root, path, damaged, TrashReason(DAMAGED))
        idx.put_wanted(mark)
        fsync_dir(os.fsdecode(os.path.dirname(fsops.abspath(root, path))))
        fsync_dir(rep.trash_dir)
    return mark


def heal(
    rep: Replica, marks: Iterable[tuple[WantedMark, Fetch | None]], result: HealResult | None = None
) -> HealResult:
    """Put each mark's object back at its path, from its `Fetch` (None:
    nobody here has the bytes). Each heal is its own batch."""
    result = result or HealResult()
    for mark, fetch in marks:
        try:
            if fetch is None:
                result.waiting.append((mark.path, "no copy of its content here"))
            elif heal_one(rep, mark, fetch):
                result.healed.append(mark.path)
                result.healed_bytes += mark.size
        except ContentUnavailable as e:
            result.waiting.append((mark.path, e.message))
        except OutOfSpace:
            raise
        except (SquirrelError, OSError) as e:
            result.failed.append((mark.path, reason(e)))
    return result


def heal_one(rep: Replica, mark: WantedMark, fetch: Fetch) -> bool:
    """Heal one path; False when there was nothing left to heal (the mark
    was stale, or the file is back already and its content is right)."""
    idx, root = rep.index, os.fsencode(rep.root)
    e = idx.get(mark.path)
    if e is None or not e.is_file or e.oid != mark.oid:
        idx.drop_wanted(mark.path)  # not the version it waited for any more: nothing to heal
        idx.commit()
        return False
    place.check_parents(root, mark.path)
    full = fsops.abspath(root, mark.path)
    st = fsops.lstat_or_none(full)
    if st is not None:
        # Something is at the path: the next scan records it (an edit wins).
        # Only the right content, put back by hand, ends the wait here.
        if fsops.matches(st, e) and ids.hash_file(full)[0] == e.oid:
            idx.drop_wanted(mark.path)
            idx.commit()
            return False
        raise ChangedDuringOperation(f"{paths.display(mark.path)} is in the way: scan it first")
    try:
        tmp = fsops.write_temp(rep.tmp_dir, fetch(), e.oid, e.size, e.mtime_ns, e.mode)
    except ChangedDuringOperation as err:
        # The source's copy is not the object either: damaged there too, or
        # changed since its scan. Another source may still have it.
        raise ContentUnavailable(f"the copy found does not match its id ({err.message})") from err
    try:
        with rep.journal.batch(idx, [journal.placed(mark.path, e)]):
            # Still absent: what was made there meanwhile is never replaced.
            st = place.install(tmp, root, mark.path, sync=True, new=True)
            idx.put(mark.path, replace(e, flags=racy_flag(st.st_mtime_ns, time.time_ns())))
            idx.drop_wanted(mark.path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def local_fetch(rep: Replica, mark: WantedMark) -> Fetch | None:
    """The wanted object from the replica itself, if it holds it: another
    indexed path with that content (a duplicate), unchanged since its scan,
    or the trash (an older version set aside). Verified as it is written."""
    root = os.fsencode(rep.root)
    for p in rep.index.paths_with_object(mark.oid):
        e = rep.index.get(p)
        full = fsops.abspath(root, p)
        if p != mark.path and e is not None and fsops.matches(fsops.lstat_or_none(full), e):
            return functools.partial(fsops.read_chunks, full, e)
    held = fsops.trash_path(rep.trash_dir, mark.oid)
    if os.path.isfile(held):
        return functools.partial(fsops.read_chunks, held)
    return None
