"""Vector times: order, lattice operations, creation times, binary and text forms."""

from __future__ import annotations

import pytest

from squirrel.errors import BadVectorTime
from squirrel.plumbing.vtime import (
    EMPTY,
    MAX_COUNTER,
    VectorTime,
    decode_varint,
    encode_varint,
    is_replica_id,
)

A = "0123456789abcdef"
B = "fedcba9876543210"
C = "00000000000000cc"


def vt(**kw: int) -> VectorTime:
    """Vector time over the replicas A, B, C: `vt(a=1, b=2)`."""
    ids = {"a": A, "b": B, "c": C}
    return VectorTime({ids[k]: n for k, n in kw.items()})


def test_missing_replicas_count_as_zero_and_zero_entries_are_not_stored() -> None:
    v = VectorTime({A: 3, B: 0})
    assert v.get(B) == 0
    assert len(v) == 1
    assert v == VectorTime({A: 3})
    assert hash(v) == hash(VectorTime({A: 3}))
    assert VectorTime({A: 0}) == EMPTY


def test_negative_or_too_large_counters_are_refused() -> None:
    with pytest.raises(BadVectorTime):
        VectorTime({A: -1})
    with pytest.raises(BadVectorTime):
        VectorTime({A: MAX_COUNTER + 1})
    assert VectorTime({A: MAX_COUNTER})[A] == MAX_COUNTER


@pytest.mark.parametrize(
    ("x", "y", "want"),
    [
        (vt(), vt(), "equal"),
        (vt(a=1, b=2), vt(a=1, b=2), "equal"),
        (vt(a=1), vt(a=2), "before"),
        (vt(), vt(a=1), "before"),
        (vt(a=1), vt(a=1, b=1), "before"),
        (vt(a=2, b=1), vt(a=1), "after"),
        (vt(a=1), vt(b=1), "concurrent"),
        (vt(a=2, b=1), vt(a=1, b=2), "concurrent"),
    ],
)
def test_compare(x: VectorTime, y: VectorTime, want: str) -> None:
    assert x.compare(y) == want
    mirror = {"before": "after", "after": "before"}.get(want, want)
    assert y.compare(x) == mirror


def test_order_operators() -> None:
    assert vt(a=1) <= vt(a=1)
    assert not vt(a=1) < vt(a=1)
    assert vt(a=1) < vt(a=1, b=1)
    assert vt(a=2) > vt(a=1)
    assert vt(a=2) >= vt(a=2)
    assert not vt(a=1) <= vt(b=1)
    assert not vt(b=1) <= vt(a=1)


def test_join_is_elementwise_max_and_meet_elementwise_min() -> None:
    x, y = vt(a=3, b=1), vt(b=4, c=2)
    assert x.join(y) == vt(a=3, b=4, c=2)
    assert x.meet(y) == vt(b=1)
    assert x.join(EMPTY) == x
    assert x.meet(EMPTY) == EMPTY
    assert vt(a=1).meet(vt(b=1)) == EMPTY


def test_with_entry_without_and_contains_event() -> None:
    x = vt(a=3, b=1)
    assert x.with_entry(A, 7) == vt(a=7, b=1)
    assert x.with_entry(B, 0) == vt(a=3)
    assert x.without(A) == vt(b=1)
    assert x.without(C) == x
    assert x.contains_event(A, 3)
    assert x.contains_event(A, 1)
    assert not x.contains_event(A, 4)
    assert not x.contains_event(C, 1)
    assert not x.contains_event(A, 0)
    assert x == vt(a=3, b=1), "vector times are immutable"


def test_lineage_seen_by_asks_whether_any_creation_event_is_known() -> None:
    created = vt(a=5, b=2)
    assert created.lineage_seen_by(vt(b=2))
    assert created.lineage_seen_by(vt(a=9))
    assert not created.lineage_seen_by(vt(a=4, b=1))
    assert not created.lineage_seen_by(EMPTY)
    assert not EMPTY.lineage_seen_by(vt(a=9)), "an empty lineage was never created"


def test_lineage_union_keeps_the_earliest_creation_per_replica() -> None:
    assert vt(a=5, b=2).lineage_union(vt(a=3, c=7)) == vt(a=3, b=2, c=7)
    assert vt(a=5).lineage_union(EMPTY) == vt(a=5)


# Binary form: docs/formats/vtime.md ----------------------------------------
def test_encoding_matches_the_documented_example() -> None:
    v = VectorTime({A: 5, B: 300})
    assert v.encode() == bytes.fromhex("02" + A + "05" + B + "ac02")
    assert VectorTime.decode(v.encode()) == v


def test_empty_vector_is_one_zero_byte() -> None:
    assert EMPTY.encode() == b"\x00"
    assert VectorTime.decode(b"\x00") == EMPTY


def test_entries_are_written_sorted_by_replica_id() -> None:
    forward = VectorTime({A: 1, B: 2, C: 3})
    backward = VectorTime({C: 3, B: 2, A: 1})
    assert forward.encode() == backward.encode()
    assert forward.encode()[1:9] == bytes.fromhex(C)


@pytest.mark.parametrize(
    ("n", "encoded"),
    [(0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (16384, "808001")],
)
def test_varints(n: int, encoded: str) -> None:
    assert encode_varint(n) == bytes.fromhex(encoded)
    assert decode_varint(bytes.fromhex(encoded), 0) == (n, len(encoded) // 2)


def test_largest_counter_round_trips() -> None:
    v = VectorTime({A: MAX_COUNTER})
    assert VectorTime.decode(v.encode()) == v


def test_decode_from_returns_the_position_after_the_vector() -> None:
    x, y = vt(a=1), vt(b=2, c=3)
    buf = x.encode() + y.encode()
    got_x, pos = VectorTime.decode_from(buf, 0)
    got_y, end = VectorTime.decode_from(memoryview(buf), pos)
    assert (got_x, got_y, end) == (x, y, len(buf))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes.fromhex("01" + A + "00"),  # counter 0
        bytes.fromhex("02" + A + "01" + A + "02"),  # repeated id
        bytes.fromhex("01" + A[:8]),  # truncated id
        bytes.fromhex("01" + A),  # missing counter
        bytes.fromhex("01" + A + "80"),  # truncated varint
        bytes.fromhex("00ff"),  # trailing bytes
        bytes.fromhex("808008"),  # more than 65,536 entries
        bytes.fromhex("01" + A + "ffffffffffffffff80"),  # 64-bit counter
        bytes.fromhex("01" + A + "ffffffffffffffffffff01"),  # varint too long
    ],
)
def test_damaged_encodings_raise_bad_vector_time(data: bytes) -> None:
    with pytest.raises(BadVectorTime):
        VectorTime.decode(data)


# Text form --------------------------------------------------------------------
def test_format_uses_names_sorted_and_ids_for_unknown_replicas() -> None:
    v = VectorTime({A: 2, B: 5})
    assert v.format({A: "laptop", B: "drive1"}) == "drive1:5,laptop:2"
    assert v.format({A: "laptop"}) == f"{B}:5,laptop:2"
    assert EMPTY.format() == ""


def test_parse_maps_names_to_ids_and_round_trips_format() -> None:
    names = {A: "laptop", B: "drive1"}
    ids = {n: r for r, n in names.items()}
    v = VectorTime({A: 2, B: 5})
    assert VectorTime.parse(v.format(names), ids) == v
    assert VectorTime.parse(v.format()) == v
    assert VectorTime.parse(" x:1 , y:2 ") == VectorTime({"x": 1, "y": 2})
    assert VectorTime.parse("") == EMPTY
    assert VectorTime.parse("x:0") == EMPTY


@pytest.mark.parametrize(
    "text",
    [
        "x",
        "x:",
        ":1",
        "x:one",
        "x:-1",
        "x:1.5",
        "x:1,",
        "x:1,x:2",
        "x:\u00b2",  # a superscript digit: str.isdigit() says yes, int() says no
        "x:\u0661",  # an Arabic-Indic digit
        "x:" + "9" * 5000,
        "x:9223372036854775808",
    ],
)
def test_parse_refuses_malformed_text_with_bad_vector_time(text: str) -> None:
    with pytest.raises(BadVectorTime):
        VectorTime.parse(text)


def test_replica_ids_are_sixteen_lowercase_hex_digits() -> None:
    assert is_replica_id(A)
    assert not is_replica_id(A.upper())
    assert not is_replica_id(A[:-1])
    assert not is_replica_id(A + "0")
    assert not is_replica_id("g" * 16)
    assert not is_replica_id(A + "\n"), "a trailing newline (a hand-edited replica.json) is not part of an id"
