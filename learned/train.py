"""Training: a same-shape transformer learns the program, by one of three objectives.

``objective="classifier"`` (``make train``): the loss is cross-entropy over
every position against the program's own output there (``spec.reference``;
for MIU the verdict of each prefix). ``objective="lm"`` (``make mugpt``):
next-token cross-entropy on the program's positive strings only, with the
verdicts read from the model's probabilities (``learned.mugpt``).
``objective="legal-next"``: binary cross-entropy on the set of legal next
tokens, on the positive strings only (``learned.legal_next``). All run
through the same loop (``learned.loop.Trainer``); what differs is an
``learned.objective.Objective``. This module holds the settings, the
schedule and the driver that builds the pieces and writes the run. The
model starts from ``Transformer.init_weights``; the compiled model is never
consulted. Defaults (``TrainConfig``) are chosen for speed to an exact
solution on a small CPU: AdamW with a short warm-up and a cosine decay laid
out over the step budget, on the informative data mix of ``learned.data``.

Early stop (classifier): once every batch of a logging window is right at every
position, the model is checked on the evaluation set's covering rows
(``EvalSet.gate_rows``: exhaustive, or a held-out sample for large spaces;
a seeded subset of 4,096 first, so failed checks are cheap); when that is
100% the run stops. The language model's stop rule is in ``learned.mugpt``.

Ctrl-C finishes the current step, writes the run folder (model, checkpoints
so far, optimizer and generator state) and exits; ``--resume`` continues
from it and draws exactly the batches the uninterrupted run would have.
On the CPU, a seed gives the same weights every time.

On CUDA: the data table lives on the GPU (batches are index draws there),
the forward pass runs under bf16 autocast (evaluation stays float32, so the
reported exactness is float32's), and ``compile=True`` wraps the model in
``torch.compile``.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from learned import checkpoints as ckpt
from learned.artifact import write_json
from learned.data import Sampler
from learned.evaluate import EvalSet, build_eval_set
from learned.lm_data import LMConfig, lm_model_config
from learned.loop import LoopState, Trainer
from learned.model import ModelConfig, Transformer
from learned.legal_next import LegalNextObjective
from learned.mugpt import LanguageModel
from learned.objective import Classifier, Objective
from learned.runtime import limit_threads, seed_everything
from rasp_programs.errors import ToolkitError
from rasp_programs.registry import get_program

OBJECTIVES = ("classifier", "lm", "legal-next")
# --arch: the compiled architecture, or GPT-2 blocks (pre-LayerNorm, gelu_new) at the compiled shape.
ARCHS = {"tracr": {}, "gpt2": {"normalization_type": "LN", "act_fn": "gelu_new"}}
# The learning rate per architecture (TrainConfig's lr is the Tracr one). MIU classifier, seed 0, 2-core CPU:
# gpt2 at lr 1e-2 stopped at 2,000 steps with 99.51% all-prefix; at 3e-3 it reached 100% at step 1,075 (54 s).
ARCH_LR = {"gpt2": 3e-3}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run; saved as ``training`` in ``model.json``.

    Attributes:
        program, max_len: the task (inputs of length 1..max_len).
        objective: ``classifier``, ``lm`` or ``legal-next`` (module docstring).
        seed: model initialisation seed.
        data_seed: seed of the data table and batch draws (default ``seed + 1000``).
        steps: step budget; the learning-rate schedule is laid out over it.
        batch_size, lr, min_lr_ratio, warmup, weight_decay, betas, grad_clip:
            AdamW with linear warm-up then cosine decay to ``lr * min_lr_ratio``.
        d_model: residual width if smaller than the compiled one (compression).
        arch: ``tracr`` (the compiled architecture) or ``gpt2`` (``ARCHS``: layer norm, gelu_new).
        train_max_len: train only on inputs up to this length (length generalisation).
        train_size: a fixed training set of this many inputs (grokking regime; for the
            language model, this many draws from its sampler, repeats kept).
        pool_size: inputs drawn per data pool.
        log_every: steps per logging window (progress bar, curve, early-stop gate).
        check_every: fewest steps between two exhaustive early-stop checks.
        early_stop: stop once the evaluation set is 100% right.
        checkpoints: number of log-spaced checkpoints to keep (0 and final included).
        save_every_s: also write the run folder this often (seconds) while training.
        amp: ``auto`` (bf16 autocast on CUDA, none on CPU), ``bf16`` or ``off``.
        compile: wrap the model in ``torch.compile`` (CUDA).
        eval_limit: evaluate exhaustively up to this many inputs, else a held-out sample.
        threads: CPU threads for torch during the run (0: leave torch's default). One
            is the default: these matrices are too small to split, and on a shared
            machine two spinning threads were 13x slower than one (327 vs 25 ms/step).
        lm: the language-model objective's settings (``objective="lm"`` only).
    """

    program: str = "miu"
    max_len: int = 10
    seed: int = 0
    data_seed: int | None = None
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-2
    min_lr_ratio: float = 0.05
    warmup: int = 50
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.98)
    grad_clip: float = 1.0
    d_model: int | None = None
    train_max_len: int | None = None
    train_size: int | None = None
    pool_size: int = 8192
    log_every: int = 25
    check_every: int = 100
    early_stop: bool = True
    checkpoints: int = 20
    save_every_s: float = 60.0
    amp: str = "auto"
    compile: bool = False
    eval_limit: int = 300_000
    threads: int = 1
    objective: str = "classifier"
    lm: LMConfig | None = None
    arch: str = "tracr"

    @property
    def resolved_data_seed(self) -> int:
        return self.seed + 1000 if self.data_seed is None else self.data_seed

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        if isinstance(d.get("lm"), dict):
            lm_known = {f.name for f in dataclasses.fields(LMConfig)}
            d["lm"] = LMConfig(**{k: v for k, v in d["lm"].items() if k in lm_known})
        return cls(**d)


def check_objective(name: str) -> str:
    if name not in OBJECTIVES:
        raise ToolkitError(f"unknown objective {name!r}; use one of {', '.join(OBJECTIVES)}")
    return name


def grokking(cfg: TrainConfig) -> TrainConfig:
    """The grokking regime: a small fixed training set, strong weight decay, a long budget.

    Measured on MIU at length 10, seed 0, 6,000 steps (held-out: 4,096 length-10
    strings, every prefix): with 128 strings and this preset the training set is
    fitted by about step 400 while 93.5% of held-out strings are right; held-out
    accuracy then climbs under weight decay to 99.6% (exhaustive at the end:
    99.64% all-prefix), without reaching 100%. A constant rate instead of the
    cosine decay gave loss spikes and 99.40%; 64 strings gave 99.39%; with 1,024
    strings there is no memorisation phase (100% at step 900): MIU strings carry
    one label per prefix, so even small sets are informative.
    """
    return dataclasses.replace(cfg, train_size=cfg.train_size or 128, weight_decay=1.0, lr=1e-3,
                               min_lr_ratio=0.05, warmup=10, steps=max(cfg.steps, 6000), check_every=250)


def learned_model_config(compiled: ModelConfig, d_model: int | None, arch: str = "tracr") -> ModelConfig:
    """The compiled shape, with an optionally smaller residual stream, in architecture ``arch`` (``ARCHS``)."""
    if arch not in ARCHS:
        raise ToolkitError(f"unknown --arch {arch!r}; use one of {', '.join(ARCHS)}")
    compiled = dataclasses.replace(compiled, **ARCHS[arch]) if ARCHS[arch] else compiled
    if d_model is None or d_model == compiled.d_model:
        return compiled
    if not 1 <= d_model < compiled.d_model:
        raise ToolkitError(f"--d-model must be between 1 and the compiled d_model {compiled.d_model}, got {d_model}")
    return dataclasses.replace(compiled, d_model=d_model)


def trained_model_config(cfg: TrainConfig, compiled: ModelConfig) -> ModelConfig:
    """The config of the model ``cfg`` trains: the compiled shape; for ``lm``, outputs = tokens + END."""
    mcfg = learned_model_config(compiled, cfg.d_model, cfg.arch)
    if cfg.objective not in ("lm", "legal-next"):
        return mcfg
    spec = get_program(cfg.program)
    if spec.language is None:
        raise ToolkitError(f"program '{spec.name}' has no language (ProgramSpec.language); "
                           f"--objective {cfg.objective} needs one")
    return lm_model_config(mcfg, spec.language)


def mugpt_preset(cfg: TrainConfig, lm: LMConfig, finite: bool = False) -> TrainConfig:
    """MU-GPT's settings: the language-model objective, checks at every logging point.

    Streaming (AdamW lr 1e-2, batch 256, cosine over 6,000 steps) met every
    target on 5 of 5 seeds (stop rule after 825-2,350 steps). ``finite``: the
    grokking regime: a dataset of 512 draws (196 distinct theorems), weight
    decay 1.0, lr 1e-3, no early stop so the whole budget is seen (the
    moments are still recorded). Measured on seed 0, 6,000 steps: training
    acceptance peaked at 0.995 (step 3,625) and never held at 1; held-out
    acceptance peaked early (0.87 at step 475) and fell to 0.64: no late jump.
    2,048 draws, weight decay 0.1, a constant 3e-3 rate, 8,000 steps: the same
    shape (training 0.995 at best, held-out 0.98 at step 400, 0.82 at the end).
    """
    cfg = dataclasses.replace(cfg, objective="lm", lm=lm, steps=6000, check_every=cfg.log_every)
    if finite:
        cfg = dataclasses.replace(cfg, train_size=cfg.train_size or 512, weight_decay=1.0, lr=1e-3, warmup=10,
                                  early_stop=False)
    return cfg


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``lr * min_lr_ratio`` at ``steps``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}


@dataclasses.dataclass
class RunResult:
    """What a run reports back (also the bulk of ``metrics.json``).

    ``reached_100_*`` is the objective's early stop: for the classifier, 100%
    on the exhaustive check; for the language model, the stop rule.
    """

    folder: Path
    step: int
    reached_100_step: int | None
    reached_100_seconds: float | None
    interrupted: bool
    metrics: dict[str, Any]


def train(cfg: TrainConfig, compiled_cfg: ModelConfig, device: torch.device, folder: Path, **kwargs) -> RunResult:
    """Trains one seed and writes its run folder (see ``_train`` for the arguments)."""
    with limit_threads(cfg.threads):
        return _train(cfg, compiled_cfg, device, folder, **kwargs)


def make_objective(cfg: TrainConfig, compiled_cfg: ModelConfig, eval_set: EvalSet | None) -> Objective:
    """The run's objective, its data built; every setting checked first (one-line errors)."""
    spec = get_program(cfg.program)
    mcfg = learned_model_config(compiled_cfg, cfg.d_model, cfg.arch)
    if cfg.max_len != compiled_cfg.n_ctx - 1:
        raise ToolkitError(f"max_len {cfg.max_len} does not match the compiled model (n_ctx={compiled_cfg.n_ctx}); "
                           f"run `make compile MAX_LEN={cfg.max_len}`")
    cut = cfg.train_max_len or cfg.max_len
    if not 1 <= cut <= cfg.max_len:
        raise ToolkitError(f"--train-max-len must be between 1 and {cfg.max_len}, got {cut}")
    check_objective(cfg.objective)
    # The evaluation set is labelled with the program's own outputs, whatever the model emits.
    es = eval_set if eval_set is not None else build_eval_set(spec, mcfg, cfg.max_len, cfg.eval_limit)
    if cfg.objective == "lm":
        return LanguageModel(spec, mcfg, cfg.lm or LMConfig(), cut, cfg.resolved_data_seed, cfg.train_size, es)
    if cfg.objective == "legal-next":
        return LegalNextObjective(spec, mcfg, cut, es)
    return Classifier(spec, mcfg, cut, cfg.resolved_data_seed, cfg.pool_size, cfg.train_size, es, cfg.train_max_len)


def _train(cfg: TrainConfig, compiled_cfg: ModelConfig, device: torch.device, folder: Path, *,
          resume: bool = False, progress: bool = True, eval_set: EvalSet | None = None,
          stop_after: int | None = None) -> RunResult:
    """Trains one seed and writes its run folder.

    Args:
        cfg: the run's settings.
        compiled_cfg: the compiled model's config (shape and vocabularies only).
        device: where to train.
        folder: ``<artifacts>/<program>/<out-name>/seed<k>``.
        resume: continue from ``folder`` (its weights, optimizer and generator state).
        progress: show a tqdm bar.
        eval_set: reuse an evaluation set across seeds (built if not given).
        stop_after: behave as if Ctrl-C came after this step (for tests).
    """
    t_start = time.perf_counter()
    objective = make_objective(cfg, compiled_cfg, eval_set)
    model = Transformer(objective.model_cfg)
    model.init_weights(seed_everything(cfg.seed))  # the model's own generator; data has its own
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sampler = Sampler(objective.table, device, cfg.resolved_data_seed)

    state, window = LoopState(), None
    snaps = ckpt.Snapshots(ckpt.dense_grid(cfg.steps))
    if resume:
        saved, extra = ckpt.load_run(folder, model, opt)
        if "sampler" not in extra:
            raise ToolkitError(f"corrupt training state in {folder / ckpt.STATE_DIR}: no sampler state")
        sampler.set_state(extra["sampler"])
        state = LoopState(saved["step"], saved["curve"], saved["checks"], saved["train_seconds"])
        window = saved.get("window")  # the logging window the interruption fell into
        objective.load_state(saved)
        ckpt.load_snapshots(folder, snaps, state.step)
    else:
        snaps.add(0, model)
    step0 = state.step
    meta = {"kind": "learned", "program": cfg.program, "max_len": cfg.max_len, "seed": cfg.seed,
            "training": cfg.to_dict(), "data": objective.data(), "versions": versions(), "device": str(device)}

    def write(metrics: dict[str, Any]) -> None:
        t = time.perf_counter()
        steps = snaps.select(state.step, cfg.checkpoints)
        state_meta = {"step": state.step, "curve": state.curve, "checks": state.checks,
                      "train_seconds": trainer.train_seconds(), **objective.state(), "training": cfg.to_dict(),
                      "window": trainer.window.to_json()}
        ckpt.write_run(folder, model, {**meta, **objective.artifact_meta(model), "step": state.step}, metrics, snaps,
                       steps, opt, {"sampler": sampler.state()}, state_meta, objective.artifact_meta)
        trainer.timers.checkpoints += time.perf_counter() - t

    trainer = Trainer(cfg, model, opt, sampler, objective, snaps, state, window, lambda s: lr_at(cfg, s), write,
                      setup_s=time.perf_counter() - t_start, progress=progress, stop_after=stop_after)
    interrupted = trainer.run()
    timers = trainer.timers
    snaps.add(state.step, model)
    if interrupted:
        write({"interrupted": True, "step": state.step, "curve": state.curve, "checks": state.checks})
        return RunResult(folder, state.step, None, None, True, {})
    t_eval = time.perf_counter()
    final_steps = snaps.select(state.step, cfg.checkpoints)
    metrics = {"program": cfg.program, "seed": cfg.seed, "step": state.step,
               **objective.evaluate(model, snaps, final_steps, state.checks), "eval_seconds": 0.0,
               "setup_seconds": round(timers.setup, 3), "train_seconds": round(state.elapsed + timers.loop, 3),
               # Throughput of the optimisation steps of this session (early-stop checks excluded).
               "tokens_per_second": round((state.step - step0) * cfg.batch_size * (cfg.max_len + 1)
                                          / max(timers.loop - timers.checks, 1e-9)),
               "check_seconds": round(timers.checks, 3),
               "curve": state.curve, "checks": state.checks, "data": meta["data"], "training": cfg.to_dict()}
    metrics["eval_seconds"] = round(time.perf_counter() - t_eval, 3)
    write(metrics)
    metrics["checkpoint_seconds"] = round(timers.checkpoints, 3)
    # The checkpoint cost is known only after writing; record it in the saved metrics too.
    write_json(folder / "metrics.json", metrics)
    stop = objective.stop_moment()
    return RunResult(folder, state.step, stop and stop["step"], stop and stop["seconds"], False, metrics)
