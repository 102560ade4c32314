"""`sq trash restore PATH ITEM [--to DEST]`: a version back out of the trash.

ITEM is an item's number (`sq trash list`), a path (its newest version), or
a folder (the newest version of every path that was below it). Each version
comes back byte-exact, checked against its object id, at its old path or
under DEST, with its old modification time; missing folders above it are
made. Nothing is ever overwritten: a taken path refuses the whole restore
before anything is written.

The restored file is an ordinary local edit: the next scan records it and
it travels to the other replicas like any other. Its item leaves the
trash, and so does its content file when no other item needs it (then it
is moved out, not copied).

Crash safety: the intent log (plumbing/journal.py) lists each folder made
and each file placed before any is; the index drops the items in the same
commit as the batch's id. A restore killed before that commit is undone by
the next command that writes (the files go back into the trash, the new
folders go), one killed after it is done.
"""

from __future__ import annotations

import errno
import os
import stat as statmod
from collections import Counter
from dataclasses import dataclass

from squirrel.errors import BadUsage, ContentUnavailable, NoSuchTrashItem, PathTaken, SquirrelError, UnsafePath
from squirrel.plumbing import faults, fsops, ids, journal, paths, place
from squirrel.plumbing.casefold import CaseFolding
from squirrel.plumbing.durable import fsync_dir
from squirrel.plumbing.progress import Meter, ProgressCallback
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.trash import TrashItem, newest_first

_NO_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS)


@dataclass(frozen=True)
class Restored:
    """One version brought back from the trash."""

    item: TrashItem
    to: bytes  # where it is (or, with dry_run, would be) now


@dataclass
class RestoreReport:
    """The versions a restore brought back (or, with dry_run, would)."""

    restored: list[Restored]
    dry_run: bool = False

    @property
    def bytes(self) -> int:
        return sum(r.item.size for r in self.restored)


def by_number(items: list[TrashItem], number: int) -> tuple[list[TrashItem], bytes] | None:
    """The item numbered `number`, and its path; None when there is none."""
    found = [it for it in items if it.id == number]
    return (_versions_only(found), found[0].path) if found else None


def by_path(items: list[TrashItem], spec: bytes) -> tuple[list[TrashItem], bytes]:
    """The newest version of `spec`, or of every path below the folder
    `spec`; and `spec`, the path they are restored relative to."""
    newest = newest_first(items)
    exact = [it for it in newest if it.path == spec and it.oid is not None] if spec else []
    if exact:
        return exact[:1], spec
    below: dict[bytes, TrashItem] = {}
    for it in newest:
        if it.oid is not None and it.path and it.path != spec and paths.is_under(it.path, spec):
            below.setdefault(it.path, it)
    if below:
        return sorted(below.values(), key=lambda it: it.path), spec
    folders = [it for it in newest if it.path == spec] if spec else []
    if folders:
        return _versions_only(folders[:1]), spec
    raise NoSuchTrashItem(f"nothing in the trash was at {paths.display(spec)} or below it (see `sq trash list`)")


def _versions_only(items: list[TrashItem]) -> list[TrashItem]:
    for it in items:
        if it.oid is None:
            raise BadUsage(
                f"item {it.id} is a folder of ignored files ({it.reason.text}); copy what you need by hand"
                f" from .squirrel/trash/{it.name}/"
            )
    return items


def _target(root: bytes, item: TrashItem, base: bytes, dest: bytes | None) -> bytes:
    """Where `item` goes: its own path, or DEST in place of `base` (inside
    DEST, under `base`'s name, when DEST is a folder already)."""
    if dest is None:
        if not item.path:
            raise BadUsage(f"the old path of item {item.id} is not known; restore it with --to DEST")
        return item.path
    full = fsops.abspath(root, dest)
    if os.path.isdir(full) and not os.path.islink(full):
        name = paths.split(base)[1]
        if not name and item.path == base and item.oid is not None:  # one version, its path unknown
            name = item.oid.hex().encode()
        dest = paths.join(dest, name) if name else dest
    rest = item.path[len(base) :].lstrip(b"/") if base else item.path
    return paths.join(dest, rest) if rest else dest


def restore(
    path: str, spec: str, dest: str | None = None, dry_run: bool = False, progress: ProgressCallback | None = None
) -> RestoreReport:
    """Restore what ITEM (`spec`) names, at its old path or under `dest`;
    `progress` hears how the check of the trash's copies, then their
    placing, go."""
    with Replica.open(path, write=not dry_run) as rep:
        root = os.fsencode(rep.root)
        items = rep.trash.items()
        # A number is an item's; a path that looks like one is still found.
        found = by_number(items, int(spec)) if spec.isdigit() else None
        chosen, base = found or by_path(items, paths.user_relpath(rep.root, spec))
        to = paths.user_relpath(rep.root, dest) if dest is not None else None
        plan = [Restored(it, _target(root, it, base, to)) for it in chosen]
        dirs = _check_targets(rep, root, plan)
        size = sum(r.item.size for r in plan)
        checking = Meter(f"checking the trash's copies in {rep.name}", progress, len(plan), size)
        versions = [_check_content(rep, r, checking) for r in plan]
        if dry_run:
            return RestoreReport(plan, dry_run=True)
        _restore(rep, root, plan, dirs, versions, items, Meter(f"restoring to {rep.name}", progress, len(plan), size))
        rep.trash.apply_policy()
        return RestoreReport(plan)


def _check_content(rep: Replica, r: Restored, meter: Meter) -> journal.FileVersion:
    """The version to put back, read from the trash's file and checked
    against its id before anything is written."""
    assert r.item.oid is not None
    full = rep.trash.path_of(r.item.name)
    before = meter.progress.bytes_done
    try:
        st = os.stat(full)
        good = statmod.S_ISREG(st.st_mode) and ids.hash_file(full, meter.add_bytes)[0] == r.item.oid
    except (OSError, SquirrelError):
        good = False
    meter.file_done(r.item.size, meter.progress.bytes_done - before)
    if not good:
        raise ContentUnavailable(
            f"the trash's copy of {paths.display(r.item.path)} (item {r.item.id}) is missing or damaged;"
            " nothing was restored"
        )
    mtime = r.item.mtime_ns if r.item.mtime_ns is not None else st.st_mtime_ns
    return journal.FileVersion(r.item.oid, r.item.size, mtime, statmod.S_IMODE(st.st_mode))


def _check_targets(rep: Replica, root: bytes, plan: list[Restored]) -> list[bytes]:
    """Refuse unless every target is free and every folder above it is a
    real folder or missing; returns the folders to make, parents first."""
    taken: list[bytes] = []
    make: set[bytes] = set()
    names = CaseFolding(root, rep.tmp_dir)
    targets = [r.to for r in plan]
    if len(set(targets)) != len(targets):
        raise PathTaken("two versions would be restored to the same path; restore them one by one")
    for r in plan:
        paths.check_relpath(r.to)
        for anc in reversed(list(paths.ancestors(r.to))):
            if not anc or anc in make:
                continue
            st = fsops.lstat_or_none(fsops.abspath(root, anc))
            if st is None:
                make.add(anc)
            elif statmod.S_ISLNK(st.st_mode):
                raise UnsafePath(f"refusing to restore through {paths.display(anc)}: a symlink")
            elif not statmod.S_ISDIR(st.st_mode):
                raise PathTaken(f"cannot restore {paths.display(r.to)}: {paths.display(anc)} is a file")
        if os.path.lexists(fsops.abspath(root, r.to)):
            taken.append(r.to)
        elif paths.parent_of(r.to) not in make:
            names.claim(r.to)
    if taken:
        shown = ", ".join(paths.display(t) for t in taken[:3]) + (
            f" and {len(taken) - 3} more" if len(taken) > 3 else ""
        )
        raise PathTaken(f"{shown} exists; nothing was restored (restore elsewhere with --to DEST)")
    return sorted(make, key=lambda d: (d.count(b"/"), d))


def _restore(
    rep: Replica,
    root: bytes,
    plan: list[Restored],
    dirs: list[bytes],
    versions: list[journal.FileVersion],
    items: list[TrashItem],
    meter: Meter,
) -> None:
    users = Counter(it.name for it in items)
    steps = [journal.made_dir(d) for d in dirs]
    steps += [journal.Step(journal.PLACED, r.to, v) for r, v in zip(plan, versions, strict=True)]
    with rep.journal.batch(rep.index, steps):
        for d in dirs:
            place.check_parents(root, d)
            os.mkdir(fsops.abspath(root, d))
        for r, v in zip(plan, versions, strict=True):
            users[r.item.name] -= 1
            before = meter.progress.bytes_done
            _place(rep, root, r, v, users[r.item.name] == 0, meter)
            meter.file_done(v.size, meter.progress.bytes_done - before)
            rep.index.trash_drop(r.item)
        for d in {paths.parent_of(r.to) for r in plan} | {paths.parent_of(d) for d in dirs}:
            fsync_dir(os.fsdecode(fsops.abspath(root, d)))
        fsync_dir(rep.trash_dir)  # what left it


def _place(rep: Replica, root: bytes, r: Restored, v: journal.FileVersion, last: bool, meter: Meter) -> None:
    """Put the version at `r.to`: the trash's file itself when no other
    item needs it, else a copy (checked against its id as it is made)."""
    src = os.fsencode(rep.trash.path_of(r.item.name))
    if last:
        new = src
    else:
        chunks = meter.stream(fsops.read_chunks(src))
        new = os.fsencode(fsops.write_temp(rep.tmp_dir, chunks, v.oid, v.size, v.mtime_ns, v.mode))
    place.check_parents(root, r.to)
    dest = fsops.abspath(root, r.to)
    # Never over a file that appeared meanwhile: a hard link refuses an
    # existing name; where there are none, the name is checked right before.
    try:
        faults.point("rename")
        os.link(new, dest, follow_symlinks=False)
        faults.point("unlink")
        os.unlink(new)
    except FileExistsError:
        raise PathTaken(f"{paths.display(r.to)} appeared meanwhile; run the restore again") from None
    except OSError as e:
        if e.errno not in _NO_LINKS:
            raise
        if os.path.lexists(dest):
            raise PathTaken(f"{paths.display(r.to)} appeared meanwhile; run the restore again") from None
        faults.point("rename")
        os.rename(new, dest)
    faults.point("utime")
    os.utime(dest, ns=(v.mtime_ns, v.mtime_ns), follow_symlinks=False)
