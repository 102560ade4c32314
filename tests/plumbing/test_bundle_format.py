"""The bundle format (docs/formats/bundle.md): golden file, round trips,
per-object encoding, decompression limits, and garbage.

The golden bundle `tests/data/golden-v2.sqb` is built from fixed inputs with
`BundleWriter`; reading it must give exactly those inputs, and writing the
same inputs again must give the same bytes, so that a format change without a
version bump fails here. To regenerate it after a deliberate format change
(and a version bump): `.venv/bin/python -m tests.plumbing.test_bundle_format`.
`tests/data/golden-v1.sqb`, written by format 1, must still read as the same
inputs (without deletion notices, which format 1 did not have).
"""

from __future__ import annotations

import json
import os
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import blake3
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from squirrel.errors import BadBundle, BadPath, UnsupportedFormat
from squirrel.plumbing import bundle_writer
from squirrel.plumbing.bundle import ENC_RAW, ENC_ZSTD, BundleReader
from squirrel.plumbing.bundle_writer import BundleWriter, header_for
from squirrel.plumbing.index import FLAG_PARTIAL, KIND_DIR, KIND_FILE, Entry
from squirrel.plumbing.vtime import VectorTime
from tests.bundle_tools import (
    PRELUDE,
    REC_SYNC,
    SENDER_FILES,
    BundleParts,
    ObjectPart,
    Record,
    entry_record,
    incompressible,
    join_bundle,
    offsets,
    sender_and_receiver,
    split_bundle,
)

DATA = Path(__file__).resolve().parent.parent / "data"
GOLDEN = DATA / "golden-v2.sqb"
GOLDEN_V1 = DATA / "golden-v1.sqb"
# The libzstd that wrote the golden file. zstd promises a stable format, not
# identical compressed bytes across releases: with another libzstd only the
# decompressed parts are compared byte for byte.
GOLDEN_ZSTD = "1.5.7"

VAULT = "5157554952524c31"
SENDER = "a11ce0000000000a"
RECEIVER = "b0b000000000000b"
CREATED = 1_700_000_000
TEXT = b"Data Squirrel golden bundle: a compressible line of text.\n" * 40
RAW = blake3.blake3(b"golden raw object").digest(length=64)
OID_TEXT = blake3.blake3(TEXT).digest()
OID_RAW = blake3.blake3(RAW).digest()
NO_OID = bytes(32)


def vt(**counters: int) -> VectorTime:
    ids = {"s": SENDER, "r": RECEIVER}
    return VectorTime({ids[k]: n for k, n in counters.items()})


GOLDEN_ENTRIES: dict[bytes, Entry] = {
    b"": Entry(KIND_DIR, NO_OID, 0, 0o755, 0, vt(s=3, r=1), vt(s=1)),
    b"archive": Entry(KIND_DIR, NO_OID, 0, 0o755, 0, vt(s=1), vt(s=1), FLAG_PARTIAL),
    b"docs": Entry(KIND_DIR, NO_OID, 0, 0o755, 0, vt(s=2), vt(s=1)),
    b"docs/notes.txt": Entry(KIND_FILE, OID_TEXT, len(TEXT), 0o644, 1_700_000_000_123_456_789, vt(s=2), vt(s=2)),
    b"photo.jpg": Entry(KIND_FILE, OID_RAW, len(RAW), 0o600, 1_600_000_000_000_000_001, vt(s=3, r=1), vt(r=1)),
    b"caf\xc3\xa9 \xff.bin": Entry(KIND_FILE, OID_RAW, len(RAW), 0o644, 1_650_000_000_000_000_000, vt(s=3), vt(s=3)),
}
GOLDEN_SYNCS: dict[bytes, VectorTime] = {b"": vt(r=5), b"docs": vt(r=7)}
GOLDEN_NOTICES: dict[bytes, VectorTime] = {b"docs/old": vt(s=2), b"docs/old/draft.txt": vt(s=1)}
GOLDEN_OBJECTS: dict[bytes, bytes] = {OID_TEXT: TEXT, OID_RAW: RAW}


def golden_header() -> dict[str, object]:
    header = header_for(
        VAULT,
        SENDER,
        "laptop",
        3,
        {SENDER: "laptop", RECEIVER: "drive"},
        {"kind": "replica", "replica": RECEIVER},
        [b""],
    )
    header["created"] = CREATED
    return header


def write_golden(path: Path) -> int:
    w = BundleWriter(str(path), golden_header())
    for p in sorted(GOLDEN_ENTRIES):
        w.add_entry(p, GOLDEN_ENTRIES[p])
    for p in sorted(GOLDEN_NOTICES):
        w.add_notice(p, GOLDEN_NOTICES[p])
    for p in sorted(GOLDEN_SYNCS):
        w.add_sync(p, GOLDEN_SYNCS[p])
    for oid, content in GOLDEN_OBJECTS.items():
        w.add_object(oid, len(content), reader_of(content))
    return w.close()


def reader_of(content: bytes) -> Callable[[], Iterator[bytes]]:
    return lambda: iter([content])


def read_all(r: BundleReader, oid: bytes) -> bytes:
    return b"".join(r.object_chunks(oid))


# Golden file ------------------------------------------------------------------
@pytest.mark.parametrize("golden,notices", [(GOLDEN, GOLDEN_NOTICES), (GOLDEN_V1, {})], ids=["v2", "v1"])
def test_golden_bundle_reads_as_its_inputs(golden: Path, notices: dict[bytes, VectorTime]) -> None:
    with BundleReader(str(golden)) as r:
        assert r.entries == GOLDEN_ENTRIES
        assert r.syncs == GOLDEN_SYNCS
        assert r.notices == notices
        assert r.vault == VAULT
        assert (r.source_id, r.source_name, r.source_counter) == (SENDER, "laptop", 3)
        assert r.names == {SENDER: "laptop", RECEIVER: "drive"}
        assert r.tops == [b""]
        assert r.header["created"] == CREATED
        assert r.header["capabilities"] == ["zstd"]
        assert r.header["base"] == {"kind": "replica", "replica": RECEIVER}
        assert set(r.objects) == set(GOLDEN_OBJECTS)
        assert r.objects[OID_TEXT].encoding == ENC_ZSTD
        assert r.objects[OID_RAW].encoding == ENC_RAW
        for oid, content in GOLDEN_OBJECTS.items():
            assert read_all(r, oid) == content
        assert r.verify() == []


def test_golden_bundle_is_written_again_byte_for_byte(tmp_path: Path) -> None:
    again = tmp_path / "again.sqb"
    write_golden(again)
    new, old = again.read_bytes(), GOLDEN.read_bytes()
    # The parts that do not depend on the compressor's exact output.
    assert new[:10] == old[:10] == b"SQBUNDLE\x02\x00"
    p_new, p_old = split_bundle(new), split_bundle(old)
    assert p_new.records == p_old.records
    assert p_new.objects[1:] == p_old.objects[1:]
    assert p_new.objects[0].oid == p_old.objects[0].oid
    volatile = {"manifest_stored", "total_size"}
    assert {k: v for k, v in p_new.header.items() if k not in volatile} == {
        k: v for k, v in p_old.header.items() if k not in volatile
    }
    if zstandard.ZSTD_VERSION == tuple(int(x) for x in GOLDEN_ZSTD.split(".")):
        assert new == old


def test_golden_bundle_layout_matches_the_spec() -> None:
    """Byte positions from docs/formats/bundle.md, read without BundleReader."""
    data = GOLDEN.read_bytes()
    sig, version, hlen = struct.unpack_from("<8sHI", data, 0)
    assert (sig, version) == (b"SQBUNDLE", 2)
    header = json.loads(data[14 : 14 + hlen])
    assert header["total_size"] == len(data)
    assert header["format"] == 2
    assert data[-40:-32] == b"SQTRAILR"
    assert data[-32:] == blake3.blake3(data[:-40]).digest()
    assert data[-41] == 0  # end of objects
    off = offsets(data)
    tag, oid, size, enc, stored = struct.unpack_from("<B32sQBQ", data, off["objects"])
    assert (tag, oid, size, enc) == (1, OID_TEXT, len(TEXT), ENC_ZSTD)
    frame = data[off["payload"] : off["payload"] + stored]
    assert zstandard.ZstdDecompressor().decompress(frame) == TEXT
    raw_manifest = zstandard.ZstdDecompressor().decompress(
        data[off["manifest"] : off["objects"]], max_output_size=header["manifest_size"]
    )
    assert blake3.blake3(raw_manifest).hexdigest() == header["manifest_hash"]
    assert raw_manifest[-1] == 0


# Writer and reader ---------------------------------------------------------------
def test_incompressible_objects_are_stored_raw_and_text_compressed(tmp_path: Path) -> None:
    noise = incompressible(300_000, 7)
    text = b"".join(b"2024-05-01 12:00:%02d INFO request %d served\n" % (i % 60, i) for i in range(20_000))
    w = BundleWriter(str(tmp_path / "b.sqb"), golden_header())
    w.add_entry(b"", GOLDEN_ENTRIES[b""])
    w.add_sync(b"", GOLDEN_SYNCS[b""])
    stored_noise = w.add_object(blake3.blake3(noise).digest(), len(noise), lambda: iter([noise]))
    stored_text = w.add_object(blake3.blake3(text).digest(), len(text), lambda: iter([text[:1000], text[1000:]]))
    # A sidecar of a few KiB, whose sample is the whole file.
    sidecar = b"<rdf:RDF>" + b"".join(b'<rdf:li xml:lang="x-default">keyword %d</rdf:li>' % i for i in range(80))
    stored_sidecar = w.add_object(blake3.blake3(sidecar).digest(), len(sidecar), lambda: iter([sidecar]))
    noise2 = incompressible(9_000, 8)
    stored_noise2 = w.add_object(blake3.blake3(noise2).digest(), len(noise2), lambda: iter([noise2]))
    w.close()
    assert stored_noise == len(noise)
    assert stored_noise2 == len(noise2)
    assert stored_text < len(text) // 5
    assert stored_sidecar < len(sidecar) // 2
    with BundleReader(str(tmp_path / "b.sqb")) as r:
        assert r.objects[blake3.blake3(noise).digest()].encoding == ENC_RAW
        assert r.objects[blake3.blake3(text).digest()].encoding == ENC_ZSTD
        assert read_all(r, blake3.blake3(text).digest()) == text
        assert read_all(r, blake3.blake3(noise).digest()) == noise
        assert r.objects[blake3.blake3(sidecar).digest()].encoding == ENC_ZSTD
        assert read_all(r, blake3.blake3(sidecar).digest()) == sidecar
        assert r.objects[blake3.blake3(noise2).digest()].encoding == ENC_RAW


def test_writer_refuses_content_that_does_not_match_its_id_and_leaves_no_file(tmp_path: Path) -> None:
    w = BundleWriter(str(tmp_path / "b.sqb"), golden_header())
    w.add_entry(b"", GOLDEN_ENTRIES[b""])
    with pytest.raises(Exception, match="changed while it was packed"):
        w.add_object(OID_TEXT, len(TEXT), lambda: iter([TEXT[:-1] + b"?"]))
    w.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("size", "keep", "reads", "when"),
    [(1000, 1 << 20, 1, "written"), (600_000, 1 << 20, 2, "written"), (1000, 0, 1, "read")],
    ids=["kept-in-memory", "read-again", "side-file"],
)
def test_raw_content_that_does_not_match_its_id_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, keep: int, reads: int, when: str
) -> None:
    """Raw content is checked when the bundle is written, or, put in the
    side file once the memory budget (`keep`) is spent, when it is read."""
    monkeypatch.setattr(bundle_writer, "KEEP_TOTAL", keep)
    noise = incompressible(size, 3)
    opened = []

    def read() -> Iterator[bytes]:
        opened.append(1)
        return iter([noise])

    w = BundleWriter(str(tmp_path / "b.sqb"), golden_header())
    w.add_entry(b"", GOLDEN_ENTRIES[b""])
    with pytest.raises(Exception, match="changed while it was packed"):
        assert w.add_object(blake3.blake3(noise + b"!").digest(), size, read) == size
        assert when == "written"
        w.close()
    assert len(opened) == reads  # a small file is read once, a larger one again as it is written
    w.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("keep", "stage", "raw_reads"),
    [(0, 0, [2] * 8), (0, 1 << 20, [1] * 8), (2000, 3000, [1, 1, 1, 1, 2, 2, 2, 2])],
    ids=["read-again", "side-file", "all-three"],
)
def test_small_raw_objects_kept_staged_or_read_again_make_the_same_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep: int, stage: int, raw_reads: list[int]
) -> None:
    """Small incompressible objects kept in memory (up to `keep` bytes), put
    in the side file (up to `stage`) or read again from their files, between
    compressed ones: the bundle is byte for byte the one every object read
    again makes, and only the objects read again were read twice."""
    contents = [incompressible(900 + 37 * i, 40 + i) if i % 3 else TEXT + bytes([i]) for i in range(12)]

    def write_bundle(name: str) -> tuple[bytes, list[int]]:
        reads = [0] * len(contents)

        def reader(i: int) -> Callable[[], Iterator[bytes]]:
            def read() -> Iterator[bytes]:
                reads[i] += 1
                return iter([contents[i][:500], contents[i][500:]])

            return read

        w = BundleWriter(str(tmp_path / name), golden_header())
        w.add_entry(b"", GOLDEN_ENTRIES[b""])
        for i, c in enumerate(contents):
            w.add_object(blake3.blake3(c).digest(), len(c), reader(i))
        w.close()
        return (tmp_path / name).read_bytes(), reads

    monkeypatch.setattr(bundle_writer, "KEEP_TOTAL", 0)
    monkeypatch.setattr(bundle_writer, "STAGE_TOTAL", 0)
    expected, _ = write_bundle("reread.sqb")
    monkeypatch.setattr(bundle_writer, "KEEP_TOTAL", keep)
    monkeypatch.setattr(bundle_writer, "STAGE_TOTAL", stage)
    got, reads = write_bundle("b.sqb")
    assert got == expected
    assert [reads[i] for i in range(len(contents)) if i % 3] == raw_reads
    assert [reads[i] for i in range(len(contents)) if i % 3 == 0] == [1] * 4  # compressed: read once
    with BundleReader(str(tmp_path / "b.sqb")) as r:
        assert {oid: read_all(r, oid) for oid in r.objects} == {blake3.blake3(c).digest(): c for c in contents}
        assert r.verify() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.sqb", "reread.sqb"]


NAMES = st.sampled_from([b"a", b"b", b"photo.jpg", "é".encode(), b"\xff\xfe", b"x y", b".hidden"])
IDS = st.sampled_from([SENDER, RECEIVER, "0123456789abcdef"])
VTIMES = st.dictionaries(IDS, st.integers(1, (1 << 63) - 1), max_size=3).map(VectorTime)
CONTENTS = st.one_of(st.binary(max_size=300), st.binary(min_size=1, max_size=20).map(lambda b: b * 200))


@st.composite
def bundles(draw: st.DrawFn) -> tuple[dict[bytes, Entry], dict[bytes, VectorTime], dict[bytes, bytes]]:
    entries: dict[bytes, Entry] = {b"": Entry(KIND_DIR, NO_OID, 0, 0o755, 0, draw(VTIMES), draw(VTIMES))}
    dirs = [b""]
    objects: dict[bytes, bytes] = {}
    for _ in range(draw(st.integers(0, 12))):
        parent = draw(st.sampled_from(dirs))
        name = draw(NAMES)
        path = parent + b"/" + name if parent else name
        if path in entries:
            continue
        if draw(st.booleans()):
            flags = draw(st.sampled_from([0, FLAG_PARTIAL]))
            entries[path] = Entry(KIND_DIR, NO_OID, 0, 0o755, 0, draw(VTIMES), draw(VTIMES), flags)
            if not flags:
                dirs.append(path)
        else:
            content = draw(CONTENTS)
            oid = blake3.blake3(content).digest()
            mtime = draw(st.integers(-(1 << 63), (1 << 63) - 1))
            entries[path] = Entry(
                KIND_FILE, oid, len(content), draw(st.integers(0, 0o7777)), mtime, draw(VTIMES), draw(VTIMES)
            )
            if draw(st.booleans()):
                objects[oid] = content
    # A sender knows every version it holds: its sync times cover them.
    known = VectorTime()
    for e in entries.values():
        known = known.join(e.m)
    syncs = {p: draw(VTIMES).join(known) for p in entries if entries[p].is_dir and draw(st.booleans())}
    syncs[b""] = syncs.get(b"", VectorTime()).join(known)
    return entries, syncs, objects


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bundle=bundles())
def test_what_is_written_is_read_back(
    tmp_path: Path, bundle: tuple[dict[bytes, Entry], dict[bytes, VectorTime], dict[bytes, bytes]]
) -> None:
    entries, syncs, objects = bundle
    path = tmp_path / "rt.sqb"
    w = BundleWriter(str(path), golden_header())
    for p, e in entries.items():
        w.add_entry(p, e)
    for p, s in syncs.items():
        w.add_sync(p, s)
    for oid, content in objects.items():
        w.add_object(oid, len(content), reader_of(content))
    size = w.close()
    assert size == path.stat().st_size
    assert not (tmp_path / "rt.sqb.part").exists()
    with BundleReader(str(path)) as r:
        assert r.entries == entries
        assert r.syncs == syncs
        assert {oid: read_all(r, oid) for oid in r.objects} == objects
        assert r.verify() == []


# Decompression limits ------------------------------------------------------------------
def golden_with(tmp_path: Path, name: str, change: Callable[[BundleParts], None], fix: bool = True) -> Path:
    parts = split_bundle(GOLDEN.read_bytes())
    change(parts)
    out = tmp_path / name
    out.write_bytes(join_bundle(parts, fix=fix))
    return out


def streamed_frame(data: bytes, window_log: int) -> bytes:
    """A zstd frame whose header asks for a 2**window_log window (no content size)."""
    params = zstandard.ZstdCompressionParameters(window_log=window_log, write_content_size=False)
    c = zstandard.ZstdCompressor(compression_params=params).compressobj()
    frame: bytes = c.compress(data) + c.flush()
    assert zstandard.get_frame_parameters(frame).window_size == 1 << window_log
    return frame


def replace_text_object(payload: bytes, size: int | None = None) -> Callable[[BundleParts], None]:
    def change(parts: BundleParts) -> None:
        obj = parts.objects[0]
        assert obj.oid == OID_TEXT
        obj.payload = payload
        if size is not None:
            obj.size = size

    return change


@pytest.mark.parametrize("window_log", [28, 30])
def test_an_object_frame_with_a_window_over_128_mib_is_refused(tmp_path: Path, window_log: int) -> None:
    path = golden_with(tmp_path, "w.sqb", replace_text_object(streamed_frame(TEXT, window_log)))
    with BundleReader(str(path)) as r, pytest.raises(BadBundle, match="damaged object"):
        read_all(r, OID_TEXT)


def test_an_object_frame_with_a_128_mib_window_is_accepted(tmp_path: Path) -> None:
    path = golden_with(tmp_path, "w.sqb", replace_text_object(streamed_frame(TEXT, 27)))
    with BundleReader(str(path)) as r:
        assert read_all(r, OID_TEXT) == TEXT


def test_a_decompression_bomb_stops_at_the_declared_size(tmp_path: Path) -> None:
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (64 << 20))
    assert len(bomb) < 10_000
    path = golden_with(tmp_path, "bomb.sqb", replace_text_object(bomb))
    produced = 0
    with BundleReader(str(path)) as r, pytest.raises(BadBundle, match="past its declared size"):
        for chunk in r.object_chunks(OID_TEXT):
            produced += len(chunk)
    assert produced <= len(TEXT)


def test_a_frame_shorter_than_the_declared_size_is_refused(tmp_path: Path) -> None:
    short = zstandard.ZstdCompressor().compress(TEXT[:-10])
    path = golden_with(tmp_path, "short.sqb", replace_text_object(short))
    with BundleReader(str(path)) as r, pytest.raises(BadBundle, match="shorter"):
        read_all(r, OID_TEXT)


# What the sender may claim ------------------------------------------------------
def with_versions(
    versions: dict[bytes, VectorTime], syncs: dict[bytes, VectorTime] | None = None
) -> Callable[[BundleParts], None]:
    """A change of the golden bundle: these files (new ones beside the
    golden ones) at these versions, and these sync times added."""

    def change(p: BundleParts) -> None:
        p.records = [r for r in p.records if r.path not in versions]
        for path, m in versions.items():
            base = GOLDEN_ENTRIES.get(path, GOLDEN_ENTRIES[b"photo.jpg"])
            p.records.append(entry_record(path, replace(base, m=m, c=m)))
        for path, t in (syncs or {}).items():
            p.records.append(Record(REC_SYNC, path, t.encode()))

    return change


@pytest.mark.parametrize(
    ("versions", "syncs"),
    [
        # Newer than the sender's own event: its counter is 3.
        ({b"photo.jpg": vt(s=4)}, None),
        # A change of the receiver's the sender learned nowhere: its sync
        # time in docs/ is r=7.
        ({b"docs/notes.txt": vt(s=2, r=8)}, None),
        # The same version is known in docs/ (r=7) and not at the root (r=5):
        # what one folder knows is not taken for another's.
        ({b"docs/a.txt": vt(r=6), b"z.txt": vt(r=6)}, None),
        # A file's own sync time, older than its folder's, is what counts.
        ({b"docs/notes.txt": vt(r=7)}, {b"docs/notes.txt": vt(r=6)}),
    ],
)
def test_a_file_claiming_a_version_its_sender_does_not_know_is_refused(
    tmp_path: Path, versions: dict[bytes, VectorTime], syncs: dict[bytes, VectorTime] | None
) -> None:
    bad = golden_with(tmp_path, "claims.sqb", with_versions(versions, syncs))
    with pytest.raises(BadBundle, match="claims a version its sender does not know"):
        BundleReader(str(bad))


def test_what_the_sender_knows_of_a_file_or_its_folder_is_accepted(tmp_path: Path) -> None:
    """Versions the sender knows of, by its folder's sync time, by its own
    (newer than its folder's), or shared by files of two folders, open."""
    versions = {b"docs/a.txt": vt(s=3, r=7), b"docs/notes.txt": vt(r=9), b"b.txt": vt(r=5), b"docs/c.txt": vt(r=5)}
    ok = golden_with(tmp_path, "knows.sqb", with_versions(versions, {b"docs/notes.txt": vt(r=9)}))
    with BundleReader(str(ok)) as r:
        assert {p: r.entries[p].m for p in versions} == versions


def test_a_manifest_bomb_is_refused(tmp_path: Path) -> None:
    def change(parts: BundleParts) -> None:
        parts.stored_manifest = zstandard.ZstdCompressor().compress(parts.manifest() + b"\0" * (32 << 20))

    path = golden_with(tmp_path, "mbomb.sqb", change)
    with pytest.raises(BadBundle):
        BundleReader(str(path))


def test_a_manifest_frame_with_a_huge_window_is_refused(tmp_path: Path) -> None:
    def change(parts: BundleParts) -> None:
        parts.stored_manifest = streamed_frame(parts.manifest(), 30)

    path = golden_with(tmp_path, "mwin.sqb", change)
    with pytest.raises(BadBundle):
        BundleReader(str(path))


def test_a_manifest_larger_than_1_gib_is_refused_before_reading_it(tmp_path: Path) -> None:
    def change(parts: BundleParts) -> None:
        parts.header["manifest_size"] = (1 << 30) + 1

    path = golden_with(tmp_path, "mbig.sqb", change, fix=False)
    with pytest.raises(BadBundle):
        BundleReader(str(path))


# Whole-file check ------------------------------------------------------------
def flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[offset] ^= 1 << bit
    return bytes(b)


def test_verify_finds_a_damaged_trailer_hash_that_opening_does_not_need(tmp_path: Path) -> None:
    path = tmp_path / "t.sqb"
    path.write_bytes(flip(GOLDEN.read_bytes(), -1))
    with BundleReader(str(path)) as r:
        assert r.verify() == ["whole-bundle checksum does not match (damaged)"]


def test_verify_finds_a_damaged_payload(tmp_path: Path) -> None:
    data = GOLDEN.read_bytes()
    parts = split_bundle(data)
    raw_at = len(data) - 41 - parts.objects[1].size  # the raw object is the last one
    path = tmp_path / "p.sqb"
    path.write_bytes(flip(data, raw_at + 3))
    with BundleReader(str(path)) as r:
        problems = r.verify()
    assert f"object {OID_RAW.hex()} does not match its id" in problems
    assert "whole-bundle checksum does not match (damaged)" in problems


def test_object_chunks_of_an_unknown_object_is_a_key_error() -> None:
    with BundleReader(str(GOLDEN)) as r, pytest.raises(KeyError):
        read_all(r, bytes(32))


# Garbage ---------------------------------------------------------------------
REFUSALS = (BadBundle, UnsupportedFormat)


def read_garbage(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "garbage.sqb"
    path.write_bytes(data)
    try:
        with BundleReader(str(path)) as r:
            for oid in r.objects:
                try:
                    read_all(r, oid)
                except BadBundle:
                    pass
            r.verify()
    except REFUSALS:
        pass


GARBAGE_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@GARBAGE_SETTINGS
@given(data=st.binary(max_size=400))
def test_garbage_raises_only_bundle_errors(tmp_path: Path, data: bytes) -> None:
    read_garbage(tmp_path, data)


@GARBAGE_SETTINGS
@given(version=st.integers(0, 65535), rest=st.binary(max_size=300), hlen=st.integers(0, (1 << 32) - 1))
def test_garbage_after_a_signature_raises_only_bundle_errors(
    tmp_path: Path, version: int, rest: bytes, hlen: int
) -> None:
    read_garbage(tmp_path, PRELUDE.pack(b"SQBUNDLE", version, hlen) + rest)
    read_garbage(tmp_path, PRELUDE.pack(b"SQBUNDLE", version, len(rest)) + rest)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
HEADER_KEYS = [
    "format",
    "capabilities",
    "vault",
    "source",
    "names",
    "base",
    "tops",
    "created",
    "entries",
    "syncs",
    "objects",
    "manifest_size",
    "manifest_stored",
    "manifest_hash",
]


@GARBAGE_SETTINGS
@given(changes=st.dictionaries(st.sampled_from(HEADER_KEYS), JSON, min_size=1, max_size=3), fix=st.booleans())
def test_a_hostile_header_raises_only_bundle_errors(tmp_path: Path, changes: dict[str, object], fix: bool) -> None:
    parts = split_bundle(GOLDEN.read_bytes())
    parts.header.update(changes)
    data = join_bundle(parts, fix=False)
    if fix:
        # Keep the size right, so the reader goes on to the manifest and objects.
        parts.header["total_size"] = 0
        data = join_bundle(parts, fix=False)
        parts.header["total_size"] = len(data)
        data = join_bundle(parts, fix=False)
        parts.header["total_size"] = len(data)
        data = join_bundle(parts, fix=False)
    read_garbage(tmp_path, data)


@GARBAGE_SETTINGS
@given(records=st.lists(st.tuples(st.integers(0, 3), st.binary(max_size=12), st.binary(max_size=60)), max_size=6))
def test_a_hostile_manifest_raises_only_bundle_errors(tmp_path: Path, records: list[tuple[int, bytes, bytes]]) -> None:
    parts = split_bundle(GOLDEN.read_bytes())
    parts.records = [entry_record(b"", GOLDEN_ENTRIES[b""])]
    for kind, path, value in records:
        parts.records.append(Record(kind, path, value))
    read_garbage(tmp_path, join_bundle(parts))


@GARBAGE_SETTINGS
@given(
    objects=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, (1 << 64) - 1), st.integers(0, 3), st.binary(max_size=50)),
        max_size=4,
    )
)
def test_hostile_object_records_raise_only_bundle_errors(
    tmp_path: Path, objects: list[tuple[int, int, int, bytes]]
) -> None:
    parts = split_bundle(GOLDEN.read_bytes())
    parts.objects = [ObjectPart(OID_TEXT, size, enc, payload, tag=tag) for tag, size, enc, payload in objects]
    read_garbage(tmp_path, join_bundle(parts))


def test_a_missing_file_is_a_wrong_path_not_a_bad_bundle(tmp_path: Path) -> None:
    with pytest.raises(BadPath, match="no such bundle file"):
        BundleReader(str(tmp_path / "nope.sqb"))


def test_a_deeply_nested_header_is_a_bad_bundle(tmp_path: Path) -> None:
    parts = split_bundle(GOLDEN.read_bytes())
    parts.header_bytes = b"[" * 200_000 + b"]" * 200_000
    path = tmp_path / "deep.sqb"
    path.write_bytes(join_bundle(parts))
    with pytest.raises(BadBundle):
        BundleReader(str(path))


def test_the_reader_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "g.sqb"
    path.write_bytes(GOLDEN.read_bytes())
    before = sorted(tmp_path.iterdir())
    with BundleReader(str(path)) as r:
        r.verify()
        read_all(r, OID_TEXT)
    assert sorted(tmp_path.iterdir()) == before
    assert path.read_bytes() == GOLDEN.read_bytes()


if __name__ == "__main__":
    DATA.mkdir(exist_ok=True)
    write_golden(GOLDEN)
    sys.stdout.write(f"wrote {GOLDEN} with libzstd {'.'.join(map(str, zstandard.ZSTD_VERSION))}\n")


def test_objects_are_read_from_the_bundle_that_was_checked_even_if_its_path_changes(tmp_path: Path) -> None:
    """A bundle replaced at its path after it was checked (a sync client
    writing a newer copy, a user's mistake) does not feed the apply: raw
    spans and streamed objects, stored or compressed, come from the file
    the reader opened and checked."""
    _, _, bundle = sender_and_receiver(tmp_path)
    raw, packed = SENDER_FILES["photos/img1.jpg"], SENDER_FILES["docs/readme.md"]
    assert isinstance(raw, bytes) and isinstance(packed, bytes)
    raw_id, packed_id = blake3.blake3(raw).digest(), blake3.blake3(packed).digest()
    with BundleReader(str(bundle)) as reader:
        assert (reader.objects[raw_id].encoding, reader.objects[packed_id].encoding) == (ENC_RAW, ENC_ZSTD)
        other = tmp_path / "other.sqb"
        other.write_bytes(b"\0" * bundle.stat().st_size)
        other.replace(bundle)

        span = reader.object_span(raw_id)
        assert span is not None
        try:
            spanned = os.pread(span.fd, span.size, span.offset)
        finally:
            os.close(span.fd)
        streamed = [b"".join(reader.object_chunks(oid)) for oid in (raw_id, packed_id)]
        problems = reader.verify()

    assert spanned == raw
    assert streamed == [raw, packed]
    assert problems == []  # the whole file checked again is the one opened
