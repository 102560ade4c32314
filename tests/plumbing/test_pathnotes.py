"""A report's long list of paths and why keeps every pair, in order
(squirrel/plumbing/pathnotes.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from squirrel.plumbing.pathnotes import PathNotes

# Paths of any bytes and length (a varint's one-byte case ends at 127), and
# notes from a few sentences or many, as a report's reasons are.
PAIRS = st.lists(st.tuples(st.binary(max_size=300), st.sampled_from(["a", "b", "é"]) | st.text(max_size=20)))


@given(PAIRS)
def test_every_pair_comes_back_in_order(pairs: list[tuple[bytes, str]]) -> None:
    notes = PathNotes(pairs)
    assert list(notes) == pairs
    assert len(notes) == len(pairs) and bool(notes) == bool(pairs)
    assert notes == pairs and notes == PathNotes(pairs)


@given(PAIRS, PAIRS)
def test_lists_add_up(first: list[tuple[bytes, str]], second: list[tuple[bytes, str]]) -> None:
    notes = PathNotes(first)
    notes += PathNotes(second)
    assert list(notes) == first + second
    notes += notes
    assert list(notes) == (first + second) * 2


def test_a_list_differs_from_one_with_another_pair() -> None:
    notes = PathNotes([(b"a.jpg", "waits")])
    assert notes != [(b"a.jpg", "waits for another bundle")]
    assert notes != [(b"a.jpg", "waits"), (b"b.jpg", "waits")]
    assert notes != PathNotes() and PathNotes() == []


def test_a_list_and_the_notes_add_up_to_a_list() -> None:
    failed = [(b"x.jpg", "permission denied")]
    assert failed + PathNotes([(b"y.jpg", "waits")]) == [(b"x.jpg", "permission denied"), (b"y.jpg", "waits")]


def test_pairs_appended_while_the_list_is_read_are_kept() -> None:
    notes = PathNotes([(b"a", "one"), (b"b", "two")])
    reading = iter(notes)
    assert next(reading) == (b"a", "one")
    notes.append((b"c", "three"))
    notes.extend(notes)
    assert list(reading) == [(b"b", "two")]
    assert [p for p, _ in notes] == [b"a", b"b", b"c", b"a", b"b", b"c"]
