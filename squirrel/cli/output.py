"""Shared helpers of the `sq` commands: JSON and summary output,
human-readable sizes and the SIZE option type, and the rendering of a sync
report. The live progress line is in `live`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from squirrel.errors import SyncIncomplete
from squirrel.plumbing import paths
from squirrel.text import counted

if TYPE_CHECKING:  # types only: every command imports this module, few sync
    from squirrel.plumbing.scan import ScanStats
    from squirrel.plumbing.wanted import ScrubState
    from squirrel.porcelain.engine import SyncReport


WRITE_STEP = 1 << 16  # JSON is written to stdout this many characters at a time


def emit_json(doc: Any) -> None:
    """Print `doc` as one line of JSON, exactly as `json.dumps` would, made
    as it is written: a list may be given as an iterator (the files a new
    drive's first visit defers), and is then never held whole, neither as
    objects nor as text."""
    pending: list[str] = []
    size = 0
    for piece in _json_pieces(doc):
        pending.append(piece)
        size += len(piece)
        if size >= WRITE_STEP:
            click.echo("".join(pending), nl=False)
            pending, size = [], 0
    pending.append("\n")
    click.echo("".join(pending), nl=False)


def _json_pieces(value: Any) -> Iterator[str]:
    """`value` as JSON, in pieces: objects and iterators piece by piece, the
    rest (numbers, strings, lists, an iterator's items) each in one, by
    `json.dumps`."""
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        yield "{"
        for n, (key, item) in enumerate(value.items()):
            yield (", " if n else "") + json.dumps(key, ensure_ascii=False) + ": "
            yield from _json_pieces(item)
        yield "}"
    elif isinstance(value, Iterator):
        yield "["
        for n, item in enumerate(value):
            yield (", " if n else "") + json.dumps(item, ensure_ascii=False)
        yield "]"
    else:
        yield json.dumps(value, ensure_ascii=False)


def summary(line: str) -> None:
    click.echo(line, err=True)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def when(unix: int) -> str:
    """A Unix time for humans, in local time; 0 is "never"."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(unix)) if unix else "never"


def parse_size(text: str) -> int:
    """`123`, `500K`, `1.5G`, `2T` (powers of 1024) -> bytes."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = 1
    for i, unit in enumerate("KMGT", start=1):
        if t.endswith(unit):
            mult = 1024**i
            t = t[:-1]
            break
    try:
        value = float(t)
    except ValueError:
        raise click.BadParameter(f"not a size: {text!r} (use bytes or a K/M/G/T suffix)") from None
    if value < 0:
        raise click.BadParameter(f"not a size: {text!r}")
    return int(value * mult)


class SizeParam(click.ParamType):  # type: ignore[type-arg]
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except click.BadParameter as e:
            self.fail(e.message, param, ctx)


DURATION_UNITS = {"h": 3600, "d": 86_400, "w": 7 * 86_400, "y": 365 * 86_400}


def parse_duration(text: str) -> int:
    """`12h`, `30d`, `12w`, `1y` -> seconds."""
    t = text.strip().lower()
    unit = DURATION_UNITS.get(t[-1:]) if t else None
    try:
        value = float(t[:-1]) if unit else -1.0
    except ValueError:
        value = -1.0
    if unit is None or value < 0:
        raise click.BadParameter(f"not a duration: {text!r} (use a number and h, d, w or y: 30d, 12w)")
    return int(value * unit)


class DurationParam(click.ParamType):  # type: ignore[type-arg]
    name = "DURATION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value))
        except click.BadParameter as e:
            self.fail(e.message, param, ctx)


MASS_DELETE_HELP = "Allow a scan or sync that deletes more than half of a replica's files."


def pathlist(items: list[bytes]) -> list[dict[str, str]]:
    return [paths.json_path(p) for p in items]


def report_skipped(stats: ScanStats, on_replica: bool = False) -> None:
    """What a scan left out, one `skipped PATH: REASON` line each on stderr;
    with `on_replica` (a command that scanned two), `skipped PATH (on NAME): REASON`."""
    where = f" (on {stats.replica})" if on_replica else ""
    for path, why in stats.skipped:
        summary(f"skipped {paths.display(path)}{where}: {why}")


def list_outcomes(rep: SyncReport) -> None:
    """One line per conflict kept as two files, and per path that failed."""
    for c in rep.conflicts:
        copy = f", copy {paths.display(c.copy)}" if c.copy is not None else ""
        where = f" on {c.replica}" if c.replica else ""
        click.echo(f"conflict  {paths.display(c.path)} ({c.kind}{where}): kept {paths.display(c.kept)}{copy}")
    for p, why in rep.failed:
        click.echo(f"failed    {paths.display(p)}: {why}")
    for p in rep.healed:
        click.echo(f"healed    {paths.display(p)} (damaged; its content is back, byte-exact)")
    for p, why in rep.waiting:
        click.echo(f"damaged   {paths.display(p)}: still waiting for healing ({why})")


def report_unknown_subpaths(unknown: list[str]) -> None:
    for given in unknown:
        summary(
            f"{given}: the sender knows nothing there (no such path, and no deletion of it), so nothing is synced"
            " for it; a SUBPATH is taken from the sender's folder"
        )


def render_sync(rep: SyncReport, as_json: bool, what: str) -> None:
    for stats in rep.scans:
        report_skipped(stats, len(rep.scans) > 1)
    if as_json:
        emit_json(rep.to_json())
    else:
        list_outcomes(rep)
    report_unknown_subpaths(rep.unknown_subpaths)
    if rep.deferred or rep.incomplete:
        n = len(rep.deferred) + len(rep.incomplete)
        summary(f"{counted(n, 'path')} left for a later sync (their content was not carried this time)")
    summary(
        f"{what}: {rep.created} created, {rep.updated} updated, {rep.deleted} deleted, {rep.skipped} skipped,"
        f" {counted(len(rep.conflicts), 'conflict')} (both versions kept), {len(rep.failed)} failed"
        + (f", {counted(len(rep.healed), 'damaged file')} healed" if rep.healed else "")
        + (" (dry run: nothing written)" if rep.dry_run else "")
    )
    if rep.failed:
        raise SyncIncomplete(f"{counted(len(rep.failed), 'path')} could not be synced (see above); {retry(rep)}")


def retry(rep: SyncReport) -> str:
    """What a re-run does for the failed paths: most failures (a file in
    use, a full disk) pass, but a path refused for good fails again."""
    again = sum(1 for p, _ in rep.failed if p not in rep.lasting)
    if again == len(rep.failed):
        return "run the command again"
    if again == 0:
        return "running the command again will not help (see each reason)"
    return f"running the command again retries {counted(again, 'path')}; the others it cannot sync (see each reason)"


def scrub_line(state: ScrubState, under_way: bool) -> str:
    """When the replica was last fully scrubbed, and how far the cycle is."""
    line = f"last fully scrubbed: {when(state.last_full or 0)}"
    if under_way or state.cursor is not None:
        line += f"; this cycle has re-read {human_bytes(state.read)} so far"
    return line
