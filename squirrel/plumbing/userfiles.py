"""Files named on the command line that `sq` reads or writes whole (a
bundle, a knowledge file, `-o FILE`): the checks that tell a wrong path
(BadPath, exit 5) from a damaged file (BadBundle, exit 10) before any work
is done, each message naming the user's path as what it was meant to be."""

from __future__ import annotations

import os
from typing import BinaryIO

from squirrel.errors import BadPath, FileSystemError


def open_input_file(path: str, what: str, hint: str = "") -> BinaryIO:
    """Open the `what` file at `path` for reading. A folder, or a path where
    no file is, is BadPath (5) (`hint` says how such a file is made); the
    operating system refusing to open it is FileSystemError (16)."""
    if os.path.isdir(path):
        raise BadPath(f"{path} is a folder, not a {what} file{hint}")
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller owns it
    except (FileNotFoundError, NotADirectoryError) as e:
        raise BadPath(f"no such {what} file: {path}") from e
    except OSError as e:
        raise FileSystemError(f"cannot read the {what} file {path}: {e.strerror}") from e


def check_output_file(path: str, what: str) -> None:
    """A file to write named on the command line (`-o FILE`) that is a
    folder, or whose folder does not exist: BadPath (5), said before any
    work is done and naming the user's path, not the temporary written first."""
    if os.path.isdir(path):
        raise BadPath(f"{path} is a directory; give a {what} file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise BadPath(f"cannot write the {what} file {path}: no such directory {folder}")
