"""``locate``: where, and whether, a model computes one program variable.

For one variable ``v`` of the program and one model side (``compare.pipeline``):

1. **Search every residual hook**, from the embeddings to the last. There is
   no cutoff at "the model's output is readable": an AND of two one-hot
   blocks is linearly separable, so the output can be readable before its
   inputs are decoded, and a search that stops there misplaces them.
   Instead every choice is made on *distinguishing* validation pairs
   (``compare.interventions.Pairs``): a subspace that carries only the
   output fails them.
2. At each hook, the validation IIA of the pattern subspace (two joint
   forward models: with siblings, and with ancestors too), and of DAS from
   the pattern start where that falls short and the variable is readable
   there (probes fitted and scored on the fit and validation folds only).
   The variable lives at the earliest hook where it is readable and causal
   (validation IIA >= IIA_OK on its Wilson lower bound), else the earliest
   causal hook, else the best one.
3. There: a DAS sweep over dimensions, each with ``das_restarts`` starts
   (the pattern basis; the probe's direction, or for the output the
   unembedding's logit-difference direction; random), chosen on validation
   pairs; options no better than random subspaces of their size are
   dropped; the smallest dimension within ``SWEEP_TOL`` of the best wins.
4. Test IIA on all pairs and on the distinguishing ones, beside the two
   chance levels ("copy source", "no change") and the share of
   distinguishing pairs on which the model copied the source's output; the
   random-subspace null; strata; the spread of DAS restarts folded into the
   interval; CIs resample base and source strings together.
5. The full value read *inside* the chosen subspace, against untrained
   networks' readout in a subspace of the same kind and size; the
   variable's output partition (``compare.identifiability``); the status
   (``compare.status.decide_status``).

Everything random is seeded from ``CompareConfig.seed`` and the variable's,
hook's, dimension's and restart's indices; nothing reads a global generator.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from compare.activations import VariableInfo
from compare.context import untrained_key
from compare.identifiability import describe, is_coarser
from compare.interventions import (Pairs, Space, agrees, dependent, design, embed_overlap, forward_patterns,
                                   pattern_swap, probe_directions, seeded, stratified, _orth)
from compare.readouts import cross_fit, read_out
from compare.site import Site
from compare.results import IIA_OK, READ_OK, Coarsening, HookTrial, Intervention, VariableResult
from compare.status import decide_status
from compare.stats import Estimate, bootstrap, r2

if TYPE_CHECKING:
    from compare.context import ModelSide, Prepared

SWEEP_TOL = 0.02   # DAS sweep: the smallest dimension within this of the best validation IIA
SELECTIVE = 0.05   # ... among options whose validation IIA beats their random-subspace null's p95 by this
MIN_VAL_DISTINGUISHING = 10  # choose on distinguishing validation pairs when there are at least this many


@dataclasses.dataclass(frozen=True)
class Swap:
    """The chosen interchange intervention of one variable: at ``hook``, ``x + (x~_src - x~_base) @ lifted``."""

    hook: str
    lifted: np.ndarray   # [D, D] the swap in residual coordinates (``Space.lift`` of the whitened projection)
    test_outputs: torch.Tensor  # [P, T] the model's output ids on the variable's test pairs with the swap
    own_outputs: torch.Tensor   # [P, T] ... without it (the model's own output on each base)


@dataclasses.dataclass
class SwapOption:
    """One candidate subspace at one hook.

    Attributes:
        kind: ``"pattern"``, ``"pattern|ancestors"`` or ``"das"``.
        basis: ``[r, k]`` orthonormal in whitened coordinates.
        proj: ``[r, r]`` the swap (``z + (z_src - z) @ proj``): oblique for a pattern, orthogonal for DAS.
        val: validation IIA on the deciding pairs.
        restarts: every DAS restart's basis (the chosen one among them) and its validation IIA.
    """

    kind: str
    basis: np.ndarray
    proj: np.ndarray
    val: float
    restarts: list[tuple[np.ndarray, float]] = dataclasses.field(default_factory=list)

    @property
    def dim(self) -> int:
        return self.basis.shape[1]


def deciding(pairs: Pairs, upstream: bool, least: int = MIN_VAL_DISTINGUISHING) -> Pairs:
    """The pairs a choice or status is made on: the distinguishing ones for a variable other than the output
    (when there are at least ``least``), else all."""
    if upstream and int(pairs.distinguishing.sum()) >= least:
        return pairs.subset(pairs.distinguishing)
    return pairs


def train_rows(prep: "Prepared", v: VariableInfo) -> np.ndarray:
    """Fit-split rows for pattern estimation: those where ``v`` is live, unless they are too few or miss a
    class ``v`` takes somewhere in the data (a source may carry it, and it would have no pattern to swap
    along); then all fit rows. No model's activations outside the fit split are used."""
    data = prep.data
    fit = data.split("fit")
    live = fit & data.live[v.name]
    if live.sum() < 20:
        return fit
    if v.encoding == "categorical":
        target = data.targets[v.name]
        seen = np.bincount(target[live], minlength=len(v.classes)) > 0
        needed = np.bincount(target, minlength=len(v.classes)) > 0
        if (needed & ~seen).any():
            return fit
    return live


def selection_readout(prep: "Prepared", side: "ModelSide", v: VariableInfo, hook: str) -> float:
    """Live readout of ``v`` at ``hook`` from probes fitted and scored on the fit and validation folds only
    (the test fold never steers where a variable is said to live); cached on the side."""
    key = (v.name, side.alias.get(hook, hook))
    if key not in side.selection:
        data = prep.data
        train = data.split("train")
        y = data.targets[v.name][train]
        fitted = cross_fit(side.resid[hook][train], y, data.fold[train], v.encoding, prep.config.probe_iter)
        live = data.live[v.name][train]
        if not live.any():
            side.selection[key] = math.nan
        elif v.encoding == "categorical":
            side.selection[key] = float((fitted.pred[live] == y[live]).mean())
        else:
            stat = r2(y[live], fitted.pred[live])
            side.selection[key] = float(stat.combine(stat.columns.sum(0)))
    return side.selection[key]


def locate(prep: "Prepared", side: "ModelSide", v: VariableInfo, vi: int,
           swaps: dict[str, Swap] | None = None) -> VariableResult:
    """Finds where ``v`` lives in the model and decides its status (see the module docstring).

    ``swaps``: if given, receives the chosen intervention under ``v.name`` (for candidate ranking).
    """
    cfg, data = prep.config, prep.data
    hooks = side.hooks
    pairs = prep.pairs[v.name]
    upstream = v.name != prep.spec.output
    val = deciding(pairs["val"], upstream)
    rows = np.flatnonzero(train_rows(prep, v))
    names = [u.name for u in data.variables]
    below, above = prep.spec.ancestors(v.name), prep.spec.descendants(v.name)
    siblings = set(names) - above - below - {v.name}
    # Two joint forward models: the variable with its siblings, and with its ancestors too. A swap moves
    # the variable's patterns and leaves the others' alone. Descendants are left out: they have no
    # representation of their own before they are computed, and they are functions of the rest.
    conditionals = [("pattern", [n for n in names if n == v.name or n in siblings])]
    if below:
        conditionals.append(("pattern|ancestors", [n for n in names if n not in above]))
    # A variable that determines v on these rows, or that v determines, would share v's patterns exactly
    # (e.g. theorem and count_I on well-formed prefixes): its columns are left out of v's forward model.
    tied = {n for n in names if n != v.name and dependent(data, rows, v.name, n)}
    designs = {kind: design(data, rows, [n for n in which if n not in tied]) for kind, which in conditionals}
    # Sources come from every row of a split, not only where v is live: a variable constant (or tied to v)
    # on v's rows can still differ between base and source. Its patterns, fitted on every fit row jointly
    # with v's, are held fixed too, so its change does not leak into v's coordinate.
    fit = np.flatnonzero(data.split("fit"))
    apart = {n for n in names if n != v.name and dependent(data, fit, v.name, n)}
    held_designs = {kind: design(data, fit, [n for n in which if n == v.name or n not in apart])
                    for kind, which in conditionals}

    trials, found, chosen = [], {}, None
    for i, h in enumerate(hooks):
        site = side.site(data, h)
        space = site.space
        readable = selection_readout(prep, side, v, h) >= READ_OK
        cands = []
        for kind, (g, cols) in designs.items() if len(val) else []:
            own, proj = pattern_swap(space, side.xt(h)[rows], g, cols, v.name,
                                     held=_held(space, side.xt(h)[fit], *held_designs[kind], v.name))
            if own.shape[1]:
                cands.append(SwapOption(kind, own, proj, site.iia(val, proj)))
        if not cands:
            trials.append(HookTrial(h, readable, math.nan, None))
            continue
        cands = [max(cands, key=lambda c: (c.val, -c.dim))]  # the better pattern swap on validation pairs
        vd = None
        if cands[0].val < IIA_OK and cfg.das_steps > 0 and cfg.search_das and readable:
            basis = site.das(pairs["fit"], cands[0].basis, cands[0].dim, cfg.das_steps, cfg.das_lr,
                             seeded(cfg.seed, vi, i, 0, 0))
            vd = site.iia(val, basis @ basis.T)
            cands.append(SwapOption("das", basis, basis @ basis.T, vd))
        trials.append(HookTrial(h, readable, cands[0].val, vd))
        found[i] = cands
        if readable and clears(max(c.val for c in cands), len(val)):
            chosen = i
            break

    def best(i: int) -> float:
        return max(c.val for c in found[i])
    if chosen is None and found:
        causal = [i for i in found if clears(best(i), len(val))]
        chosen = causal[0] if causal else max(found, key=lambda i: (best(i), -i))
    intervention = (_intervene(prep, side, v, vi, chosen, found[chosen], upstream, swaps)
                    if chosen is not None else None)
    hook = hooks[chosen] if chosen is not None else None
    readout = side.readouts[v.name][hook] if hook is not None else None
    coarse, control = [], None
    if hook is not None:
        x = side.resid[hook]
        for d in data.derived:
            if d.parent == v.name:
                r, _ = read_out(data, x, d, hook, cfg.seed, cfg.probe_iter)
                coarse.append(Coarsening(d.name, hook, r.live, r.majority_live))
        if cfg.control_task:
            control = read_out(data, x, v, hook, cfg.seed, cfg.probe_iter, labels=data.control[v.name])[0].live
    testable = bool(data.live[v.name].any()) and all(len(p) for p in pairs.values())
    partition = prep.partitions.get(v.name, [])
    readable, beyond, causal, status = decide_status(readout, intervention, coarse, testable, is_coarser(partition))
    ref = prep.reference.variables[v.name].found_hook if prep.reference else hook
    compiled_hooks = prep.compiled.hooks
    ready = output_ready(prep, side)
    return VariableResult(
        name=v.name, encoding=v.encoding, op=v.op, classes=[str(c) for c in v.classes],
        compiled_hook=compiled_hooks[v.written_after], compiled_dim=len(v.labels),
        live_share=float(data.live[v.name].mean()), readouts=[side.readouts[v.name][h] for h in hooks],
        search=trials, output_ready_hook=hooks[ready] if ready is not None else None, found_hook=hook,
        offset=chosen - v.written_after if chosen is not None else None, readout=readout, control_task=control,
        intervention=intervention, readable=readable, beyond_untrained=beyond, causal=causal, status=status,
        coarsenings=coarse, reference_hook=ref,
        compiled_live={h: prep.compiled.readouts[v.name][h].live.value for h in compiled_hooks},
        compiled_first_hook=compiled_hooks[v.first_written] if v.first_written >= 0 else None,
        partition=partition, partition_text=describe(partition))


def _held(space: Space, xt: np.ndarray, g: np.ndarray, cols: dict[str, slice], var: str) -> np.ndarray:
    """``[r, h]`` the patterns of every variable in ``cols`` but ``var``, from the joint forward model with
    ``var`` on the rows of ``xt`` ``[n, D]`` (``pattern_swap``'s ``held``)."""
    others = [c for name, sl in cols.items() if name != var for c in range(sl.start, sl.stop)]
    if not others:
        return np.zeros((space.m, 0))
    return forward_patterns(space, xt, g)[others].T


def _val_null(prep: "Prepared", site: Site, val: Pairs, dim: int, vi: int) -> float:
    """The 95th percentile IIA on the validation pairs of a few random ``dim``-dimensional subspaces (nan:
    the subspace is the whole space)."""
    return site.null(val, dim, max(3, prep.config.n_null // 4), prep.config.seed + 7 * vi)[1]


def selective(option: SwapOption, null_p95: float) -> bool:
    """Whether a swap's validation IIA beats random subspaces of its size: by ``SELECTIVE`` over their 95th
    percentile, or perfect above it (no room for the margin: a variable that fills half of a small whitened
    space, like compiled bad_M_at); a nan null has nothing to beat."""
    return not option.val < null_p95 + SELECTIVE or (option.val >= 1.0 and null_p95 < option.val)


def clears(iia_value: float, n: int, threshold: float = IIA_OK) -> bool:
    """Whether a validation IIA over ``n`` pairs is at least ``threshold`` on its 95% Wilson lower bound: the
    search, like a status, decides on an interval (a hook at 0.91 on 150 pairs generalised to 0.87)."""
    if not n or not math.isfinite(iia_value):
        return False
    z = 1.96
    centre = (iia_value + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(iia_value * (1 - iia_value) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half >= threshold


def output_ready(prep: "Prepared", side: "ModelSide") -> int | None:
    """Index of the first hook where the model's own output is readable (None: nowhere). Reported only: the
    search for where a variable lives no longer stops there."""
    out = prep.spec.output
    for i, h in enumerate(side.hooks):
        r = side.readouts[out][h]
        if r.live.defined and r.live.lo >= max(READ_OK, r.majority_live + 0.5 * (1.0 - r.majority_live)):
            return i
    return None


def _starts(prep: "Prepared", side: "ModelSide", v: VariableInfo, hook: str, pattern: np.ndarray,
            upstream: bool) -> list[np.ndarray]:
    """DAS starts at ``hook``, in order: the pattern basis; the probe's direction (for the output, the
    unembedding's logit-difference direction); random (an empty start, filled from the run's seed)."""
    data, space = prep.data, side.space(prep.data, hook)
    if upstream:
        rows = np.flatnonzero(train_rows(prep, v))
        directed = probe_directions(space.z(side.xt(hook)[rows]), data.targets[v.name][rows], v.encoding,
                                    prep.config.probe_iter)
    else:
        d = side.readout.directions(side.model).numpy()  # [D, c] residual directions
        directed = _orth(space.unwhite @ d, 1e-9)          # the same directions in whitened coordinates
    empty = np.zeros((space.m, 0))
    return [pattern, directed if directed.shape[1] else empty, empty][:max(1, prep.config.das_restarts)]


def _intervene(prep: "Prepared", side: "ModelSide", v: VariableInfo, vi: int, i: int, cands: list[SwapOption],
               upstream: bool, swaps: dict[str, Swap] | None = None) -> Intervention:
    """The DAS sweep with restarts, test IIA with CI, null, strata, subspace readout at hook index ``i``."""
    cfg, data = prep.config, prep.data
    h = side.hooks[i]
    site = side.site(data, h)
    space = site.space
    val = deciding(prep.pairs[v.name]["val"], upstream)
    options = list(cands)
    sweep = {str(c.dim): c.val for c in cands if c.kind == "das"}
    dims = cfg.das_dims or ((cands[0].dim,) if cfg.das_steps > 0 and not sweep else ())  # at least one DAS
    starts = _starts(prep, side, v, h, cands[0].basis, upstream) if dims else []
    for k in dims:
        if k > space.m or str(k) in sweep:
            continue
        runs = [site.das(prep.pairs[v.name]["fit"], start, k, cfg.das_steps, cfg.das_lr, seeded(cfg.seed, vi, i, k, r))
                for r, start in enumerate(starts)]
        scores = [site.iia(val, b @ b.T) for b in runs]
        top = int(np.argmax(scores))
        sweep[str(k)] = scores[top]
        options.append(SwapOption("das", runs[top], runs[top] @ runs[top].T, scores[top], list(zip(runs, scores))))
    # A swap no better than random subspaces of its size is no evidence of where the variable lives (a large
    # DAS dimension can make almost anything "causal"): such options are dropped unless every one is.
    nulls = {d: _val_null(prep, site, val, d, vi) for d in {o.dim for o in options}}
    selective_options = [o for o in options if selective(o, nulls[o.dim])] or options
    top = max(o.val for o in selective_options)
    # Patterns first (where the variable varies, METHODS.md), then the smallest dimension: DAS is the
    # fallback where the patterns fall short.
    choice = min((o for o in selective_options if o.val >= top - SWEEP_TOL), key=lambda o: (o.kind == "das", o.dim))
    test = prep.pairs[v.name]["test"]
    outputs = site.outputs(test, choice.proj)
    hit = agrees(outputs, test.target)
    dist = test.distinguishing
    gb, gs = data.group[test.base], data.group[test.source]
    on_all = bootstrap(hit.astype(float), gb, cfg.seed, groups2=gs)
    on_dist = bootstrap(hit[dist].astype(float), gb[dist], cfg.seed, groups2=gs[dist])
    decide = dist if upstream else np.ones(len(test), dtype=bool)
    restarts = []
    # The restarts that validation cannot tell from the chosen one were equally good choices: the spread of
    # their test IIA is part of the uncertainty.
    rivals = [b for b, score in choice.restarts if score >= choice.val - SWEEP_TOL]
    if len(rivals) > 1:
        decided = test.subset(decide)
        restarts = [float(agrees(site.outputs(decided, b @ b.T), decided.target).mean()) if len(decided) else math.nan
                    for b in rivals]
        finite = [r for r in restarts if math.isfinite(r)]
        if finite:
            if upstream:
                on_dist = on_dist.widened(min(finite), max(finite))
            else:
                on_all = on_all.widened(min(finite), max(finite))
    chance_copy, chance_keep = test.chance()
    # The model's own chance levels on the deciding pairs: its unpatched output on the base ("no change") and
    # its output on the source at the base position ("copy source"). A model that is wrong, or constant, can
    # hit a counterfactual without any swap; a score is corrected by the larger of these.
    own, own_copy = _model_predictions(prep, side, site, test)
    if swaps is not None:
        swaps[v.name] = Swap(h, space.lift(choice.proj), outputs, own)
    model_keep = float(agrees(own[decide_t(decide)], test.target[decide_t(decide)]).mean()) if decide.any() else math.nan
    model_copy = (float(agrees(own_copy[decide_t(decide)], test.target[decide_t(decide)]).mean())
                  if decide.any() else math.nan)
    follows = bootstrap(agrees(outputs[torch.from_numpy(np.flatnonzero(dist))], test.copy[torch.from_numpy(
        np.flatnonzero(dist))]).astype(float), gb[dist], cfg.seed, groups2=gs[dist])
    deciding_test = test.subset(decide)
    null_mean, null_p95 = site.null(deciding_test, choice.dim, cfg.n_null, cfg.seed + vi)
    hd, gbd, gsd = hit[decide], gb[decide], gs[decide]
    # The full value is read inside the variable's pattern subspace when that swap is causal on validation
    # pairs (where the variable varies), else inside the chosen subspace; untrained networks alike.
    pattern = cands[0]
    inside_basis, inside_kind = ((pattern.basis, "pattern") if pattern.val >= IIA_OK
                                 else (choice.basis, "pattern" if choice.kind != "das" else "das"))
    inside = _subspace_readout(prep, side, v, h, inside_basis)
    return Intervention(
        hook=h, subspace=choice.kind, dim=choice.dim, val_iia=float(choice.val), test=on_all, null_mean=null_mean,
        null_p95=null_p95, embed_overlap=embed_overlap(space, choice.basis, side.embed),
        das_sweep=dict(sorted(sweep.items(), key=lambda kv: int(kv[0]))),
        per_position=stratified(hd, data.row_pos[test.base][decide], gbd, cfg.seed, gsd),
        per_value=stratified(hd, test.value[decide], gbd, cfg.seed, gsd),
        n_fit=len(prep.pairs[v.name]["fit"]), n_val=len(prep.pairs[v.name]["val"]), n_test=len(test),
        per_kind=stratified(hd, np.where(test.cross[decide], "other position", "same position"), gbd, cfg.seed, gsd),
        decides_on="distinguishing" if upstream else "all", distinguishing=on_dist, chance_copy=chance_copy,
        chance_no_change=chance_keep, follows_copy=follows, restarts=restarts, subspace_readout=inside,
        subspace_untrained=_subspace_untrained(prep, side, v, h, inside_basis.shape[1]),
        read_in=f"{inside_kind}, dim {inside_basis.shape[1]}", model_chance_copy=model_copy,
        model_chance_no_change=model_keep)


def decide_t(mask: np.ndarray) -> torch.Tensor:
    """Row indices of a boolean pair mask, for indexing ``[P, T]`` tensors."""
    return torch.from_numpy(np.flatnonzero(mask))


def _model_predictions(prep: "Prepared", side: "ModelSide", site: Site,
                       pairs: Pairs) -> tuple[torch.Tensor, torch.Tensor]:
    """``[P, T]`` the model's own output on each base (no swap), and the same with the base position's output
    replaced by the model's own output on the source row."""
    own = site.unpatched(pairs)
    copy = own.clone()
    pos = torch.from_numpy(prep.data.row_pos[pairs.base])
    copy[torch.arange(len(pairs)), pos] = torch.from_numpy(side.pred[pairs.source]).to(copy.dtype)
    return own, copy


def _subspace_readout(prep: "Prepared", side: "ModelSide", v: VariableInfo, hook: str,
                      basis: np.ndarray, ci: bool = True) -> Estimate:
    """``v``'s full value read (cross-validated probe, live rows with a value the fit split has) from the whitened
    activations projected onto ``basis`` ``[r, k]``."""
    if basis.shape[1] == 0:
        return Estimate.empty()
    data = prep.data
    feats = side.space(data, hook).z(side.xt(hook)) @ basis  # [N, k]
    # scored on live rows whose value the fit split has (a value never fitted has no direction to be read along)
    fitted = {str(x) for x, f in zip(data.values[v.name], data.split("fit")) if f}
    scored = data.live[v.name] & np.array([str(x) in fitted for x in data.values[v.name]])
    data = dataclasses.replace(data, live={**data.live, v.name: scored})
    return read_out(data, feats, v, hook, prep.config.seed, prep.config.probe_iter, ci=ci)[0].live


def _subspace_untrained(prep: "Prepared", side: "ModelSide", v: VariableInfo, hook: str, dim: int) -> float | None:
    """Mean over untrained networks shaped like ``side``'s model of the same readout in ``v``'s pattern subspace
    of ``dim`` dimensions at the same hook (the subspace of the same kind and size)."""
    key = (untrained_key(side.model), v.name, hook, dim)
    if key not in prep.subspace_untrained:
        data = prep.data
        rows = np.flatnonzero(train_rows(prep, v))
        g, cols = design(data, rows, [v.name])
        scores = []
        for u in prep.untrained_sides.get(untrained_key(side.model), []):
            own, _ = pattern_swap(u.space(data, hook), u.xt(hook)[rows], g, cols, v.name)
            est = _subspace_readout(prep, u, v, hook, own[:, :dim], ci=False)
            scores.append(est.value if est.defined else 0.0)
        prep.subspace_untrained[key] = float(np.mean(scores)) if scores else None
    return prep.subspace_untrained[key]
