"""The names a case-folding drive takes as one (`casefold.CaseFolding`), on
a real folder: ext4 folds nothing, so the drive's answer to the probe is
forced, and what is on disk is what the claims are checked against."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from squirrel.errors import UnsafePath
from squirrel.plumbing import fsops
from squirrel.plumbing.casefold import CaseFolding
from tests.helpers import make_tree


@pytest.fixture
def folding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CaseFolding:
    """A drive holding `Dir/x.jpg`, taken as one that folds case."""
    make_tree(tmp_path / "drive", {"Dir/x.jpg": "x"})
    monkeypatch.setattr(fsops, "is_case_insensitive", lambda directory: True)
    return CaseFolding(os.fsencode(tmp_path / "drive"), str(tmp_path))


def test_a_folder_named_like_one_on_the_drive_is_refused(folding: CaseFolding) -> None:
    with pytest.raises(UnsafePath, match="^dir collides with Dir on this case-insensitive drive"):
        folding.claim(b"dir")


def test_a_name_below_a_folder_the_drive_spells_otherwise_is_refused(folding: CaseFolding) -> None:
    with pytest.raises(UnsafePath) as refused:
        folding.claim(b"dir/y.jpg")
    assert refused.value.message == (
        "dir/y.jpg: its folder dir collides with Dir on this case-insensitive drive; nothing was written into it"
    )
    folding.claim(b"Dir/y.jpg")  # the folder as the drive spells it takes new names


def test_a_folder_claimed_earlier_in_the_sync_refuses_its_twin_and_what_is_below_it(folding: CaseFolding) -> None:
    folding.claim(b"New")
    os.mkdir(os.path.join(folding.root, b"New"))  # as a sync makes the folder it claimed
    folding.claim(b"New/a.jpg")
    with pytest.raises(UnsafePath, match="^new collides with New"):
        folding.claim(b"new")
    with pytest.raises(UnsafePath, match="its folder new collides with New"):
        folding.claim(b"new/b.jpg")
