"""Helpers for building trees, reading an index and running the real `sq`.

Files written by a test are fresh, so the scanner treats them as racy (their
mtime is within 2 s of the scan) and re-hashes them on the next scan, on
purpose. Tests that count hashing first age the tree with `age()`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from squirrel.plumbing.index import Entry
from squirrel.plumbing.replica import Replica

HOUR = 3600.0


def make_tree(root: Path | str, files: Mapping[str, bytes | str], old: bool = True) -> Path:
    """Create files (`"a/b.txt": content`) and empty dirs (`"d/": ""`) under root.

    With `old`, every file created gets an mtime an hour ago, so a later scan
    does not treat it as racy; files already there keep theirs.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        p = root / rel
        if rel.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
        if old:
            set_mtime(p)
    return root


def set_mtime(path: Path | str | bytes, seconds_ago: float = HOUR) -> None:
    t = time.time() - seconds_ago
    os.utime(path, (t, t), follow_symlinks=False)


def age(root: Path | str, seconds_ago: float = HOUR) -> None:
    """Give every file under root (not `.squirrel/`) an mtime in the past."""
    rootb = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(rootb):
        dirnames[:] = [d for d in dirnames if d != b".squirrel"]
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                set_mtime(p, seconds_ago)


def write(path: Path, content: bytes | str, seconds_ago: float | None = HOUR / 2) -> None:
    """Replace a file's content; by default give it a past mtime that differs from `age()`'s."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    if seconds_ago is not None:
        set_mtime(path, seconds_ago)


def indexed(root: Path | str) -> dict[bytes, Entry]:
    """Every index record of the replica at root except the root itself."""
    with Replica.open(str(root), write=False) as rep:
        return {p: e for p, e in rep.index.walk(b"") if p}


def sq_executable() -> str:
    candidate = Path(sys.executable).parent / "sq"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("sq")
    if found is None:
        pytest.skip("the sq entry point is not installed")
    return found


def run_sq(
    *args: str | bytes | Path, input: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """Run the real `sq` entry point; output is kept as bytes."""
    argv = [sq_executable(), *(os.fsdecode(a) if isinstance(a, bytes | Path) else a for a in args)]
    return subprocess.run(argv, input=input, capture_output=True, timeout=timeout, check=False)
