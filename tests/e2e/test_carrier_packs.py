"""The carrier's small objects in packs (docs/formats/carrier.md, "Packs"),
through the real `sq`: they travel, are dropped a pack at a time, survive a
damaged pack as a later visit, are found by `sq verify` when rotten, and a
carrier written before packs is read as it is and moves to format 2."""

from __future__ import annotations

import json
from pathlib import Path

import blake3
import pytest

from squirrel.plumbing import objects
from squirrel.porcelain.visit import visit
from tests.bundle_tools import incompressible
from tests.carrier_tools import damage_object, object_bytes, stored_objects
from tests.helpers import make_tree, run_sq, tree

MIB = 1 << 20


def _photos(n: int, seed: int = 0) -> dict[str, bytes]:
    """A library's small files: thumbnails and sidecars of 1-20 KiB."""
    return {
        f"thumbs/{i:04d}.jpg": incompressible(1024 + (i * 977 + seed) % (19 * 1024), seed * 10_000 + i)
        for i in range(n)
    }


def _pair(tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, Path, Path]:
    """Drive A with `files`, an empty drive B of its vault, and a carrier
    that knows B (so that A's first visit takes everything for it)."""
    a, b, carrier = make_tree(tmp_path / "A", files), tmp_path / "B", tmp_path / "carrier"
    b.mkdir()
    run_sq("init", a, "--name", "A").check(0)
    run_sq("init", b, "--name", "B", "--join", a).check(0)
    run_sq("sync", b, "--carrier", carrier).check(0)
    return a, b, carrier


def _packs(carrier: Path) -> list[Path]:
    return sorted(carrier.glob("vaults/*/objects/packs/*"))


def _format(carrier: Path) -> int:
    return int(json.loads((carrier / "carrier.json").read_bytes())["format"])


def test_small_files_travel_in_a_pack_and_leave_the_carrier_with_it(tmp_path: Path) -> None:
    files = {**_photos(300), "videos/clip.mov": incompressible(MIB + 7, 1)}
    a, b, carrier = _pair(tmp_path, files)

    run_sq("sync", a, "--carrier", carrier).check(0)

    assert [p.suffix for p in _packs(carrier)] == [".idx", ".pack"]  # 300 small objects, one pack
    (clip,) = carrier.glob("vaults/*/objects/??/*")  # the large one in a file of its own
    assert clip.name == blake3.blake3(files["videos/clip.mov"]).hexdigest()
    assert set(stored_objects(carrier)) == {blake3.blake3(d).hexdigest() for d in files.values()}
    assert _format(carrier) == 2

    run_sq("sync", b, "--carrier", carrier).check(0)

    assert tree(b, folders=False) == files
    assert _packs(carrier) == [] and object_bytes(carrier) == 0


def test_a_damaged_pack_index_costs_a_later_visit_and_loses_nothing(tmp_path: Path) -> None:
    files = _photos(50)
    a, b, carrier = _pair(tmp_path, files)
    run_sq("sync", a, "--carrier", carrier).check(0)
    (index,) = carrier.glob("vaults/*/objects/packs/*.idx")
    damaged = bytearray(index.read_bytes())
    damaged[100] ^= 1
    index.write_bytes(bytes(damaged))

    waited = run_sq("sync", b, "--carrier", carrier)

    assert waited.code == 0, waited.err
    assert "wait for a later visit" in waited.err
    assert tree(b, folders=False) == {}
    assert _packs(carrier) == []  # the damaged pack is gone with the visit that writes
    run_sq("sync", a, "--carrier", carrier).check(0)  # the content is taken again
    run_sq("sync", b, "--carrier", carrier).check(0)
    assert tree(b, folders=False) == files


def test_verify_finds_an_object_rotten_in_its_pack(tmp_path: Path) -> None:
    files = _photos(20)
    a, _, carrier = _pair(tmp_path, files)
    run_sq("sync", a, "--carrier", carrier).check(0)
    assert run_sq("verify", carrier).code == 0
    rotten = blake3.blake3(files["thumbs/0007.jpg"]).hexdigest()
    assert damage_object(carrier, rotten).suffix == ".pack"

    ran = run_sq("verify", carrier)

    assert ran.code == 1
    assert f"carrier object {rotten}: content does not match its id" in ran.out + ran.err
    assert sum("does not match" in line for line in (ran.out + ran.err).splitlines()) == 1


def test_a_carrier_of_format_1_is_read_as_it_is_and_moves_to_format_2_with_its_first_pack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A carrier written before packs: its small objects are files of their
    own and `carrier.json` says format 1. They are delivered and dropped as
    before; the next small objects taken go into a pack, and the carrier
    says format 2 from then on."""
    files = _photos(40)
    a, b, carrier = _pair(tmp_path, files)
    monkeypatch.setattr(objects, "LARGE_OBJECT", 1)  # every object in a file of its own, as before packs
    visit(str(a), str(carrier))
    monkeypatch.undo()
    config = json.loads((carrier / "carrier.json").read_bytes())
    (carrier / "carrier.json").write_text(json.dumps({**config, "format": 1}))
    assert len(list(carrier.glob("vaults/*/objects/??/*"))) == 40 and _packs(carrier) == []

    run_sq("sync", b, "--carrier", carrier).check(0)

    assert tree(b, folders=False) == files
    assert object_bytes(carrier) == 0 and _format(carrier) == 1  # nothing packed yet: still readable by older sq
    more = _photos(10, seed=3)
    make_tree(a, more)
    run_sq("sync", a, "--carrier", carrier).check(0)
    assert _format(carrier) == 2 and [p.suffix for p in _packs(carrier)] == [".idx", ".pack"]
    run_sq("sync", b, "--carrier", carrier).check(0)
    assert tree(b, folders=False) == {**files, **more}


def test_a_carrier_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    a, _, carrier = _pair(tmp_path, _photos(3))
    config = json.loads((carrier / "carrier.json").read_bytes())
    (carrier / "carrier.json").write_text(json.dumps({**config, "format": 3}))
    ran = run_sq("sync", a, "--carrier", carrier)
    assert ran.code == 8
    assert "newer than this sq" in ran.err
