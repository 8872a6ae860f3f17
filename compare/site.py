"""``Site``: where an interchange intervention runs, as one object.

A site is one model at one residual hook on the shared inputs: the whitened ``Space`` there, what the
layers wrote at every row (``xt``), the clean residual of every input (where a patched run starts) and
the readout of the program's output. Given pairs, it derives each pair's ``delta`` (source minus base)
and base residual itself, so the functions of ``compare.interventions`` are called with one argument
list, here, instead of eight arguments passed through every caller.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from compare.activations import Dataset
from compare.interventions import Pairs, Space, das, iia, null_iia, patched_outputs
from compare.outputs import OutputReadout
from learned.model import Transformer


@dataclasses.dataclass(frozen=True)
class Site:
    model: Transformer
    data: Dataset
    hook: str
    space: Space
    xt: np.ndarray             # [N, D] what the layers wrote by ``hook`` at every row
    full: torch.Tensor         # [B, T, D] the clean residual at ``hook`` of every input
    readout: OutputReadout

    def delta(self, pairs: Pairs) -> np.ndarray:
        """``[P, D]`` source minus base of what the layers wrote, per pair."""
        return self.xt[pairs.source] - self.xt[pairs.base]

    def base(self, pairs: Pairs) -> torch.Tensor:
        """``[P, T, D]`` the base inputs' clean residual at the hook."""
        return self.full[torch.from_numpy(self.data.row_input[pairs.base])]

    def iia(self, pairs: Pairs, proj_z: np.ndarray) -> float:
        """IIA of the swap ``proj_z`` ``[r, r]`` (whitened coordinates) on ``pairs`` (nan without pairs)."""
        return iia(self.model, self.data, pairs, self.hook, self.delta(pairs), self.space, proj_z,
                   self.base(pairs), self.readout)

    def outputs(self, pairs: Pairs, proj_z: np.ndarray) -> torch.Tensor:
        """``[P, T]`` the output ids with the swap ``proj_z`` applied at each pair's position."""
        if not len(pairs):
            return torch.zeros((0, self.data.ids.shape[1]), dtype=torch.long)
        return patched_outputs(self.model, self.data, pairs, self.hook, self.delta(pairs), self.space.lift(proj_z),
                               self.base(pairs), self.readout)

    def unpatched(self, pairs: Pairs) -> torch.Tensor:
        """``[P, T]`` the model's own output ids on each base, run from the hook with nothing swapped."""
        zero = np.zeros((len(pairs), self.model.cfg.d_model))
        return patched_outputs(self.model, self.data, pairs, self.hook, zero, np.zeros((zero.shape[1],) * 2),
                               self.base(pairs), self.readout)

    def das(self, pairs: Pairs, init: np.ndarray, dim: int, steps: int, lr: float, seed: int) -> np.ndarray:
        """``[r, dim]`` an orthonormal DAS basis trained on ``pairs`` (``compare.interventions.das``)."""
        return das(self.model, self.data, pairs, self.hook, self.delta(pairs), self.space, init, dim, steps, lr,
                   seed, self.base(pairs), self.readout)

    def null(self, pairs: Pairs, dim: int, n: int, seed: int) -> tuple[float, float]:
        """Mean and 95th percentile IIA of ``n`` random ``dim``-dimensional subspaces on ``pairs``."""
        return null_iia(self.model, self.data, pairs, self.hook, self.delta(pairs), self.space, dim, n, seed,
                        self.base(pairs), self.readout)
