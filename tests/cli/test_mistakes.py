"""The mistakes a newcomer makes, each answered with one clear line and its
documented exit code (docs/exit-codes.md), and nothing written: the same
drive twice, a file where a folder is expected and the other way round,
the carrier given as a drive and a drive as the carrier, a bundle given to
`init --join` of a replica of another vault, a relative path from another
folder.

Every command runs through the `sq` entry point (`main()`) in this process.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Ran, make_tree, run_sq, sq_in_process, tree


def one_error_line(ran: Ran, code: int, *needles: str) -> str:
    """The run failed with `code` and said so on one line holding each needle."""
    assert ran.code == code, ran.err
    lines = ran.err.strip().splitlines()
    assert len(lines) == 1, ran.err
    assert lines[0].startswith("sq: error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def vault(tmp_path: Path) -> tuple[Path, Path, Path]:
    """drive1 (a file and a folder), drive2 (joined, in sync) and the carrier (it visited drive1)."""
    d1, d2, carrier = tmp_path / "drive1", tmp_path / "drive2", tmp_path / "carrier"
    make_tree(d1, {"a.txt": "a", "photos/p.jpg": "p"})
    d2.mkdir()
    sq_in_process("init", d1, "--name", "drive1").check()
    sq_in_process("init", d2, "--name", "drive2", "--join", d1).check()
    sq_in_process("push", d1, d2).check()
    sq_in_process("sync", d1, "--carrier", carrier).check()
    return d1, d2, carrier


@pytest.fixture
def inside(tmp_path: Path) -> Iterator[None]:
    """Run from tmp_path (relative paths are taken from there)."""
    here = os.getcwd()
    os.chdir(tmp_path)
    yield
    os.chdir(here)


# The same drive twice ------------------------------------------------------------------
@pytest.mark.parametrize("command", ["push", "reconcile"])
def test_the_same_path_twice_is_a_usage_error(vault: tuple[Path, Path, Path], command: str) -> None:
    d1, _, _ = vault
    before = tree(d1)
    line = one_error_line(sq_in_process(command, d1, d1), 2, "are the same replica", "drive1", "given twice")
    assert "locked" not in line
    assert tree(d1) == before


@pytest.mark.parametrize("how", ["symlink", "trailing slash", "absolute and relative"])
def test_two_paths_to_one_folder_are_the_same_replica(
    vault: tuple[Path, Path, Path], tmp_path: Path, inside: None, how: str
) -> None:
    d1, _, _ = vault
    if how == "symlink":
        (tmp_path / "link").symlink_to(d1)
        other = "link"
    elif how == "trailing slash":
        other = "drive1/"
    else:
        other = str(d1)
    ran = sq_in_process("push", "drive1", other)
    one_error_line(ran, 2, "SRC and DST are the same replica", "one folder, drive1")


def test_pack_for_the_replica_it_packs_is_a_usage_error(vault: tuple[Path, Path, Path], tmp_path: Path) -> None:
    d1, _, _ = vault
    ran = sq_in_process("pack", d1, "-o", tmp_path / "x.sqb", "--for", d1)
    one_error_line(ran, 2, "the receiver (--for) are the same replica")
    assert not (tmp_path / "x.sqb").exists()


def test_a_clone_is_not_the_same_folder_and_needs_reidentify(vault: tuple[Path, Path, Path], tmp_path: Path) -> None:
    d1, _, _ = vault
    clone = tmp_path / "clone"
    shutil.copytree(d1, clone, symlinks=True)
    for command in ("push", "reconcile"):
        one_error_line(sq_in_process(command, d1, clone), 6, "one is a clone", f"sq reidentify {clone}")


def test_init_join_of_the_folder_itself_is_a_usage_error(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    one_error_line(sq_in_process("init", d, "--join", d), 2, "names PATH itself")
    assert not (d / ".squirrel").exists()


# A file where a folder is expected, and the other way round -----------------------------
def test_a_file_given_as_a_drive(vault: tuple[Path, Path, Path]) -> None:
    d1, _, _ = vault
    for command in ("scan", "status", "sync", "conflicts"):
        one_error_line(sq_in_process(command, d1 / "a.txt"), 5, f"not a directory: {d1 / 'a.txt'}")


def test_a_bundle_given_as_a_drive_says_how_bundles_are_applied(vault: tuple[Path, Path, Path], tmp_path: Path) -> None:
    d1, _, _ = vault
    bundle = tmp_path / "all.sqb"
    sq_in_process("pack", d1, "-o", bundle).check()
    one_error_line(sq_in_process("push", d1, bundle), 5, "not a directory", "sq apply BUNDLE PATH")


def test_a_folder_given_as_a_bundle(vault: tuple[Path, Path, Path]) -> None:
    d1, d2, _ = vault
    one_error_line(sq_in_process("apply", d1, d2), 5, f"{d1} is a folder, not a bundle file")
    for args in (["bundle", "verify", d1], ["bundle", "list", d1], ["cat-object", "0" * 64, "--bundle", d1]):
        one_error_line(sq_in_process(*args), 5, f"{d1} is a folder, not a bundle file")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["apply", "{missing}", "{d2}"], "no such bundle file: {missing}"),
        (["apply", "--dry-run", "{missing}", "{d2}"], "no such bundle file: {missing}"),
        (["bundle", "verify", "{missing}"], "no such bundle file: {missing}"),
        (["bundle", "list", "{missing}"], "no such bundle file: {missing}"),
        (["cat-object", "0" * 64, "--bundle", "{missing}"], "no such bundle file: {missing}"),
        (["init", "{new}", "--join", "{missing}"], "no such bundle file, replica or carrier: {missing}"),
        (["pack", "{d1}", "-o", "{new}.sqb", "--base", "{missing}"], "no such knowledge file: {missing}"),
        (["apply", "{d1}/a.txt/x.sqb", "{d2}"], "no such bundle file: {d1}/a.txt/x.sqb"),
    ],
)
def test_a_missing_bundle_is_a_wrong_path_not_a_damaged_bundle(
    vault: tuple[Path, Path, Path], tmp_path: Path, args: list[str], said: str
) -> None:
    d1, d2, _ = vault
    new = tmp_path / "new"
    new.mkdir()
    names = {"missing": tmp_path / "nosuch.sqb", "d1": d1, "d2": d2, "new": new}
    before = tree(d2)
    one_error_line(sq_in_process(*(a.format(**names) for a in args)), 5, said.format(**names))
    assert tree(d2) == before and list(new.iterdir()) == []


def test_apply_with_its_arguments_swapped(vault: tuple[Path, Path, Path], tmp_path: Path) -> None:
    d1, d2, _ = vault
    bundle = tmp_path / "all.sqb"
    sq_in_process("pack", d1, "-o", bundle).check()
    one_error_line(sq_in_process("apply", d2, bundle), 5, "the bundle comes first (`sq apply BUNDLE PATH`)")


def test_a_folder_given_as_a_knowledge_file(vault: tuple[Path, Path, Path], tmp_path: Path) -> None:
    d1, d2, _ = vault
    ran = sq_in_process("pack", d1, "-o", tmp_path / "x.sqb", "--base", d2)
    one_error_line(ran, 5, "is a folder, not a knowledge file", "sq knowledge DRIVE -o FILE")


@pytest.mark.parametrize(("command", "what"), [("pack", "bundle"), ("knowledge", "knowledge")])
def test_an_output_file_that_is_a_folder_or_in_no_folder(
    vault: tuple[Path, Path, Path], tmp_path: Path, command: str, what: str
) -> None:
    d1, _, _ = vault
    folder = tmp_path / "out"
    folder.mkdir()
    one_error_line(sq_in_process(command, d1, "-o", folder), 5, f"{folder} is a directory; give a {what} file name")
    missing = tmp_path / "nodir" / "x"
    one_error_line(sq_in_process(command, d1, "-o", missing), 5, f"no such directory {missing.parent}")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == ["out"]
    assert list(folder.iterdir()) == [] and not missing.parent.exists()


@pytest.mark.parametrize("fault", ["fsync:1:eio", "rename:1:eio"])
def test_a_knowledge_file_that_cannot_be_written_leaves_no_temporary(
    vault: tuple[Path, Path, Path], tmp_path: Path, fault: str
) -> None:
    d1, _, _ = vault
    out = tmp_path / "out" / "k.json"
    out.parent.mkdir()
    ran = run_sq("knowledge", d1, "-o", out, fault=fault)
    assert ran.code == 16 and f"injected at {fault.split(':')[0]}" in ran.err, ran.err
    assert list(out.parent.iterdir()) == []


# The carrier given as a drive, a drive given as the carrier ----------------------------
@pytest.mark.parametrize("command", ["sync", "scan", "status", "init"])
def test_the_carrier_given_as_a_drive(vault: tuple[Path, Path, Path], command: str) -> None:
    _, _, carrier = vault
    code = 5 if command == "init" else 3
    one_error_line(sq_in_process(command, carrier), code, "the carrier's folder, not a drive")
    assert not (carrier / ".squirrel").exists()


def test_a_folder_inside_the_carrier_or_a_drive_is_not_a_drive(vault: tuple[Path, Path, Path]) -> None:
    d1, _, carrier = vault
    one_error_line(sq_in_process("sync", d1 / "photos"), 3, f"inside the replica {d1}", "the replica's own folder")
    one_error_line(sq_in_process("scan", carrier / "vaults"), 3, f"inside the carrier's folder {carrier}")
    one_error_line(sq_in_process("init", d1 / "photos"), 5, f"inside the replica {d1}")
    assert not (d1 / "photos/.squirrel").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["sync", "{d1}", "--carrier", "{d2}"],
        ["carrier", "status", "--carrier", "{d2}"],
        ["carrier", "config", "--carrier", "{d2}", "--max-size", "1G"],
        ["cat-object", "0" * 64, "--carrier", "{d2}"],
    ],
)
def test_a_drive_given_as_the_carrier(vault: tuple[Path, Path, Path], args: list[str]) -> None:
    d1, d2, _ = vault
    before = tree(d2)
    argv = [a.format(d1=d1, d2=d2) for a in args]
    one_error_line(sq_in_process(*argv), 5, f"{d2} is a replica (a drive), not a carrier")
    assert tree(d2) == before and not (d2 / "carrier.json").exists()


def test_no_carrier_is_made_inside_a_drive(vault: tuple[Path, Path, Path]) -> None:
    d1, d2, _ = vault
    inner = d2 / "photos" / "carrier"
    one_error_line(sq_in_process("sync", d1, "--carrier", inner), 5, f"inside the replica {d2}")
    assert not inner.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["sync", "{d1}", "--carrier", "{docs}"],
        ["sync", "{d1}", "--carrier", "{docs}", "--dry-run"],
        ["carrier", "config", "--carrier", "{docs}", "--max-size", "1G"],
        ["carrier", "status", "--carrier", "{docs}"],
    ],
)
def test_an_ordinary_folder_given_as_the_carrier_is_left_alone(
    vault: tuple[Path, Path, Path], tmp_path: Path, args: list[str]
) -> None:
    d1, _, _ = vault
    docs = make_tree(tmp_path / "docs", {"notes.txt": "important"})
    argv = [a.format(d1=d1, docs=docs) for a in args]
    one_error_line(sq_in_process(*argv), 5, f"not a carrier: {docs} (no carrier.json")
    assert tree(docs) == {"notes.txt": b"important"}


def test_a_carrier_is_made_in_a_new_or_empty_folder_and_by_default_on_first_use(
    vault: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    d1, _, _ = vault
    empty = tmp_path / "empty"
    empty.mkdir()
    for where in (empty, tmp_path / "new"):
        sq_in_process("sync", d1, "--carrier", where).check()
        assert (where / "carrier.json").is_file()
    sq_in_process("sync", d1).check()
    assert (tmp_path / "xdg-data" / "squirrel" / "carrier" / "carrier.json").is_file()


# init --join with a bundle of another vault ---------------------------------------------
def test_init_join_on_a_replica_of_another_vault(vault: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, d2, _ = vault
    other = make_tree(tmp_path / "other", {"x.txt": "x"})
    sq_in_process("init", other, "--name", "other").check()
    bundle = tmp_path / "other.sqb"
    sq_in_process("pack", other, "-o", bundle).check()
    line = one_error_line(sq_in_process("init", d2, "--join", bundle), 4, f"already a replica: {d2} (drive2, of vault")
    assert "a replica stays in its vault" in line


def test_init_join_on_a_replica_of_that_vault_says_to_sync_it(vault: tuple[Path, Path, Path], tmp_path: Path) -> None:
    d1, d2, _ = vault
    bundle = tmp_path / "all.sqb"
    sq_in_process("pack", d1, "-o", bundle).check()
    one_error_line(sq_in_process("init", d2, "--join", bundle), 4, "the one to join", "sync it instead")


def test_init_of_a_replica_says_what_it_is(vault: tuple[Path, Path, Path]) -> None:
    d1, _, _ = vault
    one_error_line(sq_in_process("init", d1), 4, f"already a replica: {d1} (drive1, of vault", "sq scan")


# Relative paths from another folder -----------------------------------------------------
def test_a_relative_drive_path_says_where_it_was_looked_for(tmp_path: Path, inside: None) -> None:
    ran = sq_in_process("sync", "drive9")
    one_error_line(ran, 5, f"no such directory: {tmp_path / 'drive9'}", "taken from the current folder")


def test_a_subpath_from_a_folder_inside_the_drive(vault: tuple[Path, Path, Path]) -> None:
    """In drive1/photos, `sq push drive1 drive2 p.jpg` means photos/p.jpg."""
    d1, d2, _ = vault
    (d1 / "photos/p.jpg").write_text("edited")
    (d1 / "p.jpg").unlink(missing_ok=True)
    here = os.getcwd()
    os.chdir(d1 / "photos")
    try:
        doc = sq_in_process("push", d1, d2, "p.jpg", "--json").check().json
    finally:
        os.chdir(here)
    assert doc["updated"] == 1
    assert (d2 / "photos/p.jpg").read_text() == "edited"


def test_a_subpath_the_sender_knows_nothing_of_is_said_so(vault: tuple[Path, Path, Path]) -> None:
    d1, d2, _ = vault
    ran = sq_in_process("push", d1, d2, "photoz").check()
    assert ran.err.splitlines()[0].startswith("photoz: the sender knows nothing there")
    assert sq_in_process("push", d1, d2, "photoz", "--json").check().json["created"] == 0


def test_resolve_takes_a_file_from_the_current_folder_inside_the_drive(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, {"pics/p.jpg": "from a"})
    make_tree(b, {"pics/p.jpg": "from b"})
    sq_in_process("init", a, "--name", "a").check()
    sq_in_process("init", b, "--name", "b", "--join", a).check()
    sq_in_process("push", a, b).check()  # create/create: a conflict copy beside pics/p.jpg on b
    here = os.getcwd()
    os.chdir(b / "pics")
    try:
        ran = sq_in_process("resolve", b, "p.jpg", "--keep", "path").check()
    finally:
        os.chdir(here)
    assert ran.err.startswith("resolved pics/p.jpg")
