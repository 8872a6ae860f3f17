"""``python -m learned.bench_mugpt``: MU-GPT's targets, streaming and finite (grokking).

    python -m learned.bench_mugpt --program miu --device auto --artifacts artifacts
        [--seeds "0 1 2 3 4"] [--regime both|streaming|finite] [--finite-seeds "0"]

Trains into a temporary folder (the user's runs are untouched).

Streaming (the ``make mugpt`` settings): per seed, the step and wall seconds
of each moment (``P(END | MU)`` first below epsilon; that and every
held-out theorem accepted; the stop rule), ``P(MU)`` and ``P(END | MU)`` at
the stop, the recogniser's accuracy at every prefix of every input
(exhaustive for MIU: 88,572 strings) and on the well-formed ones,
held-out acceptance and the AUROC of ``P(END | prefix)`` on well-formed
prefixes (all, and below the maximum length). Target: the recogniser at
100% in at least 4 of 5 seeds, with every held-out theorem accepted and
``P(END | MU) < 1e-3``, and a median time to the stop rule of at most 5
minutes on a 2-core CPU.

Finite (``--grokking``: a fixed training set, weight decay, the whole
budget): from the checks, when training acceptance and held-out acceptance
reach 1 for good, and when ``P(END | MU)`` falls below epsilon for good;
whether held-out acceptance comes long (at least twice as many steps)
after training acceptance.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from learned.artifact import compiled_config
from learned.evaluate import build_eval_set
from learned.lm_data import LMConfig
from learned.runtime import get_device
from learned.train import TrainConfig, mugpt_preset, train, trained_model_config
from rasp_programs.cli import parse_seeds
from rasp_programs.errors import ToolkitError, cli_main
from rasp_programs.registry import get_program

TARGET_SECONDS = 300.0


def _at(moment: dict[str, Any] | None) -> str:
    return f"{moment['step']}/{moment['seconds']:.0f}s" if moment else "-"


def _first(x: dict[str, Any]) -> str:
    return (f"first at step {x['first']}, for good from step {x['stays_from']}" if x["first"] is not None
            else "never")


def streaming(cfgs: list[TrainConfig], compiled, device, es, tmp: Path) -> None:
    print(f"{'seed':>4} {'MU<eps':>11} {'+held-out':>11} {'stop':>11} {'P(MU)':>9} {'P(E|MU)':>9} "
          f"{'recog%':>8} {'wf%':>8} {'held%':>6} {'AUROC':>6} {'<max':>6}")
    rows = []
    for cfg in cfgs:
        r = train(cfg, compiled, device, tmp / f"stream{cfg.seed}", progress=False, eval_set=es)
        m = r.metrics
        mo = m["moments"]
        rows.append(m)
        print(f"{cfg.seed:>4} {_at(mo['mu_below']):>11} {_at(mo['mu_below_held_out']):>11} {_at(mo['stop']):>11} "
              f"{m['p_impossible']:>9.2e} {m['p_end_impossible']:>9.2e} "
              f"{100 * m['evaluation']['sequence_accuracy']:>8.3f} {100 * m['well_formed_accuracy']:>8.3f} "
              f"{100 * m['held_out_acceptance']:>6.1f} {m['end_auroc']:>6.3f} {m['end_auroc_below_max_len']:>6.3f}",
              flush=True)
    good = [m for m in rows if m["evaluation"]["wrong_inputs"] == 0 and m["held_out_acceptance"] == 1.0
            and m["p_end_impossible"] < 1e-3 and m["moments"]["stop"] is not None]
    stops = [m["moments"]["stop"]["seconds"] for m in rows if m["moments"]["stop"] is not None]
    med = statistics.median(stops) if len(stops) == len(rows) else float("inf")
    print(f"seeds meeting every target (recogniser 100% at every prefix, every held-out theorem accepted, "
          f"P(END|MU) < 1e-3, stop rule met): {len(good)}/{len(rows)}")
    print(f"median time to the stop rule: {med:.1f} s over {len(rows)} seeds "
          f"({len(stops)} reached it); steps: {[m['step'] for m in rows]}")
    ok = len(good) >= min(4, len(rows)) and med <= TARGET_SECONDS
    print(f"target (>= 4 of 5 seeds, median <= {TARGET_SECONDS:.0f} s on 2 CPU cores): {'met' if ok else 'NOT met'}")


def finite(cfgs: list[TrainConfig], compiled, device, es, tmp: Path) -> None:
    for cfg in cfgs:
        r = train(cfg, compiled, device, tmp / f"finite{cfg.seed}", progress=False, eval_set=es)
        m = r.metrics
        d = m["dynamics"]
        tr, ho, mu = d["train_accepted"], d["held_out_accepted"], d["impossible_ruled_out"]
        print(f"finite seed {cfg.seed} ({cfg.train_size} draws, {m['data']['train_strings']} distinct theorems, "
              f"weight decay {cfg.weight_decay}, "
              f"lr {cfg.lr}, {r.step} steps, {m['train_seconds']:.0f} s):")
        best_train = max(m["checks"], key=lambda c: c["train_acceptance"])
        best_held = max(m["checks"], key=lambda c: c["held_out_acceptance"])
        print(f"  training strings all accepted: {_first(tr)}; best {best_train['train_acceptance']:.3f} "
              f"at step {best_train['step']}")
        print(f"  held-out theorems all accepted: {_first(ho)}; best {best_held['held_out_acceptance']:.3f} "
              f"at step {best_held['step']}")
        print(f"  P(END|MU) < {cfg.lm.stop_when_mu_below:g}: {_first(mu)}")
        ratio = d["held_out_after_train_ratio"]
        if ratio is None:
            verdict = "no late jump: training and held-out acceptance do not both reach 1 for good"
        else:
            verdict = (f"held-out acceptance {'jumps long after' if ratio >= 2 else 'does not come long after'} "
                       f"training acceptance ({ratio}x the steps)")
        print(f"  {verdict}; at the end: held-out {100 * m['held_out_acceptance']:.1f}%, "
              f"recogniser {100 * m['evaluation']['sequence_accuracy']:.3f}%, P(END|MU) {m['p_end_impossible']:.2e}",
              flush=True)


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m learned.bench_mugpt", description=__doc__.splitlines()[0])
    ap.add_argument("--program", default="miu")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--artifacts", default="artifacts", type=Path)
    ap.add_argument("--seeds", default="0 1 2 3 4")
    ap.add_argument("--finite-seeds", default="0")
    ap.add_argument("--regime", default="both")
    args = ap.parse_args(argv)
    if args.regime not in ("both", "streaming", "finite"):
        raise ToolkitError(f"unknown regime {args.regime!r}; use both, streaming or finite")
    spec = get_program(args.program)
    compiled, _ = compiled_config(args.artifacts, spec.name)
    device = get_device(args.device)
    base = TrainConfig(program=spec.name, max_len=compiled.n_ctx - 1, checkpoints=5)
    trained_model_config(dataclasses.replace(base, objective="lm"), compiled)  # the program must have a language
    es = build_eval_set(spec, compiled, base.max_len, base.eval_limit)
    stream = mugpt_preset(base, LMConfig())
    print(f"learned.bench_mugpt '{spec.name}' max_len {base.max_len} on {device}: streaming batch "
          f"{stream.batch_size}, lr {stream.lr}, budget {stream.steps} steps, q {stream.lm.q}, held-out share "
          f"{stream.lm.held_out_share}, epsilon {stream.lm.stop_when_mu_below}")
    with tempfile.TemporaryDirectory(prefix="mugpt-bench-") as tmp:
        if args.regime in ("both", "streaming"):
            streaming([dataclasses.replace(stream, seed=s) for s in parse_seeds(args.seeds)], compiled, device, es,
                      Path(tmp))
        if args.regime in ("both", "finite"):
            grok = mugpt_preset(base, LMConfig(), finite=True)
            finite([dataclasses.replace(grok, seed=s) for s in parse_seeds(args.finite_seeds)], compiled, device, es,
                   Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
