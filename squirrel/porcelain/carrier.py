"""`sq carrier status`: what the carrier holds, for which drive."""

from __future__ import annotations

from typing import Any

from squirrel.plumbing.carrier import Carrier


def carrier_status(carrier_path: str) -> dict[str, Any]:
    """What the carrier holds, for whom, and how much of its budget it uses."""
    carrier = Carrier(carrier_path)
    vaults: list[dict[str, Any]] = []
    for vid in carrier.vault_ids():
        vault = carrier.open_vault(vid)
        try:
            objects = list(vault.store)
            drives = []
            for d in vault.drives():
                waiting = missing = waiting_bytes = 0
                for _, entry in vault.lacking(d):
                    if entry.oid in vault.objects_of(d):
                        continue
                    if vault.store.has(entry.oid):
                        waiting += 1
                        waiting_bytes += entry.size
                    else:
                        missing += 1
                drives.append(
                    {
                        "replica": d.id,
                        "name": d.name,
                        "last_visit": d.last_visit,
                        "waiting": waiting,
                        "waiting_bytes": waiting_bytes,
                        "missing": missing,
                    }
                )
            vaults.append(
                {"vault": vid, "objects": len(objects), "bytes": sum(n for _, n in objects), "drives": drives}
            )
        finally:
            vault.close()
    return {
        "path": carrier.root,
        "budget": carrier.max_size,
        "bytes": sum(int(v["bytes"]) for v in vaults),
        "vaults": vaults,
    }
