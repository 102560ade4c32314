"""`sq reidentify PATH`: give a replica a new identity.

For a drive restored from an old backup, or a cloned drive: its own past
events keep their old id (they are now simply another replica's history,
which it knows), and its new events use the new id, so no event counter is
ever reused.
"""

from __future__ import annotations

import json
import os

from squirrel.plumbing.durable import write_file_atomic
from squirrel.plumbing.replica import Identity, Replica, new_id


def reidentify(path: str, name: str | None = None) -> tuple[Identity, Identity]:
    """Returns (old identity, new identity)."""
    with Replica.open(path) as rep:
        old = rep.identity
        idx = rep.index
        new = Identity(old.vault, new_id(), name or old.name)
        names = rep.names()
        names[old.replica] = f"{old.name}-old"
        names[new.replica] = new.name
        idx.set_meta_json("names", names)
        idx.change_identity(new.replica)
        idx.commit()
        # The identity is written last: until then the replica keeps its old id.
        write_file_atomic(os.path.join(rep.sq_dir, "replica.json"), json.dumps(new.to_json(), indent=1).encode())
        for entry in os.listdir(rep.sq_dir):
            if entry.startswith("carrier-"):
                os.unlink(os.path.join(rep.sq_dir, entry))
        rep.trash.apply_policy()
        return old, new
