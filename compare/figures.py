"""The report's PNG figures (matplotlib, Agg backend), drawn only from a ``Comparison``."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (no display; set before pyplot is imported)
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

from compare.hypotheses import Ranking  # noqa: E402
from compare.parallel import fork_map  # noqa: E402
from compare.results import IIA_OK, Comparison, KeyAttention, Status  # noqa: E402

STATUS_COLOURS = {
    Status.COMPUTED: "#1a9850", Status.COMPUTED_UP_TO: "#66bd63", Status.CAUSAL_PARTIAL: "#a6d96a",
    Status.UNDECIDED: "#fee08b", Status.NOT_IDENTIFIABLE: "#c7c7e8", Status.CORRELATIONAL: "#fdae61",
    Status.UNTRAINED_LEVEL: "#f1b6da", Status.NOT_REPRESENTED: "#d73027", Status.NOT_TESTABLE: "#bbbbbb",
}
INPUT_COLOUR = "#dddddd"


def _short(hook: str) -> str:
    return hook.replace("blocks.", "").replace(".hook_resid_", " ").replace("hook_", "")


def model_hooks(res: Comparison) -> list[str]:
    """The compared model's residual hooks (its depth may differ from the compiled model's)."""
    return res.cka.model_hooks or res.cka.hooks


def _save(fig, path: Path) -> str:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path.name


def readout_heatmap(res: Comparison, path: Path) -> str:
    """Variables x residual hooks: live-row readout, compiled on the left, this model on the right."""
    names = list(res.variables)
    fig, axes = plt.subplots(1, 2, figsize=(12, 1.4 + 0.5 * len(names)), sharey=True)
    for ax, side in zip(axes, ("compiled", "model")):
        hooks = res.cka.hooks if side == "compiled" else model_hooks(res)
        m = np.array([[res.variables[v].compiled_live.get(h, np.nan) if side == "compiled" else
                       res.variables[v].readout_at(h).live.value for h in hooks] for v in names])
        im = ax.imshow(m, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for i, v in enumerate(names):
            var = res.variables[v]
            if side == "compiled":
                j = hooks.index(var.compiled_hook)
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=2))
            found = var.reference_hook if side == "compiled" else var.found_hook
            if found:
                ax.plot(hooks.index(found), i - 0.3, "o", color="white", ms=5, mec="black")
            for jj in range(len(hooks)):
                if np.isfinite(m[i, jj]):
                    ax.text(jj, i + 0.12, f"{m[i, jj]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if m[i, jj] < 0.6 else "black")
        ax.set_xticks(range(len(hooks)), [_short(h) for h in hooks], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names)
        ax.set_title(f"{side} residual", fontsize=9)
    fig.suptitle("cross-validated readout on live rows (red box: compiled block written; white dot: found there)",
                 fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8)
    return _save(fig, path)


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


def attention_grids(res: Comparison, path: Path) -> str | None:
    """Each non-empty compiled head beside its matched learned head, on the example inputs."""
    pairs = [(m.compiled, m.learned, m.agreement.value) for m in res.heads.matches]
    ex = res.examples
    if not pairs or not ex.inputs:
        return None
    n = len(ex.inputs)
    fig, axes = plt.subplots(n, 2 * len(pairs), figsize=(2.6 * 2 * len(pairs), 2.6 * n), squeeze=False)
    for k, (c, l, s) in enumerate(pairs):
        for e, text in enumerate(ex.inputs):
            toks = ["BOS", *text.split()] if " " in text else ["BOS", *text]
            for side, (name, src) in enumerate(((c, "compiled"), (l, "learned"))):
                ax = axes[e, 2 * k + side]
                pat = np.array(getattr(ex, src)[name][e])[: len(toks), : len(toks)]
                ax.imshow(pat, vmin=0, vmax=1, cmap="Blues")
                ax.set_xticks(range(len(toks)), toks, fontsize=6, rotation=90)
                ax.set_yticks(range(len(toks)), toks, fontsize=6)
                if e == 0:
                    ax.set_title(f"{src} {name}" + (f"\n(agreement {s:.2f})" if side else ""), fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def iia_bars(res: Comparison, path: Path) -> str:
    """Test IIA per variable with its CI, the null's 95th percentile and the threshold."""
    names = list(res.variables)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(1.8 + 1.3 * len(names), 3.2))
    for i, n in enumerate(names):
        iv = res.variables[n].intervention
        if iv is None or not iv.test.defined:
            ax.text(i, 0.05, "n/a", ha="center", fontsize=8)
            continue
        ax.bar(i, iv.test.value, width=0.6, color="tab:blue")
        ax.errorbar(i, iv.test.value, yerr=[[iv.test.value - iv.test.lo], [iv.test.hi - iv.test.value]],
                    color="black", capsize=4)
        if np.isfinite(iv.null_p95):
            ax.plot([i - 0.3, i + 0.3], [iv.null_p95] * 2, color="black", lw=2.5)
        ax.text(i, 1.02, f"{iv.subspace} {iv.dim}d", ha="center", fontsize=7)
    ax.axhline(IIA_OK, ls=":", c="grey")
    ax.set_xticks(x, [f"{n}\n({res.variables[n].status.value})" for n in names], fontsize=7)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("IIA on held-out pairs")
    ax.set_title("interchange-intervention accuracy at the chosen hook (bar: 95% CI; black tick: null p95)", fontsize=9)
    return _save(fig, path)


def ablation_bars(res: Comparison, path: Path) -> str:
    """Balanced-accuracy drop per head and mode, with the ablated model's CI as error bars."""
    ab = res.ablation
    modes = tuple(dict.fromkeys(a.mode for a in ab.per_head))
    heads = list(dict.fromkeys(a.heads[0] for a in ab.per_head))
    x = np.arange(len(heads))
    clean = ab.clean.balanced_accuracy.value
    fig, ax = plt.subplots(figsize=(2 + 0.9 * len(heads), 3.0))
    for k, mode in enumerate(modes):
        rs = [next(a for a in ab.per_head if a.heads == [h] and a.mode == mode) for h in heads]
        drop = np.array([r.drop for r in rs])
        lo = np.array([clean - r.metrics.balanced_accuracy.hi for r in rs])
        hi = np.array([clean - r.metrics.balanced_accuracy.lo for r in rs])
        ax.bar(x + (k - (len(modes) - 1) / 2) * 0.27, drop, width=0.27, label=f"{mode} ablation",
               yerr=[np.clip(drop - lo, 0, None), np.clip(hi - drop, 0, None)], capsize=2)
    matched = set(ab.groups[0].heads) if ab.groups else set()  # the first group is the matched heads
    ax.set_xticks(x, [str(h) + (" *" if h in matched else "") for h in heads], fontsize=8)
    ax.axhline(clean - ab.chance, ls=":", c="grey")
    ax.set_ylabel("drop in balanced accuracy")
    ax.set_title(f"heads ablated one at a time (* matched; dotted: drop to chance); clean {clean:.3f}", fontsize=9)
    if modes:
        ax.legend(fontsize=7)
    return _save(fig, path)


Job = Callable[[], "str | None"]


def comparison_jobs(res: Comparison, folder: Path) -> dict[str, Job]:
    """Every figure of one comparison, as ``{kind: job}``; a job draws its PNG into ``folder`` and returns its
    file name (None: nothing to draw)."""
    hooks = [_short(h) for h in res.cka.hooks]
    cols = [_short(h) for h in model_hooks(res)]
    hd = res.heads
    boxes = [(hd.compiled_names.index(m.compiled), hd.learned_names.index(m.learned)) for m in hd.matches]
    jobs: dict[str, Job] = {
        "readouts": partial(readout_heatmap, res, folder / "readout_heatmap.png"),
        "cka": partial(matrix, np.array(res.cka.matrix), hooks, cols, "linear CKA, compiled (rows) x model (columns)",
                       folder / "cka.png", boxes=[(i, i) for i in range(len(hooks)) if hooks == cols],
                       xlabel="model", ylabel="compiled"),
        "heads": partial(matrix, np.array(hd.similarity), [str(n) for n in hd.compiled_names],
                         [str(n) for n in hd.learned_names], "attention-pattern agreement (BOS column dropped)\n"
                         "cyan: optimal matching; grey: empty compiled head", folder / "head_similarity.png",
                         boxes=boxes, grey_rows=[hd.compiled_names.index(n) for n in hd.empty_compiled],
                         xlabel="model", ylabel="compiled"),
        "iia": partial(iia_bars, res, folder / "iia.png"),
        "ablation": partial(ablation_bars, res, folder / "ablation.png"),
        "attention": partial(attention_grids, res, folder / "attention_grids.png"),
    }
    if res.attention:
        jobs["key_attention"] = partial(key_attention, res.attention, folder / "key_attention.png")
    return jobs


def draw_all(jobs: dict[str, Job], workers: int | None = None) -> dict[str, str]:
    """Runs the figure jobs, each in its own process (``compare.parallel``); returns ``{kind: file name}``."""
    names = fork_map(list(jobs.values()), workers)
    return {kind: name for kind, name in zip(jobs, names) if name}


def key_attention(att: KeyAttention, path: Path) -> str:
    """One panel per head: attention mass per key token type (rows) by query position (columns)."""
    heads = list(att.heads)
    panels = [*heads, "uniform"]
    cols = min(len(panels), 4)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 1.2 + 1.5 * rows), squeeze=False)
    for k, name in enumerate(panels):
        ax = axes[k // cols, k % cols]
        m = np.array(att.uniform if name == "uniform" else att.heads[name]).T  # [token, position]
        ax.imshow(m, vmin=0, vmax=1, cmap="Blues", aspect="auto")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, f"{m[i, j]:.2f}"[1:] if m[i, j] < 1 else "1", ha="center", va="center", fontsize=6,
                        color="white" if m[i, j] > 0.6 else "black")
        ax.set_yticks(range(len(att.tokens)), att.tokens, fontsize=7)
        ax.set_xticks(range(len(att.positions)), att.positions, fontsize=6)
        ax.set_title("uniform over allowed keys (frequency alone)" if name == "uniform" else str(name), fontsize=8)
        ax.set_xlabel("query position", fontsize=7)
    for k in range(len(panels), rows * cols):
        axes[k // cols, k % cols].axis("off")
    fig.suptitle("attention mass on each key token type, mean over rows at each query position", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def graph_layout(edges: list[list[str]]) -> tuple[nx.DiGraph, dict[str, np.ndarray]]:
    """The computation graph and its node positions: one column per topological generation, each column in
    the order the nodes first appear in ``edges`` (networkx's own grouping goes through sets, whose order of
    strings changes from one Python process to the next, and with it the figure)."""
    g = nx.DiGraph()
    g.add_edges_from(tuple(e) for e in edges)
    first = {node: i for i, node in enumerate(g.nodes)}
    columns = {depth: sorted(layer, key=first.__getitem__)
               for depth, layer in enumerate(nx.topological_generations(g))}
    return g, nx.multipartite_layout(g, subset_key=columns)


def _graph(ax, edges: list[list[str]], variables: dict, scored=None, title: str = "") -> None:
    """One computation graph on ``ax``: nodes coloured by each variable's status, labelled with the hook where
    it lives; ``scored`` (a ``CandidateResult``) adds its test IIA and the heads that write it."""
    g, pos = graph_layout(edges)
    colours, labels = [], {}
    for node in g.nodes:
        var = variables.get(node)
        colours.append(STATUS_COLOURS[var.status] if var else INPUT_COLOUR)
        label = node
        if var:
            label += f"\n{_short(var.found_hook) if var.found_hook else 'not found'}"
            score = scored.variable(node) if scored is not None else None
            if score:
                label += f"\nIIA {score.iia.value:.2f}" if score.iia.defined else ""
                if score.heads:
                    label += "\n" + ",".join(map(str, score.heads))
            elif scored is not None:
                label += "\n(not scored)"
        labels[node] = label
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=12, node_size=2400, edge_color="#777777")
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colours, node_size=2400, edgecolors="black")
    nx.draw_networkx_labels(g, pos, labels, ax=ax, font_size=6.5)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    ax.margins(0.08, 0.25)


def _status_legend(fig, ncol: int = 4) -> None:
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, mec="black", label=s.value)
               for s, c in STATUS_COLOURS.items()]
    handles.append(plt.Line2D([], [], marker="o", ls="", color=INPUT_COLOUR, mec="black", label="input"))
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=7, frameon=False)


def algorithm_graphs(ranking: Ranking, path: Path) -> str:
    """Each candidate's computation graph (networkx), nodes coloured by status and annotated with where
    each variable lives in the model (hook, and the heads that write it)."""
    names = ranking.order
    fig, axes = plt.subplots(len(names), 1, figsize=(12, 3.8 * len(names)), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        cand = ranking.candidates[name]
        _graph(ax, cand.edges, cand.comparison.variables, cand, f"{name}: score {cand.score.fmt()} ({cand.support.value})")
    _status_legend(fig)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _save(fig, path)


def status_graph(edges: list[list[str]], res: Comparison, title: str, path: Path) -> str:
    """The first screen's figure: one program's computation graph coloured by each variable's status."""
    fig, ax = plt.subplots(figsize=(10, 3.0))
    _graph(ax, edges, res.variables, None, title)
    _status_legend(fig, ncol=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return _save(fig, path)


def ranking_jobs(ranking: Ranking, folder: Path) -> dict[str, Job]:
    """The figures of the "Which algorithm?" section (what each head looks at is a comparison's figure)."""
    return {"graphs": partial(algorithm_graphs, ranking, folder / "algorithm_graphs.png")}
