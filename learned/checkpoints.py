"""Run folders: the trained model, its log-spaced checkpoints and the resume state.

    <artifacts>/<program>/learned/seed<k>/
        model.safetensors, model.json     the model at the last step (an artifact)
        metrics.json                      evaluation + training curve
        checkpoints/step<N>/              ~20 artifacts at log-spaced steps, 0 and final included
        state/state.safetensors           optimizer moments and data-generator state
        state/state.json                  step, training curve, timings (for --resume)

Checkpoints are kept in memory during training at a dense geometric grid of
steps (cheap: the models are tiny) and only the ~20 nearest to an ideal
log-spaced grid up to the final step are written, so an early stop still
gives ~20 checkpoints spanning the whole run. The whole folder is written
atomically (``atomic_dir``): an interrupted write leaves the previous run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from learned.artifact import atomic_dir, check_compatible, load_artifact, save_model, write_json
from learned.model import Transformer
from rasp_programs.errors import ToolkitError

STATE_DIR, CKPT_DIR = "state", "checkpoints"


def log_spaced(final: int, count: int = 20) -> list[int]:
    """Ideal checkpoint steps: 0, then log-spaced steps from 1 to ``final``; ``count`` in all.

    Rounding to whole steps merges the smallest ones, so the grid is refined
    until ``count`` distinct steps remain (all of 0..final if that is fewer).
    """
    if final <= 0:
        return [0]
    want = min(count, final + 1)
    n = max(count - 1, 1)
    while True:  # rounding merges small steps; add grid points until ``count`` distinct steps remain
        steps = {0, final} | {int(round(final ** (j / max(n - 1, 1)))) for j in range(n)}
        if len(steps) >= want:
            return sorted(steps)
        n += 1


def dense_grid(max_steps: int, ratio: float = 1.08) -> set[int]:
    """Steps at which a snapshot is kept in memory: 0..20, then a geometric grid."""
    grid, x = set(range(min(max_steps, 20) + 1)), 20.0
    while x < max_steps:
        x *= ratio
        grid.add(min(int(round(x)), max_steps))
    return grid


class Snapshots:
    """In-memory copies of the weights at chosen steps (on the CPU)."""

    def __init__(self, grid: Iterable[int]):
        self.grid = set(grid)
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def maybe_add(self, step: int, model: Transformer) -> None:
        if step in self.grid:
            self.add(step, model)

    def add(self, step: int, model: Transformer) -> None:
        self.weights[step] = {k: v.detach().to("cpu", copy=True) for k, v in model.tl_state_dict().items()}

    def select(self, final: int, count: int) -> list[int]:
        """The kept steps nearest (in log space) to ``log_spaced(final, count)``; 0 and ``final`` included."""
        have = sorted(s for s in self.weights if s <= final)
        chosen = set()
        for want in log_spaced(final, count):
            chosen.add(min(have, key=lambda s: abs(math.log1p(s) - math.log1p(want))))
        return sorted(chosen)


def write_run(target: Path, model: Transformer, meta: dict[str, Any], metrics: dict[str, Any],
              snapshots: Snapshots, steps: list[int], state: dict[str, torch.Tensor],
              state_meta: dict[str, Any]) -> None:
    """Writes the whole run folder atomically (see the module docstring)."""
    with atomic_dir(target) as tmp:
        save_model(tmp, model, meta)
        write_json(tmp / "metrics.json", metrics)
        shell = Transformer(model.cfg)
        for step in steps:
            folder = tmp / CKPT_DIR / f"step{step}"
            folder.mkdir(parents=True)
            shell.load_tl_state_dict(snapshots.weights[step])
            save_model(folder, shell, {**meta, "step": step, "checkpoint": True, "final_step": meta["step"]})
        (tmp / STATE_DIR).mkdir()
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp / STATE_DIR / "state.safetensors"))
        write_json(tmp / STATE_DIR / "state.json", state_meta)


def optimizer_tensors(model: Transformer, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """AdamW moments and step counts by parameter name."""
    out = {}
    for name in model.tl_state_dict():
        st = opt.state.get(model.param(name), {})
        for key in ("exp_avg", "exp_avg_sq", "step"):
            if key in st:
                out[f"opt/{key}/{name}"] = torch.as_tensor(st[key]).detach().cpu().reshape(-1)
    return out


def _read_state(folder: Path) -> tuple[dict[str, torch.Tensor], Any]:
    """``state/state.safetensors`` and ``state/state.json`` of a run; one-line errors if absent or corrupt."""
    path, meta_path = folder / STATE_DIR / "state.safetensors", folder / STATE_DIR / "state.json"
    if not path.is_file() or not meta_path.is_file():
        raise ToolkitError(f"no training state in {folder / STATE_DIR}; cannot resume (train without --resume)")
    try:
        return load_file(str(path)), json.loads(meta_path.read_text())
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ToolkitError(f"corrupt training state in {folder / STATE_DIR}: {e}") from None


def load_run(folder: Path, model: Transformer, opt: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restores weights and optimizer from a run folder for ``--resume``.

    Returns:
        (state.json contents, the remaining state tensors such as generator states).

    Raises:
        ToolkitError: missing, corrupt or mis-shaped files (one line).
    """
    folder = Path(folder)
    saved, _ = load_artifact(folder, make_hint="train it first without --resume")
    check_compatible(model.cfg, saved.cfg, f"checkpoint {folder}")
    tensors, state_meta = _read_state(folder)
    device = next(model.parameters()).device
    with torch.no_grad():
        model.load_tl_state_dict({k: v.to(device) for k, v in saved.tl_state_dict().items()})
    for name in model.tl_state_dict():
        p = model.param(name)
        keys = {k: f"opt/{k}/{name}" for k in ("exp_avg", "exp_avg_sq", "step")}
        if not all(v in tensors for v in keys.values()):
            continue  # a parameter never updated (e.g. resumed at step 0)
        try:
            opt.state[p] = {"step": tensors[keys["step"]].reshape(()).clone(),
                            "exp_avg": tensors[keys["exp_avg"]].reshape(p.shape).to(device),
                            "exp_avg_sq": tensors[keys["exp_avg_sq"]].reshape(p.shape).to(device)}
        except RuntimeError as e:
            raise ToolkitError(f"corrupt training state in {folder / STATE_DIR}: {e}") from None
    return state_meta, {k: v for k, v in tensors.items() if not k.startswith("opt/")}


def load_snapshots(folder: Path, snapshots: Snapshots, max_step: int) -> None:
    """Reads back the checkpoints of an earlier run so a resumed run can still select among them."""
    ckpts = Path(folder) / CKPT_DIR
    if not ckpts.is_dir():
        return
    for sub in sorted(ckpts.iterdir()):
        if sub.name.startswith("step") and sub.name[4:].isdigit() and int(sub.name[4:]) <= max_step:
            model, _ = load_artifact(sub)
            snapshots.weights[int(sub.name[4:])] = model.tl_state_dict()


def check_run(folder: Path) -> None:
    """Validates a run folder for ``--resume`` before anything is trained or written.

    Raises:
        ToolkitError: a missing, truncated or corrupt model, state file or state JSON.
    """
    folder = Path(folder)
    load_artifact(folder, make_hint="train it first without --resume")
    tensors, meta = _read_state(folder)
    if "sampler" not in tensors or not isinstance(meta, dict) or not {"step", "curve", "checks"} <= set(meta):
        raise ToolkitError(f"incomplete training state in {folder / STATE_DIR}; cannot resume")
