"""Vector times form a lattice, and their parsers raise only their own error.

Small replica pools and counters make equal and comparable vectors common,
so the order laws are exercised on more than concurrent pairs.
"""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from squirrel.errors import BadVectorTime, CorruptIndex
from squirrel.plumbing import entry as entry_mod
from squirrel.plumbing.index import FLAG_PARTIAL, FLAG_RACY, KIND_FILE, Entry, decode_entry, encode_entry, new_dir
from squirrel.plumbing.vtime import EMPTY, MAX_COUNTER, VectorTime

POOL = ["0000000000000001", "00000000000000aa", "7fffffffffffffff", "ffffffffffffffff"]

small = st.dictionaries(st.sampled_from(POOL), st.integers(0, 4), max_size=4).map(VectorTime)
wide = st.dictionaries(
    st.text("0123456789abcdef", min_size=16, max_size=16), st.integers(0, MAX_COUNTER), max_size=6
).map(VectorTime)

FAST = settings(max_examples=150, deadline=None)
GARBAGE = settings(max_examples=300, deadline=None)


@FAST
@given(small, small)
def test_join_and_meet_commute(a: VectorTime, b: VectorTime) -> None:
    assert a.join(b) == b.join(a)
    assert a.meet(b) == b.meet(a)


@FAST
@given(small, small, small)
def test_join_and_meet_associate(a: VectorTime, b: VectorTime, c: VectorTime) -> None:
    assert a.join(b).join(c) == a.join(b.join(c))
    assert a.meet(b).meet(c) == a.meet(b.meet(c))


@FAST
@given(small, small)
def test_idempotence_and_absorption(a: VectorTime, b: VectorTime) -> None:
    assert a.join(a) == a and a.meet(a) == a
    assert a.join(a.meet(b)) == a
    assert a.meet(a.join(b)) == a
    assert a.join(EMPTY) == a and a.meet(EMPTY) == EMPTY


@FAST
@given(small, small, small)
def test_join_is_the_least_upper_bound(a: VectorTime, b: VectorTime, c: VectorTime) -> None:
    j = a.join(b)
    assert a <= j and b <= j
    if a <= c and b <= c:
        assert j <= c
    m = a.meet(b)
    assert m <= a and m <= b
    if c <= a and c <= b:
        assert c <= m


@FAST
@given(small, small, small)
def test_le_is_a_partial_order(a: VectorTime, b: VectorTime, c: VectorTime) -> None:
    assert a <= a
    if a <= b and b <= a:
        assert a == b
    if a <= b and b <= c:
        assert a <= c


@FAST
@given(small, small)
def test_order_is_consistent_with_join_meet_and_compare(a: VectorTime, b: VectorTime) -> None:
    assert (a <= b) == (a.join(b) == b) == (a.meet(b) == a)
    assert (a < b) == (a <= b and a != b)
    assert (a >= b) == (b <= a)
    want = {
        (True, True): "equal",
        (True, False): "before",
        (False, True): "after",
        (False, False): "concurrent",
    }[(a <= b, b <= a)]
    assert a.compare(b) == want
    mirror = {"before": "after", "after": "before"}.get(want, want)
    assert b.compare(a) == mirror
    if a == b:
        assert hash(a) == hash(b)


@FAST
@given(small, small, small)
def test_lineage_union_is_a_semilattice_and_seen_by_is_monotone(a: VectorTime, b: VectorTime, s: VectorTime) -> None:
    assert a.lineage_union(b) == b.lineage_union(a)
    assert a.lineage_union(a) == a
    assert a.lineage_union(b).lineage_union(s) == a.lineage_union(b.lineage_union(s))
    if a.lineage_seen_by(s):
        assert a.lineage_seen_by(s.join(b))
        assert a.lineage_union(b).lineage_seen_by(s)


@FAST
@given(wide)
def test_binary_round_trip(v: VectorTime) -> None:
    data = v.encode()
    assert VectorTime.decode(data) == v
    assert VectorTime.decode(data).encode() == data


@FAST
@given(wide, st.binary(max_size=8))
def test_decode_from_stops_at_the_end_of_the_vector(v: VectorTime, tail: bytes) -> None:
    got, pos = VectorTime.decode_from(v.encode() + tail)
    assert (got, pos) == (v, len(v.encode()))


@FAST
@given(wide)
def test_text_round_trip(v: VectorTime) -> None:
    assert VectorTime.parse(v.format()) == v


@GARBAGE
@given(st.binary(max_size=64))
def test_decoding_garbage_raises_only_bad_vector_time(data: bytes) -> None:
    try:
        v = VectorTime.decode(data)
    except BadVectorTime:
        return
    assert VectorTime.decode(v.encode()) == v


@GARBAGE
@given(st.text(max_size=40) | st.text(st.sampled_from("ab09:, \t-\u00b2\u0661"), max_size=30))
def test_parsing_garbage_raises_only_bad_vector_time(text: str) -> None:
    try:
        v = VectorTime.parse(text)
    except BadVectorTime:
        return
    assert VectorTime.parse(v.format()) == v


flags = st.sampled_from([0, FLAG_RACY, FLAG_PARTIAL, FLAG_RACY | FLAG_PARTIAL])
# Every file a record can hold, and every directory (whose record keeps only its times and flags).
entries = st.builds(
    Entry,
    kind=st.just(KIND_FILE),
    oid=st.binary(min_size=32, max_size=32),
    size=st.integers(0, 2**64 - 1),
    mode=st.integers(0, 2**32 - 1),
    mtime_ns=st.integers(-(2**63), 2**63 - 1),
    m=wide,
    c=wide,
    flags=flags,
) | st.builds(lambda m, c, f: replace(new_dir(m, c), flags=f), wide, wide, flags)


@FAST
@given(entries)
def test_index_records_round_trip(e: Entry) -> None:
    assert decode_entry(encode_entry(e)) == e


def _decoded(raw: bytes) -> Entry | None:
    try:
        return decode_entry(raw)
    except CorruptIndex:
        return None


def _head_flipped(raw: bytes, bit: int) -> bytes:
    return bytes([raw[0] ^ bit]) + raw[1:]


@FAST
@given(
    st.lists(st.tuples(entries.map(encode_entry), st.sampled_from([0x10, 0x03, 0x04])), max_size=4),
    st.lists(st.binary(max_size=60), max_size=3),
    st.randoms(use_true_random=False),
)
def test_records_that_share_their_times_decode_each_as_it_would_alone(
    valid: list[tuple[bytes, int]], garbage: list[bytes], rng: random.Random
) -> None:
    """Decoded times are kept and shared by records with the same tail: a
    record (valid, with a head changed under the same tail, or garbage)
    still decodes, or is refused, exactly as it is on its own, whichever
    came first."""
    records = [r for raw, bit in valid for r in (raw, _head_flipped(raw, bit))] + garbage
    rng.shuffle(records)
    alone = []
    for raw in records:
        entry_mod._TIMES.clear()
        alone.append(_decoded(raw))
    entry_mod._TIMES.clear()
    assert [_decoded(raw) for raw in records] == alone


@GARBAGE
@given(st.binary(max_size=120))
def test_decoding_a_garbage_index_record_raises_only_corrupt_index(data: bytes) -> None:
    try:
        e = decode_entry(data)
    except CorruptIndex:
        return
    assert encode_entry(e) == data or decode_entry(encode_entry(e)) == e
