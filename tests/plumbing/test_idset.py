"""Object id lists (`ObjectIds`): the same answers as a Python set of the ids,
for ids in any order, with repeats, and for stored lists that are damaged or
not sorted."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from squirrel.plumbing.idset import ObjectIds

# Ids that share first bytes often, so that runs and their edges are exercised.
oid = st.builds(
    lambda head, tail: bytes([head]) + tail, st.sampled_from([0, 1, 127, 255]), st.binary(min_size=31, max_size=31)
)


@given(st.lists(oid, max_size=60), st.lists(oid, max_size=20))
def test_membership_is_that_of_a_set(ids: list[bytes], others: list[bytes]) -> None:
    built = ObjectIds.build(ids + ids[:5])  # repeats count once
    assert len(built) == len(set(ids))
    assert list(built) == sorted(set(ids))
    assert bool(built) == bool(ids)
    for x in ids + others:
        assert (x in built) == (x in set(ids))


@given(st.lists(oid, max_size=40), st.binary(max_size=31))
def test_a_stored_list_in_any_order_or_cut_short_reads_as_its_whole_ids(ids: list[bytes], tail: bytes) -> None:
    read = ObjectIds.read(b"".join(ids) + tail)
    assert read == ObjectIds.build(ids)
    assert all(x in read for x in ids)


def test_what_is_not_an_id_is_never_a_member() -> None:
    ids = ObjectIds.build([bytes(32), b"\xff" * 32])
    assert bytes(31) not in ids
    assert bytes(33) not in ids
    assert "x" * 32 not in ids
    assert bytes(32) in ids and b"\xff" * 32 in ids
    assert bytes(32) not in ObjectIds()


def test_a_string_of_partial_ids_is_refused() -> None:
    with pytest.raises(ValueError):
        ObjectIds(bytes(33))
