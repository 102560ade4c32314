"""A content-addressed object store: `objects/<2 hex>/<64 hex>` files.

The carrier keeps content here for versions some drive still lacks. An object
is written to `tmp/`, verified against its id while written, fsynced, and
renamed into place, so an object that exists under its name is complete and
correct.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from squirrel.plumbing import faults, fsops

BLOCK = 1 << 20


class ObjectStore:
    def __init__(self, directory: str, tmp_dir: str) -> None:
        self.directory = directory
        self.tmp_dir = tmp_dir
        os.makedirs(directory, exist_ok=True)
        os.makedirs(tmp_dir, exist_ok=True)

    def path(self, oid: bytes) -> str:
        h = oid.hex()
        return os.path.join(self.directory, h[:2], h)

    def has(self, oid: bytes) -> bool:
        return os.path.isfile(self.path(oid))

    def put(self, oid: bytes, size: int, chunks: Iterable[bytes]) -> None:
        """Store verified content (the caller's chunks must hash to `oid`)."""
        if self.has(oid):
            return
        tmp = fsops.write_temp(self.tmp_dir, chunks, oid, size, 0, 0o644)
        dest = self.path(oid)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        faults.point("rename")
        os.replace(tmp, dest)

    def chunks(self, oid: bytes) -> Iterator[bytes]:
        with open(self.path(oid), "rb") as f:
            while True:
                block = f.read(BLOCK)
                if not block:
                    return
                yield block

    def delete(self, oid: bytes) -> int:
        try:
            size = os.path.getsize(self.path(oid))
            faults.point("unlink")
            os.unlink(self.path(oid))
            return size
        except FileNotFoundError:
            return 0

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        """(object id, size) of every stored object."""
        try:
            subdirs = os.listdir(self.directory)
        except FileNotFoundError:
            return
        for sub in subdirs:
            d = os.path.join(self.directory, sub)
            if len(sub) != 2 or not os.path.isdir(d):
                continue
            for name in os.listdir(d):
                try:
                    oid = bytes.fromhex(name)
                except ValueError:
                    continue
                if len(oid) == 32:
                    try:
                        yield oid, os.path.getsize(os.path.join(d, name))
                    except FileNotFoundError:
                        continue

    def usage(self) -> int:
        return sum(size for _, size in self)
