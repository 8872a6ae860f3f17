"""``python -m benchmark.bench``: Ray's overhead per job, and throughput on 1 worker vs 2 in one run.

    python -m benchmark.bench --languages "parity aa" --seeds "0 1 2" --steps 300 --max-len 6 --out /tmp/bench

The candidates are compiled once first (not timed); then the same sweep runs
from scratch on a local Ray with 1 CPU and with 2 CPUs, each in its own
folders, and the wall time of the jobs (Ray's start excluded) gives jobs per
minute. The empty job is a Ray task that returns ``None``, timed one at a time
on a warm worker.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from benchmark import adapter, cluster, runner
from benchmark.jobs import Budget, Folders, Shape, expand, parse_choice
from rasp_programs.cli import parse_seeds
from rasp_programs.errors import cli_main


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmark.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--languages", default="parity aa")
    ap.add_argument("--objective", default="classifier")
    ap.add_argument("--seeds", default="0 1 2")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--max-len", type=int, default=6)
    ap.add_argument("--out", type=Path, default=Path("reports/benchmark-bench"))
    args = ap.parse_args(argv)
    languages = parse_choice(args.languages, adapter.LANGUAGES, "language")
    jobs = expand(languages, [args.objective], [Shape()], parse_seeds(args.seeds), Budget(args.steps, args.max_len))
    shutil.rmtree(args.out, ignore_errors=True)
    compiled = args.out / "compiled"
    t0 = time.perf_counter()
    with cluster.connect(None, 2):
        print(f"empty job: {1000 * cluster.overhead():.1f} ms per task (Ray's own cost, one at a time)")
        for task in sorted({adapter.task_of(j.language, j.objective) for j in jobs}):
            err = runner.compile_task(task, runner.max_len_of(jobs[0]), compiled)
            if err:
                print(f"error: {err}", file=sys.stderr)
                return 2
    print(f"compiled the candidates in {time.perf_counter() - t0:.1f} s (not timed below)")
    rates = {}
    for workers in (1, 2):
        root = (args.out / f"w{workers}").resolve()
        folders = Folders(root / "artifacts", root / "reports")
        shutil.copytree(compiled, folders.artifacts)
        with cluster.connect(None, workers):
            t = time.perf_counter()
            state = cluster.execute(jobs, folders, "cpu", progress=False)
            seconds = time.perf_counter() - t
        rates[workers] = len(jobs) / (seconds / 60)
        print(f"{workers} worker(s): {len(jobs)} jobs ({state.failed} failed) in {seconds:.1f} s = "
              f"{rates[workers]:.2f} jobs/min")
    print(f"throughput ratio 2 workers / 1 worker: {rates[2] / rates[1]:.2f} (target >= 1.6)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
