"""The order in which the executor carries out a plan, and its batches.

Pure: a function of the plan alone, so it is tested without a disk.

- Deletions of content that a write of the same plan needs wait until the
  end, so that the write can rename the file instead (a move costs no copy);
  a directory removal waits with the deletions below it. A deletion cannot
  wait when something in the plan takes its path (a write, a new directory,
  a conflict copy) or a file the plan writes sits above it.
- The actions go in batches of about `BATCH`, the unit of the intent log
  (one fsync of the log, one index commit). The actions that settle one
  conflict (a move aside and a write) always share a batch, so that a
  half-settled conflict is never committed.
"""

from __future__ import annotations

from squirrel.plumbing import paths
from squirrel.plumbing.plan import DELETE, MKDIR, MOVE_ASIDE, RMDIR, WRITE, Plan

# Each batch costs an fsync of the log, one of each folder it changed and
# an index commit: a push of 100,000 small files took 9.0 s in batches of
# 256 actions, 8.4 s in batches of 1,024 (a killed batch is undone whole,
# and the sync then redoes it).
BATCH = 1024


def order(plan: Plan) -> list[int]:
    """The plan's action indexes in the order they are carried out."""
    acts = plan.actions
    needed = {a.a.oid for a in acts if a.kind == WRITE and a.a is not None}
    occupied: set[bytes] = set()
    for act in acts:
        if act.kind in (WRITE, MKDIR, MOVE_ASIDE):
            target = act.target if act.kind == MOVE_ASIDE else act.path
            occupied.add(target)
            occupied.update(paths.ancestors(target))
    files_written = {act.path for act in acts if act.kind == WRITE}
    now: list[int] = []
    later: list[int] = []
    later_paths: list[bytes] = []
    for i, act in enumerate(acts):
        if (
            act.kind == DELETE
            and act.b is not None
            and act.b.oid in needed
            and act.path not in occupied
            and not any(anc in files_written for anc in paths.ancestors(act.path))
        ):
            later.append(i)
            later_paths.append(act.path)
        elif act.kind == RMDIR and any(paths.is_under(p, act.path) for p in later_paths):
            later.append(i)
        else:
            now.append(i)
    return now + later


def batches(plan: Plan, sequence: list[int], size: int = BATCH) -> list[list[int]]:
    """`sequence` cut into groups of about `size`, never between two actions
    of one conflict."""
    out: list[list[int]] = []
    batch: list[int] = []
    for n, i in enumerate(sequence):
        batch.append(i)
        ci = plan.actions[i].conflict
        nxt = plan.actions[sequence[n + 1]].conflict if n + 1 < len(sequence) else -1
        if len(batch) >= size and (ci < 0 or nxt != ci):
            out.append(batch)
            batch = []
    if batch:
        out.append(batch)
    return out


def schedule(plan: Plan, size: int = BATCH) -> list[list[int]]:
    """The batches the executor runs, in order."""
    return batches(plan, order(plan), size)
