"""The kernel copy that is read back as it goes (`fsops.copy_range` with
`read_back`), on real files: the copy of the next piece runs on a thread
while this one is verified, so these tests make the pieces small and check
what a user relies on: the bytes arrive whole and verified, a file edited
during the copy is refused, and an error in the copying thread surfaces as
the usual one-line error with nothing left behind."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import blake3
import pytest

from squirrel.errors import ChangedDuringOperation, OutOfSpace, UnsafePath
from squirrel.plumbing import execute, faults, fetch, fsops, groups, place
from squirrel.porcelain.apply import apply
from squirrel.porcelain.init import init
from squirrel.porcelain.pack import pack
from squirrel.porcelain.push import push
from tests.bundle_tools import incompressible
from tests.helpers import make_tree, pure_python, tree

KIB = 1024
SIZE = 700 * KIB + 123  # eleven pieces of 64 KiB and a short one


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of 64 KiB copied in steps of 16 KiB, read back in blocks of
    24 KiB: neither divides the other, nor the file."""
    monkeypatch.setattr(fsops, "COPY_PIECE", 64 * KIB)
    monkeypatch.setattr(fsops, "COPY_STEP", 16 * KIB)
    monkeypatch.setattr(fsops, "READ_BUFFER", 24 * KIB)


def source(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "clip.mov"
    path.write_bytes(content)
    return path


def copy(src: Path, tmp: Path, oid: bytes, progress: list[int] | None = None) -> str | None:
    """copy_temp of the whole file; it closes the source's descriptor,
    whatever happens."""
    fd = os.open(src, os.O_RDONLY)
    heard = None if progress is None else progress.append
    try:
        return fsops.copy_temp(str(tmp), fsops.Span(fd, 0, SIZE), oid, SIZE, 0, 0o644, progress=heard)
    finally:
        with pytest.raises(OSError):
            os.fstat(fd)


def test_a_copy_in_many_pieces_arrives_whole_and_verified(tmp_path: Path, small_pieces: None) -> None:
    content = incompressible(SIZE, 1)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    heard: list[int] = []
    name = copy(source(tmp_path, content), tmp, blake3.blake3(content).digest(), heard)
    assert name is not None
    assert Path(name).read_bytes() == content
    assert sum(heard) == SIZE  # every byte heard of once, as it was verified
    assert max(heard) <= 24 * KIB


def test_a_file_edited_during_the_copy_is_refused_and_nothing_stays(
    tmp_path: Path, small_pieces: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = incompressible(SIZE, 2)
    src = source(tmp_path, content)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    real_point = faults.point
    steps: list[str] = []

    def save_halfway(op: str) -> None:
        steps.append(op)
        if len(steps) == 20:  # a step of a piece the copying thread is on
            with open(src, "r+b") as f:
                f.seek(SIZE - 1000)
                f.write(b"saved by the user")
        real_point(op)

    monkeypatch.setattr(faults, "point", save_halfway)
    with pytest.raises(ChangedDuringOperation):
        copy(src, tmp, blake3.blake3(content).digest())
    assert len(steps) >= 20
    assert list(tmp.iterdir()) == []


def test_no_space_in_the_copying_thread_is_one_clear_error(tmp_path: Path, small_pieces: None) -> None:
    content = incompressible(SIZE, 3)
    src = source(tmp_path, content)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    faults.configure("write:30:enospc")  # a step of the last pieces: copied by the thread
    try:
        with pytest.raises(OutOfSpace, match="no space left on the drive"):
            copy(src, tmp, blake3.blake3(content).digest())
    finally:
        faults.configure(None)
    assert list(tmp.iterdir()) == []


def test_a_bundle_of_a_file_copied_in_pieces_applies_byte_exact(tmp_path: Path, small_pieces: None) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    b.mkdir()
    content = incompressible(SIZE, 4)
    (a / "clip.mov").write_bytes(content)
    (a / "note.txt").write_bytes(b"a caption\n")
    init(str(a), name="A")
    init(str(b), name="B", join=str(a))
    bundle = tmp_path / "a.sqb"
    pack(str(a), str(bundle), for_replica=str(b))
    report = apply(str(bundle), str(b))
    assert report.created == 2
    assert (b / "clip.mov").read_bytes() == content
    assert (b / "note.txt").read_bytes() == b"a caption\n"


@pytest.mark.parametrize("how", ["in Python", "in C"])
def test_a_group_whose_fsync_fails_is_never_renamed_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Small files fetched ahead are made durable in groups, each waited for
    only when its first file's turn comes: a group whose fsync fails has
    none of its files at the receiver's paths, the others arrive, and the
    next push brings the rest. In Python the files are fsynced in groups of
    `SMALL_GROUP`; in C, each group the C part wrote is fsynced whole."""
    if how == "in Python":
        pure_python(monkeypatch)
        monkeypatch.setattr(fetch, "SMALL_GROUP", 4)
    elif groups._copy_group is None:
        pytest.skip("the C part was not built here")
    else:
        monkeypatch.setattr(fetch, "AHEAD_FILES", 4)
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    b.mkdir()
    files = {f"p/img{i:02d}.jpg": incompressible(1000 + i, 10 + i) for i in range(12)}
    for name, content in files.items():
        (a / name).parent.mkdir(exist_ok=True)
        (a / name).write_bytes(content)
    init(str(a), name="A")
    init(str(b), name="B", join=str(a))
    real = fsops.fsync_many
    synced: list[list[str]] = []

    def second_fails(names: list[str]) -> None:
        synced.append(names)
        if len(synced) == 2:
            raise OSError(errno.EIO, "injected")
        real(names)

    monkeypatch.setattr(fsops, "fsync_many", second_fails)
    report = push(str(a), str(b))
    monkeypatch.undo()
    assert [len(g) for g in synced] == [4, 4, 4]
    # In C, the two groups after the first are written at once, on two
    # threads: the second fsync is either one's.
    group = [{f"p/img{i:02d}.jpg" for i in range(n, n + 4)} for n in (0, 4, 8)]
    failed = {p.decode() for p, _ in report.failed}
    assert failed == group[1] or (how == "in C" and failed == group[2])
    arrived = {p.relative_to(b).as_posix() for p in (b / "p").iterdir()}
    assert arrived == set(files) - failed
    for name in arrived:
        assert (b / name).read_bytes() == files[name]
    assert list((b / ".squirrel" / "tmp").iterdir()) == []
    push(str(a), str(b))
    assert {n: (b / n).read_bytes() for n in files} == files


@pytest.mark.parametrize("umask", [0o022, 0o077])
@pytest.mark.parametrize("how", ["copied", "streamed"])
@pytest.mark.parametrize("mode", [0o664, 0o444])
def test_a_written_file_takes_the_senders_mode_and_mtime_whatever_the_umask(
    tmp_path: Path, umask: int, how: str, mode: int
) -> None:
    """A temporary file is created with the sender's mode where the umask
    lets it, and set to it where it does not: either way it ends with it
    (a read-only one too, written while its owner may write it)."""
    content = b"a sidecar's few bytes"
    oid = blake3.blake3(content).digest()
    src = source(tmp_path, content)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    old = os.umask(umask)
    try:
        if how == "copied":
            span = fsops.Span(os.open(src, os.O_RDONLY), 0, len(content))
            name = fsops.copy_temp(str(tmp), span, oid, len(content), 1_600_000_000 * 10**9, mode)
        else:
            name = fsops.write_temp(str(tmp), [content], oid, len(content), 1_600_000_000 * 10**9, mode)
    finally:
        os.umask(old)
    assert name is not None and os.path.dirname(name) == str(tmp)
    st = os.stat(name)
    assert (oct(st.st_mode & 0o777), st.st_mtime_ns) == (oct(mode), 1_600_000_000 * 10**9)
    assert Path(name).read_bytes() == content


def refuses_existing_names(tmp_path: Path) -> bool:
    """Can a rename on this file system refuse a name that exists
    (RENAME_NOREPLACE)? Asked of the system directly, not of `rename_new`."""
    call = place._renameat2_call()
    if call is None:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "a").write_bytes(b"a")
    (probe / "b").write_bytes(b"b")
    refused = call(bytes(probe / "a"), bytes(probe / "b")) == errno.EEXIST
    for name in ("a", "b"):
        (probe / name).unlink(missing_ok=True)
    probe.rmdir()
    return refused


@pytest.fixture(params=["in C", "in Python"])
def renames(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Files renamed into place by the C part (`_place.c`) or, as where it
    was not built, in Python: the same checks, the same errors."""
    if request.param == "in Python":
        pure_python(monkeypatch)
    elif place._place is None:
        pytest.skip("the C part was not built here")
    return str(request.param)


def new_temp(tmp_path: Path, content: bytes = b"the sender's version") -> Path:
    tmp = tmp_path / "new.tmp"
    tmp.write_bytes(content)
    return tmp


def test_a_new_file_never_replaces_one_made_at_its_path_after_the_check(tmp_path: Path, renames: str) -> None:
    """The target of a new file is checked, then the file renamed there: a
    file the user makes at that path in between stays, and the rename fails
    as an edit found by the check does."""
    if not refuses_existing_names(tmp_path):
        pytest.skip("this file system's renames cannot refuse an existing name")
    root = tmp_path / "R"
    (root / "photos").mkdir(parents=True)
    tmp = new_temp(tmp_path)
    (root / "photos" / "a.jpg").write_bytes(b"made by the user just now")
    with pytest.raises(ChangedDuringOperation, match="photos/a.jpg changed since it was scanned"):
        place.install(bytes(tmp), bytes(root), b"photos/a.jpg", new=True)
    assert (root / "photos" / "a.jpg").read_bytes() == b"made by the user just now"
    assert tmp.read_bytes() == b"the sender's version"  # the caller removes it
    st = place.install(bytes(tmp), bytes(root), b"photos/b.jpg", new=True)
    assert (root / "photos" / "b.jpg").read_bytes() == b"the sender's version"
    assert (st.st_size, st.st_ino) == (20, os.lstat(root / "photos" / "b.jpg").st_ino)


def test_an_update_is_renamed_over_the_version_at_its_path(tmp_path: Path, renames: str) -> None:
    root = tmp_path / "R"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "c.jpg").write_bytes(b"old")
    tmp = new_temp(tmp_path, b"new version")
    st = place.install(bytes(tmp), bytes(root), b"a/b/c.jpg")
    assert (root / "a" / "b" / "c.jpg").read_bytes() == b"new version" and st.st_size == 11
    assert not tmp.exists()


@pytest.mark.parametrize("swapped", ["a", "a/b", "a/b/c"])
def test_a_folder_swapped_for_a_symlink_is_never_written_through(tmp_path: Path, renames: str, swapped: str) -> None:
    """Whichever folder above the path is now a symlink (or a file), the
    rename is refused, naming that folder, and nothing lands outside."""
    root = tmp_path / "R"
    (root / "a" / "b" / "c").mkdir(parents=True)
    outside = tmp_path / "outside"
    (outside / "b" / "c").mkdir(parents=True)
    (outside / "c").mkdir()
    folder = root / swapped
    folder.rename(tmp_path / "moved-away")
    if swapped == "a":
        folder.write_bytes(b"a file")
    else:
        folder.symlink_to(outside, target_is_directory=True)
    tmp = new_temp(tmp_path)
    with pytest.raises(UnsafePath, match=f"refusing to write through {folder}: not a directory"):
        place.install(bytes(tmp), bytes(root), b"a/b/c/new.jpg", new=True)
    assert [p for p in outside.rglob("*") if p.is_file()] == []
    assert tmp.read_bytes() == b"the sender's version"


def test_a_folder_gone_since_the_plan_fails_the_file_naming_it(tmp_path: Path, renames: str) -> None:
    root = tmp_path / "R"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b").rmdir()
    tmp = new_temp(tmp_path)
    with pytest.raises(ChangedDuringOperation, match=f"directory vanished: {root}/a/b$"):
        place.install(bytes(tmp), bytes(root), b"a/b/new.jpg", new=True)
    assert tmp.exists()


def test_the_system_s_own_errors_come_through_with_the_path_they_are_about(tmp_path: Path, renames: str) -> None:
    """A folder name the file system cannot hold, a folder where the file
    goes: the error of the system call, never a wrong refusal."""
    root = tmp_path / "R"
    (root / "photos" / "a.jpg").mkdir(parents=True)
    tmp = new_temp(tmp_path)
    long_name = b"x" * 300
    with pytest.raises(OSError) as too_long:
        place.install(bytes(tmp), bytes(root), long_name + b"/new.jpg", new=True)
    assert too_long.value.errno == errno.ENAMETOOLONG
    assert os.fsencode(too_long.value.filename) == bytes(root) + b"/" + long_name
    with pytest.raises(OSError) as onto_folder:
        place.install(bytes(tmp), bytes(root), b"photos/a.jpg")
    assert onto_folder.value.errno == errno.EISDIR
    assert os.fsencode(onto_folder.value.filename2) == bytes(root / "photos" / "a.jpg")
    assert tmp.exists() and (root / "photos" / "a.jpg").is_dir()


def test_a_path_with_a_null_byte_is_refused_before_anything_is_touched(tmp_path: Path, renames: str) -> None:
    root = tmp_path / "R"
    root.mkdir()
    tmp = new_temp(tmp_path)
    (root / "a").mkdir()
    for rel in (b"a\0b/new.jpg", b"a/new.jpg\0.part"):
        with pytest.raises(ValueError):
            place.install(bytes(tmp), bytes(root), rel, new=True)
    assert tmp.exists() and list(root.rglob("*")) == [root / "a"]


def test_where_renames_cannot_refuse_a_name_a_new_file_still_arrives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A system or file system without RENAME_NOREPLACE (exFAT through FUSE,
    macOS) renames right after checking that nothing is at the path: a file
    there is kept, and the rename fails as an edit found by a check does."""
    monkeypatch.setattr(place, "_renameat2_call", lambda: None)
    monkeypatch.setattr(place, "_place", None)  # on such a drive, see test_exfat for the C part
    root = tmp_path / "R"
    root.mkdir()
    tmp = tmp_path / "new.tmp"
    tmp.write_bytes(b"content")
    st = place.install(bytes(tmp), bytes(root), b"a.jpg", new=True)
    assert (root / "a.jpg").read_bytes() == b"content" and st.st_size == 7
    assert not tmp.exists()
    tmp.write_bytes(b"another")
    with pytest.raises(ChangedDuringOperation, match="a.jpg changed since it was scanned"):
        place.install(bytes(tmp), bytes(root), b"a.jpg", new=True)
    assert (root / "a.jpg").read_bytes() == b"content" and tmp.read_bytes() == b"another"


def test_a_push_keeps_a_file_the_user_made_at_a_new_files_path_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renames: str
) -> None:
    """The user saves a file at the path a push is about to create, after
    the push checked it: the push fails that path and the user's file
    stays; the next push finds both versions and keeps both."""
    if not refuses_existing_names(tmp_path):
        pytest.skip("this file system's renames cannot refuse an existing name")
    a, b = tmp_path / "A", tmp_path / "B"
    (a / "p").mkdir(parents=True)
    b.mkdir()
    (a / "p" / "new.jpg").write_bytes(b"from A")
    (a / "p" / "other.jpg").write_bytes(b"also from A")
    init(str(a), name="A")
    init(str(b), name="B", join=str(a))
    real = faults.point

    def user_saves_meanwhile(op: str) -> None:
        """The rename of p/new.jpg (the first file) is next: the user saves
        a file there now. In Python its folders are checked already; in C
        they are checked in the same call as the rename, after this."""
        if op == "rename" and (b / "p").is_dir() and not (b / "p" / "new.jpg").exists():
            (b / "p" / "new.jpg").write_bytes(b"saved on B by the user")
        real(op)

    monkeypatch.setattr(faults, "point", user_saves_meanwhile)
    report = push(str(a), str(b))
    monkeypatch.undo()
    assert [(p, why) for p, why in report.failed] == [(b"p/new.jpg", "p/new.jpg changed since it was scanned")]
    assert (b / "p" / "new.jpg").read_bytes() == b"saved on B by the user"
    assert (b / "p" / "other.jpg").read_bytes() == b"also from A"
    assert list((b / ".squirrel" / "tmp").iterdir()) == []
    again = push(str(a), str(b))
    assert len(again.conflicts) == 1 and not again.failed
    kept = {p.read_bytes() for p in (b / "p").iterdir()}
    assert {b"from A", b"saved on B by the user"} <= kept


def test_new_files_renamed_in_one_call_are_each_checked_as_if_alone(tmp_path: Path, renames: str) -> None:
    """A run of new files renamed together (`install_new`): each is
    checked as `install` checks one, a refusal fails only its own file
    (which stays in its temporary file) and names the same cause, and
    every other file arrives with the stat the index will record."""
    root = tmp_path / "R"
    (root / "a").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    (root / "a" / "2.jpg").write_bytes(b"made by the user just now")
    rels = [b"a/1.jpg", b"a/2.jpg", b"gone/3.jpg", b"link/4.jpg", b"a/5.jpg"]
    temps = []
    for n in range(len(rels)):
        tmp = tmp_path / f"{n}.tmp"
        tmp.write_bytes(b"version %d" % n)
        os.utime(tmp, ns=(1_600_000_000_123_456_789 + n, 1_600_000_000_123_456_789 + n))
        temps.append(tmp)
    results = place.install_new(bytes(root), [(bytes(t), rel) for t, rel in zip(temps, rels, strict=True)])
    refused = [type(r) for r in results[1:4]]
    assert refused == [ChangedDuringOperation, ChangedDuringOperation, UnsafePath]
    assert str(results[1]) == "a/2.jpg changed since it was scanned"
    assert str(results[2]) == f"directory vanished: {root}/gone"
    assert str(results[3]) == f"refusing to write through {root}/link: not a directory (symlink?)"
    for n in (0, 4):
        placed = root / os.fsdecode(rels[n])
        st, got = os.lstat(placed), results[n]
        assert placed.read_bytes() == b"version %d" % n and not temps[n].exists()
        assert not isinstance(got, Exception)
        assert (got.st_size, got.st_mode, got.st_mtime_ns) == (st.st_size, st.st_mode, st.st_mtime_ns)
    assert (root / "a" / "2.jpg").read_bytes() == b"made by the user just now"
    assert all(temps[n].exists() for n in (1, 2, 3)) and list(outside.iterdir()) == []


def test_a_fault_at_one_rename_of_a_run_fails_that_file_alone(tmp_path: Path, renames: str) -> None:
    root = tmp_path / "R"
    root.mkdir()
    temps = [tmp_path / f"{n}.tmp" for n in range(3)]
    for tmp in temps:
        tmp.write_bytes(b"content")
    faults.configure("rename:2:eio")
    try:
        results = place.install_new(bytes(root), [(bytes(t), b"%d.jpg" % n) for n, t in enumerate(temps)])
    finally:
        faults.configure(None)
    assert isinstance(results[1], OSError) and results[1].errno == errno.EIO
    assert sorted(p.name for p in root.iterdir()) == ["0.jpg", "2.jpg"] and temps[1].exists()


def test_a_run_of_new_files_with_bad_items_is_refused_before_any_is_renamed(tmp_path: Path) -> None:
    if place._place_new is None:
        pytest.skip("the C part was not built here")
    root = tmp_path / "R"
    root.mkdir()
    tmp = new_temp(tmp_path)
    good = (bytes(tmp), b"a.jpg")
    for bad, error in [
        ((bytes(tmp), "b.jpg"), TypeError),
        ((bytes(tmp),), TypeError),
        ((bytes(tmp), b""), ValueError),
        ((bytes(tmp), b"b\0.jpg"), ValueError),
        ((bytes(tmp) + b"\0x", b"b.jpg"), ValueError),
    ]:
        with pytest.raises(error):
            place._place_new(bytes(root), [good, bad])  # type: ignore[list-item]
    assert list(root.iterdir()) == [] and tmp.exists()


def many_new_files(tmp_path: Path, count: int) -> tuple[Path, Path]:
    """A with `count` new files in one folder, B a new replica of its vault."""
    a, b = tmp_path / "A", tmp_path / "B"
    make_tree(a, {f"p/{n:03d}.jpg": f"photo {n} from A" for n in range(count)})
    b.mkdir()
    init(str(a), name="A")
    init(str(b), name="B", join=str(a))
    return a, b


def test_files_the_user_saves_amid_a_run_of_new_files_fail_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renames: str
) -> None:
    """New files are renamed into place in runs (`Executor._place_new`): a
    file the user saved at the path of one of them, at the start, the end
    or the middle of a run, fails that path alone, keeps the user's file,
    and the next push keeps both versions."""
    if not refuses_existing_names(tmp_path):
        pytest.skip("this file system's renames cannot refuse an existing name")
    a, b = many_new_files(tmp_path, 2 * execute.PLACE_GROUP + 20)
    saved = {f"p/{n:03d}.jpg" for n in (0, 63, 64, 100, 127, 147)}
    real = faults.point

    def user_saves_meanwhile(op: str) -> None:
        """The first rename into B is next: the user saves files there now."""
        if op == "rename" and (b / "p").is_dir() and not (b / "p" / "147.jpg").exists():
            for rel in saved:
                (b / rel).write_bytes(b"saved on B by the user")
        real(op)

    monkeypatch.setattr(faults, "point", user_saves_meanwhile)
    report = push(str(a), str(b))
    monkeypatch.undo()
    assert sorted(p for p, _ in report.failed) == sorted(os.fsencode(p) for p in saved)
    assert {why for _, why in report.failed} == {f"{p} changed since it was scanned" for p in saved}
    on_b = tree(b, folders=False)
    assert {p for p, content in on_b.items() if content == b"saved on B by the user"} == saved
    assert {p: c for p, c in on_b.items() if p not in saved} == {
        p: c for p, c in tree(a, folders=False).items() if p not in saved
    }
    assert list((b / ".squirrel" / "tmp").iterdir()) == []
    again = push(str(a), str(b))
    assert len(again.conflicts) == len(saved) and not again.failed


def test_an_error_of_sq_itself_amid_a_run_of_new_files_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error no file was told of (a fault of sq itself) while new files
    wait to be renamed into place: the push stops, their temporary files
    are removed, and the next push finishes the work."""
    a, b = many_new_files(tmp_path, 3 * execute.PLACE_GROUP)
    real = place.install_new
    calls: list[int] = []

    def second_run_breaks(root: bytes, items: list[tuple[bytes, bytes]]) -> list[place.Stat | Exception]:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a fault of sq itself")
        return list(real(root, items))

    monkeypatch.setattr(place, "install_new", second_run_breaks)
    with pytest.raises(RuntimeError, match="a fault of sq itself"):
        push(str(a), str(b))
    monkeypatch.undo()
    assert list((b / ".squirrel" / "tmp").iterdir()) == []
    assert 0 < len(tree(b, folders=False)) < 3 * execute.PLACE_GROUP
    again = push(str(a), str(b))
    assert not again.failed and tree(b, folders=False) == tree(a, folders=False)
