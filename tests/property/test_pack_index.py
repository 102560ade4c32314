"""A pack's index (docs/formats/carrier.md, "Packs"): what is written reads
back the same, a newer version is refused as such, and garbage, a cut or a
flipped bit raises only the index's own errors."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from squirrel.errors import CorruptCarrier, UnsupportedFormat
from squirrel.plumbing import packs

HEADER = packs.PACK_HEADER.size


@st.composite
def indexes(draw: st.DrawFn) -> tuple[list[tuple[bytes, int, int]], int]:
    """Entries for objects laid one after another in a pack, and its size."""
    oids = draw(st.lists(st.binary(min_size=32, max_size=32), unique=True, max_size=20))
    at, entries = HEADER, []
    for oid in oids:
        size = draw(st.integers(min_value=0, max_value=1 << 20))
        entries.append((oid, at, size))
        at += size
    return entries, at


@given(indexes())
def test_an_index_reads_back_as_written_sorted_by_id(index: tuple[list[tuple[bytes, int, int]], int]) -> None:
    entries, size = index
    assert packs.decode_index(packs.encode_index(entries, size), "i") == (sorted(entries), size)


@given(indexes(), st.data())
def test_a_cut_or_flipped_index_is_refused_as_damaged(
    index: tuple[list[tuple[bytes, int, int]], int], data: st.DataObject
) -> None:
    encoded = packs.encode_index(*index)
    cut = encoded[: data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))]
    with pytest.raises(CorruptCarrier):
        packs.decode_index(cut, "i")
    at = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    flipped = bytearray(encoded)
    flipped[at] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
    with pytest.raises((CorruptCarrier, UnsupportedFormat)):  # a flip in the version field may read as newer
        packs.decode_index(bytes(flipped), "i")


@given(st.binary(max_size=300))
def test_garbage_raises_only_the_indexs_own_errors(data: bytes) -> None:
    for candidate in (data, packs.INDEX_MAGIC + data):
        try:
            packs.decode_index(candidate, "i")
        except (CorruptCarrier, UnsupportedFormat):
            pass


def test_a_newer_version_is_refused_as_newer_not_as_damaged() -> None:
    encoded = bytearray(packs.encode_index([(b"\1" * 32, HEADER, 3)], HEADER + 3))
    struct.pack_into("<I", encoded, 8, packs.PACK_VERSION + 1)
    with pytest.raises(UnsupportedFormat, match="newer than this sq"):
        packs.decode_index(bytes(encoded), "i")


def test_an_entry_outside_its_pack_is_refused_even_with_a_sound_checksum() -> None:
    with pytest.raises(CorruptCarrier, match="outside its pack"):
        packs.decode_index(packs.encode_index([(b"\1" * 32, HEADER, 10)], HEADER + 9), "i")
    with pytest.raises(CorruptCarrier, match="outside its pack"):
        packs.decode_index(packs.encode_index([(b"\1" * 32, 3, 10)], HEADER + 10), "i")
