"""What carrying out a sync plan would do, decided without writing: the
dry run of `execute`.

A dry run must report what the real run would do, and the real run decides
some of it only while executing: a write whose content the sender cannot
give (a bundle packed with a size limit, a carrier that holds only part of
the content) fails as deferred, and a conflict fails whole with it. The
preview takes the same decisions, in the executor's order, from what the
receiver's index and disk and the content source say, and touches nothing.
"""

from __future__ import annotations

import os

from squirrel.plumbing import fsops, paths
from squirrel.plumbing.execute import ExecResult, refused_too_long, worth_looking_for
from squirrel.plumbing.fetch import ContentSource, missing_content
from squirrel.plumbing.index import Entry
from squirrel.plumbing.plan import DELETE, MKDIR, RMDIR, WRITE, Action, Plan
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.schedule import schedule


def preview(rep: Replica, plan: Plan, source: ContentSource, made: set[bytes] | None = None) -> ExecResult:
    """The result `Executor(rep, plan, source).run()` would have, as far as
    it can be known before writing. `made`: the folders earlier pieces of
    the same sync would make (updated here), so each is counted once."""
    return _Preview(rep, plan, source, made if made is not None else set()).run()


class _Preview:
    def __init__(self, rep: Replica, plan: Plan, source: ContentSource, made: set[bytes]) -> None:
        self.rep = rep
        self.plan = plan
        self.source = source
        self.made = made
        self.result = ExecResult()
        self.root = os.fsencode(rep.root)
        # Files the plan deletes, by content: a write of the same content renames one.
        self.deletes: dict[bytes, int] = {}
        for act in plan.actions:
            if act.kind == DELETE and act.b is not None and act.b.is_file:
                self.deletes[act.b.oid] = self.deletes.get(act.b.oid, 0) + 1
        self.local = self._local_copies()
        self.refused: set[bytes] = set()  # folders too long for the index: refused with all below them
        # Why each conflict fails, from the first of its steps that cannot be made.
        self.conflict_failed: dict[int, tuple[str, bool]] = {}  # why, and whether as content unavailable
        for act in plan.actions:
            if act.conflict >= 0 and act.conflict not in self.conflict_failed:
                if (why := self._too_long(act)) is not None:
                    self.conflict_failed[act.conflict] = (why, False)
                elif act.kind == WRITE and (why := self._unavailable(act)) is not None:
                    self.conflict_failed[act.conflict] = (why, True)

    def run(self) -> ExecResult:
        for batch in schedule(self.plan):
            for i in batch:
                self._act(self.plan.actions[i])
        self.result.conflicts = [c for i, c in enumerate(self.plan.conflicts) if i not in self.conflict_failed]
        for i, c in enumerate(self.plan.conflicts):
            if i in self.conflict_failed:
                self.result.failed_paths.add(c.path)
        return self.result

    def _act(self, act: Action) -> None:
        if act.conflict in self.conflict_failed:
            self._fail(act, *self.conflict_failed[act.conflict])
        elif self.refused and any(p in self.refused for p in paths.ancestors(act.path)):
            self.result.failed_paths.add(act.path)  # its folder is reported, in one line
        elif (why := self._too_long(act)) is not None:
            self.result.lasting.add(act.path)
            if act.kind == MKDIR:
                self.refused.add(act.path)
            self._fail(act, why, False)
        elif act.kind == WRITE:
            self._write(act)
        elif act.kind in (DELETE, RMDIR):
            self.result.deleted += 1
        elif act.kind == MKDIR and act.b is None and act.path not in self.made:
            self.made.add(act.path)
            if fsops.lstat_or_none(fsops.abspath(self.root, act.path)) is None:
                self.result.created += 1

    def _write(self, act: Action) -> None:
        a = act.a
        assert a is not None
        why = self._unavailable(act)
        if why is not None:
            self._fail(act, why, True)
            return
        if self.deletes.get(a.oid):  # the executor renames the deleted file: a move, no copy
            self.deletes[a.oid] -= 1
            self.result.moved += 1
        elif a.oid not in self.local:
            self.result.bytes_from_source += a.size
        if act.b is None:
            self.result.created += 1
        else:
            self.result.updated += 1

    def _too_long(self, act: Action) -> str | None:
        """Why the executor refuses the action's path, too long for the index, or None."""
        idx = self.rep.index
        return None if idx.fits(act.path) else refused_too_long(act.path, idx.max_path)

    def _unavailable(self, act: Action) -> str | None:
        """Why the content of a WRITE cannot be had, or None: the receiver
        has it (a file the plan deletes, a copy, its trash), or the sender."""
        a = act.a
        assert a is not None
        if self.deletes.get(a.oid) or a.oid in self.local:
            return None
        return missing_content(self.source, act.src_path or act.path, a)

    def _local_copies(self) -> set[bytes]:
        """The content the plan writes that the executor takes from the
        receiver rather than from the sender (see `Executor._local_chunks`)."""
        wanted = worth_looking_for(self.plan, self.source)
        found: set[bytes] = set()
        for oid, held in self.rep.index.paths_with_objects(wanted).items():
            if any(self._holds(p, oid) for p in held):
                found.add(oid)
        trash = self.rep.trash_dir
        return found | {oid for oid in wanted if os.path.isfile(fsops.trash_path(trash, oid))}

    def _holds(self, rel: bytes, oid: bytes) -> bool:
        e: Entry | None = self.rep.index.get(rel)
        full = fsops.abspath(self.root, rel)
        return e is not None and e.is_file and e.oid == oid and fsops.matches(fsops.lstat_or_none(full), e)

    def _fail(self, act: Action, why: str, unavailable: bool) -> None:
        self.result.failed.append((act.path, why, unavailable))
        self.result.failed_paths.add(act.path)
