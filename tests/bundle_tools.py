"""Tools for bundle tests: take a bundle file apart, put it back together,
and snapshot a receiving replica.

`split_bundle` parses the bytes of a bundle without `BundleReader`'s checks;
`join_bundle` serializes the parts again and, unless told otherwise, fixes up
everything a reader checks for consistency (manifest size, stored size and
hash, record counts, `total_size`, the trailer hash). A test changes one part
(a path in the manifest, a capability in the header, a payload) and gets a
bundle that is wrong in exactly that one way.

`snapshot` records everything about a replica that a refused bundle must not
change: the files (content, mode, mtime), the trash and temporary files, the
index as `sq ls-index --json` prints it, and every raw LMDB record.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import lmdb
import zstandard

from squirrel.plumbing import index
from squirrel.plumbing.index import Entry, decode_entry, encode_entry
from squirrel.plumbing.vtime import decode_varint, encode_varint
from squirrel.porcelain.init import init
from squirrel.porcelain.pack import pack
from tests.helpers import make_tree, sq_in_process, walk

SIGNATURE = b"SQBUNDLE"
TRAILER = b"SQTRAILR"
PRELUDE = struct.Struct("<8sHI")
OBJ_HEAD = struct.Struct("<B32sQBQ")
REC_END, REC_ENTRY, REC_SYNC = 0, 1, 2
ENC_RAW, ENC_ZSTD = 0, 1


# Taking a bundle apart and putting it together -------------------------------
@dataclass
class ObjectPart:
    oid: bytes
    size: int
    encoding: int
    payload: bytes
    stored: int | None = None  # None: len(payload)
    tag: int = 1


@dataclass
class Record:
    kind: int  # REC_ENTRY or REC_SYNC (or anything, for hostile manifests)
    path: bytes
    value: bytes


@dataclass
class BundleParts:
    header: dict[str, Any]
    records: list[Record]
    objects: list[ObjectPart]
    version: int = 1
    signature: bytes = SIGNATURE
    manifest_tail: bytes = bytes([REC_END])  # what follows the records
    header_bytes: bytes | None = None  # replaces the JSON encoding of `header`
    header_hash: bytes | None = None  # replaces the header's blake3 hash
    stored_manifest: bytes | None = None  # replaces the compressed manifest
    end_tag: bytes = b"\0"
    trailer_tag: bytes = TRAILER
    extra: dict[str, bool] = field(default_factory=dict)

    def manifest(self) -> bytes:
        return b"".join(record_bytes(r) for r in self.records) + self.manifest_tail


def record_bytes(r: Record) -> bytes:
    return bytes([r.kind]) + encode_varint(len(r.path)) + r.path + encode_varint(len(r.value)) + r.value


def entry_record(path: bytes, entry: Entry) -> Record:
    return Record(REC_ENTRY, path, encode_entry(entry))


def parse_manifest(raw: bytes) -> list[Record]:
    out: list[Record] = []
    pos = 0
    while raw[pos] != REC_END:
        kind = raw[pos]
        plen, pos = decode_varint(raw, pos + 1)
        path = raw[pos : pos + plen]
        pos += plen
        vlen, pos = decode_varint(raw, pos)
        out.append(Record(kind, path, raw[pos : pos + vlen]))
        pos += vlen
    assert pos == len(raw) - 1, "bytes after the end record"
    return out


def split_bundle(data: bytes) -> BundleParts:
    """Parse a well-formed bundle into parts (asserting it is well formed)."""
    sig, version, hlen = PRELUDE.unpack_from(data, 0)
    pos = PRELUDE.size
    header = json.loads(data[pos : pos + hlen])
    pos += hlen + 32  # the header's hash
    stored = data[pos : pos + header["manifest_stored"]]
    pos += header["manifest_stored"]
    raw = zstandard.ZstdDecompressor().decompress(stored, max_output_size=header["manifest_size"])
    objects: list[ObjectPart] = []
    while data[pos] == 1:
        _, oid, size, enc, n = OBJ_HEAD.unpack_from(data, pos)
        pos += OBJ_HEAD.size
        objects.append(ObjectPart(oid, size, enc, data[pos : pos + n]))
        pos += n
    assert data[pos] == 0 and data[pos + 1 : pos + 9] == TRAILER and pos + 9 + 32 == len(data)
    return BundleParts(header, parse_manifest(raw), objects, version, sig)


def offsets(data: bytes) -> dict[str, int]:
    """Where each part of a well-formed bundle starts (and the first object's payload)."""
    _, _, hlen = PRELUDE.unpack_from(data, 0)
    header = json.loads(data[PRELUDE.size : PRELUDE.size + hlen])
    manifest = PRELUDE.size + hlen + 32
    objects = manifest + header["manifest_stored"]
    trailer = len(data) - 40
    return {
        "header": PRELUDE.size,
        "manifest": manifest,
        "objects": objects,
        "payload": objects + OBJ_HEAD.size if header["objects"] else objects,
        "end_tag": trailer - 1,
        "trailer": trailer,
    }


def join_bundle(parts: BundleParts, *, fix: bool = True) -> bytes:
    """Serialize parts; with `fix`, make every size, count and hash consistent."""
    raw = parts.manifest()
    stored = parts.stored_manifest
    if stored is None:
        stored = zstandard.ZstdCompressor(level=3).compress(raw)
    header = dict(parts.header)
    if fix:
        header["entries"] = sum(1 for r in parts.records if r.kind == REC_ENTRY)
        header["syncs"] = sum(1 for r in parts.records if r.kind == REC_SYNC)
        header["objects"] = sum(1 for o in parts.objects if o.tag == 1)
        header["manifest_size"] = len(raw)
        header["manifest_stored"] = len(stored)
        header["manifest_hash"] = blake3.blake3(raw).hexdigest()
    body = b""
    for o in parts.objects:
        stored_len = len(o.payload) if o.stored is None else o.stored
        body += OBJ_HEAD.pack(o.tag, o.oid, o.size, o.encoding, stored_len) + o.payload
    body += parts.end_tag

    def assemble(total: int) -> bytes:
        if parts.header_bytes is not None:
            hb = parts.header_bytes
        else:
            h = dict(header)
            if fix:
                h["total_size"] = total
            hb = json.dumps(h, sort_keys=True).encode()
        head_hash = blake3.blake3(hb).digest() if parts.header_hash is None else parts.header_hash
        return PRELUDE.pack(parts.signature, parts.version, len(hb)) + hb + head_hash + stored + body

    total = 0
    for _ in range(6):
        out = assemble(total)
        if len(out) + 40 == total:
            break
        total = len(out) + 40
    out = assemble(total)
    return out + parts.trailer_tag + blake3.blake3(out).digest()


# Replicas and their state -------------------------------------------------------
def _files_state(root: Path, skip: set[str]) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for key, p, st in walk(root, skip):
        if stat.S_ISLNK(st.st_mode):
            out[key] = ("link", os.readlink(p))
        elif stat.S_ISDIR(st.st_mode):
            out[key] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            out[key] = ("file", stat.S_IMODE(st.st_mode), st.st_mtime_ns, p.read_bytes())
    return out


def lmdb_dump(root: Path | str) -> dict[str, list[tuple[bytes, bytes]]]:
    env = lmdb.open(
        str(Path(root) / ".squirrel" / "index"), readonly=True, lock=False, max_dbs=8, subdir=True, create=False
    )
    try:
        out: dict[str, list[tuple[bytes, bytes]]] = {}
        for name in index.DB_NAMES:
            db = env.open_db(name, create=False)
            with env.begin(db=db) as txn:
                out[name.decode()] = list(txn.cursor())
        return out
    finally:
        env.close()


def ls_index(root: Path | str) -> Any:
    return sq_in_process("ls-index", root, "--json").check().json


def snapshot(root: Path | str) -> dict[str, Any]:
    """Everything a refused bundle must leave as it was."""
    root = Path(root)
    skip = {".squirrel/index", ".squirrel/lock"}
    return {
        "files": _files_state(root, skip),
        "ls-index": ls_index(root),
        "lmdb": lmdb_dump(root),
    }


def copy_replica(src: Path, dst: Path) -> Path:
    """A byte-for-byte copy of a replica (same identity), for trying a bundle on."""
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("lock", "lock.mdb"))
    return dst


# A sender, a receiver and a bundle between them ------------------------------------
TEXT = b"".join(b"line %d of a compressible text file\n" % i for i in range(400))


def incompressible(n: int, seed: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < n:
        out += blake3.blake3(b"%d-%d" % (seed, counter)).digest(length=min(4096, n - len(out)))
        counter += 1
    return out


SENDER_FILES: dict[str, bytes | str] = {
    "notes.txt": TEXT,
    "photos/img1.jpg": incompressible(3000, 1),
    "photos/img2.jpg": incompressible(5000, 2),
    "photos/2024/trip.jpg": incompressible(700, 3),
    "docs/readme.md": b"# read me\n" * 50,
    "docs/empty.txt": b"",
    "empty-dir/": "",
}
RECEIVER_FILES: dict[str, bytes | str] = {
    "mine.txt": b"the receiver's own file\n",
    "docs/local.md": b"only on the receiver\n",
}


def sender_and_receiver(tmp: Path) -> tuple[Path, Path, Path]:
    """Replicas A (with SENDER_FILES) and B (with RECEIVER_FILES) of one vault,
    and the bundle A packed for B (not yet applied)."""
    a, b = tmp / "A", tmp / "B"
    make_tree(a, SENDER_FILES)
    make_tree(b, RECEIVER_FILES)
    init(str(a), name="A")
    init(str(b), name="B", join=str(a))
    bundle = tmp / "a-for-b.sqb"
    pack(str(a), str(bundle), for_replica=str(b))
    return a, b, bundle


def object_positions(data: bytes) -> list[tuple[int, int, ObjectPart]]:
    """(record offset, payload offset, object) of every object in a well-formed bundle."""
    pos = offsets(data)["objects"]
    out: list[tuple[int, int, ObjectPart]] = []
    while data[pos] == 1:
        _, oid, size, enc, n = OBJ_HEAD.unpack_from(data, pos)
        out.append(
            (pos, pos + OBJ_HEAD.size, ObjectPart(oid, size, enc, data[pos + OBJ_HEAD.size : pos + OBJ_HEAD.size + n]))
        )
        pos += OBJ_HEAD.size + n
    return out


def paths_of(data: bytes) -> dict[bytes, list[bytes]]:
    """Object id -> the paths whose entries name it, in a well-formed bundle."""
    out: dict[bytes, list[bytes]] = {}
    for r in split_bundle(data).records:
        if r.kind == REC_ENTRY:
            e = decode_entry(r.value)
            if e.is_file:
                out.setdefault(e.oid, []).append(r.path)
    return out
