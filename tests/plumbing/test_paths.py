"""Replica-relative byte paths, JSON paths, conflict names and ignore rules."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from squirrel.errors import UnsafePath
from squirrel.plumbing import paths
from squirrel.plumbing.paths import IgnoreRules


def test_join_split_and_parent() -> None:
    assert paths.join(b"", b"a") == b"a"
    assert paths.join(b"a/b", b"c") == b"a/b/c"
    assert paths.split(b"a/b/c") == (b"a/b", b"c")
    assert paths.split(b"a") == (b"", b"a")
    assert paths.split(b"") == (b"", b"")
    assert paths.parent_of(b"a/b") == b"a"
    assert paths.parent_of(b"a") == b""


def test_ancestors_are_listed_nearest_first_ending_with_the_root() -> None:
    assert list(paths.ancestors(b"a/b/c")) == [b"a/b", b"a", b""]
    assert list(paths.ancestors(b"a")) == [b""]
    assert list(paths.ancestors(b"")) == []


def test_is_under_compares_whole_components() -> None:
    assert paths.is_under(b"a/b", b"a")
    assert paths.is_under(b"a", b"a")
    assert paths.is_under(b"anything", b"")
    assert not paths.is_under(b"ab", b"a")
    assert not paths.is_under(b"a", b"a/b")


@pytest.mark.parametrize("ok", [b"", b"a", b"a/b.jpg", b".squirrelish", b"dir/.squirrel-notes", b"caf\xe9"])
def test_check_relpath_accepts_ordinary_paths(ok: bytes) -> None:
    assert paths.check_relpath(ok) == ok


@pytest.mark.parametrize(
    "bad",
    [
        b"/etc/passwd",
        b"..",
        b"../x",
        b"a/../../x",
        b"a/./b",
        b".",
        b"a//b",
        b"a/",
        b"a\\b",
        b"a\x00b",
        b".squirrel",
        b".squirrel/index/data.mdb",
    ],
)
def test_check_relpath_refuses_paths_that_escape_or_reach_the_marker(bad: bytes) -> None:
    with pytest.raises(UnsafePath):
        paths.check_relpath(bad)


def test_user_relpath_turns_command_line_paths_into_replica_paths(tmp_path: Path) -> None:
    root = str(tmp_path / "r")
    assert paths.user_relpath(root, "photos/2024") == b"photos/2024"
    assert paths.user_relpath(root, os.path.join(root, "a", "b")) == b"a/b"
    assert paths.user_relpath(root, ".") == b""
    assert paths.user_relpath(root, root) == b""
    assert paths.user_relpath(root, "..hidden/x") == b"..hidden/x", "a name starting with '..' is inside"
    assert paths.user_relpath(root, "...") == b"..."
    with pytest.raises(UnsafePath):
        paths.user_relpath(root, "../elsewhere")
    with pytest.raises(UnsafePath):
        paths.user_relpath(root, str(tmp_path / "other"))
    with pytest.raises(UnsafePath):
        paths.user_relpath(root, ".squirrel/index")


def test_display_escapes_undecodable_bytes() -> None:
    assert paths.display(b"") == "."
    assert paths.display("café".encode()) == "café"
    assert paths.display(b"caf\xe9") == "caf\\xe9"


def test_json_path_adds_base64_only_for_names_that_are_not_utf8() -> None:
    assert paths.json_path("ünï/cödé.jpg".encode()) == {"path": "ünï/cödé.jpg"}
    raw = b"dir/caf\xe9.jpg"
    doc = paths.json_path(raw)
    assert base64.b64decode(doc["path_b64"]) == raw
    assert doc["path"].startswith("dir/caf")
    assert paths.json_path(raw, "from").keys() == {"from", "from_b64"}


@pytest.mark.parametrize(
    ("name", "want"),
    [
        (b"IMG_0042.jpg", b"IMG_0042.sq-conflict-3fa9c2d1.jpg"),
        (b"archive.tar.gz", b"archive.tar.sq-conflict-3fa9c2d1.gz"),
        (b"README", b"README.sq-conflict-3fa9c2d1"),
        (b".bashrc", b".bashrc.sq-conflict-3fa9c2d1"),
    ],
)
def test_conflict_names_keep_the_extension(name: bytes, want: bytes) -> None:
    assert paths.conflict_name(name, "3fa9c2d1") == want
    assert paths.CONFLICT_TAG.encode() in want


def test_a_conflict_name_that_fits_is_never_cut() -> None:
    name = b"L" * 230 + b".jpg"
    assert paths.conflict_name(name, "3fa9c2d1") == b"L" * 230 + b".sq-conflict-3fa9c2d1.jpg"
    assert len(paths.conflict_name(name, "3fa9c2d1")) == paths.NAME_MAX


@pytest.mark.parametrize(
    ("name", "short_id", "want"),
    [
        (b"L" * 240 + b".jpg", "3fa9c2d1", b"L" * 230 + b".sq-conflict-3fa9c2d1.jpg"),
        (b"L" * 255, "3fa9c2d1", b"L" * 234 + b".sq-conflict-3fa9c2d1"),
        (b"L" * 240 + b".jpg", "0" * 64, b"L" * 174 + b".sq-conflict-" + b"0" * 64 + b".jpg"),
        # An extension that leaves the stem no room: the whole name is cut.
        (b"a." + b"x" * 240, "3fa9c2d1", b"a." + b"x" * 232 + b".sq-conflict-3fa9c2d1"),
        (b"." + b"x" * 254, "3fa9c2d1", b"." + b"x" * 233 + b".sq-conflict-3fa9c2d1"),
    ],
)
def test_a_conflict_name_too_long_loses_the_end_of_its_stem(name: bytes, short_id: str, want: bytes) -> None:
    assert paths.conflict_name(name, short_id) == want
    assert len(want) <= paths.NAME_MAX


@pytest.mark.parametrize("char", ["é", "€", "😀"])
@pytest.mark.parametrize("pad", range(4))
def test_a_conflict_name_is_never_cut_inside_a_utf8_character(char: str, pad: int) -> None:
    name = ("x" * pad + char * 120 + ".jpg").encode()
    copy = paths.conflict_name(name, "3fa9c2d1")
    stem = copy.decode("utf-8").removesuffix(".sq-conflict-3fa9c2d1.jpg")
    assert stem == "x" * pad + char * ((230 - pad) // len(char.encode()))


def test_a_conflict_name_that_is_not_utf8_is_cut_without_splitting_what_is_utf8() -> None:
    latin1 = "é".encode("latin-1") * 240 + b".jpg"
    assert paths.conflict_name(latin1, "3fa9c2d1") == latin1[:230] + b".sq-conflict-3fa9c2d1.jpg"
    mixed = b"\xff" + "é".encode() * 120 + b".jpg"
    copy = paths.conflict_name(mixed, "3fa9c2d1")
    assert copy == b"\xff" + "é".encode() * 114 + b".sq-conflict-3fa9c2d1.jpg"


def _legal(part: bytes | str) -> bytes:
    """Generated bytes or text as a name: no `/` or NUL, not empty, at most
    NAME_MAX bytes (text stays UTF-8: a character the limit cuts is left out)."""
    raw = part.encode() if isinstance(part, str) else part
    raw = (raw.replace(b"/", b"_").replace(b"\x00", b"_") or b"_")[: paths.NAME_MAX]
    if isinstance(part, str):
        raw = raw.decode("utf-8", "ignore").encode() or b"_"
    return raw


TEXT = st.characters(blacklist_categories=("Cs",))
PARTS = st.one_of(
    st.binary(max_size=paths.NAME_MAX),
    st.binary(min_size=paths.NAME_MAX - 40, max_size=paths.NAME_MAX),
    st.text(TEXT, max_size=paths.NAME_MAX),
    st.text(TEXT, min_size=60, max_size=paths.NAME_MAX),
)
EXTENSIONS = st.sampled_from([".jpg", ".tar.gz", ".", "." + "x" * 200, ".été"])


def _with_extension(part: bytes | str, ext: str) -> bytes:
    return _legal(part + ext if isinstance(part, str) else part + ext.encode())


NAMES = st.one_of(PARTS.map(_legal), st.builds(_with_extension, PARTS, EXTENSIONS))
SHORT_IDS = st.text("0123456789abcdef", min_size=1, max_size=64)


@given(NAMES, SHORT_IDS)
def test_any_conflict_name_fits_holds_the_marker_and_is_the_same_every_time(name: bytes, short_id: str) -> None:
    copy = paths.conflict_name(name, short_id)
    assert len(copy) <= paths.NAME_MAX
    assert (paths.CONFLICT_TAG + short_id).encode() in copy
    assert copy == paths.conflict_name(bytes(name), str(short_id))
    assert b"/" not in copy and b"\x00" not in copy
    try:
        name.decode("utf-8")
    except UnicodeDecodeError:
        return
    copy.decode("utf-8")  # a UTF-8 name stays UTF-8: no character cut in two


# Ignore rules ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "is_dir"),
    [
        (b".DS_Store", False),
        (b"photos/.DS_Store", False),
        (b"._IMG_0001.jpg", False),
        (b"deep/dir/._foo", False),
        (b"Thumbs.db", False),
        (b"desktop.ini", False),
        (b"$RECYCLE.BIN", True),
        (b"System Volume Information", True),
        (b".Trashes", True),
        (b".Spotlight-V100", True),
        (b".fseventsd", True),
        (b".TemporaryItems", True),
        (b".squirrel", True),
        (b"nested/.squirrel", True),
    ],
)
def test_default_clutter_and_the_marker_are_always_ignored(path: bytes, is_dir: bool) -> None:
    assert IgnoreRules().ignored(path, is_dir)


@pytest.mark.parametrize("path", [b"_foo", b"DS_Store", b"photo.jpg", b"a._b", b"Thumbs.db.jpg"])
def test_ordinary_names_are_not_ignored_by_default(path: bytes) -> None:
    assert not IgnoreRules().ignored(path, False)


RULES = """\
# editor leftovers
*.tmp
!keep.tmp

/build
cache/
doc/*.txt
**/node_modules
logs/**
x?.bin
img[0-9].jpg
v[!a].md
trailing-space.txt   \n\
a/**/z
"""


@pytest.mark.parametrize(
    ("path", "is_dir", "ignored"),
    [
        (b"a.tmp", False, True),
        (b"sub/dir/a.tmp", False, True),
        (b"keep.tmp", False, False),
        (b"sub/keep.tmp", False, False),
        (b"build", True, True),
        (b"build", False, True),
        (b"sub/build", True, False),
        (b"cache", True, True),
        (b"sub/cache", True, True),
        (b"cache", False, False),
        (b"doc/a.txt", False, True),
        (b"doc/sub/a.txt", False, False),
        (b"sub/doc/a.txt", False, False),
        (b"node_modules", True, True),
        (b"x/y/node_modules", True, True),
        (b"logs", True, False),
        (b"logs/today", False, True),
        (b"logs/2024/01", False, True),
        (b"x1.bin", False, True),
        (b"x12.bin", False, False),
        (b"img5.jpg", False, True),
        (b"imgx.jpg", False, False),
        (b"vb.md", False, True),
        (b"va.md", False, False),
        (b"# editor leftovers", False, False),
        (b"trailing-space.txt", False, True),
        (b"a/z", False, True),
        (b"a/b/c/z", False, True),
        (b"b/z", False, False),
    ],
)
def test_gitignore_style_patterns(path: bytes, is_dir: bool, ignored: bool) -> None:
    assert IgnoreRules(RULES.splitlines(keepends=True)).ignored(path, is_dir) is ignored


def test_a_later_rule_wins() -> None:
    assert not IgnoreRules(["*.jpg", "!a.jpg"]).ignored(b"a.jpg", False)
    assert IgnoreRules(["!a.jpg", "*.jpg"]).ignored(b"a.jpg", False)


def test_user_rules_can_re_include_a_default() -> None:
    assert not IgnoreRules(["!desktop.ini"]).ignored(b"desktop.ini", False)


def test_for_replica_reads_the_ignore_file(tmp_path: Path) -> None:
    (tmp_path / ".squirrel").mkdir()
    assert not IgnoreRules.for_replica(str(tmp_path)).ignored(b"a.raw", False)
    assert IgnoreRules.for_replica(str(tmp_path)).ignored(b".DS_Store", False)
    (tmp_path / ".squirrel" / "ignore").write_text("*.raw\n")
    assert IgnoreRules.for_replica(str(tmp_path)).ignored(b"a.raw", False)


def test_ignore_patterns_match_names_that_are_not_utf8(tmp_path: Path) -> None:
    (tmp_path / ".squirrel").mkdir()
    (tmp_path / ".squirrel" / "ignore").write_bytes(b"caf\xe9-*.jpg\n\xc3\xa9t\xc3\xa9/\n")
    rules = IgnoreRules.for_replica(str(tmp_path))
    assert rules.ignored(b"caf\xe9-1.jpg", False)
    assert not rules.ignored("café-1.jpg".encode(), False)
    assert rules.ignored("sub/été".encode(), True)


_PIECES = [b"a", b"b", b".", b"..", b"", b".squirrel", b".SQUIRREL", b"x\\y", b"z\x00", b"/"]


@given(st.lists(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=4).map(b"/".join), max_size=30))
def test_the_checker_of_many_paths_refuses_exactly_what_check_relpath_refuses(given_paths: list[bytes]) -> None:
    """A manifest's paths come in any order, damaged ones too: the checker
    that looks only at the last name of a path whose folder passed accepts
    and refuses each exactly as the whole check does, with its message."""
    check = paths.RelpathChecker()
    for p in given_paths:
        try:
            expected: str | None = None
            paths.check_relpath(p)
        except UnsafePath as e:
            expected = str(e)
        try:
            got: str | None = None
            assert check(p) == p
        except UnsafePath as e:
            got = str(e)
        assert got == expected, p
