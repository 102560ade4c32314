"""Drives come and go: the real `sq` through a lost drive, its replacement
and its return (the story is tests/drive_scenarios.py; test_exfat.py runs
it with the lost drive and the new one on a real exFAT file system)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.drive_scenarios import LostDriveStory
from tests.helpers import Ran, run_sq


def real_sq(args: Sequence[str | Path]) -> Ran:
    return run_sq(*args)


def test_a_lost_drive_is_forgotten_replaced_and_taken_back_when_it_returns(tmp_path: Path) -> None:
    LostDriveStory(tmp_path, real_sq, lost=tmp_path / "drive2", new=tmp_path / "drive4").run_all()
