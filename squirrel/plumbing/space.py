"""Room on a replica's drive: what a file takes there (whole allocation
units: 4 KiB on ext4, a cluster of up to 128 KiB and more on exFAT), and
the check a sync makes before it writes anything (`ensure_room`), which
leaves `SPACE_RESERVE` free and lets the trash's retention policy have its
say first."""

from __future__ import annotations

import os
import shutil

from squirrel.errors import OutOfSpace
from squirrel.plumbing.replica import Replica
from squirrel.text import counted

SPACE_RESERVE = 16 << 20  # never fill a drive to the last byte: the index must still commit


def allocation_unit(root: str) -> int:
    """The unit the file system at `root` allocates files in (its fragment
    size, statvfs(3)); 1 where it does not say."""
    try:
        st = os.statvfs(root)
    except (OSError, AttributeError):
        return 1
    return max(1, st.f_frsize or st.f_bsize)


def room(size: int, unit: int) -> int:
    """What a file of `size` bytes takes on a file system that allocates
    `unit` bytes at a time (4 KiB on ext4; 128 KiB on a large exFAT drive
    by default, where 10,000 thumbnails of 10 KiB take over a gigabyte)."""
    return -(-size // unit) * unit


def ensure_room(rep: Replica, need: int) -> None:
    """Refuse (OutOfSpace) when `need` bytes of new content cannot fit on
    the replica's disk, after the trash's retention policy had its say
    (nothing else is removed to make room)."""
    if not need:
        return
    have = shutil.disk_usage(rep.root).free
    if need + SPACE_RESERVE <= have:
        return
    trash = rep.trash
    if trash.apply_policy() is not None:
        have = shutil.disk_usage(rep.root).free
    if need + SPACE_RESERVE > have:
        held = trash.usage()
        raise OutOfSpace(
            f"not enough space on {rep.root}: need {counted(need, 'byte')} (+{SPACE_RESERVE} spare),"
            f" have {have}; the trash holds {counted(held.bytes, 'byte')} in {counted(held.count, 'version')}"
            " (`sq trash purge` frees them)"
        )
