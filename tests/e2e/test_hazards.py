"""What real drives and real users do to a sync (docs/safety.md): files
that change while they are read, two `sq` at once, a drive that is not
mounted or not the one expected, a drive unplugged mid-scan, special files
and unreadable ones, and deletions of most of a drive.

Commands run through the real entry point (`run_sq`, or `run_forked` where a
test needs to act at an exact moment inside the command: the hook runs at
the command's fault points). Every command has a time limit: nothing may
hang on a FIFO or a device.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from squirrel.errors import NotAReplica
from squirrel.plumbing import faults, ids
from squirrel.plumbing.paths import IgnoreRules
from squirrel.porcelain.apply import apply
from squirrel.porcelain.push import push
from squirrel.porcelain.scan import scan
from tests.bundle_tools import snapshot
from tests.carrier_tools import carrier_snapshot
from tests.crash_scenarios import open_conflicts
from tests.fault_tools import Outcome, leftovers, oid, run_forked, spawn, trash_ids
from tests.helpers import Ran, age, indexed, make_tree, run_sq, start_sq, tree, write

KIB = 1024
MIB = 1024 * KIB


def ok(*args: str | Path) -> Outcome:
    out = run_forked(list(args), timeout=60)
    assert out.code == 0, (args, out.code, out.stderr.decode())
    return out


def one_error(out: Ran) -> str:
    """The command's single `sq: error: ...` line (and no other `sq:` line)."""
    lines = out.error_lines
    assert len(lines) == 1 and lines[0].startswith("sq: error: "), out.err
    return lines[0]


def pair(tmp: Path, files: dict[str, bytes | str]) -> tuple[Path, Path]:
    """Replicas A (holding `files`) and B of one vault, B synced from A."""
    a, b = tmp / "A", tmp / "B"
    make_tree(a, files)
    ok("init", a, "--name", "A")
    b.mkdir()
    ok("init", b, "--name", "B", "--join", a)
    ok("push", a, b)
    age(b)
    ok("scan", b)
    return a, b


def ls_index(root: Path) -> bytes:
    out = run_forked(["ls-index", root])
    assert out.code == 0
    return out.stdout


# Files that change while sq works ---------------------------------------------------
class GrowWhileHashed:
    """Wraps os.fstat: after the first fstat of a hashing pass over `path`
    (the `before` of ids.hash_file), append to the file, so that the pass
    reads a file that is growing under it."""

    def __init__(self, path: Path, times: int) -> None:
        self.ino = path.stat().st_ino
        self.path = path
        self.times = times
        self.calls = 0
        self.real = os.fstat

    def __call__(self, fd: int) -> os.stat_result:
        st = self.real(fd)
        if st.st_ino == self.ino:
            self.calls += 1
            if self.calls % 2 == 1 and self.times > 0:
                self.times -= 1
                with open(self.path, "ab") as f:
                    f.write(b"appended while hashed " * 1000)
        return st


@pytest.mark.parametrize("appends", [1, 100])
def test_a_file_growing_while_hashed_is_never_recorded_with_a_mixed_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, appends: int
) -> None:
    drive = make_tree(tmp_path / "drive", {"keep.txt": "k"})
    ok("init", drive)
    growing = drive / "video.mov"
    growing.write_bytes(os.urandom(3 * MIB))
    grow = GrowWhileHashed(growing, appends)
    monkeypatch.setattr(os, "fstat", grow)
    report = scan(str(drive))
    monkeypatch.undo()
    assert grow.calls >= 2
    record = indexed(drive).get(b"video.mov")
    data = growing.read_bytes()
    if appends == 1:
        # The second pass read a file that stayed still: its hash is the file's.
        assert record is not None
        assert record.oid == blake3.blake3(data).digest() and record.size == len(data)
    else:
        assert record is None, "a file that never stopped growing was recorded"
        assert [(p, why) for p, why in report.stats.skipped if p == b"video.mov"]
        assert "keeps changing" in dict(report.stats.skipped)[b"video.mov"]
        assert run_sq("scan", drive).code == 0
        assert indexed(drive)[b"video.mov"].oid == blake3.blake3(data).digest()


def test_a_file_appended_to_by_another_process_during_scan_and_push(tmp_path: Path) -> None:
    """A real `sq` while a thread keeps appending: whatever is recorded or
    copied is a consistent version (a prefix of the growing file with its own
    hash), never a mix."""
    a, b = pair(tmp_path, {"keep.txt": "k"})
    growing = a / "capture.mov"
    growing.write_bytes(os.urandom(8 * MIB))
    stop = threading.Event()

    def append() -> None:
        with open(growing, "ab") as f:
            while not stop.is_set():
                f.write(os.urandom(64 * KIB))
                f.flush()
                time.sleep(0.002)

    appender = threading.Thread(target=append)
    appender.start()
    try:
        scanned = run_sq("scan", a, timeout=120)
        pushed = run_sq("push", a, b, timeout=120)
    finally:
        stop.set()
        appender.join()
    assert scanned.code == 0, scanned.stderr
    assert pushed.code in (0, 18), pushed.stderr
    final = growing.read_bytes()
    for root in (a, b):
        record = indexed(root).get(b"capture.mov")
        if record is not None:
            assert record.oid == blake3.blake3(final[: record.size]).digest(), f"a mixed hash recorded in {root}"
    if (b / "capture.mov").exists():
        copy = (b / "capture.mov").read_bytes()
        assert final.startswith(copy)
        assert indexed(b)[b"capture.mov"].oid == blake3.blake3(copy).digest()
    assert leftovers(b) == []
    # Once it stops growing, the next push brings the whole file.
    assert run_sq("push", a, b).code == 0
    assert (b / "capture.mov").read_bytes() == final


@pytest.mark.parametrize("how", ["apply", "push"])
def test_a_target_edited_between_planning_and_renaming_is_never_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    a, b = pair(tmp_path, {"doc.txt": "the common version\n", "other.txt": "other\n"})
    write(a / "doc.txt", "the sender's edit\n")
    ok("scan", a)
    bundle = tmp_path / "a.sqb"
    ok("pack", a, "-o", bundle, "--for", b)
    edited: list[str] = []
    real_point = faults.point

    def edit_on_the_way(op: str) -> None:
        # The new version is written and fsynced in .squirrel/tmp: the user saves the file now.
        if op == "utime" and not edited:
            edited.append(op)
            write(b / "doc.txt", "the user's edit, saved during the sync\n", seconds_ago=10)
        real_point(op)

    monkeypatch.setattr(faults, "point", edit_on_the_way)
    report = apply(str(bundle), str(b)) if how == "apply" else push(str(a), str(b))
    monkeypatch.undo()
    assert edited
    assert [p for p, _ in report.failed] == [b"doc.txt"]
    assert "changed since" in report.failed[0][1]
    assert (b / "doc.txt").read_bytes() == b"the user's edit, saved during the sync\n"
    assert leftovers(b) == []
    again = run_forked(["apply", bundle, b] if how == "apply" else ["push", a, b])
    assert again.code == 0, again.stderr.decode()
    contents = sorted(tree(b, folders=False).values())
    assert b"the user's edit, saved during the sync\n" in contents
    assert b"the sender's edit\n" in contents
    assert {kind for _, kind, _ in open_conflicts(b)} == {"update/update"}


def test_a_second_sq_on_a_drive_in_use_is_refused_with_exit_7(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {f"f{i}.txt": f"file {i}\n" for i in range(5)})
    for i in range(5):
        write(a / f"f{i}.txt", f"edited {i}\n")
    ok("scan", a)
    carrier = tmp_path / "carrier"
    ok("sync", a, "--carrier", carrier)
    ok("sync", b, "--carrier", carrier)
    for i in range(5):
        write(a / f"new{i}.txt", f"new {i}\n")
    ok("sync", a, "--carrier", carrier)
    bundle = tmp_path / "a.sqb"
    ok("pack", a, "-o", bundle, "--for", b)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()

    def pause(op: str) -> None:
        if op == "write":
            os.write(ready_w, b"!")
            os.read(go_r, 1)

    first = spawn(["sync", b, "--carrier", carrier], hook=pause)
    try:
        assert os.read(ready_r, 1) == b"!"  # the first visit holds the drive and the carrier
        b_before, carrier_before = snapshot_files(b), carrier_snapshot(carrier)
        for args in (
            ["scan", b],
            ["push", a, b],
            ["apply", bundle, b],
            ["sync", b, "--carrier", tmp_path / "other-carrier"],
            ["sync", a, "--carrier", carrier],
            ["resolve", b, "f0.txt", "--keep", "path"],
        ):
            second = run_sq(*args, timeout=120)
            assert second.code == 7, (args, second.stderr)
            assert f"locked by pid {first.pid}" in one_error(second)
        assert snapshot_files(b) == b_before and carrier_snapshot(carrier) == carrier_before
        status = run_sq("status", b, timeout=120)
        assert status.code == 0, "status only reads: it works while the drive is in use"
    finally:
        os.write(go_w, b"go" * 100)
    done = first.wait(60)
    assert done.code == 0, done.stderr.decode()
    assert (b / "new0.txt").read_bytes() == b"new 0\n"
    assert run_sq("scan", b, timeout=120).code == 0, "the lock went with the first sq"


def snapshot_files(root: Path) -> dict[str, bytes]:
    return {**tree(root, folders=False), **{f"trash/{t}": b"" for t in trash_ids(root)}}


# The wrong drive, or none ------------------------------------------------------------
def test_an_empty_mount_point_is_refused_by_every_command_and_nothing_is_written(tmp_path: Path) -> None:
    a, _ = pair(tmp_path, {"x.txt": "x"})
    bundle = tmp_path / "a.sqb"
    ok("pack", a, "-o", bundle)
    carrier = tmp_path / "carrier"
    ok("sync", a, "--carrier", carrier)
    carrier_before = carrier_snapshot(carrier)
    a_before = ls_index(a)
    mnt = tmp_path / "media" / "drive2"
    mnt.mkdir(parents=True)
    commands = [
        ["scan", mnt],
        ["status", mnt],
        ["push", a, mnt],
        ["push", mnt, a],
        ["reconcile", a, mnt],
        ["apply", bundle, mnt],
        ["pack", mnt, "-o", tmp_path / "out.sqb"],
        ["sync", mnt, "--carrier", carrier],
        ["sync", mnt, "--carrier", carrier, "--dry-run"],
        ["verify", mnt],
        ["conflicts", mnt],
        ["resolve", mnt, "x.txt", "--keep", "path"],
        ["ls-index", mnt],
        ["knowledge", mnt, "-o", tmp_path / "k.json"],
    ]
    for args in commands:
        out = run_forked(args, timeout=60)
        assert out.code == 3, (args, out.code, out.stderr)
        line = one_error(out)
        assert "not a replica" in line and "mounted" in line, line
        assert list(mnt.iterdir()) == [], f"{args[0]} wrote into an empty mount point"
    assert not (tmp_path / "out.sqb").exists() and not (tmp_path / "k.json").exists()
    assert carrier_snapshot(carrier) == carrier_before
    assert ls_index(a) == a_before


def test_a_drive_of_another_vault_or_a_clone_is_refused_with_exit_6(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"x.txt": "x", "y.txt": "y"})
    write(a / "x.txt", "A's edit")
    ok("scan", a)
    bundle = tmp_path / "a.sqb"
    ok("pack", a, "-o", bundle, "--for", b)
    stranger = make_tree(tmp_path / "Z", {"x.txt": "another vault's x"})
    ok("init", stranger, "--name", "A")  # even with the same name
    clone = tmp_path / "A-clone"
    shutil.copytree(a, clone, symlinks=True, ignore=shutil.ignore_patterns("lock"))
    before = {r: snapshot(r) for r in (a, b, stranger, clone)}
    for args in (
        ["push", a, stranger],
        ["push", stranger, a],
        ["reconcile", stranger, b],
        ["apply", bundle, stranger],
        ["push", a, clone],
        ["reconcile", clone, a],
        ["apply", bundle, a],
        ["pack", a, "-o", tmp_path / "z.sqb", "--for", stranger],
    ):
        out = run_forked(args, timeout=60)
        assert out.code == 6, (args, out.code, out.stderr)
        one_error(out)
    assert {r: snapshot(r) for r in before} == before


class UnplugAfter:
    """Wraps ids.hash_file: after `n` files, the drive goes away (its whole
    tree, `.squirrel/` included) and leaves an empty mount point."""

    def __init__(self, root: Path, n: int) -> None:
        self.root = root
        self.away = root.with_name(root.name + "-unplugged")
        self.n = n
        self.real = ids.hash_file

    def __call__(self, path: str | bytes, *args: object, **kw: object) -> tuple[bytes, os.stat_result]:
        self.n -= 1
        if self.n == 0:
            os.rename(self.root, self.away)
            self.root.mkdir()
        return self.real(path, *args, **kw)  # type: ignore[arg-type]

    def plug_back(self) -> None:
        self.root.rmdir()
        os.rename(self.away, self.root)


def test_a_drive_unplugged_mid_scan_is_never_read_as_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drive = make_tree(tmp_path / "drive", {f"album{i % 10}/img{i:03d}.jpg": f"photo {i}" for i in range(200)})
    ok("init", drive)
    for i in range(0, 200, 4):
        write(drive / f"album{i % 10}/img{i:03d}.jpg", f"edited photo {i}")
    listing = ls_index(drive)
    unplug = UnplugAfter(drive, 10)
    monkeypatch.setattr(ids, "hash_file", unplug)
    with pytest.raises(NotAReplica):
        scan(str(drive), allow_mass_delete=True)
    monkeypatch.undo()
    unplug.plug_back()
    assert ls_index(drive) == listing, "the scan of a vanished drive recorded something"
    status = json.loads(run_forked(["status", drive, "--json"]).stdout)
    assert {c["change"] for c in status["changes"]} == {"modified"}
    assert len(status["changes"]) == 50


def test_a_marker_removed_between_scan_and_record_records_nothing(tmp_path: Path) -> None:
    drive = make_tree(tmp_path / "drive", {f"d/f{i}.txt": f"{i}" for i in range(100)})
    ok("init", drive)
    shutil.rmtree(drive / "d")
    listing = ls_index(drive)
    away = tmp_path / "marker-away"

    def unplug_marker(stats: object) -> None:
        if not away.exists():
            os.rename(drive / ".squirrel", away)

    with pytest.raises(NotAReplica):
        scan(str(drive), progress=unplug_marker, allow_mass_delete=True)
    os.rename(away, drive / ".squirrel")
    assert ls_index(drive) == listing


def test_a_real_sq_scan_of_a_drive_pulled_out_mid_scan_records_no_deletion(tmp_path: Path) -> None:
    drive = make_tree(tmp_path / "drive", {f"d{i % 50}/f{i:04d}.bin": os.urandom(256) for i in range(3000)})
    ok("init", drive)
    for p in drive.glob("d*/f*.bin"):
        os.utime(p)  # every file must be hashed again: a long scan
    listing = ls_index(drive)
    lock = drive / ".squirrel" / "lock"
    away = tmp_path / "pulled-out"
    proc = start_sq("scan", drive)
    try:
        wait_until_reading(proc.pid, lock, 200 * KIB)
        os.rename(drive, away)
        drive.mkdir()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 3), err
    if proc.returncode == 3:
        assert b"not a replica" in err
    drive.rmdir()
    os.rename(away, drive)
    assert ls_index(drive) == listing, "a pulled-out drive was read as changed"


def wait_until_reading(pid: int, lock: Path, nbytes: int) -> None:
    """Until the process holds the lock and has read `nbytes` (from
    /proc/PID/io where there is one): the scan is then well under way."""
    deadline = time.monotonic() + 30
    while not lock.read_bytes().strip() and time.monotonic() < deadline:
        time.sleep(0.002)
    io = Path(f"/proc/{pid}/io")
    if not io.exists():
        time.sleep(0.2)
        return
    start = None
    while time.monotonic() < deadline:
        fields = dict(line.split(": ") for line in io.read_text().splitlines())
        rchar = int(fields["rchar"])
        start = rchar if start is None else start
        if rchar - start >= nbytes:
            return
        time.sleep(0.002)


def test_a_drive_unplugged_before_the_walk_is_reported_as_not_mounted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drive = hundred(tmp_path)
    listing = ls_index(drive)
    real = IgnoreRules.for_replica

    def rules_then_unplug(root: str) -> IgnoreRules:
        rules = real(root)
        os.rename(drive, tmp_path / "unplugged")
        drive.mkdir()
        return rules

    monkeypatch.setattr(IgnoreRules, "for_replica", rules_then_unplug)
    try:
        with pytest.raises(NotAReplica):
            scan(str(drive))
    finally:
        monkeypatch.undo()
        drive.rmdir()
        os.rename(tmp_path / "unplugged", drive)
        assert ls_index(drive) == listing


# Special files -----------------------------------------------------------------------
def make_socket(path: Path) -> socket.socket:
    here = os.getcwd()
    os.chdir(path.parent)  # a socket's address is short: bind by a relative name
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path.name)
    finally:
        os.chdir(here)
    return s


def add_specials(root: Path, outside: Path) -> list[str]:
    """A FIFO, a socket, symlinks out of the replica and a loop, and (as root)
    a /dev/zero device; returns their paths."""
    os.mkfifo(root / "pipe")
    sock = make_socket(root / "sock")
    sock.close()
    (root / "to-secret").symlink_to(outside / "secret.txt")
    (root / "to-outside").symlink_to(outside, target_is_directory=True)
    (root / "loop").symlink_to(root / "loop")
    made = ["pipe", "sock", "to-secret", "to-outside", "loop"]
    try:
        os.mknod(root / "zero", stat.S_IFCHR | 0o644, os.makedev(1, 5))
        made.append("zero")
    except (PermissionError, OSError):
        pass
    return made


def test_special_files_on_the_sender_are_never_opened_followed_or_carried(tmp_path: Path) -> None:
    outside = make_tree(tmp_path / "outside", {"secret.txt": "SECRET-OUTSIDE-THE-REPLICA"})
    a, b = pair(tmp_path, {"photo.jpg": "photo"})
    specials = add_specials(a, outside)
    write(a / "new.jpg", "new photo")
    scanned = run_forked(["scan", a, "--json"], timeout=30)
    assert scanned.code == 0, scanned.stderr
    doc = json.loads(scanned.stdout)
    assert sorted(s["path"] for s in doc["skipped"]) == sorted(specials)
    assert [x["path"] for x in doc["added"]] == ["new.jpg"]
    assert run_forked(["push", a, b], timeout=30).code == 0
    bundle = tmp_path / "all.sqb"
    assert run_forked(["pack", a, "-o", bundle], timeout=30).code == 0
    carrier = tmp_path / "carrier"
    assert run_forked(["sync", a, "--carrier", carrier], timeout=30).code == 0
    assert run_forked(["sync", b, "--carrier", carrier], timeout=30).code == 0
    assert tree(b, folders=False) == {"photo.jpg": b"photo", "new.jpg": b"new photo"}
    assert sorted(os.listdir(b)) == [".squirrel", "new.jpg", "photo.jpg"]
    assert b"SECRET" not in bundle.read_bytes()
    assert not any(b"SECRET" in p.read_bytes() for p in carrier.rglob("*") if p.is_file())
    assert (outside / "secret.txt").read_bytes() == b"SECRET-OUTSIDE-THE-REPLICA"
    verified = run_forked(["verify", a], timeout=30)
    assert verified.code == 0, verified.stdout


def test_a_special_file_in_the_way_on_the_receiver_is_left_alone(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"photo.jpg": "photo"})
    write(a / "incoming.jpg", "incoming")
    write(a / "photo.jpg", "edited photo")
    ok("scan", a)
    os.mkfifo(b / "incoming.jpg")
    (b / "photo.jpg").unlink()
    (b / "photo.jpg").symlink_to(tmp_path / "target-outside.jpg")
    out = run_forked(["push", a, b, "--json"], timeout=30)
    assert out.code == 18, out.stderr
    assert {f["path"] for f in json.loads(out.stdout)["failed"]} == {"incoming.jpg", "photo.jpg"}
    one_error(out)
    assert stat.S_ISFIFO(os.lstat(b / "incoming.jpg").st_mode)
    assert os.path.islink(b / "photo.jpg") and not (tmp_path / "target-outside.jpg").exists()
    assert leftovers(b) == []


@pytest.mark.parametrize("how", ["push", "apply", "sync"])
def test_a_symlinked_folder_on_the_receiver_is_never_written_through(tmp_path: Path, how: str) -> None:
    a, b = pair(tmp_path, {"photos/old.jpg": "old"})
    carrier = tmp_path / "carrier"
    if how == "sync":
        ok("sync", a, "--carrier", carrier)
        ok("sync", b, "--carrier", carrier)
    make_tree(a, {"photos/2024/new.jpg": "incoming", "photos/new.jpg": "incoming too"})
    ok("scan", a)
    bundle = tmp_path / "a.sqb"
    ok("pack", a, "-o", bundle, "--for", b)
    if how == "sync":
        ok("sync", a, "--carrier", carrier)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.move(b / "photos", tmp_path / "photos-elsewhere")
    (b / "photos").symlink_to(outside, target_is_directory=True)
    args = {
        "push": ["push", a, b],
        "apply": ["apply", bundle, b],
        "sync": ["sync", b, "--carrier", carrier],
    }[how]
    out = run_forked(args, timeout=30)
    assert out.code == 18, out.stderr
    one_error(out)
    for path in (b"photos/new.jpg", b"photos/2024/new.jpg"):
        assert b"failed    " + path + b": refusing to write through" in out.stdout, out.stdout
    assert list(outside.iterdir()) == [], f"{how} wrote through a symlink out of the replica"
    assert os.path.islink(b / "photos")


class SwapParentForSymlink:
    """At the end of writing the new file in .squirrel/tmp (the utime point),
    replace its folder by a symlink out of the replica."""

    def __init__(self, folder: Path, outside: Path) -> None:
        self.folder, self.outside = folder, outside
        self.done = False

    def __call__(self, op: str) -> None:
        if op == "utime" and not self.done:
            self.done = True
            os.rename(self.folder, self.folder.with_name("moved-away"))
            os.symlink(self.outside, self.folder)


def test_a_folder_swapped_for_a_symlink_during_the_write_is_not_written_through(tmp_path: Path) -> None:
    a, b = pair(tmp_path, {"photos/old.jpg": "old"})
    write(a / "photos/new.jpg", "incoming")
    ok("scan", a)
    outside = tmp_path / "outside"
    outside.mkdir()
    out = run_forked(["push", a, b], hook=SwapParentForSymlink(b / "photos", outside), timeout=30)
    assert out.code in (0, 18)
    assert list(outside.iterdir()) == []


# Unreadable files ------------------------------------------------------------------------
@pytest.fixture
def unprivileged_tmp() -> Iterator[tuple[Path, int | None]]:
    """A folder another user can reach, and that user's uid (None when the
    tests do not run as root: permissions apply to them already)."""
    if os.geteuid() != 0:
        with tempfile.TemporaryDirectory() as d:
            yield Path(d), None
        return
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' to drop to: root reads every file")
    d = Path(tempfile.mkdtemp(prefix="sq-unreadable-"))
    d.chmod(0o755)
    try:
        yield d, nobody.pw_uid
    finally:
        for p in d.rglob("*"):
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
        shutil.rmtree(d)


def give(root: Path, uid: int | None) -> None:
    if uid is None:
        return
    for p in [root, *root.rglob("*")]:
        os.lchown(p, uid, uid)


def test_unreadable_files_and_folders_are_skipped_never_read_as_deleted(
    unprivileged_tmp: tuple[Path, int | None],
) -> None:
    tmp, uid = unprivileged_tmp
    a, b = pair(tmp, {**{f"locked/f{i}.txt": f"file {i}" for i in range(60)}, "open.txt": "open"})
    write(a / "secret.txt", "unreadable new file")
    write(b / "b-locked/x.txt", "B's file")
    give(tmp, uid)
    (a / "secret.txt").chmod(0)
    (a / "locked").chmod(0)
    (b / "locked").chmod(0)  # the receiver cannot read where the sender's files are
    listing = ls_index(a)
    scanned = run_forked(["scan", a, "--json"], uid=uid, timeout=30)
    assert scanned.code == 0, scanned.stderr
    skipped = {s["path"]: s["reason"] for s in json.loads(scanned.stdout)["skipped"]}
    assert "Permission denied" in skipped["secret.txt"] and "Permission denied" in skipped["locked"]
    assert ls_index(a) == listing, "an unreadable folder or file was recorded as changed"
    pushed = run_forked(["push", a, b, "--json"], uid=uid, timeout=30)
    assert pushed.code == 0, pushed.stderr
    (a / "locked").chmod(0o755)
    (b / "locked").chmod(0o755)
    assert len(list((b / "locked").iterdir())) == 60, "the receiver lost files it could not read"
    assert not (b / "secret.txt").exists()
    assert run_forked(["verify", b], uid=uid, timeout=30).code == 0


# Mass deletions ---------------------------------------------------------------------------
def hundred(tmp: Path) -> Path:
    drive = make_tree(tmp / "drive", {f"photos/img{i:03d}.jpg": f"photo {i}" for i in range(100)})
    ok("init", drive)
    return drive


@pytest.mark.parametrize(("deleted", "refused"), [(51, True), (50, False)])
def test_a_scan_that_would_delete_more_than_half_of_the_files_records_nothing(
    tmp_path: Path, deleted: int, refused: bool
) -> None:
    drive = hundred(tmp_path)
    for i in range(deleted):
        (drive / f"photos/img{i:03d}.jpg").unlink()
    listing = ls_index(drive)
    out = run_forked(["scan", drive], timeout=30)
    if not refused:
        assert out.code == 0
        return
    assert out.code == 19, out.stderr
    line = one_error(out)
    assert f"would delete {deleted} of 100 files" in line and "--allow-mass-delete" in line
    assert ls_index(drive) == listing
    for args in (["sync", drive, "--carrier", tmp_path / "carrier"], ["pack", drive, "-o", tmp_path / "x.sqb"]):
        assert run_forked(args, timeout=30).code == 19, args
    assert ls_index(drive) == listing
    allowed = run_forked(["scan", drive, "--allow-mass-delete", "--json"], timeout=30)
    assert allowed.code == 0
    assert len(indexed(drive)) == 1 + 100 - deleted


def test_a_few_deletions_in_a_small_drive_are_not_a_mass_delete(tmp_path: Path) -> None:
    drive = make_tree(tmp_path / "drive", {f"f{i}.txt": f"{i}" for i in range(60)})
    ok("init", drive)
    for i in range(49):
        (drive / f"f{i}.txt").unlink()
    assert run_forked(["scan", drive], timeout=30).code == 0


def test_moving_most_files_is_not_a_mass_delete(tmp_path: Path) -> None:
    drive = hundred(tmp_path)
    os.rename(drive / "photos", drive / "archive-2024")
    out = run_forked(["scan", drive, "--json"], timeout=30)
    assert out.code == 0, out.stderr
    assert len(json.loads(out.stdout)["moved"]) == 100


def test_a_visit_that_would_deliver_mass_deletions_stops_and_changes_nothing(tmp_path: Path) -> None:
    d1, d2 = pair(tmp_path, {f"photos/img{i:03d}.jpg": f"photo {i}" for i in range(100)})
    carrier = tmp_path / "carrier"
    ok("sync", d1, "--carrier", carrier)
    ok("sync", d2, "--carrier", carrier)
    for i in range(80):
        (d1 / f"photos/img{i:03d}.jpg").unlink()
    assert run_forked(["sync", d1, "--carrier", carrier], timeout=30).code == 19
    ok("sync", d1, "--carrier", carrier, "--allow-mass-delete")
    files, listing = tree(d2, folders=False), ls_index(d2)
    versions = {oid(data) for data in files.values()}
    out = run_forked(["sync", d2, "--carrier", carrier], timeout=30)
    assert out.code == 19, out.stderr
    assert "would delete 80 of 100 files" in one_error(out)
    assert tree(d2, folders=False) == files and ls_index(d2) == listing
    ok("sync", d2, "--carrier", carrier, "--allow-mass-delete")
    assert len(tree(d2, folders=False)) == 20
    kept = {oid(data) for data in tree(d2, folders=False).values()} | trash_ids(d2)
    assert versions <= kept, "every deleted version is in the trash"
