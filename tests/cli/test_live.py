"""The progress line's drawing (squirrel/cli/live.py), on a stream that
stands for the terminal: what one line says, that it is redrawn while
nothing reports, never drawn for a phase with nothing to do, and cleared
when the command ends, by an error too. The real terminal is in
tests/e2e/test_progress.py."""

from __future__ import annotations

import io
import time

import pytest

from squirrel.cli.live import CLEAR, LiveLine, _State, duration, line_text
from squirrel.plumbing.progress import Meter, Progress
from squirrel.plumbing.scan import ScanStats


class Screen(io.StringIO):
    def fileno(self) -> int:
        raise OSError("not a terminal")

    @property
    def drawings(self) -> list[str]:
        return [d for d in self.getvalue().split(CLEAR) if d]


def test_a_copy_line_says_phase_files_bytes_rate_and_time_left() -> None:
    s = _State("copying to drive2", 1, 4, 612 << 20, 2 << 30, False)
    assert line_text(s, 95.3 * (1 << 20), 15.2) == (
        "copying to drive2: 1 of 4 files, 612.0 MiB of 2.0 GiB, 95.3 MiB/s, 15 s left"
    )
    assert line_text(s, None, None) == "copying to drive2: 1 of 4 files, 612.0 MiB of 2.0 GiB"


def test_a_scan_line_follows_the_same_format() -> None:
    s = _State("scanning drive1", 1204, None, 3 << 30, None, True)
    assert line_text(s, 180 << 20, None) == "scanning drive1: 1204 files, 3.0 GiB hashed, 180.0 MiB/s"
    assert line_text(_State("scanning d", 1, None, 0, None, True), 0.0, None) == "scanning d: 1 file, 0 B hashed"


def test_a_first_scan_counted_beforehand_says_how_far_it_is_and_how_long_it_will_take() -> None:
    s = _State("scanning drive1", 250_000, 1_000_000, 1 << 30, 4 << 30, True)
    assert line_text(s, 100 << 20, 30.7) == (
        "scanning drive1: 250000 of 1000000 files, 1.0 GiB of 4.0 GiB hashed, 100.0 MiB/s, 31 s left"
    )


def test_the_count_before_a_first_scan_shows_its_files() -> None:
    screen = Screen()
    with LiveLine(True, 0, screen) as line:
        assert line.scan is not None
        line.scan(ScanStats(files=5000, replica="drive1", counting=True))
    assert screen.drawings[0] == "counting drive1: 5000 files"


def test_a_phase_that_moves_no_bytes_shows_its_files_only() -> None:
    assert line_text(_State("copying to b", 3, 10, 0, 0, False), 0.0, None) == "copying to b: 3 of 10 files"


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (42, "42 s"), (185, "3 min 05 s"), (4020, "1 h 07 min")])
def test_time_left_reads_naturally(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_the_line_is_cleared_at_the_end_and_after_an_error() -> None:
    screen = Screen()
    with pytest.raises(RuntimeError), LiveLine(True, 0, screen) as line:
        assert line.progress is not None
        line.progress(Progress("copying to b", 0, 1, 10, 100))
        raise RuntimeError("boom")
    assert screen.getvalue().startswith(CLEAR + "copying to b: 0 of 1 file, 10 B of 100 B")
    assert screen.getvalue().endswith(CLEAR)


def test_it_is_redrawn_while_nothing_reports() -> None:
    screen = Screen()
    with LiveLine(True, 0, screen) as line:
        assert line.progress is not None
        line.progress(Progress("copying to b", 0, 1, 10, 100))
        time.sleep(1.2)  # a long fsync: no report comes
    assert len(screen.drawings) >= 3


def test_draws_are_spaced_by_the_interval() -> None:
    screen = Screen()
    meter = Meter("copying to b", None, 1, 1000)
    with LiveLine(True, 3600, screen) as line:
        meter.report = line.progress
        for _ in range(100):
            meter.add_bytes(10)
    assert len(screen.drawings) == 1  # the first report draws; the next ones wait for the interval


def test_a_phase_with_nothing_to_do_draws_nothing() -> None:
    screen = Screen()
    with LiveLine(True, 0, screen) as line:
        assert line.progress is not None and line.scan is not None
        line.progress(Progress("carrying in from a", 0, 0, 0, 0))
        assert screen.getvalue() == ""
        line.scan(ScanStats(files=3, replica="a"))
    assert screen.drawings[0] == "scanning a: 3 files, 0 B hashed"


def test_off_means_no_callbacks_and_no_output() -> None:
    screen = Screen()
    with LiveLine(False, 0, screen) as line:
        assert line.progress is None and line.scan is None
    assert screen.getvalue() == ""


def test_a_long_line_is_cut_to_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = Screen()
    monkeypatch.setenv("COLUMNS", "40")
    with LiveLine(True, 0, screen) as line:
        assert line.progress is not None
        line.progress(Progress("copying to a-drive-with-a-long-name", 0, 1000, 0, 1 << 40))
    assert len(screen.drawings[0]) == 39
