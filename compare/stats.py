"""Uncertainty: bootstrap confidence intervals and decisions taken on their bounds.

Every figure ``compare/`` reports is an ``Estimate``: the point value, a 95%
bootstrap interval and the number of units behind it. Resampling is over
*groups* (input strings), never over rows, because rows of one string are
not independent. An intervention pair has two strings, its base and its
source, and sources repeat across pairs: ``bootstrap(..., groups2=...)``
resamples both sets of strings at once (each pair weighted by how often its
base string and its source string were drawn).

Strata with fewer than ``MIN_CI_N`` units get no interval (``Estimate.lo`` and
``hi`` are nan): the report prints the count instead.

A decision against a threshold is three-valued (``Tri``): ``YES`` when the
lower bound clears it, ``NO`` when the upper bound stays below it, and
``UNDECIDED`` otherwise; a point estimate near a threshold decides nothing.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Callable

import numpy as np

N_BOOT = 500
LEVEL = 0.95
MIN_CI_N = 5   # no interval for fewer units than this


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap interval.

    Attributes:
        value: the statistic on all units (nan if there are none).
        lo, hi: the 2.5% and 97.5% bootstrap quantiles.
        n: number of rows (or pairs) behind it.
    """

    value: float
    lo: float
    hi: float
    n: int

    @classmethod
    def empty(cls) -> "Estimate":
        return cls(math.nan, math.nan, math.nan, 0)

    @property
    def defined(self) -> bool:
        return self.n > 0 and math.isfinite(self.value)

    @property
    def has_ci(self) -> bool:
        return self.defined and math.isfinite(self.lo) and math.isfinite(self.hi)

    def fmt(self, nd: int = 2) -> str:
        """``0.93 [0.90, 0.95]``, ``0.75 (n=4)`` without an interval, or ``n/a``."""
        if not self.defined:
            return "n/a"
        if not self.has_ci:
            return f"{self.value:.{nd}f} (n={self.n})"
        return f"{self.value:.{nd}f} [{self.lo:.{nd}f}, {self.hi:.{nd}f}]"

    def widened(self, lo: float, hi: float) -> "Estimate":
        """The same estimate with its interval stretched to cover ``[lo, hi]`` (e.g. the spread of restarts)."""
        if not self.has_ci:
            return self
        return dataclasses.replace(self, lo=min(self.lo, lo), hi=max(self.hi, hi))


class Tri(enum.Enum):
    YES = "yes"
    NO = "no"
    UNDECIDED = "undecided"


def at_least(est: Estimate, threshold: float) -> Tri:
    """``YES`` if the whole interval is at or above ``threshold``, ``NO`` if it is below, else undecided."""
    if not est.defined:
        return Tri.NO
    if est.lo >= threshold:
        return Tri.YES
    if est.hi < threshold:
        return Tri.NO
    return Tri.UNDECIDED


def _draw_counts(n_groups: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_boot, G]`` how often each group is drawn in each resample (with replacement)."""
    picks = rng.integers(0, n_groups, size=(n_boot, n_groups)) + (np.arange(n_boot) * n_groups)[:, None]
    return np.bincount(picks.ravel(), minlength=n_boot * n_groups).reshape(n_boot, n_groups).astype(np.float64)


def bootstrap(values: np.ndarray, groups: np.ndarray | None = None, seed: int = 0,
              stat: "Stat | None" = None, n_boot: int = N_BOOT, groups2: np.ndarray | None = None) -> Estimate:
    """Bootstrap interval of a statistic (default: the mean of ``values``) over groups.

    Whole groups are resampled. A statistic is computed from per-group sums of a few
    per-row columns (``Stat``), so each resample costs one small matrix product. With
    ``groups2`` (the source strings of intervention pairs) both groupings are resampled
    independently and each row weighted by the product of its two draw counts.

    Args:
        values: ``[N]`` per-row values (hits as 0/1, logit differences, ...).
        groups: ``[N]`` group of each row. ``None``: each row its own group.
        seed: seeds the resampling.
        stat: a ``Stat`` (``r2``, ``balanced_accuracy``); default the mean of ``values``.
        n_boot: number of resamples.
        groups2: ``[N]`` a second grouping resampled at the same time (pairs: base and source strings).

    Returns:
        An ``Estimate``; with fewer than ``MIN_CI_N`` rows, or ``n_boot=0``, without an interval.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return Estimate.empty()
    stat = stat or Stat(np.stack([values, np.ones_like(values)], 1), lambda t: t[..., 0] / t[..., 1])
    groups = np.arange(len(values)) if groups is None else np.asarray(groups)
    rng = np.random.default_rng(seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        point = float(stat.combine(stat.columns.sum(0)))
        if len(values) < MIN_CI_N or n_boot <= 0:
            return Estimate(point, math.nan, math.nan, len(values))
        uniq, inverse = np.unique(groups, return_inverse=True)
        if groups2 is None:
            sums = np.zeros((len(uniq), stat.columns.shape[1]))
            np.add.at(sums, inverse, stat.columns)  # [G, q] per-group totals
            boots = stat.combine(_draw_counts(len(uniq), n_boot, rng) @ sums)
        else:
            uniq2, inverse2 = np.unique(np.asarray(groups2), return_inverse=True)
            weights = (_draw_counts(len(uniq), n_boot, rng)[:, inverse]
                       * _draw_counts(len(uniq2), n_boot, rng)[:, inverse2])  # [n_boot, N]
            boots = stat.combine(weights @ stat.columns)
    boots = boots[np.isfinite(boots)]
    if not len(boots) or not np.isfinite(point):
        return Estimate(point, math.nan, math.nan, len(values))
    lo, hi = np.quantile(boots, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return Estimate(point, float(lo), float(hi), len(values))


@dataclasses.dataclass
class Stat:
    """A statistic of resampled data: per-row ``columns`` ``[N, q]`` whose totals ``combine`` maps to the value."""

    columns: np.ndarray
    combine: Callable[[np.ndarray], np.ndarray]


def r2(truth: np.ndarray, pred: np.ndarray) -> Stat:
    """R² of ``pred`` against ``truth``."""
    cols = np.stack([truth, truth ** 2, (truth - pred) ** 2, np.ones_like(truth)], 1)

    def combine(t: np.ndarray) -> np.ndarray:
        total = t[..., 1] - t[..., 0] ** 2 / t[..., 3]
        return np.where(total > 1e-12, 1.0 - t[..., 2] / np.where(total > 1e-12, total, 1.0), np.nan)
    return Stat(cols, combine)


def balanced_accuracy(truth: np.ndarray, pred: np.ndarray) -> Stat:
    """Mean per-class recall (classes absent from a resample are left out)."""
    classes = np.unique(truth)
    onehot = (truth[:, None] == classes[None, :]).astype(np.float64)  # [N, C]
    cols = np.concatenate([onehot * (truth == pred)[:, None], onehot], 1)

    def combine(t: np.ndarray) -> np.ndarray:
        hit, n = t[..., :len(classes)], t[..., len(classes):]
        return np.nanmean(np.where(n > 0, hit / np.where(n > 0, n, 1.0), np.nan), axis=-1)
    return Stat(cols, combine)
