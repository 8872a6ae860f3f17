"""``compare_models``: where, and whether, a model implements each compiled variable.

``prepare`` does the shared work once (inputs, distinct rows, folds, live
masks, intervention pairs, untrained baselines) and analyses the compiled
model against itself (``Prepared.reference``), so every finding about a
learned model is put beside what the same method finds in the compiled one.
``compare_models`` then returns a typed ``Comparison`` for any model of the
same vocabularies. Everything random is seeded from ``CompareConfig.seed``.

Per compiled variable (``locate``):
  1. readouts at every residual hook (``compare.readouts``), on all rows and
     on live rows, against three baselines;
  2. the hooks searched: every hook from the embeddings up to, *not
     including*, the first hook where the model's own output is readable
     (swapping a subspace there could act through the output itself); every
     hook for the output variable;
  3. at each hook, earliest first, the validation IIA of the pattern
     subspace and, if that is not enough, of DAS at the same dimension; the
     variable *lives* at the earliest hook where it is readable on live rows
     and causal (else the earliest causal hook, else the best one);
  4. there: a DAS dimension sweep (the smallest dimension within
     ``SWEEP_TOL`` of the best validation IIA wins, the pattern subspace on
     ties), then test IIA with a CI, the random-subspace null, IIA per
     position and per value, the control task and the coarsenings;
  5. the status, from CI bounds (``compare.results.decide_status``).
Heads: pattern agreement with CIs and optimal matching (``compare.heads``),
what each head writes; ablations (``compare.ablations``); CKA and maps
(``compare.similarity``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Iterator

import numpy as np
import torch
from sklearn.metrics import r2_score

from compare import heads as heads_lib
from compare.ablations import ablation_hooks, head_name, run_ablations, z_statistics
from compare.activations import (Dataset, VariableInfo, at_rows, build_dataset, embedding_basis, resid_hooks,
                                 run_cached)
from compare.interventions import (Pairs, Space, agrees, das, dependent, design, embed_overlap, iia, make_pairs,
                                   make_space, null_iia, patched_outputs, pattern_swap, stratified)
from compare.outputs import OutputReadout
from compare.readouts import Fitted, predict_held_out, read_out
from compare.results import (IIA_OK, MATCH_OK, READ_OK, Coarsening, Comparison, HeadMatch, Heads, HookReadout, HookTrial,
                             Intervention, KeyAttention, VariableResult, decide_status, summarise)
from compare.similarity import cka_matrix, map_decoding
from compare.stats import Tri, at_least, bootstrap
from compare.threads import one_thread
from learned.model import Transformer
from rasp_programs.errors import ToolkitError
from rasp_programs.spec import ProgramSpec

SWEEP_TOL = 0.02   # DAS sweep: the smallest dimension within this of the best validation IIA
SELECTIVE = 0.05   # ... among options whose validation IIA beats their random-subspace null's p95 by this
WRITES = 0.1       # a head writes a variable if ablating it drops the live readout by >= WRITES


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """Sample sizes and seeds of one comparison (saved in ``compare.json``)."""

    seed: int = 0
    n_inputs: int = 3000        # sampled strings (all inputs if there are fewer)
    folds: int = 3              # GroupKFold folds: test, validation, fit
    probe_iter: int = 200       # iterations of the logistic probes
    n_untrained: int = 3        # untrained networks behind the readout baseline
    n_fit: int = 200            # effective pairs per variable: DAS training
    n_val: int = 150            # ... selection
    n_test: int = 300           # ... reported
    das_steps: int = 30
    das_lr: float = 0.05
    das_dims: tuple[int, ...] = (1, 4, 16)  # the sweep at the chosen hook
    search_das: bool = True     # also try DAS at every hook searched where the pattern swap falls short
    n_null: int = 20            # random subspaces in the null
    n_examples: int = 3
    ablation_modes: tuple[str, ...] = ("zero", "mean", "resample")
    control_task: bool = True   # the Hewitt & Liang baseline at the chosen hook
    well_formed_only: bool = False  # only rows on which the task's language is well formed (language models)

    @classmethod
    def fast(cls, seed: int = 0) -> "CompareConfig":
        """Cheap setting for many checkpoints (training dynamics)."""
        return cls(seed=seed, n_inputs=1200, probe_iter=100, n_untrained=1, n_fit=120, n_val=80, n_test=150,
                   das_steps=15, das_dims=(), search_das=False, n_null=10, ablation_modes=("mean",),
                   control_task=False)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["das_dims"], d["ablation_modes"] = list(self.das_dims), list(self.ablation_modes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CompareConfig":
        d = {k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}}
        for k in ("das_dims", "ablation_modes"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


@contextlib.contextmanager
def frozen(*models: Transformer) -> Iterator[None]:
    """Inside the block: gradients off for the models' parameters and one compute thread."""
    flags = [[p.requires_grad for p in m.parameters()] for m in models]
    for m in models:
        m.requires_grad_(False)
    try:
        with one_thread():
            yield
    finally:
        for m, fl in zip(models, flags):
            for p, f in zip(m.parameters(), fl):
                p.requires_grad_(f)


@dataclasses.dataclass
class ModelSide:
    """One model's activations and readouts on the shared dataset."""

    model: Transformer
    hooks: list[str]                             # this model's residual hooks, in order (its own shape)
    resid: dict[str, np.ndarray]                 # hook -> [N, D] at the rows
    full: dict[str, torch.Tensor]                # hook -> [B, T, D] every position (interventions start there)
    pred: np.ndarray                             # [N] output id
    readouts: dict[str, dict[str, HookReadout]]  # variable -> hook -> readout
    fitted: dict[str, dict[str, Fitted]]
    patterns: dict[int, np.ndarray]              # layer -> [H, N, T-1] renormalised non-BOS rows
    raw_patterns: dict[int, torch.Tensor]        # layer -> [E, H, T, T] on the example inputs
    key_mass: dict[int, np.ndarray]              # layer -> [H, N, K] attention mass per key token type
    embed: np.ndarray                            # [D, e]
    direct: np.ndarray                           # [N, D] W_E[token] + W_pos[position] of each row
    readout: OutputReadout                       # how the program's output is read from the logits
    spaces: dict[str, Space] = dataclasses.field(default_factory=dict)

    def xt(self, hook: str) -> np.ndarray:
        """``[N, D]`` what the layers wrote by ``hook``: the residual without the row's direct embedding."""
        return self.resid[hook] - self.direct

    def space(self, data: Dataset, hook: str) -> Space:
        if hook not in self.spaces:
            self.spaces[hook] = make_space(self.xt(hook)[data.split("train")])
        return self.spaces[hook]

    def delta(self, hook: str, pairs: Pairs) -> np.ndarray:
        """``[P, D]`` source minus base of what the layers wrote, per pair."""
        xt = self.xt(hook)
        return xt[pairs.source] - xt[pairs.base]

    def base(self, data: Dataset, hook: str, pairs: Pairs) -> torch.Tensor:
        """``[P, T, D]`` the base inputs' clean residual at ``hook``."""
        return self.full[hook][torch.from_numpy(data.row_input[pairs.base])]


@dataclasses.dataclass
class Prepared:
    """The shared side, computed once per comparison run."""

    spec: ProgramSpec
    meta: dict
    config: CompareConfig
    data: Dataset
    pairs: dict[str, dict[str, Pairs]]           # variable -> split -> pairs
    examples: list[int]
    uniform: np.ndarray                          # [N, T-1] uniform-over-allowed-keys rows
    compiled: ModelSide
    sops: dict                                   # (layer, head) -> block_map entry of its SOp
    empty: set
    untrained: dict[str, dict[str, dict[str, tuple[float, float]]]] = dataclasses.field(default_factory=dict)
    reference: Comparison | None = None          # the compiled model against itself


def max_len_of(meta: dict, spec: ProgramSpec) -> int:
    return int(meta.get("max_len", spec.default_max_len))


def check_finite(model: Transformer, what: str) -> None:
    """Raises a one-line ``ToolkitError`` naming the first parameter with a NaN or infinity."""
    for name, w in model.tl_state_dict().items():
        if not torch.isfinite(w).all():
            raise ToolkitError(f"{what}: parameter {name} has non-finite values (NaN or inf)")


def _side(model: Transformer, data: Dataset, cfg: CompareConfig, examples: list[int], max_len: int,
          readouts: bool = True, ci: bool = True, output: OutputReadout | None = None) -> ModelSide:
    """Activations, readouts at every hook (CIs unless ``ci`` is off) and attention patterns of one model.

    ``output``: how the program's output is read from the model's logits (default: the argmax).
    """
    output = output or OutputReadout(model.cfg, data.output_vocab)
    hooks = resid_hooks(model.cfg)
    patt = [f"blocks.{l}.attn.hook_pattern" for l in range(model.cfg.n_layers)]
    logits, cache = run_cached(model, data.ids, hooks + patt)
    pred = output.predict(logits.cpu(), data.ids.cpu())[torch.from_numpy(data.row_input),
                                                        torch.from_numpy(data.row_pos)].numpy()
    resid = {h: at_rows(cache[h], data) for h in hooks}
    if not all(np.isfinite(x).all() for x in resid.values()):
        raise ToolkitError("the model's activations are not finite on the comparison inputs")
    side_readouts: dict = {v.name: {} for v in data.variables}
    fitted: dict = {v.name: {} for v in data.variables}
    if readouts:
        for i, h in enumerate(hooks):
            prev = hooks[i - 1] if i else None
            same = prev is not None and np.array_equal(resid[h], resid[prev])  # an empty sublayer (Tracr padding)
            for v in data.variables:
                if same:
                    side_readouts[v.name][h] = dataclasses.replace(side_readouts[v.name][prev], hook=h)
                    fitted[v.name][h] = fitted[v.name][prev]
                else:
                    side_readouts[v.name][h], fitted[v.name][h] = read_out(data, resid[h], v, h, cfg.seed,
                                                                           cfg.probe_iter, ci=ci)
    patterns = {l: heads_lib.normalised_rows(cache[n].cpu(), data.row_input, data.row_pos) for l, n in enumerate(patt)}
    raw = {l: cache[n][examples].double().cpu() for l, n in enumerate(patt)}
    key_ids = key_token_ids(model.cfg)
    key_mass = {l: heads_lib.key_token_mass(cache[n].cpu(), data.ids.cpu(), data.row_input, data.row_pos, key_ids)
                for l, n in enumerate(patt)}
    tokens = data.ids[torch.from_numpy(data.row_input), torch.from_numpy(data.row_pos)]
    direct = (model.param("embed.W_E")[tokens] + model.param("pos_embed.W_pos")[torch.from_numpy(data.row_pos)])
    return ModelSide(model, hooks, resid, {h: cache[h] for h in hooks}, pred, side_readouts, fitted, patterns,
                     raw, key_mass, embedding_basis(model, max_len), direct.detach().double().cpu().numpy(), output)


def key_token_ids(cfg) -> list[int]:
    """Ids of the tokens a head can attend to: every input token but the pad."""
    return [i for i, t in enumerate(cfg.vocab) if t != cfg.pad_token]


def key_attention(prep: Prepared, side: ModelSide) -> KeyAttention:
    """Attention mass of every head of ``side`` per key token type, by query position (see ``KeyAttention``)."""
    data, cfg = prep.data, side.model.cfg
    ids = key_token_ids(cfg)
    uniform = heads_lib.uniform_key_mass(data.ids.cpu(), data.row_input, data.row_pos, ids, cfg.causal,
                                         cfg.vocab.index(cfg.pad_token))  # [N, K]
    positions, uni = heads_lib.by_position(uniform, data.row_pos)
    heads, overall = {}, {}
    for l, h in heads_lib.head_names(side.model):
        mass = side.key_mass[l][h]  # [N, K]
        heads[head_name(l, h)] = heads_lib.by_position(mass, data.row_pos)[1].tolist()
        overall[head_name(l, h)] = mass.mean(0).tolist()
    return KeyAttention([cfg.vocab[i] for i in ids], positions, heads, uni.tolist(), overall,
                        uniform.mean(0).tolist())


def prepare(spec: ProgramSpec, compiled: Transformer, meta: dict, cfg: CompareConfig) -> Prepared:
    """Dataset, pairs and the compiled side; then the compiled model against itself (``reference``)."""
    check_finite(compiled, "compiled artifact")
    with frozen(compiled):
        keep = spec.language.well_formed if cfg.well_formed_only and spec.language is not None else None
        data = build_dataset(spec, meta, compiled.cfg, cfg.n_inputs, cfg.seed, cfg.folds, keep)
        rng = np.random.default_rng(cfg.seed)
        lens = np.array([len(x) for x in data.inputs])
        longest = np.flatnonzero(lens == lens.max())
        examples = sorted(rng.choice(longest, size=min(cfg.n_examples, len(longest)), replace=False).tolist())
        pairs = {}
        for i, v in enumerate(data.variables):
            prng = np.random.default_rng([cfg.seed, i])
            pairs[v.name] = {s: make_pairs(spec, data, v, s, n, prng)
                             for s, n in (("fit", cfg.n_fit), ("val", cfg.n_val), ("test", cfg.n_test))}
        side = _side(compiled, data, cfg, examples, max_len_of(meta, spec))
        sops = {(b["layer"], b["head"]): entry for entry in meta["block_map"] for b in entry["blocks"]
                if b["kind"] == "attn"}
        pad = compiled.cfg.vocab.index(compiled.cfg.pad_token)
        uniform = heads_lib.uniform_rows(data.ids.cpu(), data.row_input, data.row_pos, compiled.cfg.causal, pad)
    prep = Prepared(spec, meta, cfg, data, pairs, examples, uniform, side, sops, heads_lib.empty_heads(compiled))
    prep.reference = compare_models(prep, compiled)
    return prep


def untrained_baseline(prep: Prepared, like: Transformer,
                       output: OutputReadout | None = None) -> dict[str, dict[str, tuple[float, float]]]:
    """Live readout scores of ``n_untrained`` untrained networks shaped like ``like``: var -> hook -> (mean, sd)."""
    key = like.cfg.shape_key()
    if key not in prep.untrained:
        cfg, data = prep.config, prep.data
        hooks = resid_hooks(like.cfg)
        scores: dict = {v.name: {h: [] for h in hooks} for v in data.variables}
        for k in range(cfg.n_untrained):
            rand = Transformer(like.cfg).to(like.param("embed.W_E").dtype)
            rand.init_weights(torch.Generator().manual_seed(10_000 + k))
            side = _side(rand.eval(), data, cfg, [], max_len_of(prep.meta, prep.spec), ci=False, output=output)
            for v in data.variables:
                for h in hooks:
                    scores[v.name][h].append(side.readouts[v.name][h].live.value)
        prep.untrained[key] = {v: {h: (float(np.mean(s)), float(np.std(s))) for h, s in hs.items()}
                               for v, hs in scores.items()}
    return prep.untrained[key]


# ------------------------------------------------------------------- variables --

def output_ready(prep: Prepared, side: ModelSide) -> int | None:
    """Index of the first hook where the model's own output is readable (None: nowhere)."""
    out = prep.spec.output
    for i, h in enumerate(side.hooks):
        r = side.readouts[out][h]
        need = max(READ_OK, r.majority_live + 0.5 * (1.0 - r.majority_live))
        if at_least(r.live, need) is Tri.YES:
            return i
    return None


def ancestors(spec: ProgramSpec, name: str) -> set[str]:
    """The variables ``name`` is computed from (directly or not); inputs excluded."""
    parents = {v.name: set(v.parents) for v in spec.variables}
    out: set[str] = set()
    todo = list(parents.get(name, ()))
    while todo:
        p = todo.pop()
        if p in parents and p not in out:
            out.add(p)
            todo.extend(parents[p])
    return out


def descendants(spec: ProgramSpec, name: str) -> set[str]:
    """The variables computed (directly or not) from ``name``."""
    out: set[str] = set()
    for var in spec.variables:  # program order: parents come first
        if name in var.parents or out & set(var.parents):
            out.add(var.name)
    return out


def _train_rows(prep: Prepared, v: VariableInfo) -> np.ndarray:
    """Fit-split rows for pattern estimation: those where ``v`` is live, unless they are too few or miss a
    class ``v`` takes on live rows elsewhere (it would have no pattern to swap along); then all fit rows.
    Which classes can be live is a property of the program, decided by the causal model; no model's
    activations outside the fit split are used."""
    data = prep.data
    fit = data.split("fit")
    live = fit & data.live[v.name]
    if live.sum() < 20:
        return fit
    if v.encoding == "categorical":
        target = data.targets[v.name]
        seen = np.bincount(target[live], minlength=len(v.classes)) > 0
        needed = np.bincount(target[data.live[v.name]], minlength=len(v.classes)) > 0
        if (needed & ~seen).any():
            return fit
    return live


@dataclasses.dataclass(frozen=True)
class Swap:
    """The chosen interchange intervention of one variable: at ``hook``, ``x + (x~_src - x~_base) @ lifted``."""

    hook: str
    lifted: np.ndarray   # [D, D] the swap in residual coordinates (``Space.lift`` of the whitened projection)
    test_outputs: torch.Tensor  # [P, T] the model's output ids on the variable's test pairs with the swap


def locate(prep: Prepared, side: ModelSide, v: VariableInfo, vi: int, ready: int | None,
           swaps: dict[str, Swap] | None = None) -> VariableResult:
    """Finds where ``v`` lives in the model and decides its status (see the module docstring).

    ``swaps``: if given, receives the chosen intervention under ``v.name`` (for candidate ranking).
    """
    cfg, data = prep.config, prep.data
    hooks = side.hooks
    pairs = prep.pairs[v.name]
    upstream = v.name != prep.spec.output
    stop = (ready if ready is not None else len(hooks)) if upstream else len(hooks)
    rows = np.flatnonzero(_train_rows(prep, v))
    names = [u.name for u in data.variables]
    siblings = set(names) - descendants(prep.spec, v.name) - ancestors(prep.spec, v.name) - {v.name}
    # Two joint forward models: the variable with its siblings, and with its ancestors too. A swap moves
    # the variable's patterns and leaves the others' alone. Descendants are left out: they have no
    # representation of their own before they are computed, and they are functions of the rest.
    conditionals = [("pattern", [n for n in names if n == v.name or n in siblings])]
    if ancestors(prep.spec, v.name):
        conditionals.append(("pattern|ancestors", [n for n in names if n not in descendants(prep.spec, v.name)]))
    # A variable that determines v on these rows, or that v determines, would share v's patterns exactly
    # (e.g. theorem and count_I on well-formed prefixes): its columns are left out of v's forward model.
    tied = {n for n in names if n != v.name and dependent(data, rows, v.name, n)}
    designs = {kind: design(data, rows, [n for n in which if n not in tied]) for kind, which in conditionals}
    model = side.model

    def val_iia(h: str, proj_z: np.ndarray) -> float:
        return iia(model, data, pairs["val"], h, side.delta(h, pairs["val"]), side.space(data, h), proj_z,
                   side.base(data, h, pairs["val"]), side.readout)

    def run_das(h: str, init: np.ndarray, dim: int, salt: int) -> np.ndarray:
        return das(model, data, pairs["fit"], h, side.delta(h, pairs["fit"]), side.space(data, h), init,
                   dim, cfg.das_steps, cfg.das_lr, cfg.seed * 1000 + vi * 100 + salt, side.base(data, h, pairs["fit"]),
                   side.readout)

    trials, found, chosen = [], {}, None
    for i in range(max(stop, 1)):
        h = hooks[i]
        space = side.space(data, h)
        readable = side.readouts[v.name][h].live.value >= READ_OK
        cands = []
        for kind, (g, cols) in designs.items() if len(pairs["val"]) else []:
            own, proj = pattern_swap(space, side.xt(h)[rows], g, cols, v.name)
            if own.shape[1]:
                cands.append((kind, own.shape[1], own, proj, val_iia(h, proj)))
        if not cands:
            trials.append(HookTrial(h, readable, math.nan, None))
            continue
        cands = [max(cands, key=lambda c: (c[4], -c[1]))]  # the better pattern swap on validation pairs
        own, vp = cands[0][2], cands[0][4]
        vd = None
        if vp < IIA_OK and cfg.das_steps > 0 and cfg.search_das and readable:
            basis = run_das(h, own, own.shape[1], i)
            vd = val_iia(h, basis @ basis.T)
            cands.append(("das", basis.shape[1], basis, basis @ basis.T, vd))
        trials.append(HookTrial(h, readable, vp, vd))
        found[i] = cands
        if readable and max(vp, vd if vd is not None else -1.0) >= IIA_OK:
            chosen = i
            break

    def best(i: int) -> float:
        return max(c[4] for c in found[i])
    if chosen is None and found:
        causal = [i for i in found if best(i) >= IIA_OK]
        chosen = causal[0] if causal else max(found, key=lambda i: (best(i), -i))
    intervention = (_intervene(prep, side, v, vi, chosen, found[chosen], val_iia, run_das, swaps)
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
    readable, beyond, causal, status = decide_status(readout, intervention, coarse, testable)
    ref = prep.reference.variables[v.name].found_hook if prep.reference else hook
    compiled_hooks = prep.compiled.hooks
    anchor = compiled_hooks.index(ref) if prep.reference and ref else v.written_after
    return VariableResult(
        v.name, v.encoding, v.op, [str(c) for c in v.classes], compiled_hooks[v.written_after], len(v.labels),
        float(data.live[v.name].mean()), [side.readouts[v.name][h] for h in hooks], trials,
        hooks[ready] if ready is not None and upstream else None, hook,
        chosen - anchor if chosen is not None else None, readout, control, intervention,
        readable, beyond, causal, status, coarse, ref,
        {h: prep.compiled.readouts[v.name][h].live.value for h in compiled_hooks},
        compiled_hooks[v.first_written] if v.first_written >= 0 else None)


def _intervene(prep: Prepared, side: ModelSide, v: VariableInfo, vi: int, i: int, cands: list, val_iia,
               run_das, swaps: dict[str, Swap] | None = None) -> Intervention:
    """The DAS sweep, test IIA with CI, null, strata and embedding overlap at hook index ``i``."""
    cfg, data = prep.config, prep.data
    h = side.hooks[i]
    space = side.space(data, h)
    own = cands[0][2]
    options = list(cands)
    sweep = {str(c[1]): c[4] for c in cands if c[0] == "das"}
    dims = cfg.das_dims or ((own.shape[1],) if cfg.das_steps > 0 and not sweep else ())  # at least one DAS
    for k in dims:
        if k > space.m or str(k) in sweep:
            continue
        basis = run_das(h, own, k, 50 + k)
        sweep[str(k)] = val_iia(h, basis @ basis.T)
        options.append(("das", k, basis, basis @ basis.T, sweep[str(k)]))
    # A swap no better than random subspaces of its size is no evidence of where the variable lives (a large
    # DAS dimension can make almost anything "causal"): such options are dropped unless every one is.
    val = prep.pairs[v.name]["val"]
    val_delta, val_base = side.delta(h, val), side.base(data, h, val)
    nulls = {d: null_iia(side.model, data, val, h, val_delta, space, d, max(3, cfg.n_null // 4), cfg.seed + 7 * vi,
                         val_base, side.readout)[1] for d in {o[1] for o in options}}
    selective = [o for o in options if not o[4] < nulls[o[1]] + SELECTIVE] or options  # nan null: nothing to beat
    top = max(o[4] for o in selective)
    kind, dim, basis, proj, val_score = min((o for o in selective if o[4] >= top - SWEEP_TOL),
                                            key=lambda o: (o[1], o[0] == "das"))
    test = prep.pairs[v.name]["test"]
    delta = side.delta(h, test)
    base = side.base(data, h, test)
    outputs = (patched_outputs(side.model, data, test, h, delta, space.lift(proj), base, side.readout) if len(test)
               else torch.zeros((0, data.ids.shape[1]), dtype=torch.long))
    if swaps is not None:
        swaps[v.name] = Swap(h, space.lift(proj), outputs)
    hit = agrees(outputs, test.target)
    groups = data.group[test.base]
    null_mean, null_p95 = null_iia(side.model, data, test, h, delta, space, dim, cfg.n_null, cfg.seed + vi, base,
                                   side.readout)
    return Intervention(h, kind, dim, float(val_score), bootstrap(hit.astype(float), groups, cfg.seed), null_mean, null_p95,
                        embed_overlap(space, basis, side.embed), dict(sorted(sweep.items(), key=lambda kv: int(kv[0]))),
                        stratified(hit, data.row_pos[test.base], groups, cfg.seed),
                        stratified(hit, test.value, groups, cfg.seed),
                        len(prep.pairs[v.name]["fit"]), len(prep.pairs[v.name]["val"]), len(test),
                        stratified(hit, np.where(test.cross, "other position", "same position"), groups, cfg.seed))


# ----------------------------------------------------------------------- heads --

def head_writes(prep: Prepared, side: ModelSide, layer: int, head: int, means, resampled) -> dict[str, float]:
    """Drop of every variable's held-out live readout at the end of ``layer`` when the head is mean-ablated."""
    data = prep.data
    hook = side.hooks[2 * layer + 2]
    _, abl = run_cached(side.model, data.ids, [hook], hooks=ablation_hooks([(layer, head)], "mean", means, resampled))
    x = at_rows(abl[hook], data)
    out = {}
    for v in data.variables:
        fitted, truth, live = side.fitted[v.name][hook], data.targets[v.name], data.live[v.name]
        if not live.any():
            continue
        if v.encoding == "categorical":
            out[v.name] = float((fitted.pred[live] == truth[live]).mean()
                                - (predict_held_out(fitted, x)[live] == truth[live]).mean())
        else:
            out[v.name] = float(r2_score(truth[live], fitted.pred[live])
                                - r2_score(truth[live], predict_held_out(fitted, x)[live]))
    return out


def _write_similarity(a: dict[str, float], b: dict[str, float]) -> float:
    """Cosine between two heads' write profiles (readout drop per variable when ablated); 0 if either is empty."""
    keys = sorted(set(a) | set(b))
    u, v = np.array([max(a.get(k, 0.0), 0.0) for k in keys]), np.array([max(b.get(k, 0.0), 0.0) for k in keys])
    norm = np.linalg.norm(u) * np.linalg.norm(v)
    return float(u @ v / norm) if norm > 0 else 0.0


def compare_heads(prep: Prepared, side: ModelSide) -> Heads:
    """Pattern agreement of every compiled head with every learned head, matching, and head writes."""
    compiled_names = heads_lib.head_names(prep.compiled.model)
    learned_names = heads_lib.head_names(side.model)
    sim = heads_lib.similarity_matrix(prep.compiled.patterns, side.patterns, compiled_names, learned_names)
    # A head that writes nothing (all-zero OV, as Tracr pads layers) matches nothing: its pattern is noise, and
    # a uniform one would tie with a compiled mean head.
    silent = heads_lib.empty_heads(side.model)
    sim[:, [j for j, n in enumerate(learned_names) if n in silent]] = 0.0
    live = [i for i, n in enumerate(compiled_names) if n not in prep.empty]
    means, resampled = z_statistics(side.model, prep.data, prep.config.seed)
    writes = {n: head_writes(prep, side, *n, means, resampled) for n in learned_names}
    ref_writes = prep.reference.heads.learned_writes if prep.reference else {
        head_name(*n): w for n, w in writes.items()}  # the reference is the compiled model itself
    # Patterns decide; what a head writes only breaks near-ties (two heads that both average the prefix).
    tie = np.array([[_write_similarity(ref_writes.get(head_name(*c), {}), writes[lh]) for lh in learned_names]
                    for c in compiled_names])
    matches = []
    for i, j, _ in heads_lib.match_heads(sim + 0.01 * tie, live):
        c, lh = compiled_names[i], learned_names[j]
        per_row = heads_lib.row_agreements(prep.compiled.patterns[c[0]][c[1]], side.patterns[lh[0]][lh[1]])
        agreement = bootstrap(per_row, prep.data.group, prep.config.seed)
        entry = prep.sops.get(c, {})
        uniform = heads_lib.row_agreement(prep.compiled.patterns[c[0]][c[1]], prep.uniform)
        matches.append(HeadMatch(head_name(*c), head_name(*lh), entry.get("sop", ""), entry.get("op", ""), agreement,
                                 uniform, bool(agreement.lo >= MATCH_OK),
                                 {k: x for k, x in ref_writes.get(head_name(*c), {}).items() if x >= WRITES},
                                 {k: x for k, x in writes[lh].items() if x >= WRITES}))
    matched = {m.learned for m in matches if m.is_match}
    return Heads([head_name(*n) for n in compiled_names], [head_name(*n) for n in learned_names], sim.tolist(),
                 [head_name(*n) for n in compiled_names if n in prep.empty], matches,
                 [head_name(*n) for n in learned_names if head_name(*n) not in matched],
                 {head_name(*n): w for n, w in writes.items()})


def legal_next(prep: Prepared, side: ModelSide) -> dict[str, list[HookReadout]]:
    """What only a language model needs: is each next token (and the end) legal after the prefix?

    Read out at every hook, for each output token whose legality varies over the rows. A token is legal
    when the prefix with it is still well formed in the task's language; the end, when the prefix is a
    member (for MIU: a theorem).
    """
    data, language = prep.data, prep.spec.language
    if language is None or language.well_formed is None:
        return {}
    prefixes = [data.inputs[i][:p] for i, p in zip(data.row_input, data.row_pos)]
    out = {}
    for token in side.model.cfg.output_vocab:
        if token == language.end_token:
            legal = np.array([language.is_member(x) for x in prefixes])
        else:
            legal = np.array([language.well_formed(x + (token,)) for x in prefixes])
        if legal.all() or not legal.any():
            continue
        info = VariableInfo(f"legal {token}", "categorical", (), (), (False, True), 0, f"next token {token} legal")
        labels = legal.astype(np.int64)
        tmp = dataclasses.replace(data, live={**data.live, info.name: np.ones(len(labels), dtype=bool)})
        out[token] = [read_out(tmp, side.resid[h], info, h, prep.config.seed, prep.config.probe_iter, labels=labels)[0]
                      for h in side.hooks]
    return out


# ---------------------------------------------------------------------- driver --

def compare_models(prep: Prepared, model: Transformer, output: OutputReadout | None = None) -> Comparison:
    """Compares one model with the prepared compiled side; returns a typed ``Comparison``.

    ``output``: how the program's output is read from the model (default: the argmax of a model whose
    outputs are the program's; ``compare.outputs.readout_for`` reads it from an artifact's model.json).
    The model may have another shape than the compiled one (a candidate program's): only its input and
    output vocabularies must agree.
    """
    return measure(prep, model, output)[0]


def measure(prep: Prepared, model: Transformer, output: OutputReadout | None = None
            ) -> tuple[Comparison, ModelSide, dict[str, Swap]]:
    """``compare_models``, also returning the model's side and each variable's chosen ``Swap``."""
    cfg, data = prep.config, prep.data
    check_finite(model, "model")
    if model.cfg.vocab != prep.compiled.model.cfg.vocab:
        raise ToolkitError("the model's input vocabulary differs from the compiled model's")
    torch.manual_seed(cfg.seed)
    with frozen(prep.compiled.model, model):
        side = prep.compiled if model is prep.compiled.model else _side(
            model, data, cfg, prep.examples, max_len_of(prep.meta, prep.spec), output=output)
        base = untrained_baseline(prep, model, side.readout)
        for v in data.variables:
            for h, r in side.readouts[v.name].items():
                r.untrained_live, r.untrained_sd = base[v.name][h]
        ready = output_ready(prep, side)
        swaps: dict[str, Swap] = {}
        variables = {v.name: locate(prep, side, v, i, ready, swaps) for i, v in enumerate(data.variables)}
        heads = compare_heads(prep, side)
        matched = [tuple(int(c) for c in m.learned[1:].split("H")) for m in heads.matches if m.is_match]
        names = heads_lib.head_names(model)
        ablation = run_ablations(model, data, names, {"matched": matched,
                                                      "unmatched": [n for n in names if n not in matched]}, cfg.seed,
                                 side.readout, cfg.ablation_modes)
        legal = legal_next(prep, side) if side.readout.kind == "lm" else {}
        same_shape = side.hooks == prep.compiled.hooks
        maps = map_decoding(prep.compiled.resid, side.resid, data) if same_shape else {}
        cka = cka_matrix(prep.compiled.resid, side.resid, prep.compiled.hooks, side.hooks)
    last = data.resid_hooks[-1]
    return Comparison(
        settings=cfg.to_dict(),
        data={"n_inputs": len(data.inputs), "n_strings": int(len(np.unique(data.group))),
              "exhaustive": data.exhaustive, "n_rows": data.n_rows, "causal": data.causal,
              "max_len": max_len_of(prep.meta, prep.spec), "folds": cfg.folds,
              "live_share": {v.name: float(data.live[v.name].mean()) for v in data.variables}},
        task_accuracy={"compiled": float((prep.compiled.pred == data.outputs).mean()),
                       "model": float((side.pred == data.outputs).mean()), "readout": side.readout.describe()},
        variables=variables, heads=heads, ablation=ablation,
        cka={"hooks": prep.compiled.hooks, "model_hooks": side.hooks, "matrix": cka.tolist(),
             "matched_positions": [float(cka[i, i]) for i in range(len(cka))] if same_shape else []},
        maps={"per_hook": maps, "fraction_decodable_one_map": {k: maps[k][last]["fraction_decodable"] for k in maps}},
        examples={"inputs": [" ".join(data.inputs[i]) if any(len(t) > 1 for t in data.inputs[i])
                             else "".join(data.inputs[i]) for i in prep.examples],
                  "compiled": {head_name(l, h): prep.compiled.raw_patterns[l][:, h].tolist()
                               for l, h in heads_lib.head_names(prep.compiled.model)},
                  "learned": {head_name(l, h): side.raw_patterns[l][:, h].tolist()
                              for l, h in heads_lib.head_names(model)}},
        summary=summarise(variables, heads), legal_next=legal, attention=key_attention(prep, side)), side, swaps
