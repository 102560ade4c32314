"""`sq init`: make a directory a replica and index what is there."""

from __future__ import annotations

import os
from dataclasses import dataclass

from squirrel.errors import AlreadyAReplica, BadPath, BadUsage, SquirrelError
from squirrel.plumbing.bundle import BundleReader
from squirrel.plumbing.carrier import Carrier, is_carrier
from squirrel.plumbing.paths import IgnoreRules
from squirrel.plumbing.replica import (
    CARRIER_CONFIG,
    REPLICA_MARKER,
    Replica,
    default_name,
    enclosing,
    read_identity,
)
from squirrel.plumbing.scan import ScanProgress, ScanStats, measure_tree, scan_replica
from squirrel.text import counted


@dataclass
class InitReport:
    """The replica an init made, or with `dry_run` would make: its ids are
    None where only the real init makes them (a new vault, a new replica)."""

    root: str
    name: str
    vault: str | None
    replica: str | None
    stats: ScanStats  # the files and folders indexed, the paths skipped
    bytes: int  # of the files indexed
    joined: str | None = None
    dry_run: bool = False


def init(
    path: str,
    name: str | None = None,
    join: str | None = None,
    progress: ScanProgress | None = None,
    dry_run: bool = False,
) -> InitReport:
    """Create `path/.squirrel/` and index the files already there.

    With `join` (a mounted replica, a bundle or a carrier), the new replica
    belongs to that vault; its existing files are reconciled by content on the
    first sync (identical content is never a conflict). With `dry_run`, make
    the same checks and count what the first scan would index (by size: no
    file is read), and create nothing.
    """
    vault = None
    names = None
    _check_place(path)
    if join is not None:
        if _same_folder(path, join):
            raise BadUsage(
                f"--join {join} names PATH itself: give something that knows the vault to join"
                " (another drive, a bundle or the carrier)"
            )
        vault, names = _vault_of(join)
    _check_not_a_replica(path, join, vault)
    if dry_run:
        root = Replica.check_creatable(path)
        name = default_name(root, name)
        size = measure_tree(root, IgnoreRules.for_replica(root), progress, name)
        return InitReport(root, name, vault, None, ScanStats(size.files, size.dirs), size.bytes, join, dry_run=True)
    replica = Replica.create(path, name=name, vault=vault)
    with replica:
        if names:
            replica.learn_names(names)
        report = scan_replica(replica, progress, measure=True)
    ident = replica.identity
    return InitReport(
        replica.root, ident.name, ident.vault, ident.replica, report.stats, report.stats.bytes_hashed, join
    )


def _same_folder(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_place(path: str) -> None:
    """A replica is never the carrier's folder, nor made inside the carrier
    or inside another replica (whose scans would take its .squirrel/ for
    the drive's own files)."""
    root = os.path.abspath(path)
    if is_carrier(root):
        raise BadPath(f"{root} is the carrier's folder, not a drive: give the drive's folder")
    carrier = enclosing(root, CARRIER_CONFIG)
    if carrier is not None:
        raise BadPath(f"{root} is inside the carrier's folder {carrier}, not a drive: give the drive's folder")
    outer = enclosing(root, REPLICA_MARKER)
    if outer is not None:
        raise BadPath(
            f"{root} is inside the replica {outer}: its files are synced with that drive already;"
            " a replica cannot hold another"
        )


def _check_not_a_replica(path: str, join: str | None, vault: str | None) -> None:
    """PATH is a replica already: say of which vault, and what to do."""
    try:
        ident = read_identity(os.path.abspath(path))
    except SquirrelError:
        return  # not one (or half made): creating it says what else is wrong
    root = os.path.abspath(path)
    what = f"{ident.name}, of vault {ident.vault}"
    if join is None:
        raise AlreadyAReplica(root, what, "`sq scan` records its changes")
    if vault == ident.vault:
        raise AlreadyAReplica(root, what + ", the one to join", "sync it instead (`sq sync`, `sq push`, `sq apply`)")
    raise AlreadyAReplica(
        root, what, f"not of {join}'s vault {vault}, and a replica stays in its vault: join with another folder"
    )


def _vault_of(source: str) -> tuple[str, dict[str, str]]:
    """The vault (and replica names) of a mounted replica, a bundle or a carrier."""
    if not os.path.exists(source):
        raise BadPath(f"no such bundle file, replica or carrier: {source}")
    if os.path.isfile(source):
        with BundleReader(source) as reader:
            return reader.vault, reader.names
    if is_carrier(source):
        vaults = Carrier(source).vault_ids()
        if not vaults:
            raise BadPath(f"the carrier {source} serves no vault yet: visit a drive first (`sq sync DRIVE`)")
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
