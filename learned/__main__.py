"""``python -m learned``: train same-shape transformers on a program's outputs.

    python -m learned --program miu --device auto --seeds "0 1 2" --artifacts artifacts
        [--objective classifier|lm|legal-next] [--arch tracr|gpt2] [--steps N] [--resume] [--d-model N] [--train-max-len N]
        [--grokking [--train-size N]] [--batch-size N] [--checkpoints N] [--compile]
        [--out-name NAME] [--no-progress] [language-model flags, see --help]

``--objective lm`` trains MU-GPT (``learned.mugpt``): next-token prediction
on theorems only, written to ``<artifacts>/<program>/mugpt/seed<k>/`` with
the readout in ``model.json``. ``--objective legal-next`` (``learned.legal_next``):
BCE on the legal next tokens, members only, into ``<artifacts>/<program>/legalnext/seed<k>/``
with the ``legal-next`` readout.

Reads ``<artifacts>/<program>/compiled/model.json`` for the shape and the
vocabularies only, then writes ``<artifacts>/<program>/learned/seed<k>/``
per seed: ``model.safetensors`` (TransformerLens names, loadable by
``learned.artifact.load_artifact``), ``model.json`` (shape, vocabularies,
training config, versions, ``"kind": "learned"``), ``metrics.json``
(exhaustive evaluation and training curve) and ``checkpoints/step<N>/``.
Every input is checked before anything is written, so bad input never
replaces a good run.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import sys
from pathlib import Path

from learned import mugpt
from learned.artifact import check_compatible, compiled_config, read_meta
from learned.checkpoints import check_run
from learned.evaluate import build_eval_set, summary_line
from learned.model import ModelConfig
from learned.runtime import get_device
from learned.train import (ARCH_LR, TrainConfig, check_objective, grokking, learned_model_config, mugpt_preset,
                           train, trained_model_config)
from rasp_programs.cli import non_negative_int, parse_seeds, positive_float
from rasp_programs.errors import ToolkitError, cli_main
from rasp_programs.registry import get_program


def check_existing(folder: Path, expected: ModelConfig) -> None:
    """Refuses to resume a run whose shape or vocabularies differ from what this run would train."""
    meta = read_meta(folder, make_hint="train without --resume first")
    try:
        saved = ModelConfig.from_dict(meta["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise ToolkitError(f"bad config in {folder / 'model.json'}: {e}") from None
    check_compatible(expected, saved, f"learned config in {folder}")
    check_run(folder)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m learned", description=__doc__.splitlines()[0])
    ap.add_argument("--program", default="miu")
    ap.add_argument("--objective", default="classifier", help="classifier (default), lm (MU-GPT) or legal-next")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--seeds", default="0", help='space-separated, e.g. "0 1 2"')
    ap.add_argument("--artifacts", default="artifacts", type=Path)
    ap.add_argument("--steps", default=None, help="step budget (default: %d)" % TrainConfig.steps)
    ap.add_argument("--resume", action="store_true", help="continue each seed from its saved run")
    ap.add_argument("--arch", default="tracr", help="tracr (the compiled architecture) or gpt2 (layer norm, gelu_new)")
    ap.add_argument("--d-model", default=None, help="residual width below the compiled one (compression)")
    ap.add_argument("--train-max-len", default=None, help="train on inputs up to this length only")
    ap.add_argument("--grokking", action="store_true", help="small fixed training set + weight decay")
    ap.add_argument("--train-size", default=None, help="fixed training set of this many inputs (grokking regime)")
    ap.add_argument("--batch-size", default=None)
    ap.add_argument("--lr", default=None, help="peak learning rate (default: %g; gpt2: its own)" % TrainConfig.lr)
    ap.add_argument("--checkpoints", default=None, help="log-spaced checkpoints to keep (default 20)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--out-name", default=None,
                    help="folder under <artifacts>/<program>/ (default learned; mugpt for --objective lm; "
                         "legalnext for --objective legal-next)")
    mugpt.add_arguments(ap)
    return ap


def config_from_args(args, compiled: ModelConfig, seed: int) -> TrainConfig:
    overrides = {}
    for name in ("steps", "d_model", "train_max_len", "batch_size", "checkpoints", "train_size"):
        raw = getattr(args, name)
        if raw is not None:
            overrides[name] = non_negative_int(raw, "--" + name.replace("_", "-"))
    for name in ("d_model", "train_max_len", "batch_size", "checkpoints", "train_size"):
        if overrides.get(name) == 0:
            raise ToolkitError(f"--{name.replace('_', '-')} must be positive")
    lr = {"lr": ARCH_LR[args.arch]} if args.arch in ARCH_LR else {}
    cfg = TrainConfig(program=args.program, max_len=compiled.n_ctx - 1, seed=seed, compile=args.compile, arch=args.arch,
                      **lr, **overrides)
    if check_objective(args.objective) == "legal-next":
        cfg = dataclasses.replace(cfg, objective="legal-next", check_every=cfg.log_every)
    elif args.objective == "lm":
        cfg = mugpt_preset(cfg, mugpt.lm_config(args, cfg.max_len), args.grokking)
        cfg = dataclasses.replace(cfg, **overrides)
    elif args.grokking:
        cfg = grokking(cfg)
        cfg = dataclasses.replace(cfg, **{k: overrides[k] for k in ("steps", "train_size") if k in overrides})
    if args.lr is not None:
        cfg = dataclasses.replace(cfg, lr=positive_float(args.lr, "--lr"))
    trained_model_config(cfg, compiled)  # validates --d-model, and the language of --objective lm
    if cfg.train_max_len is not None and cfg.train_max_len > cfg.max_len:
        raise ToolkitError(f"--train-max-len must be at most {cfg.max_len}, got {cfg.train_max_len}")
    return cfg


def spread(values: list[float]) -> str:
    return f"min {min(values):.4g}, median {statistics.median(values):.4g}, max {max(values):.4g}"


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    spec = get_program(args.program)
    seeds = parse_seeds(args.seeds)
    compiled, _ = compiled_config(args.artifacts, spec.name)
    device = get_device(args.device)
    configs = {s: config_from_args(args, compiled, s) for s in seeds}
    out_name = args.out_name or {"lm": "mugpt", "legal-next": "legalnext"}.get(args.objective, "learned")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", out_name) or out_name == "compiled":
        raise ToolkitError(f"--out-name must be a plain folder name other than 'compiled', got {out_name!r}")
    root = args.artifacts / spec.name / out_name
    mcfg = learned_model_config(compiled, configs[seeds[0]].d_model, configs[seeds[0]].arch)
    if args.resume:
        for s in seeds:
            folder = root / f"seed{s}"
            if not folder.is_dir():
                raise ToolkitError(f"nothing to resume at {folder}; train without --resume first")
            check_existing(folder, trained_model_config(configs[s], compiled))
            configs[s] = _resumed_config(folder, configs[s], args)
    es = build_eval_set(spec, mcfg, compiled.n_ctx - 1, configs[seeds[0]].eval_limit)
    results = []
    for s in seeds:
        cfg = configs[s]
        print(f"training '{spec.name}' seed {s} on {device} (shape of the compiled model"
              f"{'' if cfg.d_model is None else f', d_model={cfg.d_model}'}; up to {cfg.steps} steps)", flush=True)
        r = train(cfg, compiled, device, root / f"seed{s}", resume=args.resume, progress=not args.no_progress,
                  eval_set=es)
        if r.interrupted:
            print(f"interrupted at step {r.step}; saved {r.folder}/ (continue with --resume)", file=sys.stderr)
            return 130
        m = r.metrics
        if cfg.objective == "lm":
            print(f"  seed {s}: {mugpt.summary_line(m)}; wrote {r.folder}/",
                  flush=True)
            results.append(r)
            continue
        if cfg.objective == "legal-next":
            print(f"  legal sets right on {100 * m['train_sets_exact']:.2f}% of the training prefixes", flush=True)
        reached = (f"100% at step {r.reached_100_step} ({r.reached_100_seconds:.1f} s)"
                   if r.reached_100_step is not None else "did not reach 100% on the early-stop check")
        print(f"  seed {s}: {reached}; {summary_line(m['evaluation'])}; "
              f"{m['tokens_per_second']:.0f} tokens/s; wrote {r.folder}/", flush=True)
        gen = m["evaluation"].get("length_generalisation")
        if gen:
            print(f"  length generalisation (trained on <= {gen['train_max_len']}): seen lengths "
                  f"{100 * gen['seen']['sequence']['accuracy']:.2f}%, unseen lengths "
                  f"{100 * gen['unseen']['sequence']['accuracy']:.2f}% (all-position)")
        results.append(r)
    if len(results) > 1 and configs[seeds[0]].objective == "lm":
        print(mugpt.summary_over_seeds([r.metrics for r in results]))
    elif len(results) > 1:
        accs = [100 * r.metrics["evaluation"]["sequence_accuracy"] for r in results]
        exact = sum(r.metrics["evaluation"]["wrong_inputs"] == 0 for r in results)
        print(f"summary over {len(results)} seeds: {exact} at 100%; accuracy % {spread(accs)}")
        done = [r for r in results if r.reached_100_step is not None]
        if done:
            print(f"  steps to 100%: {spread([r.reached_100_step for r in done])}; "
                  f"seconds: {spread([r.reached_100_seconds for r in done])}")
    return 0


def _resumed_config(folder: Path, fresh: TrainConfig, args) -> TrainConfig:
    """The saved run's config; only ``--steps`` (a larger budget) may change on resume."""
    meta = read_meta(folder)
    try:
        saved = TrainConfig.from_dict(meta["training"])
    except (KeyError, TypeError, ValueError) as e:
        raise ToolkitError(f"bad training config in {folder / 'model.json'}: {e}") from None
    if args.steps is not None:
        saved = dataclasses.replace(saved, steps=fresh.steps)
    if (saved.program, saved.d_model, saved.objective, saved.arch) != (fresh.program, fresh.d_model, fresh.objective,
                                                                       fresh.arch):
        raise ToolkitError(f"learned config in {folder} does not match this run (program {saved.program!r}, "
                           f"d_model {saved.d_model!r}, objective {saved.objective!r}, arch {saved.arch!r})")
    return saved


if __name__ == "__main__":
    sys.exit(main())
