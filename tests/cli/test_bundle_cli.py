"""`sq pack`, `sq apply`, `sq bundle list/verify`, `sq cat-object` and
`sq knowledge` through the `sq` entry point.

Most cases run `main()` in this process (real argument parsing, output and
exit codes); the byte-exact output of `cat-object` and one refusal also run
as a real `sq` process.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import blake3
import pytest

from squirrel.errors import BadBundle, ContentUnavailable, CorruptCarrier, DamagedObject, WrongVault
from squirrel.plumbing.bundle import BundleReader
from squirrel.plumbing.knowledge import Knowledge
from squirrel.porcelain.init import init
from tests.bundle_tools import (
    SENDER_FILES,
    copy_replica,
    incompressible,
    object_positions,
    offsets,
    sender_and_receiver,
    snapshot,
)
from tests.carrier_tools import damage_object
from tests.helpers import make_tree, run_sq, sq_in_process, tree

SYNC_FIELDS = {"created", "updated", "deleted", "skipped", "moved", "bytes_copied", "conflicts", "failed", "deferred"}


def ok(*args: str | Path) -> tuple[bytes, str]:
    ran = sq_in_process(*args).check()
    return ran.stdout, ran.err


def ok_json(*args: str | Path) -> Any:
    return sq_in_process(*args, "--json").check().json


def one_error(err: bytes) -> str:
    lines = err.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sq: error: "), lines
    return lines[0]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """Replicas A (with files) and B (with its own files) of one vault."""
    a, b, bundle = sender_and_receiver(tmp_path)
    bundle.unlink()
    return a, b


# sq pack ------------------------------------------------------------------------
def test_pack_json_describes_the_bundle_it_wrote(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    out = tmp_path / "out.sqb"
    doc = ok_json("pack", a, "-o", out, "--for", b)
    assert set(doc) >= {"bundle", "size", "entries", "objects", "content_bytes", "known_to_receiver", "left_behind"}
    assert doc["bundle"] == str(out)
    assert doc["size"] == out.stat().st_size
    assert doc["objects"] == 6
    assert doc["entries"] == 11  # the root, 4 directories, 6 files
    assert doc["content_bytes"] == sum(
        len(c if isinstance(c, bytes) else c.encode()) for p, c in SENDER_FILES.items() if not p.endswith("/")
    )
    assert doc["known_to_receiver"] == 0
    assert doc["left_behind"] == []
    assert not Path(str(out) + ".part").exists()


def test_pack_prints_a_one_line_summary_and_nothing_on_stdout(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    out, err = ok("pack", a, "-o", tmp_path / "x.sqb", "--for", b)
    assert out == b""
    assert len(err.splitlines()) == 1 and err.startswith("packed 11 entries and 6 objects")


def test_pack_max_size_lists_what_it_left_behind(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    doc = ok_json("pack", a, "-o", tmp_path / "small.sqb", "--for", b, "--max-size", "4K")
    assert doc["content_bytes"] <= 4096
    left = {item["path"]: item["size"] for item in doc["left_behind"]}
    # Objects go in walk order while they fit: empty.txt, readme.md (500), trip.jpg (700).
    assert left == {"notes.txt": len(SENDER_FILES["notes.txt"]), "photos/img1.jpg": 3000, "photos/img2.jpg": 5000}


def test_pack_with_a_knowledge_file_leaves_out_what_the_receiver_has(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    first = ok_json("pack", a, "-o", tmp_path / "1.sqb", "--for", b)
    ok("apply", first["bundle"], b)
    (a / "photos" / "img1.jpg").rename(a / "photos" / "renamed.jpg")
    ok("knowledge", b, "-o", tmp_path / "b.json")
    doc = ok_json("pack", a, "-o", tmp_path / "2.sqb", "--base", tmp_path / "b.json")
    assert doc["objects"] == 0 and doc["known_to_receiver"] == 1
    applied = ok_json("apply", tmp_path / "2.sqb", b)
    assert applied["moved"] == 1 and applied["bytes_copied"] == 0


def test_pack_refuses_a_receiver_of_another_vault(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = pair
    z = tmp_path / "Z"
    z.mkdir()
    init(str(z), name="Z")
    ran = sq_in_process("pack", a, "-o", tmp_path / "z.sqb", "--for", z)
    assert ran.code == WrongVault.exit_code
    one_error(ran.stderr)
    assert not (tmp_path / "z.sqb").exists()


def test_pack_refuses_for_and_base_together(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    ok("knowledge", b, "-o", tmp_path / "b.json")
    ran = sq_in_process("pack", a, "-o", tmp_path / "x.sqb", "--for", b, "--base", tmp_path / "b.json")
    assert ran.code == 5
    one_error(ran.stderr)


def test_pack_refuses_a_bad_size(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    ran = sq_in_process("pack", a, "-o", tmp_path / "x.sqb", "--max-size", "lots")
    assert ran.code == 2


# sq apply -------------------------------------------------------------------------
def test_apply_json_reports_what_it_did(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    ok("pack", a, "-o", tmp_path / "x.sqb", "--for", b)
    (b / "notes.txt").write_text("B's own notes\n")  # meets A's notes.txt: create/create
    doc = ok_json("apply", tmp_path / "x.sqb", b)
    assert set(doc) >= SYNC_FIELDS | {"dry_run"}
    assert doc["created"] == 9  # 5 files and 4 directories
    assert doc["failed"] == [] and doc["deferred"] == [] and doc["dry_run"] is False
    (conflict,) = doc["conflicts"]
    assert conflict["path"] == "notes.txt" and conflict["kind"] == "create/create"
    assert ".sq-conflict-" in conflict["copy"]
    again = ok_json("apply", tmp_path / "x.sqb", b)
    assert (again["created"], again["updated"], again["deleted"], again["conflicts"]) == (0, 0, 0, [])


def test_apply_dry_run_reports_and_writes_nothing(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    ok("pack", a, "-o", tmp_path / "x.sqb", "--for", b)
    before = snapshot(b)
    doc = ok_json("apply", tmp_path / "x.sqb", b, "--dry-run")
    assert doc["dry_run"] is True and doc["created"] == 9
    assert snapshot(b) == before


def test_apply_of_a_truncated_bundle_fails_with_one_line_in_a_real_process(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = pair
    ok("pack", a, "-o", tmp_path / "x.sqb", "--for", b)
    data = (tmp_path / "x.sqb").read_bytes()
    (tmp_path / "cut.sqb").write_bytes(data[: len(data) // 2])
    before = snapshot(b)
    res = run_sq("apply", tmp_path / "cut.sqb", b)
    assert res.code == BadBundle.exit_code
    assert "truncated" in one_error(res.stderr)
    assert res.stdout == b""
    assert snapshot(b) == before


def test_apply_with_deferred_paths_succeeds_and_says_so(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    ok("pack", a, "-o", tmp_path / "x.sqb", "--for", b, "--max-size", "4K")
    ran = sq_in_process("apply", tmp_path / "x.sqb", b, "--json")
    assert ran.code == 0
    doc = ran.json
    assert {d["path"] for d in doc["deferred"]} == {"notes.txt", "photos/img1.jpg", "photos/img2.jpg"}
    assert "left for a later sync" in ran.err


# sq bundle list / verify ----------------------------------------------------------
def test_bundle_list_shows_every_entry_and_whether_its_content_is_carried(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = pair
    ok("pack", a, "-o", tmp_path / "x.sqb", "--for", b, "--max-size", "4K")
    out, _ = ok("bundle", "list", tmp_path / "x.sqb")
    lines = out.decode().splitlines()
    assert lines[0].startswith("vault ") and "from A" in lines[0]
    rows = {line.split("\t")[1]: line.split("\t")[0].split() for line in lines[1:]}
    assert set(rows) == {".", "docs", "docs/empty.txt", "docs/readme.md", "empty-dir", "notes.txt", "photos",
                         "photos/2024", "photos/2024/trip.jpg", "photos/img1.jpg", "photos/img2.jpg"}  # fmt: skip
    assert rows["notes.txt"][0] == "file" and rows["notes.txt"][3] == "no"
    trip = SENDER_FILES["photos/2024/trip.jpg"]
    assert isinstance(trip, bytes)
    assert rows["photos/2024/trip.jpg"] == ["file", blake3.blake3(trip).hexdigest(), "700", "yes"]
    assert rows["photos/img1.jpg"][3] == "no"
    assert rows["docs"][:3] == ["dir", "-", "0"]


def test_bundle_list_json_has_the_header_and_entries(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    ok("pack", a, "-o", tmp_path / "x.sqb", "--for", b)
    doc = ok_json("bundle", "list", tmp_path / "x.sqb")
    assert doc["header"]["format"] == 2 and doc["header"]["capabilities"] == ["zstd"]
    assert doc["header"]["total_size"] == (tmp_path / "x.sqb").stat().st_size
    by_path = {e["path"]: e for e in doc["entries"]}
    assert by_path["photos/2024/trip.jpg"]["content"] is True
    assert by_path["photos/2024/trip.jpg"]["size"] == 700
    assert by_path[""]["kind"] == "dir"


def test_bundle_verify_passes_a_good_bundle(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    ok("pack", a, "-o", tmp_path / "x.sqb", "--for", b)
    out, err = ok("bundle", "verify", tmp_path / "x.sqb")
    assert out == b""
    assert "ok (11 entries, 6 objects)" in err


@pytest.mark.parametrize("where", ["raw-payload", "zstd-payload", "trailer-hash"])
def test_bundle_verify_exits_1_on_a_damaged_bundle(pair: tuple[Path, Path], tmp_path: Path, where: str) -> None:
    a, b = pair
    ok("pack", a, "-o", tmp_path / "x.sqb", "--for", b)
    data = bytearray((tmp_path / "x.sqb").read_bytes())
    objs = object_positions(bytes(data))
    if where == "raw-payload":
        _, payload, obj = next((h, p, o) for h, p, o in objs if o.encoding == 0 and o.size == 5000)
        data[payload + 10] ^= 1
    elif where == "zstd-payload":
        _, payload, obj = next((h, p, o) for h, p, o in objs if o.encoding == 1 and o.size > 1000)
        data[payload + len(obj.payload) // 2] ^= 1
    else:
        data[-5] ^= 1
    (tmp_path / "bad.sqb").write_bytes(bytes(data))
    ran = sq_in_process("bundle", "verify", tmp_path / "bad.sqb")
    assert ran.code == 1
    assert "whole-bundle checksum does not match" in ran.out
    assert re.search(r": [12] problems?$", ran.err.strip())


def test_a_damaged_object_ends_the_apply_with_exit_10_and_says_what_was_applied(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    r_bin = incompressible(5000, seed=7)
    make_tree(a, {"ok.txt": "keep\n", "r.bin": r_bin})
    b.mkdir()
    ok("init", a, "--name", "A")
    ok("init", b, "--name", "B", "--join", a)
    ok("pack", a, "-o", tmp_path / "all.sqb")
    data = bytearray((tmp_path / "all.sqb").read_bytes())
    data[data.find(r_bin[:64]) + 100] ^= 1
    (tmp_path / "bad.sqb").write_bytes(bytes(data))
    oid = blake3.blake3(r_bin).hexdigest()

    # --dry-run checks the structure and the manifest, not the objects' bytes.
    dry = sq_in_process("apply", "--dry-run", tmp_path / "bad.sqb", b)
    assert dry.code == 0 and "2 created" in dry.err and tree(b) == {}
    verify = sq_in_process("bundle", "verify", tmp_path / "bad.sqb")
    assert verify.code == 1 and f"object {oid} does not match its id" in verify.out

    for applied in ("1 change", "0 changes"):  # a retry meets the same object
        ran = sq_in_process("apply", tmp_path / "bad.sqb", b)
        assert ran.code == DamagedObject.exit_code == 10
        line = one_error(ran.stderr)
        assert f"the content it carries for r.bin (object {oid}) is damaged" in line
        assert f"{applied} applied before it, each file complete and verified" in line
        assert "again" not in line
        assert tree(b) == {"ok.txt": b"keep\n"}
        assert list((b / ".squirrel" / "tmp").iterdir()) == []
    ok("apply", tmp_path / "all.sqb", b)
    assert tree(b) == {"ok.txt": b"keep\n", "r.bin": r_bin}


def test_bundle_verify_refuses_a_truncated_bundle_with_its_error_code(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    ok("pack", a, "-o", tmp_path / "x.sqb", "--for", b)
    data = (tmp_path / "x.sqb").read_bytes()
    (tmp_path / "cut.sqb").write_bytes(data[: offsets(data)["trailer"]])
    ran = sq_in_process("bundle", "verify", tmp_path / "cut.sqb")
    assert ran.code == BadBundle.exit_code
    one_error(ran.stderr)


# sq cat-object ----------------------------------------------------------------------
def test_cat_object_writes_the_exact_bytes_in_a_real_process(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    binary = bytes(range(256)) * 8 + b"\r\n\x00\x1a" + incompressible(70_000, 5)
    text = b"".join(b"line %d\r\n" % i for i in range(5000))
    make_tree(a, {"bin.dat": binary, "text.txt": text, "empty": b""})
    b.mkdir()
    init(str(a), name="A")
    init(str(b), name="B", join=str(a))
    ok("pack", a, "-o", tmp_path / "x.sqb")
    with BundleReader(str(tmp_path / "x.sqb")) as r:
        encodings = {ref.encoding for ref in r.objects.values()}
    assert encodings == {0, 1}
    for content in (binary, text, b""):
        res = run_sq("cat-object", blake3.blake3(content).hexdigest(), "--bundle", tmp_path / "x.sqb")
        assert res.code == 0, res.stderr
        assert res.stdout == content
        assert res.stderr == b""


def test_cat_object_of_an_object_not_in_the_bundle(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    ok("pack", a, "-o", tmp_path / "x.sqb")
    ran = sq_in_process("cat-object", "ab" * 32, "--bundle", tmp_path / "x.sqb")
    assert ran.code == ContentUnavailable.exit_code
    assert ran.stdout == b""
    one_error(ran.stderr)


def test_cat_object_refuses_a_malformed_id(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = pair
    ok("pack", a, "-o", tmp_path / "x.sqb")
    ran = sq_in_process("cat-object", "xyz", "--bundle", tmp_path / "x.sqb")
    assert ran.code != 0
    assert ran.stdout == b""
    one_error(ran.stderr)


def test_cat_object_fails_on_a_damaged_object(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = pair
    ok("pack", a, "-o", tmp_path / "x.sqb")
    data = bytearray((tmp_path / "x.sqb").read_bytes())
    head, payload, obj = next((h, p, o) for h, p, o in object_positions(bytes(data)) if o.size == 5000)
    data[payload + 100] ^= 1
    (tmp_path / "bad.sqb").write_bytes(bytes(data))
    ran = sq_in_process("cat-object", obj.oid.hex(), "--bundle", tmp_path / "bad.sqb")
    assert ran.code == BadBundle.exit_code
    assert "does not match its id" in one_error(ran.stderr)
    assert ran.stdout == b"", "not one byte of a damaged object reaches stdout"


def test_cat_object_needs_a_bundle_or_a_carrier(tmp_path: Path) -> None:
    assert sq_in_process("cat-object", "ab" * 32).code == 2
    assert sq_in_process("cat-object", "ab" * 32, "--bundle", tmp_path / "x", "--carrier", tmp_path).code == 2


def test_cat_object_reads_the_carrier_and_checks_it(tmp_path: Path) -> None:
    a, b, carrier = tmp_path / "A", tmp_path / "B", tmp_path / "carrier"
    photo = incompressible(30_000, 9)
    make_tree(a, {"photo.jpg": photo})
    b.mkdir()
    init(str(a), name="A")
    init(str(b), name="B", join=str(a))
    ok("sync", b, "--carrier", carrier)  # the carrier knows B: A's photo is kept for it
    ok("sync", a, "--carrier", carrier)
    oid = blake3.blake3(photo).hexdigest()
    ran = sq_in_process("cat-object", oid, "--carrier", carrier)
    assert (ran.code, ran.stdout) == (0, photo)
    assert damage_object(carrier, oid).suffix == ".pack"  # a small object: in a pack
    ran = sq_in_process("cat-object", oid, "--carrier", carrier)
    assert ran.code == CorruptCarrier.exit_code and ran.stdout == b""
    assert "does not match its id" in one_error(ran.stderr)
    ran = sq_in_process("cat-object", "ab" * 32, "--carrier", carrier)
    assert ran.code == ContentUnavailable.exit_code and ran.stdout == b""


# sq knowledge ---------------------------------------------------------------------------
def test_knowledge_writes_a_file_that_pack_base_reads(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    out, err = ok("knowledge", b, "-o", tmp_path / "k.json")
    assert out == b"" and "wrote the knowledge of B" in err
    doc = json.loads((tmp_path / "k.json").read_bytes())
    assert doc["format"] == 1
    know = Knowledge.read(str(tmp_path / "k.json"))
    ident = json.loads((b / ".squirrel" / "replica.json").read_bytes())
    assert (know.vault, know.replica) == (ident["vault"], ident["replica"])
    assert len(know.objects) == 2  # B's two files
    before = tree(b)
    twin = copy_replica(b, tmp_path / "B-twin")
    ok("pack", a, "-o", tmp_path / "base.sqb", "--base", tmp_path / "k.json")
    ok("pack", a, "-o", tmp_path / "for.sqb", "--for", twin)
    ok("apply", tmp_path / "base.sqb", b)
    ok("apply", tmp_path / "for.sqb", twin)
    assert tree(b) == tree(twin) != before


def test_knowledge_of_a_folder_that_is_not_a_replica(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    ran = sq_in_process("knowledge", tmp_path / "plain", "-o", tmp_path / "k.json")
    assert ran.code == 3
    one_error(ran.stderr)
    assert not (tmp_path / "k.json").exists()


def test_pack_base_refuses_a_damaged_knowledge_file(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, _ = pair
    (tmp_path / "k.json").write_text('{"format": 1, "vault": "nope"}')
    ran = sq_in_process("pack", a, "-o", tmp_path / "x.sqb", "--base", tmp_path / "k.json")
    assert ran.code == BadBundle.exit_code
    one_error(ran.stderr)
    (tmp_path / "k.json").write_text('{"format": 99}')
    ran = sq_in_process("pack", a, "-o", tmp_path / "x.sqb", "--base", tmp_path / "k.json")
    assert ran.code == 8
    one_error(ran.stderr)
    assert not (tmp_path / "x.sqb").exists()
