"""The benchmark's two figures (matplotlib, Agg): scores per language and candidate; scores over training."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def heatmap(scores: dict[str, dict[str, float]], supported: dict[str, dict[str, int]],
            path: Path) -> dict[str, str]:
    """Language x construction, the mean score over seeds; ``*n``: supported in n seeds. Returns
    ``{file name: caption}`` (nothing when there is no score)."""
    rows = sorted(scores)
    cols = sorted({c for r in scores.values() for c in r})
    if not rows or not cols:
        return {}
    grid = np.array([[scores[r].get(c, math.nan) for c in cols] for r in rows])  # [languages, constructions]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(cols), 1.0 + 0.4 * len(rows)))
    im = ax.imshow(np.ma.masked_invalid(grid), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            n = supported.get(r, {}).get(c, 0)
            if math.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}" + (f" *{n}" if n else ""), ha="center", va="center", fontsize=8,
                        color="white" if grid[i, j] < 0.6 else "black", fontweight="bold" if n else "normal")
            elif c in scores[r]:
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=7, color="grey")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    fig.colorbar(im, ax=ax, label="mean score over seeds")
    ax.set_title("candidate scores (*n: supported in n seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {path.name: "Mean score of each candidate construction per language (blank: not a candidate there; "
                       "n/a: not testable); *n marks the seeds where it is supported."}


def over_training(dyn: dict, path: Path) -> dict[str, str]:
    """Each candidate's score at every checkpoint of one job (``runner.dynamics_task``'s record)."""
    steps = dyn["steps"]
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for name, values in dyn["scores"].items():
        ax.plot([max(s, 1) for s in steps], values, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_ylim(-0.15, 1.05)  # scores are null-corrected, so slightly negative values occur
    ax.set_xlabel("training step (step 0 drawn at 1)")
    ax.set_ylabel("score")
    spec = dyn["spec"]
    ax.set_title(f"{spec['language']}, {spec['objective']}, seed {spec['seed']}: candidates over training")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {path.name: f"Score of each candidate over training ({spec['language']}, {spec['objective']}, "
                       f"seed {spec['seed']}), from the checkpoints at the fast setting."}
