"""Shell completion: `sq completion bash|zsh|fish` prints the script, and
the arguments that name something sq knows complete to it.

click does the work (the `_SQ_COMPLETE` variable the script sets makes
`sq` answer with completions instead of running a command); this module
gives it what to offer: folders for drive and carrier paths, the drives
the carrier has records of for `sq carrier forget`, its vaults for
`at-risk` and `next`, and the open conflicts of the replica for
`sq resolve`. A completion reads no more than it needs, takes no lock, and
offers nothing, silently, when anything goes wrong: a shell's Tab must
never print an error.
"""

from __future__ import annotations

import os
from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class

from squirrel.cli import cli
from squirrel.plumbing import paths

# The carrier and conflict modules are imported by the completions that use
# them: every command imports this module for FolderPath, and a Tab is rare.

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_SQ_COMPLETE"


class FolderPath(click.Path):
    """A path that must be a folder (a drive, the carrier): the shell
    completes folders only. Checking it is left to the command, which says
    what is wrong with one clear line and its own exit code."""

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(incomplete, type="dir")]


def _carrier_of(ctx: click.Context) -> str:
    from squirrel.plumbing.carrier import carrier_dir_from

    return carrier_dir_from(ctx.params.get("carrier_dir"), dict(os.environ))


def complete_drive(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The drives the carrier has records of: their names, and their replica
    ids when what is typed so far starts one."""
    from squirrel.plumbing.carrier import recorded_drives

    try:
        drives = recorded_drives(_carrier_of(ctx))
    except Exception:  # noqa: BLE001 - a Tab never fails
        return []
    names = {name for _, name in drives}
    ids = {rid for rid, _ in drives} if incomplete else set()  # an id only once it is being typed
    return [CompletionItem(w) for w in sorted(names | ids) if w.startswith(incomplete)]


def complete_vault(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from squirrel.plumbing.carrier import Carrier

    try:
        vaults = Carrier(_carrier_of(ctx)).vault_ids()
    except Exception:  # noqa: BLE001
        return []
    return [CompletionItem(v) for v in vaults if v.startswith(incomplete)]


def complete_conflict(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The open conflicts of the replica given before: each path and its copy."""
    from squirrel.porcelain import conflicts as conflicts_mod

    try:
        found = conflicts_mod.conflicts(ctx.params["path"])
    except Exception:  # noqa: BLE001
        return []
    words = sorted({paths.display(p) for c in found for p in (c.path, c.copy) if p is not None})
    return [CompletionItem(w) for w in words if w.startswith(incomplete)]


def completion_script(shell: str) -> str:
    """What `_SQ_COMPLETE={shell}_source sq` prints: the script that wires
    the shell's completion to `sq`."""
    cls = get_completion_class(shell)
    assert cls is not None
    ctx_args: dict[str, Any] = {}
    return cls(cli, ctx_args, "sq", COMPLETE_VAR).source()


@cli.command("completion")
@click.argument("shell", type=click.Choice(SHELLS), metavar="SHELL")
def completion_cmd(shell: str) -> None:
    """Print the completion script for SHELL (bash, zsh or fish).

    Install it once: bash: add `eval "$(sq completion bash)"` to ~/.bashrc;
    zsh: add `eval "$(sq completion zsh)"` to ~/.zshrc; fish: run `sq
    completion fish > ~/.config/fish/completions/sq.fish`. Then Tab
    completes commands, options, folders for drives and the carrier, the
    drives of `sq carrier forget` and the conflicts of `sq resolve`.
    """
    click.echo(completion_script(shell), nl=False)
