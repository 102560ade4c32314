"""docs/safety.md names the tests that prove each guarantee: every name it
gives must be a test that exists, so that renaming or deleting a test
cannot leave the page pointing at nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAFETY = ROOT / "docs" / "safety.md"
FULL = re.compile(r"`(tests/[\w/]+\.py)(?:::(test_\w+))?`")
SAME_FILE = re.compile(r"`::(test_\w+)`")


def references() -> list[tuple[str, str | None]]:
    """(file, test or None) for each name on the page; `::name` refers to the
    file named last before it."""
    found: list[tuple[str, str | None]] = []
    current: str | None = None
    pattern = re.compile(FULL.pattern + "|" + SAME_FILE.pattern)
    for m in pattern.finditer(SAFETY.read_text(encoding="utf-8")):
        if m.group(1):
            current = m.group(1)
            found.append((current, m.group(2)))
        else:
            assert current is not None, f"`::{m.group(3)}` before any file"
            found.append((current, m.group(3)))
    return found


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_test_named_in_the_safety_page_exists() -> None:
    refs = references()
    assert len(refs) > 40
    missing = []
    for file, name in refs:
        path = ROOT / file
        if not path.is_file():
            missing.append(file)
        elif name is not None and name not in functions_in(path):
            missing.append(f"{file}::{name}")
    assert not missing, f"docs/safety.md names tests that do not exist: {missing}"
