"""`sq carrier forget DRIVE`: the carrier stops carrying for a drive that is
gone (lost, stolen, dead). Its record moves to the forgotten list, content
kept only for it is dropped at once, and later visits take nothing for it.
Its past events stay in every vector time: they are history.

Should the drive turn up again, its next visit takes it back as a known
drive (`CarrierVault.take_back`), and it catches up like any other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from squirrel.errors import BadUsage
from squirrel.plumbing.carrier import Carrier, DriveRecord
from squirrel.text import counted


@dataclass(frozen=True)
class ForgetReport:
    """What forgetting a drive did to the carrier."""

    vault: str
    drive: DriveRecord  # as forgotten: `forgotten` holds when
    already: bool  # it had been forgotten before (what a crash left is finished)
    dropped: int  # versions whose content the carrier dropped
    dropped_objects: int
    dropped_bytes: int
    carrier_bytes: int  # content the carrier holds afterwards (all vaults)
    dry_run: bool


def forget(carrier_path: str, drive: str, dry_run: bool = False, now: int | None = None) -> ForgetReport:
    """Forget the drive named `drive` (its name, or its replica id)."""
    carrier = Carrier(carrier_path)
    vid, record = find_drive(carrier, drive)
    already = record.forgotten is not None
    vault = carrier.open_vault(vid)
    try:
        when = int(time.time()) if now is None else now
        if dry_run:
            remaining = [d for d in vault.drives() if d.id != record.id]
            drop = vault.unneeded(remaining)
            gone = vault.store.would_free(oid for oid, _ in drop)
            forgotten = record if already else replace(record, forgotten=when)
        else:
            # The record first: a crash before the objects are dropped leaves
            # a forgotten drive, and forgetting it again drops them.
            forgotten = record if already else vault.forget(record.id, when)
            drop = vault.unneeded()
            _, gone = vault.store.delete_many(oid for oid, _ in drop)
        versions = sum(len(vault.index.paths_with_object(oid)) for oid, _ in drop)
        held = carrier.usage() - (gone if dry_run else 0)
        return ForgetReport(vid, forgotten, already, versions, len(drop), gone, held, dry_run)
    finally:
        vault.close()


def find_drive(carrier: Carrier, drive: str) -> tuple[str, DriveRecord]:
    """(vault, record) of the one drive, known or forgotten, whose replica id
    or name is `drive`. An id wins over a name; a name several drives share
    (a replacement named like the drive it replaced, say) must be given as
    an id."""
    found: list[tuple[str, DriveRecord]] = []
    for vid in carrier.vault_ids():
        vault = carrier.open_vault(vid)
        try:
            found += [(vid, d) for d in vault.drives() + vault.forgotten()]
        finally:
            vault.close()
    hits = [(v, d) for v, d in found if d.id == drive] or [(v, d) for v, d in found if d.name == drive]
    if not hits:
        known = ", ".join(sorted({d.name for _, d in found})) or "none"
        raise BadUsage(f"the carrier knows no drive {drive!r} (its drives: {known})")
    if len(hits) > 1:
        which = "; ".join(f"{d.id} ({'forgotten' if d.forgotten is not None else 'known'}, vault {v})" for v, d in hits)
        raise BadUsage(f"{counted(len(hits), 'drive')} are named {drive!r}: {which}. Give the replica id instead")
    return hits[0]
