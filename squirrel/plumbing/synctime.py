"""Raising the receiver's sync times after a one-way sync: s_B := s_B | s_A,
for every path whose sync finished, and for no other.

Sync times are stored compressed (only where a path differs from its
parent), so the work is proportional to the stored records under the synced
subtree plus the chains above paths that failed, never to the tree's size.
A failed path keeps its old sync time and so does every directory above it
(up to the top of the sync); their other children are stored explicitly.
"""

from __future__ import annotations

from typing import Protocol

from squirrel.plumbing import paths
from squirrel.plumbing.index import ReplicaIndex
from squirrel.plumbing.plan import SourceTree
from squirrel.plumbing.vtime import VectorTime


class SyncSource(SourceTree, Protocol):
    def stored_syncs_under(self, path: bytes) -> list[tuple[bytes, VectorTime]]: ...


def raise_sync_times(dst: ReplicaIndex, src: SyncSource, top: bytes, failed: set[bytes]) -> None:
    """Join the sender's sync times into the receiver's under `top`, except
    for `failed` paths (and the directories above them)."""
    chain: set[bytes] = set()
    for f in failed:
        if not paths.is_under(f, top):
            continue
        p = f
        while p != top and p:
            p = paths.parent_of(p)
            chain.add(p)
            if not paths.is_under(p, top) or p == top:
                break
        chain.add(top)

    def blocked(x: bytes) -> bool:
        """Is x failed or below a failed path?"""
        if x in failed:
            return True
        p = x
        while p and p != top:
            p = paths.parent_of(p)
            if p in failed:
                return True
        return False

    keys: set[bytes] = {top}
    keys.update(p for p, _ in dst.stored_syncs_under(top))
    keys.update(p for p, _ in src.stored_syncs_under(top))
    for d in chain:
        names = {n for n, _ in dst.children(d)} | {n for n, _ in src.children(d)}
        keys.update(paths.join(d, n) for n in names)

    new_values: list[tuple[bytes, VectorTime]] = []
    for x in sorted(keys, key=lambda k: (k.count(b"/"), k) if k else (-1, k)):
        if not paths.is_under(x, top) or x in chain or blocked(x):
            continue
        new_values.append((x, dst.sync_time(x).join(src.sync_time(x))))
    # Parents first, so that each value is compressed against its parent's new one.
    for x, s in new_values:
        dst.set_stored_sync(x, s, force=not x)
