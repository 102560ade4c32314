"""Tools for carrier tests: read a drive's tree, weigh and snapshot a carrier.

`tree` is what a user sees on a drive (every file and folder outside the
root's `.squirrel/`); `object_bytes` is the content a carrier holds, the
figure its budget bounds; `carrier_snapshot` records the bytes of every file
a visit could change, so a refused visit can be shown to have changed nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

SQUIRREL = ".squirrel"


def tree(root: Path | str) -> dict[str, bytes]:
    """`{"a/b.jpg": content, "a/": b""}` for everything outside `.squirrel/`."""
    root = Path(root)
    out: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == root:
            dirnames[:] = [d for d in dirnames if d != SQUIRREL]
        rel = here.relative_to(root)
        for d in dirnames:
            out[(rel / d).as_posix() + "/"] = b""
        for f in filenames:
            out[(rel / f).as_posix()] = (here / f).read_bytes()
    return out


def files_of(root: Path | str) -> dict[str, bytes]:
    """Only the files of `tree(root)`."""
    return {p: data for p, data in tree(root).items() if not p.endswith("/")}


def object_files(carrier: Path | str) -> list[Path]:
    """Every file under CARRIER/vaults/*/objects/."""
    found: list[Path] = []
    vaults = Path(carrier) / "vaults"
    if not vaults.is_dir():
        return found
    for vault in vaults.iterdir():
        objects = vault / "objects"
        if objects.is_dir():
            found += [p for p in objects.rglob("*") if p.is_file()]
    return found


def object_bytes(carrier: Path | str) -> int:
    """The content the carrier holds: what its budget bounds."""
    return sum(p.stat().st_size for p in object_files(carrier))


def carrier_snapshot(carrier: Path | str) -> dict[str, bytes]:
    """The bytes of the carrier's config, drive records, objects and index."""
    root = Path(carrier)
    snap: dict[str, bytes] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file():
            continue
        if rel == "carrier.json" or "/drives/" in rel or "/objects/" in rel or rel.endswith("/index/data.mdb"):
            snap[rel] = p.read_bytes()
    return snap
