"""The C parts (squirrel/plumbing/_folderstat.c, _copygroup.c and
_place.c) are optional at install, so a mistake in one would not fail the
build: it would leave every user with the slower Python, silently. Where a
C compiler and Python's headers are here, each must have been built."""

from __future__ import annotations

import importlib.util
import shutil
import sysconfig
from pathlib import Path

import pytest


def can_build_c() -> bool:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return shutil.which(cc) is not None and headers.exists()


@pytest.mark.parametrize("module", ["_folderstat", "_copygroup", "_place"])
def test_each_c_part_is_built_where_it_can_be(module: str) -> None:
    if not can_build_c():
        pytest.skip("no C compiler or no Python headers here: sq does this work in Python")
    assert importlib.util.find_spec(f"squirrel.plumbing.{module}") is not None, (
        f"squirrel/plumbing/{module}.c did not build (pip install -e . -v shows why)"
    )
