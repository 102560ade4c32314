"""Replica-relative paths and the names `sq` never touches.

Inside `sq` a path is `bytes`, relative to the replica root, with `/` as the
separator and `b""` for the root itself. Names are bytes because a drive may
hold names that are not valid UTF-8; JSON output adds `path_b64` for them.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Iterable
from typing import TypeVar

from squirrel.errors import UnsafePath

T = TypeVar("T")

MARKER = b".squirrel"
CONFLICT_TAG = ".sq-conflict-"
# The longest name (one path component) a conflict copy may have, in bytes:
# the limit of ext4, btrfs, APFS and most others. A constant, never asked of
# the drive, so that every replica names the same copy the same way.
NAME_MAX = 255

# OS clutter that is never synchronized, matched against single names.
DEFAULT_IGNORES: tuple[str, ...] = (
    ".DS_Store",
    "Thumbs.db",
    "desktop.ini",
    "._*",
    "$RECYCLE.BIN",
    "System Volume Information",
    ".Trashes",
    ".Spotlight-V100",
    ".fseventsd",
    ".TemporaryItems",
)


def join(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


def split(path: bytes) -> tuple[bytes, bytes]:
    """(parent, name); the root's parent is itself."""
    parent, _, name = path.rpartition(b"/")
    return parent, name


def parent_of(path: bytes) -> bytes:
    return path.rpartition(b"/")[0]


def ancestors(path: bytes) -> Iterable[bytes]:
    """Proper ancestors, nearest first, ending with the root b""."""
    while path:
        path = parent_of(path)
        yield path


def nearest(path: bytes, lookup: Callable[[bytes], T | None]) -> T | None:
    """The first value `lookup` has for `path` or one of its ancestors,
    nearest first, or None: how a path without a stored sync time inherits
    the nearest stored one."""
    p = path
    while True:
        value = lookup(p)
        if value is not None or not p:
            return value
        p = parent_of(p)


def is_under(path: bytes, top: bytes) -> bool:
    return not top or path == top or path.startswith(top + b"/")


def uncarriable(name: bytes) -> bool:
    """Does a name hold a byte that `check_relpath` refuses wherever it
    stands (NUL, or a backslash: a folder separator on Windows and exFAT)?
    A scan never records such a name, so no sync is ever asked to carry it."""
    return b"\x00" in name or b"\\" in name


UNCARRIABLE_REASON = (
    "name holds a backslash, a folder separator on other file systems (Windows, exFAT):"
    " it cannot be carried to other drives; not synchronized (rename it to sync it)"
)


def check_relpath(path: bytes) -> bytes:
    """Refuse any path that could escape the replica or reach `.squirrel/`."""
    if not path:
        return path
    if uncarriable(path):
        raise UnsafePath(f"unsafe path {display(path)!r}: NUL or backslash")
    if path.startswith(b"/"):
        raise UnsafePath(f"unsafe path {display(path)!r}: absolute")
    for comp in path.split(b"/"):
        if comp in (b"", b".", b".."):
            raise UnsafePath(f"unsafe path {display(path)!r}: empty, '.' or '..' component")
    if path.split(b"/", 1)[0].lower() == MARKER:  # a case-folding drive would reach .squirrel/
        raise UnsafePath(f"unsafe path {display(path)!r}: inside .squirrel/")
    return path


class RelpathChecker:
    """`check_relpath` for many paths that share their folders (a
    manifest's): a path whose folder passed already needs only its last
    name looked at. Whatever the order, it accepts and refuses exactly
    what `check_relpath` does, with the same error."""

    def __init__(self) -> None:
        self._passed: set[bytes] = set()  # never the root: "/x" is no path below it

    def __call__(self, path: bytes) -> bytes:
        folder, slash, name = path.rpartition(b"/")
        if not (
            name
            and name != b"."
            and name != b".."
            and not uncarriable(name)
            and (folder in self._passed if slash else name.lower() != MARKER)
        ):
            check_relpath(path)  # refuses it, with the reason; or a folder not seen yet
        if path:
            self._passed.add(path)
        return path


def user_relpath(root: str, given: str) -> bytes:
    """A SUBPATH or FILE given on the command line, as a replica-relative
    path. A relative one is taken from the replica's root; when nothing is
    there by that name but there is from the current folder, inside the
    replica, it is taken from there (what a user who went into the drive's
    folders means)."""
    if os.path.isabs(given):
        rel = _inside(root, os.path.abspath(given))
    else:
        rel = _inside(root, os.path.abspath(os.path.join(root, given)))
        here = os.path.abspath(given)
        if not os.path.lexists(os.path.join(root, given)) and os.path.lexists(here):
            rel = _inside(root, here) or rel
    if rel is None:
        raise UnsafePath(f"{given} is outside the replica {root}")
    return check_relpath(os.fsencode(rel).replace(os.sep.encode(), b"/")) if rel != "." else b""


def _inside(root: str, full: str) -> str | None:
    """`full` relative to `root`, or None when it is outside. Symlinks above
    either (a drive mounted through a link) do not count; the last name of
    `full` is never followed."""
    base = os.path.realpath(root)
    rel = os.path.relpath(os.path.join(os.path.realpath(os.path.dirname(full)), os.path.basename(full)), base)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        rel = os.path.relpath(full, os.path.abspath(root))  # the link itself may be inside
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            return None
    return rel


def display(path: bytes) -> str:
    """A path for humans: undecodable bytes shown as escapes."""
    return path.decode("utf-8", "backslashreplace") if path else "."


def json_path(path: bytes, key: str = "path") -> dict[str, str]:
    """`{"path": ...}` plus `path_b64` when the name is not valid UTF-8."""
    try:
        return {key: path.decode("utf-8")}
    except UnicodeDecodeError:
        return {
            key: path.decode("utf-8", "replace"),
            f"{key}_b64": base64.b64encode(path).decode("ascii"),
        }


def conflict_name(name: bytes, short_id: str) -> bytes:
    """`IMG_0042.jpg` -> `IMG_0042.sq-conflict-3fa9c2d1.jpg`, at most
    NAME_MAX bytes for a `short_id` of up to 64 hex digits: a name too long
    for that loses the end of its stem, or, when the extension leaves no room
    for any of the stem, the end of the whole name and no extension is kept."""
    tag = CONFLICT_TAG.encode() + short_id.encode()
    stem, dot, ext = name.rpartition(b".")
    if dot and stem:
        kept = _cut(stem, NAME_MAX - len(tag) - 1 - len(ext))
        if kept:
            return kept + tag + b"." + ext
    return _cut(name, NAME_MAX - len(tag)) + tag


def _cut(name: bytes, size: int) -> bytes:
    """The first `size` bytes of `name`, fewer rather than a UTF-8 character
    cut in two. Names are bytes and need not be UTF-8: stepping back over at
    most three continuation bytes never splits a character that is there,
    whatever surrounds it."""
    if len(name) <= size:
        return name
    end = max(size, 0)
    while end > size - 3 and end > 0 and name[end] & 0xC0 == 0x80:
        end -= 1
    return name[:end]


class IgnoreRules:
    """Default clutter names plus gitignore-style patterns from `.squirrel/ignore`.

    Supported: blank lines and `#` comments, `!` to re-include, a trailing `/`
    for directories only, a leading `/` (or any inner `/`) to anchor at the
    root, `*`, `?`, `[...]` and `**`.
    """

    def __init__(self, lines: Iterable[str] = ()) -> None:
        self._rules: list[tuple[re.Pattern[bytes], bool, bool, bool]] = []
        self._fast: list[tuple[re.Pattern[bytes], bool, bool]] | None = None
        self._slow = True
        for pat in DEFAULT_IGNORES:
            self._add(pat, negate=False)
        for raw in lines:
            line = raw.rstrip("\n").rstrip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:]
            self._add(line, negate)

    def _add(self, pat: str, negate: bool) -> None:
        dir_only = pat.endswith("/")
        pat = pat.rstrip("/")
        anchored = "/" in pat
        pat = pat.lstrip("/")
        if not pat:
            return
        rx = _glob_to_regex(pat)
        self._rules.append((re.compile(rx.encode("utf-8", "surrogateescape"), re.S), anchored, dir_only, negate))

    @classmethod
    def for_replica(cls, root: str) -> IgnoreRules:
        path = os.path.join(root, ".squirrel", "ignore")
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                return cls(f.readlines())
        except FileNotFoundError:
            return cls()

    def _combined(self) -> list[tuple[re.Pattern[bytes], bool, bool]] | None:
        """Without negations, order does not matter: one alternation per kind of rule."""
        if any(neg for _, _, _, neg in self._rules):
            return None
        groups: dict[tuple[bool, bool], list[bytes]] = {}
        for rx, anchored, dir_only, _ in self._rules:
            groups.setdefault((anchored, dir_only), []).append(rx.pattern)
        return [
            (re.compile(b"|".join(b"(?:" + p + b")" for p in pats), re.S), anchored, dir_only)
            for (anchored, dir_only), pats in groups.items()
        ]

    def ignored(self, path: bytes, is_dir: bool) -> bool:
        name = path.rpartition(b"/")[2]
        if name == MARKER or CONFLICT_TAG.encode() + b"tmp" in name:
            return True
        if self._fast is None:
            self._fast = self._combined() or []
            self._slow = not self._fast
        if not self._slow:
            for rx, anchored, dir_only in self._fast:
                if (is_dir or not dir_only) and rx.fullmatch(path if anchored else name):
                    return True
            return False
        result = False
        for rx, anchored, dir_only, negate in self._rules:
            if dir_only and not is_dir:
                continue
            if rx.fullmatch(path if anchored else name):
                result = not negate
        return result


def _glob_to_regex(pat: str) -> str:
    out = []
    i = 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("/**", i) and i + 3 == len(pat):
            out.append("/.*")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = pat.find("]", i + 1)
            if j == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = pat[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j + 1
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)
