"""Every test runs with no `SQ_*` variables set and without progress output.

`no_hard_links` makes the test's file system one without hard links."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from squirrel.plumbing import groups, place, sweep
from squirrel.plumbing.replica import Replica
from tests.helpers import NoHardLinks


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("SQ_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SQ_NO_PROGRESS", "1")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    # A command run in this process with SQ_PURE_PYTHON sets the C parts
    # aside for the rest of the process: each test starts with them as built.
    monkeypatch.setattr(sweep, "_compare", sweep._compare)
    monkeypatch.setattr(groups, "_copy_group", groups._copy_group)
    monkeypatch.setattr(place, "_place", place._place)


@pytest.fixture
def replica_root(tmp_path: Path) -> Iterator[Path]:
    """An empty replica (the lock is released)."""
    root = tmp_path / "drive"
    root.mkdir()
    Replica.create(str(root), name="drive").close()
    yield root


@pytest.fixture
def no_hard_links(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> NoHardLinks:
    """`os.link` fails with EPERM, as on exFAT: `place.replace_keeping_old`
    takes its branch for such drives. `place.os` is the `os` module, so
    every hard link in this process and its forked children is refused, the
    intent log's too, as on a real drive without them."""
    refuse = NoHardLinks(tmp_path / "hard-links-refused")
    monkeypatch.setattr(place.os, "link", refuse)
    return refuse
