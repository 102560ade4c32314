"""A worker process of the scanner's sweep (squirrel/plumbing/sweep.py):
`python -m squirrel.sweep_worker`, fed and read through its pipes by the
scanner's process. It lives outside `squirrel.cli`, whose package would
load the command line (click) first: 20 ms more for every worker."""

from __future__ import annotations

import os
import sys

from squirrel.plumbing.sweep import compare_in_python, serve

if __name__ == "__main__":
    if os.environ.get("SQ_PURE_PYTHON"):  # as the command that started it was told
        compare_in_python()
    # Its input unbuffered: a request to give a batch back must be seen
    # by a look at the pipe (`serve`), not lie unread in a buffer.
    serve(os.fdopen(sys.stdin.fileno(), "rb", buffering=0), sys.stdout.buffer)
    # Its findings are sent and its index closed: it ends at once, without
    # the interpreter's orderly shutdown (some 10 ms the scanner would wait
    # for before its command can end).
    os._exit(0)
