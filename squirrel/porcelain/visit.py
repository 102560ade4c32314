"""`sq sync DRIVE`: the laptop's visit to a drive, through the carrier.

1. scan the drive (a drive the user had forgotten, `sq carrier forget`, is
   recognised by its record and taken back as a known drive after the
   delivery);
2. deliver to the drive every version the carrier knows and it does not
   (content from the carrier's objects, or from the drive itself for moves);
3. record what the drive now knows, and drop the objects every known drive has;
4. take from the drive every version the carrier does not know, keeping
   content only where another known drive lacks it, within the budget;
5. fill: copy from the drive the content of versions other drives still lack
   and the carrier has no copy of (a new drive is filled this way, visit by
   visit);
6. record the drive's knowledge again and drop what everyone has.

Every step is a one-way Tra sync or bookkeeping, so an interrupted visit is
finished by visiting again.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from squirrel.errors import ChangedDuringOperation, ContentUnavailable, SquirrelError, out_of_space, reason
from squirrel.plumbing import conflicts, fsops, paths
from squirrel.plumbing.carrier import CARRIER_NAME, Carrier, CarrierVault, is_carrier, refuse_occupied
from squirrel.plumbing.carrier_executor import CarrierExecutor
from squirrel.plumbing.index import Entry
from squirrel.plumbing.objects import Wanted
from squirrel.plumbing.pieces import outline_pieces, sync_in_pieces
from squirrel.plumbing.plan import Plan
from squirrel.plumbing.progress import Meter, ProgressCallback
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.scan import ScanProgress, ScanStats, scan_replica
from squirrel.plumbing.space import SPACE_RESERVE
from squirrel.plumbing.synctime import raise_sync_times
from squirrel.plumbing.wanted import WantedMark
from squirrel.porcelain.engine import ReplicaSource, SyncReport, check_not_behind, sync_into

if TYPE_CHECKING:
    from squirrel.plumbing.groups import GroupSpan
    from squirrel.porcelain.verify import VerifyReport

# The content a visit takes is located, opened and stored this many
# objects at a time: what the take holds at once (some 2 KiB each), where
# all of a first take of 100,000 small files held 233 MiB.
FILL_PIECE = 16384
# Content a visit takes: its id, the carrier's path of it, its size, and
# the drive's path and entry that hold it.
Taken = tuple[bytes, bytes, int, tuple[bytes, Entry]]


class StoreContent:
    """Content for delivery, from the carrier's objects."""

    # Why a version whose content the carrier lacks waits: the same words for
    # every such file (a new drive's first visit may defer a million).
    waits = "the carrier does not hold this version yet; a later visit brings it"

    def __init__(self, vault: CarrierVault) -> None:
        self.vault = vault

    def has(self, oid: bytes) -> bool:
        return self.vault.store.has(oid)

    def chunks(self, path: bytes, entry: Entry) -> Iterable[bytes]:
        if not self.vault.store.has(entry.oid):
            raise ContentUnavailable(self.waits)
        return self.vault.store.chunks(entry.oid)

    def span(self, path: bytes, entry: Entry) -> fsops.Span:
        span = self.vault.store.span(entry.oid)
        if span is None:
            raise ContentUnavailable(self.waits)
        return span

    def group_span(self, path: bytes, entry: Entry) -> GroupSpan:
        span = self.vault.store.group_span(entry.oid, entry.size)
        if span is None:
            raise ContentUnavailable(self.waits)
        return span


@dataclass
class VisitReport:
    """What a visit of the laptop to a drive did, and what waits for other drives."""

    drive: str
    delivered: SyncReport = field(default_factory=SyncReport)
    taken: int = 0
    stored: int = 0
    stored_bytes: int = 0
    filled: int = 0
    filled_bytes: int = 0
    left_behind: list[tuple[bytes, int]] = field(default_factory=list)
    dropped: int = 0
    dropped_bytes: int = 0
    carrier_bytes: int = 0
    budget: int = 0
    known_drives: int = 0
    forgotten: int | None = None  # when the drive had been forgotten, if it had
    dry_run: bool = False
    # Why a visit carried nothing, and where what it could not deliver is:
    alone: bool = False  # the carrier knows no other drive of the vault: it has nothing to carry
    unvisited: list[str] = field(default_factory=list)  # drives of the vault the carrier never visited
    waiting_on: list[tuple[str, int]] = field(default_factory=list)  # known drives holding what waits, and how many
    waiting_nowhere: int = 0  # versions that wait and that no known drive holds
    scrubbed: VerifyReport | None = None  # the slice of the drive's scrub this visit read
    lost: list[WantedMark] = field(default_factory=list)  # damaged files no known drive (nor the carrier) holds
    scan: ScanStats | None = None  # the drive's scan (its skipped paths)


def visit(
    drive_path: str,
    carrier_path: str,
    max_size: int | None = None,
    dry_run: bool = False,
    scan_progress: ScanProgress | None = None,
    progress: ProgressCallback | None = None,
    allow_mass_delete: bool = False,
    scrub: int | None = None,
) -> VisitReport:
    """One visit of the laptop to a drive (see the module docstring).
    `scrub`: the content of the drive to re-read for rot, repairing what is
    damaged (None: the carrier's setting; 0: none)."""
    with Replica.open(drive_path) as drive:
        if dry_run:
            drive.index.hold_writes()
        if dry_run and not is_carrier(carrier_path):
            # No carrier yet: the first visit would take everything, if it may make one there.
            refuse_occupied(os.path.abspath(carrier_path))
            seen = scan_replica(drive, scan_progress, allow_mass_delete)
            taken = sum(1 for _ in drive.index.walk(b"")) - 1
            report = VisitReport(drive.name, taken=taken, dry_run=True, budget=0, known_drives=0, alone=True)
            report.scan = seen.stats
            report.unvisited = _unvisited(drive, set())
            return report
        carrier = Carrier(carrier_path, create=not dry_run)
        if max_size is not None and not dry_run:
            carrier.set_max_size(max_size)
        budget = carrier.max_size if max_size is None else max_size
        vault = carrier.open_vault(drive.identity.vault, create=not dry_run)
        scrub = carrier.scrub if scrub is None else scrub
        try:
            return _visit(drive, carrier, vault, budget, dry_run, scan_progress, progress, allow_mass_delete, scrub)
        finally:
            vault.close()


def _visit(
    drive: Replica,
    carrier: Carrier,
    vault: CarrierVault,
    budget: int,
    dry_run: bool,
    scan_progress: ScanProgress | None,
    progress: ProgressCallback | None,
    allow_mass_delete: bool,
    scrub: int = 0,
) -> VisitReport:
    report = VisitReport(drive.name, budget=budget, dry_run=dry_run)
    vault.check_token(drive)
    check_not_behind(drive, vault.index.sync_time(b""), "the carrier")
    record = vault.record_of(drive.id)
    if record is not None:
        check_not_behind(drive, record.knowledge.sync_time(b""), "the carrier's record of its last visit")
        report.forgotten = record.forgotten
    seen = scan_replica(drive, scan_progress, allow_mass_delete)
    report.scan = seen.stats
    if scrub and not dry_run:
        # 1b. a slice of the drive's scrub: damaged files go aside, and the
        # carrier hears below what they wait for
        # Imported here: a visit without a scrub slice never needs it (1.5-2 ms).
        from squirrel.porcelain import verify as verify_mod

        report.scrubbed = verify_mod.scrub(drive, scrub, progress)
    guard = None if allow_mass_delete else seen.stats.files
    drive.learn_names(vault.rep.names())
    vault.rep.learn_names(drive.names())
    # 2. deliver
    report.delivered = sync_into(
        drive,
        vault.index,
        StoreContent(vault),
        vault.rep.names(),
        [],
        dry_run,
        progress,
        guard,
        vault.rep.name,
        phase=f"delivering to {drive.name}",
    )
    if dry_run:
        report.taken = sum(len(plan.actions) for plan in outline_pieces(drive.index, vault.index, b""))
        report.carrier_bytes = carrier.usage()
        report.known_drives = len({d.id for d in vault.drives()} | {drive.id})  # the visit records the drive
        _others(drive, vault, report)
        return report
    # 3. record what the drive knows now; free what everyone has. A forgotten
    # drive is known again from here on, with what it held when forgotten.
    if report.forgotten is not None:
        vault.take_back(drive.id)
    vault.record_drive(drive)
    d, b = vault.drop_unneeded()
    report.dropped += d
    report.dropped_bytes += b
    # 4. take
    left = _room(carrier, budget)
    carrying = Meter(f"carrying in from {drive.name}", progress)  # the take and the fill
    source = ReplicaSource(drive.root)

    full = False  # the laptop's disk was found full: nothing more fits this visit

    def take(plan: Plan, failed_before: set[bytes]) -> set[bytes]:
        """Take one piece of the drive's changes into the carrier."""
        nonlocal full
        room = 0 if full else left - report.stored_bytes
        res = CarrierExecutor(vault, plan, source, drive.id, room, carrying, failed_before).run()
        full = full or res.full
        vault.rep.recheck_identity()
        for subtree in plan.tops:
            raise_sync_times(vault.index, drive.index, subtree, res.failed_paths)
        vault.index.commit()
        report.taken += res.taken
        report.stored += res.stored
        report.stored_bytes += res.stored_bytes
        report.left_behind += res.left_behind
        for path, why, unavailable in res.failed:
            if not unavailable:
                report.delivered.failed.append((path, f"not taken into the carrier: {why}"))
        return res.failed_paths - failed_before

    sync_in_pieces(drive.index, vault.index, b"", take)
    conflicts.carry(drive.index.conflicts(), vault.index)
    vault.index.commit()
    # 5. fill
    if not full:
        _fill(drive, carrier, vault, budget, report, carrying)
    # 6. bookkeeping
    vault.rotate_token(drive)
    d, b = vault.drop_unneeded()
    report.dropped += d
    report.dropped_bytes += b
    _forget_known_deletions(drive, vault)
    report.carrier_bytes = carrier.usage()
    report.known_drives = len(vault.drives())
    drive.trash.apply_policy()
    _others(drive, vault, report)
    report.lost = _lost(drive, vault)
    return report


def _lost(drive: Replica, vault: CarrierVault) -> list[WantedMark]:
    """The drive's damaged files whose content no other known drive held at
    its last visit and the carrier does not hold: lost, unless a drive the
    carrier does not know has them."""
    others = [d for d in vault.drives() if d.id != drive.id]
    return [
        w
        for w in drive.index.wanted_marks()
        if not vault.store.has(w.oid) and not any(w.oid in vault.objects_of(d) for d in others)
    ]


def _forget_known_deletions(drive: Replica, vault: CarrierVault) -> None:
    """A deletion notice every known drive and the carrier know is needed no
    more (docs/formats/index.md, "deleted"): the drive and the carrier drop
    it, so the indexes do not grow with the number of deletions."""
    everyone = vault.everyone_knows()
    if everyone is None:
        return
    for idx in (drive.index, vault.index):
        idx.drop_notices_known_to(everyone)
        idx.commit()


def _others(drive: Replica, vault: CarrierVault, report: VisitReport) -> None:
    """What the other drives have to do with this visit: whether the carrier
    knows any (content is carried only for them), the drives of the vault it
    never visited, and which known drives hold what waits for this one."""
    others = [d for d in vault.drives() if d.id != drive.id]
    report.alone = not others
    report.unvisited = _unvisited(drive, {d.id for d in vault.drives() + vault.forgotten()} | {vault.rep.id})
    holding: dict[str, int] = {}
    for path, _ in report.delivered.deferred:
        e = vault.index.get(path)
        if e is None or not e.is_file:
            continue
        held = [d.name for d in others if e.oid in vault.objects_of(d)]
        for name in held:
            holding[name] = holding.get(name, 0) + 1
        report.waiting_nowhere += not held
    report.waiting_on = sorted(holding.items(), key=lambda item: (-item[1], item[0]))


def _unvisited(drive: Replica, known: set[str]) -> list[str]:
    """The replicas of the vault the drive has heard of that the carrier
    does not know (but for other carriers)."""
    return sorted(
        name for rid, name in drive.names().items() if rid != drive.id and rid not in known and name != CARRIER_NAME
    )


def _room(carrier: Carrier, budget: int) -> int:
    """What the carrier may still take: its budget, and the laptop's free space."""
    free = shutil.disk_usage(carrier.root).free - SPACE_RESERVE
    return max(0, min(budget - carrier.usage(), free))


def _fill(
    drive: Replica, carrier: Carrier, vault: CarrierVault, budget: int, report: VisitReport, meter: Meter
) -> None:
    """Copy from the drive content that other drives lack and the carrier does
    not hold, while it fits."""
    others = [d for d in vault.drives() if d.id != drive.id]
    if not others:
        return
    # (path, size) of each content to take, by object id. The carrier's
    # entries are not decoded (`lacking_files`): their id and size are all
    # the fill needs of them.
    wanted: dict[bytes, tuple[bytes, int]] = {}
    for other in others:
        for path, oid, size in vault.lacking_files(other):
            if oid not in wanted and oid not in vault.objects_of(other) and not vault.store.has(oid):
                wanted[oid] = (path, size)
    # The content damaged files on other drives wait for: healed at their next visit.
    for oid, waiting in vault.wanted(others).items():
        if oid not in wanted and not vault.store.has(oid):
            _, path = waiting[0]
            e = vault.index.get(path)
            if e is not None and e.is_file and e.oid == oid:
                wanted[oid] = (path, e.size)
    if not wanted:
        return
    meter.expect(len(wanted), sum(size for _, size in wanted.values()))
    room = _room(carrier, budget)
    said = set(report.left_behind)
    # Each content is looked for at the carrier's path of it first; what is
    # not there is looked for by content at the end, in one pass over the
    # drive's index. What the take holds is a piece at a time (`FILL_PIECE`).
    elsewhere: list[tuple[bytes, bytes, int]] = []

    def at_its_path() -> Iterator[Taken]:
        for oid, (path, size) in wanted.items():
            local = _local_copy(drive, [path], oid)
            if local is None:
                elsewhere.append((oid, path, size))
            else:
                yield oid, path, size, local

    def at_other_paths() -> Iterator[Taken]:
        wanted.clear()  # all looked for at their paths
        holders = drive.index.paths_with_objects([oid for oid, _, _ in elsewhere]) if elsewhere else {}
        for oid, path, size in elsewhere:
            found = _local_copy(drive, holders.get(oid, []), oid)
            if found is None:  # no copy of it here now: nothing to take
                meter.file_done(size)
            else:
                yield oid, path, size, found

    damaged: list[Taken] = []  # content a damaged file of the drive could not give
    for taken in (at_its_path(), at_other_paths()):
        while piece := list(itertools.islice(taken, FILL_PIECE)):
            room = _store(drive, vault, piece, room, said, report, meter, damaged)
    _from_other_copies(drive, vault, damaged, room, said, report, meter)


def _from_other_copies(
    drive: Replica,
    vault: CarrierVault,
    damaged: list[Taken],
    room: int,
    said: set[tuple[bytes, int]],
    report: VisitReport,
    meter: Meter,
) -> None:
    """Content the fill found damaged in the drive's file it read (its
    bytes no longer hash to its id, its size and time unchanged), taken
    from another copy on the drive that is as indexed, while one is
    left. Each damaged file is reported either way: it waits for `sq
    verify --repair` to set it aside, and to be healed."""
    tried = {local[0] for _, _, _, local in damaged}
    bad = {local[0]: oid for oid, _, _, local in damaged}  # each damaged file, and its content
    took_from: dict[bytes, bytes] = {}  # content -> the path it was taken from at last
    while damaged:
        holders = drive.index.paths_with_objects([oid for oid, _, _, _ in damaged])
        retry: list[Taken] = []
        for oid, path, size, _ in damaged:
            other = _local_copy(drive, [p for p in holders.get(oid, []) if p not in tried], oid)
            if other is not None:
                tried.add(other[0])
                retry.append((oid, path, size, other))
                took_from[oid] = other[0]
        damaged = []
        if retry:
            meter.expect(len(retry), sum(size for _, _, size, _ in retry))
            room = _store(drive, vault, retry, room, said, report, meter, damaged)
            bad.update({local[0]: oid for oid, _, _, local in damaged})
    for path, oid in bad.items():
        if oid in took_from and took_from[oid] not in bad and vault.store.has(oid):
            why = (
                f"{_damaged_note(drive)} (its content was taken into the carrier from {paths.display(took_from[oid])})"
            )
        else:
            why = f"not taken into the carrier: {_damaged_note(drive)}"
        report.delivered.failed.append((path, why))


def _store(
    drive: Replica,
    vault: CarrierVault,
    piece: list[Taken],
    room: int,
    said: set[tuple[bytes, int]],
    report: VisitReport,
    meter: Meter,
    damaged: list[Taken],
) -> int:
    """`_fill`'s copy into the carrier of a piece of the content it takes,
    while it fits in `room` (what is left of the carrier's budget); returns
    the room left after it. What a damaged file could not give joins
    `damaged`, its room given back."""
    fits: dict[bytes, Taken] = {}
    for taken in piece:
        oid, path, size, _ = taken
        if size > room:
            _left_behind(path, size, said, report)
            meter.file_done(size)
            continue
        fits[oid] = taken
        room -= size
    if not fits:
        return room
    source = ReplicaSource(drive.root)

    def reader(lp: bytes, le: Entry) -> Callable[[], Iterable[bytes]]:
        return lambda: meter.stream(source.chunks(lp, le))

    before = meter.progress.bytes_done
    stored = vault.store.put_many(
        [
            Wanted(
                oid,
                size,
                reader(lp, le),
                partial(source.span, lp, le),
                meter.add_bytes,
            )
            for oid, _, size, (lp, le) in fits.values()
        ]
    )
    for oid, failed in stored:
        _, path, size, local = fits[oid]
        # What streamed since the last result (a whole group's bytes, for
        # the first result of a group) is counted already: each file
        # counts its size once.
        meter.file_done(size, meter.progress.bytes_done - before)
        before = meter.progress.bytes_done
        if failed is None:
            report.filled += 1
            report.filled_bytes += size
        elif out_of_space(failed):
            room = 0  # the laptop's disk is full: nothing more fits this visit
            _left_behind(path, size, said, report)
        elif _is_damaged(drive, local, failed):
            damaged.append(fits[oid])
            room += size
        elif not isinstance(failed, ContentUnavailable):
            report.delivered.failed.append((local[0], f"not taken into the carrier: {reason(failed)}"))
    return room


def _left_behind(path: bytes, size: int, said: set[tuple[bytes, int]], report: VisitReport) -> None:
    if (path, size) not in said:  # the take may have said so already
        said.add((path, size))
        report.left_behind.append((path, size))


def _damaged_note(drive: Replica) -> str:
    """What the visit says of a damaged file it read: no later visit takes
    its content from it until it is set aside (and healed from a drive
    that has it)."""
    return (
        "its content no longer matches the drive's index, though its size and time do: damaged?"
        f" `sq verify {drive.root} --repair` sets it aside, to be healed from a drive that has it"
    )


def _is_damaged(drive: Replica, held: tuple[bytes, Entry], err: SquirrelError | OSError) -> bool:
    """Did reading the drive's file `held` fail as a damaged file does: its
    bytes do not hash to its id, its size and time are still as indexed?"""
    path, e = held
    return isinstance(err, ChangedDuringOperation) and fsops.matches(
        fsops.lstat_or_none(fsops.abspath(os.fsencode(drive.root), path)), e
    )


def _local_copy(drive: Replica, candidates: list[bytes], oid: bytes) -> tuple[bytes, Entry] | None:
    """The first of the drive's paths indexed as holding the content `oid`
    that is still as indexed."""
    root = os.fsencode(drive.root)
    for p in candidates:
        e = drive.index.get(p)
        if (
            e is not None
            and e.is_file
            and e.oid == oid
            and fsops.matches(fsops.lstat_or_none(fsops.abspath(root, p)), e)
        ):
            return p, e
    return None
