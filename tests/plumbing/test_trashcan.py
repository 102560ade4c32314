"""The trash folder and its items stay in step: whatever items a purge
removes, a content file goes exactly when its last item goes, the bytes it
reports freed are those files' sizes, and the records and the folder agree
afterwards (`problems` finds nothing). A purge whose files were not all
removed yet is finished by `finish_purge`, never removing what an item
still needs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from squirrel.plumbing import ids
from squirrel.plumbing.index import ReplicaIndex
from squirrel.plumbing.trash import DELETED, TrashReason
from squirrel.plumbing.trashcan import PURGING_KEY, Trashcan, record_version

SELF = "5e1f5e1f5e1f5e1f"
CONTENTS = [b"a" * n for n in range(1, 6)]


def new_trash(where: Path, picks: list[int]) -> Trashcan:
    """A fresh index and trash folder holding one item per pick (the
    index of its content), each content's file written once."""
    (where / "index").mkdir()
    (where / "trash").mkdir()
    index = ReplicaIndex(str(where / "index"), SELF, create=True)
    for n, pick in enumerate(picks):
        data = CONTENTS[pick]
        oid = ids.hash_bytes(data)
        (where / "trash" / oid.hex()).write_bytes(data)
        record_version(index, oid, b"f%d" % n, len(data), TrashReason(DELETED, "A"))
    index.commit()
    return Trashcan(index, str(where / "trash"))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, len(CONTENTS) - 1), max_size=12), st.data())
def test_a_purge_removes_a_content_file_with_its_last_item(picks: list[int], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        trash = new_trash(Path(tmp), picks)
        items = trash.items()
        remove = data.draw(st.lists(st.sampled_from(items), unique_by=lambda it: it.id) if items else st.just([]))
        report = trash.purge(remove)
        kept = trash.items()
        assert {it.id for it in kept} == {it.id for it in items} - {it.id for it in remove}
        assert set(os.listdir(trash.dir)) == {it.name for it in kept}
        gone = {it.name for it in items} - {it.name for it in kept}
        sizes = {it.name: it.size for it in items}
        assert report.freed == sum(sizes[name] for name in gone)
        assert report.files == len(gone) and report.kept == trash.usage()
        assert trash.problems() == [] and trash.pending_purge() == []
        trash.index.close()


def test_a_purge_left_unfinished_is_finished_and_spares_what_an_item_needs_again(tmp_path: Path) -> None:
    trash = new_trash(tmp_path, [0, 1, 2])
    first, second, third = sorted(trash.items(), key=lambda it: it.id)
    # As a purge killed after its decision: items gone, files still there.
    for it in (first, second):
        trash.index.trash_drop(it)
    trash.index.set_meta_json(PURGING_KEY, [first.name, second.name, "../../escape", "notes.txt"])
    trash.index.commit()
    assert any("purge was interrupted" in p for p in trash.problems())
    # Meanwhile the second content was trashed again: its file is needed.
    assert second.oid is not None
    record_version(trash.index, second.oid, b"again", second.size, TrashReason(DELETED, "A"))
    trash.index.commit()
    assert trash.finish_purge() == 1
    assert set(os.listdir(trash.dir)) == {second.name, third.name}
    assert trash.problems() == [] and trash.pending_purge() == []
    assert trash.finish_purge() == 0
    trash.index.close()
