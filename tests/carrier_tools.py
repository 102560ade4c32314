"""Tools for carrier tests: weigh and snapshot a carrier.

`object_bytes` is the content a carrier holds, the figure its budget bounds;
`carrier_snapshot` records the bytes of every file a visit could change, so a
refused visit can be shown to have changed nothing. What a user sees on a
drive is `tests.helpers.tree`.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import make_tree, run_sq


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
    """The bytes of the carrier's config, drive records (known and forgotten), objects and index."""
    root = Path(carrier)
    snap: dict[str, bytes] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file():
            continue
        kept = ("/drives/", "/forgotten/", "/objects/")
        if rel == "carrier.json" or any(k in rel for k in kept) or rel.endswith("/index/data.mdb"):
            snap[rel] = p.read_bytes()
    return snap


def left_behind(tmp: Path, files: dict[str, bytes], carrier: Path) -> tuple[Path, Path]:
    """Drive A with `files` and an empty drive C, both known to the carrier,
    which had no room for what C lacks when it met A, and now has."""
    a, c = make_tree(tmp / "A", files), tmp / "C"
    c.mkdir()
    run_sq("init", a, "--name", "A").check(0)
    run_sq("init", c, "--name", "C", "--join", a).check(0)
    run_sq("sync", a, "--carrier", carrier, "--max-size", "1").check(0)
    run_sq("sync", c, "--carrier", carrier).check(0)
    run_sq("carrier", "config", "--carrier", carrier, "--max-size", "1M").check(0)
    return a, c
