"""Conflict records through the real `sq`: a conflict stays listed on every
drive that holds it until the user resolves it, and a resolution reaches every
drive through the carrier, whatever the conflict's kind.

Each test acts out a photo collection kept on several drives: drive folders,
one carrier, `sq sync` visits in a fixed order, and after each round what
`sq conflicts` lists on every drive, `sq status --exit-code`, and the files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_sq, tree, write

NO_SUCH_CONFLICT = 14
BAD_USAGE = 2


@pytest.fixture
def carrier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "carrier"
    monkeypatch.setenv("SQ_CARRIER", str(path))
    return path


def drives(tmp_path: Path, carrier: Path, names: str, files: dict[str, str]) -> list[Path]:
    """Drive folders, the first holding `files`, the others joined from the
    carrier; visits until every drive holds the same files."""
    first, *others = (tmp_path / n for n in names)
    for d in (first, *others):
        d.mkdir()
    for name, content in files.items():
        write(first / name, content)
    run_sq("init", first, "--name", first.name).check()
    run_sq("sync", first).check()
    for d in others:
        run_sq("init", d, "--name", d.name, "--join", carrier).check()
    visit(*others, first, *others)
    return [first, *others]


def visit(*order: Path) -> None:
    for d in order:
        run_sq("sync", d).check()


def listed(drive: Path) -> list[tuple[str, str | None]]:
    """What `sq conflicts` lists on `drive`: (path, copy) pairs."""
    found = [(c["path"], c["copy"]) for c in run_sq("conflicts", drive, "--json").check().json]
    return sorted(found, key=lambda pc: (pc[0], pc[1] or ""))


def status_code(drive: Path) -> int:
    return run_sq("status", drive, "--exit-code").code


def test_an_edit_delete_conflict_resolved_on_one_drive_stays_resolved_everywhere(tmp_path: Path, carrier: Path) -> None:
    a, b = drives(tmp_path, carrier, "ab", {"p.txt": "v1"})
    write(a / "p.txt", "v2")
    (b / "p.txt").unlink()
    visit(a, b)  # b meets the edit against its deletion and keeps the edit
    visit(a)  # the carrier brings b's record to a
    assert listed(a) == listed(b) == [("p.txt", None)]
    assert status_code(b) == 1

    ran = run_sq("resolve", b, "p.txt", "--keep", "path").check()
    assert ran.err.startswith("resolved p.txt: kept the path version")
    assert listed(b) == []
    assert listed(a) == [("p.txt", None)]  # a has not heard yet

    visit(a, b)  # the carrier hears of the resolution from b
    assert listed(b) == []
    for _ in range(2):
        visit(a, b)
        assert listed(a) == listed(b) == []
        assert status_code(a) == status_code(b) == 0
    assert tree(a) == tree(b) == {"p.txt": b"v2"}
    assert run_sq("resolve", a, "p.txt", "--keep", "path").code == NO_SUCH_CONFLICT


def test_a_resolved_edit_delete_conflict_reaches_a_drive_that_has_not_met_it(tmp_path: Path, carrier: Path) -> None:
    """c learns of the resolution before it hears of the conflict from a
    drive that has not: it never lists it."""
    a, b, c = drives(tmp_path, carrier, "abc", {"p.txt": "v1"})
    write(a / "p.txt", "v2")
    (b / "p.txt").unlink()
    visit(a, b)
    assert listed(b) == [("p.txt", None)]
    run_sq("resolve", b, "p.txt", "--keep", "path").check()
    visit(b, c, a, b, c, a)
    assert listed(a) == listed(b) == listed(c) == []
    assert tree(a) == tree(b) == tree(c) == {"p.txt": b"v2"}


def test_the_same_edit_delete_conflict_met_twice_stays_listed_until_resolved(tmp_path: Path, carrier: Path) -> None:
    """b and c delete, a edits: b and c each meet the conflict and keep the
    same version. Meeting each other changes nothing: both still list it."""
    a, b, c = drives(tmp_path, carrier, "abc", {"p.txt": "v1"})
    write(a / "p.txt", "v2")
    (b / "p.txt").unlink()
    (c / "p.txt").unlink()
    visit(a, b, c, a, b, c)
    assert listed(a) == listed(b) == listed(c) == [("p.txt", None)]
    assert status_code(c) == 1
    run_sq("resolve", c, "p.txt", "--keep", "path").check()
    visit(a, b, c, a, b, c)
    assert listed(a) == listed(b) == listed(c) == []
    assert tree(a) == tree(b) == tree(c) == {"p.txt": b"v2"}


def test_editing_a_resolved_file_and_a_new_conflict_there_are_listed(tmp_path: Path, carrier: Path) -> None:
    """The resolution's mark goes with the version it resolved: a later
    edit/delete conflict at the same path is a new one, and listed."""
    a, b = drives(tmp_path, carrier, "ab", {"p.txt": "v1"})
    write(a / "p.txt", "v2")
    (b / "p.txt").unlink()
    visit(a, b)
    run_sq("resolve", b, "p.txt", "--keep", "path").check()
    visit(a, b, a)
    write(a / "p.txt", "v3", seconds_ago=60)
    (b / "p.txt").unlink()
    visit(a, b, a)
    assert listed(a) == listed(b) == [("p.txt", None)]
    assert tree(a) == tree(b) == {"p.txt": b"v3"}


def test_two_conflicts_at_one_path_are_both_listed_and_resolved_everywhere(tmp_path: Path, carrier: Path) -> None:
    """a, b and c edit p.txt (c last, then b, then a): b's and a's versions
    end as two copies beside c's, and each stays listed on every drive until
    it is resolved, by the path or by its copy's path."""
    a, b, c = drives(tmp_path, carrier, "abc", {"p.txt": "v1"})
    write(a / "p.txt", "A", seconds_ago=300)
    write(b / "p.txt", "B", seconds_ago=200)
    write(c / "p.txt", "C", seconds_ago=100)
    visit(b, a, c, a, b, c, a, b, c)
    files = tree(a)
    copies = sorted(name for name in files if ".sq-conflict-" in name)
    assert len(copies) == 2
    assert sorted(files[n] for n in copies) == [b"A", b"B"]
    for d in (a, b, c):
        assert tree(d) == files and files["p.txt"] == b"C"
        assert listed(d) == [("p.txt", copies[0]), ("p.txt", copies[1])]
        assert status_code(d) == 1

    ambiguous = run_sq("resolve", a, "p.txt", "--keep", "path")
    assert ambiguous.code == BAD_USAGE
    assert ambiguous.error_lines == [
        f"sq: error: 2 open conflicts at p.txt: name the copy to resolve ({copies[0]}, {copies[1]})"
    ]
    run_sq("resolve", a, a / copies[0], "--keep", "path").check()
    assert listed(a) == [("p.txt", copies[1])]
    visit(a, b, c, a)
    for d in (a, b, c):
        assert listed(d) == [("p.txt", copies[1])]
        assert copies[0] not in tree(d)

    run_sq("resolve", b, b / copies[1], "--keep", "copy").check()
    visit(b, c, a, b)
    kept = files[copies[1]]
    for d in (a, b, c):
        assert listed(d) == []
        assert status_code(d) == 0
        assert tree(d) == {"p.txt": kept}
    assert run_sq("resolve", a, "p.txt", "--keep", "path").code == NO_SUCH_CONFLICT


def test_a_conflict_without_a_copy_beside_one_with_a_copy_is_named_by_the_path_after(
    tmp_path: Path, carrier: Path
) -> None:
    """c deletes p.txt and meets b's edit (no copy); a's own edit then meets
    b's (a copy). The path names both: the error says to name the copy
    first, and then the path names the one without a copy."""
    a, b, c = drives(tmp_path, carrier, "abc", {"p.txt": "v1"})
    write(a / "p.txt", "A", seconds_ago=200)
    write(b / "p.txt", "B", seconds_ago=100)
    (c / "p.txt").unlink()
    visit(b, c, a)
    found = listed(a)
    assert len(found) == 2 and found[0] == ("p.txt", None)
    copy = found[1][1]
    assert copy is not None and tree(a) == {"p.txt": b"B", copy: b"A"}

    ambiguous = run_sq("resolve", a, "p.txt", "--keep", "path")
    assert ambiguous.code == BAD_USAGE
    assert ambiguous.error_lines == [
        f"sq: error: 2 open conflicts at p.txt: name the copy to resolve ({copy}); "
        "once those are resolved, p.txt names the one without a copy"
    ]
    run_sq("resolve", a, a / copy, "--keep", "path").check()
    assert listed(a) == [("p.txt", None)]
    run_sq("resolve", a, "p.txt", "--keep", "path").check()
    assert listed(a) == []
    assert tree(a) == {"p.txt": b"B"}
