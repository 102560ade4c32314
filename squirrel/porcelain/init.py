"""`sq init`: make a directory a replica and index what is there."""

from __future__ import annotations

import os
from dataclasses import dataclass

from squirrel.errors import BadPath
from squirrel.plumbing.bundle import BundleReader
from squirrel.plumbing.carrier import Carrier, is_carrier
from squirrel.plumbing.replica import Identity, Replica, read_identity
from squirrel.plumbing.scan import ScanProgress, ScanReport, scan_replica
from squirrel.text import counted


@dataclass
class InitReport:
    identity: Identity
    scan: ScanReport
    joined: str | None = None


def init(
    path: str, name: str | None = None, join: str | None = None, progress: ScanProgress | None = None
) -> InitReport:
    """Create `path/.squirrel/` and index the files already there.

    With `join` (a mounted replica, a bundle or a carrier), the new replica
    belongs to that vault; its existing files are reconciled by content on the
    first sync (identical content is never a conflict).
    """
    vault = None
    names = None
    if join is not None:
        vault, names = _vault_of(join)
    replica = Replica.create(path, name=name, vault=vault)
    with replica:
        if names:
            replica.learn_names(names)
        report = scan_replica(replica, progress)
    return InitReport(replica.identity, report, join)


def _vault_of(source: str) -> tuple[str, dict[str, str]]:
    """The vault (and replica names) of a mounted replica, a bundle or a carrier."""
    if os.path.isfile(source):
        with BundleReader(source) as reader:
            return reader.vault, reader.names
    if is_carrier(source):
        vaults = Carrier(source).vault_ids()
        if len(vaults) != 1:
            raise BadPath(
                f"the carrier {source} serves {counted(len(vaults), 'vault')};"
                " join through a replica or a bundle instead"
            )
        vault = Carrier(source).open_vault(vaults[0])
        try:
            return vaults[0], vault.rep.names()
        finally:
            vault.close()
    other = read_identity(source)
    with Replica.open(source, write=False) as rep:
        return other.vault, rep.names()
