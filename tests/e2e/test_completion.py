"""Shell completion, as a shell asks for it: the real `sq` run with the
variables a completion script sets (`_SQ_COMPLETE`, `COMP_WORDS`,
`COMP_CWORD`), answering with one `TYPE,VALUE` line per completion (bash).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import make_tree, run_sq, sq_executable


def sq_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SQ_") and k != "_SQ_COMPLETE"}
    env.update(extra)
    return env


def complete(line: str, **env: str) -> list[str]:
    """What `sq` offers for the last word of `line` (typed so far), as bash asks."""
    words = line.split(" ")
    proc = subprocess.run(
        [sq_executable()],
        env=sq_env(_SQ_COMPLETE="bash_complete", COMP_WORDS=line, COMP_CWORD=str(len(words) - 1), **env),
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    return [line for line in proc.stdout.decode().splitlines() if line]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_script_is_what_click_would_print(shell: str) -> None:
    printed = run_sq("completion", shell).check().out
    sourced = subprocess.run(
        [sq_executable()], env=sq_env(_SQ_COMPLETE=f"{shell}_source"), capture_output=True, check=True, timeout=60
    ).stdout.decode()
    assert printed == sourced and "_SQ_COMPLETE" in printed and printed.strip()


def test_an_unknown_shell_is_a_usage_error() -> None:
    ran = run_sq("completion", "tcsh")
    assert ran.code == 2 and "'tcsh' is not one of" in ran.err


def test_commands_and_options_complete() -> None:
    assert "plain,push" in complete("sq pu")
    assert set(complete("sq carrier ")) >= {"plain,forget", "plain,at-risk", "plain,next"}
    assert "plain,--dry-run" in complete("sq sync --dr")


def test_drive_and_carrier_paths_complete_to_folders() -> None:
    assert complete("sq sync ") == ["dir,"]
    assert complete("sq push /media/a ") == ["dir,"]
    assert complete("sq sync d --carrier ") == ["dir,"]
    assert complete("sq apply ") == ["file,"]  # a bundle is a file


@pytest.fixture
def carrier(tmp_path: Path) -> Path:
    """A carrier that visited drive1 and drive2; drive3 is forgotten."""
    c = tmp_path / "carrier"
    for name in ("drive1", "drive2", "drive3"):
        d = make_tree(tmp_path / name, {f"{name}.txt": name})
        join = [] if name == "drive1" else ["--join", c]
        run_sq("init", d, "--name", name, *join).check()
        run_sq("sync", d, "--carrier", c).check()
    run_sq("carrier", "forget", "drive3", "--carrier", c).check()
    return c


def test_carrier_forget_completes_the_drives_of_the_carrier(carrier: Path) -> None:
    assert complete(f"sq carrier forget --carrier {carrier} ") == ["plain,drive1", "plain,drive2", "plain,drive3"]
    assert complete(f"sq carrier forget --carrier {carrier} drive2") == ["plain,drive2"]
    assert complete("sq carrier forget ", SQ_CARRIER=str(carrier)) == ["plain,drive1", "plain,drive2", "plain,drive3"]
    vault = next(iter(os.listdir(carrier / "vaults")))
    assert complete(f"sq carrier at-risk --carrier {carrier} ") == [f"plain,{vault}"]


def test_a_drive_id_completes_once_it_is_typed(carrier: Path) -> None:
    vault = next(iter(os.listdir(carrier / "vaults")))
    ids = sorted(p.stem for p in (carrier / "vaults" / vault / "drives").glob("*.json"))
    assert f"plain,{ids[0]}" in complete(f"sq carrier forget --carrier {carrier} {ids[0][:3]}")


def test_completion_is_silent_when_there_is_no_carrier(tmp_path: Path) -> None:
    assert complete(f"sq carrier forget --carrier {tmp_path / 'none'} ") == []
    (tmp_path / "file").write_text("x")
    assert complete(f"sq carrier forget --carrier {tmp_path / 'file'} ") == []


def test_resolve_completes_the_open_conflicts(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_tree(a, {"pics/p.jpg": "from a", "notes.txt": "a"})
    make_tree(b, {"pics/p.jpg": "from b", "notes.txt": "b"})
    run_sq("init", a, "--name", "a").check()
    run_sq("init", b, "--name", "b", "--join", a).check()
    run_sq("push", a, b).check()
    offered = complete(f"sq resolve {b} ")
    assert "plain,pics/p.jpg" in offered and "plain,notes.txt" in offered and len(offered) == 4
    assert all(o.startswith("plain,pics/") for o in complete(f"sq resolve {b} pi"))
    assert complete(f"sq resolve {tmp_path / 'nowhere'} ") == []
