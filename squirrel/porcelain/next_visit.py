"""`sq carrier next`: the known drives ranked by what a visit now would do,
by the carrier's records (squirrel.plumbing.holdings): what it would
deliver, what it would take, and how many at-risk versions it would fix."""

from __future__ import annotations

from dataclasses import dataclass

from squirrel.plumbing.carrier import Carrier
from squirrel.plumbing.holdings import DEFAULT_COPIES, Holdings, Outlook


@dataclass(frozen=True)
class NextVisit:
    """What visiting one known drive next would do, in one vault."""

    vault: str
    outlook: Outlook


def next_visits(carrier_path: str, copies: int = DEFAULT_COPIES, vault: str | None = None) -> list[NextVisit]:
    """Every known drive of every vault (or of `vault`), best visit first."""
    carrier = Carrier(carrier_path)
    out: list[NextVisit] = []
    for vid in [vault] if vault is not None else carrier.vault_ids():
        v = carrier.open_vault(vid)
        try:
            out += [NextVisit(vid, o) for o in Holdings(v).outlooks(copies)]
        finally:
            v.close()
    out.sort(key=lambda n: (*n.outlook.rank(), n.outlook.drive.name, n.vault, n.outlook.drive.id))
    return out
