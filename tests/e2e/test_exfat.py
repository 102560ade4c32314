"""A real exFAT drive in the vault: a 64 MiB image on a loop device,
mounted through FUSE (exfat-fuse), beside drives and a carrier on the
tests' own file system (docs/safety.md, "Filesystems the drives really use").

exFAT folds case, keeps names as given (no Unicode normalization), refuses
some characters (`: ? " < > | * \\`), has no symlinks or Unix permissions,
and exfat-fuse keeps whole seconds of a file's mtime. What these tests pin:

- a multi-drive history with one exFAT drive converges, with no conflict
  and no change that nobody made (coarse mtimes never look like edits);
- two names that differ only in case, or only in Unicode normalization,
  cannot both be written: the second is reported and neither overwritten;
  for two folders, nothing of the second goes into the first, so the
  drive never sees a move that a sync back would make on the sender;
- a name exFAT cannot hold is reported with a message, every visit, and
  nothing is lost;
- a case-only rename made on the exFAT drive reaches the others;
- a lost exFAT drive is forgotten, an exFAT replacement is filled to equal
  the others, and the lost one converges when it returns
  (tests/drive_scenarios.py).

The tests skip unless they run as root with `mkfs.exfat`, `losetup` and
`mount.exfat-fuse` (Debian: `apt-get install exfatprogs exfat-fuse`) and a
loop device and FUSE are available.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from squirrel.errors import ChangedDuringOperation
from squirrel.plumbing import place
from squirrel.plumbing.index import KIND_DIR, Entry, decode_entry
from squirrel.plumbing.space import SPACE_RESERVE
from tests.bundle_tools import REC_ENTRY, Record, entry_record, join_bundle, split_bundle
from tests.crash_scenarios import kill_everywhere_then_scan_and_rerun, open_conflicts, pack_for, two_replicas
from tests.drive_scenarios import LostDriveStory
from tests.fault_tools import Outcome, oid, run_forked, trash_ids
from tests.helpers import age_trash, make_tree, tree, write

MIB = 1 << 20
TOOLS = ("mkfs.exfat", "losetup", "mount.exfat-fuse")


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)


def unmount(mnt: Path) -> None:
    for cmd in (["umount", str(mnt)], ["fusermount", "-u", str(mnt)]):
        if shutil.which(cmd[0]) and subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0:
            return


@pytest.fixture(scope="module")
def exfat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The root of a freshly made exFAT file system, mounted through FUSE."""
    if os.geteuid() != 0:
        pytest.skip("mounting an exFAT image needs root")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (Debian: apt-get install exfatprogs exfat-fuse)")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    work = tmp_path_factory.mktemp("exfat")
    image, mnt = work / "drive.img", work / "mnt"
    mnt.mkdir()
    loop: str | None = None
    mounted = False
    try:
        with open(image, "wb") as f:
            f.truncate(64 * MIB)
        run(["mkfs.exfat", "-L", "SQTEST", str(image)])
        loop = run(["losetup", "--find", "--show", str(image)]).stdout.strip()
        run(["mount.exfat-fuse", loop, str(mnt)])
        mounted = True
        probe = mnt / "CaseProbe"
        probe.write_bytes(b"")
        if not (mnt / "caseprobe").exists():
            raise OSError("the mounted file system does not fold case: not exFAT?")
        probe.unlink()
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", "") or ""
        if mounted:
            unmount(mnt)
        if loop:
            subprocess.run(["losetup", "-d", loop], capture_output=True, timeout=60)
        pytest.skip(f"cannot mount an exFAT image: {e} {detail}".strip())
    try:
        yield mnt
    finally:
        unmount(mnt)
        if loop:
            subprocess.run(["losetup", "-d", loop], capture_output=True, timeout=60)


@pytest.fixture
def on_exfat(exfat: Path, request: pytest.FixtureRequest) -> Path:
    """A folder of its own on the exFAT drive, for one test."""
    folder = exfat / request.node.name[:60].replace("[", "-").replace("]", "")
    folder.mkdir()
    return folder


def sq(*args: str | Path) -> Outcome:
    return run_forked(list(args), timeout=120)


def ok(*args: str | Path) -> Outcome:
    out = sq(*args)
    assert out.code == 0, (args, out.code, out.stderr.decode())
    return out


def visit(drive: Path, carrier: Path, *, code: int = 0) -> dict[str, Any]:
    out = sq("sync", drive, "--carrier", carrier, "--json")
    assert out.code == code, (drive, out.code, out.stdout.decode(), out.stderr.decode())
    if code:
        lines = out.error_lines
        assert len(lines) == 1 and lines[0].startswith("sq: error: "), lines
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def quiet(doc: dict[str, Any]) -> bool:
    moved = sum(int(doc[k]) for k in ("created", "updated", "deleted", "moved", "taken", "carried_in"))
    return moved == 0 and not doc["conflicts"] and not doc["failed"] and not doc["deferred"]


def three_drives(tmp: Path, on_exfat: Path, files: dict[str, bytes | str]) -> tuple[Path, Path, Path, Path]:
    """D1 (holding `files`) and D3 on the tests' file system, D2 on exFAT, a carrier;
    every drive visited once, D2 and D3 joined empty."""
    d1, d2, d3, carrier = tmp / "D1", on_exfat / "D2", tmp / "D3", tmp / "carrier"
    make_tree(d1, files)
    ok("init", d1, "--name", "D1")
    for d, name in ((d2, "D2"), (d3, "D3")):
        d.mkdir()
        ok("init", d, "--name", name, "--join", d1)
    for d in (d1, d2, d3):
        visit(d, carrier)
    return d1, d2, d3, carrier


def rounds(drives: list[Path], carrier: Path, most: int = 6) -> list[dict[str, Any]]:
    """Visit every drive in turn until a whole round is quiet; returns every report."""
    reports: list[dict[str, Any]] = []
    for _ in range(most):
        docs = [visit(d, carrier) for d in drives]
        reports += docs
        if all(quiet(doc) for doc in docs):
            return reports
    raise AssertionError(f"no quiet round after {most}: {reports[-len(drives) :]}")


# A whole history ---------------------------------------------------------------------------
def test_a_vault_with_an_exfat_drive_converges_without_conflicts_or_phantom_changes(
    tmp_path: Path, on_exfat: Path
) -> None:
    files: dict[str, bytes | str] = {f"photos/2024/img{i:02d}.jpg": os.urandom(40_000 + i) for i in range(20)}
    files |= {f"docs/note{i}.txt": f"note {i}\n" for i in range(10)}
    d1, d2, d3, carrier = three_drives(tmp_path, on_exfat, files)
    drives = [d1, d2, d3]
    reports = rounds(drives, carrier)
    # Edits on every drive, the exFAT one included.
    write(d2 / "photos/2024/img00.jpg", os.urandom(41_000))
    (d2 / "docs/note1.txt").unlink()
    os.rename(d2 / "photos/2024/img01.jpg", d2 / "photos/img01-moved.jpg")
    write(d2 / "from-exfat.txt", "written on the exFAT drive\n")
    write(d1 / "docs/note2.txt", "edited on D1\n")
    write(d3 / "photos/new-on-d3.jpg", os.urandom(5_000))
    reports += rounds(drives, carrier)
    trees = [tree(d, folders=False) for d in drives]
    assert trees[0] == trees[1] == trees[2]
    assert "docs/note1.txt" not in trees[0] and "photos/img01-moved.jpg" in trees[0]
    assert not any(doc["conflicts"] for doc in reports), "a conflict nobody made"
    assert all(open_conflicts(d) == set() for d in drives)
    for d in drives:
        verified = sq("verify", d)
        assert verified.code == 0, verified.stdout.decode()
    # The exFAT drive's coarse mtimes are what its index holds: nothing is pending.
    assert sq("status", d2, "--exit-code").code == 0
    scanned = json.loads(ok("scan", d2, "--json").stdout)
    assert (scanned["added"], scanned["modified"], scanned["deleted"], scanned["hashed"]) == ([], [], [], 0)


def test_a_lost_exfat_drive_is_forgotten_replaced_on_exfat_and_taken_back_when_it_returns(
    tmp_path: Path, on_exfat: Path
) -> None:
    LostDriveStory(tmp_path, lambda args: sq(*args), lost=on_exfat / "drive2", new=on_exfat / "drive4").run_all()


def test_coarse_mtimes_on_exfat_are_never_a_change_and_a_same_second_edit_is_still_seen(
    tmp_path: Path, on_exfat: Path
) -> None:
    d1, d2, _, carrier = three_drives(tmp_path, on_exfat, {"a.txt": "a"})
    t = time.time() - 3600 + 0.987654321
    for i in range(10):
        write(d1 / f"fine/f{i}.txt", f"fine-grained mtime {i}\n", seconds_ago=None)
        os.utime(d1 / f"fine/f{i}.txt", ns=(int(t * 1e9) + i, int(t * 1e9) + i))
    visit(d1, carrier)
    visit(d2, carrier)
    on_disk = os.stat(d2 / "fine/f0.txt").st_mtime_ns
    assert on_disk % 1_000_000_000 == 0, "exfat-fuse kept sub-second mtimes: this test expects whole seconds"
    assert sq("status", d2, "--exit-code").code == 0
    for d in (d2, d1):
        assert quiet(visit(d, carrier)), "a rounded mtime looked like a change"
    # An edit of the same size, within the same second as the scan that recorded the file.
    f = d2 / "same-second.txt"
    f.write_bytes(b"first  version\n")
    ok("scan", d2)
    mtime = os.stat(f).st_mtime_ns
    f.write_bytes(b"second version\n")
    os.utime(f, ns=(mtime, mtime))
    scanned = json.loads(ok("scan", d2, "--json").stdout)
    assert [x["path"] for x in scanned["modified"]] == ["same-second.txt"]


# Names -------------------------------------------------------------------------------------
def test_case_twins_arriving_on_exfat_are_reported_and_neither_is_overwritten(tmp_path: Path, on_exfat: Path) -> None:
    d1, d2, _, carrier = three_drives(tmp_path, on_exfat, {"photos/keep.jpg": "keep"})
    write(d2 / "Report.pdf", "D2's own report\n")
    visit(d2, carrier)
    write(d1 / "photos/IMG.JPG", "upper case\n")
    write(d1 / "photos/img.jpg", "lower case\n")
    visit(d1, carrier)
    write(d1 / "report.pdf", "D1's report, another file\n")
    visit(d1, carrier)
    for _ in range(2):
        doc = visit(d2, carrier, code=18)
        failed = {f["path"]: f["error"] for f in doc["failed"]}
        assert set(failed) == {"photos/img.jpg", "report.pdf"}, failed
        assert "collides with photos/IMG.JPG" in failed["photos/img.jpg"]
        assert "neither was overwritten" in failed["report.pdf"]
        files = tree(d2, folders=False)
        assert files["photos/IMG.JPG"] == b"upper case\n"
        assert files["Report.pdf"] == b"D2's own report\n"
        assert sorted(os.listdir(d2 / "photos")) == ["IMG.JPG", "keep.jpg"]
    visit(d1, carrier)
    assert tree(d1, folders=False)["photos/img.jpg"] == b"lower case\n", "the sender keeps both"
    assert tree(d1, folders=False)["Report.pdf"] == b"D2's own report\n"


FOLDER_TWINS: dict[str, bytes | str] = {"Dir/x.jpg": "X in Dir\n", "dir/x.jpg": "x in dir\n", "dir/y.jpg": "y\n"}
FOLDER_REFUSED = "failed    dir: dir collides with Dir on this case-insensitive drive; neither was overwritten"


def push_into(src: Path, dst: Path, tmp: Path) -> Outcome:
    return sq("push", src, dst)


def apply_into(src: Path, dst: Path, tmp: Path) -> Outcome:
    bundle = tmp / "to-exfat.sqb"
    bundle.unlink(missing_ok=True)
    ok("pack", src, "-o", bundle, "--for", dst)
    return sq("apply", bundle, dst)


@pytest.mark.parametrize("carry", [push_into, apply_into], ids=["push", "apply"])
def test_folder_twins_on_exfat_never_rearrange_the_sender(
    tmp_path: Path, on_exfat: Path, carry: Callable[[Path, Path, Path], Outcome]
) -> None:
    s, e = tmp_path / "S", on_exfat / "E"
    make_tree(s, FOLDER_TWINS)
    ok("init", s, "--name", "S")
    e.mkdir()
    ok("init", e, "--name", "E", "--join", s)
    for _ in range(2):
        out = carry(s, e, tmp_path)
        assert out.code == 18, out.err
        assert [line for line in out.out.splitlines() if line.startswith("failed")] == [FOLDER_REFUSED]
        assert len(out.error_lines) == 1, out.error_lines
        assert tree(e, folders=False) == {"Dir/x.jpg": b"X in Dir\n"}, "dir's files went into Dir"
        assert os.listdir(e / "Dir") == ["x.jpg"]
    scanned = json.loads(ok("scan", e, "--json").stdout)
    assert (scanned["added"], scanned["modified"], scanned["deleted"]) == ([], [], [])
    back = ok("push", e, s)
    assert "failed" not in back.out
    assert tree(s, folders=False) == {k: v.encode() if isinstance(v, str) else v for k, v in FOLDER_TWINS.items()}
    assert sorted(os.listdir(s)) == [".squirrel", "Dir", "dir"]


def test_a_folder_named_like_a_file_on_the_exfat_drive_is_refused_on_a_visit(tmp_path: Path, on_exfat: Path) -> None:
    d1, d2, _, carrier = three_drives(tmp_path, on_exfat, {"a.txt": "a"})
    write(d2 / "Photos", "a file on the exFAT drive\n")
    visit(d2, carrier)
    write(d1 / "photos/p.jpg", "a picture\n")
    visit(d1, carrier)
    for _ in range(2):
        doc = visit(d2, carrier, code=18)
        assert [(f["path"], f["error"]) for f in doc["failed"]] == [
            ("photos", "photos collides with Photos on this case-insensitive drive; neither was overwritten")
        ]
        assert (d2 / "Photos").read_bytes() == b"a file on the exFAT drive\n"
        assert "p.jpg" not in str(tree(d2))
    visit(d1, carrier)
    files = tree(d1, folders=False)
    assert files["photos/p.jpg"] == b"a picture\n" and files["Photos"] == b"a file on the exFAT drive\n"


def test_nfc_and_nfd_names_on_exfat(tmp_path: Path, on_exfat: Path) -> None:
    nfd = unicodedata.normalize("NFD", "café.jpg")
    nfc_twin, nfd_twin = (unicodedata.normalize(f, "naïve.jpg") for f in ("NFC", "NFD"))
    d1, d2, d3, carrier = three_drives(tmp_path, on_exfat, {"a.txt": "a"})
    write(d1 / nfd, "decomposed name\n")
    write(d1 / nfc_twin, "composed twin\n")
    write(d1 / nfd_twin, "decomposed twin\n")
    visit(d1, carrier)
    doc = visit(d2, carrier, code=18)
    (failed,) = doc["failed"]
    assert "collides" in failed["error"] and "neither was overwritten" in failed["error"]
    names = os.listdir(os.fsencode(d2))
    assert nfd.encode() in names, "an NFD name is kept as it came"
    twins = [n for n in names if unicodedata.normalize("NFC", n.decode()) == nfc_twin]
    assert len(twins) == 1
    written = (d2 / os.fsdecode(twins[0])).read_bytes()
    assert written == tree(d1, folders=False)[os.fsdecode(twins[0])], "the twin written holds its own content"
    # The NFD name comes back to a third drive byte for byte.
    visit(d2, carrier, code=18)
    visit(d3, carrier)
    assert (d3 / nfd).read_bytes() == b"decomposed name\n"
    assert nfd.encode() in os.listdir(os.fsencode(d3))
    assert len(tree(d1, folders=False)) == 4, "the sender keeps every name"


INVALID_ON_EXFAT = ["a:b.txt", "why?.txt", 'say "hi".txt', "a<b>.txt", "pipe|.txt", "star*.txt"]
NEVER_CARRIED = ["back\\slash.txt"]  # the sender's scan leaves it out: no drive could be sent it
ACCEPTED_BY_EXFAT_FUSE = ["trailing-dot.", "CON.jpg", "trailing space .txt", "aux"]


def test_names_exfat_cannot_hold_are_reported_every_visit_and_nothing_is_lost(tmp_path: Path, on_exfat: Path) -> None:
    d1, d2, _, carrier = three_drives(tmp_path, on_exfat, {"a.txt": "a"})
    names = INVALID_ON_EXFAT + ACCEPTED_BY_EXFAT_FUSE + NEVER_CARRIED
    for name in names:
        write(d1 / "odd" / name, f"content of {name}\n")
    skipped = visit(d1, carrier)["scan_skipped"]
    assert [s["path"] for s in skipped] == [f"odd/{n}" for n in NEVER_CARRIED]
    for _ in range(2):
        doc = visit(d2, carrier, code=18)
        failed = {f["path"]: f["error"] for f in doc["failed"]}
        assert set(failed) == {f"odd/{n}" for n in INVALID_ON_EXFAT}
        assert all(why for why in failed.values())
        for name in ACCEPTED_BY_EXFAT_FUSE:
            assert (d2 / "odd" / name).read_bytes() == f"content of {name}\n".encode()
        assert not list((d2 / ".squirrel" / "tmp").iterdir())
    assert visit(d1, carrier)["deleted"] == 0
    assert sorted(os.listdir(d1 / "odd")) == sorted(names), "the sender keeps every name"


# Case-only renames ------------------------------------------------------------------------
def test_a_case_only_rename_on_the_exfat_drive_reaches_the_others(tmp_path: Path, on_exfat: Path) -> None:
    d1, d2, d3, carrier = three_drives(tmp_path, on_exfat, {"photos/holiday.jpg": "holiday"})
    rounds([d1, d2, d3], carrier)
    os.rename(d2 / "photos/holiday.jpg", d2 / "photos/Holiday.jpg")
    reports = rounds([d2, d1, d3], carrier)
    for d in (d1, d2, d3):
        assert os.listdir(d / "photos") == ["Holiday.jpg"]
    assert not any(doc["conflicts"] for doc in reports)


def test_a_case_only_rename_arriving_on_exfat_loses_nothing_and_lands_by_the_next_visit(
    tmp_path: Path, on_exfat: Path
) -> None:
    d1, d2, _, carrier = three_drives(tmp_path, on_exfat, {"photos/holiday.jpg": "holiday"})
    rounds([d1, d2], carrier)
    content = oid(b"holiday")
    os.rename(d1 / "photos/holiday.jpg", d1 / "photos/Holiday.jpg")
    visit(d1, carrier)
    first = sq("sync", d2, "--carrier", carrier)
    assert first.code in (0, 18)
    assert content in {oid(data) for data in tree(d2, folders=False).values()} | trash_ids(d2)
    visit(d2, carrier)
    assert os.listdir(d2 / "photos") == ["Holiday.jpg"]
    assert (d2 / "photos/Holiday.jpg").read_bytes() == b"holiday"


def test_a_case_only_rename_arriving_on_exfat_is_applied_in_one_visit(tmp_path: Path, on_exfat: Path) -> None:
    d1, d2, _, carrier = three_drives(tmp_path, on_exfat, {"photos/holiday.jpg": "holiday"})
    rounds([d1, d2], carrier)
    os.rename(d1 / "photos/holiday.jpg", d1 / "photos/Holiday.jpg")
    visit(d1, carrier)
    doc = visit(d2, carrier)
    assert doc["failed"] == []
    assert os.listdir(d2 / "photos") == ["Holiday.jpg"]


# Killed halfway on exFAT: no hard links, so an update is two renames ------------------------
def test_an_update_on_exfat_killed_anywhere_is_undone_then_finished(tmp_path: Path, on_exfat: Path) -> None:
    """Without hard links the old version goes to the trash before the new one
    is renamed into place: a kill between leaves the path empty, and the
    intent log puts the old version back before anything scans."""
    a, b = two_replicas(tmp_path / "A", on_exfat / "B", {"x.jpg": os.urandom(30_000), "keep.txt": "k"})
    write(a / "x.jpg", os.urandom(31_000))
    expected, conflicts = kill_everywhere_then_scan_and_rerun(b, pack_for(a, b, tmp_path), on_exfat)
    assert expected["x.jpg"] == (a / "x.jpg").read_bytes() and conflicts == set()


def test_a_case_only_rename_on_exfat_killed_anywhere_is_undone_then_finished(tmp_path: Path, on_exfat: Path) -> None:
    a, b = two_replicas(tmp_path / "A", on_exfat / "B", {"photos/holiday.jpg": "holiday", "keep.txt": "k"})
    os.rename(a / "photos/holiday.jpg", a / "photos/Holiday.jpg")
    expected, conflicts = kill_everywhere_then_scan_and_rerun(b, pack_for(a, b, tmp_path), on_exfat)
    assert expected == {"photos/Holiday.jpg": b"holiday", "keep.txt": b"k"} and conflicts == set()
    assert os.listdir(on_exfat / "clean" / "photos") == ["Holiday.jpg"]


# The marker folder under another case ------------------------------------------------------
def marker_in_other_case(tmp: Path, d2: Path) -> Path:
    """A bundle whose manifest (every check sum right) adds `.SQUIRREL/ignore`
    holding `*`: a name check that compares case would let it into `.squirrel/`
    on a drive that folds case."""
    a = tmp / "sender"
    make_tree(a, {"rules.txt": "*\n"})
    ok("init", a, "--name", "sender")
    d2.mkdir()
    ok("init", d2, "--name", "D2", "--join", a)
    bundle = tmp / "a.sqb"
    ok("pack", a, "-o", bundle, "--for", d2)
    parts = split_bundle(bundle.read_bytes())
    rules = next(r for r in parts.records if r.path == b"rules.txt")
    e = decode_entry(rules.value)
    parts.records.append(entry_record(b".SQUIRREL", Entry(KIND_DIR, bytes(32), 0, 0o755, 0, e.m, e.c)))
    parts.records.append(Record(REC_ENTRY, b".SQUIRREL/ignore", rules.value))
    hostile = tmp / "hostile.sqb"
    hostile.write_bytes(join_bundle(parts))
    return hostile


def test_a_bundle_never_writes_into_the_marker_folder_under_another_case(tmp_path: Path, on_exfat: Path) -> None:
    d2 = on_exfat / "D2"
    hostile = marker_in_other_case(tmp_path, d2)
    out = sq("apply", hostile, d2)
    assert not (d2 / ".squirrel" / "ignore").exists(), "the bundle wrote .squirrel/ignore"
    assert out.code == 10


def test_a_folder_named_like_the_marker_never_lands_inside_it_on_exfat(tmp_path: Path, on_exfat: Path) -> None:
    d1, d2, _, carrier = three_drives(tmp_path, on_exfat, {"photos/a.jpg": "a"})
    write(d1 / ".Squirrel/ignore", "*\n")
    visit(d1, carrier)
    sq("sync", d2, "--carrier", carrier)
    assert not (d2 / ".squirrel" / "ignore").exists(), "the sender's folder landed in .squirrel/"


# Free space ----------------------------------------------------------------------------------
def test_a_visit_that_cannot_fit_on_the_exfat_drive_is_refused_before_writing(tmp_path: Path, on_exfat: Path) -> None:
    d1, d2, _, carrier = three_drives(tmp_path, on_exfat, {"a.txt": "a"})
    free = shutil.disk_usage(on_exfat).free
    write(d1 / "video.mov", os.urandom(free - 8 * MIB))
    write(d1 / "small.txt", "small\n")
    visit(d1, carrier)
    before = (tree(d2, folders=False), sorted(os.listdir(d2 / ".squirrel" / "trash")))
    out = sq("sync", d2, "--carrier", carrier)
    assert out.code == 11, out.stderr.decode()
    lines = out.error_lines
    assert len(lines) == 1 and "not enough space" in lines[0], lines
    assert (tree(d2, folders=False), sorted(os.listdir(d2 / ".squirrel" / "trash"))) == before
    assert os.listdir(d2 / ".squirrel" / "tmp") == []
    assert shutil.disk_usage(on_exfat).free >= free - MIB, "space was used by a refused visit"
    (d1 / "video.mov").unlink()
    visit(d1, carrier)
    visit(d2, carrier)
    assert tree(d2, folders=False)["small.txt"] == b"small\n"


def test_many_small_files_that_fit_by_their_bytes_but_not_by_their_clusters_are_refused_before_writing(
    tmp_path: Path, on_exfat: Path
) -> None:
    """exFAT gives each file whole clusters: ten thousand small files take
    far more of the drive than their bytes. A push that would fill the
    drive midway is refused before it writes anything."""
    unit = os.statvfs(on_exfat).f_frsize
    free = shutil.disk_usage(on_exfat).free
    n = free // unit + 200  # more than the whole drive holds, cluster by cluster
    assert n * 100 < (free - SPACE_RESERVE) // 4  # and far less than fits, byte by byte
    a, b = tmp_path / "A", on_exfat / "B"
    make_tree(a, {f"thumbs/{i // 500:03d}/t{i:05d}.jpg": f"{i:0100d}" for i in range(n)})
    ok("init", a, "--name", "A")
    b.mkdir()
    ok("init", b, "--name", "B", "--join", a)
    free = shutil.disk_usage(on_exfat).free
    out = sq("push", a, b)
    assert out.code == 11, out.stderr.decode()
    lines = out.error_lines
    assert len(lines) == 1 and "not enough space" in lines[0], lines
    assert tree(b, folders=False) == {}
    assert shutil.disk_usage(on_exfat).free >= free - MIB, "space was used by a refused push"


def test_a_visit_short_of_space_applies_the_trash_policy_then_says_what_the_trash_holds(
    tmp_path: Path, on_exfat: Path
) -> None:
    """The trash holds a replaced 12 MiB video: the next visit fits only
    without it. While it is younger than a day, the policy keeps it and the
    visit is refused before writing, saying how much the trash holds; once
    it is older, the visit applies the policy first and fits."""
    d1, d2, _, carrier = three_drives(tmp_path, on_exfat, {"a.txt": "a"})
    for _ in range(2):
        write(d1 / "video.mov", os.urandom(12 * MIB))
        visit(d1, carrier)
        visit(d2, carrier)
    held = 12 * MIB
    assert len(trash_ids(d2)) == 1
    ok("trash", "policy", d2, "--max-size", "0")
    assert len(trash_ids(d2)) == 1, "a version trashed today is kept"
    free = shutil.disk_usage(on_exfat).free
    write(d1 / "big.mov", os.urandom(free - SPACE_RESERVE + 4 * MIB))  # fits once the trash is emptied
    visit(d1, carrier)
    before = tree(d2, folders=False)
    out = sq("sync", d2, "--carrier", carrier)
    assert out.code == 11, out.stderr.decode()
    (line,) = out.error_lines
    assert "not enough space" in line and f"the trash holds {held} bytes in 1 version (" in line, line
    assert tree(d2, folders=False) == before and len(trash_ids(d2)) == 1
    assert os.listdir(d2 / ".squirrel" / "tmp") == []
    age_trash(d2, 2)
    visit(d2, carrier)
    assert (d2 / "big.mov").read_bytes() == (d1 / "big.mov").read_bytes()
    assert trash_ids(d2) == set() and ok("trash", "list", d2, "--json").json["items"] == []
    ok("verify", d2)
    shutil.rmtree(d2)  # the drive is shared with the other tests


@pytest.mark.parametrize("how", ["in C", "in Python"])
def test_a_new_exfat_file_never_replaces_one_made_there(
    on_exfat: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """exFAT through FUSE cannot refuse an existing name in the rename
    itself (RENAME_NOREPLACE): the path is checked right before a plain
    rename, by the C part as in Python."""
    if how == "in Python":
        monkeypatch.setattr(place, "_place", None)
        monkeypatch.setattr(place, "_place_new", None)
    elif place._place is None:
        pytest.skip("the C part was not built here")
    (on_exfat / "photos").mkdir()
    (on_exfat / "photos" / "a.jpg").write_bytes(b"made by the user")
    tmp = on_exfat / "new.tmp"
    tmp.write_bytes(b"the sender's version")
    with pytest.raises(ChangedDuringOperation, match="photos/a.jpg changed since it was scanned"):
        place.install(bytes(tmp), bytes(on_exfat), b"photos/a.jpg", new=True)
    assert (on_exfat / "photos" / "a.jpg").read_bytes() == b"made by the user"
    place.install(bytes(tmp), bytes(on_exfat), b"photos/b.jpg", new=True)
    assert (on_exfat / "photos" / "b.jpg").read_bytes() == b"the sender's version" and not tmp.exists()
    # The same in a run of new files renamed together (`install_new`).
    temps = [on_exfat / "1.tmp", on_exfat / "2.tmp"]
    for t in temps:
        t.write_bytes(b"another version")
    first, second = place.install_new(
        bytes(on_exfat), [(bytes(temps[0]), b"photos/a.jpg"), (bytes(temps[1]), b"photos/c.jpg")]
    )
    assert isinstance(first, ChangedDuringOperation) and str(first) == "photos/a.jpg changed since it was scanned"
    assert not isinstance(second, Exception) and second.st_size == 15
    assert (on_exfat / "photos" / "a.jpg").read_bytes() == b"made by the user" and temps[0].exists()
    assert (on_exfat / "photos" / "c.jpg").read_bytes() == b"another version"
