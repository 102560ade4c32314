"""The carrier: the laptop's replica of a vault's metadata, holding content
only for versions some known drive still lacks. Layout: docs/formats/carrier.md.

    CARRIER/carrier.json                 format and size budget
    CARRIER/vaults/VAULT/.squirrel/      the carrier's own replica (identity, index, lock)
    CARRIER/vaults/VAULT/objects/        content objects (objects.ObjectStore)
    CARRIER/vaults/VAULT/drives/ID.json  each known drive's knowledge and last visit
    CARRIER/vaults/VAULT/forgotten/ID.json  drives the user said are gone (`sq carrier forget`)

The carrier is a Tra replica with no files: `carrier_executor` carries out
a plan on its index, storing content only where another known drive needs it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from squirrel.errors import (
    BadPath,
    CorruptCarrier,
    IdentityConflict,
    UnsupportedFormat,
)
from squirrel.plumbing import faults
from squirrel.plumbing.durable import fsync_dir, write_file_atomic
from squirrel.plumbing.idset import ObjectIds
from squirrel.plumbing.index import ReplicaIndex
from squirrel.plumbing.knowledge import Knowledge
from squirrel.plumbing.objects import ObjectStore
from squirrel.plumbing.replica import CARRIER_CONFIG, REPLICA_MARKER, Replica, enclosing
from squirrel.plumbing.vtime import VectorTime, is_replica_id

CARRIER_FORMAT = 2  # 2: small objects in packs (objects/packs/); this sq reads 1 as well
CARRIER_NAME = "carrier"  # the name of every carrier's own replica of a vault


def is_carrier(path: str) -> bool:
    return os.path.isfile(os.path.join(path, CARRIER_CONFIG))


class Carrier:
    """The carrier directory: its config and the vaults it serves."""

    def __init__(self, root: str, create: bool = False, *, hold_writes: bool = False) -> None:
        """With `hold_writes` (a dry run), the carrier is made and its
        settings are changed in memory only: nothing is written."""
        self.root = os.path.abspath(root)
        self.config_path = os.path.join(self.root, CARRIER_CONFIG)
        self._open: dict[str, ObjectStore] = {}  # vault id -> the store of the vault open here
        self._held = hold_writes
        self.config: dict[str, Any] = {}
        self.made = False  # made by this opening
        if not is_carrier(self.root):
            _refuse_drive(self.root)
            if os.path.exists(self.root) and not os.path.isdir(self.root):
                raise BadPath(f"not a directory: {self.root}")
            if not create:
                raise BadPath(f"not a carrier: {self.root} (no {CARRIER_CONFIG})")
            refuse_occupied(self.root)
            if not self._held:
                os.makedirs(os.path.join(self.root, "vaults"), exist_ok=True)
            # The folder, made or not yet, is on the file system of the
            # nearest folder above it that exists.
            free = shutil.disk_usage(_nearest_existing(self.root)).free
            # A budget must exist: start with half of the free space, and say so.
            self._write({"format": CARRIER_FORMAT, "max_size": free // 2})
            self.made = True
        if not self.made:
            self.config = self._read()

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.config_path, "rb") as f:
                cfg = json.loads(f.read())
        except (OSError, ValueError) as e:
            raise CorruptCarrier(f"damaged carrier config {self.config_path}: {e}") from e
        if not isinstance(cfg, dict) or not isinstance(cfg.get("format"), int):
            raise CorruptCarrier(f"damaged carrier config {self.config_path}")
        if cfg["format"] > CARRIER_FORMAT:
            raise UnsupportedFormat(f"carrier {self.root} has format {cfg['format']}, newer than this sq; upgrade")
        if not isinstance(cfg.get("max_size"), int) or cfg["max_size"] < 0:
            raise CorruptCarrier(f"damaged carrier config {self.config_path}: max_size")
        scrub = cfg.get("scrub")
        if scrub is not None and (type(scrub) is not int or scrub < 0):
            raise CorruptCarrier(f"damaged carrier config {self.config_path}: scrub")
        return cfg

    def _write(self, cfg: dict[str, Any]) -> None:
        self.config = cfg
        if not self._held:
            write_file_atomic(self.config_path, json.dumps(cfg, indent=1, sort_keys=True).encode())

    def holds_packs(self) -> None:
        """Record, before a store writes its first pack, that this carrier
        may hold packs: a carrier of format 1 becomes format 2, which an
        `sq` that does not read packs refuses instead of misreading."""
        if self.config.get("format", CARRIER_FORMAT) < CARRIER_FORMAT:
            self._write({**self.config, "format": CARRIER_FORMAT})

    @property
    def max_size(self) -> int:
        return int(self.config["max_size"])

    def set_max_size(self, size: int) -> None:
        self.config["max_size"] = size
        self._write(self.config)

    @property
    def scrub(self) -> int:
        """The content a visit re-reads on the drive to find rot (0: none)."""
        return int(self.config.get("scrub") or 0)

    def set_scrub(self, size: int) -> None:
        self.config["scrub"] = size
        self._write(self.config)

    def vault_ids(self) -> list[str]:
        d = os.path.join(self.root, "vaults")
        try:
            return sorted(v for v in os.listdir(d) if is_replica_id(v))
        except FileNotFoundError:
            return []

    def vault_dir(self, vault: str) -> str:
        return os.path.join(self.root, "vaults", vault)

    def usage(self) -> int:
        """Bytes of content held, over every vault (a vault open here is
        asked of its store, which knows its objects' sizes already)."""
        total = 0
        for v in self.vault_ids():
            d = self.vault_dir(v)
            store = self._open.get(v) or ObjectStore(os.path.join(d, "objects"), os.path.join(d, ".squirrel", "tmp"))
            total += store.usage()
        return total

    def open_vault(self, vault: str, create: bool = False) -> CarrierVault:
        d = self.vault_dir(vault)
        if not os.path.isdir(os.path.join(d, ".squirrel")):
            if not create:
                raise BadPath(f"the carrier {self.root} does not serve vault {vault}")
            os.makedirs(d, exist_ok=True)
            rep = Replica.create(d, name=CARRIER_NAME, vault=vault)
        else:
            rep = Replica.open(d)
        return CarrierVault(self, rep)


@dataclass(frozen=True)
class DriveRecord:
    """What the carrier remembers of a drive (`drives/ID.json`): what it
    knew at its last visit (its sync times), when that was, and the marks
    the carrier left on it. The content it held is in `drives/ID.objects`.
    A forgotten drive's record (`forgotten/ID.json`) also says when it was
    forgotten."""

    id: str
    name: str
    last_visit: int
    tokens: tuple[str, ...]
    knowledge: Knowledge
    forgotten: int | None = None
    objects_of: str = ""  # the state of the drive's index its `drives/ID.objects` was read from
    scrubbed: int | None = None  # when the drive was last fully scrubbed, as it said at its last visit

    def to_json(self) -> dict[str, Any]:
        doc = self.knowledge.to_json(objects=False)  # the content list has its own file
        doc.update(name=self.name, last_visit=self.last_visit, tokens=list(self.tokens))
        if self.forgotten is not None:
            doc.update(forgotten=self.forgotten)
        if self.objects_of:
            doc.update(objects_of=self.objects_of)
        if self.scrubbed is not None:
            doc.update(last_full_scrub=self.scrubbed)
        return doc

    @classmethod
    def from_json(cls, drive_id: str, doc: Any) -> DriveRecord:
        """Raises ValueError when the document is not a drive record."""
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        name, last_visit, tokens = doc.get("name", drive_id), doc.get("last_visit", 0), doc.get("tokens", [])
        if not isinstance(name, str) or type(last_visit) is not int:
            raise ValueError("name or last_visit")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ValueError("tokens")
        forgotten, scrubbed = doc.get("forgotten"), doc.get("last_full_scrub")
        if forgotten is not None and type(forgotten) is not int:
            raise ValueError("forgotten")
        objects_of = doc.get("objects_of", "")
        if not isinstance(objects_of, str):
            raise ValueError("objects_of")
        if scrubbed is not None and type(scrubbed) is not int:
            raise ValueError("last_full_scrub")
        return cls(drive_id, name, last_visit, tuple(tokens), Knowledge.from_json(doc), forgotten, objects_of, scrubbed)

    def known_again(self) -> DriveRecord:
        return replace(self, forgotten=None)


def read_objects(path: str) -> ObjectIds:
    """A drive's object list (drives/ID.objects): concatenated 32-byte ids."""
    try:
        with open(path, "rb") as f:
            return ObjectIds.read(f.read())
    except FileNotFoundError:
        return ObjectIds()


class CarrierVault:
    """One vault's part of the carrier: its replica, objects and known drives."""

    def __init__(self, carrier: Carrier, replica: Replica) -> None:
        self.carrier = carrier
        self.rep = replica
        self.dir = replica.root
        self.store = ObjectStore(os.path.join(self.dir, "objects"), replica.tmp_dir, carrier.holds_packs)
        carrier._open[os.path.basename(self.dir)] = self.store
        self.drives_dir = os.path.join(self.dir, "drives")
        self.forgotten_dir = os.path.join(self.dir, "forgotten")
        os.makedirs(self.drives_dir, exist_ok=True)
        self._drives: list[DriveRecord] | None = None
        self._objects: dict[str, ObjectIds] = {}

    @property
    def index(self) -> ReplicaIndex:
        return self.rep.index

    def close(self) -> None:
        self.carrier._open.pop(os.path.basename(self.dir), None)
        self.store.close()
        self.rep.close()

    def drives(self) -> list[DriveRecord]:
        """Every known drive, as recorded at its last visit. Read once and
        kept until a record changes (a visit asks several times)."""
        if self._drives is None:
            # A record in drives/ is a known drive, whatever else it says.
            self._drives = [self._read_drive(self.drives_dir, i).known_again() for i in _record_ids(self.drives_dir)]
        return list(self._drives)

    def forgotten(self) -> list[DriveRecord]:
        """The drives the user said are gone (`forget`). A drive with a record
        in `drives/` too is known: a crash, or an older sq that visited it,
        left the forgotten record behind."""
        known = {d.id for d in self.drives()}
        ids = [i for i in _record_ids(self.forgotten_dir) if i not in known]
        return [self._read_drive(self.forgotten_dir, i) for i in ids]

    def _read_drive(self, directory: str, drive_id: str) -> DriveRecord:
        path = os.path.join(directory, drive_id + ".json")
        try:
            with open(path, "rb") as f:
                return DriveRecord.from_json(drive_id, json.loads(f.read()))
        except (OSError, ValueError) as e:
            raise CorruptCarrier(f"damaged drive record {path}: {e}") from e

    def _known(self, drive_id: str) -> DriveRecord | None:
        return next((d for d in self.drives() if d.id == drive_id), None)

    def record_of(self, drive_id: str) -> DriveRecord | None:
        """The drive's record, known or forgotten; None for a drive never visited."""
        known = self._known(drive_id)
        if known is not None:
            return known
        return next((d for d in self.forgotten() if d.id == drive_id), None)

    def forget(self, drive_id: str, when: int) -> DriveRecord:
        """Stop carrying for a known drive: its record moves to `forgotten/`.
        The forgotten record is written first, so a crash in between leaves
        the drive known (a record in `drives/` wins) and forgetting it again
        finishes the move. Its object list stays in `drives/`: should the
        drive come back, the carrier still knows what it held."""
        known = self._known(drive_id)
        if known is None:
            raise BadPath(f"the carrier knows no drive {drive_id} in vault {self.rep.identity.vault}")
        record = replace(known, forgotten=when)
        os.makedirs(self.forgotten_dir, exist_ok=True)
        write_file_atomic(self._record_path(self.forgotten_dir, drive_id), _dump(record))
        self._drives = None
        _unlink_durably(self._record_path(self.drives_dir, drive_id))
        return record

    def take_back(self, drive_id: str) -> DriveRecord | None:
        """A forgotten drive that turns up again is known again, with the
        record (knowledge, content, marks) it had when it was forgotten.
        Returns that record, or None when the drive was not forgotten."""
        record = next((d for d in self.forgotten() if d.id == drive_id), None)
        if record is None:
            return None
        write_file_atomic(self._record_path(self.drives_dir, drive_id), _dump(record.known_again()))
        self._drives = None
        _unlink_durably(self._record_path(self.forgotten_dir, drive_id))
        return record

    def _record_path(self, directory: str, drive_id: str) -> str:
        return os.path.join(directory, drive_id + ".json")

    def objects_of(self, drive: DriveRecord) -> ObjectIds:
        """The content the drive held at its last visit; read on first use
        (a quiet visit never needs it)."""
        if drive.id not in self._objects:
            self._objects[drive.id] = read_objects(self._objects_path(drive.id))
        return self._objects[drive.id]

    def lacks(self, drive: DriveRecord, path: bytes, m: VectorTime, oid: bytes | None) -> bool:
        """Would delivering this version to the drive need its content? Not
        when the drive does not know it only because identical content was
        met on both sides (a join), or holds the content elsewhere (a move)."""
        if m <= drive.knowledge.sync_time(path):
            return False
        return oid is None or oid not in self.objects_of(drive)

    def _objects_path(self, drive_id: str) -> str:
        return os.path.join(self.drives_dir, drive_id + ".objects")

    def record_drive(self, replica: Replica, tokens: list[str] | None = None, objects: bool = False) -> None:
        """Remember what a drive knows now (its sync times), and when we saw
        it; with `objects`, also the content it holds (once per visit: a pass
        over the drive's index, which is skipped when the index has not
        changed since the list was read: a quiet visit of a million files
        would spend seconds on it)."""
        known = self._known(replica.id)
        if tokens is None:
            tokens = list(known.tokens) if known is not None else []
        objects_of = known.objects_of if known is not None else ""
        know, scrubbed = Knowledge.of_replica(replica), replica.index.scrub_state().last_full
        if objects:
            state = replica.index.state()
            if state != objects_of or not os.path.exists(self._objects_path(replica.id)):
                # Not the content its damaged files wait for: the drive lacks it.
                self._objects.pop(replica.id, None)
                write_file_atomic(self._objects_path(replica.id), know.held_objects().raw)
                objects_of = state
        record = DriveRecord(
            replica.id, replica.name, int(time.time()), tuple(tokens), know, None, objects_of, scrubbed
        )
        self._drives = None
        write_file_atomic(self._record_path(self.drives_dir, replica.id), _dump(record))
        stale = self._record_path(self.forgotten_dir, replica.id)
        if os.path.exists(stale):  # left by an older sq that visited a forgotten drive
            _unlink_durably(stale)

    def _token_file(self, replica: Replica) -> str:
        return os.path.join(replica.sq_dir, f"carrier-{self.rep.id}")

    def check_token(self, replica: Replica) -> None:
        """A drive shows the token the carrier gave it on its last visit. A
        clone of a drive that has visited since shows an old one."""
        record = self.record_of(replica.id)
        tokens = record.tokens if record is not None else ()
        if not tokens:
            return
        try:
            with open(self._token_file(replica), encoding="ascii") as f:
                token = f.read().strip()
        except (OSError, ValueError):
            token = ""
        if token not in tokens:
            raise IdentityConflict(
                f"{replica.root} carries the identity of {replica.name}, but not the mark the carrier left on"
                f" {replica.name} at its last visit: a cloned drive, or one restored from a backup."
                f" Give it a new identity with `sq reidentify {replica.root}`"
            )

    def rotate_token(self, replica: Replica) -> None:
        """Leave a new mark on the drive. Either mark is accepted until the
        drive holds the new one, so a crash in between is harmless."""
        try:
            with open(self._token_file(replica), encoding="ascii") as f:
                current = f.read().strip()
        except (OSError, ValueError):
            current = ""
        new = os.urandom(16).hex()
        # The current mark ("" for a drive not marked yet) stays accepted
        # until the drive holds the new one.
        self.record_drive(replica, [current, new], objects=True)
        write_file_atomic(self._token_file(replica), new.encode())
        self.record_drive(replica, [new])

    def needed_by_others(self, path: bytes, m: VectorTime, oid: bytes, others: Iterable[DriveRecord]) -> bool:
        return any(self.lacks(d, path, m, oid) for d in others)

    def unneeded(self, drives: list[DriveRecord] | None = None) -> list[tuple[bytes, int]]:
        """(id, size) of every object held that no drive of `drives` (by
        default every known drive) lacks."""
        drives = self.drives() if drives is None else drives
        wanted = self.wanted(drives)
        stored = [(oid, size) for oid, size in self.store if oid not in wanted]
        # An object is needed when a drive without its content (at any
        # path: one that holds it lacks no version of it) lacks a version
        # of it. Each drive without some stored object walks what it lacks
        # once (`lacking_files`); once a visit has delivered everything,
        # no drive does.
        needs: dict[str, set[bytes]] = {}  # drive id -> the stored objects it is without
        for oid, _ in stored:
            for d in drives:
                if oid not in self.objects_of(d):
                    needs.setdefault(d.id, set()).add(oid)
        needed: set[bytes] = set()
        for d in drives:
            if d.id in needs:
                needed.update(oid for _, oid, _ in self.lacking_files(d) if oid in needs[d.id])
        return [(oid, size) for oid, size in stored if oid not in needed]

    def wanted(self, drives: list[DriveRecord] | None = None) -> dict[bytes, list[tuple[DriveRecord, bytes]]]:
        """Object id -> (drive, path) of every damaged file a known drive
        waits to have healed, as recorded at its last visit."""
        out: dict[bytes, list[tuple[DriveRecord, bytes]]] = {}
        for d in self.drives() if drives is None else drives:
            for p, oid in d.knowledge.wanted.items():
                out.setdefault(oid, []).append((d, p))
        return out

    def lacking_files(self, drive: DriveRecord) -> Iterator[tuple[bytes, bytes, int]]:
        """(path, object id, size) of every file version in the carrier's
        tree that `drive` does not know, skipping every subtree it knows.
        Entries are not decoded, and a modification time is compared once
        per distinct encoding (the files of one scan share theirs)."""
        idx = self.index
        children, fields, below_of = idx.children_raw, idx.file_fields, drive.knowledge.sync_time_below
        decode_m = VectorTime.decode_from

        def walk(path: bytes, sync: VectorTime, known: dict[bytes, bool]) -> Iterator[tuple[bytes, bytes, int]]:
            prefix = path + b"/" if path else b""
            for name, raw in children(path):
                cp = prefix + name
                below = below_of(cp, sync)
                here = known if below is sync else {}
                f = fields(raw)
                if f is None:
                    if not idx.decode(raw).m <= below:
                        yield from walk(cp, below, here)
                    continue
                tail = raw[f[2] :]  # m, then c when it differs: the same bytes, the same answer
                lacks = here.get(tail)
                if lacks is None:
                    lacks = here[tail] = not decode_m(raw, f[2])[0] <= below
                if lacks:
                    yield cp, f[0], f[1]

        root = idx.get(b"")
        sync = drive.knowledge.sync_time(b"")
        if root is not None and not root.m <= sync:
            yield from walk(b"", sync, {})

    def everyone_knows(self) -> VectorTime | None:
        """What every replica of the vault knows, everywhere in it: the meet
        of the sync times at the root (a path's sync time is never below its
        folder's) of the carrier and of every drive it knows. None while
        the carrier has heard of a replica (by name, or by its events) that
        it has never visited: what that one knows is not known. Forgotten
        drives are not waited for, as with content."""
        drives = self.drives()
        heard = set(self.rep.names()) | set(self.index.sync_time(b""))
        accounted = {d.id for d in drives} | {d.id for d in self.forgotten()} | {self.rep.id}
        if not drives or heard - accounted:
            return None
        everyone = self.index.sync_time(b"")
        for d in drives:
            everyone = everyone.meet(d.knowledge.sync_time(b""))
        return everyone

    def drop_unneeded(self) -> tuple[int, int]:
        """Drop every object that every known drive has; returns (count, bytes)."""
        unneeded = self.unneeded()
        _, freed = self.store.delete_many(oid for oid, _size in unneeded)
        return len(unneeded), freed


def _refuse_drive(root: str) -> None:
    """A replica (a drive) is never a carrier, and no carrier is made inside
    one: its files would be scanned and synced as the drive's own."""
    if os.path.isfile(os.path.join(root, REPLICA_MARKER)):
        raise BadPath(f"{root} is a replica (a drive), not a carrier: give the carrier's own folder")
    outer = enclosing(root, REPLICA_MARKER)
    if outer is not None:
        raise BadPath(
            f"{root} is inside the replica {outer}: a carrier there would be synced as the drive's files;"
            " give a folder outside every drive"
        )


def _nearest_existing(path: str) -> str:
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def refuse_occupied(root: str) -> None:
    """A carrier is made only where nothing is yet (no folder, or an empty
    one): a mistyped --carrier naming an ordinary folder must neither fill
    it with a carrier's files nor start a carrier beside the user's own."""
    try:
        occupied = bool(os.listdir(root))
    except FileNotFoundError:
        return
    if occupied:
        raise BadPath(
            f"not a carrier: {root} (no {CARRIER_CONFIG}, and the folder is not empty);"
            " a carrier is made (by `sq sync` or `sq carrier config --max-size`) only in a folder"
            " that does not exist yet or is empty"
        )


def recorded_drives(root: str) -> list[tuple[str, str]]:
    """(replica id, name) of every drive the carrier at `root` keeps a
    record of, known or forgotten, in every vault. Read from the records
    alone: no index is opened and no lock taken, so that it is quick and
    never waits (shell completion asks). Unreadable records are passed over."""
    found = []
    vaults = os.path.join(root, "vaults")
    for vault in sorted(os.listdir(vaults)) if os.path.isdir(vaults) else []:
        for sub in ("drives", "forgotten"):
            directory = os.path.join(vaults, vault, sub)
            for drive_id in _record_ids(directory):
                try:
                    with open(os.path.join(directory, drive_id + ".json"), "rb") as f:
                        name = json.loads(f.read()).get("name", drive_id)
                except (OSError, ValueError, AttributeError):
                    continue
                if isinstance(name, str):
                    found.append((drive_id, name))
    return found


def _record_ids(directory: str) -> list[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(n[:-5] for n in names if n.endswith(".json") and is_replica_id(n[:-5]))


def _dump(record: DriveRecord) -> bytes:
    return json.dumps(record.to_json(), sort_keys=True).encode()


def _unlink_durably(path: str) -> None:
    try:
        faults.point("unlink")
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_dir(os.path.dirname(path))


def carrier_dir_from(explicit: str | None, environ: dict[str, str]) -> str:
    """--carrier, else SQ_CARRIER, else $XDG_DATA_HOME/squirrel/carrier."""
    if explicit:
        return explicit
    if environ.get("SQ_CARRIER"):
        return environ["SQ_CARRIER"]
    home = environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir
    base = environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return os.path.join(base, "squirrel", "carrier")
