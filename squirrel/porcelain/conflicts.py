"""`sq conflicts`: the open conflicts of a replica."""

from __future__ import annotations

from typing import Any

from squirrel.plumbing.replica import Replica


def conflicts(path: str) -> list[dict[str, Any]]:
    with Replica.open(path, write=False) as rep:
        return rep.index.conflicts()
