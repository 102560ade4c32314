"""What a purge or the retention policy removes from the trash: oldest
first, so what stays is always the newest; the policy never touches an item
younger than a day; a size limit is met whenever the items it may remove
allow it, counting a content file shared by several items once."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from squirrel.errors import CorruptIndex
from squirrel.plumbing.retention import DAY, Policy, by_policy, older_than, to_fit
from squirrel.plumbing.trash import DELETED, TrashItem, TrashReason, held_bytes, oldest_first

NOW = 1_800_000_000
CONTENTS = [bytes([n]) * 32 for n in range(1, 6)]  # few contents, so that items share them
SIZE = {c: 100 * n for n, c in enumerate(CONTENTS, start=1)}


@st.composite
def trashes(draw: st.DrawFn) -> list[TrashItem]:
    """Items trashed over the last 60 days, some sharing content."""
    n = draw(st.integers(min_value=0, max_value=25))
    out = []
    for i in range(1, n + 1):
        oid = draw(st.sampled_from(CONTENTS))
        age = draw(st.integers(min_value=0, max_value=60 * DAY))
        out.append(TrashItem(i, oid, b"f%d" % i, SIZE[oid], NOW - age, TrashReason(DELETED)))
    return out


@given(trashes(), st.integers(min_value=0, max_value=60 * DAY))
def test_older_than_removes_exactly_what_was_trashed_before_the_cutoff(items: list[TrashItem], age: int) -> None:
    gone = older_than(items, NOW - age)
    assert {it.id for it in gone} == {it.id for it in items if it.time < NOW - age}
    assert gone == oldest_first(gone)


@given(trashes(), st.integers(min_value=0, max_value=2000))
def test_a_size_limit_removes_the_oldest_until_the_rest_fits(items: list[TrashItem], limit: int) -> None:
    gone = to_fit(items, limit)
    ids = {it.id for it in gone}
    kept = [it for it in items if it.id not in ids]
    assert held_bytes(kept) <= limit
    assert gone == oldest_first(items)[: len(gone)], "the oldest go first: the newest stay"
    if gone:
        before_last = [it for it in items if it.id not in ids or it.id == gone[-1].id]
        assert held_bytes(before_last) > limit, "nothing is removed once the rest fits"


@given(trashes(), st.none() | st.integers(min_value=1, max_value=90), st.none() | st.integers(0, 2000))
def test_the_policy_never_removes_an_item_younger_than_a_day(
    items: list[TrashItem], keep_days: int | None, max_size: int | None
) -> None:
    policy = Policy(keep_days, max_size)
    gone = by_policy(items, policy, NOW)
    ids = {it.id for it in gone}
    assert all(it.time <= NOW - DAY for it in gone)
    kept = [it for it in items if it.id not in ids]
    if keep_days is not None:
        assert all(it.time >= NOW - keep_days * DAY or it.time > NOW - DAY for it in kept)
    if max_size is not None:
        # Either the rest fits, or only items younger than a day are left.
        assert held_bytes(kept) <= max_size or all(it.time > NOW - DAY for it in kept)
    if policy.keeps_everything:
        assert gone == []


def test_an_item_whose_content_a_newer_one_shares_frees_nothing_alone() -> None:
    shared = CONTENTS[0]
    old = TrashItem(1, shared, b"a", 500, NOW - 9 * DAY, TrashReason(DELETED))
    new = TrashItem(2, shared, b"b", 500, NOW - 8 * DAY, TrashReason(DELETED))
    other = TrashItem(3, CONTENTS[1], b"c", 200, NOW - 7 * DAY, TrashReason(DELETED))
    assert held_bytes([old, new, other]) == 700
    assert to_fit([old, new, other], 600) == [old, new], "both items of the shared content go to free it"
    assert to_fit([old, new, other], 700) == []


def test_a_policy_round_trips_and_a_damaged_one_is_refused() -> None:
    for p in (Policy(), Policy(30, None), Policy(None, 1 << 30), Policy(7, 0)):
        assert Policy.from_json(p.to_json()) == p
    assert Policy.from_json(None).keeps_everything
    for bad in ([], {"keep_days": "30"}, {"max_size": -1}, {"keep_days": 1.5}):
        with pytest.raises(CorruptIndex):
            Policy.from_json(bad)
