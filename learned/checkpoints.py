"""Run folders: the trained model, its log-spaced checkpoints and the resume state.

    <artifacts>/<program>/learned/seed<k>/
        model.safetensors, model.json     the model at the last step (an artifact)
        metrics.json                      evaluation + training curve
        checkpoints/step<N>/              ~20 artifacts at log-spaced steps, 0 and final included
        state/state.safetensors           optimizer state tensors and data-generator state
        state/state.json                  step, training curve, timings, the rest of the
                                          optimizer's state_dict (for --resume)

Checkpoints are kept in memory during training at a dense geometric grid of
steps (cheap: the models are tiny) and only the ~20 nearest to an ideal
log-spaced grid up to the final step are written, so an early stop still
gives ~20 checkpoints spanning the whole run. The whole folder is written
atomically (``atomic_dir``): an interrupted write leaves the previous run.

The resume state is the optimizer's own ``state_dict()`` (any optimizer),
split without pickle into safetensors for its tensors and JSON for the rest,
and loaded back through ``load_state_dict``; on the CPU a resumed run is
bit-for-bit the uninterrupted one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable

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
              snapshots: Snapshots, steps: list[int], opt: torch.optim.Optimizer,
              tensors: dict[str, torch.Tensor], state_meta: dict[str, Any],
              checkpoint_meta: Callable[[Transformer], dict[str, Any]] | None = None) -> None:
    """Writes the whole run folder atomically (see the module docstring).

    Args:
        target: the run folder.
        model, meta, metrics: the model at the last step, its ``model.json`` extras, ``metrics.json``.
        snapshots, steps: the in-memory checkpoints and the steps to write.
        opt: the optimizer; its ``state_dict()`` is saved for ``--resume``.
        tensors: other resume state (e.g. the data generator's state).
        state_meta: JSON resume state (step, curve, ...).
        checkpoint_meta: extra ``model.json`` keys computed from a checkpoint's weights.
    """
    opt_json, opt_tensors = optimizer_state(model, opt)
    with atomic_dir(target) as tmp:
        save_model(tmp, model, meta)
        write_json(tmp / "metrics.json", metrics)
        shell = Transformer(model.cfg)
        for step in steps:
            folder = tmp / CKPT_DIR / f"step{step}"
            folder.mkdir(parents=True)
            shell.load_tl_state_dict(snapshots.weights[step])
            extra = checkpoint_meta(shell) if checkpoint_meta is not None else {}
            save_model(folder, shell, {**meta, **extra, "step": step, "checkpoint": True, "final_step": meta["step"]})
        (tmp / STATE_DIR).mkdir()
        save_file({k: v.detach().cpu().contiguous() for k, v in {**opt_tensors, **tensors}.items()},
                  str(tmp / STATE_DIR / "state.safetensors"))
        write_json(tmp / STATE_DIR / "state.json", {**state_meta, "optimizer": opt_json})


# -- the optimizer's own state_dict, without pickle --------------------------------
# Tensors go to safetensors under ``optimizer/<path>``; everything else stays in
# JSON, with tensors, tuples and non-string dict keys marked so the nested
# structure comes back exactly as ``state_dict()`` gave it.


def _pack(obj: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu()
        return {"__tensor__": path}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _pack(v, f"{path}/{k}", tensors) for k, v in obj.items()}
        return {"__items__": [[k, _pack(v, f"{path}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_pack(v, f"{path}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_pack(v, f"{path}/{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot save {type(obj).__name__} at {path} without pickle")


def _unpack(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_unpack(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {k: _unpack(v, tensors) for k, v in obj["__items__"]}
        return {k: _unpack(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v, tensors) for v in obj]
    return obj


def _param_names(model: Transformer, opt: torch.optim.Optimizer) -> list[list[str]]:
    """TransformerLens names of the optimizer's parameters, group by group, in its order."""
    by_id = {id(model.param(name)): name for name in model.tl_state_dict()}
    return [[by_id.get(id(p), "?") for p in group["params"]] for group in opt.param_groups]


def optimizer_state(model: Transformer, opt: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``opt.state_dict()`` as (JSON, ``{"optimizer/...": tensor}``), with the class and parameter names."""
    tensors: dict[str, torch.Tensor] = {}
    packed = _pack(opt.state_dict(), "optimizer", tensors)
    return {"class": type(opt).__name__, "param_names": _param_names(model, opt), "state_dict": packed}, tensors


def load_optimizer_state(folder: Path, model: Transformer, opt: torch.optim.Optimizer, saved: Any,
                         tensors: dict[str, torch.Tensor]) -> None:
    """Loads what ``optimizer_state`` wrote through ``opt.load_state_dict``.

    Raises:
        ToolkitError: another optimizer class, other parameters, or a corrupt state.
    """
    where = folder / STATE_DIR
    if not isinstance(saved, dict) or "state_dict" not in saved:
        raise ToolkitError(f"no optimizer state_dict in {where} (written by an older version?); "
                           f"train again without --resume")
    if saved.get("class") != type(opt).__name__:
        raise ToolkitError(f"the training state in {where} is for optimizer {saved.get('class')!r}, "
                           f"not {type(opt).__name__!r}; cannot resume")
    if saved.get("param_names") != _param_names(model, opt):
        raise ToolkitError(f"the optimizer state in {where} is for other parameters; cannot resume")
    try:
        opt.load_state_dict(_unpack(saved["state_dict"], tensors))
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise ToolkitError(f"corrupt optimizer state in {where}: {e}") from None


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
    load_optimizer_state(folder, model, opt, state_meta.get("optimizer"), tensors)
    return state_meta, {k: v for k, v in tensors.items() if not k.startswith("optimizer/")}


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
    if "optimizer" not in meta:
        raise ToolkitError(f"no optimizer state_dict in {folder / STATE_DIR} (written by an older version?); "
                           f"train again without --resume")
