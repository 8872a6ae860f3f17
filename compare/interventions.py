"""Causal checks: interchange interventions (readout subspace and DAS) and head ablations.

Interchange intervention on variable ``v`` at residual hook ``hook``: pick a
base input, a position ``p`` and a source input at least ``p`` long; run the
source, take its residual at ``(hook, p)``, and in the base run replace the
component of the residual at ``(hook, p)`` inside the aligned subspace ``U``
(``[D, r]``, orthonormal) by the source's: ``x + (x_src - x) U Uᵀ``. The
expected output is the RASP program's counterfactual,
``spec.run(base, interventions={v: {p: value of v in the source at p}})``.

Pairs whose counterfactual is undefined in the program (an exception in
its plain-Python causal model, e.g. sort's ``target_pos`` set to a value
another position already has) are skipped; a variable with no usable pairs
gets IIA ``nan`` ("n/a"). Only *effective* pairs are used: the source's value differs from the base's
and the counterfactual output differs from the base output somewhere. A model
that ignores the intervention (or a constant model) therefore scores 0, not
the share of no-op pairs. IIA is the fraction of pairs whose decoded output
equals the counterfactual at every position.

DAS (Geiger et al., distributed alignment search): an orthonormal ``[D, r]``
basis (the first ``r`` columns of a rotation, as the Q factor of a free
matrix) trained by gradient descent on separate pairs to produce the
counterfactual outputs, starting from the readout subspace. The
rotation with the best IIA on the training pairs (checked every fifth of
the steps, the start included) is kept, and training stops once it reaches
1; IIA is reported on the test pairs.
"""

from __future__ import annotations

import dataclasses
import numpy as np
import torch
import torch.nn.functional as F

from compare.activations import Dataset, VariableInfo, at_rows, run_cached
from learned.model import Transformer
from rasp_programs.spec import ProgramSpec


@dataclasses.dataclass
class Pairs:
    """Base/source input indices, model position and counterfactual output ids ``[P, T]`` (-100: ignore)."""

    base: np.ndarray
    source: np.ndarray
    pos: np.ndarray
    target: torch.Tensor

    def take(self, sl: slice) -> "Pairs":
        return Pairs(self.base[sl], self.source[sl], self.pos[sl], self.target[sl])

    def __len__(self) -> int:
        return len(self.base)


def make_pairs(spec: ProgramSpec, data: Dataset, var: VariableInfo, n: int, rng: np.random.Generator,
               max_tries: int = 50) -> Pairs:
    """Up to ``n`` effective pairs for ``var`` (see module docstring), seeded by ``rng``."""
    lens = np.array([len(x) for x in data.inputs])
    runs: dict[int, dict[str, list]] = {}

    def run(i: int) -> dict[str, list]:
        if i not in runs:
            runs[i] = spec.run(data.inputs[i])
        return runs[i]

    width = data.ids.shape[1]
    base, source, pos, targets = [], [], [], []
    for _ in range(n * max_tries):
        if len(base) >= n:
            break
        b = int(rng.integers(len(data.inputs)))
        p = int(rng.integers(1, lens[b] + 1))
        pool = np.flatnonzero(lens >= p)
        s = int(pool[rng.integers(len(pool))])
        value = run(s)[var.name][p - 1]
        if value == run(b)[var.name][p - 1]:
            continue
        try:  # some counterfactuals are undefined, e.g. sort with two tokens sent to one place
            cf = spec.run(data.inputs[b], interventions={var.name: {p - 1: value}})[spec.output]
            ids = [data.output_vocab.index(str(y)) for y in cf]
        except (ValueError, IndexError, KeyError):
            continue
        if cf == run(b)[spec.output]:
            continue
        row = np.full(width, -100, dtype=np.int64)
        row[1:len(cf) + 1] = ids
        base.append(b), source.append(s), pos.append(p), targets.append(row)
    target = torch.from_numpy(np.stack(targets)) if targets else torch.zeros(0, width, dtype=torch.long)
    return Pairs(np.array(base, dtype=np.int64), np.array(source, dtype=np.int64),
                 np.array(pos, dtype=np.int64), target)


def _swap_hook(src: torch.Tensor, pos: torch.Tensor, basis: torch.Tensor):
    """Hook replacing the ``basis`` component at ``(row, pos[row])`` by the source's. src: ``[P, D]``."""
    idx = torch.arange(len(pos))

    def hook(x: torch.Tensor, name: str) -> torch.Tensor:  # x: [P, T, D]
        x = x.clone()
        here = x[idx, pos]  # [P, D]
        x[idx, pos] = here + ((src - here) @ basis) @ basis.T
        return x

    return hook


def _source_resid(model: Transformer, data: Dataset, pairs: Pairs, hook: str) -> torch.Tensor:
    """``[P, D]`` the source's residual at ``hook`` and the pair's position."""
    _, cache = run_cached(model, data.ids[torch.from_numpy(pairs.source)], [hook])
    return cache[hook][torch.arange(len(pairs)), torch.from_numpy(pairs.pos)]


def _logits(model: Transformer, data: Dataset, pairs: Pairs, hook: str, src: torch.Tensor,
            basis: torch.Tensor) -> torch.Tensor:
    ids = data.ids[torch.from_numpy(pairs.base)]
    return model(ids, hooks={hook: _swap_hook(src, torch.from_numpy(pairs.pos), basis)})  # [P, T, O]


def iia(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of pairs whose prediction equals the target at every scored position."""
    if len(target) == 0:
        return float("nan")
    ok = (logits.argmax(-1) == target) | (target == -100)
    return float(ok.all(-1).double().mean())


@torch.no_grad()
def readout_iia(model: Transformer, data: Dataset, pairs: Pairs, hook: str, basis: np.ndarray) -> float:
    """IIA when swapping the readout subspace ``basis`` ``[D, r]`` (nan without pairs)."""
    if len(pairs) == 0:
        return float("nan")
    u = torch.from_numpy(basis).to(data.ids.device, dtype=model.param("embed.W_E").dtype)
    return iia(_logits(model, data, pairs, hook, _source_resid(model, data, pairs, hook), u), pairs.target)


def das(model: Transformer, data: Dataset, train: Pairs, test: Pairs, hook: str, init: np.ndarray,
        dim: int, steps: int, lr: float, seed: int) -> dict:
    """Trains a DAS subspace on ``train`` pairs, returns IIA on ``test`` pairs and the basis.

    The subspace is the orthonormal Q factor of a free ``[D, dim]`` matrix
    (the first ``dim`` columns of a rotation), initialised at ``init`` (padded
    with seeded random columns when it has fewer than ``dim``).

    Returns:
        ``{"iia", "train_iia", "dim", "steps", "basis"}`` (basis ``[D, dim]`` numpy).
    """
    if len(train) == 0 or len(test) == 0:
        return {"iia": float("nan"), "train_iia": float("nan"), "dim": dim, "steps": 0, "basis": init}
    rng = np.random.default_rng(seed)
    d = model.cfg.d_model
    dtype = model.param("embed.W_E").dtype
    start = init[:, :dim]
    if start.shape[1] < dim:
        start = np.concatenate([start, 0.1 * rng.standard_normal((d, dim - start.shape[1]))], axis=1)
    w = torch.tensor(start, dtype=dtype, requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)
    src_train = _source_resid(model, data, train, hook)
    src_test = _source_resid(model, data, test, hook)

    def basis() -> torch.Tensor:
        return torch.linalg.qr(w)[0]

    def train_iia(u: torch.Tensor) -> float:
        with torch.no_grad():
            return iia(_logits(model, data, train, hook, src_train, u), train.target)

    best_u = basis().detach()
    best = train_iia(best_u) if len(train) else float("nan")
    check = max(1, steps // 5)
    for step in range(1, (steps if len(train) else 0) + 1):
        if best >= 1.0:  # nothing left to learn on the training pairs
            break
        logits = _logits(model, data, train, hook, src_train, basis())
        loss = F.cross_entropy(logits.flatten(0, 1), train.target.flatten(), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % check == 0 or step == steps:
            u = basis().detach()
            score = train_iia(u)
            if score > best:
                best, best_u = score, u
    with torch.no_grad():
        return {"iia": iia(_logits(model, data, test, hook, src_test, best_u), test.target),
                "train_iia": best, "dim": dim, "steps": steps, "basis": best_u.numpy()}


# ---------------------------------------------------------------------------
# Head ablations and what a head writes
# ---------------------------------------------------------------------------

def _ablate_hook(heads: list[int], mode: str, z_mean: torch.Tensor | None):
    def hook(z: torch.Tensor, name: str) -> torch.Tensor:  # z: [B, T, H, K]
        z = z.clone()
        for h in heads:
            z[:, :, h] = 0.0 if mode == "zero" else z_mean[: z.shape[1], h]
        return z
    return hook


def ablation_hooks(heads: list[tuple[int, int]], mode: str, z_means: dict[int, torch.Tensor]) -> dict:
    """Hooks that zero- or mean-ablate the given ``(layer, head)``s at ``hook_z``."""
    by_layer: dict[int, list[int]] = {}
    for l, h in heads:
        by_layer.setdefault(l, []).append(h)
    return {f"blocks.{l}.attn.hook_z": _ablate_hook(hs, mode, z_means.get(l)) for l, hs in by_layer.items()}


def z_means(model: Transformer, data: Dataset) -> dict[int, torch.Tensor]:
    """Per layer, the mean ``hook_z`` over the dataset per position ``[T, H, K]``."""
    names = [f"blocks.{l}.attn.hook_z" for l in range(model.cfg.n_layers)]
    _, cache = run_cached(model, data.ids, names)
    return {l: cache[n].mean(0) for l, n in enumerate(names)}


def task_accuracy(model: Transformer, data: Dataset, hooks: dict | None = None) -> float:
    """Fraction of rows where the model's output equals the program's output."""
    logits, _ = run_cached(model, data.ids, [], hooks=hooks)
    pred = logits.argmax(-1)[torch.from_numpy(data.row_input), torch.from_numpy(data.row_pos)].numpy()
    return float((pred == data.outputs).mean())


def head_writes(model: Transformer, data: Dataset, readouts: dict, clean: dict[str, np.ndarray],
                layer: int, head: int, means: dict[int, torch.Tensor]) -> dict[str, float]:
    """Drop of every variable's readout score at the end of ``layer`` when the head is mean-ablated.

    Uses the readouts already fitted on the clean model (no refitting), on all
    rows of ``data`` (a small subset); ``clean``: ``{hook: [N, D]}`` clean residuals there.
    """
    hook = data.resid_hooks[2 * layer + 2]
    _, abl = run_cached(model, data.ids, [hook], hooks=ablation_hooks([(layer, head)], "mean", means))
    x_abl = at_rows(abl[hook], data)
    out = {}
    for v in data.variables:
        r = readouts[v.name][hook]
        truth = data.targets[v.name]
        out[v.name] = _score(r, v, clean[hook], truth) - _score(r, v, x_abl, truth)
    return out


def _score(r, v: VariableInfo, x: np.ndarray, truth: np.ndarray) -> float:
    pred = r.predict(x, v)
    if v.encoding == "categorical":
        return float((pred == truth).mean())
    var = float(((truth - truth.mean()) ** 2).sum())
    return 1.0 - float(((pred - truth) ** 2).sum()) / var if var > 0 else 0.0
