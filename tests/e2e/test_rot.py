"""Bit rot with the real `sq`: bytes flipped in files on one drive (size and
mtime kept) are no edit for `sq scan`, are found by `sq verify`, go to the
trash with `sq verify --repair`, and come back byte-exact from a healthy
drive by a push or a bundle, with no new version and no conflict anywhere.
A scrub in slices (`--max-bytes`) reads every byte once per cycle.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.carrier_tools import left_behind
from tests.helpers import Ran, make_tree, run_sq, tree

PHOTOS = {
    "2019/a.jpg": b"A" * 5000,
    "2019/b.jpg": b"B" * 7000,
    "2020/c.jpg": b"C" * 3000,
    "2020/d.raw": b"D" * 11000,
    "notes.txt": b"hello\n",
}


def sq(*args: str | Path, code: int = 0) -> Ran:
    return run_sq(*args).check(code)


def rot(path: Path, offset: int = 10) -> None:
    """Flip one byte of `path` in place, keeping its size and mtime."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def pair(tmp: Path) -> tuple[Path, Path]:
    a, b = make_tree(tmp / "A", PHOTOS), tmp / "B"
    b.mkdir()
    sq("init", a, "--name", "A")
    sq("init", b, "--name", "B", "--join", a)
    sq("push", a, b)
    return a, b


def index_lines(root: Path) -> str:
    """Every index record (kind, id, size, mtime, m, sync time) of `root`."""
    return sq("ls-index", root).out


def test_rot_is_no_edit_and_verify_finds_exactly_the_damaged_files(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    rot(b / "2019/a.jpg")
    rot(b / "2020/d.raw", 9000)
    before = index_lines(b)
    assert sq("scan", b, "--json").json["modified"] == []
    assert index_lines(b) == before  # nothing recorded
    ran = sq("verify", b, "--json", code=1)
    damaged = sorted(d["path"] for d in ran.json["damaged"])
    assert damaged == ["2019/a.jpg", "2020/d.raw"]
    assert all(not d["repaired"] for d in ran.json["damaged"])
    assert "--repair" in ran.err
    sq("verify", a)


def test_repair_then_push_heals_byte_exact_with_no_new_version(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    rot(b / "2019/a.jpg")
    rot(b / "2020/c.jpg")
    mtime = (b / "2019/a.jpg").stat().st_mtime_ns
    a_before, b_before = tree(a), index_lines(b)
    a_index = index_lines(a)
    ran = sq("verify", b, "--repair", "--json", code=1)
    assert sorted(d["path"] for d in ran.json["damaged"] if d["repaired"]) == ["2019/a.jpg", "2020/c.jpg"]
    assert not (b / "2019/a.jpg").exists()
    waiting = sq("status", b, "--json").json["waiting"]
    assert sorted(w["path"] for w in waiting) == ["2019/a.jpg", "2020/c.jpg"]
    asked = sq("status", b, "--exit-code", code=1)
    assert "2 damaged files waiting for healing" in asked.err
    trash = sq("trash", "list", b, "--json").json["items"]
    assert sorted((t["path"], t["reason"]) for t in trash) == [("2019/a.jpg", "damaged"), ("2020/c.jpg", "damaged")]
    # A scan meanwhile does not take the missing files for deletions.
    assert sq("scan", b, "--json").json["deleted"] == []
    # Nothing to take for anyone: the healthy drive is unchanged by a push from B.
    sq("push", b, a)
    assert tree(a) == a_before
    pushed = sq("push", a, b, "--json").json
    assert sorted(h["path"] for h in pushed["healed"]) == ["2019/a.jpg", "2020/c.jpg"]
    assert pushed["conflicts"] == [] and pushed["created"] == pushed["updated"] == 0
    assert tree(b) == tree(a) == a_before
    assert (b / "2019/a.jpg").stat().st_mtime_ns == mtime
    sq("verify", b)
    assert sq("status", b, "--json").json["waiting"] == []
    sq("status", b, "--exit-code")  # healed: nothing pending any more
    assert index_lines(b) == b_before and index_lines(a) == a_index  # no new version, no new event
    assert sq("conflicts", b, "--json").json == []


def test_heal_from_a_bundle(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    rot(b / "2020/d.raw")
    b_before = index_lines(b)
    sq("verify", b, "--repair", code=1)
    bundle = tmp_path / "heal.sqb"
    sq("pack", a, "--for", b, "-o", bundle)
    ran = sq("apply", bundle, b, "--json")
    assert [h["path"] for h in ran.json["healed"]] == ["2020/d.raw"]
    assert tree(b) == tree(a)
    assert index_lines(b) == b_before
    sq("verify", b)


def test_an_edit_while_waiting_wins(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    rot(b / "notes.txt", 1)
    sq("verify", b, "--repair", code=1)
    (b / "notes.txt").write_bytes(b"rewritten by hand\n")
    assert sq("scan", b, "--json").json["modified"] == [{"path": "notes.txt"}]
    assert sq("status", b, "--json").json["waiting"] == []
    sq("push", b, a)
    assert (a / "notes.txt").read_bytes() == b"rewritten by hand\n"
    sq("verify", b)


def test_a_copy_on_the_same_drive_heals_at_once(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    (b / "copy.jpg").write_bytes(PHOTOS["2019/b.jpg"])
    sq("scan", b)
    rot(b / "2019/b.jpg")
    ran = sq("verify", b, "--repair", "--json")
    assert [h["path"] for h in ran.json["healed"]] == ["2019/b.jpg"]
    assert (b / "2019/b.jpg").read_bytes() == PHOTOS["2019/b.jpg"]
    sq("verify", b)


def test_damaged_sender_heals_nothing(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    rot(b / "2019/a.jpg")
    rot(a / "2019/a.jpg")
    sq("verify", b, "--repair", code=1)
    ran = run_sq("push", a, b, "--json")
    assert ran.json["healed"] == []
    assert not (b / "2019/a.jpg").exists()
    assert [w["path"] for w in sq("status", b, "--json").json["waiting"]] == ["2019/a.jpg"]


def test_dry_run_repairs_nothing(tmp_path: Path) -> None:
    _, b = pair(tmp_path)
    rot(b / "2019/a.jpg")
    sq("verify", b, "--repair", "--dry-run", code=1)
    assert (b / "2019/a.jpg").exists()
    assert sq("status", b, "--json").json["waiting"] == []


def test_scrub_in_slices_reads_every_byte_once_per_cycle(tmp_path: Path) -> None:
    a, _ = pair(tmp_path)
    total = sum(len(v) for v in PHOTOS.values())
    assert sq("status", a, "--json").json["last_full_scrub"] is None
    for _cycle in range(2):
        read, runs = 0, 0
        while True:
            doc = sq("verify", a, "--max-bytes", "8K", "--json").json
            runs += 1
            assert doc["bytes"] <= 8192 or doc["files"] == 1  # a larger file is read whole, alone
            read += doc["bytes"]
            if doc["scrub"]["cycle_done"]:
                break
            assert runs < 20
        assert read == total
        assert runs > 1
    assert sq("status", a, "--json").json["last_full_scrub"] is not None


def test_scrub_slice_finds_and_repairs_damage(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    rot(b / "2020/d.raw")
    found = []
    for _ in range(10):
        doc = run_sq("verify", b, "--max-bytes", "8K", "--repair", "--json").json
        found += [d["path"] for d in doc["damaged"]]
        if doc["scrub"]["cycle_done"]:
            break
    assert found == ["2020/d.raw"]
    sq("push", a, b)
    assert tree(b) == tree(a)


def three_drives(tmp: Path, carrier: Path) -> list[Path]:
    """Drives A, B and C of one vault, in sync through the carrier."""
    a = make_tree(tmp / "A", PHOTOS)
    drives = [a, tmp / "B", tmp / "C"]
    sq("init", a, "--name", "A")
    for d in drives[1:]:
        d.mkdir()
        sq("init", d, "--name", d.name, "--join", a)
    sq("sync", a, "--carrier", carrier, "--max-size", "12K")
    for _ in range(8):  # a small carrier fills the new drives over several rounds
        for d in drives:
            sq("sync", d, "--carrier", carrier)
        if all(tree(d) == PHOTOS_TREE for d in drives):
            break
    assert all(tree(d) == PHOTOS_TREE for d in drives)
    return drives


PHOTOS_TREE = {**{k: v for k, v in PHOTOS.items()}, "2019/": b"", "2020/": b""}


def test_the_carrier_heals_within_two_rounds(tmp_path: Path) -> None:
    carrier = tmp_path / "carrier"
    a, b, c = three_drives(tmp_path, carrier)
    sq("carrier", "config", "--carrier", carrier, "--scrub", "1G")
    indexes = [index_lines(d) for d in (a, b, c)]
    rot(b / "2019/a.jpg")
    rot(b / "2020/c.jpg")  # 8 KiB together: they fit the carrier's 12 KiB, not the 31 KiB of photos
    healed: list[str] = []
    for _round in range(2):
        for d in (a, b, c):
            doc = sq("sync", d, "--carrier", carrier, "--json", code=0).json
            healed += [h["path"] for h in doc["healed"]]
            assert doc["lost"] == []
            assert doc["created"] == doc["updated"] == doc["deleted"] == 0 and doc["conflicts"] == []
    assert sorted(healed) == ["2019/a.jpg", "2020/c.jpg"]
    assert all(tree(d) == PHOTOS_TREE for d in (a, b, c))
    assert [index_lines(d) for d in (a, b, c)] == indexes
    sq("verify", b)


def test_damage_no_drive_holds_is_reported_lost(tmp_path: Path) -> None:
    carrier = tmp_path / "carrier"
    a, b, c = three_drives(tmp_path, carrier)
    for d in (a, b, c):
        rot(d / "notes.txt", 2)
    for d in (a, b, c):
        doc = sq("sync", d, "--carrier", carrier, "--scrub", "1G", "--json").json
        assert [x["path"] for x in doc["damaged"]] == ["notes.txt"]
    doc = sq("sync", c, "--carrier", carrier, "--json").json
    assert [x["path"] for x in doc["lost"]] == ["notes.txt"]
    assert [w["path"] for w in sq("status", c, "--json").json["waiting"]] == ["notes.txt"]


def test_the_right_content_put_back_by_hand_ends_the_wait_without_a_new_version(tmp_path: Path) -> None:
    a, b = pair(tmp_path)
    rot(b / "2019/b.jpg")
    before = index_lines(b)
    sq("verify", b, "--repair", code=1)
    (b / "2019/b.jpg").write_bytes(PHOTOS["2019/b.jpg"])  # from a backup: a new mtime
    scanned = sq("scan", b, "--json").json
    assert scanned["modified"] == [] and scanned["added"] == []
    assert sq("status", b, "--json").json["waiting"] == []
    sq("verify", b)
    after = index_lines(b)
    assert [line.split()[4:] for line in after.splitlines()] == [line.split()[4:] for line in before.splitlines()]
    sq("push", b, a)
    assert tree(a) == tree(b)


def test_a_dry_run_slice_leaves_the_scrub_where_it_was(tmp_path: Path) -> None:
    a, _ = pair(tmp_path)
    first = sq("verify", a, "--max-bytes", "8K", "--json").json
    dry = sq("verify", a, "--max-bytes", "8K", "--dry-run", "--json").json
    again = sq("verify", a, "--max-bytes", "8K", "--json").json
    assert dry["bytes"] == again["bytes"] and dry["files"] == again["files"]
    assert (
        first["scrub"]["cycle_bytes"] + again["bytes"] == again["scrub"]["cycle_bytes"] or again["scrub"]["cycle_done"]
    )


def test_the_carrier_says_when_each_drive_was_last_fully_scrubbed(tmp_path: Path) -> None:
    carrier = tmp_path / "carrier"
    a, b, _ = three_drives(tmp_path, carrier)
    rot(b / "notes.txt", 3)
    sq("sync", b, "--carrier", carrier, "--scrub", "1G")
    drives = {d["name"]: d for d in sq("carrier", "status", "--carrier", carrier, "--json").json["vaults"][0]["drives"]}
    assert drives["B"]["last_full_scrub"] is not None and drives["B"]["damaged"] == 1
    assert drives["A"]["last_full_scrub"] is None and drives["A"]["damaged"] == 0
    assert "last fully scrubbed never" in sq("carrier", "status", "--carrier", carrier).out


def test_a_copy_that_could_not_be_put_back_is_carried_from_its_other_path(tmp_path: Path) -> None:
    """A damaged file whose copy on the same drive could not be put back
    during the visit (the drive failed a write) waits for healing; the
    visit still takes that content into the carrier, from the copy's path,
    for the drive that lacks it, and its next visit heals the file."""
    carrier = tmp_path / "carrier"
    files = {**PHOTOS, "copy.jpg": PHOTOS["2019/b.jpg"]}
    a, c = left_behind(tmp_path, files, carrier)
    rot(a / "2019/b.jpg")

    # The third rename of the visit begins the heal from the copy (its intent log).
    ran = run_sq("sync", a, "--carrier", carrier, "--scrub", "1G", fault="rename:3:eio").check(0)

    assert not (a / "2019/b.jpg").exists()  # (the fault struck where this test means it to)
    assert "damaged   2019/b.jpg (moved to the trash, waiting for healing; not healed from the copy" in ran.out
    assert "Input/output error" in ran.out
    doc = sq("sync", c, "--carrier", carrier, "--json").json
    assert doc["failed"] == [] and doc["deferred"] == []
    assert tree(c) == {**files, "2019/": b"", "2020/": b""}
    assert [h["path"] for h in sq("sync", a, "--carrier", carrier, "--json").json["healed"]] == ["2019/b.jpg"]
    assert (a / "2019/b.jpg").read_bytes() == PHOTOS["2019/b.jpg"]
    sq("verify", a)


def test_a_visit_says_a_copy_on_the_drive_healed_its_damage_at_once(tmp_path: Path) -> None:
    carrier = tmp_path / "carrier"
    a = make_tree(tmp_path / "A", {**PHOTOS, "copy.jpg": PHOTOS["2019/b.jpg"]})
    sq("init", a, "--name", "A")
    sq("sync", a, "--carrier", carrier)
    rot(a / "2019/b.jpg")

    ran = sq("sync", a, "--carrier", carrier, "--scrub", "1G")
    assert "damaged   2019/b.jpg (healed from a copy on this drive)" in ran.out
    assert (a / "2019/b.jpg").read_bytes() == PHOTOS["2019/b.jpg"]
    rot(a / "2019/b.jpg", 20)
    doc = sq("sync", a, "--carrier", carrier, "--scrub", "1G", "--json").json
    assert [h["path"] for h in doc["healed"]] == ["2019/b.jpg"]
    assert [(x["path"], x["repaired"]) for x in doc["damaged"]] == [("2019/b.jpg", True)]
    sq("verify", a)


def test_damage_the_carrier_would_carry_fails_that_file_alone_and_says_so(tmp_path: Path) -> None:
    """Rot not found yet, in a file another drive lacks: the visit carries
    everything else, lists the damaged file with what to do, and exits
    18; once the file is set aside, visits go through again and report it
    lost (no other drive ever had it)."""
    carrier = tmp_path / "carrier"
    a, c = left_behind(tmp_path, PHOTOS, carrier)
    rot(a / "2019/a.jpg")

    ran = sq("sync", a, "--carrier", carrier, code=18)
    assert (
        "failed    2019/a.jpg: not taken into the carrier: its content no longer matches the drive's index,"
        " though its size and time do: damaged?"
    ) in ran.out
    assert "--repair` sets it aside" in ran.out
    sq("sync", c, "--carrier", carrier)
    assert tree(c) == {k: v for k, v in PHOTOS_TREE.items() if k != "2019/a.jpg"}

    sq("verify", a, "--repair", code=1)
    doc = sq("sync", a, "--carrier", carrier, "--json").json
    assert doc["failed"] == [] and [x["path"] for x in doc["lost"]] == ["2019/a.jpg"]


def test_damage_in_one_copy_is_carried_from_a_sound_copy_on_the_same_drive(tmp_path: Path) -> None:
    """Rot not found yet in a file another drive lacks, whose content the
    drive holds at a second path: the visit takes the content from the
    sound copy and still lists the damaged file with what to do (exit
    18); the other drive gets every file byte-exact. With both copies
    damaged, both are listed and that content waits."""
    carrier = tmp_path / "carrier"
    files = {**PHOTOS, "copy.jpg": PHOTOS["2019/a.jpg"]}
    a, c = left_behind(tmp_path, files, carrier)
    rot(a / "2019/a.jpg")

    ran = sq("sync", a, "--carrier", carrier, code=18)
    damaged = "its content no longer matches the drive's index, though its size and time do: damaged?"
    assert f"failed    2019/a.jpg: {damaged}" in ran.out
    assert "(its content was taken into the carrier from copy.jpg)" in ran.out
    assert "not taken into the carrier" not in ran.out
    sq("sync", c, "--carrier", carrier)
    assert tree(c) == {**PHOTOS_TREE, "copy.jpg": PHOTOS["2019/a.jpg"]}


def test_damage_in_every_copy_on_the_drive_lists_each_and_carries_the_rest(tmp_path: Path) -> None:
    carrier = tmp_path / "carrier"
    files = {**PHOTOS, "copy.jpg": PHOTOS["2019/a.jpg"]}
    a, c = left_behind(tmp_path, files, carrier)
    rot(a / "2019/a.jpg")
    rot(a / "copy.jpg", 20)

    ran = sq("sync", a, "--carrier", carrier, "--json", code=18)
    failed = {f["path"]: f["error"] for f in ran.json["failed"]}
    assert sorted(failed) == ["2019/a.jpg", "copy.jpg"]
    assert all(why.startswith("not taken into the carrier: its content no longer matches") for why in failed.values())
    sq("sync", c, "--carrier", carrier)
    assert tree(c) == {k: v for k, v in PHOTOS_TREE.items() if k != "2019/a.jpg"}
