"""Training loop: a same-shape transformer learns the program from its outputs.

The loss is cross-entropy over every position against the program's own
output there (``spec.reference``; for MIU the verdict of each prefix). The
model starts from ``Transformer.init_weights``; the compiled model is never
consulted. Defaults (``TrainConfig``) are chosen for speed to an exact
solution on a small CPU: AdamW with a short warm-up and a cosine decay laid
out over the step budget, on the informative data mix of ``learned.data``.

Early stop: once every batch of a logging window is right at every
position, the model is checked on the evaluation set's covering rows
(``EvalSet.gate_rows``: exhaustive, or a held-out sample for large spaces;
a seeded subset of 4,096 first, so failed checks are cheap); when that is
100% the run stops.

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

import contextlib
import dataclasses
import math
import platform
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from learned import checkpoints as ckpt
from learned.artifact import write_json
from learned.data import IGNORE, Sampler, build_table, describe
from learned.evaluate import EvalSet, all_correct, build_eval_set, evaluate
from learned.model import ModelConfig, Transformer
from learned.runtime import seed_everything
from rasp_programs.errors import ToolkitError
from rasp_programs.registry import get_program


QUICK_CHECK = 4096  # rows of the early-stop check tried before the full one


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run; saved as ``training`` in ``model.json``.

    Attributes:
        program, max_len: the task (inputs of length 1..max_len).
        seed: model initialisation seed.
        data_seed: seed of the data table and batch draws (default ``seed + 1000``).
        steps: step budget; the learning-rate schedule is laid out over it.
        batch_size, lr, min_lr_ratio, warmup, weight_decay, betas, grad_clip:
            AdamW with linear warm-up then cosine decay to ``lr * min_lr_ratio``.
        d_model: residual width if smaller than the compiled one (compression).
        train_max_len: train only on inputs up to this length (length generalisation).
        train_size: a fixed training set of this many inputs (grokking regime).
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
        return cls(**d)


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


def learned_model_config(compiled: ModelConfig, d_model: int | None) -> ModelConfig:
    """The compiled shape, with an optionally smaller residual stream."""
    if d_model is None or d_model == compiled.d_model:
        return compiled
    if not 1 <= d_model < compiled.d_model:
        raise ToolkitError(f"--d-model must be between 1 and the compiled d_model {compiled.d_model}, got {d_model}")
    return dataclasses.replace(compiled, d_model=d_model)


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
    """What a run reports back (also the bulk of ``metrics.json``)."""

    folder: Path
    step: int
    reached_100_step: int | None
    reached_100_seconds: float | None
    interrupted: bool
    metrics: dict[str, Any]


class _Interrupt:
    """First Ctrl-C: set a flag the loop checks after each step. Second: the usual KeyboardInterrupt."""

    def __init__(self):
        self.flag = False

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return

        def handler(signum, frame):
            if self.flag:
                raise KeyboardInterrupt
            self.flag = True

        old = signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, old)


@contextlib.contextmanager
def _threads(n: int):
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def train(cfg: TrainConfig, compiled_cfg: ModelConfig, device: torch.device, folder: Path, **kwargs) -> RunResult:
    """Trains one seed and writes its run folder (see ``_train`` for the arguments)."""
    with _threads(cfg.threads):
        return _train(cfg, compiled_cfg, device, folder, **kwargs)


def _train(cfg: TrainConfig, compiled_cfg: ModelConfig, device: torch.device, folder: Path, *,
          resume: bool = False, progress: bool = True, eval_set: EvalSet | None = None,
          stop_after: int | None = None) -> RunResult:
    """Trains one seed and writes its run folder.

    Args:
        cfg: the run's settings.
        compiled_cfg: the compiled model's config (shape and vocabularies only).
        device: where to train.
        folder: ``<artifacts>/<program>/learned/seed<k>``.
        resume: continue from ``folder`` (its weights, optimizer and generator state).
        progress: show a tqdm bar.
        eval_set: reuse an evaluation set across seeds (built if not given).
        stop_after: behave as if Ctrl-C came after this step (for tests).
    """
    t_start = time.perf_counter()
    spec = get_program(cfg.program)
    mcfg = learned_model_config(compiled_cfg, cfg.d_model)
    if cfg.max_len != compiled_cfg.n_ctx - 1:
        raise ToolkitError(f"max_len {cfg.max_len} does not match the compiled model (n_ctx={compiled_cfg.n_ctx}); "
                           f"run `make compile MAX_LEN={cfg.max_len}`")
    cut = cfg.train_max_len or cfg.max_len
    if not 1 <= cut <= cfg.max_len:
        raise ToolkitError(f"--train-max-len must be between 1 and {cfg.max_len}, got {cut}")

    model = Transformer(mcfg)
    model.init_weights(seed_everything(cfg.seed))  # the model's own generator; data has its own
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    table = build_table(spec, mcfg, cut, cfg.resolved_data_seed, cfg.pool_size, cfg.train_size)
    sampler = Sampler(table, device, cfg.resolved_data_seed)
    es = eval_set if eval_set is not None else build_eval_set(spec, mcfg, cfg.max_len, cfg.eval_limit)
    gate = es.gate_rows(cut)  # every (prefix, position) pair up to the cut
    # A seeded subset is checked first, so a check that fails costs little.
    quick = gate[torch.randperm(len(gate), generator=torch.Generator().manual_seed(0))[:QUICK_CHECK]]

    step, curve, checks, elapsed0, reached, state_meta = 0, [], [], 0.0, None, {}
    snaps = ckpt.Snapshots(ckpt.dense_grid(cfg.steps))
    if resume:
        state_meta, extra = ckpt.load_run(folder, model, opt)
        if "sampler" not in extra:
            raise ToolkitError(f"corrupt training state in {folder / ckpt.STATE_DIR}: no sampler state")
        sampler.set_state(extra["sampler"])
        step, curve, checks = state_meta["step"], state_meta["curve"], state_meta["checks"]
        elapsed0, reached = state_meta["train_seconds"], state_meta.get("reached_100")
        ckpt.load_snapshots(folder, snaps, step)
    else:
        snaps.add(0, model)
    setup_s, step0 = time.perf_counter() - t_start, step

    use_amp = device.type == "cuda" and cfg.amp in ("auto", "bf16")
    fwd = torch.compile(model) if cfg.compile else model
    ckpt_s = check_s = 0.0
    meta = {"kind": "learned", "program": cfg.program, "max_len": cfg.max_len, "seed": cfg.seed,
            "training": cfg.to_dict(), "data": describe(table), "versions": versions(), "device": str(device)}

    def state_meta_now(train_s: float) -> dict[str, Any]:
        return {"step": step, "curve": curve, "checks": checks, "train_seconds": train_s, "reached_100": reached,
                "training": cfg.to_dict(),
                "window": {"steps": window, "loss_sum": float(loss_sum), "acc_sum": float(acc_sum),
                           "acc_min": float(acc_min)}}

    def write(metrics: dict[str, Any], train_s: float) -> None:
        nonlocal ckpt_s
        t = time.perf_counter()
        steps = snaps.select(step, cfg.checkpoints)
        ckpt.write_run(folder, model, {**meta, "step": step}, metrics, snaps, steps,
                       {**ckpt.optimizer_tensors(model, opt), "sampler": sampler.state()}, state_meta_now(train_s))
        ckpt_s += time.perf_counter() - t

    interrupt = _Interrupt()
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, file=sys.stderr, leave=False,
               desc=f"{cfg.program} seed {cfg.seed}", dynamic_ncols=True)
    loss_sum = torch.zeros((), device=device)
    acc_sum = torch.zeros((), device=device)
    acc_min = torch.ones((), device=device)
    window, last_save = 0, time.perf_counter()
    last_check = checks[-1]["step"] if checks else 0
    if resume and "window" in state_meta:  # the logging window the interruption fell into
        w = state_meta["window"]
        window, acc_min = w["steps"], torch.tensor(w["acc_min"], device=device)
        loss_sum, acc_sum = torch.tensor(w["loss_sum"], device=device), torch.tensor(w["acc_sum"], device=device)
    t_loop = time.perf_counter()
    done = bool(reached is not None and cfg.early_stop)
    with interrupt.installed():
        while step < cfg.steps and not done:
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, step)
            ids, tgt = sampler.batch(cfg.batch_size)  # [B, T], [B, T]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = fwd(ids)  # [B, T, O]
            logits = logits.float()
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            step += 1
            with torch.no_grad():
                seq = ((logits.argmax(-1) == tgt) | (tgt == IGNORE)).all(1).float().mean()
                loss_sum += loss.detach()
                acc_sum += seq
                acc_min = torch.minimum(acc_min, seq)
            window += 1
            t = time.perf_counter()
            snaps.maybe_add(step, model)
            ckpt_s += time.perf_counter() - t
            if step % cfg.log_every == 0 or step == cfg.steps:  # aligned, so a resumed run checks at the same steps
                train_s = elapsed0 + time.perf_counter() - t_loop
                point = {"step": step, "loss": float(loss_sum) / window, "batch_accuracy": float(acc_sum) / window,
                         "lr": lr_at(cfg, step - 1), "seconds": round(train_s + setup_s, 3)}
                curve.append(point)
                bar.set_postfix(loss=f"{point['loss']:.4f}", acc=f"{point['batch_accuracy']:.4f}")
                bar.update(window)
                perfect = float(acc_min) == 1.0
                loss_sum.zero_(), acc_sum.zero_(), acc_min.fill_(1.0)
                window = 0
                if cfg.early_stop and perfect and step - last_check >= cfg.check_every:
                    last_check, t_check = step, time.perf_counter()
                    ok, acc = all_correct(model, es, quick)
                    rows = len(quick)
                    if ok and len(quick) < len(gate):
                        ok, acc = all_correct(model, es, gate)
                        rows = len(gate)
                    checks.append({"step": step, "rows": rows, "sequence_accuracy": acc,
                                   "seconds": round(elapsed0 + time.perf_counter() - t_loop + setup_s, 3)})
                    check_s += time.perf_counter() - t_check
                    if ok:
                        reached = {"step": step, "seconds": checks[-1]["seconds"]}
                        done = True
            if interrupt.flag or (stop_after is not None and step >= stop_after):
                interrupt.flag = True
                break
            if time.perf_counter() - last_save > cfg.save_every_s:
                write({"interim": True, "step": step, "curve": curve, "checks": checks},
                      elapsed0 + time.perf_counter() - t_loop)
                last_save = time.perf_counter()
    bar.close()
    loop_s = time.perf_counter() - t_loop
    train_s = elapsed0 + loop_s
    snaps.add(step, model)
    if interrupt.flag:
        write({"interrupted": True, "step": step, "curve": curve, "checks": checks}, train_s)
        return RunResult(folder, step, None, None, True, {})
    t_eval = time.perf_counter()
    metrics = {"program": cfg.program, "seed": cfg.seed, "step": step,
               "evaluation": evaluate(model, es, cfg.train_max_len),
               "reached_100": reached, "eval_seconds": 0.0,
               "setup_seconds": round(setup_s, 3), "train_seconds": round(train_s, 3),
               # Throughput of the optimisation steps of this session (early-stop checks excluded).
               "tokens_per_second": round((step - step0) * cfg.batch_size * (cfg.max_len + 1)
                                          / max(loop_s - check_s, 1e-9)),
               "check_seconds": round(check_s, 3),
               "curve": curve, "checks": checks, "data": meta["data"], "training": cfg.to_dict()}
    metrics["eval_seconds"] = round(time.perf_counter() - t_eval, 3)
    write(metrics, train_s)
    metrics["checkpoint_seconds"] = round(ckpt_s, 3)
    # The checkpoint cost is known only after writing; record it in the saved metrics too.
    write_json(folder / "metrics.json", metrics)
    return RunResult(folder, step, reached and reached["step"], reached and reached["seconds"], False, metrics)
