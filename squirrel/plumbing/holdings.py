"""Who holds what, by the carrier's records alone: for every current version
of a vault, the known drives that hold its content; for every known drive,
what a visit now would deliver and take. No drive has to be mounted.
Definitions: docs/formats/carrier.md ("Copies").

A current version is a file in the carrier's index: a path and its content
id. A known drive holds it when that content was among the drive's files,
at any path, at the end of the drive's last visit (`drives/ID.objects`):
the bytes are what a lost drive takes with it, so a file moved or copied
on a drive counts where its content is. Forgotten drives hold nothing.

Everything here is one pass over the carrier's index, one set intersection
per drive, and a walk of what each drive lacks (which skips every subtree
the drive knows): the cost of a quiet vault of 100,000 files is a fraction
of a second, and no per-file loop runs over every drive's object list.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from squirrel.plumbing.carrier import CarrierVault, DriveRecord

DEFAULT_COPIES = 2


@dataclass(frozen=True)
class Holding:
    """One current version, the known drives that hold its content (their
    ids) and whether the carrier holds a copy."""

    path: bytes
    oid: bytes
    size: int
    drives: tuple[str, ...]
    in_carrier: bool


@dataclass(frozen=True)
class Outlook:
    """What a visit of one known drive would do now, by the records.

    `deliver`: versions it lacks whose content the carrier holds;
    `missing`: versions it lacks whose content the carrier does not hold yet;
    `take`: versions another known drive lacks whose content the carrier does
    not hold and this drive held at its last visit (`take_bytes` counts each
    content once: what the visit would copy, budget permitting);
    `fixes`: at-risk versions among those delivered whose copies would reach
    the number asked for."""

    drive: DriveRecord
    deliver: int
    deliver_bytes: int
    missing: int
    take: int
    take_bytes: int
    fixes: int
    fixes_bytes: int

    def rank(self) -> tuple[int, int, int, int]:
        """Sort key, best first: at-risk versions fixed, then bytes moved,
        then versions moved, then the drive visited longest ago."""
        moved = self.deliver_bytes + self.take_bytes
        return (-self.fixes, -moved, -(self.deliver + self.take), self.drive.last_visit)


class Holdings:
    """The holdings of one vault, read once from the carrier's records."""

    def __init__(self, vault: CarrierVault) -> None:
        self.vault = vault
        self.drives = sorted(vault.drives(), key=lambda d: (d.name, d.id))
        self.versions = list(vault.index.files())
        wanted = {oid for _, oid, _ in self.versions}
        # What each known drive holds of the current versions: one set
        # intersection per drive, never a per-file loop over every drive.
        self.held = {d.id: wanted.intersection(vault.objects_of(d)) for d in self.drives}
        self.wanted = wanted
        self.stored = {oid for oid, _ in vault.store}
        self._at_risk: dict[int, list[Holding]] = {}

    def _short(self, copies: int) -> set[bytes]:
        """The content ids fewer than `copies` drives hold. `enough[k]`
        holds the ids at least k drives hold, drive by drive: a few set
        operations per drive."""
        enough = [self.wanted] + [set() for _ in range(copies)]
        for held in self.held.values():
            for k in range(copies, 1, -1):
                enough[k] |= enough[k - 1] & held
            enough[1] |= held  # held is within wanted
        return self.wanted - enough[copies]

    def at_risk(self, copies: int = DEFAULT_COPIES) -> list[Holding]:
        """Every current version fewer than `copies` known drives hold, by path."""
        if copies not in self._at_risk:
            short = self._short(copies)
            holders = {oid: tuple(d for d, held in self.held.items() if oid in held) for oid in short}
            out = [
                Holding(path, oid, size, holders[oid], oid in self.stored)
                for path, oid, size in self.versions
                if oid in short
            ]
            out.sort(key=lambda h: h.path)
            self._at_risk[copies] = out
        return list(self._at_risk[copies])

    def _lacking(self, drive: DriveRecord) -> list[tuple[bytes, bytes, int]]:
        """File versions the drive does not know and whose content it did not
        hold (a version it holds elsewhere comes from its own copy)."""
        held = self.vault.objects_of(drive)
        return [(p, oid, size) for p, oid, size in self.vault.lacking_files(drive) if oid not in held]

    def outlooks(self, copies: int = DEFAULT_COPIES) -> list[Outlook]:
        """One outlook per known drive, best first (`Outlook.rank`)."""
        risky = {h.path: h for h in self.at_risk(copies)}
        lacking = {d.id: self._lacking(d) for d in self.drives}
        # Versions some known drive lacks whose content the carrier does not
        # hold: a visit of a drive that has the content copies it in.
        stored = self.stored
        need = {p: (oid, size) for items in lacking.values() for p, oid, size in items if oid not in stored}
        versions_of = Counter(oid for oid, _ in need.values())  # versions each content would serve
        sizes = dict(need.values())
        all_versions, all_bytes = len(need), sum(sizes.values())
        out = []
        for d in self.drives:
            deliver = [(p, size) for p, oid, size in lacking[d.id] if oid in stored]
            fixes = [size for p, size in deliver if p in risky and len(risky[p].drives) + 1 >= copies]
            # What the drive can supply; summed over the smaller side (a
            # drive that holds everything supplies all of it).
            held = self.vault.objects_of(d)
            lacks = {oid for oid in versions_of if oid not in held}
            take = all_versions - sum(versions_of[o] for o in lacks)
            take_bytes = all_bytes - sum(sizes[o] for o in lacks)
            out.append(
                Outlook(
                    d,
                    deliver=len(deliver),
                    deliver_bytes=sum(size for _, size in deliver),
                    missing=len(lacking[d.id]) - len(deliver),
                    take=take,
                    take_bytes=take_bytes,
                    fixes=len(fixes),
                    fixes_bytes=sum(fixes),
                )
            )
        out.sort(key=lambda o: (*o.rank(), o.drive.name, o.drive.id))
        return out
