"""The `--help` of every `sq` command, kept in docs/commands.md.

Each command's section of docs/commands.md (the heading that names it, such
as "### `sq push SRC DST ...`") ends with its exact `--help` text, rendered
at a fixed width, between two markers:

    <!-- help: sq push -->
    ```
    Usage: sq push [OPTIONS] SRC DST [SUBPATHS]...
    ...
    ```
    <!-- end help -->

The root group's block ends the page's introduction. Only these blocks are
generated; the prose around them is written by hand. Rewrite them from the
code with `make docs` (`python -m tests.gen_help`); `python -m
tests.gen_help --check` only reports, and tests/test_docs_match_code.py
fails while a block is stale.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import click
from click.testing import CliRunner

from squirrel.cli import cli, load_all_commands

load_all_commands()  # the help of every command, not only those run so far

COMMANDS_DOC = Path(__file__).resolve().parent.parent / "docs" / "commands.md"
WIDTH = 80
BEGIN = re.compile(r"^<!-- help: sq((?: [a-z][a-z0-9-]*)*) -->$")
END = "<!-- end help -->"
FENCE = "```"
REGENERATE = "run `make docs` (python -m tests.gen_help) to regenerate the help blocks"

CommandPath = tuple[str, ...]


def command_paths(group: click.Group = cli, prefix: CommandPath = ()) -> list[CommandPath]:
    """The root group, then every command and subcommand, in name order."""
    found: list[CommandPath] = [prefix] if not prefix else []
    for name, cmd in sorted(group.commands.items()):
        found.append((*prefix, name))
        if isinstance(cmd, click.Group):
            found += command_paths(cmd, (*prefix, name))
    return found


def display(path: CommandPath) -> str:
    return " ".join(("sq", *path))


def render_help(path: CommandPath) -> str:
    """What `sq ... --help` prints, at WIDTH columns whatever the terminal."""
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="sq", terminal_width=WIDTH)
    if result.exit_code != 0:
        raise RuntimeError(f"`{display(path)} --help` exited {result.exit_code}: {result.output}")
    return "\n".join(line.rstrip() for line in result.output.rstrip("\n").splitlines())


def help_block(path: CommandPath) -> list[str]:
    return [f"<!-- help: {display(path)} -->", FENCE, *render_help(path).splitlines(), FENCE, END]


@dataclass
class Section:
    """The lines [start, end) of one heading's section; `command` is the
    command its heading names (None for other headings; () for the page's
    introduction, which belongs to the root group)."""

    start: int
    end: int
    command: CommandPath | None


@dataclass
class Block:
    """One generated block: lines [start, end) of the page."""

    start: int
    end: int
    command: CommandPath


def heading_command(heading: str, known: set[CommandPath]) -> CommandPath | None:
    """The command a heading names: its first code span, `sq` and then the
    longest run of words that is a command ("`sq bundle list FILE`" names
    `bundle list`)."""
    m = re.search(r"`sq((?: [^`\s]+)*)[^`]*`", heading)
    if m is None:
        return None
    words = m.group(1).split()
    best: CommandPath | None = None
    for n in range(1, len(words) + 1):
        if tuple(words[:n]) in known:
            best = tuple(words[:n])
    return best


def parse(lines: list[str], known: set[CommandPath]) -> tuple[list[Section], list[Block], list[str]]:
    """The page's sections and generated blocks, and what is malformed."""
    problems: list[str] = []
    headings: list[int] = []
    blocks: list[Block] = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        m = BEGIN.match(line)
        if m and not in_fence:
            path = tuple(m.group(1).split())
            end = next((j for j in range(i + 1, len(lines)) if lines[j] == END), None)
            if end is None or lines[i + 1] != FENCE or lines[end - 1] != FENCE:
                problems.append(f"line {i + 1}: the help block of `{display(path)}` is not closed by ``` and {END}")
                i += 1
                continue
            blocks.append(Block(i, end + 1, path))
            i = end + 1
            continue
        if line.startswith(FENCE):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            headings.append(i)
        i += 1
    sections: list[Section] = []
    first_h2 = next((h for h in headings if lines[h].startswith("## ")), len(lines))
    sections.append(Section(0, first_h2, ()))
    for n, h in enumerate(headings):
        end = headings[n + 1] if n + 1 < len(headings) else len(lines)
        if h < first_h2:
            continue
        sections.append(Section(h, end, heading_command(lines[h], known)))
    return sections, blocks, problems


def check(text: str) -> list[str]:
    """Everything that keeps the page's help blocks from matching the code."""
    lines = text.splitlines()
    paths = command_paths()
    known = set(paths)
    sections, blocks, problems = parse(lines, known)
    for path in paths:
        owners = [s for s in sections if s.command == path]
        if len(owners) != 1:
            where = "no section" if not owners else f"{len(owners)} sections"
            problems.append(f"`{display(path)}` has {where} in docs/commands.md (a heading: ### `{display(path)} ...`)")
            continue
        own = [b for b in blocks if b.command == path]
        if len(own) != 1:
            problems.append(f"`{display(path)}` has {len(own)} help blocks; {REGENERATE}")
            continue
        section, block = owners[0], own[0]
        if not section.start <= block.start < section.end:
            problems.append(f"the help block of `{display(path)}` is outside its section; {REGENERATE}")
        elif lines[block.start : block.end] != help_block(path):
            problems.append(f"the help block of `{display(path)}` differs from its --help; {REGENERATE}")
    for block in blocks:
        if block.command not in known:
            problems.append(f"line {block.start + 1}: a help block for `{display(block.command)}`, which is no command")
    return problems


def update(text: str) -> str:
    """The page with every help block rewritten from the code, and a block
    added at the end of each command's section that lacks one (a block found
    outside its section, or a second one, is moved or dropped)."""
    lines = text.splitlines()
    known = set(command_paths())
    sections, blocks, problems = parse(lines, known)
    problems += [
        f"line {b.start + 1}: a help block for `{display(b.command)}`, which is no command; remove it"
        for b in blocks
        if b.command not in known
    ]
    if problems:
        raise SystemExit("\n".join(problems))
    owner = {s.command: s for s in sections if s.command is not None}
    # Work from the bottom up, so that earlier line numbers stay valid.
    edits: list[tuple[int, int, list[str]]] = []
    have: set[CommandPath] = set()
    for block in blocks:
        section = owner.get(block.command)
        if section is not None and block.command not in have and section.start <= block.start < section.end:
            edits.append((block.start, block.end, help_block(block.command)))
            have.add(block.command)
        else:
            start = block.start - 1 if block.start > 0 and not lines[block.start - 1].strip() else block.start
            edits.append((start, block.end, []))
    for section in sections:
        if section.command is None or section.command in have:
            continue
        end = section.end
        while end > section.start + 1 and not lines[end - 1].strip():
            end -= 1
        edits.append((end, end, ["", *help_block(section.command)]))
        have.add(section.command)
    for start, end, new in sorted(edits, reverse=True):
        lines[start:end] = new
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = COMMANDS_DOC.read_text(encoding="utf-8")
    if "--check" in argv:
        problems = check(text)
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    new = update(text)
    if new != text:
        COMMANDS_DOC.write_text(new, encoding="utf-8")
        print(f"rewrote the help blocks of {COMMANDS_DOC}")
    left = check(new)
    for p in left:
        print(p, file=sys.stderr)
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
