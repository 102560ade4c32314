"""The live progress line: one line on stderr, redrawn in place while a
command moves or hashes bytes, and cleared before its summary.

It is drawn only when stderr is a terminal, `SQ_NO_PROGRESS` is not set and
the command was not asked for `--json`. The porcelain reports through
callbacks (a `Progress` for copies, `ScanStats` for scans) as often as once
per block of content; the line is redrawn from those calls at most every
`SQ_PROGRESS_INTERVAL` seconds (0.2 by default), and a ticker thread
redraws it at least twice a second while nothing reports (the fsync of a
large file, a long plan), so the rate and the time left stay honest.

    copying to drive2: 1 of 4 files, 612.0 MiB of 2.0 GiB, 95.3 MiB/s, 15 s left
    scanning drive1: 1204 files, 3.1 GiB hashed, 180.2 MiB/s
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from squirrel.cli.output import human_bytes
from squirrel.text import counted

if TYPE_CHECKING:  # types only: importing the scanner costs every command its start-up
    from squirrel.plumbing.progress import Progress, ProgressCallback
    from squirrel.plumbing.scan import ScanProgress, ScanStats

CLEAR = "\r\x1b[K"
TICK = 0.5  # the longest the line stays unchanged while a phase runs
WINDOW = 5.0  # seconds of history behind the rate
ETA_AFTER = 1.0  # seconds into a phase before the time left is guessed


def duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `1 h 07 min`."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@dataclass
class _State:
    """What the live progress line shows: the phase, and how far it has come."""

    phase: str
    files_done: int
    files_total: int | None
    bytes_done: int
    bytes_total: int | None
    hashing: bool  # a scan: the bytes are those hashed (of a total when the tree was counted first)


def line_text(s: _State, rate: float | None, left: float | None) -> str:
    """The line for a state, its rate (bytes/s) and time left (seconds)."""
    files = (
        counted(s.files_done, "file")
        if s.files_total is None
        else f"{s.files_done} of {counted(s.files_total, 'file')}"
    )
    parts = [files]
    if s.hashing and s.bytes_total is not None:
        parts.append(f"{human_bytes(s.bytes_done)} of {human_bytes(s.bytes_total)} hashed")
    elif s.hashing:
        parts.append(f"{human_bytes(s.bytes_done)} hashed")
    elif s.bytes_total is None:
        if s.bytes_done:  # nothing to say of no bytes of no known total (a count of files)
            parts.append(human_bytes(s.bytes_done))
    elif s.bytes_total or s.bytes_done:
        parts.append(f"{human_bytes(s.bytes_done)} of {human_bytes(s.bytes_total)}")
    if rate is not None and (s.bytes_done or s.bytes_total):
        parts.append(f"{human_bytes(rate)}/s")
    if left is not None:
        parts.append(f"{duration(left)} left")
    return f"{s.phase}: {', '.join(parts)}"


class LiveLine:
    """The line, fed by the porcelain's callbacks (`scan`, `progress`: None
    when the line is off, so the porcelain skips the work) and closed
    (cleared) by `with`."""

    def __init__(self, enabled: bool, interval: float = 0.2, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self.interval = interval
        self.stream = stream if stream is not None else sys.stderr
        self._lock = threading.Lock()
        self._state: _State | None = None
        self._since = 0.0  # when the phase began
        self._samples: deque[tuple[float, int]] = deque()  # (time, bytes done) at recent draws
        self._drawn_at = -math.inf  # never: the clock may read less than an interval (just booted)
        self._shown = False
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def scan(self) -> ScanProgress | None:
        return self._on_scan if self.enabled else None

    @property
    def progress(self) -> ProgressCallback | None:
        return self._on_progress if self.enabled else None

    def _on_scan(self, st: ScanStats) -> None:
        verb = "counting" if st.counting else "scanning"
        phase = f"{verb} {st.replica}" if st.replica else verb
        if st.counting:
            self._update(_State(phase, st.files, None, 0, None, False))
        else:
            self._update(_State(phase, st.files, st.files_total, st.bytes_hashed, st.bytes_total, True))

    def _on_progress(self, p: Progress) -> None:
        self._update(_State(p.phase, p.files_done, p.files_total, p.bytes_done, p.bytes_total, False))

    def _update(self, state: _State) -> None:
        if state.files_total == 0 and not state.bytes_total:
            return  # a phase with nothing to do: no line for it
        now = time.monotonic()
        with self._lock:
            if self._state is None or self._state.phase != state.phase:
                self._since = now
                self._samples.clear()
                self._drawn_at = -math.inf
            self._state = state
            if now - self._drawn_at >= self.interval:
                self._draw(now)
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="sq-progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(TICK / 2):
            now = time.monotonic()
            with self._lock:
                if self._state is not None and now - self._drawn_at >= TICK / 2:
                    self._draw(now)

    def _rate(self, now: float, done: int) -> float | None:
        """Bytes per second over the last few seconds of the phase."""
        while self._samples and now - self._samples[0][0] > WINDOW:
            self._samples.popleft()
        if self._samples and now - self._samples[0][0] >= 0.5:
            t, b = self._samples[0]
        else:
            t, b = self._since, 0
        span = now - t
        return (done - b) / span if span > 0 else None

    def _draw(self, now: float) -> None:
        s = self._state
        assert s is not None
        rate = self._rate(now, s.bytes_done)
        self._samples.append((now, s.bytes_done))
        left = None
        if s.bytes_total and rate and now - self._since >= ETA_AFTER:
            left = max(0, s.bytes_total - s.bytes_done) / rate
        text = line_text(s, rate, left)
        try:
            width = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError):
            width = 0
        width = width or shutil.get_terminal_size().columns  # a terminal that tells no size
        self.stream.write(CLEAR + text[: max(width - 1, 20)])  # a line that wraps cannot be redrawn
        self.stream.flush()
        self._drawn_at = now
        self._shown = True

    def pause(self) -> None:
        """Clear the line before the command writes a line of its own (on a
        terminal both land on one screen); the next report draws it again."""
        with self._lock:
            if self._shown:
                self.stream.write(CLEAR)
                self.stream.flush()
                self._shown = False

    def close(self) -> None:
        """Stop redrawing and clear the line."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            if self._shown:
                self.stream.write(CLEAR)
                self.stream.flush()
                self._shown = False
            self._state = None

    def __enter__(self) -> LiveLine:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def live(as_json: bool = False) -> LiveLine:
    """The progress line for a command: on when stderr is a terminal,
    SQ_NO_PROGRESS is unset and no --json was asked for."""
    enabled = sys.stderr.isatty() and not os.environ.get("SQ_NO_PROGRESS") and not as_json
    try:
        interval = max(0.0, float(os.environ.get("SQ_PROGRESS_INTERVAL", "0.2")))
    except ValueError:
        interval = 0.2
    return LiveLine(enabled, interval)
