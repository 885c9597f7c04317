"""The `autograde` command.

Grading (`check`, `grade`, `verify`) is built in the next stage of the project; until
then the command says so and exits 2, the exit code for "could not grade".
"""

from __future__ import annotations

import argparse
import sys

from . import __version__

NOT_YET = (
    "autograde: grading is not built yet (it arrives with the grader). Meanwhile run the "
    "notebook's own test cells, or 'python -m reference' to see the lesson checked "
    "against autograd."
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autograde", description="Grade backprop-lab notebooks.")
    parser.add_argument("--version", action="version", version=f"autograde {__version__}")
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    parser.parse_args(argv)
    print(NOT_YET, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
