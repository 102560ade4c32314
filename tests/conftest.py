"""Every test runs with no `SQ_*` variables set and without progress output."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from squirrel.plumbing.replica import Replica


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("SQ_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("SQ_NO_PROGRESS", "1")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture
def replica_root(tmp_path: Path) -> Iterator[Path]:
    """An empty replica (the lock is released)."""
    root = tmp_path / "drive"
    root.mkdir()
    Replica.create(str(root), name="drive").close()
    yield root
