"""The live progress line, as a user at a terminal sees it: the real `sq`
with its stderr on a pseudo-terminal (tests/tty_tools.py).

Each command that moves or hashes bytes draws one line (phase, files done
of total, bytes done of total, throughput, time left), moves it while a
single large file is copied, clears it before the summary, and draws
nothing when stderr is not a terminal or with --json.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_tree, run_sq
from tests.tty_tools import CLEAR, bytes_of, drawn, run_sq_tty

BIG = 24 << 20  # 24 blocks of 1 MiB: the line moves at each


@pytest.fixture
def big_pair(tmp_path: Path) -> tuple[Path, Path]:
    """Replica a with one 24 MiB video and a small file; b, empty, of the same vault."""
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, {"videos/trip.mov": bytes(range(256)) * (BIG // 256), "notes.txt": "hello"})
    b.mkdir()
    run_sq("init", a, "--name", "a").check()
    run_sq("init", b, "--name", "b", "--join", a).check()
    return a, b


def after_last_clear(err: bytes) -> str:
    return err.rsplit(CLEAR, 1)[1].decode()


def test_push_moves_the_line_inside_one_large_file_and_clears_it(big_pair: tuple[Path, Path]) -> None:
    a, b = big_pair
    ran = run_sq_tty("push", a, b).check()
    lines = drawn(ran.stderr, "copying to b")
    assert lines, ran.err
    # Several drawings while the 24 MiB file is the one being copied, each further on.
    inside = [line for line in lines if "24.0 MiB of 24.0 MiB" not in line and bytes_of(line) > 0]
    shown = [bytes_of(line) for line in inside]
    assert len(set(shown)) >= 5, lines
    assert shown == sorted(shown)
    assert all(" of 2 files, " in line and " of 24.0 MiB" in line for line in lines), lines
    assert lines[-1].startswith("copying to b: 2 of 2 files, 24.0 MiB of 24.0 MiB"), lines
    assert any("/s" in line for line in lines)
    # The scans drew the same kind of line before.
    assert drawn(ran.stderr, "scanning a") and "hashed" in drawn(ran.stderr, "scanning a")[-1]
    # Cleared before the summary, which is the last thing written.
    assert after_last_clear(ran.stderr).startswith("push: 3 created")
    assert after_last_clear(ran.stderr).count("\n") == 1
    assert (b / "videos/trip.mov").stat().st_size == BIG


def test_a_visit_draws_the_delivery_and_the_carrying_in(big_pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = big_pair
    carrier = tmp_path / "carrier"
    run_sq("sync", b, "--carrier", carrier).check()  # the carrier knows b: it carries a's files for it
    ran = run_sq_tty("sync", a, "--carrier", carrier).check()
    lines = drawn(ran.stderr, "carrying in from a")
    assert len({bytes_of(line) for line in lines}) >= 5, ran.err
    assert "24.0 MiB of 24.0 MiB" in lines[-1], lines
    assert after_last_clear(ran.stderr).startswith("sync a: delivered")
    ran = run_sq_tty("sync", b, "--carrier", carrier).check()
    lines = drawn(ran.stderr, "delivering to b")
    assert len({bytes_of(line) for line in lines}) >= 5, ran.err
    assert after_last_clear(ran.stderr).startswith("sync b: delivered 3 created")


def test_pack_and_apply_draw_their_lines(big_pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = big_pair
    bundle = tmp_path / "x.sqb"
    ran = run_sq_tty("pack", a, "-o", bundle).check()
    assert len({bytes_of(line) for line in drawn(ran.stderr, "packing a")}) >= 5, ran.err
    assert drawn(ran.stderr, "writing x.sqb")
    assert after_last_clear(ran.stderr).startswith("packed ")
    ran = run_sq_tty("apply", bundle, b).check()
    assert len({bytes_of(line) for line in drawn(ran.stderr, "applying to b")}) >= 5, ran.err
    assert after_last_clear(ran.stderr).startswith("apply: 3 created")


def test_reconcile_and_verify_draw_their_lines(big_pair: tuple[Path, Path]) -> None:
    a, b = big_pair
    ran = run_sq_tty("reconcile", b, a).check()
    assert len({bytes_of(line) for line in drawn(ran.stderr, "copying to b")}) >= 5, ran.err
    ran = run_sq_tty("verify", b).check()
    assert len({bytes_of(line) for line in drawn(ran.stderr, "verifying b")}) >= 5, ran.err
    assert after_last_clear(ran.stderr).startswith("verified 2 files")


def test_no_line_with_json(big_pair: tuple[Path, Path]) -> None:
    a, b = big_pair
    ran = run_sq_tty("push", a, b, "--json").check()
    assert CLEAR not in ran.stderr and "copying" not in ran.err and "scanning" not in ran.err
    assert ran.json["created"] == 3


def test_no_line_without_a_terminal(big_pair: tuple[Path, Path]) -> None:
    a, b = big_pair
    ran = run_sq("push", a, b).check()
    assert b"\x1b" not in ran.stderr and b"\r" not in ran.stderr
    assert ran.err.startswith("push: 3 created")


def test_no_line_when_sq_no_progress_is_set(big_pair: tuple[Path, Path]) -> None:
    a, b = big_pair
    ran = run_sq_tty("push", a, b, env={"SQ_NO_PROGRESS": "1"}).check()
    assert CLEAR not in ran.stderr and ran.err.startswith("push: 3 created")


def test_hash_object_draws_its_line_and_prints_only_ids(tmp_path: Path) -> None:
    big = tmp_path / "big.mov"
    big.write_bytes(bytes(BIG))
    ran = run_sq_tty("hash-object", big, big).check()
    assert len({bytes_of(line) for line in drawn(ran.stderr, "hashing")}) >= 5, ran.err
    assert [line.split()[1] for line in ran.out.splitlines()] == [str(big), str(big)]
    assert ran.stderr.endswith(CLEAR)


def test_trash_restore_draws_the_check_of_the_trash_copy(big_pair: tuple[Path, Path]) -> None:
    a, b = big_pair
    run_sq("push", a, b).check()
    (a / "videos/trip.mov").unlink()
    run_sq("push", a, b).check()  # b's copy goes to b's trash
    ran = run_sq_tty("trash", "restore", b, "videos/trip.mov").check()
    assert len({bytes_of(line) for line in drawn(ran.stderr, "checking the trash's copies in b")}) >= 5, ran.err
    assert after_last_clear(ran.stderr).startswith("restored 1 version (24.0 MiB); the next scan or sync records it")
    assert (b / "videos/trip.mov").stat().st_size == BIG
