"""``python -m compare.bench``: wall time of ``make compare`` on one learned seed, per stage.

Targets on the 2-core CPU (issue 17), MIU at length 10, one learned seed:
one model against one program with the ``--fast`` setting in 30 s (load,
prepare, one ``compare_models``, report); the default setting without the
controls in 60 s, and the controls in another 60 s; with
``--hypotheses miu miu_mean miu_first``, the ranking of three candidate
programs with the controls in 180 s.
Prints one table row per stage. The report it writes goes to
``<reports>/bench/<program>/``, so the one ``make compare`` wrote is left alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from compare.config import CompareConfig
from compare.controls import run_controls
from compare.loading import check_writable, load_models, cache_folder
from compare.pipeline import compare_models, prepare
from compare.report import ReportData, Run, write_report
from compare.run import run
from rasp_programs.errors import cli_main
from rasp_programs.registry import get_program

FAST_TARGET_S = 30.0
DEFAULT_TARGET_S = 60.0
CONTROLS_TARGET_S = 60.0
HYPOTHESES_TARGET_S = 180.0


def bench_hypotheses(program: str, artifacts: Path, reports: Path, seed: int, hypotheses: list[str]) -> int:
    """Times the ranking of ``hypotheses`` against one learned seed, per stage as logged."""
    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    path = run(program, artifacts, reports, [seed], None, CompareConfig(), controls=True,
               log=lambda s: marks.append((s.strip(), time.perf_counter())), out=reports / "bench" / "hypotheses",
               hypotheses=hypotheses)
    total = time.perf_counter() - t0
    print("| stage | seconds |\n|---|---|")
    ends = [t for _, t in marks[1:]] + [t0 + total]
    for (what, start), end in zip(marks, ends):
        print(f"| {what} | {end - start:.1f} |")
    print(f"| total ({program}, {len(hypotheses)} candidates: {' '.join(hypotheses)}; 1 learned seed; controls) | "
          f"{total:.1f} |")
    print(f"target < {HYPOTHESES_TARGET_S:.0f} s: {'met' if total < HYPOTHESES_TARGET_S else 'NOT met'}; "
          f"report: {path}")
    return 0


def training_seconds(run: Path) -> float | None:
    """``train_seconds`` from a run's metrics.json (None when it has none)."""
    try:
        return float(json.loads((run / "metrics.json").read_text())["train_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compare.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--program", default="miu")
    ap.add_argument("--artifacts", default="artifacts", type=Path)
    ap.add_argument("--reports", default="reports", type=Path)
    ap.add_argument("--seed", type=int, default=0, help="learned seed to compare")
    ap.add_argument("--fast", action="store_true", help="time CompareConfig.fast (per-checkpoint setting)")
    ap.add_argument("--hypotheses", nargs="*", default=None, metavar="PROGRAM",
                    help="time the ranking of these candidate programs instead")
    args = ap.parse_args(argv)
    spec = get_program(args.program)
    check_writable(args.reports)
    if args.hypotheses:
        return bench_hypotheses(spec.name, args.artifacts, args.reports, args.seed,
                                [h for x in args.hypotheses for h in x.split()])
    config = CompareConfig.fast() if args.fast else CompareConfig()
    times = {}
    t0 = t = time.perf_counter()
    compiled, meta, models = load_models(spec.name, args.artifacts, [args.seed], None)
    times["load"] = time.perf_counter() - t
    t = time.perf_counter()
    prep = prepare(spec, compiled, meta, config, cache=cache_folder(spec.name, args.artifacts))
    times["prepare (compiled side)"] = time.perf_counter() - t
    t = time.perf_counter()
    result = compare_models(prep, models[0].model, models[0].output)
    times["compare_models (one checkpoint)"] = time.perf_counter() - t
    t = time.perf_counter()
    controls = [] if args.fast else run_controls(prep, config.seed, [models[0].model], outputs=[models[0].output])
    times["controls"] = time.perf_counter() - t
    t = time.perf_counter()
    data = ReportData(spec.name, str(args.artifacts / spec.name / "compiled"),
                      [Run(models[0].label, models[0].path, result)], controls)
    path = write_report(args.reports / "bench" / spec.name, spec, data)
    times["report"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    print("| stage | seconds |\n|---|---|")
    for k, v in times.items():
        print(f"| {k} | {v:.1f} |")
    print(f"| total ({spec.name}, max_len {meta.get('max_len')}, 1 learned seed, "
          f"{'fast' if args.fast else 'default'} setting) | {total:.1f} |")
    def verdict(x: float, target: float) -> str:
        return f"{x:.1f} s, target <= {target:.0f} s: {'met' if x <= target else 'NOT met'}"
    without = total - times["controls"]
    trained = training_seconds(args.artifacts / spec.name / "learned" / f"seed{args.seed}")
    if trained:  # the machine-independent form: against the same seed's training, on this machine
        controls = "" if args.fast else f", {times['controls'] / trained:.2f}x for the controls"
        print(f"ratio to the training of seed {args.seed} ({trained:.1f} s, its metrics.json): "
              f"{without / trained:.2f}x without the controls{controls}")
    if args.fast:
        print(f"fast setting, one model: {verdict(without, FAST_TARGET_S)}")
    else:
        print(f"default setting without controls: {verdict(without, DEFAULT_TARGET_S)}; "
              f"controls: {verdict(times['controls'], CONTROLS_TARGET_S)}; report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
