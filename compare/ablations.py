"""Head ablations, scored with metrics that do not saturate.

Three modes, all at ``blocks.{l}.attn.hook_z``:

* ``zero``: the head's output set to 0 (off the data distribution);
* ``mean``: its mean output at each position, over inputs where that
  position is real (pads excluded);
* ``resample``: its output on another input of at least the same length,
  drawn at random (Chan et al.'s resampling; stays on the data distribution).

A constant answer scores well on a skewed task (about 94% of MIU's
per-prefix verdicts on uniform strings are False), so the damage is measured
by *balanced accuracy* (chance = 1 / number of output classes) and by the
mean logit difference of the correct class (its logit minus the largest
other one), both with bootstrap CIs over inputs.

Shapes: B inputs, T positions, H heads, K d_head, N rows.
"""

from __future__ import annotations

import numpy as np
import torch

from compare.activations import Dataset, run_cached
from compare.outputs import IGNORE, OutputReadout
from compare.results import AblationResult, Ablations, Head, Metrics
from compare.stats import balanced_accuracy, bootstrap
from learned.model import Transformer


def z_statistics(model: Transformer, data: Dataset, seed: int, keep: tuple[str, ...] = ()
                 ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], dict[str, torch.Tensor]]:
    """Per layer: the mean ``hook_z`` per position over real positions ``[T, H, K]``, and a resampled
    ``hook_z`` ``[B, T, H, K]`` (each input's from a random input at least as long); and the clean run's
    activations named in ``keep`` (``{hook: [B, T, ...]}``), from the same forward pass."""
    names = [f"blocks.{l}.attn.hook_z" for l in range(model.cfg.n_layers)]
    _, cache = run_cached(model, data.ids, names + [k for k in keep if k not in names])
    pad = model.cfg.vocab.index(model.cfg.pad_token)
    real = (data.ids != pad).to(cache[names[0]].dtype)[:, :, None, None]  # [B, T, 1, 1]
    lengths = (data.ids != pad).sum(1).numpy()
    rng = np.random.default_rng(seed)
    order = np.argsort(lengths, kind="stable")
    donor = np.empty(len(lengths), dtype=np.int64)
    for i in range(len(lengths)):  # a random input at least as long (itself if it is the longest)
        longer = order[np.searchsorted(lengths[order], lengths[i]):]
        donor[i] = rng.choice(longer)
    means = {l: (cache[n] * real).sum(0) / real.sum(0).clamp(min=1) for l, n in enumerate(names)}
    resampled = {l: cache[n][torch.from_numpy(donor)] for l, n in enumerate(names)}
    return means, resampled, {k: cache[k] for k in keep}


def ablation_hooks(heads: list[Head], mode: str, means: dict[int, torch.Tensor],
                   resampled: dict[int, torch.Tensor], rows: torch.Tensor | None = None) -> dict:
    """Hooks replacing the given heads' ``hook_z`` (``rows``: which inputs of the resampled table are run)."""
    by_layer: dict[int, list[int]] = {}
    for l, h in heads:
        by_layer.setdefault(l, []).append(h)

    def make(layer: int, hs: list[int]):
        def hook(z: torch.Tensor, name: str) -> torch.Tensor:  # z: [B, T, H, K]
            z = z.clone()
            for h in hs:
                if mode == "zero":
                    z[:, :, h] = 0.0
                elif mode == "mean":
                    z[:, :, h] = means[layer][: z.shape[1], h]
                else:
                    donor = resampled[layer] if rows is None else resampled[layer][rows]
                    z[:, :, h] = donor[:, : z.shape[1], h]
            return z
        return hook
    return {f"blocks.{l}.attn.hook_z": make(l, hs) for l, hs in by_layer.items()}


def metrics(model: Transformer, data: Dataset, seed: int, readout: OutputReadout, hooks: dict | None = None,
            start: tuple[str, torch.Tensor] | None = None, keep: tuple[str, ...] = ()
            ) -> tuple[Metrics, dict[str, torch.Tensor]]:
    """Balanced accuracy, the correct output's margin (``readout.margin``) and plain accuracy over the rows;
    and the activations named in ``keep``. ``start``: run from that residual (``Transformer.forward``)."""
    logits, kept = run_cached(model, data.ids, keep, hooks=hooks, start=start)
    rows = (torch.from_numpy(data.row_input), torch.from_numpy(data.row_pos))
    target = torch.full(data.ids.shape, IGNORE, dtype=torch.long)
    target[rows] = torch.from_numpy(data.outputs)
    ids = data.ids.cpu()
    diff = readout.margin(logits.cpu(), ids, target)[rows].numpy()
    pred = readout.predict(logits.cpu(), ids)[rows].numpy()
    bal = bootstrap(np.zeros(len(pred)), data.group, seed, stat=balanced_accuracy(data.outputs, pred))
    return Metrics(bal, bootstrap(diff, data.group, seed), float((pred == data.outputs).mean())), kept


def run_ablations(model: Transformer, data: Dataset, heads: list[Head],
                  groups: dict[str, list[Head]], seed: int, readout: OutputReadout,
                  modes: tuple[str, ...] = ("zero", "mean", "resample")) -> Ablations:
    """Every head alone and each named group of heads, in each of ``modes``."""
    means, resampled, _ = z_statistics(model, data, seed)
    # The clean run keeps each layer's input, and an ablation starts at its first ablated layer: the layers
    # before it are the clean run's, computed the same way (bit for bit), so they are not run again.
    resid_pre = tuple(f"blocks.{l}.hook_resid_pre" for l in range(model.cfg.n_layers))
    clean, inputs = metrics(model, data, seed, readout, keep=resid_pre)
    chance = 1.0 / len(np.unique(data.outputs))

    def one(hs: list[Head], mode: str) -> AblationResult:
        first = resid_pre[min(l for l, _ in hs)] if hs else None
        m = metrics(model, data, seed, readout, ablation_hooks(hs, mode, means, resampled),
                    start=(first, inputs[first]))[0] if hs else clean
        return AblationResult(heads=list(hs), mode=mode, metrics=m,
                              drop=clean.balanced_accuracy.value - m.balanced_accuracy.value)

    per_head = [one([h], mode) for h in heads for mode in modes]
    grouped = [one(hs, mode) for hs in groups.values() for mode in modes]
    return Ablations(clean, chance, per_head, grouped)
