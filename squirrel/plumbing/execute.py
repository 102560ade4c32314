"""Carrying out a sync plan on the receiving replica, path by path, safely.

Each action re-checks that the receiver still holds what the plan saw, writes
through `fsops` (temporary file, fsync) and `place` (trash, rename), and only then updates
the index. A path whose action fails is reported and stays unsynced: its sync
time, and its directories', are not raised (see `synctime`). A file that the
receiver already holds (a move, a duplicate, or in its trash) is copied or
renamed locally instead of being read from the sender; the sender's own
content comes through `fetch`, and what each finished action records in the
index is `ledger`'s.
"""

from __future__ import annotations

import os
import stat as statmod
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

from squirrel.errors import (
    BadBundle,
    ChangedDuringOperation,
    ContentUnavailable,
    OutOfSpace,
    SquirrelError,
    UnsafePath,
    reason,
)
from squirrel.plumbing import conflicts, faults, fsops, journal, paths, place
from squirrel.plumbing.casefold import CaseFolding
from squirrel.plumbing.durable import fsync_dir
from squirrel.plumbing.fetch import ContentSource, Fetcher
from squirrel.plumbing.index import KIND_FILE, Entry, new_dir, racy_flag, too_long
from squirrel.plumbing.ledger import (
    FailedPaths,
    record_deletion,
    record_dirmeta,
    record_move_aside,
    record_notice,
    record_version,
)
from squirrel.plumbing.plan import (
    DELETE,
    DIRMETA,
    META,
    MKDIR,
    MOVE_ASIDE,
    NOTICE,
    RMDIR,
    WRITE,
    Action,
    Conflict,
    Plan,
)
from squirrel.plumbing.progress import Meter, ProgressCallback
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.schedule import schedule
from squirrel.plumbing.space import allocation_unit, ensure_room, room
from squirrel.plumbing.trash import DELETED, LEFTOVERS, LEFTOVERS_PREFIX, REPLACED, TrashItem, TrashReason
from squirrel.plumbing.trashcan import folder_size, record_folder
from squirrel.plumbing.vtime import VectorTime

MOVE_SPARE = 3  # files of one content a batch's writes may rename, beyond one each
PLACE_GROUP = 64  # new files renamed into place in one call (`place.install_new`)
LOCAL_FROM = 1 << 20  # from a complete sender, only files this large are looked for among the receiver's


def refused_too_long(path: bytes, limit: int) -> str:
    """Why a path the index cannot hold is not synced, and that no re-run will."""
    return f"{too_long(path, limit)}; no re-run can sync it: it must be renamed where it was made"


@dataclass
class ExecResult:
    """What carrying out one plan did to the receiver."""

    created: int = 0
    updated: int = 0
    deleted: int = 0
    moved: int = 0
    local_copies: int = 0
    bytes_from_source: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    failed: list[tuple[bytes, str, bool]] = field(default_factory=list)  # path, why, content unavailable
    failed_paths: FailedPaths = field(default_factory=FailedPaths)
    lasting: set[bytes] = field(default_factory=set)  # failed paths a re-run fails again (too long to record)


@dataclass
class NewFile:
    """A new file's write whose content is ready in a temporary file,
    waiting to be renamed into place with the next ones (`_place_new`)."""

    act: Action
    tmp: bytes
    m: VectorTime
    c: VectorTime


class Executor:
    def __init__(
        self,
        replica: Replica,
        plan: Plan,
        source: ContentSource,
        progress: ProgressCallback | None = None,
        sender: str | None = None,
        *,
        phase: str = "copying",
        meter: Meter | None = None,
        failed_before: set[bytes] | None = None,
    ) -> None:
        """`meter`: the progress of a sync made of several plans (see
        `pieces`), whose totals it already has; `failed_before`: where the
        earlier plans of such a sync stopped short below this plan's
        directories, each subtree that did not finish as one path (a
        directory above one does not take the sender's time)."""
        self.rep = replica
        self.idx = replica.index
        self.root = os.fsencode(replica.root)
        self.plan = plan
        self.source = source
        self._holds: Callable[[bytes], bool] | None = getattr(source, "has", None)  # a source of content by id
        # Files written, deleted or moved aside, and the bytes of those written.
        self.meter = meter or Meter(
            phase,
            progress,
            files=sum(1 for a in plan.actions if moves_a_file(a)),
            size=sum(a.a.size for a in plan.actions if a.kind == WRITE and a.a is not None),
        )
        self.result = ExecResult(failed_paths=FailedPaths(failed_before or ()))
        self._event: VectorTime | None = None
        self._skip: set[int] = set()  # DELETE actions already done as moves
        self.sender = sender  # the replica the versions come from, named in the trash's reasons
        self._replaced = TrashReason(REPLACED, sender)
        self._trashed_now: dict[bytes, list[TrashItem]] = {}  # what this run's deletions put in the trash
        self._conflict_failed: dict[int, tuple[str, bool]] = {}  # conflict -> why its first step failed
        self._conflicts_done: set[int] = set()
        # A's content fetched before its turn: ahead, or before its conflict began.
        self.fetch = Fetcher(source, replica.tmp_dir, self.meter)
        # The WRITE of A's version at the path of a conflict that moves B's aside.
        self._winner_writes = {
            act.conflict: act
            for act in plan.actions
            if act.kind == WRITE and act.conflict >= 0 and act.b is None and act.src_path is None
        }
        self.names = CaseFolding(self.root, replica.tmp_dir)
        # Folders refused with everything below them: a name colliding on a
        # case-folding drive, a path too long for the index, or a folder the
        # file system would not make.
        self._refused_dirs: set[bytes] = set()
        self._local: dict[bytes, list[bytes]] | None = None  # content -> paths holding it, found once
        self._looked_for: set[bytes] = set()  # the content worth looking for among the receiver's
        # Files the plan deletes, by content: a WRITE of the same content renames them.
        self._deletes: dict[bytes, list[int]] = {}
        self._move_sources: dict[bytes, list[int]] = {}  # this batch's, by content
        self._later: deque[list[int]] = deque()  # the batches after this one
        self._dirty: set[bytes] = set()  # directories whose entries this batch changed
        self._parents_seen: set[bytes] = set()  # folders whose parents this batch found sound
        self._new_files: list[NewFile] = []  # ready, not yet renamed into place
        self._new_oids: set[bytes] = set()  # their content
        for i, act in enumerate(plan.actions):
            if act.kind == DELETE and act.b is not None and act.b.is_file:
                self._deletes.setdefault(act.b.oid, []).append(i)

    def new_event(self) -> VectorTime:
        if self._event is None:
            self._event = self.idx.next_event()
        return self._event

    def check_space(self) -> None:
        """Refuse before writing anything when the new content cannot fit."""
        deleted = {a.b.oid for a in self.plan.actions if a.kind == DELETE and a.b is not None}
        unit = allocation_unit(self.rep.root)
        need = sum(
            room(a.a.size, unit)
            for a in self.plan.actions
            if a.kind == WRITE and a.a is not None and a.a.oid not in deleted
        )
        ensure_room(self.rep, need)

    def run(self) -> ExecResult:
        self.check_space()
        self._stop: SquirrelError | None = None
        try:
            self._later = deque(schedule(self.plan))
            while self._later:
                self._run_batch(self._later.popleft())
            self._record_conflicts(range(len(self.plan.conflicts)))
        finally:
            self.fetch.discard()
        self.result.bytes_from_source = self.fetch.bytes_from_source
        return self.result

    def _run_batch(self, batch: list[int]) -> None:
        """Log how to undo the batch's file changes, make them, then commit
        the index with the batch's id and drop the log (see `journal`)."""
        # The files a write of the batch may rename rather than copy: a few
        # more than the batch writes of each content, so that the log stays
        # small when thousands of files share one content (empty files).
        writes: dict[bytes, int] = {}
        for i in batch:
            a = self.plan.actions[i].a
            if self.plan.actions[i].kind == WRITE and a is not None:
                writes[a.oid] = writes.get(a.oid, 0) + 1
        self._move_sources = {
            oid: [j for j in self._deletes.get(oid, []) if j not in self._skip][: n + MOVE_SPARE]
            for oid, n in writes.items()
        }
        steps = [step for i in batch if i not in self._skip for step in self._undo_steps(self.plan.actions[i])]
        self._parents_seen.clear()
        with self.rep.journal.batch(self.idx, steps):
            try:
                for n, i in enumerate(batch):
                    act = self.plan.actions[i]
                    if i not in self._skip:  # else done already, as the source of a move
                        if not may_wait(act) or (act.a is not None and act.a.oid in self._new_oids):
                            # Every action before it is done, in order; or a
                            # copy of its content is, to be copied from here.
                            self._place_new()
                        if self._stop is None and act.path not in self.fetch.prepared and self._from_sender(i, act):
                            self.fetch.ahead(self._writes_from_sender(batch[n:], self._later[0] if self._later else []))
                        self._act(act)
                    self._count(act)
                self._place_new()
            finally:
                for new in self._new_files:  # an error of sq itself left them unplaced
                    fsops.remove_temp(new.tmp)
                self._new_files.clear()
                self._new_oids.clear()
            self._record_conflicts({self.plan.actions[i].conflict for i in batch} - {-1})
            self._sync_dirs()
            if steps:
                self.rep.recheck_identity()
        # A batch that changed no file (new times only) logs nothing and is
        # not committed by itself; many of them are, once the buffer is large.
        self.idx.maybe_commit()

    def _act(self, act: Action) -> None:
        if self._stop is not None:
            self._fail(act, str(self._stop))
            return
        if act.conflict in self._conflict_failed:
            # A conflict is settled whole or not at all: after its first
            # step failed, the others (an index-only META above all)
            # must not leave half a settlement behind.
            self._fail(act, *self._conflict_failed[act.conflict])
            return
        if self._below_refused(act.path):
            # The folder was reported: what it holds stays unsynced, in one line.
            self._fail(act, "", reported=False)
            return
        try:
            self._do(act)
        except (SquirrelError, OSError) as e:
            self._failed(act, e)

    def _failed(self, act: Action, e: SquirrelError | OSError) -> None:
        """The action failed with `e`: reported, and the rest of the run
        stopped where nothing more can be done."""
        if isinstance(e, (OutOfSpace, BadBundle)):
            # Nothing more can be written (a full disk), or nothing more
            # the sender gives can be trusted (a damaged bundle): the rest
            # of the run fails with this error, and what is done stays.
            self._stop = e
            self._fail(act, str(e))
            return
        msg = reason(e)
        if act.kind == MKDIR and isinstance(e, OSError):
            # Nothing below a folder the file system would not make
            # can be synced: it stays as it is, reported in this one
            # line (a refusal of sq's own names each path it keeps).
            self._refused_dirs.add(act.path)
            msg = f"could not make this folder ({msg}); nothing in it is synced this time"
        self._fail(act, msg, isinstance(e, ContentUnavailable))

    def _count(self, act: Action) -> None:
        """The action is over (done, failed or given up): its file and all
        its bytes count as done, whatever part of them streamed."""
        if not moves_a_file(act):
            return
        size = act.a.size if act.kind == WRITE and act.a is not None else 0
        self.meter.file_done(size, self.fetch.streamed.pop(act.path, 0) if size else 0)

    def _sync_dirs(self) -> None:
        """Make the batch's renames durable before its index commit: one
        fsync per directory touched (and the trash), not one per file."""
        if self._dirty:
            self._dirty.add(os.fsencode(self.rep.trash_dir))
        for d in sorted(self._dirty):
            if os.path.isdir(d):  # a folder the batch made may be gone again
                fsync_dir(os.fsdecode(d))
        self._dirty.clear()

    def _record_conflicts(self, which: Iterable[int]) -> None:
        for ci in sorted(set(which) - self._conflicts_done):
            self._conflicts_done.add(ci)
            conflict = self.plan.conflicts[ci]
            if ci in self._conflict_failed:
                self.result.failed_paths.add(conflict.path)
                continue
            self.result.conflicts.append(conflict)
            conflicts.record(self.idx, conflict.record(self.rep.names(), self.rep.name, int(time.time())))

    def _undo_steps(self, act: Action) -> list[journal.Step]:
        """What the action may change on disk, as the intent log's undo steps."""
        if act.kind == WRITE:
            assert act.a is not None
            steps = [journal.removed(act.path, act.b)] if act.b is not None else []
            steps.append(journal.placed(act.path, act.a))
            # Moves last: undone first, before `placed` would take the file away.
            for i in self._move_sources.get(act.a.oid, []):
                src = self.plan.actions[i]
                assert src.b is not None
                steps.append(journal.moved(src.path, act.path, src.b))
            return steps
        if act.kind == DELETE:
            assert act.b is not None
            return [journal.removed(act.path, act.b)]
        if act.kind == MOVE_ASIDE:
            assert act.b is not None
            return [journal.moved(act.path, act.target, act.b)]
        if act.kind == MKDIR:
            return [journal.made_dir(act.path)]
        if act.kind == RMDIR:
            return [journal.removed_dir(act.path)]
        return []

    # Helpers -------------------------------------------------------------
    def _fail(self, act: Action, message: str, unavailable: bool = False, *, reported: bool = True) -> None:
        if reported:
            self.result.failed.append((act.path, message, unavailable))
        self.result.failed_paths.add(act.path)
        if act.conflict >= 0:
            self._conflict_failed.setdefault(act.conflict, (message, unavailable))
        if act.kind == MOVE_ASIDE:
            self.result.failed_paths.add(act.target)

    def _below_refused(self, rel: bytes) -> bool:
        return bool(self._refused_dirs) and any(p in self._refused_dirs for p in paths.ancestors(rel))

    def _abs(self, rel: bytes) -> bytes:
        return fsops.abspath(self.root, rel)

    def _raise(self, rel: bytes, m: VectorTime | None) -> None:
        if m:
            self.idx.raise_ancestors(rel, m)

    # Actions -----------------------------------------------------------------
    def _do(self, act: Action) -> None:
        # Whatever the sender's tree says, nothing is written outside the
        # replica or into .squirrel/ (under any case, for case-folding drives).
        paths.check_relpath(act.path)
        if act.kind == MOVE_ASIDE:
            paths.check_relpath(act.target)
        if not self.idx.fits(act.path):
            self._too_long(act)
        if act.kind == WRITE:
            self._write(act)
        elif act.kind == META:
            assert act.b is not None
            if not self._damaged_and_gone(act.path, act.b):  # new times only: the heal comes after
                place.recheck(self.root, act.path, act.b)
            m, c = act.times(self.new_event)
            record_version(self.idx, act.path, act.b, m, c)
        elif act.kind == DELETE and self._damaged_and_gone(act.path, act.b):
            record_deletion(self.idx, act.path, act.deletion_m)  # its damaged bytes are in the trash already
            self.result.deleted += 1
        elif act.kind == DELETE:
            assert act.b is not None
            place.check_parents(self.root, act.path)
            place.recheck(self.root, act.path, act.b)
            if act.conflict >= 0:  # B's version goes for a conflict: its winner must be at hand
                self._prepare_winner(act.conflict)
            # For a conflict, B's version also lives on in its conflict copy; the winner replaces it here.
            why = TrashReason(REPLACED if act.conflict >= 0 else DELETED, self.sender)
            item = place.trash(self.idx, self.rep.trash_dir, self.root, act.path, act.b, why)
            self._dirty.add(os.path.dirname(self._abs(act.path)))
            self.names.forget(act.path)
            self._trashed_now.setdefault(act.b.oid, []).append(item)
            record_deletion(self.idx, act.path, act.deletion_m)
            self.result.deleted += 1
        elif act.kind == RMDIR:
            self._rmdir(act)
        elif act.kind == MKDIR:
            self._mkdir(act)
        elif act.kind == MOVE_ASIDE:
            self._move_aside(act)
        elif act.kind == DIRMETA:
            self._dirmeta(act)
        elif act.kind == NOTICE:
            assert act.m is not None
            record_notice(self.idx, act.path, act.m)
        else:  # pragma: no cover - the planner makes no other kinds
            raise AssertionError(act.kind)

    def _too_long(self, act: Action) -> None:
        """Refuse a path the index cannot record (only a bundle can bring
        one: no scan records it) before anything of it is written: a file
        written but not recorded would be left out by every later scan. A
        folder is refused with everything below it, in one line."""
        self.result.lasting.add(act.path)
        if act.kind == MKDIR:
            self._refused_dirs.add(act.path)
        raise UnsafePath(refused_too_long(act.path, self.idx.max_path))

    def _mkdir(self, act: Action) -> None:
        place.check_parents(self.root, act.path)
        full = self._abs(act.path)
        # Claimed even when a folder is found there: on a case-folding drive
        # it may be another folder of the name, which must not take in this one's files.
        try:
            self.names.claim(act.path)
        except UnsafePath:
            self._refused_dirs.add(act.path)
            raise
        st = fsops.lstat_or_none(full)
        if st is None:
            os.mkdir(full)
            self._dirty.add(os.path.dirname(full))
            self.result.created += 1
        elif not statmod.S_ISDIR(st.st_mode):
            raise ChangedDuringOperation(f"{paths.display(act.path)} is in the way (not a directory)")
        if self.idx.get(act.path) is None:
            assert act.c is not None
            self.idx.put(act.path, new_dir(act.m or VectorTime(), act.c))

    def _dirmeta(self, act: Action) -> None:
        record_dirmeta(self.idx, act, self.result.failed_paths)

    def _rmdir(self, act: Action) -> None:
        if any(True for _ in self.idx.children(act.path)):
            raise ChangedDuringOperation(f"{paths.display(act.path)} still holds files that were not synced")
        full = self._abs(act.path)
        place.check_parents(self.root, act.path)
        st = fsops.lstat_or_none(full)
        if st is not None:
            if not statmod.S_ISDIR(st.st_mode):
                raise ChangedDuringOperation(f"{paths.display(act.path)} is no longer a directory")
            self._clear_leftovers(act.path)
            faults.point("unlink")
            os.rmdir(full)
            self.names.forget(act.path)
            self._dirty.add(os.path.dirname(full))
        record_deletion(self.idx, act.path, act.deletion_m)
        self.idx.drop_stored_sync(act.path)
        self.result.deleted += 1

    def _clear_leftovers(self, rel: bytes) -> None:
        """Ignored clutter (.DS_Store, ...) may remain in a directory being
        removed: move it into the trash. Anything else is an unscanned file,
        and the directory stays."""
        ignore = paths.IgnoreRules.for_replica(self.rep.root)
        left = os.listdir(self._abs(rel))
        for name in left:
            child = paths.join(rel, name)
            if not ignore.ignored(child, os.path.isdir(self._abs(child))):
                raise ChangedDuringOperation(
                    f"{paths.display(child)} appeared since the last scan; keeping its directory"
                )
        if left:
            folder = f"{LEFTOVERS_PREFIX}{time.time_ns()}"
            dest = os.path.join(os.fsencode(self.rep.trash_dir), folder.encode())
            os.makedirs(dest, exist_ok=True)
            for name in left:
                os.rename(self._abs(paths.join(rel, name)), os.path.join(dest, name))
            record_folder(self.idx, folder, rel, folder_size(dest), TrashReason(LEFTOVERS, self.sender))

    def _move_aside(self, act: Action) -> None:
        assert act.b is not None
        if self._damaged_and_gone(act.path, act.b):
            # Its only copy here rotted: the conflict waits until it is healed.
            raise ChangedDuringOperation(
                f"{paths.display(act.path)} is damaged and waits for healing; its conflict is settled after that"
            )
        place.check_parents(self.root, act.path)
        place.recheck(self.root, act.path, act.b)
        self._prepare_winner(act.conflict)
        if os.path.lexists(self._abs(act.target)):
            raise ChangedDuringOperation(f"{paths.display(act.target)} is in the way of a conflict copy")
        self.names.claim(act.target)
        faults.point("rename")
        os.rename(self._abs(act.path), self._abs(act.target))
        self.names.forget(act.path)
        self._dirty.add(os.path.dirname(self._abs(act.target)))
        record_move_aside(self.idx, act, self.new_event())
        self._now_holds(act.target, act.b.oid)

    def _prepare_winner(self, conflict: int) -> None:
        """The version that takes the path must be at hand before B's leaves
        it: content the sender cannot give fails the conflict here, with B's
        file still in place."""
        w = self._winner_writes.get(conflict)
        if w is not None and w.path not in self.fetch.prepared:
            self.fetch.put(w.path, self._fetch(w))

    def _local_chunks(self, oid: bytes) -> Iterable[bytes] | None:
        """The content from a copy the receiver already holds, if any."""
        if self._local is None:  # one pass over the index for every content the plan writes
            # From a sender that has every content, a small file costs less
            # to read from it than a pass over a large index to find a copy;
            # from a source of content by id (a bundle, the carrier), only
            # what it lacks is looked for. A large sync is made of many
            # plans, each with a pass of its own: 100,000 files applied
            # from a bundle made 500 passes over a growing index.
            wanted = worth_looking_for(self.plan, self.source)
            self._local = self.idx.paths_with_objects(wanted) if wanted else {}
            self._looked_for = wanted
        for p in self._local.get(oid, []):
            e = self.idx.get(p)  # what this run may have written there since
            full = self._abs(p)
            if e is not None and e.is_file and e.oid == oid and fsops.matches(fsops.lstat_or_none(full), e):
                return fsops.read_chunks(full, e)
        if oid not in self._looked_for:  # the sender gives it at less cost
            return None
        tp = fsops.trash_path(self.rep.trash_dir, oid)
        if os.path.isfile(tp):
            return fsops.read_chunks(tp)
        return None

    def _now_holds(self, rel: bytes, oid: bytes) -> None:
        """The receiver holds `oid` at `rel` from now on: a later write of the
        same content in this run copies it from there."""
        if self._local is not None:  # else the one pass over the index finds it
            self._local.setdefault(oid, []).append(rel)

    def _damaged_and_gone(self, rel: bytes, b: Entry | None) -> bool:
        """Is `rel` a damaged file that a repair moved to the trash (its
        index entry kept, waiting for healing)? A newer version replaces it,
        a deletion removes it, as if it were there."""
        return (
            b is not None
            and b.is_file
            and self.idx.wanted(rel) is not None
            and fsops.lstat_or_none(self._abs(rel)) is None
        )

    def _write(self, act: Action) -> None:
        if self._damaged_and_gone(act.path, act.b):
            act = replace(act, b=None)  # nothing left at the path to move to the trash
        a = act.a
        assert a is not None and a.kind == KIND_FILE
        rel = act.path
        # An early refusal, before any content is fetched: once per folder
        # and batch, as every rename into place checks again just before.
        folder = os.path.dirname(rel)
        if folder not in self._parents_seen:
            place.check_parents(self.root, rel)
            self._parents_seen.add(folder)
        m, c = act.times(self.new_event)
        # A move: the receiver deletes a file with this content in the same plan.
        # Only the files the intent log names for this batch (see _run_batch).
        moves = [
            i
            for i in self._move_sources.get(a.oid, [])
            if i not in self._skip
            and fsops.matches(fsops.lstat_or_none(self._abs(self.plan.actions[i].path)), self.plan.actions[i].b)
        ]
        if act.b is None:
            self.names.claim(rel, moves and self.plan.actions[moves[0]].path or None)
        for i in moves[:1]:
            self._place_new()  # a move renames a file of the user's: every action before it is done
            src = self.plan.actions[i]
            assert src.b is not None
            if self.names.same_file(src.path, rel):  # a case-only rename finds its source at the target
                place.install(self._abs(src.path), self.root, rel, sync=False)
            elif act.b is not None:  # the same atomic replace as any other update
                place.recheck(self.root, rel, act.b)
                self._replace(self._abs(src.path), rel, act.b)
            else:  # the rename checks that nothing is there (`place.rename_new`)
                place.install(self._abs(src.path), self.root, rel, sync=False, new=True)
            self._dirty.update((os.path.dirname(self._abs(src.path)), os.path.dirname(self._abs(rel))))
            faults.point("utime")
            os.utime(self._abs(rel), ns=(a.mtime_ns, a.mtime_ns), follow_symlinks=False)
            self._skip.add(i)
            self.names.forget(src.path)
            self.names.claim(rel)
            record_deletion(self.idx, src.path, src.deletion_m)
            self._record_file(rel, a, m, c, act.b is None)
            self.result.moved += 1
            self.result.deleted += 1
            return
        tmp = self.fetch.take(rel) or self._fetch(act)
        if may_wait(act):  # renamed into place with the next new files
            self._new_files.append(NewFile(act, os.fsencode(tmp), m, c))
            self._new_oids.add(a.oid)
            if len(self._new_files) >= PLACE_GROUP:
                self._place_new()
            return
        assert act.b is not None or act.conflict >= 0
        try:
            if act.b is not None:
                place.recheck(self.root, rel, act.b)
                st: place.Stat = self._replace(tmp, rel, act.b)
            else:  # the rename checks that nothing is there (`place.rename_new`)
                st = place.install(tmp, self.root, rel, sync=False, new=True)
            self._dirty.add(os.path.dirname(self._abs(rel)))
        except BaseException:
            fsops.remove_temp(tmp)
            raise
        self._record_file(rel, a, m, c, act.b is None, st)

    def _place_new(self) -> None:
        """Rename the new files waiting (`NewFile`) into place, in order and
        in one call (`place.install_new`: the same checks, each file's),
        and record each; one that fails is its action's failure, as if it
        had been renamed in its turn."""
        if not self._new_files:
            return
        waiting = self._new_files
        placed = place.install_new(self.root, [(new.tmp, new.act.path) for new in waiting])
        self._new_files = []  # each renamed now, or its failure below removes it
        self._new_oids.clear()
        for new, st in zip(waiting, placed, strict=True):
            if isinstance(st, (SquirrelError, OSError)):
                fsops.remove_temp(new.tmp)
                self._failed(new.act, st)
                continue
            assert new.act.a is not None
            self._dirty.add(os.path.dirname(self._abs(new.act.path)))
            self._record_file(new.act.path, new.act.a, new.m, new.c, True, st)

    def _replace(self, new: str | bytes, rel: bytes, old: Entry) -> os.stat_result:
        """Put `new` at `rel` over `old`, which goes to the trash (fsops);
        returns the stat of what is at `rel` now."""
        return place.replace_keeping_old(
            self.idx, self.rep.trash_dir, new, self.root, rel, old, False, reason=self._replaced
        )

    def _from_sender(self, i: int, act: Action, later: bool = False) -> bool:
        """Will this action's content come from the sender (no conflict, no
        move, no copy the receiver holds or this run put in the trash), which
        holds it? Content a bundle or the carrier lacks is looked for at its
        turn and deferred, never fetched ahead: counted as the sender's, each
        deferred file's turn would fetch the next writes ahead again, and a
        first visit of a new drive defers every file. `later`: the action is
        in the next batch, whose moves are not chosen yet: content the plan
        deletes anywhere may be its move's (it is fetched in its own batch)."""
        a = act.a
        if act.kind != WRITE or act.conflict >= 0 or a is None or a.kind != KIND_FILE:
            return False
        moves = a.oid in self._deletes if later else bool(self._move_sources.get(a.oid))
        return (
            i not in self._skip
            and not moves
            and not self._below_refused(act.path)
            and not self._trashed_now.get(a.oid)
            and (self._holds is None or self._holds(a.oid))
            and self._local_chunks(a.oid) is None
        )

    def _writes_from_sender(self, rest: list[int], following: list[int]) -> Iterator[Action]:
        """The actions of `rest`, then of the `following` batch, whose
        content will come from the sender, in order (asked one at a time,
        as the fetcher takes them). Content fetched ahead for the following
        batch is only a temporary file until that batch renames it into
        place; no further batch is looked at, so that each look ahead reads
        at most two batches of actions."""
        for i in rest:
            act = self.plan.actions[i]
            if self._from_sender(i, act):
                yield act
        for i in following:
            act = self.plan.actions[i]
            if self._from_sender(i, act, later=True):
                yield act

    def _fetch(self, act: Action) -> str:
        """A's content for a WRITE, verified, in a temporary file: from the
        trash (a file this run deleted), from a copy the receiver holds, or
        from the sender."""
        a = act.a
        assert a is not None
        failed = self.fetch.failed.pop(act.path, None)
        if failed is not None:  # fetching it ahead failed: the error is this action's
            raise failed
        tmp = self._from_trash(a)
        if tmp is not None:
            return tmp
        chunks = self._local_chunks(a.oid)
        if chunks is None:
            return self.fetch.from_source(act)
        self.result.local_copies += 1
        chunks = self.fetch.counted(chunks, act.path, False)
        return fsops.write_temp(self.rep.tmp_dir, chunks, a.oid, a.size, a.mtime_ns, a.mode)

    def _from_trash(self, a: Entry) -> str | None:
        """A file this run just deleted has the content we need: take it back
        out of the trash by renaming (a move never copies its bytes). Its
        trash item goes with it; when other items need the content too, it
        is copied instead (see `_local_chunks`)."""
        mine = self._trashed_now.get(a.oid)
        if not mine or len(self.idx.trash_items_of(a.oid)) > 1:
            return None
        item = mine.pop()
        src = fsops.trash_path(self.rep.trash_dir, a.oid)
        tmp = fsops.temp_path(self.rep.tmp_dir)
        try:
            faults.point("rename")
            os.rename(src, tmp)
            os.utime(tmp, ns=(a.mtime_ns, a.mtime_ns))
        except OSError:
            mine.append(item)
            return None
        self.idx.trash_drop(item)
        self.result.moved += 1
        return tmp

    def _record_file(
        self, rel: bytes, a: Entry, m: VectorTime, c: VectorTime, created: bool, st: place.Stat | None = None
    ) -> None:
        """Record the file now at `rel` (whose stat is `st`, when the caller
        has just taken it) as A's version."""
        if st is None:
            st = os.lstat(self._abs(rel))
        racy = racy_flag(st.st_mtime_ns, time.time_ns())
        entry = Entry(KIND_FILE, a.oid, st.st_size, statmod.S_IMODE(st.st_mode), st.st_mtime_ns, m, c, racy)
        self._raise(rel, m)
        self.idx.put(rel, entry)
        self.idx.drop_wanted(rel)  # a newer version ends a damaged file's wait
        self._now_holds(rel, a.oid)
        if created:
            self.result.created += 1
        else:
            self.result.updated += 1


def worth_looking_for(plan: Plan, source: ContentSource) -> set[bytes]:
    """The content `plan` writes that is looked for among the receiver's
    own files (and its trash) before the sender is asked for it: from a
    sender that has every content, only files of `LOCAL_FROM` bytes or
    more; from a source of content by id, what it does not hold."""
    smallest = LOCAL_FROM if getattr(source, "complete", False) else 0
    holds: Callable[[bytes], bool] | None = getattr(source, "has", None)
    return {
        act.a.oid
        for act in plan.actions
        if act.kind == WRITE
        and act.a is not None
        and act.a.size >= smallest
        and (holds is None or not holds(act.a.oid))
    }


def may_wait(act: Action) -> bool:
    """May the action's file wait to be renamed into place with the next
    ones (`Executor._place_new`)? A new file's, outside any conflict: no
    other action of the plan depends on its rename but a conflict's next
    step, and the rename replaces nothing."""
    return act.kind == WRITE and act.b is None and act.conflict < 0


def moves_a_file(act: Action) -> bool:
    """Does the action write, delete or move aside a file (what the
    progress counts as files)?"""
    if act.kind == WRITE:
        return True
    return act.kind in (DELETE, MOVE_ASIDE) and act.b is not None and act.b.is_file
