"""The layers stay visible: cli -> porcelain -> plumbing, never back."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "squirrel"


def imported_modules(path: Path, pkg_root: Path = PKG.parent) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = path.relative_to(pkg_root).with_suffix("").parts
                base = ".".join(parts[: -node.level])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{alias.name}" for alias in node.names)
    return found


def offenders(layer_dir: Path, forbidden: tuple[str, ...], pkg_root: Path = PKG.parent) -> list[str]:
    bad = []
    for path in sorted(layer_dir.rglob("*.py")):
        for mod in imported_modules(path, pkg_root):
            if any(mod == f or mod.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(pkg_root)} imports {mod}")
    return bad


def test_plumbing_imports_neither_porcelain_nor_click() -> None:
    assert offenders(PKG / "plumbing", ("squirrel.porcelain", "squirrel.cli", "click")) == []


def test_porcelain_does_not_import_click_or_cli() -> None:
    assert offenders(PKG / "porcelain", ("click", "squirrel.cli")) == []


def test_the_check_catches_relative_and_absolute_violations(tmp_path: Path) -> None:
    layer = tmp_path / "squirrel" / "plumbing"
    layer.mkdir(parents=True)
    (layer / "a.py").write_text("import click\n")
    (layer / "b.py").write_text("from ..porcelain import scan\n")
    (layer / "c.py").write_text("from squirrel.plumbing import ids\n")
    bad = offenders(layer, ("squirrel.porcelain", "click"), tmp_path)
    assert any("a.py imports click" in b for b in bad)
    assert any("b.py imports squirrel.porcelain" in b for b in bad)
    assert not any("c.py" in b for b in bad)
