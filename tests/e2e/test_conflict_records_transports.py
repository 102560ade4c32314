"""Conflict records through the real `sq`, when drives meet without the
carrier: by `sq push` and `sq reconcile` between two mounted replicas, and
by bundles (`sq pack`, then `sq apply`). As with the carrier
(test_conflict_records.py), a conflict stays listed on every drive that
holds it until the user resolves it, and a resolution, a copy-less one
included, reaches every drive.

Each test names what goes from one drive to another with `send(src, dst)`;
the transports differ in how: a push carries src to dst, a reconcile
carries both ways, a bundle is packed on src (for dst, or whole) and
applied to dst. After each step, what `sq conflicts` lists on every drive,
`sq status --exit-code`, and the files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import run_sq, tree, write

NO_SUCH_CONFLICT = 14

Send = Callable[[Path, Path], None]


def push(src: Path, dst: Path) -> None:
    run_sq("push", src, dst).check()


def reconcile(src: Path, dst: Path) -> None:
    run_sq("reconcile", src, dst).check()


def bundle_path(src: Path, dst: Path) -> Path:
    """A new bundle file beside the drives, named for its trip."""
    folder = src.parent / "bundles"
    folder.mkdir(exist_ok=True)
    return folder / f"{len(list(folder.iterdir())):03}-{src.name}-to-{dst.name}.sqb"


def bundle_for(src: Path, dst: Path) -> None:
    out = bundle_path(src, dst)
    run_sq("pack", src, "-o", out, "--for", dst).check()
    run_sq("apply", out, dst).check()


def whole_bundle(src: Path, dst: Path) -> None:
    out = bundle_path(src, dst)
    run_sq("pack", src, "-o", out).check()
    run_sq("apply", out, dst).check()


TRANSPORTS = [
    pytest.param(push, id="push"),
    pytest.param(reconcile, id="reconcile"),
    pytest.param(bundle_for, id="bundle-for"),
    pytest.param(whole_bundle, id="bundle"),
]


def drives(tmp_path: Path, send: Send, names: str, files: dict[str, str]) -> list[Path]:
    """Drive folders, the first holding `files`, the others joined from it
    and sent its files."""
    first, *others = (tmp_path / n for n in names)
    first.mkdir()
    for name, content in files.items():
        write(first / name, content)
    run_sq("init", first, "--name", first.name).check()
    for d in others:
        d.mkdir()
        run_sq("init", d, "--name", d.name, "--join", first).check()
        send(first, d)
        assert tree(d) == tree(first)
    return [first, *others]


def listed(drive: Path) -> list[tuple[str, str | None]]:
    """What `sq conflicts` lists on `drive`: (path, copy) pairs."""
    found = [(c["path"], c["copy"]) for c in run_sq("conflicts", drive, "--json").check().json]
    return sorted(found, key=lambda pc: (pc[0], pc[1] or ""))


def status_code(drive: Path) -> int:
    return run_sq("status", drive, "--exit-code").code


def all_settled(*ds: Path, files: dict[str, bytes]) -> None:
    """What the user sees once every drive has heard everything."""
    for d in ds:
        assert listed(d) == [], d.name
        assert status_code(d) == 0, d.name
        assert tree(d) == files, d.name


def edit_delete(a: Path, b: Path, send: Send) -> None:
    """a edits p.txt, b deletes it; b meets the conflict, keeps the edit,
    and a hears of the conflict from b: both list it."""
    write(a / "p.txt", "v2")
    (b / "p.txt").unlink()
    send(a, b)
    send(b, a)
    assert tree(a) == tree(b) == {"p.txt": b"v2"}
    assert listed(a) == listed(b) == [("p.txt", None)]
    assert status_code(a) == status_code(b) == 1


@pytest.mark.parametrize("send", TRANSPORTS)
def test_a_resolved_edit_delete_conflict_reaches_a_drive_listing_it_and_one_that_never_met_it(
    tmp_path: Path, send: Send
) -> None:
    a, b, c = drives(tmp_path, send, "abc", {"p.txt": "v1"})
    edit_delete(a, b, send)
    assert listed(c) == []  # c has met neither side

    ran = run_sq("resolve", b, "p.txt", "--keep", "path").check()
    assert ran.err.startswith("resolved p.txt: kept the path version")
    assert listed(b) == []
    assert listed(a) == [("p.txt", None)]  # a has not heard yet

    send(b, c)  # c learns of the resolution with the edit, never of the conflict
    assert listed(c) == []
    assert tree(c) == {"p.txt": b"v2"}
    send(a, c)  # a, not heard yet, sends its open record: c keeps it resolved
    assert listed(c) == []
    send(b, a)
    assert listed(a) == []

    for src, dst in [(a, b), (a, c), (c, a), (c, b), (b, a)]:
        send(src, dst)
    all_settled(a, b, c, files={"p.txt": b"v2"})
    for d in (a, b, c):
        assert run_sq("resolve", d, "p.txt", "--keep", "path").code == NO_SUCH_CONFLICT


@pytest.mark.parametrize("send", TRANSPORTS)
def test_a_drive_that_heard_of_the_conflict_second_hand_hears_of_its_resolution(tmp_path: Path, send: Send) -> None:
    """c hears of the conflict from a, which did not meet it; then of its
    resolution from b, and a hears of it from c."""
    a, b, c = drives(tmp_path, send, "abc", {"p.txt": "v1"})
    edit_delete(a, b, send)
    send(a, c)
    assert listed(c) == [("p.txt", None)]
    assert status_code(c) == 1

    run_sq("resolve", b, "p.txt", "--keep", "path").check()
    send(b, c)
    assert listed(c) == []
    assert listed(a) == [("p.txt", None)]
    send(a, c)  # a, not heard yet, sends its open record again
    assert listed(c) == []
    send(c, a)
    assert listed(a) == []

    for src, dst in [(a, b), (b, c), (c, a)]:
        send(src, dst)
    all_settled(a, b, c, files={"p.txt": b"v2"})


@pytest.mark.parametrize("send", [pytest.param(bundle_for, id="bundle-for"), pytest.param(whole_bundle, id="bundle")])
def test_a_bundle_packed_before_the_resolution_does_not_bring_the_conflict_back(tmp_path: Path, send: Send) -> None:
    """A bundle packed on a while the conflict was open, applied to b after
    b resolved it: b keeps it resolved, and so does c after both bundles."""
    a, b, c = drives(tmp_path, send, "abc", {"p.txt": "v1"})
    edit_delete(a, b, send)
    stale = tmp_path / "stale.sqb"
    run_sq("pack", a, "-o", stale).check()

    run_sq("resolve", b, "p.txt", "--keep", "path").check()
    run_sq("apply", stale, b).check()
    assert listed(b) == []
    assert status_code(b) == 0

    send(b, c)
    run_sq("apply", stale, c).check()
    assert listed(c) == []
    send(b, a)
    all_settled(a, b, c, files={"p.txt": b"v2"})


@pytest.mark.parametrize("send", TRANSPORTS)
def test_two_conflicts_at_one_path_are_both_listed_and_resolved_everywhere(tmp_path: Path, send: Send) -> None:
    """a, b and c edit p.txt (c last, then b, then a): a's and b's versions
    end as two copies beside c's, each listed on every drive until it is
    resolved, by its copy's path, on one drive."""
    a, b, c = drives(tmp_path, send, "abc", {"p.txt": "v1"})
    write(a / "p.txt", "A", seconds_ago=300)
    write(b / "p.txt", "B", seconds_ago=200)
    write(c / "p.txt", "C", seconds_ago=100)
    for src, dst in [(a, b), (b, a), (b, c), (c, b), (b, a), (a, c)]:
        send(src, dst)
    files = tree(a)
    copies = sorted(name for name in files if ".sq-conflict-" in name)
    assert len(copies) == 2
    assert sorted(files[n] for n in copies) == [b"A", b"B"]
    assert files["p.txt"] == b"C"
    for d in (a, b, c):
        assert tree(d) == files, d.name
        assert listed(d) == [("p.txt", copies[0]), ("p.txt", copies[1])], d.name
        assert status_code(d) == 1

    run_sq("resolve", a, a / copies[0], "--keep", "path").check()
    assert listed(a) == [("p.txt", copies[1])]
    for src, dst in [(a, b), (b, c), (c, a)]:
        send(src, dst)
    for d in (a, b, c):
        assert listed(d) == [("p.txt", copies[1])], d.name
        assert copies[0] not in tree(d)

    run_sq("resolve", c, c / copies[1], "--keep", "copy").check()
    for src, dst in [(c, b), (b, a), (a, c)]:
        send(src, dst)
    all_settled(a, b, c, files={"p.txt": files[copies[1]]})
    assert run_sq("resolve", a, "p.txt", "--keep", "path").code == NO_SUCH_CONFLICT
