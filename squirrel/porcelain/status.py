"""`sq status`: what changed on disk since the last scan, without recording it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from squirrel.plumbing.conflicts import listed
from squirrel.plumbing.records import ConflictRecord
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.scan import DELETED, TOUCHED, Change, Scanner, ScanProgress, ScanStats, find_moves
from squirrel.plumbing.trashcan import Usage
from squirrel.plumbing.wanted import ScrubState, WantedMark


@dataclass
class StatusReport:
    """A replica's state: its unrecorded changes, open conflicts, trash and damaged files."""

    changes: list[Change] = field(default_factory=list)
    moved: list[tuple[bytes, bytes]] = field(default_factory=list)
    conflicts: list[ConflictRecord] = field(default_factory=list)
    stats: ScanStats = field(default_factory=ScanStats)
    interrupted: bool = False  # a sync killed halfway left its intent log
    trash: Usage = Usage(0, 0)  # what the trash holds
    waiting: list[WantedMark] = field(default_factory=list)  # damaged files waiting for healing
    scrub: ScrubState = ScrubState()  # when the replica was last fully scrubbed

    @property
    def pending(self) -> list[Change]:
        """Changes that a scan would record as new versions."""
        return [c for c in self.changes if c.kind != TOUCHED]

    @property
    def dirty(self) -> bool:
        return bool(self.pending or self.conflicts or self.interrupted or self.waiting)


def status(path: str, progress: ScanProgress | None = None) -> StatusReport:
    with Replica.open(path, write=False) as replica:
        scanner = Scanner(replica.root, replica.index, progress=progress)
        scanner.stats.replica = replica.name
        changes = list(scanner.changes())
        expanded: list[Change] = []
        for ch in changes:
            if ch.kind == DELETED and ch.old is not None and ch.old.is_dir:
                expanded += [Change(DELETED, p, None, e) for p, e in replica.index.walk(ch.path) if e.is_file]
        moved = find_moves(changes + expanded)
        interrupted = os.path.exists(replica.journal.path)
        open_conflicts = listed(replica.index)
        trash = replica.trash.usage()
        waiting = replica.index.wanted_marks()
        scrub = replica.index.scrub_state()
        return StatusReport(changes, moved, open_conflicts, scanner.stats, interrupted, trash, waiting, scrub)
