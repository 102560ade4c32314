"""`sq carrier at-risk`, `sq carrier next` and the lines `sq carrier status`
adds, through the `sq` entry point in this process: what a user reads, the
JSON a script reads, and the exit codes (docs/exit-codes.md).
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

from squirrel.errors import BadPath, BadUsage
from squirrel.plumbing.replica import Replica
from squirrel.porcelain.init import init
from squirrel.porcelain.visit import visit
from tests.helpers import Ran, make_tree, sq_in_process

KIB = 1024
EXIT_AT_RISK = 1


def blob(rng: random.Random, tag: str, size: int = 4 * KIB) -> bytes:
    return tag.encode() + rng.randbytes(size - len(tag))


def carrier_sq(carrier: Path, *args: str) -> Ran:
    return sq_in_process("carrier", *args, "--carrier", carrier)


def at_risk_json(carrier: Path, *args: str, code: int) -> Any:
    return carrier_sq(carrier, "at-risk", "--json", *args).check(code).json


def vault_drives(tmp_path: Path, files: dict[str, bytes], *names: str) -> list[Path]:
    """Drives `names`: the first holds `files`, the others join it empty."""
    roots = [tmp_path / n for n in names]
    make_tree(roots[0], files)
    init(str(roots[0]), name=names[0])
    for root in roots[1:]:
        root.mkdir()
        init(str(root), name=root.name, join=str(roots[0]))
    return roots


def go(drive: Path, carrier: Path, budget: int = 64 * KIB) -> None:
    assert visit(str(drive), str(carrier), max_size=budget).delivered.failed == []


def test_at_risk_lists_what_is_on_one_drive_and_exits_1_until_a_second_drive_has_it(tmp_path: Path) -> None:
    rng = random.Random(1)
    a, b, c = vault_drives(tmp_path, {"old.jpg": blob(rng, "old")}, "a", "b", "c")
    carrier = tmp_path / "carrier"
    for d in (a, b, c, a, b, c):
        go(d, carrier)
    doc = at_risk_json(carrier, code=0)
    assert (doc["copies"], doc["known_drives"], doc["at_risk"], doc["count"], doc["bytes"]) == (2, 3, [], 0, 0)
    ran = carrier_sq(carrier, "at-risk").check(0)
    assert ran.out == "" and "nothing at risk" in ran.err

    make_tree(a, {"trip/new1.jpg": blob(rng, "new1"), "trip/new2.jpg": blob(rng, "new2", 2 * KIB)})
    go(a, carrier)
    with Replica.open(str(a), write=False) as rep:
        vault = rep.identity.vault
        oids = {p: rep.index.get(p).oid.hex() for p in (b"trip/new1.jpg", b"trip/new2.jpg")}  # type: ignore[union-attr]
    doc = at_risk_json(carrier, code=EXIT_AT_RISK)
    assert doc["vault"] == vault and (doc["count"], doc["bytes"]) == (2, 6 * KIB)
    assert doc["at_risk"] == [
        {"path": "trip/new1.jpg", "oid": oids[b"trip/new1.jpg"], "size": 4 * KIB, "drives": ["a"], "in_carrier": True},
        {"path": "trip/new2.jpg", "oid": oids[b"trip/new2.jpg"], "size": 2 * KIB, "drives": ["a"], "in_carrier": True},
    ]
    text = carrier_sq(carrier, "at-risk").check(EXIT_AT_RISK)
    assert text.out.splitlines() == [
        "trip/new1.jpg: 4.0 KiB on a; a copy in the carrier",
        "trip/new2.jpg: 2.0 KiB on a; a copy in the carrier",
    ]
    assert "2 versions (6.0 KiB) on fewer than 2 of the 3 known drives" in text.err
    assert at_risk_json(carrier, "--copies", "1", code=0)["at_risk"] == []
    assert at_risk_json(carrier, "--copies", "3", vault, code=EXIT_AT_RISK)["count"] == 2
    assert carrier_sq(carrier, "at-risk", "--copies", "0").code == BadUsage.exit_code

    go(b, carrier)
    assert at_risk_json(carrier, code=0)["count"] == 0, "a and b hold them now"
    assert at_risk_json(carrier, "--copies", "3", code=EXIT_AT_RISK)["count"] == 2
    go(c, carrier)
    assert at_risk_json(carrier, "--copies", "3", code=0)["count"] == 0


def test_a_moved_folder_or_an_imported_duplicate_is_not_at_risk(tmp_path: Path) -> None:
    """A drive holds a version when it holds its content, at any path: a
    folder renamed on one drive is still on every drive."""
    rng = random.Random(2)
    files = {f"album/{i}.jpg": blob(rng, f"p{i}") for i in range(3)}
    a, b = vault_drives(tmp_path, files, "a", "b")
    carrier = tmp_path / "carrier"
    for d in (a, b, a, b):
        go(d, carrier)
    (a / "album").rename(a / "album-2024")
    shutil.copy2(b / "album/0.jpg", b / "copy-of-0.jpg")
    go(a, carrier)
    go(b, carrier)
    assert at_risk_json(carrier, code=0)["count"] == 0


def test_content_that_did_not_fit_is_known_and_listed_without_a_carrier_copy(tmp_path: Path) -> None:
    rng = random.Random(3)
    a, b = vault_drives(tmp_path, {"x.jpg": blob(rng, "x")}, "a", "b")
    carrier = tmp_path / "carrier"
    for d in (a, b, a, b):
        go(d, carrier, 8 * KIB)
    make_tree(a, {"big.mov": blob(rng, "big", 12 * KIB), "small.jpg": blob(rng, "small")})
    go(a, carrier, 8 * KIB)
    doc = at_risk_json(carrier, code=EXIT_AT_RISK)
    listed = {v["path"]: (v["drives"], v["in_carrier"]) for v in doc["at_risk"]}
    assert listed == {"big.mov": (["a"], False), "small.jpg": (["a"], True)}


def test_at_risk_needs_a_vault_when_the_carrier_serves_several_and_a_carrier_that_serves_one(
    tmp_path: Path,
) -> None:
    carrier = tmp_path / "carrier"
    assert carrier_sq(carrier, "at-risk").code == BadPath.exit_code, "no carrier there"
    sq_in_process("carrier", "config", "--carrier", carrier, "--max-size", "1M").check()
    ran = carrier_sq(carrier, "at-risk")
    assert ran.code == BadPath.exit_code and "serves no vault yet" in ran.err
    vaults = []
    for name in ("one", "two"):
        (d,) = vault_drives(tmp_path, {"f.jpg": name.encode()}, name)
        go(d, carrier)
        with Replica.open(str(d), write=False) as rep:
            vaults.append(rep.identity.vault)
    ran = carrier_sq(carrier, "at-risk")
    assert ran.code == BadUsage.exit_code and len(ran.error_lines) == 1 and "name one" in ran.err
    for v in vaults:
        assert at_risk_json(carrier, v, code=EXIT_AT_RISK)["count"] == 1, "one drive holds f.jpg"
    ran = carrier_sq(carrier, "at-risk", "0123456789abcdef")
    assert ran.code == BadPath.exit_code and "does not serve vault" in ran.err


def test_next_ranks_the_drive_a_visit_would_help_most_first(tmp_path: Path) -> None:
    rng = random.Random(4)
    a, b, c = vault_drives(tmp_path, {"base.jpg": blob(rng, "base")}, "a", "b", "c")
    carrier = tmp_path / "carrier"
    for d in (a, b, c, a, b, c):
        go(d, carrier)
    make_tree(a, {"one.jpg": blob(rng, "one")})
    go(a, carrier)  # b and c lack one.jpg
    go(c, carrier)  # c has it now
    make_tree(a, {"two.jpg": blob(rng, "two", 2 * KIB)})
    go(a, carrier)  # b lacks one and two, c lacks two
    doc = carrier_sq(carrier, "next", "--json").check().json
    ranked = [(d["name"], d["deliver"], d["deliver_bytes"], d["fixes"], d["take"]) for d in doc["drives"]]
    assert ranked == [("b", 2, 6 * KIB, 1, 0), ("c", 1, 2 * KIB, 1, 0), ("a", 0, 0, 0, 0)]
    assert doc["copies"] == 2 and all(d["vault"] and d["replica"] for d in doc["drives"])
    lines = carrier_sq(carrier, "next").check().out.splitlines()
    assert [line.split()[0] for line in lines] == ["b", "c", "a"]
    assert "deliver 2 versions (6.0 KiB), take 0 versions (0 B), fix 1 at-risk" in lines[0]


def test_next_counts_what_a_drive_would_take_for_a_drive_that_lacks_it(tmp_path: Path) -> None:
    rng = random.Random(5)
    a, b = vault_drives(tmp_path, {f"f{i}.jpg": blob(rng, f"f{i}") for i in range(3)}, "a", "b")
    carrier = tmp_path / "carrier"
    go(a, carrier)  # the carrier meets a alone: it keeps no content
    go(b, carrier)  # b lacks all three; the carrier holds none of them
    doc = carrier_sq(carrier, "next", "--json").check().json
    first = doc["drives"][0]
    assert (first["name"], first["take"], first["take_bytes"], first["deliver"]) == ("a", 3, 12 * KIB, 0)
    assert (doc["drives"][1]["name"], doc["drives"][1]["missing"]) == ("b", 3)


def test_status_says_how_much_is_on_one_drive_only_and_lists_forgotten_drives(tmp_path: Path) -> None:
    rng = random.Random(6)
    a, b, c = vault_drives(tmp_path, {"x.jpg": blob(rng, "x")}, "a", "b", "c")
    carrier = tmp_path / "carrier"
    for d in (a, b, c, a, b, c):
        go(d, carrier)
    assert "  0 versions (0 B) are on one drive only" in carrier_sq(carrier, "status").check().out.splitlines()
    make_tree(a, {"n.jpg": blob(rng, "n")})
    go(a, carrier)
    carrier_sq(carrier, "forget", "c").check()
    out = carrier_sq(carrier, "status").check().out.splitlines()
    assert "  1 version (4.0 KiB) is on one drive only (see `sq carrier at-risk`)" in out
    assert any(line.startswith("  c ") and "forgotten" in line and "nothing is carried" in line for line in out)
    doc = carrier_sq(carrier, "status", "--json").check().json
    (vault,) = doc["vaults"]
    assert (vault["one_drive"], vault["one_drive_bytes"], vault["no_drive"]) == (1, 4 * KIB, 0)
    assert [d["name"] for d in vault["forgotten"]] == ["c"]
