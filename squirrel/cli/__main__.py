"""`python -m squirrel.cli`: run the `sq` command line."""

from squirrel.cli import run

run()
