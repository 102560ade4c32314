"""Fault injection, for the crash and fault tests (docs/safety.md).

`configure("OP:N[:ACTION]")` arms one fault: the N-th time the code reaches
`point(OP)` (OP is write, fsync, rename, unlink, utime, commit, or `any`),
it kills the process (ACTION `kill`, the default) or raises ENOSPC, EIO or
EROFS (`enospc`, `eio`, `erofs`). The CLI arms it from the SQ_FAULT
environment variable; nothing else reads it. Unarmed, `point` costs one
comparison.
"""

from __future__ import annotations

import errno
import os
import signal

OPS = ("write", "fsync", "rename", "unlink", "utime", "commit")
ACTIONS = {"kill": 0, "enospc": errno.ENOSPC, "eio": errno.EIO, "erofs": errno.EROFS}

_armed: tuple[str, int, str] | None = None
_count = 0


def configure(spec: str | None) -> None:
    """Arm (or, with None, disarm) a fault; a malformed spec raises ValueError."""
    global _armed, _count
    _count = 0
    if not spec:
        _armed = None
        return
    parts = spec.split(":")
    if len(parts) not in (2, 3) or (parts[0] not in OPS and parts[0] != "any") or not parts[1].isdigit():
        raise ValueError(f"bad fault spec {spec!r}: want OP:N[:ACTION], OP in {', '.join(OPS)} or any")
    action = parts[2] if len(parts) == 3 else "kill"
    if action not in ACTIONS:
        raise ValueError(f"bad fault action {action!r}: want one of {', '.join(ACTIONS)}")
    _armed = (parts[0], int(parts[1]), action)


def point(op: str) -> None:
    """Called just before each I/O step of kind `op` that matters for safety."""
    global _count
    if _armed is None:
        return
    want, n, action = _armed
    if want != "any" and want != op:
        return
    _count += 1
    if _count != n:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    code = ACTIONS[action]
    raise OSError(code, f"{os.strerror(code)} (injected at {op} #{n})")
