"""How far a long operation has come, for whoever shows it.

A `Meter` holds the numbers of one phase (`Progress`: files and bytes done,
of a total when it is known) and tells its callback each time they move.
The loops that move or hash content add bytes as each block streams (the
executor's copies, the carrier's store, the bundle writer, hashing: at most
1 MiB a block), so a single large file moves the numbers too; what a block
costs here is a counter increment and a call. How often to draw is the
caller's business (the CLI draws a few times a second, and never without a
terminal). Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass


@dataclass
class Progress:
    """One phase of a command ("copying to drive2"): files and bytes done,
    and their totals (None while not known)."""

    phase: str
    files_done: int = 0
    files_total: int | None = None
    bytes_done: int = 0
    bytes_total: int | None = None


ProgressCallback = Callable[[Progress], None]


class Meter:
    """The `Progress` of one phase and the callback to tell (None: count only)."""

    def __init__(
        self, phase: str, report: ProgressCallback | None = None, files: int | None = None, size: int | None = None
    ) -> None:
        self.progress = Progress(phase, files_total=files, bytes_total=size)
        self.report = report

    def tell(self) -> None:
        if self.report is not None:
            self.report(self.progress)

    def expect(self, files: int, size: int) -> None:
        """More work joins the phase: its files and bytes are added to the totals."""
        p = self.progress
        p.files_total = (p.files_total or 0) + files
        p.bytes_total = (p.bytes_total or 0) + size
        self.tell()

    def add_bytes(self, n: int) -> None:
        self.progress.bytes_done += n
        self.tell()

    def file_done(self, size: int = 0, streamed: int = 0) -> None:
        """A file of `size` bytes is finished (copied, found elsewhere, or
        given up); `streamed` of its bytes were counted as they came."""
        self.progress.files_done += 1
        self.progress.bytes_done += size - streamed
        self.tell()

    def stream(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass `chunks` through, counting each as it goes."""
        p = self.progress
        for chunk in chunks:
            p.bytes_done += len(chunk)
            if self.report is not None:
                self.report(p)
            yield chunk


def quiet(phase: str = "") -> Meter:
    """A meter nobody watches."""
    return Meter(phase)
