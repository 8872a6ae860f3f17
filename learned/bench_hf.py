"""``python -m learned.bench_hf``: an imported GPT-2's forward pass against ``transformers``' own.

    python -m learned.bench_hf [--batch 4096] [--length 10] [--rounds 7] [--threads 1]

Builds a random ``GPT2LMHeadModel`` with ``transformers`` (3 layers, 2 heads,
width 64, ``gelu_new``: the compiled MIU width, a 7-token vocabulary), saves it
with ``save_pretrained``, imports it with ``learned.hf`` and times both forward
passes (float32, CPU, no autograd) on the same batch of ``--batch`` strings of
``--length`` tokens after BOS, in interleaved rounds; prints the medians, the
ratio (``transformers`` / imported: above 1 means the import is faster) and
the largest logit difference. Target: ratio >= 1.

``transformers`` is a test-only extra of this project: without it, the
bench says so and skips the comparison (exit 0).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from rasp_programs.errors import ToolkitError, cli_main

TOKENS = ("a", "b", "c", "d", "<bos>", "<eos>", "<pad>")


def timed(fn, rounds: int) -> list[float]:
    """Seconds per call of ``fn``, ``rounds`` times (after one warm-up call)."""
    fn()
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m learned.bench_hf", description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--length", type=int, default=10, help="tokens after BOS")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for both (0: torch's default)")
    args = ap.parse_args(argv)
    if min(args.batch, args.length, args.rounds) <= 0:
        raise ToolkitError("--batch, --length and --rounds must be positive")
    try:
        import transformers
    except ImportError:
        print("learned.bench_hf: skipped (transformers is not installed; it is a test-only extra: "
              "pip install -e '.[test]')")
        return 0
    from learned.hf import import_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(TOKENS), n_positions=args.length + 1, n_embd=64, n_layer=3,
                                     n_head=2, activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0, tie_word_embeddings=False, bos_token_id=TOKENS.index("<bos>"),
                                     eos_token_id=TOKENS.index("<eos>"), pad_token_id=TOKENS.index("<pad>"))
    hf = transformers.GPT2LMHeadModel(config).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 4, (args.batch, args.length + 1), generator=g)  # [B, T]
    ids[:, 0] = TOKENS.index("<bos>")
    with tempfile.TemporaryDirectory(prefix="bench-hf-") as tmp:
        hf.save_pretrained(Path(tmp) / "hf")
        ours = import_checkpoint(Path(tmp) / "hf", Path(tmp) / "ours", vocab=TOKENS, bos="<bos>", end="<eos>",
                                 pad="<pad>")
    with torch.no_grad():
        diff = float((hf(input_ids=ids).logits - ours(ids)).abs().max())
        t_hf, t_ours = [], []
        for _ in range(args.rounds):  # interleaved, so drift on a shared machine hits both
            t_hf += timed(lambda: hf(input_ids=ids), 1)
            t_ours += timed(lambda: ours(ids), 1)
    m_hf, m_ours = statistics.median(t_hf), statistics.median(t_ours)
    ratio = m_hf / m_ours
    print(f"learned.bench_hf: GPT-2 (3 layers, 2 heads, width 64, gelu_new), batch {args.batch} x {args.length + 1} "
          f"tokens, float32 CPU, {torch.get_num_threads()} thread(s), transformers {transformers.__version__}, "
          f"{args.rounds} interleaved rounds")
    print(f"  transformers GPT2LMHeadModel: median {1e3 * m_hf:.1f} ms; imported (learned.model): median "
          f"{1e3 * m_ours:.1f} ms; ratio transformers / imported {ratio:.2f}x; max |logit diff| {diff:.1e}")
    print(f"  target (imported at least as fast, ratio >= 1): {'met' if ratio >= 1 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
