"""Whole-residual similarity: linear CKA and linear maps from learned to compiled.

* ``cka_matrix``: linear CKA (Kornblith et al. 2019) between every compiled
  residual hook and every learned one, on the same rows.
* ``map_decoding``: at each hook, an affine least-squares map and an orthogonal
  Procrustes map from the learned residual to the compiled one (fit on some
  folds, applied to held-out rows, folds grouped by input string); the mapped residual is then read with the
  *compiled labels* (argmax over a variable's block ``count_I:0..10``, or the
  value of a numerical variable's single dimension), with no new readout.
  A variable counts as decodable through the map at accuracy (or R²) >= 0.95.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.linalg import orthogonal_procrustes
from sklearn.metrics import r2_score
from sklearn.model_selection import PredefinedSplit

from compare.activations import Dataset, VariableInfo

DECODABLE = 0.95


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA between ``[N, D1]`` and ``[N, D2]`` (1 = same up to rotation and scale)."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    hsic = np.linalg.norm(y.T @ x) ** 2
    norm = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(hsic / norm) if norm > 0 else 0.0


def cka_matrix(a: dict[str, np.ndarray], b: dict[str, np.ndarray], hooks_a: list[str],
               hooks_b: list[str] | None = None) -> np.ndarray:
    """``[len(hooks_a), len(hooks_b)]``: entry (i, j) is CKA(a[hooks_a[i]], b[hooks_b[j]]) over all rows.

    The two models may differ in depth (``hooks_b``, default ``hooks_a``) and in width.
    """
    hooks_b = hooks_a if hooks_b is None else hooks_b
    ca = {h: a[h] - a[h].mean(0) for h in hooks_a}
    cb = {h: b[h] - b[h].mean(0) for h in hooks_b}
    na = {h: np.linalg.norm(x.T @ x) for h, x in ca.items()}
    nb = {h: np.linalg.norm(x.T @ x) for h, x in cb.items()}
    return np.array([[np.linalg.norm(cb[g].T @ ca[h]) ** 2 / (na[h] * nb[g]) if na[h] * nb[g] > 0 else 0.0
                      for g in hooks_b] for h in hooks_a])


def decode_with_labels(x: np.ndarray, info: VariableInfo) -> np.ndarray:
    """Reads a variable from compiled-coordinate residuals ``[N, D]`` by its labelled block."""
    block = x[:, list(info.dims)]
    return block.argmax(-1) if info.encoding == "categorical" else block[:, 0]


def _label_class_index(info: VariableInfo) -> np.ndarray:
    """For each label of a categorical block, the index of its value in ``info.classes`` (-1 if unseen)."""
    names = {str(c): i for i, c in enumerate(info.classes)}
    return np.array([names.get(lab.split(":", 1)[1], -1) for lab in info.labels])


def decoding_score(x: np.ndarray, info: VariableInfo, truth: np.ndarray) -> float:
    """Accuracy (categorical) or R² (numerical) of ``decode_with_labels`` against the truth."""
    dec = decode_with_labels(x, info)
    if info.encoding == "categorical":
        return float((_label_class_index(info)[dec] == truth).mean())
    return float(r2_score(truth, dec))


def procrustes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    """``scipy.linalg.orthogonal_procrustes(a, b)``: the rotation ``r`` [d, d] minimising ``|a @ r - b|`` and the
    sum of the singular values of ``a.T @ b``. Where LAPACK's default SVD (gesdd) does not converge, which it
    did on compiled ``miu_dfa.fractions``' residuals at one benchmark seed, the same SVD by gesvd instead."""
    try:
        return orthogonal_procrustes(a, b)
    except np.linalg.LinAlgError:
        u, s, vt = scipy.linalg.svd((b.T @ a).T, lapack_driver="gesvd")  # as orthogonal_procrustes does
        return u @ vt, float(s.sum())


def _fit_map(src: np.ndarray, dst: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Affine map ``src @ w + b ≈ dst``: least squares, or an orthogonal Procrustes rotation with one scale."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    if kind == "lstsq":
        w = scipy.linalg.lstsq(src - mu_s, dst - mu_d, cond=1e-10, lapack_driver="gelsy")[0]  # gelsd's SVD can fail here
    else:
        w, s = procrustes(src - mu_s, dst - mu_d)
        w = w * (s / max(float(((src - mu_s) ** 2).sum()), 1e-300))
    return w, mu_d - mu_s @ w


def map_decoding(compiled: dict[str, np.ndarray], learned: dict[str, np.ndarray], data: Dataset) -> dict:
    """Maps learned -> compiled at every hook (fit on the other folds, applied to each held-out fold,
    folds grouped by input string) and decodes every variable with the compiled labels.

    Returns:
        ``{"lstsq"|"procrustes": {hook: {"r2": float, "variables": {var: score},
        "fraction_decodable": float}}}``; only variables the compiled model holds
        at that hook are counted. Needs residuals of the same width (else ``{}``).
    """
    out: dict = {}
    if compiled[data.resid_hooks[0]].shape[1] != learned[data.resid_hooks[0]].shape[1]:
        return out
    for kind in ("lstsq", "procrustes"):
        out[kind] = {}
        for i, hook in enumerate(data.resid_hooks):
            src, dst = learned[hook], compiled[hook]
            mapped = np.zeros_like(dst)
            for train, test in PredefinedSplit(data.fold).split():
                w, b = _fit_map(src[train], dst[train], kind)
                mapped[test] = src[test] @ w + b
            r2 = float(r2_score(dst, mapped, multioutput="variance_weighted")) if dst.var(0).sum() > 0 else 0.0
            present = [v for v in data.variables if v.written_after <= i]
            scores = {v.name: decoding_score(mapped, v, data.targets[v.name]) for v in present}
            frac = float(np.mean([s >= DECODABLE for s in scores.values()])) if scores else float("nan")
            out[kind][hook] = {"r2": r2, "variables": scores, "fraction_decodable": frac}
    return out
