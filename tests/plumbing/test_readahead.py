"""Reading ahead: the next files opened, and their reading asked for,
before their turn, without changing what the caller is given."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest

from squirrel.errors import ChangedDuringOperation
from squirrel.plumbing import fsops, readahead
from squirrel.plumbing.index import KIND_FILE, Entry
from squirrel.plumbing.objects import ObjectStore, Wanted
from squirrel.plumbing.readahead import spans_ahead
from squirrel.plumbing.vtime import VectorTime

needs_fadvise = pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise here")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def files(folder: Path, n: int, size: int = 100) -> list[Path]:
    folder.mkdir(exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"f{i:03d}"
        p.write_bytes(bytes([i % 256]) * size + b"%d" % i)
        out.append(p)
    return out


def entry_of(p: Path) -> Entry:
    st = p.lstat()
    oid = blake3.blake3(p.read_bytes()).digest()
    return Entry(KIND_FILE, oid, st.st_size, st.st_mode & 0o7777, st.st_mtime_ns, VectorTime(), VectorTime())


class Opener:
    """open_span of each path, counting the calls; `fail` names paths whose
    opening raises."""

    def __init__(self, fail: set[Path] | None = None) -> None:
        self.calls = 0
        self.fail = fail or set()

    def __call__(self, p: Path) -> fsops.Span:
        self.calls += 1
        if p in self.fail:
            raise ChangedDuringOperation(f"{p} changed since it was scanned")
        return fsops.open_span(os.fsencode(p), entry_of(p))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_each_item_comes_in_order_with_its_own_content_and_nothing_stays_open(tmp_path: Path) -> None:
    paths = files(tmp_path, 40)
    before = open_fds()

    got = []
    for p, span in spans_ahead(paths, Opener()):
        assert isinstance(span, fsops.Span)
        got.append((p, b"".join(fsops.file_chunks(span))))  # file_chunks closes it

    assert got == [(p, p.read_bytes()) for p in paths]
    assert open_fds() == before


def test_an_error_comes_at_its_items_turn_and_the_others_go_on(tmp_path: Path) -> None:
    paths = files(tmp_path, 10)
    broken = {paths[3], paths[7]}

    got = []
    for p, span in spans_ahead(paths, Opener(broken)):
        if isinstance(span, fsops.Span):
            os.close(span.fd)
            got.append((p.name, "open"))
        else:
            assert isinstance(span, ChangedDuringOperation)
            got.append((p.name, "changed"))

    assert got == [(p.name, "changed" if p in broken else "open") for p in paths]


@needs_fadvise
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_caller_that_stops_early_leaves_no_file_open(tmp_path: Path) -> None:
    paths = files(tmp_path, 50)
    before = open_fds()
    opener = Opener()

    gen = spans_ahead(paths, opener)
    for _, span in gen:
        assert isinstance(span, fsops.Span)
        os.close(span.fd)
        break
    assert opener.calls > 1  # the next ones were opened ahead ...
    gen.close()

    assert open_fds() == before  # ... and closed when it stopped


@needs_fadvise
def test_the_window_is_bounded_in_files_and_in_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readahead, "READ_AHEAD_FILES", 4)
    opener = Opener()
    for _, span in spans_ahead(files(tmp_path / "few", 20), opener):
        assert isinstance(span, fsops.Span)
        os.close(span.fd)
        break
    assert opener.calls == 4

    monkeypatch.setattr(readahead, "READ_AHEAD_FILES", 100)
    monkeypatch.setattr(readahead, "READ_AHEAD_BYTES", 2500)
    opener = Opener()
    for _, span in spans_ahead(files(tmp_path / "big", 20, size=1000), opener):
        assert isinstance(span, fsops.Span)
        os.close(span.fd)
        break
    assert opener.calls == 3  # 3 x 1,000 bytes reach 2,500


def test_without_the_kernels_hint_nothing_is_opened_ahead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "posix_fadvise", raising=False)
    opener = Opener()
    seen = []
    for p, span in spans_ahead(files(tmp_path, 5), opener):
        assert isinstance(span, fsops.Span)
        os.close(span.fd)
        seen.append((p.name, opener.calls))
    assert seen == [(f"f{i:03d}", i + 1) for i in range(5)]  # each opened at its own turn


def test_the_store_keeps_every_object_whose_file_opens_and_reports_the_one_that_does_not(tmp_path: Path) -> None:
    paths = files(tmp_path / "src", 30, size=5000)
    broken = paths[11]
    store = ObjectStore(str(tmp_path / "objects"), str(tmp_path / "tmp"))
    opener = Opener({broken})

    def wanted(p: Path) -> Wanted:
        e = entry_of(p)
        return Wanted(e.oid, e.size, lambda p=p: [p.read_bytes()], lambda p=p: opener(p))

    results = dict(store.put_many([wanted(p) for p in paths]))

    assert [p for p in paths if results[entry_of(p).oid] is not None] == [broken]
    assert isinstance(results[entry_of(broken).oid], ChangedDuringOperation)
    for p in paths:
        if p != broken:
            assert b"".join(store.chunks(entry_of(p).oid)) == p.read_bytes()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_files_taken_by_name_are_themselves_and_those_passed_over_are_closed(tmp_path: Path) -> None:
    paths = files(tmp_path / "f", 12)
    folder = os.fsencode(tmp_path / "f")
    before = open_fds()
    ahead = readahead.FilesAhead(folder, [(p.name.encode(), p.stat().st_size) for p in paths])

    taken = {}
    for p in paths[::3]:  # every third taken, the others passed over
        fd = ahead.take(p.name.encode())
        assert fd is not None
        with os.fdopen(fd, "rb") as f:
            taken[p.name] = f.read()
    assert ahead.take(b"not named") is None
    ahead.close()

    assert taken == {p.name: p.read_bytes() for p in paths[::3]}
    assert open_fds() == before


def test_a_file_that_cannot_be_opened_ahead_is_left_to_the_caller(tmp_path: Path) -> None:
    paths = files(tmp_path / "f", 3)
    paths[1].unlink()
    ahead = readahead.FilesAhead(os.fsencode(tmp_path / "f"), [(p.name.encode(), 100) for p in paths])
    fds = [ahead.take(p.name.encode()) for p in paths]
    ahead.close()
    assert fds[1] is None and fds[0] is not None and fds[2] is not None
    for fd in (fds[0], fds[2]):
        assert fd is not None
        os.close(fd)
