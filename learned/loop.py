"""The training loop every objective shares (minGPT's ``Trainer.run``, with callbacks).

One step: learning rate from the schedule, a batch from the sampler, the
forward pass (bf16 autocast on CUDA), the objective's loss (cross-entropy
against the batch's targets, ``IGNORE`` positions skipped), backward,
gradient clipping, an optimizer step. What differs between objectives is
behind ``Objective`` (``learned.objective``); what happens around the step
is here, each in its own piece:

  * ``Window``: loss and batch-score sums over one logging window, kept on
    the device so no step waits for the host;
  * the logging point every ``log_every`` steps (curve and progress bar);
  * the early-stop gate: at a logging point, if the objective wants a check
    and ``check_every`` steps have passed since the last one, it runs
    ``Objective.check``, which may stop the run;
  * snapshots of the weights at the steps of ``Snapshots.grid``;
  * ``save``: a callback that writes the run folder, called every
    ``save_every_s`` seconds and on Ctrl-C.

Logging points and checks fall on multiples of ``log_every``, so a resumed
run checks at the same steps as an uninterrupted one.

Shapes: B batch, T positions, O output vocabulary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import sys
import threading
import time
from typing import Any, Callable

import torch
from tqdm import tqdm

from learned.checkpoints import Snapshots
from learned.data import Sampler
from rasp_programs.errors import ToolkitError


class Window:
    """Sums over one logging window: loss, batch score and its minimum (device tensors)."""

    def __init__(self, device: torch.device, saved: dict[str, Any] | None = None):
        saved = saved or {"steps": 0, "loss_sum": 0.0, "acc_sum": 0.0, "acc_min": 1.0}
        self.steps = saved["steps"]
        self.loss_sum = torch.tensor(saved["loss_sum"], device=device)
        self.acc_sum = torch.tensor(saved["acc_sum"], device=device)
        self.acc_min = torch.tensor(saved["acc_min"], device=device)

    def add(self, loss: torch.Tensor, score: torch.Tensor | None) -> None:
        self.loss_sum += loss.detach()
        if score is not None:
            self.acc_sum += score
            self.acc_min = torch.minimum(self.acc_min, score)
        self.steps += 1

    def close(self) -> tuple[float, float, bool]:
        """(mean loss, mean score, every batch scored 1.0); then starts a new window."""
        out = float(self.loss_sum) / self.steps, float(self.acc_sum) / self.steps, float(self.acc_min) == 1.0
        self.loss_sum.zero_(), self.acc_sum.zero_(), self.acc_min.fill_(1.0)
        self.steps = 0
        return out

    def to_json(self) -> dict[str, Any]:
        return {"steps": self.steps, "loss_sum": float(self.loss_sum), "acc_sum": float(self.acc_sum),
                "acc_min": float(self.acc_min)}


@dataclasses.dataclass
class LoopState:
    """Where the loop is; with the objective's state, what ``--resume`` restores.

    Attributes:
        step: optimizer steps taken.
        curve: one point per logging window.
        checks: one record per early-stop check.
        elapsed: training seconds of earlier sessions (resumed runs).
    """

    step: int = 0
    curve: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    checks: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    elapsed: float = 0.0


class Interrupt:
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


@dataclasses.dataclass
class Timers:
    """Seconds spent outside the optimisation steps, and the loop's own time."""

    setup: float = 0.0
    loop: float = 0.0
    checks: float = 0.0
    checkpoints: float = 0.0


class Trainer:
    """Runs the loop of the module docstring for one seed.

    Args:
        cfg: a ``learned.train.TrainConfig`` (steps, batch size, schedule, logging).
        model, opt, sampler, objective, snapshots: the pieces of the run.
        state: where to start (fresh or resumed).
        window: the logging window the run was interrupted in, if resumed.
        lr_at: ``lr_at(step)``, the schedule.
        save: ``save(interim_metrics)`` writes the run folder.
        setup_s: seconds spent before the loop (counted in the reported times).
        progress: show a tqdm bar.
        stop_after: behave as if Ctrl-C came after this step (tests).
    """

    def __init__(self, cfg, model: torch.nn.Module, opt: torch.optim.Optimizer, sampler: Sampler, objective,
                 snapshots: Snapshots, state: LoopState, window: dict[str, Any] | None,
                 lr_at: Callable[[int], float], save: Callable[[dict[str, Any]], None], setup_s: float,
                 progress: bool = True, stop_after: int | None = None):
        self.cfg, self.model, self.opt, self.sampler = cfg, model, opt, sampler
        self.objective, self.snapshots, self.state, self.lr_at = objective, snapshots, state, lr_at
        self.device = next(model.parameters()).device
        self.window = Window(self.device, window)
        self.save_cb, self.progress, self.stop_after = save, progress, stop_after
        self.timers = Timers(setup=setup_s)
        self.interrupted = False
        self._t_loop = time.perf_counter()
        self._t_end: float | None = None  # set when the loop ends: the training time stops there
        self._last_check = state.checks[-1]["step"] if state.checks else 0

    def seconds(self) -> float:
        """Training seconds so far, setup and earlier sessions included."""
        return round(self.state.elapsed + time.perf_counter() - self._t_loop + self.timers.setup, 3)

    def train_seconds(self) -> float:
        """Training seconds of the loop, earlier sessions included (setup excluded)."""
        return self.state.elapsed + (self._t_end or time.perf_counter()) - self._t_loop

    def run(self) -> bool:
        """Trains until the budget, the objective's stop or Ctrl-C; returns whether interrupted."""
        cfg, st = self.cfg, self.state
        use_amp = self.device.type == "cuda" and cfg.amp in ("auto", "bf16")
        fwd = torch.compile(self.model) if cfg.compile else self.model
        bar = tqdm(total=cfg.steps, initial=st.step, disable=not self.progress, file=sys.stderr, leave=False,
                   desc=f"{cfg.program} seed {cfg.seed}", dynamic_ncols=True)
        interrupt, last_save = Interrupt(), time.perf_counter()
        self._t_loop = time.perf_counter()
        done = cfg.early_stop and self.objective.finished
        with interrupt.installed():
            while st.step < cfg.steps and not done:
                self._step(fwd, use_amp)
                if st.step % cfg.log_every == 0 or st.step == cfg.steps:
                    done = self._log(bar)
                if interrupt.flag or (self.stop_after is not None and st.step >= self.stop_after):
                    self.interrupted = True
                    break
                if time.perf_counter() - last_save > cfg.save_every_s:
                    self.save_cb({"interim": True, "step": st.step, "curve": st.curve, "checks": st.checks})
                    last_save = time.perf_counter()
        bar.close()
        self._t_end = time.perf_counter()
        self.timers.loop = self._t_end - self._t_loop
        return self.interrupted

    def _step(self, fwd: Callable, use_amp: bool) -> None:
        for group in self.opt.param_groups:
            group["lr"] = self.lr_at(self.state.step)
        ids, tgt = self.sampler.batch(self.cfg.batch_size)  # [B, T], [B, T]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = fwd(ids)  # [B, T, O]
        logits = logits.float()
        loss = self.objective.loss(logits, tgt)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.state.step += 1
        with torch.no_grad():
            self.window.add(loss, self.objective.batch_score(logits, tgt))
        t = time.perf_counter()
        self.snapshots.maybe_add(self.state.step, self.model)
        self.timers.checkpoints += time.perf_counter() - t

    def _log(self, bar: tqdm) -> bool:
        """Closes a logging window; runs the early-stop gate. Returns whether to stop."""
        cfg, st = self.cfg, self.state
        steps = self.window.steps
        loss, score, perfect = self.window.close()
        if not math.isfinite(loss):  # every later step would be wasted on non-finite weights
            raise ToolkitError(f"training diverged: the mean loss of steps {st.step - steps + 1}-{st.step} is "
                               f"{loss} (learning rate {self.lr_at(st.step - 1):.3g}); try a lower --lr")
        point = {"step": st.step, "loss": loss}
        if self.objective.scores_batches:
            point["batch_accuracy"] = score
        point.update({"lr": self.lr_at(st.step - 1), "seconds": self.seconds()})
        st.curve.append(point)
        bar.set_postfix(loss=f"{loss:.4f}", **({"acc": f"{score:.4f}"} if self.objective.scores_batches else {}))
        bar.update(steps)
        if not (cfg.early_stop or self.objective.checks_always):
            return False
        if not self.objective.wants_check(perfect) or st.step - self._last_check < cfg.check_every:
            return False
        self._last_check, t = st.step, time.perf_counter()
        record, stop = self.objective.check(self.model, st.step, self.seconds)
        st.checks.append(record)
        self.timers.checks += time.perf_counter() - t
        return stop and cfg.early_stop
