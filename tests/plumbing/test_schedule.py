"""The executor's schedule, checked on plans alone (no disk)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from squirrel.plumbing.index import KIND_DIR, KIND_FILE, Entry
from squirrel.plumbing.plan import DELETE, META, MKDIR, MOVE_ASIDE, RMDIR, WRITE, Action, Plan
from squirrel.plumbing.schedule import batches, order, schedule
from squirrel.plumbing.vtime import EMPTY


def f(content: bytes) -> Entry:
    return Entry(KIND_FILE, content.ljust(32, b"."), len(content), 0o644, 0, EMPTY, EMPTY)


DIR = Entry(KIND_DIR, bytes(32), 0, 0o755, 0, EMPTY, EMPTY)


def plan(*actions: Action) -> Plan:
    return Plan(b"", list(actions))


def kinds(p: Plan, seq: list[int]) -> list[tuple[str, bytes]]:
    return [(p.actions[i].kind, p.actions[i].path) for i in seq]


def test_a_deletion_of_content_a_write_needs_waits_so_the_write_can_rename() -> None:
    p = plan(
        Action(MKDIR, b"old", b=DIR),
        Action(DELETE, b"old/a.jpg", b=f(b"A")),
        Action(RMDIR, b"old", b=DIR),
        Action(WRITE, b"new/a.jpg", a=f(b"A")),
        Action(DELETE, b"gone.txt", b=f(b"G")),
    )
    assert kinds(p, order(p)) == [
        (MKDIR, b"old"),
        (WRITE, b"new/a.jpg"),
        (DELETE, b"gone.txt"),
        (DELETE, b"old/a.jpg"),  # after the write that renames it
        (RMDIR, b"old"),  # and its directory with it
    ]


def test_a_deletion_cannot_wait_when_the_plan_takes_its_path() -> None:
    p = plan(
        Action(DELETE, b"x", b=f(b"A")),  # x becomes a directory below
        Action(MKDIR, b"x", a=DIR),
        Action(WRITE, b"x/a", a=f(b"A")),
        Action(DELETE, b"y", b=f(b"B")),  # y is written again with other content
        Action(WRITE, b"y", a=f(b"C")),
        Action(WRITE, b"z", a=f(b"B")),
        Action(DELETE, b"w/inner", b=f(b"C")),  # below w, which becomes a file
        Action(WRITE, b"w", a=f(b"D")),
    )
    assert order(p) == list(range(len(p.actions)))


def test_the_steps_of_one_conflict_share_a_batch() -> None:
    acts = [Action(META, b"m%d" % i, b=f(b"M")) for i in range(3)]
    acts += [
        Action(MOVE_ASIDE, b"c", b=f(b"B"), target=b"c.copy", conflict=0),
        Action(WRITE, b"c", a=f(b"A"), conflict=0),
    ]
    acts += [Action(META, b"n%d" % i, b=f(b"M")) for i in range(3)]
    p = plan(*acts)
    got = batches(p, list(range(len(acts))), size=4)
    assert got == [[0, 1, 2, 3, 4], [5, 6, 7]]


@given(st.lists(st.integers(min_value=-1, max_value=3), max_size=60), st.integers(min_value=1, max_value=8))
def test_batches_keep_every_action_once_in_order_and_never_split_a_conflict(conflicts: list[int], size: int) -> None:
    # Consecutive actions of one conflict, as the planner makes them.
    acts = [Action(META, b"p%d" % i, b=f(b"M"), conflict=c) for i, c in enumerate(conflicts)]
    p = plan(*acts)
    got = schedule(p, size)
    assert [i for b in got for i in b] == list(range(len(acts)))
    for before, after in zip(got, got[1:], strict=False):
        last, first = acts[before[-1]].conflict, acts[after[0]].conflict
        assert last < 0 or last != first, "a conflict was split between two batches"
    for b in got:
        runs_of_last = sum(1 for i in b if acts[i].conflict == acts[b[-1]].conflict)
        assert len(b) <= size or runs_of_last > 1
