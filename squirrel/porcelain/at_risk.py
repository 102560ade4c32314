"""`sq carrier at-risk`: the current versions fewer than N known drives hold,
by the carrier's records (squirrel.plumbing.holdings), with the drives that
hold each and whether the carrier holds a copy. No drive is read."""

from __future__ import annotations

from dataclasses import dataclass

from squirrel.plumbing.carrier import Carrier
from squirrel.plumbing.holdings import DEFAULT_COPIES, Holding, Holdings
from squirrel.porcelain.carrier import open_one_vault


@dataclass(frozen=True)
class AtRiskReport:
    """The current versions of a vault that fewer than `copies` known drives hold."""

    vault: str
    copies: int
    known_drives: int
    at_risk: list[Holding]
    names: dict[str, str]  # drive id -> name, for every known drive

    @property
    def bytes(self) -> int:
        return sum(h.size for h in self.at_risk)

    def drive_names(self, h: Holding) -> list[str]:
        return [self.names[d] for d in h.drives]


def at_risk(carrier_path: str, copies: int = DEFAULT_COPIES, vault: str | None = None) -> AtRiskReport:
    """The versions of `vault` (the carrier's only one by default) on fewer
    than `copies` known drives."""
    v = open_one_vault(Carrier(carrier_path), vault)
    try:
        holdings = Holdings(v)
        names = {d.id: d.name for d in holdings.drives}
        return AtRiskReport(v.rep.identity.vault, copies, len(names), holdings.at_risk(copies), names)
    finally:
        v.close()
