"""Running the real `sq` with its stderr on a terminal (a pseudo-terminal
of 120 columns), as a user at a terminal does: the live progress line is
drawn only there. Its stdout stays a pipe, as when the output is piped."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
from pathlib import Path

from tests.helpers import Ran, argv_of, sq_executable

CLEAR = b"\r\x1b[K"
COLUMNS = 120


def run_sq_tty(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 120) -> Ran:
    """Run `sq ARGS` with stderr on a new pseudo-terminal; progress on, by
    default redrawn at every report (SQ_PROGRESS_INTERVAL=0) so that a test
    sees each step whatever the speed of the machine."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SQ_")}
    environ["SQ_PROGRESS_INTERVAL"] = "0"
    environ.update(env or {})
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, COLUMNS, 0, 0))
    proc = subprocess.Popen([sq_executable(), *argv_of(args)], stdout=subprocess.PIPE, stderr=follower, env=environ)
    os.close(follower)
    err = bytearray()
    while True:
        try:
            chunk = os.read(leader, 1 << 16)
        except OSError:  # EIO: every writer of the terminal is gone
            break
        if not chunk:
            break
        err += chunk
    os.close(leader)
    assert proc.stdout is not None
    out = proc.stdout.read()
    code = proc.wait(timeout)
    # The terminal turns "\n" into "\r\n"; give the lines back as sq wrote them.
    return Ran(code, out, bytes(err).replace(b"\r\n", b"\n"))


def drawn(err: bytes, phase: str) -> list[str]:
    """Every drawing of the progress line for `phase` ("copying to b"), in order."""
    lines = [part.split(b"\n")[0].decode() for part in err.split(CLEAR)]
    return [line for line in lines if line.startswith(phase + ":")]


def bytes_of(line: str) -> float:
    """The bytes done a drawing of the line shows, in MiB."""
    m = re.search(r"([\d.]+) (B|KiB|MiB|GiB) of ", line)
    assert m, line
    return float(m.group(1)) * {"B": 1 / 1024**2, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[m.group(2)]
