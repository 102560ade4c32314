"""Names on a drive that may fold case (exFAT, NTFS and APFS do by default).

Two names that differ only in case (or in Unicode normalisation) reach one
file there, so a sync must refuse to create a name that collides with
another rather than overwrite it, and must know a case-only rename (whose
source and target are one file) when it sees one. A folder is a name like
any other: a folder refused there must not take in the files meant for it,
which would land in the other folder of that name. The drive is probed
once; each directory is listed once and kept up to date as the sync renames.
"""

from __future__ import annotations

import os
import unicodedata

from squirrel.errors import UnsafePath
from squirrel.plumbing import fsops, paths


def fold(name: bytes) -> str:
    """The form under which a case-folding drive compares names."""
    return unicodedata.normalize("NFC", name.decode("utf-8", "surrogateescape")).casefold()


class CaseFolding:
    """What the names of one replica collide with, under case folding."""

    def __init__(self, root: bytes, probe_dir: str) -> None:
        self.root = root
        self.probe_dir = probe_dir
        self._insensitive: bool | None = None
        self._listed: dict[bytes, dict[str, bytes]] = {}  # directory -> folded name -> name on disk

    @property
    def insensitive(self) -> bool:
        if self._insensitive is None:
            self._insensitive = fsops.is_case_insensitive(self.probe_dir)
        return self._insensitive

    def same_file(self, a: bytes, b: bytes) -> bool:
        """Do two names reach one file (a case-only rename)? Inode numbers
        are not trusted: FUSE exFAT makes them up."""
        (pa, na), (pb, nb) = paths.split(a), paths.split(b)
        return pa == pb and na != nb and fold(na) == fold(nb) and self.insensitive

    def forget(self, rel: bytes) -> None:
        """A name left the drive: it no longer collides with anything."""
        parent, name = paths.split(rel)
        folded = self._listed.get(parent)
        if folded is not None and folded.get(fold(name)) == name:
            del folded[fold(name)]

    def claim(self, rel: bytes, moving_from: bytes | None = None) -> None:
        """A name is about to appear: refuse it when it collides with another
        (except the file being renamed to it: a case-only rename), or when a
        folder above it is another folder's name on the drive."""
        if not self.insensitive:
            return
        self._check_folders_above(rel)
        parent, name = paths.split(rel)
        folded = self._names_in(parent)
        other = folded.get(fold(name))
        if other is not None and other != name and paths.join(parent, other) != moving_from:
            raise UnsafePath(
                f"{paths.display(rel)} collides with {paths.display(paths.join(parent, other))}"
                " on this case-insensitive drive; neither was overwritten"
            )
        folded[fold(name)] = name

    def _names_in(self, parent: bytes) -> dict[str, bytes]:
        folded = self._listed.get(parent)
        if folded is None:
            folded = {fold(n): n for n in os.listdir(fsops.abspath(self.root, parent))}
            self._listed[parent] = folded
        return folded

    def _check_folders_above(self, rel: bytes) -> None:
        """Every folder above `rel` has on the drive the very name `rel`
        gives it: else what is written below would go into another folder."""
        parent = b""
        for comp in rel.split(b"/")[:-1]:
            other = self._names_in(parent).get(fold(comp))
            if other is not None and other != comp:
                raise UnsafePath(
                    f"{paths.display(rel)}: its folder {paths.display(paths.join(parent, comp))} collides with"
                    f" {paths.display(paths.join(parent, other))} on this case-insensitive drive;"
                    " nothing was written into it"
                )
            parent = paths.join(parent, comp)
