"""The copy of a group of small files into temporary files, in C
(`_copygroup.copy`), on real files: what a group writes must be what the
Python fetch writes one file at a time (content, permissions, mtime), every
way it can stop must leave nothing behind, and a push or an apply written
through groups, on the fetching thread, must arrive exactly, fail a file
whose source changed at that file's turn only, and never leave a temporary
file. Skipped where the C part was not built (no compiler)."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from squirrel.plumbing import fetch, fsops, groups
from squirrel.porcelain.init import init
from squirrel.porcelain.push import push
from tests.bundle_tools import incompressible
from tests.helpers import sq_in_process, third_group_breaks, tree

copygroup = pytest.importorskip("squirrel.plumbing._copygroup")

MTIMES = [0, 1, -1_500_000_000_123_456_789, 1_700_000_000_123_456_789, 4_102_444_800_999_999_999]
MODES = [0o644, 0o444, 0o600, 0o755, 0o640]


def source(path: Path, contents: list[bytes]) -> list[tuple[int, int]]:
    """The contents one after the other in one file, as in a bundle, with a
    gap between them: (offset, size) of each."""
    spans = []
    with open(path, "wb") as f:
        for content in contents:
            f.write(b"-gap-")
            spans.append((f.tell(), len(content)))
            f.write(content)
    return spans


def items(src_fd: int, spans: list[tuple[int, int]], modes: list[int], mtimes: list[int]) -> list[groups.Item]:
    out = []
    for i, ((offset, size), mode, mtime) in enumerate(zip(spans, modes, mtimes, strict=True)):
        create, final = fsops.temp_perms(mode)
        out.append((src_fd, offset, size, f"t{i}".encode(), create, final, mtime))
    return out


def run(tmp: Path, contents: list[bytes], modes: list[int], mtimes: list[int]) -> tuple[list[int], bytearray]:
    spans = source(tmp / "src", contents)
    (tmp / "tmp").mkdir(exist_ok=True)
    src = os.open(tmp / "src", os.O_RDONLY)
    dir_fd = os.open(tmp / "tmp", os.O_RDONLY | os.O_DIRECTORY)
    buf = bytearray(sum(len(c) for c in contents))
    try:
        return copygroup.copy(dir_fd, items(src, spans, modes, mtimes), buf), buf
    finally:
        os.close(src)
        os.close(dir_fd)


def test_a_group_arrives_byte_exact_with_its_permissions_and_mtime(tmp_path: Path) -> None:
    contents = [incompressible(i, 1000 * i + 7) for i in range(5)] + [b""]
    modes = [*MODES, 0o644]
    mtimes = [*MTIMES, 5]
    codes, buf = run(tmp_path, contents, modes, mtimes)
    assert codes == [0] * 6
    assert bytes(buf) == b"".join(contents)  # read back, for the caller to hash
    for i, (content, mode, mtime) in enumerate(zip(contents, modes, mtimes, strict=True)):
        made = tmp_path / "tmp" / f"t{i}"
        st_ = made.stat()
        assert made.read_bytes() == content
        assert (stat.S_IMODE(st_.st_mode), st_.st_mtime_ns) == (mode, mtime)


def test_a_source_shorter_than_its_size_stops_the_group_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "src"
    spans = source(path, [b"one", b"two"])
    spans.append((spans[-1][0], 100))  # runs past the end of the file
    spans.append((0, 3))
    (tmp_path / "tmp").mkdir()
    src = os.open(path, os.O_RDONLY)
    dir_fd = os.open(tmp_path / "tmp", os.O_RDONLY | os.O_DIRECTORY)
    try:
        codes = copygroup.copy(dir_fd, items(src, spans, [0o644] * 4, [1] * 4), bytearray(200))
    finally:
        os.close(src)
        os.close(dir_fd)
    assert codes == [0, 0, -1]
    assert sorted(os.listdir(tmp_path / "tmp")) == ["t0", "t1"]


def test_a_name_taken_stops_the_group_with_its_errno_and_keeps_the_file(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / "t1").write_bytes(b"someone else's")
    codes, _ = run(tmp_path, [b"a", b"b", b"c"], [0o644] * 3, [1] * 3)
    assert codes == [0, errno.EEXIST]
    assert (tmp_path / "tmp" / "t1").read_bytes() == b"someone else's"
    assert sorted(os.listdir(tmp_path / "tmp")) == ["t0", "t1"]


def test_a_source_the_kernel_cannot_copy_from_ends_the_group_with_nothing_copied(tmp_path: Path) -> None:
    """A descriptor not open for reading is one the kernel cannot copy
    from (EBADF), as a file system without the copy gives EXDEV or
    EOPNOTSUPP: the fetcher then streams the file instead."""
    (tmp_path / "src").write_bytes(b"content")
    (tmp_path / "tmp").mkdir()
    src = os.open(tmp_path / "src", os.O_WRONLY)
    dir_fd = os.open(tmp_path / "tmp", os.O_RDONLY | os.O_DIRECTORY)
    try:
        codes = copygroup.copy(dir_fd, items(src, [(0, 7)], [0o644], [1]), bytearray(7))
    finally:
        os.close(src)
        os.close(dir_fd)
    assert codes == [-2]
    assert os.listdir(tmp_path / "tmp") == []


def test_a_folder_that_is_not_open_fails_the_first_file(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"x")
    src = os.open(tmp_path / "src", os.O_RDONLY)
    try:
        assert copygroup.copy(9999, items(src, [(0, 1)], [0o644], [1]), bytearray(1)) == [errno.EBADF]
    finally:
        os.close(src)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def by_path(tmp: Path, names: list[str], expected: list[int | None]) -> list[groups.Item]:
    """Items whose sources the C call opens itself, by path, expecting
    each file's size and the mtime given (None: any)."""
    out: list[groups.Item] = []
    for i, (name, mtime) in enumerate(zip(names, expected, strict=True)):
        path = tmp / name
        size = path.stat().st_size if path.is_file() else 5
        out.append((-1, 0, size, f"t{i}".encode(), 0o600, 0o644, None, os.fsencode(path), mtime))
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="no /proc/self/fd to count descriptors")
@pytest.mark.parametrize("how", ["edited since", "gone", "a symlink to it", "a folder", "a different size"])
def test_a_source_opened_by_path_stops_the_group_where_it_is_not_as_expected(tmp_path: Path, how: str) -> None:
    """A source named by path is opened by the call itself (no symlink
    followed) and copied only while it is the regular file of the size and
    mtime expected: at the first that is not, the group ends with -3 and
    nothing written for it, the files before it are copied, and every
    source the call opened is closed again."""
    (tmp_path / "tmp").mkdir()
    for i in range(4):
        (tmp_path / f"f{i}").write_bytes(incompressible(100 + i, i))
    mtimes: list[int | None] = [(tmp_path / f"f{i}").stat().st_mtime_ns for i in range(4)]
    its = by_path(tmp_path, [f"f{i}" for i in range(4)], mtimes)
    victim = tmp_path / "f2"
    if how == "edited since":
        os.utime(victim, ns=(5, 5))
    elif how == "gone":
        victim.unlink()
    elif how == "a symlink to it":
        victim.rename(tmp_path / "elsewhere")
        victim.symlink_to(tmp_path / "elsewhere")
    elif how == "a folder":
        victim.unlink()
        victim.mkdir()
    else:
        victim.write_bytes(b"x" * 7)
    dir_fd = os.open(tmp_path / "tmp", os.O_RDONLY | os.O_DIRECTORY)
    before = open_fds()
    try:
        buf = bytearray(1000)
        codes = copygroup.copy(dir_fd, its, buf)
        assert open_fds() == before
    finally:
        os.close(dir_fd)
    assert codes == [0, 0, -3]
    assert sorted(os.listdir(tmp_path / "tmp")) == ["t0", "t1"]
    assert bytes(buf[:201]) == (tmp_path / "f0").read_bytes() + (tmp_path / "f1").read_bytes()
    assert (tmp_path / "tmp" / "t1").read_bytes() == (tmp_path / "f1").read_bytes()


def test_sources_by_path_and_by_descriptor_mix_in_one_group(tmp_path: Path) -> None:
    """An mtime of None takes the file whatever its time; a source by
    descriptor (a span of a bundle) may come between those by path."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "a").write_bytes(b"first")
    (tmp_path / "c").write_bytes(b"third!")
    spans = source(tmp_path / "src", [b"second"])
    src = os.open(tmp_path / "src", os.O_RDONLY)
    dir_fd = os.open(tmp_path / "tmp", os.O_RDONLY | os.O_DIRECTORY)
    [a, c] = by_path(tmp_path, ["a", "c"], [None, (tmp_path / "c").stat().st_mtime_ns])
    middle = items(src, spans, [0o644], [7])[0]
    try:
        buf = bytearray(17)
        codes = copygroup.copy(dir_fd, [a, (*middle[:3], b"t1", *middle[4:], None, None), (*c[:3], b"t2", *c[4:])], buf)
    finally:
        os.close(src)
        os.close(dir_fd)
    assert codes == [0, 0, 0]
    assert bytes(buf) == b"firstsecondthird!"
    assert [(tmp_path / "tmp" / f"t{i}").read_bytes() for i in range(3)] == [b"first", b"second", b"third!"]
    assert (tmp_path / "tmp" / "t1").stat().st_mtime_ns == 7


def test_bad_arguments_raise_their_own_errors(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    dir_fd = os.open(tmp_path / "tmp", os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(ValueError, match="buffer"):
            copygroup.copy(dir_fd, [(0, 0, 10, b"a", 0o600, 0o644, 0)], bytearray(9))
        with pytest.raises(ValueError, match="negative"):
            copygroup.copy(dir_fd, [(0, 0, -1, b"a", 0o600, 0o644, 0)], bytearray(9))
        with pytest.raises(TypeError, match="an item is"):
            copygroup.copy(dir_fd, [(0, 0, 1)], bytearray(9))
        with pytest.raises(TypeError, match="bytes-like"):
            copygroup.copy(dir_fd, [(0, 0, 1, "not bytes", 0o600, 0o644, 0)], bytearray(9))
        with pytest.raises(TypeError, match="path is bytes"):
            copygroup.copy(dir_fd, [(0, 0, 1, b"a", 0o600, 0o644, 0, "not bytes", None)], bytearray(9))
        with pytest.raises(ValueError, match="null byte"):
            copygroup.copy(dir_fd, [(0, 0, 1, b"a", 0o600, 0o644, 0, b"a\0b", None)], bytearray(9))
        with pytest.raises(TypeError):
            copygroup.copy(dir_fd, [], b"read-only")
        assert copygroup.copy(dir_fd, [], bytearray()) == []
        assert os.listdir(tmp_path / "tmp") == []
    finally:
        os.close(dir_fd)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.binary(max_size=3000), st.sampled_from(MODES), st.sampled_from(MTIMES)), min_size=1, max_size=12
    ),
    st.sampled_from([0o022, 0o077, 0o002]),
)
def test_a_group_writes_what_the_python_fetch_writes_file_by_file(
    files: list[tuple[bytes, int, int]], umask: int
) -> None:
    """Whatever the contents, permissions, mtimes and umask: the same bytes,
    permissions and mtime as `fsops.copy_temp`, the fetch of one file."""
    old = os.umask(umask)
    try:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            contents = [c for c, _, _ in files]
            codes, _ = run(tmp, contents, [m for _, m, _ in files], [t for _, _, t in files])
            assert codes == [0] * len(files)
            spans = source(tmp / "src2", contents)
            (tmp / "py").mkdir()
            for i, ((content, mode, mtime), (offset, size)) in enumerate(zip(files, spans, strict=True)):
                span = fsops.Span(os.open(tmp / "src2", os.O_RDONLY), offset, size)
                name = fsops.copy_temp(str(tmp / "py"), span, blake3.blake3(content).digest(), size, mtime, mode)
                assert name is not None
                by_python, by_c = os.stat(name), os.stat(tmp / "tmp" / f"t{i}")
                assert (tmp / "tmp" / f"t{i}").read_bytes() == Path(name).read_bytes() == content
                assert stat.S_IMODE(by_c.st_mode) == stat.S_IMODE(by_python.st_mode)
                assert by_c.st_mtime_ns == by_python.st_mtime_ns == mtime
    finally:
        os.umask(old)


@pytest.fixture
def small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Groups of 5 files: a push of 40 files is made of many, most of them
    written on the fetching thread."""
    monkeypatch.setattr(fetch, "AHEAD_FILES", 5)


def photos(root: Path, n: int) -> dict[str, bytes]:
    files = {f"roll/img{i:03d}.jpg": incompressible(100 + i, 200 + 37 * i) for i in range(n)}
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
        os.chmod(root / name, 0o444 if len(content) % 3 == 0 else 0o640)
        os.utime(root / name, ns=(1_600_000_000_000_000_000 + len(content), 1_600_000_000_000_000_000 + len(content)))
    return files


def pair(tmp_path: Path, n: int) -> tuple[Path, Path, dict[str, bytes]]:
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir()
    b.mkdir()
    files = photos(a, n)
    init(str(a), name="A")
    init(str(b), name="B", join=str(a))
    return a, b, files


@pytest.mark.parametrize("writers", [1, 2])
def test_a_push_through_many_groups_arrives_exactly(
    tmp_path: Path, small_groups: None, monkeypatch: pytest.MonkeyPatch, writers: int
) -> None:
    """Every file is written once, by one group (with one or two groups
    written at once ahead of the executor), and arrives with its bytes,
    permissions and mtime."""
    monkeypatch.setattr(fetch, "WRITERS", writers)
    a, b, files = pair(tmp_path, 40)
    groups: list[int] = []
    real = fetch.Fetcher._write_group

    def counted(self: fetch.Fetcher, acts: list[fetch.Action]) -> list[fetch.Fetched]:
        groups.append(len(acts))
        return real(self, acts)

    monkeypatch.setattr(fetch.Fetcher, "_write_group", counted)
    report = push(str(a), str(b))
    monkeypatch.undo()
    assert sum(groups) == 40 and max(groups) == 5
    assert (report.created, report.failed) == (41, [])  # and their folder
    assert tree(b) == tree(a)
    for name in files:
        sa, sb = (a / name).stat(), (b / name).stat()
        assert (stat.S_IMODE(sb.st_mode), sb.st_mtime_ns) == (stat.S_IMODE(sa.st_mode), sa.st_mtime_ns)
    assert list((b / ".squirrel" / "tmp").iterdir()) == []


@pytest.mark.parametrize("how", ["edited, same size and time", "grown"])
def test_a_source_changed_before_its_group_fails_that_file_alone(
    tmp_path: Path, small_groups: None, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A file of the sender edited after the push's scan, before its group
    is written (on the fetching thread): that file fails at its turn, its
    group's other files and the rest arrive, nothing stays in
    .squirrel/tmp/, and the next push brings it."""
    a, b, files = pair(tmp_path, 30)
    victim = a / "roll/img017.jpg"
    real = fetch.Fetcher._write_group
    edited: list[str] = []
    old: list[bytes] = []

    def edit_first(self: fetch.Fetcher, acts: list[fetch.Action]) -> list[fetch.Fetched]:
        if not edited and any(act.path == b"roll/img017.jpg" for act in acts):
            st_ = victim.stat()
            victim.chmod(0o644)
            old.append(victim.read_bytes())
            victim.write_bytes(old[0][::-1] if how.startswith("edited") else old[0] + b"more")
            os.utime(victim, ns=(st_.st_mtime_ns, st_.st_mtime_ns))
            edited.append(how)
        return real(self, acts)

    monkeypatch.setattr(fetch.Fetcher, "_write_group", edit_first)
    report = push(str(a), str(b))
    monkeypatch.undo()
    assert edited
    assert [p for p, _ in report.failed] == [b"roll/img017.jpg"]
    assert report.created == 30  # and their folder
    assert not (b / "roll/img017.jpg").exists()
    for name, content in files.items():
        if name != "roll/img017.jpg":
            assert (b / name).read_bytes() == content
    assert list((b / ".squirrel" / "tmp").iterdir()) == []
    if how.startswith("edited"):  # an edit no scan can see without hashing: the user takes it back
        mtime = victim.stat().st_mtime_ns
        victim.write_bytes(old[0])
        os.utime(victim, ns=(mtime, mtime))
    again = push(str(a), str(b))
    assert (again.created, again.failed) == (1, [])
    assert tree(b) == tree(a)


def test_a_group_stops_where_the_source_cannot_give_a_span(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose content must be streamed ends the group with nothing
    said for it: it is fetched in its turn, like the rest."""
    a, b, _ = pair(tmp_path, 12)
    monkeypatch.setattr(fetch, "AHEAD_FILES", 4)
    real = fetch.span_of

    def no_span_for_one(source: fetch.ContentSource, path: bytes, entry: fetch.Entry) -> fsops.Span | None:
        return None if path == b"roll/img006.jpg" else real(source, path, entry)

    monkeypatch.setattr(fetch, "span_of", no_span_for_one)
    report = push(str(a), str(b))
    assert (report.created, report.failed) == (13, [])  # and their folder
    assert tree(b) == tree(a)


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        ("write:3:enospc", "no space left on the drive"),
        ("utime:2:eio", "cannot write temporary file: Input/output error"),
        ("fsync:4:eio", "cannot write temporary file: Input/output error"),
    ],
)
def test_a_fault_in_a_group_fails_its_file_as_it_would_in_its_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str, why: str
) -> None:
    """The fault points of a group are those of its files fetched one at a
    time: a fault armed at a file's point fails that file with the error
    the Python fetch gives it (a full disk then stops the run), the files
    before it arrive, nothing stays in .squirrel/tmp/, and the next push
    brings the rest."""
    a, b, files = pair(tmp_path, 6)
    monkeypatch.setattr(fetch, "AHEAD_FILES", 6)
    fetch.faults.configure(fault)
    try:
        report = push(str(a), str(b))
    finally:
        fetch.faults.configure(None)
    failed = [(p.decode(), msg) for p, msg in report.failed if p.startswith(b"roll/")]
    assert failed and why in failed[0][1]
    first = sorted(files).index(failed[0][0])
    for name in sorted(files)[:first]:
        assert (b / name).read_bytes() == files[name]
    if "enospc" in fault:  # nothing more is written
        assert [p for p, _ in failed] == sorted(files)[first:]
    else:
        assert len(failed) == 1
    assert list((b / ".squirrel" / "tmp").iterdir()) == []
    push(str(a), str(b))
    assert tree(b) == tree(a)


def test_sq_pure_python_fetches_every_file_in_its_turn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, _ = pair(tmp_path, 3)
    monkeypatch.setattr(groups, "_copy_group", copygroup.copy)  # put back after the test
    monkeypatch.setenv("SQ_PURE_PYTHON", "1")
    ran = sq_in_process("push", a, b)
    assert (ran.code, groups._copy_group) == (0, None)
    assert tree(b) == tree(a)


def first_group_stops_at_third(monkeypatch: pytest.MonkeyPatch, code: int) -> list[int]:
    """The first group's C call copies its first two files, then reports
    `code` for the third, as the call itself would stop there; the other
    groups are written as they are. Returns the size of each group asked
    for, as they come."""
    real = copygroup.copy
    calls: list[int] = []

    def stop_at_third(dir_fd: int, its: list[groups.Item], buf: bytearray) -> list[int]:
        calls.append(len(its))
        return real(dir_fd, its, buf) if len(calls) > 1 else [*real(dir_fd, its[:2], buf), code]

    monkeypatch.setattr(groups, "_copy_group", stop_at_third)
    return calls


@pytest.mark.parametrize(
    ("code", "why"),
    [(-1, "content is shorter than its declared size"), (errno.ENOSPC, "no space left on the drive"), (-2, None)],
)
def test_the_fetch_maps_each_way_a_group_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, why: str | None
) -> None:
    """A short source, a full disk and a file the kernel cannot copy, as
    the C call reports them for the third file of a group, become what the
    Python fetch makes of them: the file fails with that error (a full
    disk stops the rest of the run), or it and every file after it are
    fetched in Python."""
    a, b, files = pair(tmp_path, 6)
    monkeypatch.setattr(fetch, "AHEAD_FILES", 6)
    calls = first_group_stops_at_third(monkeypatch, code)
    report = push(str(a), str(b))
    failed = dict(report.failed)
    assert calls[0] == 6  # one group
    if why is None:  # the kernel cannot copy to this drive: no group is tried again
        assert (report.created, failed, calls) == (7, {}, [6])  # and their folder
    elif code == errno.ENOSPC:
        files_failed = {p: msg for p, msg in failed.items() if p.startswith(b"roll/")}  # the folders' times too
        assert report.created == 3 and sorted(files_failed) == [f"roll/img00{i}.jpg".encode() for i in range(2, 6)]
        assert all(why in msg for msg in files_failed.values())
    else:
        assert report.created == 6 and list(failed) == [b"roll/img002.jpg"] and why in failed[b"roll/img002.jpg"]
    for name, content in files.items():
        if name.encode() not in failed:
            assert (b / name).read_bytes() == content
    assert list((b / ".squirrel" / "tmp").iterdir()) == []


def test_a_source_the_group_could_not_open_is_fetched_in_its_turn_and_groups_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file the C call did not find as expected (-3: its sender's file
    changed, or is gone) is left to its turn, which opens it itself and
    says why, if anything is wrong; unlike a drive the kernel cannot copy
    to, the next groups are written by the C call all the same."""
    a, b, _ = pair(tmp_path, 12)
    monkeypatch.setattr(fetch, "AHEAD_FILES", 4)
    calls = first_group_stops_at_third(monkeypatch, -3)
    report = push(str(a), str(b))
    assert (report.created, report.failed) == (13, [])  # and their folder
    assert tree(b) == tree(a)
    assert len(calls) > 2 and sum(calls) > 8
    assert list((b / ".squirrel" / "tmp").iterdir()) == []


def test_an_error_on_the_fetching_thread_ends_the_sync_and_leaves_no_temporary_file(
    tmp_path: Path, small_groups: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What no file was told of (a fault of sq itself on the fetching
    thread) ends the sync with that error, after every temporary file is
    removed; the next push finishes the work."""
    a, b, _ = pair(tmp_path, 30)
    third_group_breaks(monkeypatch, "a fault of the fetching thread")
    with pytest.raises(RuntimeError, match="a fault of the fetching thread"):
        push(str(a), str(b))
    monkeypatch.undo()
    assert list((b / ".squirrel" / "tmp").iterdir()) == []
    push(str(a), str(b))
    assert tree(b) == tree(a)


def test_a_group_reads_back_about_group_bytes_at_most(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A group's bytes are read back into memory: a group holds about
    `GROUP_BYTES` at most (one file more at the end), whatever the number
    of small files fetched ahead, and every file still arrives."""
    a, b, files = pair(tmp_path, 30)
    monkeypatch.setattr(groups, "GROUP_BYTES", 600)
    real = copygroup.copy
    held: list[int] = []

    def measured(dir_fd: int, its: list[groups.Item], buf: bytearray) -> list[int]:
        held.append(len(buf))
        return real(dir_fd, its, buf)

    monkeypatch.setattr(groups, "_copy_group", measured)
    report = push(str(a), str(b))
    assert (report.created, report.failed) == (31, [])  # and their folder
    largest = max(len(c) for c in files.values())
    assert len(held) >= 5 and max(held) <= 600 + largest
    assert tree(b) == tree(a)


def test_content_shared_by_files_far_apart_is_fetched_once(tmp_path: Path, small_groups: None) -> None:
    """Thirty files holding seven contents, each content's copies further
    apart than a group: each content comes from the sender once, whichever
    group (or the executor's own thread) fetches it, and the other copies
    are made from it on the receiver."""
    a, b = tmp_path / "A", tmp_path / "B"
    (a / "roll").mkdir(parents=True)
    b.mkdir()
    contents = [incompressible(500 + i, 300 + 41 * i) for i in range(7)]
    for i in range(30):
        (a / "roll" / f"img{i:03d}.jpg").write_bytes(contents[i % 7])
    init(str(a), name="A")
    init(str(b), name="B", join=str(a))
    report = push(str(a), str(b))
    assert (report.created, report.failed) == (31, [])  # and their folder
    assert report.bytes_copied == sum(len(c) for c in contents)
    assert tree(b) == tree(a)
    assert list((b / ".squirrel" / "tmp").iterdir()) == []


@pytest.mark.parametrize("compressed", ["every file", "one file in four"])
def test_files_a_group_cannot_copy_are_still_fetched_many_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compressed: str
) -> None:
    """Small objects a bundle holds compressed do not lie in a file for the
    kernel to copy: a group stops at each of them. They must still be
    fetched many at a time, made durable together, not one by one with an
    fsync each (what a user applying a bundle of sidecar files would wait
    for), and every file arrives."""
    a, b = tmp_path / "A", tmp_path / "B"
    (a / "roll").mkdir(parents=True)
    b.mkdir()
    files = {}
    for i in range(400):
        text = compressed == "every file" or i % 4 == 0
        content = (f"sidecar {i} " * 60).encode() if text else incompressible(900 + i, 700 + i)
        files[f"roll/f{i:03d}.xmp"] = content
        (a / "roll" / f"f{i:03d}.xmp").write_bytes(content)
    init(str(a), name="A")
    init(str(b), name="B", join=str(a))
    from squirrel.plumbing import durable
    from squirrel.porcelain.apply import apply
    from squirrel.porcelain.pack import pack

    pack(str(a), str(tmp_path / "b.sqb"), for_replica=str(b))
    real = durable.fsync_many
    synced: list[int] = []

    def counted(names: list[str]) -> None:
        synced.append(len(names))
        real(names)

    monkeypatch.setattr(durable, "fsync_many", counted)
    monkeypatch.setattr(fsops, "fsync_many", counted)
    report = apply(str(tmp_path / "b.sqb"), str(b))
    monkeypatch.undo()
    assert (report.created, report.failed) == (401, [])  # and their folder
    assert sum(synced) == 400 and len(synced) <= 400 // fetch.SMALL_GROUP + 20
    assert {f"roll/{p.name}": p.read_bytes() for p in (b / "roll").iterdir()} == files
    assert list((b / ".squirrel" / "tmp").iterdir()) == []
