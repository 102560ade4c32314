"""The error hierarchy of `sq`.

Every error a user can meet is a `SquirrelError` subclass that carries its
exit code and a one-line message. Only the CLI turns them into exit codes
(see ``docs/exit-codes.md``); library code raises, never exits.
"""

from __future__ import annotations

import errno


class SquirrelError(Exception):
    """Base of every error `sq` reports; `exit_code` is documented. The base
    class itself is only raised for internal errors (a bug in sq)."""

    exit_code = 70

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def reason(e: SquirrelError | OSError) -> str:
    """The one line that says why a step failed: an error's message, or a
    system error's own words (without its number)."""
    return e.message if isinstance(e, SquirrelError) else f"{e.strerror or e}"


def out_of_space(e: SquirrelError | OSError | None) -> bool:
    """Did the step fail because the drive it wrote to is full (sq's own
    error for it, or the system's, ENOSPC)?"""
    return isinstance(e, OutOfSpace) or (isinstance(e, OSError) and e.errno == errno.ENOSPC)


class BadUsage(SquirrelError):
    """The command was asked for something that cannot mean anything: two
    options that exclude each other, a malformed object id, a bad choice.
    The same code as the argument parser's own usage errors."""

    exit_code = 2


class NotAReplica(SquirrelError):
    """PATH has no `.squirrel/` marker (an unmounted drive, a wrong path).
    `why` says what PATH is instead, when that is known (the carrier's
    folder, a folder inside a replica)."""

    exit_code = 3

    def __init__(self, path: str, why: str | None = None) -> None:
        super().__init__(f"not a replica: {path} ({why or 'no .squirrel/ here; is the drive mounted?'})")


class AlreadyAReplica(SquirrelError):
    exit_code = 4

    def __init__(self, path: str, what: str | None = None, todo: str | None = None) -> None:
        super().__init__(f"already a replica: {path}" + (f" ({what})" if what else "") + (f"; {todo}" if todo else ""))


class BadPath(SquirrelError):
    """A path given on the command line does not exist or has the wrong type."""

    exit_code = 5


class WrongVault(SquirrelError):
    exit_code = 6


class Locked(SquirrelError):
    exit_code = 7

    def __init__(self, path: str, pid: int) -> None:
        super().__init__(f"replica {path} is locked by pid {pid} (another sq is running)")
        self.pid = pid


class UnsupportedFormat(SquirrelError):
    """An on-disk structure written by a newer or unknown format version."""

    exit_code = 8


class CorruptIndex(SquirrelError):
    exit_code = 9


class BadBundle(SquirrelError):
    exit_code = 10


class DamagedObject(BadBundle):
    """An object of a bundle did not match its id as `sq apply` copied it,
    which ended the apply. It shares `BadBundle`'s code, since the bundle is
    damaged all the same, but unlike a refused bundle the replica changed:
    `applied` counts the changes made before the object was met, each file
    complete and verified. A re-run meets the same object."""

    def __init__(self, message: str, path: bytes, oid: bytes, applied: int) -> None:
        super().__init__(message)
        self.path = path
        self.oid = oid
        self.applied = applied


class OutOfSpace(SquirrelError):
    exit_code = 11


class UnsafePath(SquirrelError):
    """A name that cannot be written safely: outside the replica, through a
    symlink, into `.squirrel/`, or colliding with another under case folding."""

    exit_code = 12


class ChangedDuringOperation(SquirrelError):
    """A file changed under us (while hashed, or between plan and write)."""

    exit_code = 13


class NoSuchConflict(SquirrelError):
    exit_code = 14


class BadVectorTime(SquirrelError):
    exit_code = 15


class FileSystemError(SquirrelError):
    """An operating-system error while reading or writing a replica."""

    exit_code = 16


class ContentUnavailable(SquirrelError):
    """A version's content is neither in the bundle nor on the receiver (a
    bundle cut short by --max-size, or packed against newer knowledge)."""

    exit_code = 17


class SyncIncomplete(SquirrelError):
    """A sync finished, but some paths failed; they stay unsynced."""

    exit_code = 18


class MassDelete(SquirrelError):
    """A scan or visit would delete more than the allowed share of the files."""

    exit_code = 19


class IdentityConflict(SquirrelError):
    """A replica's index is behind what others know of it (restored from an
    old backup), or two drives carry one identity (a clone)."""

    exit_code = 20


class CorruptCarrier(SquirrelError):
    """The carrier's own files (`carrier.json`, a drive record) are damaged."""

    exit_code = 21


class NoSuchTrashItem(SquirrelError):
    """`sq trash restore` was given an item number or path the trash does not hold."""

    exit_code = 22


class PathTaken(SquirrelError):
    """`sq trash restore` would put a version where something already is;
    it never overwrites (restore elsewhere with --to)."""

    exit_code = 23


ALL_ERRORS: tuple[type[SquirrelError], ...] = (
    BadUsage,
    NotAReplica,
    AlreadyAReplica,
    BadPath,
    WrongVault,
    Locked,
    UnsupportedFormat,
    CorruptIndex,
    BadBundle,
    DamagedObject,
    OutOfSpace,
    UnsafePath,
    ChangedDuringOperation,
    NoSuchConflict,
    BadVectorTime,
    FileSystemError,
    ContentUnavailable,
    SyncIncomplete,
    MassDelete,
    IdentityConflict,
    CorruptCarrier,
    NoSuchTrashItem,
    PathTaken,
)
