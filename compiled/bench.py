"""``python -m compiled.bench``: Tracr's forward pass against the torch port.

All three run the same inputs (every MIU string of the maximum length, so no
padding is involved for Tracr, which does not mask pads), in float32:
  * Tracr per string: ``model.apply`` one sequence at a time (a subset, timed);
  * Tracr jit-batched: ``jax.jit(model.forward)`` on batches, compile excluded;
  * the torch port, batched, under ``torch.inference_mode``.
Targets (issue 2): torch >= 100x per-string Tracr, >= jit-batched Tracr, and
the exhaustive check at MIU length 10 under 10 s on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

import jax
import numpy as np
import torch

from compiled import verify
from compiled.compile import compile_program
from compiled.export import to_torch
from learned.artifact import encode
from rasp_programs.errors import cli_main
from rasp_programs.registry import get_program, resolve_max_len


def _best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compiled.bench")
    ap.add_argument("--program", default="miu")
    ap.add_argument("--max-len", default="")
    ap.add_argument("--artifacts", default="artifacts", help="unused; accepted for a uniform make interface")
    ap.add_argument("--batches", default="1024 4096 16384", help="batch sizes tried for both; best kept")
    ap.add_argument("--per-string", type=int, default=200, help="strings timed through model.apply")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    spec = get_program(args.program)
    max_len = resolve_max_len(spec, args.max_len)
    cp = compile_program(spec, max_len)
    model, _ = to_torch(cp)
    model = model.float()
    inputs = list(itertools.islice(itertools.product(spec.vocab, repeat=max_len), 59049))
    ids = encode(model.cfg, inputs)  # [N, T]
    n = len(inputs)
    threads0 = torch.get_num_threads()
    print(f"bench '{spec.name}': {n} strings of length {max_len}, float32, "
          f"jax devices={jax.devices()}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    sub = inputs[: args.per_string]
    cp.model.apply(["BOS", *sub[0]])  # warm caches
    t = _best_of(lambda: [cp.model.apply(["BOS", *x]) for x in sub], 1)
    per_string = len(sub) / t

    fwd = jax.jit(cp.model.forward)
    jit_compile = 0.0
    jit_batched = torch_port = 0.0
    for size in [int(b) for b in args.batches.split()]:
        batches = [ids[i:i + size].numpy() for i in range(0, n, size)]
        t0 = time.perf_counter()
        for b in {b.shape: b for b in batches}.values():
            fwd(cp.model.params, b).unembedded_output.block_until_ready()
        jit_compile += time.perf_counter() - t0
        t = _best_of(lambda: [fwd(cp.model.params, b).unembedded_output.block_until_ready() for b in batches],
                     args.repeats)
        jit_batched = max(jit_batched, n / t)
        tbatches = [torch.from_numpy(b) for b in batches]

        def run_torch():
            with torch.inference_mode():
                for b in tbatches:
                    model(b).argmax(-1)
        for threads in (1, 2):  # small matrices: on a busy machine one thread can beat two
            torch.set_num_threads(threads)
            run_torch()
            rate = n / _best_of(run_torch, args.repeats)
            if rate > torch_port:
                torch_port, best = rate, f"batch {size}, {threads} thread(s)"

    print(f"  Tracr model.apply, per string : {per_string:12,.0f} strings/s")
    print(f"  Tracr jit, batched             : {jit_batched:12,.0f} strings/s  (best batch of {args.batches}; "
          f"jit compile {jit_compile:.1f} s excluded)")
    print(f"  torch port, batched            : {torch_port:12,.0f} strings/s  (best: {best})")
    print(f"  ratio torch / per-string Tracr: {torch_port / per_string:10,.0f}x  (target >= 100x)")
    print(f"  ratio torch / jit Tracr       : {torch_port / jit_batched:10.2f}x  (target >= 1x)")
    torch.set_num_threads(threads0)
    if spec.name == "miu":
        t0 = time.perf_counter()
        r = verify.exhaustive(spec, model, max_len)
        wall = time.perf_counter() - t0
        print(f"  exhaustive check at length {max_len}: {r['passed_inputs']}/{r['inputs']} correct, "
              f"{wall:.2f} s wall (target < 10 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
