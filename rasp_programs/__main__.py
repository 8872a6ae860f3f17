"""``python -m rasp_programs candidates PROGRAM``: the candidates ``HYPOTHESES=auto`` ranks, one line.

Used by the Makefile to compile what is missing before ``make compare``. A
program whose task has no automaton is refused in one line (exit 2).
"""

from __future__ import annotations

import argparse
import sys

from rasp_programs.errors import cli_main
from rasp_programs.registry import derived_candidates


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rasp_programs", description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["candidates"])
    ap.add_argument("program")
    args = ap.parse_args(argv)
    print(" ".join(derived_candidates(args.program)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
