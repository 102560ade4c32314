"""Which trash items a purge or the retention policy removes: pure
decisions on lists of items, no I/O (the removal itself: `trashcan`).

Both remove oldest first, so what is kept is always the newest. The policy
(stored in the index, docs/formats/index.md, `meta`) never removes an item
younger than one day: a version trashed by the sync that just ran is there
to be restored when the user notices.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from squirrel.errors import CorruptIndex
from squirrel.plumbing.trash import TrashItem, held_bytes, oldest_first

DAY = 86_400  # seconds
MIN_AGE = DAY  # the policy never removes an item younger than this


@dataclass(frozen=True)
class Policy:
    """How long and how much a replica's trash keeps; None: no limit."""

    keep_days: int | None = None
    max_size: int | None = None

    @property
    def keeps_everything(self) -> bool:
        return self.keep_days is None and self.max_size is None

    def to_json(self) -> dict[str, Any]:
        return {"keep_days": self.keep_days, "max_size": self.max_size}

    @classmethod
    def from_json(cls, doc: Any) -> Policy:
        if doc is None:
            return cls()
        if not isinstance(doc, dict):
            raise CorruptIndex("damaged trash policy")
        values = [doc.get("keep_days"), doc.get("max_size")]
        if not all(v is None or (type(v) is int and v >= 0) for v in values):
            raise CorruptIndex("damaged trash policy")
        return cls(*values)


def older_than(items: Iterable[TrashItem], cutoff: int) -> list[TrashItem]:
    """Every item trashed before `cutoff` (Unix seconds), oldest first."""
    return [it for it in oldest_first(items) if it.time < cutoff]


def to_fit(
    items: Iterable[TrashItem], max_bytes: int, chosen: Iterable[TrashItem] = (), not_after: int | None = None
) -> list[TrashItem]:
    """The oldest items to remove, beyond `chosen`, until what the rest hold
    is at most `max_bytes`; none trashed after `not_after`. A content file
    is freed with its last item, so an item whose content a newer one
    shares frees nothing by itself."""
    everything = oldest_first(items)
    gone = {it.id for it in chosen}
    left = [it for it in everything if it.id not in gone]
    users = Counter(it.name for it in left)
    total = held_bytes(left)
    out = []
    for it in left:
        if total <= max_bytes or (not_after is not None and it.time > not_after):
            break
        out.append(it)
        users[it.name] -= 1
        if users[it.name] == 0:
            total -= it.size
    return out


def by_policy(items: Iterable[TrashItem], policy: Policy, now: int) -> list[TrashItem]:
    """What the policy removes now, oldest first: items older than
    `keep_days`, then the oldest until the trash fits `max_size`; never one
    younger than a day."""
    everything = list(items)
    youngest_allowed = now - MIN_AGE
    out: list[TrashItem] = []
    if policy.keep_days is not None:
        out = older_than(everything, min(now - policy.keep_days * DAY, youngest_allowed))
    if policy.max_size is not None:
        out += to_fit(everything, policy.max_size, out, youngest_allowed)
    return oldest_first(out)
