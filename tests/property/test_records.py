"""Every stored record survives its stored form (JSON, or the trash item's
binary record) unchanged, names that are not UTF-8 included, and garbage
read back raises only the record's own error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from squirrel.errors import CorruptIndex
from squirrel.plumbing.carrier import DriveRecord
from squirrel.plumbing.journal import FileVersion, Step
from squirrel.plumbing.knowledge import Knowledge
from squirrel.plumbing.records import ConflictRecord, VersionInfo
from squirrel.plumbing.tra import CONFLICT_KINDS
from squirrel.plumbing.trash import CAUSES, LEFTOVERS_PREFIX, TrashItem, TrashReason
from squirrel.plumbing.vtime import VectorTime
from squirrel.plumbing.wanted import ScrubState, WantedMark

# Relative paths: components of arbitrary bytes but NUL and "/", Latin-1 names among them.
component = st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b and b"\0" not in b)
rel_path = st.lists(component, min_size=1, max_size=4).map(b"/".join)
# What a knowledge file may name: no backslash, no "." or "..", nothing under .squirrel/.
safe_component = component.filter(lambda b: b"\\" not in b and b not in (b".", b"..") and b.lower() != b".squirrel")
safe_path = st.lists(safe_component, min_size=1, max_size=4).map(b"/".join)
oid = st.binary(min_size=32, max_size=32)
count = st.integers(min_value=0, max_value=(1 << 63) - 1)
replica_id = st.text("0123456789abcdef", min_size=16, max_size=16)


def through_json(doc: dict[str, Any]) -> Any:
    """What a reader gets back from the stored bytes."""
    return json.loads(json.dumps(doc, sort_keys=True))


versions = st.builds(
    VersionInfo,
    kind=st.sampled_from(["file", "dir"]),
    oid=st.none() | oid,
    size=count,
    mtime_ns=count,
    m=st.text(max_size=40),
)
conflicts = st.builds(
    ConflictRecord,
    path=rel_path,
    kind=st.sampled_from(CONFLICT_KINDS),
    kept=rel_path,
    copy=st.none() | rel_path,
    ours=st.none() | versions,
    theirs=st.none() | versions,
    time=count,
    replica=st.none() | st.text(min_size=1, max_size=10),
    kept_oid=st.none() | oid,
    copy_oid=st.none() | oid,
    resolved=st.booleans(),
) | st.builds(  # recorded before the versions' ids were kept
    ConflictRecord,
    path=rel_path,
    kind=st.sampled_from(CONFLICT_KINDS),
    kept=rel_path,
    copy=st.none() | rel_path,
    tracked=st.just(False),
)


@given(conflicts)
def test_a_conflict_record_round_trips(record: ConflictRecord) -> None:
    assert ConflictRecord.from_json(through_json(record.to_json())) == record


@given(conflicts)
def test_a_conflict_summary_carries_exact_bytes_for_every_path(record: ConflictRecord) -> None:
    doc = through_json(record.summary_json())
    assert ConflictRecord.from_json(doc) == ConflictRecord(
        record.path, record.kind, record.kept, record.copy, replica=record.replica, tracked=False
    )


item_ids = st.integers(min_value=1, max_value=(1 << 64) - 1)
times = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
sizes = st.integers(min_value=0, max_value=(1 << 64) - 1)
reasons = st.builds(
    TrashReason,
    cause=st.sampled_from(CAUSES),
    sender=st.none() | st.text(min_size=1, max_size=20).filter(lambda t: len(t.encode()) <= 255),
)
folders = st.integers(min_value=0).map(lambda n: f"{LEFTOVERS_PREFIX}{n}")
trash_items = st.one_of(
    st.builds(TrashItem, item_ids, oid.filter(any), rel_path, sizes, times, reasons, st.none() | times, st.none()),
    st.builds(TrashItem, item_ids, st.none(), rel_path, sizes, times, reasons, st.none(), folders),
)


@given(trash_items)
def test_a_trash_item_round_trips_through_the_index_and_json(item: TrashItem) -> None:
    assert TrashItem.decode(item.key, item.encode()) == item
    assert TrashItem.from_json(through_json(item.to_json())) == item


@given(trash_items, st.binary(max_size=40), st.integers(min_value=0, max_value=60))
def test_a_damaged_trash_record_raises_corrupt_index_only(item: TrashItem, junk: bytes, cut: int) -> None:
    raw = item.encode()
    for key, value in ((item.key, raw[:cut]), (item.key, junk), (item.key[:-1], raw), (item.key[:32], junk)):
        try:
            TrashItem.decode(key, value)
        except CorruptIndex:
            pass


# A step names paths inside the replica: no ".." component.
step_path = rel_path.filter(lambda p: b".." not in p.split(b"/"))
versions_of_files = st.builds(FileVersion, oid, count, count, count)
steps = st.one_of(
    st.builds(Step, kind=st.sampled_from(["placed", "removed"]), path=step_path, version=versions_of_files),
    st.builds(Step, kind=st.just("moved"), path=step_path, version=versions_of_files, to=step_path),
    st.builds(Step, kind=st.sampled_from(["mkdir", "rmdir"]), path=step_path),
)


@given(steps)
def test_an_intent_log_step_round_trips(step: Step) -> None:
    assert Step.from_json(through_json(step.to_json())) == step


vtimes = st.dictionaries(replica_id, st.integers(min_value=1, max_value=1 << 40), max_size=4).map(VectorTime)


@given(
    replica_id,
    st.text(min_size=1, max_size=12),
    count,
    st.lists(st.text("0123456789abcdef", max_size=32), max_size=2),
    replica_id,
    st.dictionaries(safe_path, vtimes, max_size=4),
    vtimes,
    st.none() | count,
)
def test_a_drive_record_round_trips(
    drive: str,
    name: str,
    when: int,
    tokens: list[str],
    vault: str,
    stored: dict[bytes, VectorTime],
    root: VectorTime,
    forgotten: int | None,
) -> None:
    know = Knowledge(vault, drive, 7, {b"": root, **stored})
    record = DriveRecord(drive, name, when, tuple(tokens), know, forgotten, scrubbed=forgotten)
    back = DriveRecord.from_json(drive, through_json(record.to_json()))
    assert back.scrubbed == forgotten
    assert (back.id, back.name, back.last_visit, back.tokens) == (drive, name, when, tuple(tokens))
    assert back.forgotten == forgotten and back.known_again().forgotten is None
    assert (back.knowledge.vault, back.knowledge.replica, back.knowledge.counter) == (vault, drive, 7)
    assert back.knowledge.stored == know.stored


marks = st.builds(WantedMark, path=rel_path, oid=oid, size=count, mtime_ns=count, found=oid, since=count)
scrubs = st.builds(
    ScrubState,
    cursor=st.none() | st.binary(max_size=40),
    began=st.none() | count,
    read=count,
    last_full=st.none() | count,
    last_full_began=st.none() | count,
)


@given(marks)
def test_a_wanted_mark_round_trips(mark: WantedMark) -> None:
    assert WantedMark.from_json(mark.path, through_json(mark.to_json())) == mark


@given(scrubs)
def test_a_scrub_state_round_trips(state: ScrubState) -> None:
    assert ScrubState.from_json(through_json(state.to_json())) == state


@given(st.dictionaries(safe_path, oid, max_size=3))
def test_knowledge_with_damaged_files_round_trips(wanted: dict[bytes, bytes]) -> None:
    know = Knowledge("0123456789abcdef", "fedcba9876543210", 3, {b"": VectorTime()}, wanted=wanted)
    assert Knowledge.from_json(through_json(know.to_json())).wanted == wanted


garbage = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(garbage)
def test_garbage_conflict_and_trash_records_raise_corrupt_index_only(doc: Any) -> None:
    for parse in (
        ConflictRecord.from_json,
        TrashItem.from_json,
        ScrubState.from_json,
        lambda d: WantedMark.from_json(b"a", d),
    ):
        try:
            parse(doc)
        except CorruptIndex:
            pass


@given(garbage)
def test_garbage_steps_and_drive_records_raise_value_error_only(doc: Any) -> None:
    for parse in (Step.from_json, lambda d: DriveRecord.from_json("0" * 16, d)):
        try:
            parse(doc)
        except ValueError:
            pass


@pytest.mark.parametrize(
    "doc",
    [
        {"path": "a", "kind": "update/update", "copy": None, "time": "yesterday"},
        {"path_b64": "not base64!", "path": "a", "kind": "update/update"},
        {"path": "a", "kind": "update/update", "ours": {"kind": "file", "oid": "00", "m": ""}},
    ],
)
def test_damaged_conflict_records_are_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(CorruptIndex):
        ConflictRecord.from_json(doc)
