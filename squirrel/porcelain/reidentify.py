"""`sq reidentify PATH`: give a replica a new identity.

For a drive restored from an old backup, or a cloned drive: its own past
events keep their old id (they are now simply another replica's history,
which it knows), and its new events use the new id, so no event counter is
ever reused.

A dry run makes the same index changes on an index that holds its writes,
and writes no identity: only a real run makes the new id.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from squirrel.plumbing.durable import write_file_atomic
from squirrel.plumbing.replica import Identity, Replica, new_id


@dataclass
class ReidentifyReport:
    """A replica's identity before and after it was given a new id."""

    old: Identity
    new: Identity  # with `dry_run`, its replica id is one no run will use
    old_renamed: str  # the name the old id's history goes by from now on
    dry_run: bool = False


def reidentify(path: str, name: str | None = None, dry_run: bool = False) -> ReidentifyReport:
    """Give the replica at `path` a new id (and `name`, if given); with
    `dry_run`, report the names it would have, and change nothing."""
    with Replica.open(path, write=not dry_run) as rep:
        if dry_run:
            rep.index.hold_writes()
        old = rep.identity
        idx = rep.index
        new = Identity(old.vault, new_id(), name or old.name)
        names = rep.names()
        names[old.replica] = f"{old.name}-old"
        names[new.replica] = new.name
        idx.set_meta_json("names", names)
        idx.change_identity(new.replica)
        idx.commit()
        report = ReidentifyReport(old, new, names[old.replica], dry_run)
        if dry_run:
            return report
        # The identity is written last: until then the replica keeps its old id.
        write_file_atomic(os.path.join(rep.sq_dir, "replica.json"), json.dumps(new.to_json(), indent=1).encode())
        for entry in os.listdir(rep.sq_dir):
            if entry.startswith("carrier-"):
                os.unlink(os.path.join(rep.sq_dir, entry))
        rep.trash.apply_policy()
        return report
