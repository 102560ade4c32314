"""`sq apply BUNDLE PATH`: import a bundle with the same decisions, conflicts
and safe writes as `sq push` from the bundle's sender."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from squirrel.errors import BadBundle, BadPath, ContentUnavailable, DamagedObject, WrongVault
from squirrel.plumbing import fsops, paths
from squirrel.plumbing.bundle import BundleReader, BundleTree
from squirrel.plumbing.index import Entry
from squirrel.plumbing.progress import ProgressCallback
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.scan import ScanProgress, scan_replica
from squirrel.porcelain.engine import SyncReport, check_not_behind, sync_into
from squirrel.text import counted


class BundleContent:
    """Content objects from a bundle, verified on the way into the replica."""

    # Why a version whose content the bundle lacks waits: the same words for
    # every such file (a report may hold a great many).
    waits = "its content is not in this bundle; it comes in a later one"

    def __init__(self, reader: BundleReader) -> None:
        self.reader = reader
        # Each object found not to match its id, by the message of its
        # error: content is fetched ahead, on two threads, so objects may be
        # found damaged before their turn and out of order (`damaged`).
        self._damaged: dict[str, tuple[bytes, Entry]] = {}

    def mismatch(self, path: bytes, entry: Entry) -> BadBundle:
        """An object of the bundle does not match its id: a bundle cannot
        change while it is read, so it is damaged, and the apply stops when
        its turn comes."""
        message = f"bad bundle {self.reader.path}: damaged object for {paths.display(path)}"
        self._damaged.setdefault(message, (path, entry))
        return BadBundle(message)

    def damaged(self, failed: list[tuple[bytes, str]]) -> tuple[bytes, Entry] | None:
        """The damaged object that ended the apply: the first of the failed
        paths (in the order their actions ran) that failed on one; None when
        none did."""
        return next((self._damaged[why] for _, why in failed if why in self._damaged), None)

    def has(self, oid: bytes) -> bool:
        return oid in self.reader.objects

    def chunks(self, path: bytes, entry: Entry) -> Iterable[bytes]:
        if entry.oid not in self.reader.objects:
            raise ContentUnavailable(self.waits)
        return self._checked(path, entry, self.reader.object_chunks(entry.oid))

    def _checked(self, path: bytes, entry: Entry, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """The object's content; a damaged one (it does not decompress) ends the apply as a mismatch does."""
        try:
            yield from chunks
        except BadBundle as e:
            raise self.mismatch(path, entry) from e

    def span(self, path: bytes, entry: Entry) -> fsops.Span | None:
        if entry.oid not in self.reader.objects:
            raise ContentUnavailable(self.waits)
        return self.reader.object_span(entry.oid)

    def group_span(self, path: bytes, entry: Entry) -> fsops.SharedSpan | None:
        if entry.oid not in self.reader.objects:
            raise ContentUnavailable(self.waits)
        return self.reader.object_in_file(entry.oid)


def apply(
    bundle: str,
    path: str,
    dry_run: bool = False,
    scan_progress: ScanProgress | None = None,
    progress: ProgressCallback | None = None,
    allow_mass_delete: bool = False,
) -> SyncReport:
    """Check the whole bundle first, then sync it into the replica at PATH."""
    if os.path.isdir(bundle) and os.path.isfile(path):
        raise BadPath(f"{bundle} is a folder and {path} a file: the bundle comes first (`sq apply BUNDLE PATH`)")
    with BundleReader(bundle) as reader, Replica.open(path) as rep:
        if reader.vault != rep.identity.vault:
            raise WrongVault(
                f"bundle {bundle} is from vault {reader.vault}; {rep.root} is in vault {rep.identity.vault}"
            )
        if reader.source_id == rep.id:
            raise WrongVault(f"bundle {bundle} was packed from this replica ({rep.name}); nothing to apply")
        tree = BundleTree(reader)
        check_not_behind(rep, tree.sync_time(b""), f"the bundle's sender ({reader.source_name})")
        if dry_run:
            rep.index.hold_writes()
        scanned = scan_replica(rep, scan_progress, allow_mass_delete).stats
        content = BundleContent(reader)
        report = sync_into(
            rep,
            tree,
            content,
            reader.names,
            reader.tops,
            dry_run,
            progress,
            sender=reader.source_name,
            phase=f"applying to {rep.name}",
        )
        report.scans = [scanned]
        damaged = content.damaged(report.failed)
        if damaged is not None:
            raise _damaged(bundle, damaged, report)
        if not dry_run:
            rep.trash.apply_policy()
        return report


def _damaged(bundle: str, damaged: tuple[bytes, Entry], report: SyncReport) -> DamagedObject:
    """The error that ends an apply which met an object not matching its
    id: which one, and what was applied before it (each file verified as
    it was written, so complete). A re-run meets the same object."""
    path, entry = damaged
    done = report.created + report.updated + report.deleted
    return DamagedObject(
        f"bad bundle {bundle}: the content it carries for {paths.display(path)} (object {entry.oid.hex()})"
        f" is damaged; {counted(done, 'change')} applied before it, each file complete and verified, nothing"
        " after it (`sq bundle verify` checks a whole bundle; pack a new one)",
        path,
        entry.oid,
        done,
    )
