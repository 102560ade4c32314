"""The C part (squirrel/plumbing/_folderstat.c) is optional at install, so
a mistake in it would not fail the build: it would leave every user with
the slower comparison, silently. Where a C compiler and Python's headers
are here, it must have been built."""

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


def test_the_c_comparison_is_built_where_it_can_be() -> None:
    if not can_build_c():
        pytest.skip("no C compiler or no Python headers here: sq compares in Python")
    assert importlib.util.find_spec("squirrel.plumbing._folderstat") is not None, (
        "squirrel/plumbing/_folderstat.c did not build (pip install -e . -v shows why)"
    )
