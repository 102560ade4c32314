"""Taking a drive's versions into the carrier: the carrier is a Tra replica
with no files, so a plan (drive -> carrier) is carried out on its index
alone, and content is stored only where another known drive still lacks
the version and it fits in the budget. Storage: `carrier`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from squirrel.errors import ChangedDuringOperation, ContentUnavailable, OutOfSpace, SquirrelError, out_of_space, reason
from squirrel.plumbing import paths
from squirrel.plumbing.carrier import CarrierVault
from squirrel.plumbing.execute import moves_a_file
from squirrel.plumbing.fetch import ContentSource, span_of
from squirrel.plumbing.index import Entry, new_dir
from squirrel.plumbing.ledger import (
    FailedPaths,
    record_deletion,
    record_dirmeta,
    record_move_aside,
    record_notice,
    record_version,
)
from squirrel.plumbing.objects import TOGETHER_BYTES, TOGETHER_FILES, Wanted
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
from squirrel.plumbing.progress import Meter
from squirrel.plumbing.vtime import VectorTime


@dataclass
class CarrierResult:
    """What taking one plan's changes into the carrier did."""

    taken: int = 0  # versions recorded
    stored: int = 0  # objects stored
    stored_bytes: int = 0
    left_behind: list[tuple[bytes, int]] = field(default_factory=list)
    full: bool = False  # the laptop's disk was found full: nothing more fits this visit
    conflicts: list[Conflict] = field(default_factory=list)
    failed: list[tuple[bytes, str, bool]] = field(default_factory=list)
    failed_paths: FailedPaths = field(default_factory=FailedPaths)


class CarrierExecutor:
    """Carry out a plan (drive -> carrier) on the carrier's index: metadata
    always, content only when another known drive lacks the version and it
    fits in the budget."""

    def __init__(
        self,
        vault: CarrierVault,
        plan: Plan,
        source: ContentSource,
        drive_id: str,
        budget_left: int,
        meter: Meter | None = None,
        failed_before: set[bytes] | None = None,
    ) -> None:
        self.vault = vault
        self.idx = vault.index
        self.plan = plan
        self.source = source
        self.others = [d for d in vault.drives() if d.id != drive_id]
        self.budget_left = budget_left
        self.result = CarrierResult(failed_paths=FailedPaths(failed_before or ()))
        self._event: VectorTime | None = None
        self._index = -1  # the action being carried out
        self.meter = meter if meter is not None else Meter("")
        # Which versions' content to store, decided before anything is taken,
        # so that the progress knows the bytes to come (action index -> entry).
        self._wanted = self._content_wanted()
        # Content stored ahead of its action (see `_store_ahead`): action index -> None or why not.
        self._stored_ahead: dict[int, SquirrelError | OSError | None] = {}
        files = sum(1 for a in plan.actions if moves_a_file(a))
        self.meter.expect(files, sum(e.size for e in self._wanted.values()))

    def new_event(self) -> VectorTime:
        if self._event is None:
            self._event = self.idx.next_event()
        return self._event

    def _content_wanted(self) -> dict[int, Entry]:
        """The WRITEs whose content another known drive lacks and the
        carrier does not hold yet, by action index."""
        wanted: dict[int, Entry] = {}
        for i, act in enumerate(self.plan.actions):
            a = act.a
            if act.kind != WRITE or act.conflict >= 0 or a is None or not a.is_file or self.vault.store.has(a.oid):
                continue
            if act.m is None:  # a new event of the carrier: no other drive knows it
                needed = any(a.oid not in self.vault.objects_of(d) for d in self.others)
            else:
                m = act.m if act.join is None else act.m.join(act.join.m)
                needed = self.vault.needed_by_others(act.path, m, a.oid, self.others)
            if needed:
                wanted[i] = a
        return wanted

    def run(self) -> CarrierResult:
        bad_conflicts: set[int] = set()
        for i, act in enumerate(self.plan.actions):
            self._index = i
            before = self.meter.progress.bytes_done
            try:
                self._do(act)
            except (SquirrelError, OSError) as e:
                msg = reason(e)
                self.result.failed.append((act.path, msg, isinstance(e, ContentUnavailable)))
                self.result.failed_paths.add(act.path)
                if act.conflict >= 0:
                    bad_conflicts.add(act.conflict)
            if moves_a_file(act):  # stored, left behind, not wanted or failed: its bytes are done with
                wanted = self._wanted.pop(i, None)
                self.meter.file_done(wanted.size if wanted else 0, self.meter.progress.bytes_done - before)
            self.idx.maybe_commit()
        for ci, c in enumerate(self.plan.conflicts):
            if ci in bad_conflicts:
                self.result.failed_paths.add(c.path)
            else:
                self.result.conflicts.append(c)
        return self.result

    def _do(self, act: Action) -> None:
        if act.conflict >= 0:
            # Concurrent versions are settled on a drive, which holds (or is
            # brought) both contents and lists the conflict for `sq resolve`.
            raise ContentUnavailable(
                f"{paths.display(act.path)} was changed on two drives: it is settled on a drive at a later visit"
            )
        if act.kind == WRITE:
            a = act.a
            assert a is not None
            m, c = act.times(self.new_event)
            self._content(act.src_path or act.path, act.path, a)
            record_version(self.idx, act.path, a, m, c)
            self.result.taken += 1
        elif act.kind == META:
            assert act.b is not None
            m, c = act.times(self.new_event)
            record_version(self.idx, act.path, act.b, m, c)
        elif act.kind in (DELETE, RMDIR):
            if act.kind == RMDIR and any(True for _ in self.idx.children(act.path)):
                raise ChangedDuringOperation(f"{paths.display(act.path)} still holds entries that were not synced")
            record_deletion(self.idx, act.path, act.deletion_m)
            self.result.taken += 1
        elif act.kind == MKDIR:
            if self.idx.get(act.path) is None:
                assert act.c is not None
                self.idx.put(act.path, new_dir(act.m or VectorTime(), act.c))
        elif act.kind == MOVE_ASIDE:
            record_move_aside(self.idx, act, self.new_event())
        elif act.kind == NOTICE:
            assert act.m is not None
            record_notice(self.idx, act.path, act.m)
        elif act.kind == DIRMETA:
            record_dirmeta(self.idx, act, self.result.failed_paths)

    def _content(self, src_path: bytes, path: bytes, a: Entry) -> None:
        """Store the content when another drive lacks it and it fits. When it
        does not fit, the version is still recorded, without its content:
        the carrier then knows it exists (what is at risk, what each drive
        lacks), and a later visit of a drive that holds it copies the
        content in once there is room (the visit's fill)."""
        i = self._index
        if i not in self._stored_ahead and (i not in self._wanted or self.vault.store.has(a.oid)):
            return  # (another path brought it)
        if i not in self._stored_ahead:
            self._store_ahead(i)
        failed = self._stored_ahead.pop(i)
        if out_of_space(failed):
            self.result.left_behind.append((path, a.size))
            if failed is not _NO_ROOM:
                self.budget_left = 0  # the laptop's disk is full: nothing more fits this visit
                self.result.full = True
            return
        if failed is not None:
            raise failed
        self.result.stored += 1
        self.result.stored_bytes += a.size

    def _store_ahead(self, first: int) -> None:
        """Store the content of this action and of the next ones that want
        theirs, together (ObjectStore.put_many: one durable commit for many
        small objects, a large one fsynced while the next is read), each
        taking its room in the budget in turn; `_content` takes each
        result when its action's turn comes."""
        wanted: list[Wanted] = []
        owners: dict[bytes, int] = {}
        size = 0
        for j in range(first, len(self.plan.actions)):
            if len(wanted) >= TOGETHER_FILES or (wanted and size >= TOGETHER_BYTES):
                break
            a = self._wanted.get(j)
            if a is None or j in self._stored_ahead or a.oid in owners or self.vault.store.has(a.oid):
                continue
            act = self.plan.actions[j]
            if a.size > self.budget_left:
                self._stored_ahead[j] = _NO_ROOM
                continue
            self.budget_left -= a.size
            owners[a.oid] = j
            size += a.size
            src = act.src_path or act.path
            wanted.append(
                Wanted(
                    a.oid,
                    a.size,
                    self._reader(src, a),
                    partial(span_of, self.source, src, a),
                    self.meter.add_bytes,
                )
            )
        for oid, failed in self.vault.store.put_many(wanted):
            j = owners[oid]
            if failed is not None:
                self.budget_left += self._wanted[j].size
            self._stored_ahead[j] = failed
        if first not in self._stored_ahead:  # its content came meanwhile under another path
            self._stored_ahead[first] = None

    def _reader(self, src_path: bytes, a: Entry) -> Callable[[], Iterable[bytes]]:
        return lambda: self.meter.stream(self.source.chunks(src_path, a))


# A stored-ahead result: the content did not fit in the budget.
_NO_ROOM = OutOfSpace("no room left in the carrier's budget")
