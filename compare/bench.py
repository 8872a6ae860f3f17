"""``python -m compare.bench``: wall time of ``make compare`` on one learned seed, per stage.

Targets on the 2-core CPU (issue 17), MIU at length 10, one learned seed:
one model against one program with the ``--fast`` setting in 30 s (load,
prepare, one ``compare_models``, report); the default setting without the
controls in 60 s, and the controls in another 60 s; with
``--hypotheses miu miu_mean miu_first``, the ranking of three candidate
programs with the controls in 180 s.
Each setting runs twice: with an empty folder of the records ``compare.disk_cache`` keeps (the
compiled model against itself, the controls' copies, untrained baselines), and again with them, as a
researcher's second run on a new model of the same task finds them. Prints one table row per stage. The
report it writes goes to
``<reports>/bench/<program>/``, so the one ``make compare`` wrote is left alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from compare.config import CompareConfig
from compare.controls import run_controls
from compare.loading import check_writable, load_models
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
    """Times the ranking of ``hypotheses`` against one learned seed, per stage as logged, with the records
    of ``compare.disk_cache`` cold (an empty folder) and then warm."""
    rows: dict[str, list[float]] = {}
    totals = []
    with tempfile.TemporaryDirectory() as cache:
        for _ in ("cold", "warm"):
            marks: list[tuple[str, float]] = []
            t0 = time.perf_counter()
            path = run(program, artifacts, reports, [seed], None, CompareConfig(), controls=True,
                       log=lambda s: marks.append((s.strip(), time.perf_counter())),
                       out=reports / "bench" / "hypotheses", hypotheses=hypotheses, cache_root=Path(cache))
            totals.append(time.perf_counter() - t0)
            ends = [t for _, t in marks[1:]] + [t0 + totals[-1]]
            for (what, start), end in zip(marks, ends):
                rows.setdefault(what, []).append(end - start)
    print("| stage | cold cache (s) | warm cache (s) |\n|---|---|---|")
    for what, (cold, warm) in rows.items():
        print(f"| {what} | {cold:.1f} | {warm:.1f} |")
    print(f"| total ({program}, {len(hypotheses)} candidates: {' '.join(hypotheses)}; 1 learned seed; controls) | "
          f"{totals[0]:.1f} | {totals[1]:.1f} |")
    print(f"target < {HYPOTHESES_TARGET_S:.0f} s: cold {'met' if totals[0] < HYPOTHESES_TARGET_S else 'NOT met'}, "
          f"warm {'met' if totals[1] < HYPOTHESES_TARGET_S else 'NOT met'}; report: {path}")
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
    compiled, meta, models = load_models(spec.name, args.artifacts, [args.seed], None)
    with tempfile.TemporaryDirectory() as cache:  # cold: an empty folder of records; warm: the same again
        times = {state: one_run(spec, compiled, meta, models[0], config, Path(cache), not args.fast,
                                args.reports / "bench" / spec.name) for state in ("cold", "warm")}
    print("| stage | cold cache (s) | warm cache (s) |\n|---|---|---|")
    for k in times["cold"]:
        print(f"| {k} | {times['cold'][k]:.1f} | {times['warm'][k]:.1f} |")
    setting = "fast" if args.fast else "default"
    print(f"| total ({spec.name}, max_len {meta.get('max_len')}, 1 learned seed, {setting} setting) | "
          f"{sum(times['cold'].values()):.1f} | {sum(times['warm'].values()):.1f} |")

    def verdict(what: str, target: float) -> str:
        cold, warm = (sum(v for k, v in t.items() if (k == "controls") == (what == "controls"))
                      for t in (times["cold"], times["warm"]))
        return (f"{what}: cold {cold:.1f} s, warm {warm:.1f} s, target <= {target:.0f} s: cold "
                f"{'met' if cold <= target else 'NOT met'}, warm {'met' if warm <= target else 'NOT met'}")
    trained = training_seconds(args.artifacts / spec.name / "learned" / f"seed{args.seed}")
    if trained:  # the machine-independent form: against the same seed's training, on this machine
        warm = times["warm"]
        print(f"ratio to the training of seed {args.seed} ({trained:.1f} s, its metrics.json), warm: "
              f"{(sum(warm.values()) - warm['controls']) / trained:.2f}x without the controls"
              + ("" if args.fast else f", {warm['controls'] / trained:.2f}x for the controls"))
    if args.fast:
        print(verdict("fast setting, one model", FAST_TARGET_S))
    else:
        print(verdict("default setting without controls", DEFAULT_TARGET_S))
        print(verdict("controls", CONTROLS_TARGET_S))
    return 0


def one_run(spec, compiled, meta, learned, config: CompareConfig, cache: Path, controls: bool, out: Path
            ) -> dict[str, float]:
    """Seconds of each stage of one ``make compare`` on one learned model, with the records in ``cache``."""
    times = {}
    t = time.perf_counter()
    prep = prepare(spec, compiled, meta, config, cache=cache)
    times["prepare (compiled side)"] = time.perf_counter() - t
    t = time.perf_counter()
    result = compare_models(prep, learned.model, learned.output)
    times["compare_models (one checkpoint)"] = time.perf_counter() - t
    t = time.perf_counter()
    checks = run_controls(prep, config.seed, [learned.model], outputs=[learned.output]) if controls else []
    times["controls"] = time.perf_counter() - t
    t = time.perf_counter()
    write_report(out, spec, ReportData(spec.name, "compiled", [Run(learned.label, learned.path, result)], checks))
    times["report"] = time.perf_counter() - t
    return times

if __name__ == "__main__":
    sys.exit(main())
