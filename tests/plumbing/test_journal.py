"""The intent log (docs/formats/journal.md): what recovery undoes, what it
leaves alone, and what it refuses. Real replicas, real files."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from squirrel.errors import CorruptIndex, UnsupportedFormat
from squirrel.plumbing import journal
from squirrel.plumbing.index import KIND_FILE, Entry
from squirrel.plumbing.replica import Replica
from squirrel.plumbing.vtime import VectorTime
from tests.helpers import make_tree, run_sq


def version(data: bytes, mtime_ns: int = 1_600_000_000_000_000_000) -> Entry:
    return Entry(KIND_FILE, blake3.blake3(data).digest(), len(data), 0o644, mtime_ns, VectorTime(), VectorTime())


def trash_file(root: Path, data: bytes) -> Path:
    return root / ".squirrel" / "trash" / blake3.blake3(data).hexdigest()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "R"
    r.mkdir()
    Replica.create(str(r)).close()
    return r


def leave_log(root: Path, *steps: journal.Step, batch: str = "00000000000000aa") -> None:
    """What a command killed during a batch leaves behind."""
    journal.Journal(str(root / ".squirrel")).begin(batch, steps)


def reopen(root: Path) -> None:
    """Open for writing, as every command does first."""
    Replica.open(str(root)).close()


def test_a_file_placed_by_an_unfinished_batch_goes_to_the_trash(root: Path) -> None:
    make_tree(root, {"new.jpg": "the sender's version"})
    leave_log(root, journal.placed(b"new.jpg", version(b"the sender's version")))
    reopen(root)
    assert not (root / "new.jpg").exists()
    assert trash_file(root, b"the sender's version").read_bytes() == b"the sender's version"
    assert not (root / ".squirrel" / "journal").exists()


def test_a_version_removed_by_an_unfinished_batch_comes_back_with_its_mtime(root: Path) -> None:
    old = version(b"the old version", mtime_ns=1_500_000_000_123_456_789)
    trash_file(root, b"the old version").write_bytes(b"the old version")
    leave_log(root, journal.removed(b"x.jpg", old))
    reopen(root)
    assert (root / "x.jpg").read_bytes() == b"the old version"
    assert os.stat(root / "x.jpg").st_mtime_ns == old.mtime_ns
    assert trash_file(root, b"the old version").read_bytes() == b"the old version", "the trash keeps its copy"


def test_an_update_half_done_is_put_back_in_reverse_order(root: Path) -> None:
    """The old version in the trash, the new one at the path: undone, the old is back."""
    old, new = version(b"old"), version(b"new")
    trash_file(root, b"old").write_bytes(b"old")
    make_tree(root, {"x.jpg": "new"})
    leave_log(root, journal.removed(b"x.jpg", old), journal.placed(b"x.jpg", new))
    reopen(root)
    assert (root / "x.jpg").read_bytes() == b"old"
    assert trash_file(root, b"new").read_bytes() == b"new"


def test_a_move_is_renamed_back_before_placed_could_take_it(root: Path) -> None:
    data = b"a photo that moved"
    make_tree(root, {"to/p.jpg": data})
    src = version(data, mtime_ns=1_400_000_000_000_000_000)
    leave_log(root, journal.placed(b"to/p.jpg", version(data)), journal.moved(b"from.jpg", b"to/p.jpg", src))
    reopen(root)
    assert (root / "from.jpg").read_bytes() == data
    assert os.stat(root / "from.jpg").st_mtime_ns == src.mtime_ns
    assert not (root / "to/p.jpg").exists()


def test_steps_whose_change_never_happened_change_nothing(root: Path) -> None:
    make_tree(root, {"x.jpg": "the user's own file", "d/keep": "k"})
    trash_file(root, b"something else").write_bytes(b"something else")
    leave_log(
        root,
        journal.placed(b"x.jpg", version(b"the sender's version")),  # not written: other content there
        journal.removed(b"x.jpg", version(b"something else")),  # not removed: a file is there
        journal.moved(b"x.jpg", b"y.jpg", version(b"the user's own file")),  # not moved: x.jpg is there
        journal.made_dir(b"d"),  # not empty: stays
        journal.removed_dir(b"x.jpg"),  # something is there: nothing made
    )
    reopen(root)
    assert (root / "x.jpg").read_bytes() == b"the user's own file"
    assert (root / "d/keep").read_bytes() == b"k"
    assert not (root / "y.jpg").exists()


def test_folders_made_and_removed_are_undone(root: Path) -> None:
    (root / "made").mkdir()
    leave_log(root, journal.made_dir(b"made"), journal.removed_dir(b"gone"))
    reopen(root)
    assert not (root / "made").exists()
    assert (root / "gone").is_dir()


def test_a_batch_that_committed_is_not_undone(root: Path) -> None:
    make_tree(root, {"new.jpg": "kept"})
    with Replica.open(str(root)) as rep:
        rep.index.set_meta_json(journal.META_KEY, "00000000000000bb")
        rep.index.commit()
    leave_log(root, journal.placed(b"new.jpg", version(b"kept")), batch="00000000000000bb")
    reopen(root)
    assert (root / "new.jpg").read_bytes() == b"kept"
    assert not (root / ".squirrel" / "journal").exists()


def test_recovering_twice_is_recovering_once(root: Path) -> None:
    """A recovery killed halfway is simply run again."""
    old, new = version(b"old"), version(b"new")
    trash_file(root, b"old").write_bytes(b"old")
    make_tree(root, {"x.jpg": "new"})
    steps = (journal.removed(b"x.jpg", old), journal.placed(b"x.jpg", new))
    leave_log(root, *steps)
    reopen(root)
    leave_log(root, *steps)
    reopen(root)
    assert (root / "x.jpg").read_bytes() == b"old"
    assert sorted(p.name for p in (root / ".squirrel" / "trash").iterdir()) == sorted(
        [trash_file(root, b"old").name, trash_file(root, b"new").name]
    )


def write_log(root: Path, text: bytes) -> None:
    (root / ".squirrel" / "journal").write_bytes(text)


def test_a_newer_log_version_is_refused_and_nothing_is_undone(root: Path) -> None:
    make_tree(root, {"new.jpg": "x"})
    step = json.dumps(journal.placed(b"new.jpg", version(b"x")).to_json())
    write_log(root, b'{"format": "sq-journal", "version": 2, "batch": "1"}\n' + step.encode() + b"\n")
    with pytest.raises(UnsupportedFormat):
        reopen(root)
    assert (root / "new.jpg").read_bytes() == b"x"


def test_a_damaged_log_stops_every_command_with_one_line_and_exit_9(root: Path) -> None:
    make_tree(root, {"x.jpg": "x"})
    write_log(root, b'{"format": "sq-journal", "version": 1, "batch": "1"}\n{"t": "placed", "p": ')
    proc = run_sq("scan", root)
    assert proc.code == 9
    lines = proc.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sq: error: ") and "intent log" in lines[0]
    assert (root / "x.jpg").read_bytes() == b"x"


@pytest.mark.parametrize("path", [b"", b"/etc/passwd", b"../outside", b"a/../../outside", b"a\x00b"])
def test_a_step_naming_a_path_outside_the_replica_is_refused(root: Path, path: bytes) -> None:
    outside = root.parent / "outside"
    outside.write_bytes(b"not the replica's")
    step = {**journal.placed(b"x", version(b"not the replica's")).to_json(), "p": base64.b64encode(path).decode()}
    write_log(root, b'{"format": "sq-journal", "version": 1, "batch": "1"}\n' + json.dumps(step).encode() + b"\n")
    with pytest.raises(CorruptIndex):
        reopen(root)
    assert outside.read_bytes() == b"not the replica's"


def test_a_log_with_one_bad_step_undoes_nothing_at_all(root: Path) -> None:
    """Steps are undone last first: a bad first step must not be found only
    after the others were undone."""
    make_tree(root, {"new.jpg": "the sender's version"})
    bad = {**journal.placed(b"x", version(b"x")).to_json(), "p": base64.b64encode(b"../outside").decode()}
    good = journal.placed(b"new.jpg", version(b"the sender's version")).to_json()
    lines = [
        b'{"format": "sq-journal", "version": 1, "batch": "1"}',
        json.dumps(bad).encode(),
        json.dumps(good).encode(),
    ]
    write_log(root, b"\n".join(lines) + b"\n")
    with pytest.raises(CorruptIndex):
        reopen(root)
    assert (root / "new.jpg").read_bytes() == b"the sender's version"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.dictionaries(
                st.sampled_from(["t", "p", "to", "oid", "size", "mtime_ns", "mode", "format", "version", "batch"]),
                st.one_of(st.text(max_size=20), st.integers(), st.none(), st.sampled_from(list(journal.UNDO))),
            ),
            max_size=4,
        ).map(lambda rows: b"\n".join(json.dumps(r).encode() for r in rows)),
    )
)
def test_garbage_in_the_log_raises_only_the_log_errors(root: Path, text: bytes) -> None:
    write_log(root, text)
    try:
        reopen(root)
    except (CorruptIndex, UnsupportedFormat):
        return


def test_a_restore_killed_halfway_is_redone_and_leaves_nothing_beside_the_users_files(root: Path) -> None:
    old = version(b"the old version")
    trash_file(root, b"the old version").write_bytes(b"the old version")
    # What a recovery killed while restoring leaves: its temporary copy, in .squirrel/tmp/.
    (root / ".squirrel" / "tmp" / f"restore-{old.oid.hex()}").write_bytes(b"the old")
    leave_log(root, journal.removed(b"x.jpg", old))
    reopen(root)
    assert (root / "x.jpg").read_bytes() == b"the old version"
    assert sorted(p.name for p in root.iterdir()) == [".squirrel", "x.jpg"]


def test_verify_says_when_an_interrupted_sync_waits_to_be_undone(root: Path) -> None:
    make_tree(root, {"new.jpg": "x"})
    leave_log(root, journal.placed(b"new.jpg", version(b"x")))
    proc = run_sq("verify", root)
    assert proc.code == 1
    assert "intent log" in proc.stdout.decode() + proc.stderr.decode()
    assert (root / "new.jpg").exists(), "verify only reads"
    run_sq("scan", root)
    assert run_sq("verify", root).code == 0


def test_an_undo_never_goes_through_a_symlink_put_in_since(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.jpg").write_bytes(b"the sender's version")
    trash_file(root, b"old").write_bytes(b"old")
    (root / "album").symlink_to(outside)  # where the folder album/ was
    leave_log(
        root,
        journal.removed(b"album/y.jpg", version(b"old")),
        journal.placed(b"album/x.jpg", version(b"the sender's version")),
        journal.removed_dir(b"album/sub"),
    )
    reopen(root)
    assert sorted(p.name for p in outside.iterdir()) == ["x.jpg"]
    assert (outside / "x.jpg").read_bytes() == b"the sender's version"


def test_status_says_when_an_interrupted_sync_waits_to_be_undone(root: Path) -> None:
    make_tree(root, {"new.jpg": "x"})
    leave_log(root, journal.placed(b"new.jpg", version(b"x")))
    proc = run_sq("status", root, "--json", "--exit-code")
    assert proc.code == 1
    assert json.loads(proc.stdout)["interrupted"] is True
    assert "interrupted" in run_sq("status", root).stderr.decode()
    run_sq("scan", root)
    proc = run_sq("status", root, "--json", "--exit-code")
    assert proc.code == 0 and json.loads(proc.stdout)["interrupted"] is False


# Names as a scan records them: no "/", no NUL, never "." or "..".
names = st.lists(
    st.binary(min_size=1, max_size=12).filter(lambda n: b"/" not in n and b"\x00" not in n and n not in (b".", b"..")),
    min_size=1,
    max_size=3,
)
any_version = st.builds(
    journal.FileVersion,
    st.binary(min_size=32, max_size=32),
    st.integers(0, (1 << 63) - 1),
    st.integers(0, (1 << 63) - 1),
    st.integers(0, 0o7777),
)


@given(
    st.sampled_from([journal.PLACED, journal.REMOVED, journal.MOVED, journal.MKDIR, journal.RMDIR]),
    names.map(b"/".join),
    names.map(b"/".join),
    any_version,
)
def test_a_step_is_logged_as_its_json_and_read_back_as_itself(
    kind: str, path: bytes, to: bytes, v: journal.FileVersion
) -> None:
    if kind in (journal.MKDIR, journal.RMDIR):
        step = journal.Step(kind, path)
    else:
        step = journal.Step(kind, path, v, to if kind == journal.MOVED else None)
    line = step.line()
    assert line == json.dumps(step.to_json(), sort_keys=True)
    assert journal.Step.from_json(json.loads(line)) == step
