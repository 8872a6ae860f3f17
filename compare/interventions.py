"""Interchange interventions: pairs, whitened subspaces, IIA, DAS and the random-subspace null.

Interchange intervention on variable ``v`` at residual hook ``h``: take a
base row and a source row, and in the base run replace the base residual's
component inside a subspace by the source's. The
expected output is the program's counterfactual, ``spec.run(base,
interventions={v: {p: value of v in the source}})``. IIA (Geiger et al.) is
the share of pairs whose output equals it at every position.

* **Pairs** are *effective* (the counterfactual output differs from the base
  output) and drawn from rows where ``v`` is live, bases and sources from the
  same split. Half take the source at the base's position, half at another
  position (with a value ``v`` takes at the base's position): only those tell
  a count from a fraction of the prefix. Splits: fit (DAS training), validation (every choice) and test
  (reported). For a causal program only positions from p on are scored:
  earlier ones cannot change. Splits are the dataset's folds, grouped by input string, so a
  test pair shares no base prefix, source prefix or position with training.
* **What is swapped**: only what the layers wrote, ``x~ = x - W_E[token] -
  W_pos[position]``, so a swap never moves the raw token or position.
* **Whitened coordinates** (``Space``): ``x~`` is centred and whitened on the
  training rows. Every method here is then invariant to any invertible map of
  the residual stream, not only to rotations.
* **Candidates**: the *pattern* swap, from a joint linear forward model of all
  program variables (where each varies: Haufe et al. 2014, not a probe's
  filter weights), which moves the variable's patterns and leaves the other
  variables' alone; and DAS (Geiger et al. 2023), an orthonormal basis
  (QR of a free matrix, seeded locally: nothing draws from torch's global
  generator) trained on the fit pairs with a scale-free loss and stopped
  early on a held-out part of them, from several starts.
* **Null**: random subspaces of the same dimension in the same coordinates.

Shapes: P pairs, T positions, D d_model, r whitened rank, k subspace dimension.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from compare.activations import Dataset, VariableInfo
from compare.outputs import OutputReadout
from compare.readouts import Whitener
from compare.stats import Estimate, bootstrap
from learned.model import Transformer
from rasp_programs.spec import ProgramSpec

IGNORE = -100


@dataclasses.dataclass
class Pairs:
    """Effective intervention pairs of one variable in one split, each with three predictions.

    Attributes:
        base, source: ``[P]`` row indices.
        target: ``[P, T]`` the counterfactual output ids under the variable's hypothesis (``IGNORE`` at BOS,
            pads and, for a causal program, before the base position).
        value: ``[P]`` the value set (the source's), as a string.
        cross: ``[P]`` bool: the source is at another position than the base.
        copy: ``[P, T]`` "copy source": the base's output with the source's own output at the base position
            (what a swap of the output alone would give).
        keep: ``[P, T]`` "no change": the base's own output.
        distinguishing: ``[P]`` bool: ``target`` differs from both ``copy`` and ``keep`` on a scored position,
            so only a swap that carries the variable itself (not the output it feeds) gets the pair right.
    """

    base: np.ndarray
    source: np.ndarray
    target: torch.Tensor
    value: np.ndarray
    cross: np.ndarray
    copy: torch.Tensor
    keep: torch.Tensor
    distinguishing: np.ndarray

    def __len__(self) -> int:
        return len(self.base)

    def values_moved(self, values: list) -> set[str]:
        """The variable's values these pairs move from or to: the bases' (``values`` by row) and the sources'."""
        return {str(values[b]) for b in self.base.tolist()} | {str(x) for x in self.value.tolist()}

    def subset(self, mask: np.ndarray) -> "Pairs":
        """The pairs where ``mask`` ``[P]`` is true."""
        t = torch.from_numpy(np.flatnonzero(mask))
        return Pairs(self.base[mask], self.source[mask], self.target[t], self.value[mask], self.cross[mask],
                     self.copy[t], self.keep[t], self.distinguishing[mask])

    def chance(self) -> tuple[float, float]:
        """IIA of the two trivial hypotheses on these pairs: (copy source, no change); nan without pairs."""
        if not len(self):
            return float("nan"), float("nan")
        return float(agrees(self.copy, self.target).mean()), float(agrees(self.keep, self.target).mean())


class _Outputs:
    """The program's output ids at every position of each input, computed once per input."""

    def __init__(self, spec: ProgramSpec, data: Dataset):
        self.spec, self.data, self._rows = spec, data, {}

    def row(self, i: int) -> list[int]:
        if i not in self._rows:
            out = self.spec.run(self.data.inputs[i])[self.spec.output]
            self._rows[i] = [self.data.output_vocab.index(str(y)) for y in out]
        return self._rows[i]


def _as_row(data: Dataset, ids: list[int], pos: int) -> list[int]:
    """``[T]`` model-position row of output ids (``IGNORE`` at BOS, pads and, causal, before ``pos``)."""
    row = [IGNORE] * data.ids.shape[1]
    row[1:1 + len(ids)] = ids
    if data.causal:  # positions before p cannot change; a model's own errors there are not the swap's
        row[1:1 + pos] = [IGNORE] * pos
    return row


def target_row(spec: ProgramSpec, data: Dataset, b: int, var: str, value: Any,
               effective: bool = True) -> list[int] | None:
    """``[T]`` the counterfactual output ids of base row ``b`` with ``var`` set to ``value`` at its position
    (``IGNORE`` at BOS, pads and, for a causal program, before the position); ``None`` when the
    counterfactual is undefined or (``effective``) equals the base output."""
    tokens, pos = data.inputs[data.row_input[b]], int(data.row_pos[b]) - 1
    try:
        cf = spec.run(tokens, {var: {pos: value}})[spec.output]
    except Exception:  # noqa: BLE001 - an undefined counterfactual (sort's duplicate target) is skipped
        return None
    if effective and cf == spec.run(tokens)[spec.output]:
        return None
    return _as_row(data, [data.output_vocab.index(str(y)) for y in cf], pos)


def make_pairs(spec: ProgramSpec, data: Dataset, var: VariableInfo, split: str, n: int,
               rng: np.random.Generator, max_tries: int = 30, cross_share: float = 0.5,
               fitted: set[str] | None = None) -> Pairs:
    """Up to ``n`` distinct effective pairs for ``var``: bases from ``split``'s live rows, sources from *all* its rows.

    Sources are not restricted to live rows: when they are, the counterfactual under ``var`` is often the
    source's own output, and a swap that only copies the output scores as well as the variable (on MIU,
    IIA 1.00 for ``count_I``). Every pair carries the predictions of "copy source" and "no change";
    about half the pairs of a variable other than the output are *distinguishing* (its hypothesis differs
    from both) when the split has enough of them.

    About ``cross_share`` of the pairs take the source from *another position* than the base, with a value
    the variable takes at the base's position somewhere in the data (so the swap stays in its range): at one
    position a count and a fraction of the prefix determine each other; only across positions do they
    predict different counterfactuals. The rest take the source from the base's position.

    Bases and sources take only values seen in fitting: ``fitted``, the values of the fit pairs (their
    bases' and sources'), or by default those the variable takes on the fit split. A value never seen in
    fitting has no pattern (nor whitened variance) to swap along, and a subspace fitted by DAS never learnt
    to move it, whatever the model.
    """
    vals = data.values[var.name]
    if fitted is None:
        fitted = {str(vals[r]) for r in np.flatnonzero(data.split("fit"))}
    seen = np.array([str(x) in fitted for x in vals])
    bases = np.flatnonzero(data.split(split) & data.live[var.name] & seen)
    everyone = np.flatnonzero(data.split(split) & seen)
    outputs = _Outputs(spec, data)
    at_pos: dict[int, set[str]] = {}
    for x, p in zip(vals, data.row_pos.tolist()):
        at_pos.setdefault(p, set()).add(str(x))
    positions = np.unique(data.row_pos[bases])
    same_pos = {p: everyone[data.row_pos[everyone] == p] for p in positions}
    names = np.array([str(vals[s]) for s in everyone])
    other_pos = {p: everyone[(data.row_pos[everyone] != p) & np.isin(names, list(at_pos[p]))] for p in positions}
    is_output = var.name == spec.output  # the output's own hypothesis *is* "copy source": no pair distinguishes
    tried: set = set()
    rows: list[tuple] = []  # (base, source, target, copy, keep, value, cross, distinguishing)
    for is_cross, want in ((True, round(n * cross_share)), (False, n - round(n * cross_share))):
        pool = other_pos if is_cross else same_pos
        quota = 0 if is_output else want // 2
        dist: list[tuple] = []
        plain: list[tuple] = []
        for tries in range(max_tries * max(want, 1)):
            if len(dist) >= quota and len(dist) + len(plain) >= want or not len(bases):
                break
            if tries >= 10 * want and not dist and len(plain) >= want:
                break  # no distinguishing pair in sight: the variable acts only as the output does
            b = int(rng.choice(bases))
            p = int(data.row_pos[b])
            if not len(pool[p]):
                continue
            s = int(rng.choice(pool[p]))
            if (b, s) in tried or vals[s] == vals[b]:
                continue
            tried.add((b, s))
            target = target_row(spec, data, b, var.name, vals[s])
            if target is None:
                continue
            base_out = outputs.row(int(data.row_input[b]))
            copied = list(base_out)
            copied[p - 1] = int(data.outputs[s])
            copy = _as_row(data, copied, p - 1)
            is_dist = not is_output and any(t != c for t, c in zip(target, copy) if t != IGNORE)
            (dist if is_dist else plain).append(
                (b, s, target, copy, _as_row(data, base_out, p - 1), str(vals[s]), is_cross, is_dist))
        dist = dist[:want]
        rows += dist + plain[:want - len(dist)]
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    t = data.ids.shape[1]

    def column(k: int, dtype) -> np.ndarray:
        return np.array([x[k] for x in rows], dtype=dtype)

    def tensor(k: int) -> torch.Tensor:
        return torch.tensor([x[k] for x in rows], dtype=torch.long).reshape(len(rows), t)
    return Pairs(column(0, np.int64), column(1, np.int64), tensor(2), np.array([x[5] for x in rows]),
                 column(6, bool), tensor(3), tensor(4), column(7, bool))


# --------------------------------------------------------------------------- spaces --

@dataclasses.dataclass
class Space:
    """Whitened coordinates of what the layers wrote at one hook.

    The input is ``x~ = x - (W_E[token] + W_pos[position])``: the residual without the direct
    embedding of its own token and position, so a swap never moves the raw token. Then
    ``z = (x~ - mean) @ white`` ``[r]``, and ``x~ = z @ unwhite + mean`` on the support.
    """

    mean: np.ndarray      # [D]
    white: np.ndarray     # [D, r]
    unwhite: np.ndarray   # [r, D]

    @property
    def m(self) -> int:
        return self.white.shape[1]

    def z(self, xt: np.ndarray) -> np.ndarray:
        return (xt - self.mean) @ self.white

    def lift(self, proj_z: np.ndarray) -> np.ndarray:
        """``[D, D]`` residual-space map of a ``[r, r]`` map in whitened coordinates: ``x + delta @ P``."""
        return self.white @ proj_z @ self.unwhite


def make_space(xt_train: np.ndarray) -> Space:
    """The ``Space`` at one hook from training rows' ``x~`` ``[N, D]``, in canonical whitened coordinates.

    Whitening fixes coordinates only up to a rotation (the whitened covariance is the identity, and a
    compiled residual's spectrum is degenerate), and which rotation ``eigh`` returns depends on the input
    basis. Anything drawn at random in those coordinates (null subspaces, DAS starts) would then differ
    between a model and its disguised copy. So the whitened axes are rotated onto a basis built from the
    data themselves: Gram-Schmidt over the training rows in order, which maps along with any invertible
    map of the residual stream.
    """
    w = Whitener().fit(xt_train)
    q = _canonical_axes((xt_train - w.mean_) @ w.components_)  # [r, r] orthogonal
    return Space(w.mean_, w.components_ @ q, q.T @ w.inverse_)


def _canonical_axes(z: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """``[r, r]`` orthonormal axes from Gram-Schmidt over the rows of ``z`` ``[N, r]`` in order (rows that add
    less than ``tol`` of their norm are skipped); equivariant: ``z @ S`` gives ``S.T @`` the same axes."""
    r = z.shape[1]
    axes = np.zeros((r, 0))
    for row in z:
        if axes.shape[1] == r:
            break
        rest = row - axes @ (axes.T @ row)
        norm = np.linalg.norm(rest)
        if norm > tol * max(np.linalg.norm(row), 1e-12):
            rest = rest - axes @ (axes.T @ rest)  # re-orthogonalise once for accuracy
            axes = np.concatenate([axes, (rest / np.linalg.norm(rest))[:, None]], axis=1)
    if axes.shape[1] < r:  # too few independent rows (cannot happen for a whitened sample): complete by QR
        q = np.linalg.qr(np.concatenate([axes, np.eye(r)], axis=1))[0]
        axes = q[:, :r] * np.sign(np.sum(q[:, :r] * np.concatenate([axes, np.eye(r)], axis=1)[:, :r], 0) + 1e-30)
    return axes


def design(data: Dataset, rows: np.ndarray, names: list[str]) -> tuple[np.ndarray, dict[str, slice]]:
    """Centred regressors ``[n, C]`` of the named variables on ``rows`` (one-hot classes, or the value),
    constant columns dropped, and each variable's columns."""
    cols, parts, start = {}, [], 0
    for name in names:
        y = data.targets[name][rows]
        info = data.var(name)
        block = (np.eye(len(info.classes))[y] if info.encoding == "categorical" else y[:, None].astype(float))
        block = block[:, block.std(0) > 0]
        parts.append(block - block.mean(0))
        cols[name] = slice(start, start + block.shape[1])
        start += block.shape[1]
    return (np.concatenate(parts, axis=1) if parts else np.zeros((len(rows), 0))), cols


def dependent(data: Dataset, rows: np.ndarray, a: str, b: str) -> bool:
    """Whether, on ``rows``, either variable is a function of the other (one value of one for each of the other)."""
    x, y = data.targets[a][rows], data.targets[b][rows]

    def function_of(u: np.ndarray, w: np.ndarray) -> bool:  # is w a function of u?
        pairs = np.unique(np.stack([u, w], 1), axis=0)
        return len(pairs) == len(np.unique(u))
    return function_of(x, y) or function_of(y, x)


def forward_patterns(space: Space, xt: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``B`` ``[C, r]``: the joint linear forward model ``z ≈ g @ B`` (least squares) of the whitened
    activations ``xt`` ``[n, D]`` on the design ``g`` ``[n, C]`` (``design``); the rows of a variable's
    columns are its patterns (Haufe et al. 2014)."""
    z = space.z(xt)
    return np.linalg.lstsq(g, z - z.mean(0), rcond=None)[0]


def pattern_swap(space: Space, xt: np.ndarray, g: np.ndarray, cols: dict[str, slice], var: str,
                 tol: float = 1e-6, held: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Where ``var`` lives, from a joint linear forward model of every program variable.

    ``z ≈ g @ B`` (``forward_patterns``; ``g`` from ``design`` over ``var`` and the other variables of the
    model): the rows of ``B`` for ``var`` are its patterns. The swap moves ``z`` along ``var``'s patterns by
    the change in ``var``'s coordinate in the basis of its own patterns and the others', so a correlated
    variable is not dragged along.

    ``held`` ``[r, h]``: more directions to hold fixed, the patterns of variables that vary between a
    pair's base and source although not on the rows ``xt`` (a variable constant where ``var`` is live, but
    not where sources are drawn from). Whitened coordinates are not orthogonal between correlated
    variables, so without them a source's change in such a variable would leak into ``var``'s coordinate.

    Returns:
        ``V`` ``[r, k]`` an orthonormal basis of ``var``'s patterns and ``P`` ``[r, r]`` the swap
        (``z + (z_src - z) @ P``); ``k = 0`` if ``var`` has no pattern here.
    """
    r = space.m
    if g.shape[1] == 0 or cols[var].stop == cols[var].start or r == 0:
        return np.zeros((r, 0)), np.zeros((r, r))
    b = forward_patterns(space, xt, g)  # [C, r]
    own = _orth(b[cols[var]].T, tol)  # [r, k]
    keep = [c for name, sl in cols.items() if name != var for c in range(sl.start, sl.stop)]
    parts = [b[keep].T] + ([held] if held is not None and held.size else [])
    other = _orth(np.concatenate(parts, axis=1), tol)  # [r, o]
    basis = np.concatenate([own, other], axis=1)  # [r, k + o]
    coords = np.linalg.pinv(basis, rcond=1e-8)  # [k + o, r]: coordinates along own and the others' patterns
    return own, coords[:own.shape[1]].T @ own.T


def embed_overlap(space: Space, basis: np.ndarray, embed: np.ndarray) -> float:
    """Share of the residual directions a swap along ``basis`` ``[r, k]`` writes that lie in the span of the
    token and position embeddings ``embed`` ``[D, e]`` (Euclidean; descriptive)."""
    if basis.shape[1] == 0:
        return 0.0
    w = _orth((basis.T @ space.unwhite).T, 1e-9)  # [D, k'] orthonormal write directions
    return float(np.linalg.norm(embed.T @ w) ** 2 / max(w.shape[1], 1))


def _orth(a: np.ndarray, tol: float) -> np.ndarray:
    """Orthonormal basis of the column space of ``a`` (columns with singular value > tol * largest)."""
    if a.size == 0:
        return np.zeros((a.shape[0], 0))
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    if not len(s) or s[0] <= 1e-12:
        return np.zeros((a.shape[0], 0))
    return u[:, s > tol * s[0]]


def random_basis(m: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random ``[m, k]`` orthonormal basis."""
    q, r = np.linalg.qr(rng.standard_normal((m, k)))
    return q * np.sign(np.diagonal(r))


# ---------------------------------------------------------------------------- IIA --

def _patched_logits(model: Transformer, data: Dataset, pairs: Pairs, hook: str, step: torch.Tensor,
                    base: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[P, T, O]`` of the base inputs with ``x + step`` at each pair's position, and their ids ``[P, T]``.

    ``step`` ``[P, D]`` is ``delta @ P``, with ``delta = x~_src - x~_base`` what the layers wrote in the
    source minus the base; ``base`` ``[P, T, D]`` the bases' clean residual at ``hook``, where the run starts.
    """
    ids = data.ids[torch.from_numpy(data.row_input[pairs.base])]
    pos = torch.from_numpy(data.row_pos[pairs.base])
    idx = torch.arange(len(pairs))

    def swap(x: torch.Tensor, name: str) -> torch.Tensor:  # x: [P, T, D]
        return x.index_put((idx, pos), x[idx, pos] + step)
    return model(ids, hooks={hook: swap}, start=(hook, base)), ids


def patched_outputs(model: Transformer, data: Dataset, pairs: Pairs, hook: str, delta: np.ndarray,
                    proj: np.ndarray, base: torch.Tensor, readout: OutputReadout) -> torch.Tensor:
    """``[P, T]`` the program's output ids read (by ``readout``) from the patched runs."""
    dtype = model.param("embed.W_E").dtype
    with torch.no_grad():  # the step in float64: the lifted map can have large entries
        logits, ids = _patched_logits(model, data, pairs, hook, torch.as_tensor(delta @ proj, dtype=dtype), base)
    return readout.predict(logits, ids)


def agrees(outputs: torch.Tensor, target: torch.Tensor, like: torch.Tensor | None = None) -> np.ndarray:
    """``[P]`` bool: ``outputs`` ``[P, T]`` equal ``target`` at every scored position (not ``IGNORE`` in ``target``,
    or in ``like`` when given)."""
    mask = (target if like is None else like) == IGNORE
    return ((outputs == target) | mask).all(-1).numpy()


def hits(model: Transformer, data: Dataset, pairs: Pairs, hook: str, delta: np.ndarray,
         proj: np.ndarray, base: torch.Tensor, readout: OutputReadout) -> np.ndarray:
    """``[P]`` bool: the patched output (read by ``readout``) equals the counterfactual at every scored position."""
    if not len(pairs):
        return np.zeros(0, dtype=bool)
    return agrees(patched_outputs(model, data, pairs, hook, delta, proj, base, readout), pairs.target)


def iia(model: Transformer, data: Dataset, pairs: Pairs, hook: str, delta: np.ndarray, space: Space,
        proj_z: np.ndarray, base: torch.Tensor, readout: OutputReadout) -> float:
    """IIA of the swap ``proj_z`` ``[r, r]`` in whitened coordinates (nan without pairs)."""
    if not len(pairs) or not proj_z.any():
        return float("nan")
    return float(hits(model, data, pairs, hook, delta, space.lift(proj_z), base, readout).mean())


def orthonormal(a: torch.Tensor) -> torch.Tensor:
    """``[m, k]`` orthonormal columns spanning ``a`` ``[m, k]`` (QR with a fixed sign): DAS's parametrisation.

    Unlike ``torch.nn.utils.parametrizations.orthogonal``, nothing here draws from torch's global random
    generator, so a DAS run depends only on its own seed.
    """
    q, r = torch.linalg.qr(a)
    return q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(q.dtype)


def seeded(*keys: int) -> int:
    """One 32-bit seed from several integers (config seed, variable, hook, dimension, restart)."""
    return int(np.random.SeedSequence([abs(int(k)) for k in keys]).generate_state(1)[0])


def das(model: Transformer, data: Dataset, train: Pairs, hook: str, delta: np.ndarray, space: Space,
        init: np.ndarray, dim: int, steps: int, lr: float, seed: int, base: torch.Tensor,
        readout: OutputReadout, holdout: float = 0.2, patience: int = 5) -> np.ndarray:
    """Distributed alignment search: an orthonormal ``[r, dim]`` basis trained on ``train`` pairs.

    The swap is the orthogonal projection onto it in whitened coordinates. It starts from ``init``
    (padded with directions drawn from ``seed``), is trained with the readout's scale-free loss on the
    fit pairs of 80% of the base strings, and stops early on the other 20%: it returns the basis with
    the best held-out IIA seen (the start included; ties go to the later one), after ``patience`` steps
    without a gain or once every fit and held-out pair is right.
    """
    m = space.m
    dim = max(1, min(dim, m))
    rng = np.random.default_rng(seed)
    start = init[:, :dim]
    if start.shape[1] < dim:
        extra = rng.standard_normal((m, dim - start.shape[1]))
        extra -= start @ (start.T @ extra)
        start = np.concatenate([start, extra], axis=1)
    start = orthonormal(torch.as_tensor(start, dtype=torch.float64)).numpy()
    if not len(train) or steps <= 0:
        return start
    groups = data.group[train.base]
    uniq = np.unique(groups)
    held = (np.isin(groups, rng.choice(uniq, size=max(1, round(holdout * len(uniq))), replace=False))
            if len(uniq) >= 5 else np.zeros(len(train), dtype=bool))
    fit = train.subset(~held) if held.any() else train
    check = train.subset(held) if held.any() else train
    dtype = model.param("embed.W_E").dtype
    white = torch.as_tensor(space.white, dtype=dtype)      # [D, m]
    unwhite = torch.as_tensor(space.unwhite, dtype=dtype)  # [m, D]
    d_fit = torch.as_tensor(delta[~held] if held.any() else delta, dtype=dtype) @ white      # [P, m]
    d_check = torch.as_tensor(delta[held] if held.any() else delta, dtype=dtype) @ white
    b_fit = base[torch.from_numpy(np.flatnonzero(~held))] if held.any() else base
    b_check = base[torch.from_numpy(np.flatnonzero(held))] if held.any() else base
    param = torch.nn.Parameter(torch.as_tensor(start, dtype=dtype))
    opt = torch.optim.Adam([param], lr=lr)

    def held_iia(u: torch.Tensor) -> float:
        with torch.no_grad():
            logits, ids = _patched_logits(model, data, check, hook, d_check @ u @ (u.T @ unwhite), b_check)
            return float(agrees(readout.predict(logits, ids), check.target).mean())
    best_score, best = held_iia(param.detach()), start
    stale = 0
    for _ in range(steps):
        if stale >= patience:
            break
        u = orthonormal(param)  # [m, dim]
        logits, ids = _patched_logits(model, data, fit, hook, d_fit @ u @ (u.T @ unwhite), b_fit)
        if best_score >= 1.0 and agrees(readout.predict(logits.detach(), ids), fit.target).all():
            break  # every fit pair and every held-out pair right: nothing left to learn
        loss = readout.loss(logits, ids, fit.target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        u = orthonormal(param.detach())
        score = held_iia(u)
        if score >= best_score:  # ties go to the more trained basis
            stale = 0 if score > best_score else stale + 1
            best_score, best = score, u.double().numpy()
        else:
            stale += 1
    return best


def probe_directions(z: np.ndarray, y: np.ndarray, encoding: str, max_iter: int) -> np.ndarray:
    """``[r, c]`` orthonormal directions a linear probe of ``y`` reads from whitened ``z`` ``[n, r]`` (a DAS start).

    In whitened coordinates a probe's weights and the variable's patterns coincide up to the probe's
    regularisation, so this is the "probe direction" start of METHODS.md.
    """
    from sklearn.linear_model import LogisticRegression, Ridge  # local: only DAS starts need it

    if z.shape[1] == 0 or len(np.unique(y)) < 2:
        return np.zeros((z.shape[1], 0))
    if encoding == "categorical":
        w = LogisticRegression(max_iter=max_iter, tol=1e-4).fit(z, y).coef_  # [C or 1, r]
    else:
        w = Ridge(alpha=1e-3).fit(z, y).coef_[None, :]
    return _orth(np.atleast_2d(w).T, 1e-6)


def null_iia(model: Transformer, data: Dataset, pairs: Pairs, hook: str, delta: np.ndarray, space: Space,
             dim: int, n: int, seed: int, base: torch.Tensor, readout: OutputReadout) -> tuple[float, float]:
    """Mean and 95th percentile of the IIA of ``n`` random ``dim``-dimensional subspaces.

    nan when ``dim`` is the whole space (everything the layers wrote there): every subspace of that
    dimension is the same one, so there is no null to compare with.
    """
    if not len(pairs) or dim == 0 or dim >= space.m:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        u = random_basis(space.m, min(dim, space.m), rng)
        vals.append(iia(model, data, pairs, hook, delta, space, u @ u.T, base, readout))
    return float(np.mean(vals)), float(np.quantile(vals, 0.95))


def stratified(h: np.ndarray, keys: np.ndarray, groups: np.ndarray, seed: int,
               sources: np.ndarray | None = None) -> dict[str, Estimate]:
    """IIA per key (position, value) with a CI over base (and ``sources``: source) input strings; no CI below
    ``MIN_CI_N`` pairs."""
    return {str(k): bootstrap(h[keys == k].astype(float), groups[keys == k], seed,
                              groups2=None if sources is None else sources[keys == k])
            for k in sorted(set(keys.tolist()), key=lambda k: (len(str(k)), str(k)))}


def pairs_summary(pairs: dict[str, Pairs]) -> dict[str, Any]:
    return {k: len(v) for k, v in pairs.items()}
