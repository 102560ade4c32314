"""A replica's trash: the folder `.squirrel/trash/` and its items in the
index, kept in step (formats: docs/formats/replica.md, docs/formats/index.md).

- `record_version` / `record_folder`: a version (or a folder of ignored
  files) was just moved into the folder; `fsops` and the executor move it.
- `Trashcan.purge` removes items for good, and a content file with its last
  item. The decision is committed first, with the names of the files to
  remove (index meta `trash_purging`); then the files go; then the mark. A
  purge killed in between is finished by the next command that opens the
  replica for writing (`finish_purge`), so no file outlives its purge and
  none loses its record while it stays.
- `apply_policy` purges what the retention policy lets go (`retention`).
- `adopt` gives a record to what the folder holds without one: what a sync
  killed halfway left there (its undo moves content into the trash), or
  what an older `sq` left.
- `problems` compares the records with the folder (`sq verify`).
"""

from __future__ import annotations

import os
import re
import shutil
import stat as statmod
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from squirrel.plumbing import faults, paths
from squirrel.plumbing.durable import fsync_dir
from squirrel.plumbing.retention import Policy, by_policy
from squirrel.plumbing.trash import (
    LEFTOVERS,
    LEFTOVERS_PREFIX,
    TrashItem,
    TrashReason,
    held_bytes,
    oldest_first,
)

if TYPE_CHECKING:
    from squirrel.plumbing.index import ReplicaIndex

POLICY_KEY = "trash_policy"  # index meta: the retention policy (absent: keep everything)
PURGING_KEY = "trash_purging"  # index meta: the files a purge still has to remove
_OID_NAME = re.compile(r"[0-9a-f]{64}")


def record_version(
    index: ReplicaIndex, oid: bytes, path: bytes, size: int, reason: TrashReason, mtime_ns: int | None = None
) -> TrashItem:
    """A new item for content `oid`, just moved (or already) in the trash."""
    item = TrashItem(index.next_trash_id(), oid, path, size, int(time.time()), reason, mtime_ns)
    index.trash_put(item)
    return item


def record_folder(index: ReplicaIndex, folder: str, path: bytes, size: int, reason: TrashReason) -> TrashItem:
    """A new item for the folder `trash/<folder>` (ignored files found in `path`)."""
    item = TrashItem(index.next_trash_id(), None, path, size, int(time.time()), reason, None, folder)
    index.trash_put(item)
    return item


def folder_size(path: str | bytes) -> int:
    total = 0
    for dirpath, _, files in os.walk(os.fsencode(path)):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


@dataclass(frozen=True)
class Usage:
    """What a trash holds."""

    count: int  # items
    bytes: int  # what their content files hold, each counted once


@dataclass
class PurgeReport:
    """What a purge of the trash removed, found and kept."""

    removed: list[TrashItem] = field(default_factory=list)
    freed: int = 0  # bytes of the content files removed
    files: int = 0  # content files (and folders) removed
    kept: Usage = Usage(0, 0)
    adopted: list[TrashItem] = field(default_factory=list)  # files found without a record
    missing: list[TrashItem] = field(default_factory=list)  # records whose content was gone


class Trashcan:
    """The trash of one replica: its index and its `.squirrel/trash/`."""

    def __init__(self, index: ReplicaIndex, trash_dir: str) -> None:
        self.index = index
        self.dir = trash_dir

    def items(self) -> list[TrashItem]:
        return self.index.trash_items()

    def usage(self, items: list[TrashItem] | None = None) -> Usage:
        items = self.items() if items is None else items
        return Usage(len(items), held_bytes(items))

    def policy(self) -> Policy:
        return Policy.from_json(self.index.get_meta_json(POLICY_KEY))

    def set_policy(self, policy: Policy) -> None:
        if policy.keeps_everything:
            self.index.drop_meta(POLICY_KEY)
        else:
            self.index.set_meta_json(POLICY_KEY, policy.to_json())

    def path_of(self, name: str) -> str:
        return os.path.join(self.dir, name)

    # Removing ------------------------------------------------------------------------
    def purge(
        self, remove: list[TrashItem], items: list[TrashItem] | None = None, dry_run: bool = False
    ) -> PurgeReport:
        """Remove these items for good, and each content file with its last
        item. `items` is every item (read again when not given)."""
        items = self.items() if items is None else items
        users = Counter(it.name for it in items)
        gone = {it.id for it in remove}
        for it in remove:
            users[it.name] -= 1
        doomed = {it.name: it.size for it in remove if users[it.name] == 0}
        kept = [it for it in items if it.id not in gone]
        # Listed oldest first whatever chose them (--all takes them in key order).
        report = PurgeReport(oldest_first(remove), sum(doomed.values()), len(doomed), self.usage(kept))
        if dry_run or not remove:
            return report
        # The decision first, with what it leaves to do: a kill from here on
        # is finished by the next command (finish_purge).
        for it in remove:
            self.index.trash_drop(it)
        self.index.set_meta_json(PURGING_KEY, sorted(doomed))
        self.index.commit()
        self._remove(sorted(doomed))
        return report

    def _remove(self, names: list[str]) -> None:
        for name in names:
            full = self.path_of(name)
            faults.point("unlink")
            try:
                if os.path.isdir(full) and not os.path.islink(full):
                    shutil.rmtree(full)
                else:
                    os.unlink(full)
            except FileNotFoundError:
                pass
        if names and os.path.isdir(self.dir):
            fsync_dir(self.dir)
        self.index.drop_meta(PURGING_KEY)
        self.index.commit()

    def pending_purge(self) -> list[str]:
        names = self.index.get_meta_json(PURGING_KEY, [])
        return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []

    def finish_purge(self) -> int:
        """Remove the files a purge killed halfway still had to remove (any
        that a record has needed since stay). Returns how many it removed."""
        names = self.pending_purge()
        if not names and self.index.get_meta_json(PURGING_KEY) is None:
            return 0
        needed = {it.name for it in self.items()}
        todo = [n for n in names if n not in needed and _safe_name(n)]
        self._remove(todo)
        return len(todo)

    def apply_policy(self, now: int | None = None, dry_run: bool = False) -> PurgeReport | None:
        """Purge what the retention policy lets go; None without a policy."""
        policy = self.policy()
        if policy.keeps_everything:
            return None
        items = self.items()
        remove = by_policy(items, policy, int(time.time()) if now is None else now)
        return self.purge(remove, items, dry_run)

    # Keeping the records and the folder in step ---------------------------------------------
    def unrecorded(self, items: list[TrashItem] | None = None) -> list[str]:
        """Names in the folder that no item (and no pending purge) accounts for."""
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        items = self.items() if items is None else items
        known = {it.name for it in items} | set(self.pending_purge())
        return sorted(n for n in names if n not in known)

    def adopt(self, paths_by_oid: dict[bytes, bytes], cause: str) -> list[TrashItem]:
        """Give an item to each content file or leftovers folder the folder
        holds without one; its path from `paths_by_oid` where known. Other
        names are left alone (`problems` reports them). Not committed."""
        out = []
        for name in self.unrecorded():
            full = self.path_of(name)
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                continue
            # When it came in: its inode changed then (a rename sets ctime).
            when = int(st.st_ctime)
            if _OID_NAME.fullmatch(name) and statmod.S_ISREG(st.st_mode):
                oid = bytes.fromhex(name)
                item = TrashItem(
                    self.index.next_trash_id(),
                    oid,
                    paths_by_oid.get(oid, b""),
                    st.st_size,
                    when,
                    TrashReason(cause),
                    st.st_mtime_ns,
                )
            elif name.startswith(LEFTOVERS_PREFIX) and statmod.S_ISDIR(st.st_mode) and name.isascii():
                reason = TrashReason(LEFTOVERS)  # only a sync removing a folder makes these
                item = TrashItem(self.index.next_trash_id(), None, b"", folder_size(full), when, reason, None, name)
            else:
                continue
            self.index.trash_put(item)
            out.append(item)
        return out

    def drop_missing(self, items: list[TrashItem]) -> list[TrashItem]:
        """Drop the items whose content file is gone (removed by hand). Not committed."""
        out = [it for it in items if not os.path.lexists(self.path_of(it.name))]
        for it in out:
            self.index.trash_drop(it)
        return out

    def problems(self) -> list[str]:
        """What does not match between the records and the folder."""
        out = []
        items = self.items()
        if self.pending_purge():
            out.append(
                "trash: a purge was interrupted; any command that writes (`sq scan`) removes what it left behind"
            )
        for it in items:
            full = self.path_of(it.name)
            try:
                st = os.lstat(full)
            except FileNotFoundError:
                out.append(f"trash: item {it.id} ({paths.display(it.path)}): .squirrel/trash/{it.name} is missing")
                continue
            if it.oid is not None and (not statmod.S_ISREG(st.st_mode) or st.st_size != it.size):
                out.append(
                    f"trash: item {it.id} ({paths.display(it.path)}): .squirrel/trash/{it.name}"
                    " is not the file its record describes"
                )
            elif it.oid is None and not statmod.S_ISDIR(st.st_mode):
                out.append(f"trash: item {it.id}: .squirrel/trash/{it.name} is not a folder")
        for name in self.unrecorded(items):
            out.append(
                f"trash: .squirrel/trash/{name} has no record in the index"
                " (`sq trash purge` records it, and can then remove it)"
            )
        return out


def _safe_name(name: str) -> bool:
    """A name a purge may remove: a content file or a leftovers folder, never a path."""
    return bool(_OID_NAME.fullmatch(name)) or (
        name.startswith(LEFTOVERS_PREFIX) and "/" not in name and name not in (".", "..")
    )
