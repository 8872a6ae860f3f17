"""Cross-validated linear readouts of every compiled variable from a residual stream.

A categorical variable is read by a linear discriminant classifier (shared
within-class covariance, shrunk towards a multiple of the identity, class
priors in the bias), scored by accuracy against the majority class; it copes
with rare classes (MIU theorems are 5% of prefixes), where an argmax over a
least-squares one-hot regression falls back to the majority class. Variables
with at most three classes (the output, ``== 0`` / ``mod 2`` / ``mod 3``
coarsenings) are also read by a cross-validated multinomial logistic
regression, which does not assume equal class covariances (a learned model's
own unembedding can separate classes that LDA does not); their score is the
better of the two. A
numerical variable is read by affine ridge regression, scored by R² against
predicting the mean. Features are centred and divided by one global scale and
every penalty is isotropic, so a readout does not change when the residual
stream is rotated (the disguised-copy control relies on this).

The readout's row space (the column space of its weights ``[D, C]``) is the
learned subspace that carries the variable; its orthonormal basis is what the
interchange interventions swap.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from compare.activations import Dataset, VariableInfo

RANK_TOL = 1e-3  # singular values below RANK_TOL * largest do not count towards the subspace
SHRINK = 1e-3    # within-class covariance + SHRINK * mean variance * identity
LOGISTIC_MAX_CLASSES = 3  # variables with this few classes are also read by logistic regression


@dataclasses.dataclass
class Readout:
    """A fitted readout of one variable at one hook.

    Attributes:
        score: cross-validated accuracy (categorical) or R² (numerical).
        baseline: majority-class accuracy or 0 (R² of the mean).
        weight: ``[D, C]`` in raw residual coordinates (fit on all rows).
        bias: ``[C]``.
        basis: ``[D, r]`` orthonormal basis of the readout subspace.
        energy_dim: number of directions holding 99% of the squared singular values.
    """

    score: float
    baseline: float
    weight: np.ndarray
    bias: np.ndarray
    basis: np.ndarray
    energy_dim: int

    def predict(self, x: np.ndarray, info: VariableInfo) -> np.ndarray:
        """Class index (categorical) or value (numerical) for rows ``x`` ``[N, D]``."""
        y = x @ self.weight + self.bias
        return y.argmax(-1) if info.encoding == "categorical" else y[:, 0]

    def summary(self) -> dict:
        return {"score": self.score, "baseline": self.baseline, "dim": int(self.basis.shape[1]),
                "energy_dim": self.energy_dim}


def folds_of(n: int, k: int, seed: int) -> list[np.ndarray]:
    """A seeded split of ``range(n)`` into ``k`` test folds."""
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(f) for f in np.array_split(perm, k)]


def _targets(data: Dataset, rows: np.ndarray) -> tuple[np.ndarray, list[slice]]:
    """Stacked regression targets for all variables ``[n, sum C]`` and each variable's columns."""
    cols, parts, start = [], [], 0
    for v in data.readout_variables:
        y = data.targets[v.name][rows]
        if v.encoding == "categorical":
            part = np.eye(len(v.classes))[y]
        else:
            part = y[:, None].astype(np.float64)
        parts.append(part)
        cols.append(slice(start, start + part.shape[1]))
        start += part.shape[1]
    return np.concatenate(parts, axis=1), cols


def _ridge(x: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Affine ridge fit ``y ≈ x @ w + b`` with a rotation-invariant penalty; returns (w, b)."""
    mu, nu = x.mean(0), y.mean(0)
    xc = x - mu
    scale = float(np.sqrt((xc ** 2).sum(1).mean())) or 1.0
    xs = xc / scale
    gram = xs.T @ xs / len(xs)
    w = np.linalg.solve(gram + ridge * np.eye(len(gram)), xs.T @ (y - nu) / len(xs)) / scale
    return w, nu - mu @ w


def _lda_classifier(x: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear discriminant classifier ``argmax(x @ w + b)``; returns (w ``[D, C]``, b ``[C]``)."""
    mu = x.mean(0)
    xc = x - mu
    onehot = np.eye(n_classes)[y]  # [N, C]
    counts = onehot.sum(0)
    means = (onehot.T @ xc) / np.maximum(counts, 1)[:, None]
    resid = xc - means[y]
    within = resid.T @ resid / len(x)
    scale = float(np.trace(xc.T @ xc)) / len(x) / x.shape[1] or 1.0
    w = np.linalg.solve(within + SHRINK * scale * np.eye(x.shape[1]), means.T)  # [D, C]
    prior = np.where(counts > 0, np.log(np.maximum(counts, 1) / len(x)), -1e30)
    b = prior - 0.5 * np.einsum("cd,dc->c", means, w) - mu @ w
    return w, b


def _logistic(x: np.ndarray, ys: list[np.ndarray], ks: list[int], test_folds: list[np.ndarray],
              l2: float = 1e-4, iters: int = 50) -> list[np.ndarray]:
    """Cross-validated multinomial logistic regressions, one per target, fitted jointly (the loss is a sum).

    Returns, per target, a boolean ``[N]``: whether the held-out prediction is right.
    """
    import torch

    xc = x - x.mean(0)
    # whiten (rotation-equivariant, unlike per-dimension scaling): low-variance directions such as a
    # model's own logit direction get the same footing as high-variance ones
    vals, vecs = np.linalg.eigh(xc.T @ xc / len(xc))
    keep = vals > 1e-9 * max(float(vals.max()), 1e-300)
    xs = torch.from_numpy(xc @ (vecs[:, keep] / np.sqrt(vals[keep])))
    hits = [np.zeros(len(x), dtype=bool) for _ in ys]
    offsets = np.cumsum([0, *ks])
    for test in test_folds:
        train = torch.from_numpy(np.setdiff1d(np.arange(len(x)), test))
        w = torch.zeros(xs.shape[1] + 1, int(offsets[-1]), dtype=xs.dtype, requires_grad=True)
        feats = torch.cat([xs, torch.ones(len(xs), 1, dtype=xs.dtype)], 1)
        targets = [torch.from_numpy(y) for y in ys]
        opt = torch.optim.LBFGS([w], max_iter=iters, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            logits = feats[train] @ w
            loss = sum(torch.nn.functional.cross_entropy(logits[:, offsets[i]:offsets[i + 1]], t[train])
                       for i, t in enumerate(targets)) + l2 * (w[:-1] ** 2).sum()
            loss.backward()
            return loss
        opt.step(closure)
        with torch.no_grad():
            logits = feats[torch.from_numpy(test)] @ w
            for i, t in enumerate(ys):
                hits[i][test] = (logits[:, offsets[i]:offsets[i + 1]].argmax(-1).numpy() == t[test])
    return hits


def _score(info: VariableInfo, pred: np.ndarray, truth: np.ndarray) -> float:
    if info.encoding == "categorical":
        return float((pred.argmax(-1) == truth).mean())
    pred = pred[:, 0]
    var = float(((truth - truth.mean()) ** 2).sum())
    return 1.0 - float(((pred - truth) ** 2).sum()) / var if var > 0 else 0.0


def _basis(w: np.ndarray) -> tuple[np.ndarray, int]:
    u, s, _ = np.linalg.svd(w, full_matrices=False)
    if s.size == 0 or s[0] == 0:
        return np.zeros((w.shape[0], 0)), 0
    rank = int((s > RANK_TOL * s[0]).sum())
    energy = np.cumsum(s ** 2) / (s ** 2).sum()
    return u[:, :rank], int(np.searchsorted(energy, 0.99) + 1)


def fit_readouts(data: Dataset, resid: dict[str, np.ndarray], rows: np.ndarray, folds: int,
                 ridge: float, seed: int, logistic_iters: int = 50) -> dict[str, dict[str, Readout]]:
    """Fits every variable at every residual hook.

    Args:
        data: the dataset (variables and targets).
        resid: ``{hook: [N, D]}`` residuals at all rows.
        rows: the row indices to use (a seeded subset keeps it fast).
        folds: number of cross-validation folds.
        ridge: penalty relative to the (unit) mean squared feature norm.
        seed: seeds the fold split.
        logistic_iters: L-BFGS iterations of the logistic readouts (0: LDA only).

    Returns:
        ``{variable: {hook: Readout}}``, derived coarsenings included.
    """
    y, cols = _targets(data, rows)
    test_folds = folds_of(len(rows), folds, seed)
    out: dict[str, dict[str, Readout]] = {v.name: {} for v in data.readout_variables}
    few = [v for v in data.readout_variables if v.encoding == "categorical" and len(v.classes) <= LOGISTIC_MAX_CLASSES
           and logistic_iters > 0]
    for hook in data.resid_hooks:
        x = resid[hook][rows]
        logistic = dict(zip((v.name for v in few), _logistic(
            x, [data.targets[v.name][rows] for v in few], [len(v.classes) for v in few], test_folds,
            iters=logistic_iters))) if few else {}
        pred = np.zeros_like(y)
        for test in test_folds:
            train = np.setdiff1d(np.arange(len(rows)), test)
            w, b = _ridge(x[train], y[train], ridge)
            pred[test] = x[test] @ w + b
        w_all, b_all = _ridge(x, y, ridge)
        for v, c in zip(data.readout_variables, cols):
            truth = data.targets[v.name][rows]
            if v.encoding == "categorical":
                k = len(v.classes)
                hit = np.zeros(len(rows), dtype=bool)
                for test in test_folds:
                    train = np.setdiff1d(np.arange(len(rows)), test)
                    w, b = _lda_classifier(x[train], truth[train], k)
                    hit[test] = (x[test] @ w + b).argmax(-1) == truth[test]
                w, b = _lda_classifier(x, truth, k)
                score, base = float(hit.mean()), float(np.bincount(truth).max() / len(truth))
                if v.name in logistic:
                    score = max(score, float(logistic[v.name].mean()))
            else:
                w, b = w_all[:, c], b_all[c]
                score, base = _score(v, pred[:, c], truth), 0.0
            basis, edim = _basis(w - w.mean(1, keepdims=True) if v.encoding == "categorical" else w)
            out[v.name][hook] = Readout(score, base, w, b, basis, edim)
    return out


def best_hook(readouts: dict[str, Readout], hooks: list[str], start: int = 0, tol: float = 0.01,
              stop: int | None = None) -> str:
    """Earliest hook at index in ``[start, stop)`` whose score is within ``tol`` of the best there."""
    cand = hooks[start:stop] or hooks[start:start + 1]
    top = max(readouts[h].score for h in cand)
    return next(h for h in cand if readouts[h].score >= top - tol)


def lda_basis(x: np.ndarray, y: np.ndarray, n_classes: int, embed: np.ndarray,
              eps: float = 1e-6, tol: float = 1e-3) -> np.ndarray:
    """``[D, r]``: the directions that carry a categorical variable, for interventions.

    Regularised linear discriminant analysis on the residual with the
    embedding span ``embed`` ``[D, e]`` projected out: directions whose value
    is (nearly) a function of the variable (small within-class variance)
    and varies with it (between-class variance). Unlike the least-squares
    readout's row space, this does not spread onto other variables' features
    that are exact linear combinations of the same inputs (Tracr's one-hot
    blocks have many such dependencies). At most ``n_classes - 1`` directions,
    those with a between/within ratio >= ``tol`` times the largest.
    """
    from scipy.linalg import eigh

    d = x.shape[1]
    keep = np.eye(d) - embed @ embed.T
    xc = (x - x.mean(0)) @ keep  # [N, D]
    total = xc.T @ xc / len(xc)
    onehot = np.eye(n_classes)[y]
    counts = onehot.sum(0)
    means = (onehot.T @ xc) / np.maximum(counts, 1)[:, None]
    between = (means * counts[:, None]).T @ means / len(xc)  # [D, D]
    within = total - between
    scale = np.trace(total) / d or 1.0
    vals, vecs = eigh(between, within + eps * scale * np.eye(d))
    order = np.argsort(vals)[::-1][:max(int((counts > 0).sum()) - 1, 0)]
    vals, vecs = vals[order], vecs[:, order]
    if not len(vals) or vals[0] <= 0:
        return np.zeros((d, 0))
    vecs = keep @ vecs[:, vals >= tol * vals[0]]
    u, s, _ = np.linalg.svd(vecs, full_matrices=False)
    return u[:, s > 1e-9 * s[0]]
