"""The layers stay visible: cli -> porcelain -> plumbing, never back, and
only the cli talks to the process: it alone prints, writes to stdout or
stderr, exits, and reads the environment. Below it, output goes through
return values and progress callbacks, and settings come in as arguments
(`carrier_dir_from` is handed the environment), so that the porcelain can be
called from a test or another program without side effects on the process.

Both checks read the source (the `ast` of every module), so they see what is
written, not what a test happened to run; so does a third, that every record
(dataclass) says in a docstring what it is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

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


# Only the cli talks to the process ----------------------------------------------------
# What a module below the cli must not touch: the qualified name, and what it does.
PROCESS = {
    "builtins.print": "prints",
    "builtins.exit": "exits",
    "builtins.quit": "exits",
    "sys.exit": "exits",
    "sys.stdout": "writes to stdout",
    "sys.stderr": "writes to stderr",
    "sys.__stdout__": "writes to stdout",
    "sys.__stderr__": "writes to stderr",
    "os.environ": "reads the environment",
    "os.environb": "reads the environment",
    "os.getenv": "reads the environment",
    "os.getenvb": "reads the environment",
}
BUILTINS = {"print", "exit", "quit"}


def _aliases(tree: ast.Module) -> dict[str, str]:
    """What each name a module imports stands for: `import sys as s` gives
    {"s": "sys"}, `from os import environ` gives {"environ": "os.environ"}."""
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    found[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    found[top] = top
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            for alias in node.names:
                found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return found


def _bound(tree: ast.Module) -> set[str]:
    """Names a module binds itself (a function or variable named `exit` is not the builtin)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def _qualified(node: ast.expr, aliases: dict[str, str], bound: set[str]) -> str | None:
    """`os.environ.get` for an attribute chain on an imported name, `builtins.print` for a builtin."""
    attrs: list[str] = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    if node.id in aliases:
        base = aliases[node.id]
    elif node.id in BUILTINS and node.id not in bound:
        base = f"builtins.{node.id}"
    else:
        return None
    return ".".join([base, *reversed(attrs)])


def process_access(path: Path) -> list[tuple[int, str, str]]:
    """Where a module prints, exits, writes to stdout or stderr, or reads the
    environment: (line, what it does, the name it uses)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases, bound = _aliases(tree), _bound(tree)
    found: list[tuple[int, str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name | ast.Attribute):
            name = _qualified(node, aliases, bound)
            if name in PROCESS:
                found.append((node.lineno, PROCESS[name], name))
        elif isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "SystemExit" and "SystemExit" not in bound:
                found.append((node.lineno, "exits", "raise SystemExit"))
    return sorted(found)


def process_offenders(pkg: Path, allowed: tuple[Path, ...], pkg_root: Path = PKG.parent) -> tuple[list[str], int]:
    """Every use of the process outside `allowed` (sub-packages or modules
    of `pkg`), and how many modules were read."""
    bad: list[str] = []
    modules = [p for p in sorted(pkg.rglob("*.py")) if not any(a == p or a in p.parents for a in allowed)]
    for path in modules:
        for line, what, name in process_access(path):
            bad.append(f"{path.relative_to(pkg_root)}:{line} {what} ({name})")
    return bad, len(modules)


def test_only_the_cli_prints_exits_or_reads_the_environment() -> None:
    """The cli, and the sweep's worker process, which talks through its
    standard streams (kept out of the cli package so as not to load it)."""
    bad, read = process_offenders(PKG, (PKG / "cli", PKG / "sweep_worker.py"))
    assert read >= len(list((PKG / "plumbing").glob("*.py"))) + len(list((PKG / "porcelain").glob("*.py")))
    assert bad == []


def test_the_cli_itself_may_use_the_process() -> None:
    """The check does find what `main()` does, so an empty list above means something."""
    used = {what for _, what, _ in process_access(PKG / "cli" / "__init__.py")}
    assert {"exits", "reads the environment"} <= used


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ('print("done")\n', "prints"),
        ("def f(p):\n    print(p, file=None)\n", "prints"),
        ("import builtins\nbuiltins.print('x')\n", "prints"),
        ("import sys\nsys.exit(3)\n", "exits"),
        ("import sys as system\nsystem.exit(3)\n", "exits"),
        ("from sys import exit\nexit(3)\n", "exits"),
        ("exit(3)\n", "exits"),
        ("quit()\n", "exits"),
        ("raise SystemExit(3)\n", "exits"),
        ("import sys\nsys.stdout.write('x')\n", "writes to stdout"),
        ("import sys\nsys.stderr.buffer.write(b'x')\n", "writes to stderr"),
        ("from sys import stderr\nstderr.write('x')\n", "writes to stderr"),
        ("import sys\nsys.__stdout__.write('x')\n", "writes to stdout"),
        ("import os\nos.environ['HOME']\n", "reads the environment"),
        ("import os\nhome = os.environ.get('HOME')\n", "reads the environment"),
        ("import os\nos.getenv('HOME')\n", "reads the environment"),
        ("import os\nos.environb[b'HOME']\n", "reads the environment"),
        ("from os import environ\nenviron['HOME']\n", "reads the environment"),
        ("from os import getenv as ge\nge('HOME')\n", "reads the environment"),
        ("import os.path\nos.environ.copy()\n", "reads the environment"),
        ("def f(env=None):\n    import os\n    return env or os.environ\n", "reads the environment"),
    ],
)
def test_the_process_check_catches_each_form(tmp_path: Path, source: str, what: str) -> None:
    pkg = tmp_path / "squirrel"
    (pkg / "plumbing").mkdir(parents=True)
    (pkg / "cli").mkdir()
    (pkg / "plumbing" / "mod.py").write_text(source)
    (pkg / "cli" / "main.py").write_text(source)  # the cli may
    bad, read = process_offenders(pkg, (pkg / "cli",), tmp_path)
    assert read == 1
    assert len(bad) == 1 and bad[0].startswith("squirrel/plumbing/mod.py:") and f" {what} (" in bad[0], bad


def test_the_process_check_leaves_lookalikes_alone(tmp_path: Path) -> None:
    """Names that only look like the process's: a parameter called environ
    (how `carrier_dir_from` gets the environment), a method called exit, a
    local function called print, an attribute called stdout."""
    (tmp_path / "mod.py").write_text(
        "import os\n"
        "def carrier_dir(environ):\n"
        "    return environ.get('HOME') or os.path.join('a', 'b')\n"
        "def close(lock, proc):\n"
        "    lock.exit()\n"
        "    return proc.stdout, proc.stderr\n"
        "def print(x):\n"
        "    return x\n"
        "print(1)\n"
        "try:\n"
        "    pass\n"
        "except SystemExit:\n"
        "    pass\n"
    )
    assert process_access(tmp_path / "mod.py") == []


def test_every_command_is_found_by_its_name_alone() -> None:
    """`sq NAME` imports only NAME's module: the table that says which one
    must list every command, each where it is defined."""
    import importlib

    from squirrel import cli as cli_mod

    for module in sorted({p.stem for p in (PKG / "cli").glob("*.py")} - {"__init__", "__main__"}):
        importlib.import_module(f"squirrel.cli.{module}")
    defined = {}
    for name, cmd in cli_mod.cli.commands.items():
        assert cmd.callback is not None
        defined[name] = cmd.callback.__module__.rsplit(".", 1)[-1]
    assert defined == cli_mod.COMMAND_MODULES


def undocumented_records(pkg: Path) -> list[str]:
    """The dataclasses under `pkg` without a docstring."""
    bad = []
    for path in sorted(pkg.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.ClassDef) or ast.get_docstring(node) is not None:
                continue
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                if isinstance(target, ast.Name) and target.id == "dataclass":
                    bad.append(f"{path.relative_to(pkg.parent)}:{node.lineno} {node.name}")
    return bad


def test_every_record_says_what_it_is() -> None:
    """Every dataclass has a docstring: help() shows it, and without one the
    decorator computes the class's signature for it at every start of `sq`."""
    assert undocumented_records(PKG) == []


def test_the_record_check_finds_a_record_without_a_docstring(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "m.py").write_text(
        "from dataclasses import dataclass\n"
        "@dataclass\nclass Bare:\n    x: int\n"
        "@dataclass(frozen=True)\nclass AlsoBare:\n    x: int\n"
        '@dataclass\nclass Said:\n    """What it is."""\n    x: int\n'
        "class Plain:\n    pass\n"
    )
    assert undocumented_records(pkg) == ["pkg/m.py:3 Bare", "pkg/m.py:6 AlsoBare"]
