"""`sq carrier status`: what the carrier holds, for which drive, which drives
it was told to forget, and how much of the vault is on one drive only; and
`sq carrier config`: its settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from squirrel.errors import BadPath, BadUsage
from squirrel.plumbing.carrier import Carrier, CarrierVault, DriveRecord
from squirrel.plumbing.holdings import Holdings
from squirrel.text import counted


def carrier_status(carrier_path: str) -> dict[str, Any]:
    """What the carrier holds, for whom, and how much of its budget it uses."""
    carrier = Carrier(carrier_path)
    vaults: list[dict[str, Any]] = []
    for vid in carrier.vault_ids():
        vault = carrier.open_vault(vid)
        try:
            objects = list(vault.store)
            holdings = Holdings(vault)
            drives = [
                {
                    "replica": o.drive.id,
                    "name": o.drive.name,
                    "last_visit": o.drive.last_visit,
                    "waiting": o.deliver,
                    "waiting_bytes": o.deliver_bytes,
                    "missing": o.missing,
                    "damaged": len(o.drive.knowledge.wanted),
                    "last_full_scrub": o.drive.scrubbed,
                }
                for o in sorted(holdings.outlooks(), key=lambda o: o.drive.id)
            ]
            risky = holdings.at_risk(2)
            one = [h for h in risky if len(h.drives) == 1]
            none = [h for h in risky if not h.drives]
            vaults.append(
                {
                    "vault": vid,
                    "objects": len(objects),
                    "bytes": sum(n for _, n in objects),
                    "drives": drives,
                    "forgotten": [forgotten_json(d) for d in vault.forgotten()],
                    "one_drive": len(one),
                    "one_drive_bytes": sum(h.size for h in one),
                    "no_drive": len(none),
                    "no_drive_bytes": sum(h.size for h in none),
                }
            )
        finally:
            vault.close()
    return {
        "path": carrier.root,
        "budget": carrier.max_size,
        "bytes": sum(int(v["bytes"]) for v in vaults),
        "vaults": vaults,
    }


def forgotten_json(d: DriveRecord) -> dict[str, Any]:
    return {"replica": d.id, "name": d.name, "last_visit": d.last_visit, "forgotten": d.forgotten}


def open_one_vault(carrier: Carrier, vault: str | None) -> CarrierVault:
    """The vault named, or the carrier's only one."""
    if vault is not None:
        return carrier.open_vault(vault)
    ids = carrier.vault_ids()
    if not ids:
        raise BadPath(f"the carrier {carrier.root} serves no vault yet: visit a drive first (`sq sync DRIVE`)")
    if len(ids) > 1:
        raise BadUsage(f"the carrier {carrier.root} serves {counted(len(ids), 'vault')} ({', '.join(ids)}); name one")
    return carrier.open_vault(ids[0])


@dataclass
class CarrierSettings:
    """The carrier's settings after `sq carrier config`, and before it."""

    path: str
    max_size: int
    scrub: int
    was_max_size: int | None  # None: the carrier was made by this command
    was_scrub: int | None
    dry_run: bool = False

    @property
    def made(self) -> bool:
        return self.was_max_size is None


def carrier_config(
    carrier_path: str, max_size: int | None = None, scrub: int | None = None, dry_run: bool = False
) -> CarrierSettings:
    """Show the carrier's settings, or set those given (making the carrier
    if there is none yet); with `dry_run`, report what they would be and
    write nothing."""
    setting = max_size is not None or scrub is not None
    c = Carrier(carrier_path, create=setting, hold_writes=dry_run)
    was_max_size, was_scrub = (None, None) if c.made else (c.max_size, c.scrub)
    if max_size is not None:
        c.set_max_size(max_size)
    if scrub is not None:
        c.set_scrub(scrub)
    return CarrierSettings(c.root, c.max_size, c.scrub, was_max_size, was_scrub, dry_run)
