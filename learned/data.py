"""Training data: an informative mix of inputs, labelled by the program itself.

Which inputs are drawn is the task's ``DataMix`` (``spec.task.data``), shared
by every program of the task: named pools of inputs, the share of draws from
each, and whether rows are reweighted so every final-position output class
gets the same share (labels balanced). Every input is labelled by
``spec.reference`` at every position (the task's own output, never a compiled
model's activations).

  * MIU (``rasp_programs.miu_task.MIU_MIX``): well-formed strings with every
    residue of the ``I`` count, derived theorems, hard negatives one edit from
    a theorem, and uniform strings; labels balanced.
  * Other tasks (``rasp_programs.spec.GENERIC_MIX``) draw half from ``uniform``
    and half from ``narrow``: tokens drawn from a random sub-alphabet of
    1..|vocab| letters, so inputs with many repeats (``a a a a a``: the
    histogram's rarest count, 4 of 1,024 uniform strings of length 5) are
    common rather than rare.

Everything here is seeded by its own generators (numpy for building the
pools, a torch generator for drawing batches), separate from the model's
initialisation seed. Batches are index draws into a table that lives on the
training device, so on CUDA no data crosses the bus during training.

Shapes: N rows in the table, B batch, T = 1 + max_len positions (BOS first).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch

from learned.artifact import encode
from learned.model import ModelConfig
from rasp_programs.errors import ToolkitError
from rasp_programs.spec import ProgramSpec, Tokens

IGNORE = -100  # target id for BOS and padding: no loss, not scored


@dataclasses.dataclass
class Table:
    """Labelled inputs with sampling weights.

    Attributes:
        ids: ``[N, T]`` token ids, BOS first, padded at the end.
        targets: ``[N, T]`` output ids; ``IGNORE`` at BOS and pads.
        weights: ``[N]`` sampling probabilities (sum to 1).
        pools: ``[N]`` index into ``pool_names`` (where each row came from).
        pool_names: names of the pools.
    """

    ids: torch.Tensor
    targets: torch.Tensor
    weights: torch.Tensor
    pools: torch.Tensor
    pool_names: tuple[str, ...]

    def to(self, device: torch.device) -> "Table":
        return dataclasses.replace(self, ids=self.ids.to(device), targets=self.targets.to(device),
                                   weights=self.weights.to(device), pools=self.pools.to(device))


def label(spec: ProgramSpec, cfg: ModelConfig, inputs: Sequence[Tokens]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``[N, T]`` and the program's per-position output ids ``[N, T]``.

    The width is always ``cfg.n_ctx`` so tables of different lengths line up.
    """
    out_index = {v: i for i, v in enumerate(cfg.output_vocab)}
    ids = encode(cfg, [tuple(x) for x in inputs])  # [N, 1 + longest]
    ids = torch.nn.functional.pad(ids, (0, cfg.n_ctx - ids.shape[1]), value=cfg.vocab.index(cfg.pad_token))
    targets = torch.full(ids.shape, IGNORE, dtype=torch.long)
    rows = [[out_index[str(v)] for v in spec.reference(tuple(x))] for x in inputs]
    for r, row in enumerate(rows):
        targets[r, 1:1 + len(row)] = torch.tensor(row, dtype=torch.long)
    return ids, targets


def build_table(spec: ProgramSpec, cfg: ModelConfig, max_len: int, seed: int, pool_size: int = 8192,
                fixed_size: int | None = None) -> Table:
    """Builds the training table for ``spec`` with inputs of length ``<= max_len``.

    Args:
        spec: the program (labels come from ``spec.reference``).
        cfg: the model config (vocabularies, width).
        max_len: longest training input (a cut below the model's maximum trains
            on short strings only, for the length-generalisation experiment).
        seed: data seed (independent of the model seed).
        pool_size: strings drawn per pool.
        fixed_size: if given, keep only this many rows, drawn once from the
            mix (the grokking regime's small fixed training set); each is then
            drawn with equal probability.
    """
    rng = np.random.default_rng(seed)
    mix = spec.task.data
    pools = mix.pools(rng, spec.vocab, max_len, pool_size)
    names = tuple(pools)
    inputs = [x for name in names for x in pools[name]]
    which = torch.tensor([k for k, name in enumerate(names) for _ in pools[name]], dtype=torch.long)
    ids, targets = label(spec, cfg, inputs)
    weights = torch.tensor([mix.share(name) / len(pools[name]) for name in names for _ in pools[name]],
                           dtype=torch.float64)
    if mix.balance_final:
        weights = _balance(weights, _final_targets(targets))
    table = Table(ids, targets, weights / weights.sum(), which, names)
    if fixed_size is not None:
        if not 1 <= fixed_size <= len(inputs):
            raise ToolkitError(f"the fixed training set must have 1..{len(inputs)} inputs, got {fixed_size}")
        gen = torch.Generator().manual_seed(seed)
        keep = torch.multinomial(table.weights, fixed_size, replacement=False, generator=gen)
        table = Table(ids[keep], targets[keep], torch.full((fixed_size,), 1.0 / fixed_size, dtype=torch.float64),
                      which[keep], names)
    return table


def _final_targets(targets: torch.Tensor) -> torch.Tensor:
    """Output id at the last real position of each row: ``[N, T] -> [N]``."""
    last = (targets != IGNORE).sum(1)  # BOS is IGNORE, so this is the index of the last token
    return targets.gather(1, last[:, None]).squeeze(1)


def _balance(weights: torch.Tensor, final: torch.Tensor) -> torch.Tensor:
    """Rescales weights so each final-position class gets the same total mass."""
    out = weights.clone()
    classes = final.unique()
    for c in classes:
        mask = final == c
        out[mask] *= 1.0 / (len(classes) * weights[mask].sum())
    return out


class Sampler:
    """Draws batches from a table on the device, from its own seeded generator.

    ``state()`` / ``set_state()`` capture the generator so a resumed run draws
    exactly the batches the uninterrupted run would have drawn.
    """

    def __init__(self, table: Table, device: torch.device, seed: int):
        self.table = table.to(device)
        self.device = device
        self.cdf = torch.cumsum(self.table.weights, 0).to(torch.float64)  # [N]
        self.cdf[-1] = 1.0
        self.gen = torch.Generator(device=device).manual_seed(seed)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``size`` weighted draws with replacement: ids ``[B, T]``, targets ``[B, T]``."""
        u = torch.rand(size, generator=self.gen, device=self.device, dtype=torch.float64)
        rows = torch.searchsorted(self.cdf, u).clamp_(max=len(self.cdf) - 1)
        return self.table.ids[rows], self.table.targets[rows]

    def state(self) -> torch.Tensor:
        return self.gen.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.gen.set_state(state.cpu())


def describe(table: Table) -> dict:
    """Share of draws per pool and of final-position classes: the documented mix."""
    final = _final_targets(table.targets.cpu())
    w = table.weights.cpu()
    return {"rows": int(len(w)),
            "pool_share": {n: round(float(w[table.pools.cpu() == k].sum()), 4) for k, n in enumerate(table.pool_names)},
            "final_class_share": {int(c): round(float(w[final == c].sum()), 4) for c in final.unique()}}
