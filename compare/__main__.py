"""``python -m compare``: compare the compiled model with learned checkpoints and write the report.

    python -m compare --program miu --artifacts artifacts --reports reports --seeds "0 1"
    python -m compare --program miu --learned path/to/checkpoint [path/to/other ...]
    python -m compare --program miu --hypotheses miu miu_mean miu_first   # which algorithm?

``--learned`` takes any folder in the artifact format (``model.safetensors`` +
``model.json``) whose shape and vocabularies equal the compiled model's.
``--hypotheses`` ranks candidate programs of the same task against each
learned model (``compare.hypotheses``); each needs its compiled artifact
(``make compile PROGRAM=<candidate>``; ``make compare HYPOTHESES=...`` compiles
missing ones).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from compare.config import CompareConfig
from compare.run import run
from rasp_programs.cli import non_negative_int, parse_seeds
from rasp_programs.errors import cli_main


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compare", description=__doc__.splitlines()[0])
    ap.add_argument("--program", required=True)
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--reports", default="reports")
    ap.add_argument("--seeds", default="0", help='learned seeds, e.g. "0 1 2" (ignored with --learned)')
    ap.add_argument("--learned", nargs="+", default=None, metavar="DIR", help="learned checkpoint folder(s)")
    ap.add_argument("--fast", action="store_true", help="smaller samples (CompareConfig.fast)")
    ap.add_argument("--seed", type=int, default=0, help="seed of every random choice in the comparison")
    ap.add_argument("--no-controls", action="store_true", help="skip the control comparisons")
    ap.add_argument("--runs", default="learned", help="runs folder under <artifacts>/<program>/ (learned, mugpt)")
    ap.add_argument("--out", default=None, type=Path, help="report folder (default <reports>/<program>)")
    ap.add_argument("--hypotheses", nargs="*", default=None, metavar="PROGRAM",
                    help="candidate programs of the same task to rank against each learned model "
                         "(auto: every candidate derived from the task's automaton)")
    ap.add_argument("--workers", type=lambda t: non_negative_int(t, "--workers"), default=None,
                    help="processes for candidates and controls (default: every CPU; 1: none); results do not "
                         "depend on it")
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    config = CompareConfig.fast(args.seed) if args.fast else CompareConfig(seed=args.seed)
    learned = [x for x in args.learned if x] if args.learned else None
    path = run(args.program, Path(args.artifacts), Path(args.reports), seeds, learned or None, config,
               controls=not args.no_controls, log=lambda s: print(s, file=sys.stderr), runs=args.runs, out=args.out,
               hypotheses=[h for x in (args.hypotheses or []) for h in x.split()], workers=args.workers)
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
