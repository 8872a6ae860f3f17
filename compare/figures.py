"""The report's PNG figures (matplotlib, Agg backend), drawn only from the result dict."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (no display; set before pyplot is imported)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _short(hook: str) -> str:
    return hook.replace("blocks.", "").replace(".hook_resid_", " ").replace("hook_", "")


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path.name


def readout_heatmap(res: dict, path: Path) -> str:
    """Variables x residual hooks: learned readout score, compiled writing hook outlined."""
    names = list(res["variables"])
    hooks = res["cka"]["hooks"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 1.2 + 0.45 * len(names)), sharey=True)
    for ax, key, title in ((axes[0], "compiled_readouts", "compiled"), (axes[1], "readouts", "learned")):
        m = np.array([[res["variables"][v][key][h] if key == "compiled_readouts" else
                       res["variables"][v][key][h]["score"] for h in hooks] for v in names])
        im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i, v in enumerate(names):
            j = hooks.index(res["variables"][v]["compiled_written_at"])
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
            for jj in range(len(hooks)):
                ax.text(jj, i, f"{m[i, jj]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if m[i, jj] < 0.6 else "black")
        ax.set_xticks(range(len(hooks)), [_short(h) for h in hooks], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names)
        ax.set_title(f"{title} residual", fontsize=9)
    fig.suptitle("cross-validated readout score per variable and hook (red box: where the compiled model writes it)",
                 fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path.name


def matrix(m: np.ndarray, rows: list[str], cols: list[str], title: str, path: Path,
           boxes: list[tuple[int, int]] = (), grey_rows: list[int] = (), xlabel: str = "", ylabel: str = "") -> str:
    fig, ax = plt.subplots(figsize=(max(5.5, 1.6 + 0.7 * len(cols)), 1.4 + 0.55 * len(rows)))
    im = ax.imshow(m, vmin=0, vmax=1, cmap="magma", aspect="auto")
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if m[i, j] < 0.6 else "black")
    for i, j in boxes:
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="cyan", lw=2.5))
    for i in grey_rows:
        ax.add_patch(plt.Rectangle((-0.5, i - 0.5), len(cols), 1, color="grey", alpha=0.7))
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return _save(fig, path)


def attention_grids(res: dict, path: Path) -> str | None:
    """Each non-empty compiled head beside its matched learned head, on the example inputs."""
    pairs = [(m["compiled"], m["learned"], m["score"]) for m in res["heads"]["matches"]]
    ex = res["examples"]
    if not pairs or not ex["inputs"]:
        return None
    n = len(ex["inputs"])
    fig, axes = plt.subplots(n, 2 * len(pairs), figsize=(2.6 * 2 * len(pairs), 2.6 * n), squeeze=False)
    for k, (c, l, s) in enumerate(pairs):
        for e, text in enumerate(ex["inputs"]):
            toks = ["BOS", *text.split()] if " " in text else ["BOS", *text]
            for side, (name, src) in enumerate(((c, "compiled"), (l, "learned"))):
                ax = axes[e, 2 * k + side]
                pat = np.array(ex[src][name][e])[: len(toks), : len(toks)]
                ax.imshow(pat, vmin=0, vmax=1, cmap="Blues")
                ax.set_xticks(range(len(toks)), toks, fontsize=6, rotation=90)
                ax.set_yticks(range(len(toks)), toks, fontsize=6)
                if e == 0:
                    ax.set_title(f"{src} {name}" + (f"\n(agreement {s:.2f})" if side else ""), fontsize=8)
    return _save(fig, path)


def iia_bars(res: dict, path: Path) -> str:
    names = list(res["variables"])
    x = np.arange(len(names))
    v = res["variables"]
    fig, ax = plt.subplots(figsize=(1.8 + 1.3 * len(names), 3.2))
    series = (("readout score", [v[n]["aligned_score"] for n in names]),
              ("IIA readout subspace", [np.nan_to_num(v[n]["iia_readout"] if v[n]["iia_readout"] is not None else 0.0) for n in names]),
              ("IIA DAS", [np.nan_to_num(v[n]["iia_das"] if v[n]["iia_das"] is not None else 0.0) for n in names]))
    for k, (label, vals) in enumerate(series):
        ax.bar(x + (k - 1) * 0.27, vals, width=0.27, label=label)
    ax.scatter(x - 0.27, [v[n]["baseline"] for n in names], marker="_", s=300, c="black", label="readout baseline")
    ax.axhline(0.9, ls=":", c="grey")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("readouts and interchange-intervention accuracy (at the aligned hook)", fontsize=9)
    return _save(fig, path)


def ablation_bars(res: dict, path: Path) -> str:
    abl = res["ablation"]
    heads = list(abl["mean"]["per_head"])
    matched = set(abl["mean"]["matched"]["heads"])
    x = np.arange(len(heads))
    fig, ax = plt.subplots(figsize=(1.8 + 0.8 * len(heads), 3.0))
    for k, mode in enumerate(("mean", "zero")):
        ax.bar(x + (k - 0.5) * 0.4, [abl[mode]["per_head"][h] for h in heads], width=0.4, label=f"{mode} ablation")
    ax.set_xticks(x, [h + (" *" if h in matched else "") for h in heads], fontsize=8)
    ax.set_ylabel("drop in task accuracy")
    ax.set_title(f"learned heads ablated one at a time (* matched); clean accuracy {abl['clean']:.3f}", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, path)


def draw_all(res: dict, folder: Path) -> dict[str, str]:
    """Writes every figure for one comparison into ``folder``; returns ``{kind: file name}``."""
    hooks = [_short(h) for h in res["cka"]["hooks"]]
    heads = res["heads"]
    names = heads["names"]
    live = [i for i, n in enumerate(names) if n not in heads["empty_compiled"]]
    boxes = [(names.index(m["compiled"]), names.index(m["learned"])) for m in heads["matches"]]
    out = {
        "readouts": readout_heatmap(res, folder / "readout_heatmap.png"),
        "cka": matrix(np.array(res["cka"]["matrix"]), hooks, hooks, "linear CKA, compiled (rows) x learned (columns)",
                      folder / "cka.png", boxes=[(i, i) for i in range(len(hooks))], xlabel="learned", ylabel="compiled"),
        "heads": matrix(np.array(heads["similarity"]), names, names,
                        "attention-pattern agreement (BOS column dropped)\ncyan: optimal matching; grey: empty compiled head",
                        folder / "head_similarity.png", boxes=boxes,
                        grey_rows=[i for i in range(len(names)) if i not in live], xlabel="learned", ylabel="compiled"),
        "iia": iia_bars(res, folder / "iia.png"),
        "ablation": ablation_bars(res, folder / "ablation.png"),
    }
    grid = attention_grids(res, folder / "attention_grids.png")
    if grid:
        out["attention"] = grid
    return out
