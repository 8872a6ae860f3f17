"""Cross-validated linear readouts (probes) of every compiled variable, with scikit-learn.

A categorical variable is read by multinomial ``LogisticRegression``, a
numerical one by ``Ridge`` (scored by R²). Folds are the dataset's
``GroupKFold`` folds (``PredefinedSplit``), so no input string is on both
sides. Features are *whitened* inside each fold's pipeline (``Whitener``:
centre, rotate to the residual's principal axes, scale each to unit
variance, drop directions without variance); a readout then does not change
when the residual stream is mapped by any invertible matrix, which the
disguised-copy controls rely on.

Every score is an ``Estimate`` with a bootstrap CI over input strings, on all
rows and on the rows where the variable is live. Baselines: the majority
class on the same rows, untrained networks of the same shape (filled in by
``compare.pipeline``) and a control task (Hewitt & Liang 2019: the
variable's labels reassigned at random per (token, position) type).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import PredefinedSplit
from sklearn.pipeline import make_pipeline

from compare.activations import Dataset, VariableInfo
from compare.results import HookReadout
from compare.stats import N_BOOT, Estimate, bootstrap, r2

EIG_TOL = 1e-9  # whitening keeps directions with variance above EIG_TOL * the largest


class Whitener(TransformerMixin, BaseEstimator):
    """Centre and whiten: ``z = (x - mean) @ V / sqrt(λ)`` over the directions with variance."""

    def __init__(self, tol: float = EIG_TOL):
        self.tol = tol

    def fit(self, x: np.ndarray, y=None) -> "Whitener":
        self.mean_ = x.mean(0)
        vals, vecs = np.linalg.eigh(np.cov(x - self.mean_, rowvar=False, bias=True).reshape(x.shape[1], -1))
        keep = vals > self.tol * max(float(vals.max()), 1e-300)
        self.components_ = vecs[:, keep] / np.sqrt(vals[keep])  # [D, r]
        self.inverse_ = (vecs[:, keep] * np.sqrt(vals[keep])).T  # [r, D]: z @ inverse_ + mean = x (on the support)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) @ self.components_


def make_probe(encoding: str, max_iter: int):
    """The probe for one variable: whitening, then multinomial logistic regression or ridge."""
    if encoding == "categorical":
        return make_pipeline(Whitener(), LogisticRegression(C=1.0, max_iter=max_iter, tol=1e-4))
    return make_pipeline(Whitener(), Ridge(alpha=1e-3))


@dataclasses.dataclass
class Fitted:
    """A readout's held-out predictions and its per-fold models (for head-write checks)."""

    pred: np.ndarray          # [N] held-out class index or value
    models: list              # one fitted pipeline per fold
    fold: np.ndarray          # [N] fold of each row


def cross_fit(x: np.ndarray, y: np.ndarray, fold: np.ndarray, encoding: str, max_iter: int) -> Fitted:
    """Held-out predictions for every row: each fold predicted by a probe fitted on the others."""
    pred = np.zeros(len(y), dtype=y.dtype)
    models = []
    for train, test in PredefinedSplit(fold).split():
        if encoding == "categorical" and len(np.unique(y[train])) < 2:
            model = DummyClassifier(strategy="most_frequent")
        else:
            model = make_probe(encoding, max_iter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x[train], y[train])
        pred[test] = model.predict(x[test])
        models.append(model)
    return Fitted(pred, models, fold)


def predict_held_out(fitted: Fitted, x: np.ndarray) -> np.ndarray:
    """Applies each fold's model to its own held-out rows of new residuals ``x`` (e.g. after an ablation)."""
    out = np.zeros_like(fitted.pred)
    for k, model in enumerate(fitted.models):
        rows = fitted.fold == k
        if rows.any():
            out[rows] = model.predict(x[rows])
    return out


def score(info: VariableInfo, truth: np.ndarray, pred: np.ndarray, groups: np.ndarray, mask: np.ndarray,
          seed: int, ci: bool = True) -> Estimate:
    """Accuracy (categorical) or R² (numerical) on the rows in ``mask``, with a CI over groups (unless ``ci``
    is off: then the bounds are nan)."""
    if not mask.any():
        return Estimate.empty()
    stat = None if info.encoding == "categorical" else r2(truth[mask], pred[mask])
    values = (truth[mask] == pred[mask]).astype(float) if stat is None else np.zeros(int(mask.sum()))
    return bootstrap(values, groups[mask], seed, stat=stat, n_boot=N_BOOT if ci else 0)


def majority(info: VariableInfo, truth: np.ndarray, mask: np.ndarray) -> float:
    """Majority-class accuracy on the rows in ``mask`` (0 for a numerical variable's R²)."""
    if info.encoding != "categorical" or not mask.any():
        return 0.0
    return float(np.bincount(truth[mask]).max() / mask.sum())


def read_out(data: Dataset, x: np.ndarray, info: VariableInfo, hook: str, seed: int, max_iter: int,
             labels: np.ndarray | None = None, ci: bool = True) -> tuple[HookReadout, Fitted]:
    """Cross-validated readout of ``info`` (or of other ``labels``, e.g. the control task) from ``x`` ``[N, D]``."""
    truth = data.targets[info.name] if labels is None else labels
    fitted = cross_fit(x, truth, data.fold, info.encoding, max_iter)
    live = data.live[info.name]
    everything = np.ones(len(truth), dtype=bool)
    return HookReadout(hook, score(info, truth, fitted.pred, data.group, everything, seed, ci),
                       score(info, truth, fitted.pred, data.group, live, seed, ci),
                       majority(info, truth, everything), majority(info, truth, live)), fitted
