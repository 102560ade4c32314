"""`sq pack`: write a bundle of the versions a receiver does not know yet.

The walk mirrors the planner's: a directory whose modification time the
receiver's sync time covers is written as one *partial* entry, without its
children, so packing costs what changed, not what exists. Content is added
for every file version the receiver does not know, unless the receiver is
known to hold the same content already (a move, a duplicate), and only while
it fits under `max_size`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import TypeVar

from squirrel.errors import BadPath, SquirrelError, WrongVault
from squirrel.plumbing import conflicts, fsops, paths
from squirrel.plumbing.bundle_writer import BundleWriter, header_for
from squirrel.plumbing.index import FLAG_PARTIAL, FLAG_RACY, Entry, ReplicaIndex
from squirrel.plumbing.knowledge import Knowledge
from squirrel.plumbing.plan import widen_top
from squirrel.plumbing.progress import Meter, ProgressCallback
from squirrel.plumbing.readahead import spans_ahead
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.scan import ScanProgress, ScanStats, scan_replica
from squirrel.plumbing.userfiles import check_output_file
from squirrel.plumbing.vtime import VectorTime
from squirrel.porcelain.engine import check_two_replicas, unknown_subpaths

T = TypeVar("T")

READ_BLOCK = 4 << 20  # large reads: blake3's threads and the bundle's hash work on big blocks


@dataclass
class PackReport:
    """What a bundle holds, and what was left out of it."""

    path: str
    size: int = 0
    entries: int = 0
    objects: int = 0
    object_bytes: int = 0
    content_bytes: int = 0
    left_behind: list[tuple[bytes, int]] = field(default_factory=list)  # (path, size) not carried
    known_elsewhere: int = 0  # objects left out because the receiver has them
    unknown_subpaths: list[str] = field(default_factory=list)  # SUBPATHs the sender knows nothing of
    scans: list[ScanStats] = field(default_factory=list)  # the scans before packing (their skipped paths)
    dry_run: bool = False


class _Packer:
    def __init__(self, rep: Replica, know: Knowledge, max_size: int | None) -> None:
        self.rep = rep
        self.idx = rep.index
        self.know = know
        self.max_size = max_size
        self.emitted: set[bytes] = set()
        self.entries: list[tuple[bytes, Entry]] = []
        self.notices: dict[bytes, VectorTime] = {}
        self.wanted: dict[bytes, tuple[bytes, Entry]] = {}  # oid -> (path, entry)
        self.known_elsewhere = 0

    def emit(self, path: bytes, entry: Entry) -> None:
        if path in self.emitted:
            return
        self.emitted.add(path)
        self.entries.append((path, replace(entry, flags=entry.flags & ~FLAG_RACY)))

    def drop_held(self) -> None:
        """Leave out the content the receiver holds. Only what its index (or
        knowledge file) says it holds counts: a version it once knew may
        have been deleted since."""
        held = self.know.held_among(set(self.wanted))
        for oid in held:
            del self.wanted[oid]
        self.known_elsewhere = len(held)

    def walk(self, path: bytes, entry: Entry, s_k: VectorTime) -> None:
        if entry.is_dir:
            if entry.m <= s_k:
                self.emit(path, replace(entry, flags=entry.flags | FLAG_PARTIAL))
                return
            self.emit(path, entry)
            self.emit_notices(path)
            for name, child in self.idx.children(path):
                cp = paths.join(path, name)
                self.walk(cp, child, self.know.sync_time_below(cp, s_k))
            return
        self.emit(path, entry)
        # What the sender deleted below a file (when it was a folder, or
        # learned of since) goes along: the receiver learns what it lacks.
        self.notices.update(self.idx.notices_under(path))
        if entry.m <= s_k:
            return
        if entry.oid not in self.wanted:
            self.wanted[entry.oid] = (path, entry)  # unless the receiver holds it (`drop_held`)

    def add_heals(self, tops: list[bytes]) -> None:
        """The content the receiver's damaged files wait for, where the
        sender has it (at that path or any other): applying the bundle
        heals them."""
        for p, oid in sorted(self.know.wanted.items()):
            if oid in self.wanted or not any(paths.is_under(p, t) for t in tops):
                continue
            e = self.idx.get(p)
            if e is None or not e.is_file or e.oid != oid:
                found = [(q, self.idx.get(q)) for q in self.idx.paths_with_object(oid)]
                e = None
                for q, qe in found:
                    if qe is not None and qe.is_file:
                        p, e = q, qe
                        break
            if e is not None:
                self.wanted[oid] = (p, e)

    def emit_notices(self, path: bytes) -> None:
        """The deletions of the absent children of a directory the bundle
        describes, and of everything that was below them: a receiver that
        still has any of it learns exactly when it was deleted."""
        for name, n in self.idx.notices(path):
            child = paths.join(path, name)
            self.notices[child] = n
            self.notices.update(self.idx.notices_under(child))

    def add_top(self, top: bytes) -> None:
        """Describe `top` and the directories above it. Where the sender
        lacks `top` (or a directory above it), the bundle carries what it
        knows of the deletion, exactly as a push of `top` would use it."""
        for anc in reversed(list(paths.ancestors(top))) if top else []:
            e = self.idx.get(anc)
            if e is None:
                self._emit_absent(anc)
                return
            if anc not in self.emitted:
                self.emit(anc, replace(e, flags=e.flags | FLAG_PARTIAL))
        entry = self.idx.get(top)
        if entry is None:
            self._emit_absent(top)
            return
        self.walk(top, entry, self.know.sync_time(top))

    def _emit_absent(self, path: bytes) -> None:
        n = self.idx.notice(path)
        if n is not None:
            self.notices[path] = n
            self.notices.update(self.idx.notices_under(path))


def pack(
    path: str,
    out: str,
    for_replica: str | None = None,
    base: str | None = None,
    max_size: int | None = None,
    subpaths: list[str] | None = None,
    scan_progress: ScanProgress | None = None,
    progress: ProgressCallback | None = None,
    allow_mass_delete: bool = False,
    dry_run: bool = False,
) -> PackReport:
    """Scan PATH and write the bundle `out` for the receiver described by
    `for_replica` (mounted) or `base` (a knowledge file), or for anyone.
    With `dry_run`, scan and pack the same way, and write nothing: no scan
    is recorded, and no bundle or temporary file is made."""
    if for_replica and base:
        raise BadPath("give --for or --base, not both")
    out = os.path.abspath(out)
    check_output_file(out, "bundle")
    if for_replica:
        check_two_replicas(path, for_replica, "PATH and the receiver (--for)")
    with Replica.open(path, write=not dry_run) as rep:
        if dry_run:
            rep.index.hold_writes()
        receiver: Replica | None = None
        scanned: list[ScanStats] = []
        base_info: dict[str, object]
        try:
            if for_replica:
                # Scan the receiver too: content it lost since its last scan
                # must not be left out of the bundle.
                receiver = Replica.open(for_replica, write=not dry_run)
                if dry_run:
                    receiver.index.hold_writes()
                if receiver.identity.vault == rep.identity.vault:
                    scanned.append(scan_replica(receiver, scan_progress, allow_mass_delete).stats)
                know = Knowledge.of_replica(receiver)
                base_info = {"kind": "replica", "replica": receiver.id}
            elif base:
                know = Knowledge.read(base)
                base_info = {"kind": "knowledge", "replica": know.replica}
            else:
                know = Knowledge.nothing(rep.identity.vault)
                base_info = {"kind": "none", "replica": None}
            if know.vault != rep.identity.vault:
                raise WrongVault(f"the receiver belongs to vault {know.vault}, not {rep.identity.vault}")
            scanned.insert(0, scan_replica(rep, scan_progress, allow_mass_delete).stats)
            given = {paths.user_relpath(rep.root, s): s for s in subpaths or []}
            unknown = unknown_subpaths(rep, list(given), list(given.values()))
            receiver_index = receiver.index if receiver is not None else None
            # The bundle describes the widened subtrees, and names the
            # requested ones: apply widens each again against the receiver
            # it meets, exactly as a push would (engine.sync_into).
            tops = _outermost({_widened(rep.index, receiver_index, know, t) for t in given}) or [b""]
            requested = _outermost(set(given)) or [b""]
            packer = _Packer(rep, know, max_size)
            packer.emit(b"", rep.index.get(b"") or _missing_root())
            for top in tops:
                packer.add_top(top)
            packer.drop_held()
            packer.add_heals(tops)  # after: a damaged file's content goes along even if held elsewhere
            report = _write(rep, packer, out, base_info, tops, requested, progress, dry_run)
            report.unknown_subpaths = unknown
            report.scans = scanned
            for written in (rep, receiver):
                if written is not None and not dry_run:
                    written.trash.apply_policy()
            return report
        finally:
            if receiver is not None:
                receiver.close()


def _widened(idx: ReplicaIndex, receiver: ReplicaIndex | None, know: Knowledge, top: bytes) -> bytes:
    """The subtree a bundle of `top` must describe: what a push of `top`
    would sync (plan.widen_top). Where the receiver is known only by its
    sync times, it may hold a file at any folder above `top` whose version
    of the sender it does not know; settling that file takes the folder's
    whole description, so the bundle starts at the highest such folder."""
    if receiver is not None:
        return widen_top(idx, receiver, top)
    widest = top
    for anc in paths.ancestors(top):
        if not anc:
            break
        e = idx.get(anc)
        if e is not None and e.is_dir and not e.m <= know.sync_time(anc):
            widest = anc
    return widest


def _outermost(tops: set[bytes]) -> list[bytes]:
    """The tops no other top contains, sorted."""
    return sorted(t for t in tops if not any(o != t and paths.is_under(t, o) for o in tops))


def _missing_root() -> Entry:
    from squirrel.errors import CorruptIndex

    raise CorruptIndex("index has no root record")


def _write(
    rep: Replica,
    packer: _Packer,
    out: str,
    base_info: dict[str, object],
    tops: list[bytes],
    requested: list[bytes],
    progress: ProgressCallback | None,
    dry_run: bool,
) -> PackReport:
    idx = rep.index
    header = header_for(rep.identity.vault, rep.id, rep.name, idx.counter, rep.names(), base_info, requested)
    writer = BundleWriter(out, header, dry_run=dry_run)
    report = PackReport(out, dry_run=dry_run)
    try:
        for p, e in packer.entries:
            writer.add_entry(p, e)
        # What the walk held is encoded now: a pack of 100,000 files frees
        # some 40 MiB here for the objects it keeps in memory.
        report.entries = len(packer.entries)
        packer.entries.clear()
        packer.emitted.clear()
        for p, n in sorted(packer.notices.items()):
            writer.add_notice(p, n)
        for rec in conflicts.prune(idx):  # open conflicts go with their files
            if any(paths.is_under(rec.path, t) for t in tops):
                writer.add_conflict(rec)
        for p, s in _syncs(rep, tops):
            writer.add_sync(p, s)
        root = os.fsencode(rep.root)
        budget = packer.max_size
        carried = []
        for oid, (p, e) in packer.wanted.items():
            if budget is not None and report.content_bytes + e.size > budget:
                report.left_behind.append((p, e.size))
                continue
            carried.append((oid, p, e))
            report.content_bytes += e.size
        packer.wanted.clear()
        meter = Meter(f"packing {rep.name}", progress, len(carried), report.content_bytes)

        # The next files are opened ahead and the disk asked to read them
        # while this one is read (readahead).
        def opened(c: tuple[bytes, bytes, Entry]) -> fsops.Span:
            return fsops.open_span(fsops.abspath(root, c[1]), c[2])

        with closing(spans_ahead(_let_go(carried), opened)) as ahead:
            for (oid, p, e), first in ahead:
                if isinstance(first, (SquirrelError, OSError)):
                    raise first
                assert first is not None
                unread = [first]

                def read(p: bytes = p, e: Entry = e, unread: list[fsops.Span] = unread) -> Iterator[bytes]:
                    # The first read is of the file opened ahead; a raw
                    # object is read again when the bundle is written.
                    if unread:
                        return fsops.file_chunks(unread.pop(), READ_BLOCK)
                    return fsops.read_chunks(fsops.abspath(root, p), e, READ_BLOCK)

                def span(p: bytes = p, e: Entry = e) -> fsops.Span:
                    return fsops.open_span(fsops.abspath(root, p), e)

                report.object_bytes += writer.add_object(oid, e.size, read, meter, span)
                report.objects += 1
        # The objects stream into the bundle as it is written: `meter` hears them.
        report.size = writer.close(meter, Meter(f"writing {os.path.basename(out)}", progress))
    except BaseException:
        writer.abort()
        raise
    report.known_elsewhere = packer.known_elsewhere
    return report


def _let_go(items: list[T]) -> Iterator[T]:
    """The items of a list, in order, each dropped from it as it is taken:
    what the caller lets go of is freed (an object's entry, once packed)."""
    items.reverse()
    while items:
        yield items.pop()


def _syncs(rep: Replica, tops: list[bytes]) -> list[tuple[bytes, VectorTime]]:
    """The sender's stored sync times that matter for these tops."""
    idx = rep.index
    out: dict[bytes, VectorTime] = {}
    wanted: set[bytes] = {b""}
    for t in tops:
        wanted.add(t)
        wanted.update(paths.ancestors(t))
    for p in wanted:
        s = idx.stored_sync(p)
        if s is not None:
            out[p] = s.without(rep.id)
    for t in tops:
        for p, s in idx.stored_syncs_under(t):
            out[p] = s.without(rep.id)
    return sorted(out.items())
