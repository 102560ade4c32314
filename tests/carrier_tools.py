"""Tools for carrier tests: weigh and snapshot a carrier.

`object_bytes` is the content a carrier holds, the figure its budget bounds;
`carrier_snapshot` records the bytes of every file a visit could change, so a
refused visit can be shown to have changed nothing. What a user sees on a
drive is `tests.helpers.tree`.
"""

from __future__ import annotations

from pathlib import Path

from squirrel.plumbing import packs
from tests.helpers import make_tree, run_sq


def stored_objects(carrier: Path | str) -> dict[str, int]:
    """Every object the carrier holds, over its vaults (hex id -> size): the
    files CARRIER/vaults/*/objects/XX/ID, and what each whole pack's index
    (objects/packs/NAME.idx) names."""
    found: dict[str, int] = {}
    for objects in Path(carrier).glob("vaults/*/objects"):
        found |= {p.name: p.stat().st_size for p in objects.glob("??/*") if p.is_file()}
        for index in (objects / "packs").glob("*.idx"):
            entries, _ = packs.decode_index(index.read_bytes(), str(index))
            found |= {oid.hex(): size for oid, _, size in entries}
    return found


def stored_contents(carrier: Path | str) -> dict[str, bytes]:
    """The bytes the carrier holds for each object (hex id -> bytes), from
    its files of their own and from its packs, at the offsets their indexes
    give."""
    found: dict[str, bytes] = {}
    for objects in Path(carrier).glob("vaults/*/objects"):
        found |= {p.name: p.read_bytes() for p in objects.glob("??/*") if p.is_file()}
        for index in (objects / "packs").glob("*.idx"):
            entries, _ = packs.decode_index(index.read_bytes(), str(index))
            data = index.with_suffix(".pack").read_bytes()
            found |= {oid.hex(): data[offset : offset + size] for oid, offset, size in entries}
    return found


def damage_object(carrier: Path | str, oid: str) -> Path:
    """Flip a bit of the last byte the carrier holds for object `oid` (hex),
    in its file or in its pack, as rot would; returns the file changed."""
    for objects in Path(carrier).glob("vaults/*/objects"):
        own = objects / oid[:2] / oid
        if own.is_file():
            _flip(own, own.stat().st_size - 1)
            return own
        for index in (objects / "packs").glob("*.idx"):
            entries, _ = packs.decode_index(index.read_bytes(), str(index))
            for got, offset, size in entries:
                if got.hex() == oid:
                    _flip(index.with_suffix(".pack"), offset + size - 1)
                    return index.with_suffix(".pack")
    raise AssertionError(f"the carrier does not hold {oid}")


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 1
    path.write_bytes(bytes(data))


def object_bytes(carrier: Path | str) -> int:
    """The content the carrier holds on disk: what its budget bounds (files
    of their own, and every object of every pack)."""
    total = 0
    for objects in Path(carrier).glob("vaults/*/objects"):
        total += sum(p.stat().st_size for p in objects.glob("??/*") if p.is_file())
        total += sum(p.stat().st_size - packs.PACK_HEADER.size for p in (objects / "packs").glob("*.pack"))
    return total


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
