"""``python -m learned.bench``: time-to-100% of the learned stage, over seeds.

    python -m learned.bench --program miu --device auto --artifacts artifacts [--seeds "0 1 2 3 4"]

Trains each seed with the default ``TrainConfig`` (into a temporary folder,
so the user's runs are untouched) and prints, per seed, the steps and wall
seconds until the early-stop check first saw 100% (every position of every
input, exhaustive where the space allows), the final exhaustive accuracy
(final verdict, and "every%": every position right, i.e. every prefix
for a causal program such as MIU), throughput in tokens/s, and the cost of
keeping and writing checkpoints as a share of training time. Then the median
and the targets: where the task sets ``exact_within_s`` (MIU: 90 s), 100% in at
least 4 of 5 seeds with a median under that on a 2-core CPU; otherwise >= 99.9%.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

from learned.artifact import compiled_config
from learned.evaluate import build_eval_set
from learned.runtime import get_device
from learned.train import TrainConfig, train
from rasp_programs.cli import parse_seeds
from rasp_programs.errors import cli_main
from rasp_programs.registry import get_program


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m learned.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--program", default="miu")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--artifacts", default="artifacts", type=Path)
    ap.add_argument("--seeds", default="0 1 2 3 4")
    ap.add_argument("--compile", action="store_true")
    args = ap.parse_args(argv)
    spec = get_program(args.program)
    seeds = parse_seeds(args.seeds)
    compiled, _ = compiled_config(args.artifacts, spec.name)
    device = get_device(args.device)
    base = TrainConfig(program=spec.name, max_len=compiled.n_ctx - 1, compile=args.compile)
    t0 = time.perf_counter()
    es = build_eval_set(spec, compiled, base.max_len, base.eval_limit)
    print(f"learned.bench '{spec.name}' max_len {base.max_len} on {device}: {len(seeds)} seeds, "
          f"batch {base.batch_size}, lr {base.lr}, budget {base.steps} steps, {base.threads or 'default'} thread(s); "
          f"eval set {len(es.inputs)} inputs ({'exhaustive' if es.exhaustive else 'held-out'}, "
          f"built in {time.perf_counter() - t0:.1f} s)")
    print(f"{'seed':>4} {'steps@100%':>10} {'s@100%':>8} {'final%':>8} {'every%':>8} {'tok/s':>9} "
          f"{'ckpt s':>7} {'ckpt %':>7}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="learned-bench-") as tmp:
        for s in seeds:
            cfg = TrainConfig(**{**base.to_dict(), "seed": s, "betas": base.betas})
            r = train(cfg, compiled, device, Path(tmp) / f"seed{s}", progress=False, eval_set=es)
            m = r.metrics
            ev = m["evaluation"]
            share = 100 * m["checkpoint_seconds"] / max(m["train_seconds"], 1e-9)
            rows.append((r, ev, m, share))
            print(f"{s:>4} {r.reached_100_step if r.reached_100_step is not None else '-':>10} "
                  f"{(f'{r.reached_100_seconds:.1f}' if r.reached_100_seconds is not None else '-'):>8} "
                  f"{100 * ev['final_accuracy']:>8.3f} {100 * ev['sequence_accuracy']:>8.3f} "
                  f"{m['tokens_per_second']:>9.0f} {m['checkpoint_seconds']:>7.2f} {share:>7.2f}", flush=True)
    exact = [r for r, ev, _, _ in rows if ev["wrong_inputs"] == 0 and r.reached_100_step is not None]
    print(f"seeds at 100% (final verdict and every prefix/position): {len(exact)}/{len(rows)}")
    if exact:
        print(f"median time to 100%: {statistics.median(r.reached_100_seconds for r in exact):.1f} s; "
              f"median steps to 100%: {statistics.median(r.reached_100_step for r in exact):.0f}")
    print(f"median throughput: {statistics.median(m['tokens_per_second'] for _, _, m, _ in rows):.0f} tokens/s; "
          f"checkpoint + save overhead: median {statistics.median(sh for *_, sh in rows):.2f}% of training time")
    worst = min(ev["sequence_accuracy"] for _, ev, _, _ in rows)
    limit = spec.task.exact_within_s
    if limit is not None:
        med = statistics.median(r.reached_100_seconds for r in exact) if exact else math.inf
        ok = len(exact) >= min(4, len(rows)) and med < limit
        print(f"target (100% in >= 4 of 5 seeds, median < {limit:g} s on 2 CPU cores): {'met' if ok else 'NOT met'}")
    else:
        print(f"target (>= 99.9% on every seed): {'met' if worst >= 0.999 else 'NOT met'} (worst {100 * worst:.3f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
