"""``python -m benchmark`` (``make benchmark``): the sweep on Ray, then its tables from what the jobs wrote.

    python -m benchmark --languages "tomita5 parity" --objectives classifier --seeds "0 1 2" \
        [--shapes "gpt2:2x2x64"] [--external manifest.json] [--steps N] [--max-len N] \
        [--artifacts artifacts] [--reports reports] [--workers N] [--dynamics LANGUAGE|none]

Without ``RAY_ADDRESS`` it starts a local Ray with ``--workers`` CPUs (default
all cores); with ``RAY_ADDRESS=host:port`` it runs the same jobs on that
cluster, whose workers must see ``--artifacts`` and ``--reports`` as shared
folders. Jobs already done (record, artifact and report, same spec) are
skipped, so a rerun after Ctrl-C or a lost worker finishes only the rest.
Output: ``<reports>/benchmark/{benchmark.json, benchmark.md, benchmark.html, heatmap.png, dynamics.png}``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmark import adapter, cluster, tables
from benchmark.jobs import OBJECTIVES, Budget, Folders, expand, parse_choice, parse_shapes, read_manifest
from benchmark.record import read_record
from benchmark.runner import is_done
from rasp_programs.cli import parse_seeds, positive_float
from rasp_programs.errors import ToolkitError, cli_main


def positive(text: str, what: str, zero: bool = False) -> int:
    if not text.strip().isdigit() or (int(text) == 0 and not zero):
        raise ToolkitError(f"{what} must be a {'non-negative' if zero else 'positive'} integer, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__.splitlines()[0])
    ap.add_argument("--languages", default="", help="registered languages (default: all, and miu)")
    ap.add_argument("--objectives", default="", help=f"of {', '.join(OBJECTIVES)} (default: all)")
    ap.add_argument("--seeds", default="0 1 2")
    ap.add_argument("--shapes", default="", help='GPT-2 shapes besides the compiled one, e.g. "gpt2:2x2x64"')
    ap.add_argument("--external", default="", help="manifest.json of models trained elsewhere (they only compare)")
    ap.add_argument("--steps", default="2000", help="training step budget per job (early stopping ends sooner)")
    ap.add_argument("--max-len", default="0", help="input length (0: each task's default)")
    ap.add_argument("--lr", default="0", help="peak learning rate (0: the architecture's default)")
    ap.add_argument("--artifacts", default="artifacts", type=Path)
    ap.add_argument("--reports", default="reports", type=Path)
    ap.add_argument("--device", default="auto", help="training device on each worker (auto: a GPU if it has one)")
    ap.add_argument("--workers", default="",
                    help="CPUs of the local Ray (default: all cores; ignored with RAY_ADDRESS)")
    ap.add_argument("--dynamics", default="",
                    help="language whose first job's candidate scores are tracked over training (default: the first "
                         "language; none: skip)")
    ap.add_argument("--no-progress", action="store_true")
    return ap


def default_or_positive(text: str, what: str) -> float:
    """``LR``: empty or any spelling of zero (``0``, ``0.0``) is 0.0, the architecture's default; otherwise a
    positive number, or a one-line ``ToolkitError``."""
    try:
        if not text.strip() or float(text) == 0:
            return 0.0
    except ValueError:
        pass
    return positive_float(text, what)


def run(args: argparse.Namespace, address: str | None) -> Path:
    languages = parse_choice(args.languages, adapter.LANGUAGES, "language")
    objectives = parse_choice(args.objectives, OBJECTIVES, "objective")
    seeds = parse_seeds(args.seeds)
    shapes = parse_shapes(args.shapes)
    budget = Budget(positive(args.steps, "--steps (STEPS)"), positive(args.max_len, "--max-len (MAX_LEN)", zero=True),
                    default_or_positive(args.lr, "--lr (LR)"))
    externals = read_manifest(Path(args.external), adapter.LANGUAGES) if args.external else []
    workers = positive(args.workers, "--workers (WORKERS)") if args.workers else None
    dyn_language = args.dynamics or languages[0]
    if dyn_language not in ("none", *languages):
        raise ToolkitError(f"--dynamics (DYNAMICS) must be one of the sweep's languages or none, got {dyn_language!r}")
    folders = Folders(args.artifacts.resolve(), args.reports.resolve())
    jobs = expand(languages, objectives, shapes, seeds, budget, externals)
    dyn_job = next((j for j in jobs if j.language == dyn_language and j.external is None), None)
    dynamics = None
    with cluster.connect(address, workers):
        state = cluster.execute(jobs, folders, args.device, progress=not args.no_progress)
        print(f"jobs: {state.total} ({state.skipped} already done, {state.finished} run, {state.failed} failed)",
              file=sys.stderr)
        if dyn_job is not None and is_done(dyn_job, folders):
            dynamics = _dynamics(dyn_job, folders)
    out = tables.write(tables.build(jobs, folders), folders, dynamics)
    return out


def _dynamics(job, folders: Folders) -> dict | None:
    """The job's candidate scores over training, recomputed only when its record is newer than them."""
    import json

    path = folders.benchmark / "dynamics" / f"{job.key}.json"
    if not path.is_file() or path.stat().st_mtime_ns < folders.record(job).stat().st_mtime_ns:
        error = cluster.dynamics(job, folders)
        if error:
            print(f"warning: no dynamics figure: {error}", file=sys.stderr)
            return None
    return json.loads(path.read_text()) if read_record(folders.record(job)) else None


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = run(args, os.environ.get("RAY_ADDRESS") or None)
    print(f"benchmark: {out / 'benchmark.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
