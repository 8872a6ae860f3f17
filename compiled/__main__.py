"""``python -m compiled``: compile, verify and export a registered program.

    python -m compiled --program miu [--max-len 10] [--artifacts artifacts]

Writes ``<artifacts>/<program>/compiled/`` only if every check passes; an
interrupted or failed run leaves the previous artifact as it was.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

from compiled import verify
from compiled.compile import compile_program
from compiled.export import to_torch
from learned.artifact import atomic_dir, save_model, write_json
from rasp_programs.errors import ToolkitError, cli_main
from rasp_programs.registry import get_program, resolve_max_len


def summary(meta: dict, cfg, checks: dict) -> str:
    lines = [f"compiled '{meta['program']}' at max length {meta['max_len']} "
             f"(mlp_exactness={meta['mlp_exactness']}; {meta['compile_seconds']:.1f} s)",
             f"  shape: n_layers={cfg.n_layers} n_heads={cfg.n_heads} d_model={cfg.d_model} "
             f"d_head={cfg.d_head} d_mlp={cfg.d_mlp} n_ctx={cfg.n_ctx} d_vocab={cfg.d_vocab} "
             f"d_vocab_out={cfg.d_vocab_out} causal={cfg.causal}",
             "  where each SOp is computed:"]
    if meta.get("corrected_value_sets"):
        lines.insert(2, f"  value sets corrected (numerical means and what reads them): "
                        f"{', '.join(meta['corrected_value_sets'])}")
    for e in meta["block_map"]:
        where = ", ".join(f"{b['hook']}" + (f".h{b['head']}" if b["kind"] == "attn" else "") for b in e["blocks"])
        lines.append(f"    {e['sop']:<14} {where:<34} {e['op']}")
    t, x = checks["against_tracr"], checks["exhaustive"]
    lines.append(f"  torch vs Tracr (float64, {t['inputs']} inputs): max residual diff "
                 f"{t['max_resid_abs_diff']:.2e}, decoded identical: {t['decoded_identical']}")
    kind = "exhaustive" if x["exhaustive"] else "sampled"
    lines.append(f"  {kind} check: {x['passed_inputs']}/{x['inputs']} inputs correct at every position "
                 f"({x['dtype']}, {x['seconds']:.2f} s)")
    lines += [f"  {r['summary']}" for r in x.values() if isinstance(r, dict) and "summary" in r]  # task checks
    return "\n".join(lines)


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compiled", description=__doc__.splitlines()[0])
    ap.add_argument("--program", default="miu")
    ap.add_argument("--max-len", default="", help="default: the program's own")
    ap.add_argument("--artifacts", default="artifacts", type=Path)
    ap.add_argument("--mlp-exactness", type=int, default=None)
    ap.add_argument("--tracr-sample", type=int, default=256, help="inputs for the torch-vs-Tracr check")
    args = ap.parse_args(argv)
    spec = get_program(args.program)
    max_len = resolve_max_len(spec, args.max_len)

    t0 = time.perf_counter()
    cp = compile_program(spec, max_len, args.mlp_exactness)
    model, meta = to_torch(cp)
    meta["compile_seconds"] = round(time.perf_counter() - t0, 2)
    sample = spec.sample_inputs(np.random.default_rng(0), args.tracr_sample, max_len)
    checks = {"against_tracr": verify.against_tracr(cp, model, sample),
              # float32 is the dtype the comparison runs in; the Tracr check above is float64.
              "exhaustive": verify.exhaustive(spec, copy.deepcopy(model).float(), max_len)}
    print(summary(meta, model.cfg, checks))
    if not checks["against_tracr"]["passed"]:
        raise ToolkitError(f"torch port disagrees with Tracr: {checks['against_tracr']}")
    if not checks["exhaustive"]["passed"]:
        raise ToolkitError(f"compiled model is wrong on {checks['exhaustive']['failures'][:3]} "
                           f"(try a larger --mlp-exactness)")
    target = args.artifacts / spec.name / "compiled"
    with atomic_dir(target) as tmp:
        save_model(tmp, model, meta)
        write_json(tmp / "verify.json", checks)
    print(f"wrote {target}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
