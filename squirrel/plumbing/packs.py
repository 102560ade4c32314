"""Packs: many small objects of the carrier in one file (docs/formats/carrier.md).

A carrier holds, for a while, the small files a drive changed: a
photo library's thumbnails and sidecars, tens of thousands at a time.
Each as a file of its own, a visit that delivers them to the last drive
that lacked them then deletes them one by one, and on a file system that
frees each file's blocks with the device (ext4 mounted with `discard`)
dropping 100,000 objects took 12-17 s, as long as copying them. Packed,
they are written as one file and dropped as one.

    objects/packs/NAME.pack   a header, then the objects' bytes one after another
    objects/packs/NAME.idx    where each object lies in the pack: the pack
                              is whole, and its objects stored, once this exists

An object in a pack is verified against its id on the way in, as a file
of its own is, and again by whoever copies it out (the copy is hashed).
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import blake3

from squirrel.errors import CorruptCarrier, UnsupportedFormat
from squirrel.plumbing import faults
from squirrel.text import counted

PACK_VERSION = 1
PACK_MAGIC = b"SQPACK\x00\x00"
INDEX_MAGIC = b"SQPKIDX\x00"
PACK_HEADER = struct.Struct("<8sII")  # magic, version, 0
INDEX_HEADER = struct.Struct("<8sIIQ")  # magic, version, count, the pack's size in bytes
ENTRY = struct.Struct("<32sQQ")  # object id, offset in the pack, size
CHECKSUM = 32  # an index ends with the blake3 hash of every byte before it
FLUSH = 1 << 20  # a pack being written takes its objects' bytes in writes of about this many


@dataclass
class Pack:
    """A pack in the store: its name, its file's size, its entries (id,
    offset, size, sorted by id) and how many of them the store still
    serves from it (`live`, `live_bytes`)."""

    directory: str
    name: str
    size: int
    entries: list[tuple[bytes, int, int]]
    live: int = 0
    live_bytes: int = 0
    _fd: int | None = field(default=None, repr=False)

    @property
    def path(self) -> str:
        return os.path.join(self.directory, self.name + ".pack")

    @property
    def index_path(self) -> str:
        return os.path.join(self.directory, self.name + ".idx")

    @property
    def content(self) -> int:
        """The bytes of the objects it holds, served or not: its size but
        its header."""
        return self.size - PACK_HEADER.size

    def rewritten_at(self, live_bytes: int) -> bool:
        """Is a pack serving `live_bytes` of its objects written again
        (those alone), freeing the rest? Below half of its bytes."""
        return live_bytes * 2 < self.size

    def fd(self) -> int:
        """The pack, open for reading, kept open until `close`."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def encode_index(entries: list[tuple[bytes, int, int]], pack_size: int) -> bytes:
    """The bytes of an index file for these entries (sorted here)."""
    body = bytearray(INDEX_HEADER.pack(INDEX_MAGIC, PACK_VERSION, len(entries), pack_size))
    for entry in sorted(entries):
        body += ENTRY.pack(*entry)
    return bytes(body + blake3.blake3(body).digest())


def decode_index(data: bytes, what: str) -> tuple[list[tuple[bytes, int, int]], int]:
    """The entries of an index file (sorted by id) and the size its pack
    must have. Raises UnsupportedFormat for a newer version and
    CorruptCarrier for anything else that is not a whole, sound index."""
    if len(data) < INDEX_HEADER.size + CHECKSUM or data[:8] != INDEX_MAGIC:
        raise CorruptCarrier(f"{what} is not a pack index")
    _, version, count, pack_size = INDEX_HEADER.unpack_from(data)
    if version > PACK_VERSION:
        raise UnsupportedFormat(f"{what} has pack version {version}, newer than this sq; upgrade")
    if version < 1 or len(data) != INDEX_HEADER.size + count * ENTRY.size + CHECKSUM:
        raise CorruptCarrier(f"{what} is damaged: its length does not match its count")
    if blake3.blake3(data[:-CHECKSUM]).digest() != data[-CHECKSUM:]:
        raise CorruptCarrier(f"{what} is damaged: it does not match its checksum")
    entries = list(ENTRY.iter_unpack(data[INDEX_HEADER.size : -CHECKSUM]))
    last = b""
    for oid, offset, size in entries:
        if oid <= last or offset < PACK_HEADER.size or offset + size > pack_size:
            raise CorruptCarrier(f"{what} is damaged: an entry is out of order or outside its pack")
        last = oid
    return entries, pack_size


def read(directory: str, name: str) -> Pack:
    """The pack `name` of `directory`, from its index; raises as
    `decode_index` does, CorruptCarrier when the pack file is not the
    size its index says or does not begin with a pack's header, and
    UnsupportedFormat when that header's version is newer."""
    pack = Pack(directory, name, 0, [])
    with open(pack.index_path, "rb") as f:
        entries, size = decode_index(f.read(), f"pack index {pack.index_path}")
    try:
        actual = os.path.getsize(pack.path)
    except FileNotFoundError:
        raise CorruptCarrier(f"pack {pack.path} is missing") from None
    if actual != size:
        raise CorruptCarrier(f"pack {pack.path} is {counted(actual, 'byte')}, not the {size} its index says")
    with open(pack.path, "rb") as f:
        header = f.read(PACK_HEADER.size)
    if len(header) < PACK_HEADER.size or header[:8] != PACK_MAGIC:
        raise CorruptCarrier(f"{pack.path} is not a pack")
    if PACK_HEADER.unpack(header)[1] > PACK_VERSION:
        raise UnsupportedFormat(
            f"{pack.path} has pack version {PACK_HEADER.unpack(header)[1]}, newer than this sq; upgrade"
        )
    pack.entries, pack.size = entries, size
    return pack


def names(directory: str) -> tuple[list[str], list[str]]:
    """The packs of `directory` that have an index, and the files there
    that are not part of a whole pack (a pack whose index was never
    written: left by a killed command)."""
    try:
        listed = os.listdir(directory)
    except FileNotFoundError:
        return [], []
    indexed = {n[:-4] for n in listed if n.endswith(".idx")}
    whole = sorted(indexed)
    stray = [n for n in listed if not (n.endswith((".idx", ".pack")) and n.rsplit(".", 1)[0] in indexed)]
    return whole, stray


class Writer:
    """A pack being written in the temporary folder: `add` each verified
    object, then `commit` makes it durable and moves it into the packs'
    folder (the pack, then its index), or `discard` removes it."""

    def __init__(self, tmp_dir: str) -> None:
        self.name = secrets.token_hex(16)
        self._pack_tmp = os.path.join(tmp_dir, f"pack-{self.name}.pack")
        self._index_tmp = os.path.join(tmp_dir, f"pack-{self.name}.idx")
        self._fd = os.open(self._pack_tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
        self._buf = bytearray(PACK_HEADER.pack(PACK_MAGIC, PACK_VERSION, 0))
        self.size = len(self._buf)
        self.entries: list[tuple[bytes, int, int]] = []

    def add(self, oid: bytes, data: bytes) -> None:
        self.entries.append((oid, self.size, len(data)))
        self.size += len(data)
        self._buf += data
        if len(self._buf) >= FLUSH:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        faults.point("write")
        with memoryview(self._buf) as view:
            done = 0
            while done < len(view):
                done += os.write(self._fd, view[done:])
        self._buf.clear()

    def commit(self, directory: str) -> Pack:
        """The pack made durable and moved into `directory`; the returned
        Pack serves all its objects."""
        self._flush()
        faults.point("fsync")
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        with open(self._index_tmp, "xb") as f:
            f.write(encode_index(self.entries, self.size))
            f.flush()
            faults.point("fsync")
            os.fsync(f.fileno())
        pack = Pack(directory, self.name, self.size, sorted(self.entries))
        faults.point("rename")
        try:
            os.rename(self._pack_tmp, pack.path)
        except FileNotFoundError:  # the packs' folder is made on first use
            os.makedirs(directory, exist_ok=True)
            os.rename(self._pack_tmp, pack.path)
        faults.point("rename")
        os.rename(self._index_tmp, pack.index_path)
        pack.live, pack.live_bytes = len(self.entries), sum(size for _, _, size in self.entries)
        return pack

    def discard(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        for name in (self._pack_tmp, self._index_tmp):
            try:
                os.unlink(name)
            except FileNotFoundError:
                pass


def chunks(pack: Pack, offset: int, size: int, block: int) -> Iterator[bytes]:
    """`size` bytes of `pack` from `offset`, in blocks of at most `block`."""
    fd = pack.fd()
    end = offset + size
    while offset < end:
        data = os.pread(fd, min(block, end - offset), offset)
        if not data:
            raise CorruptCarrier(f"pack {pack.path} is shorter than its index says")
        offset += len(data)
        yield data


def remove(pack: Pack) -> None:
    """Delete a pack: its index first, so that a pack left without one
    is the stray file of a removal that did not finish."""
    pack.close()
    faults.point("unlink")
    for name in (pack.index_path, pack.path):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass
