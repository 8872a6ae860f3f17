"""``compare_models``: where, and whether, a model implements each compiled variable.

``prepare`` does the shared work once (inputs, distinct rows, folds, live
masks, intervention pairs, untrained baselines) and analyses the compiled
model against itself (``Prepared.reference``), so every finding about a
learned model is put beside what the same method finds in the compiled one.
``compare_models`` then returns a typed ``Comparison`` for any model of the
same vocabularies. Everything random is seeded from ``CompareConfig.seed``.

Per compiled variable, ``compare.locate`` finds where it lives (every
residual hook searched, choices made on distinguishing validation pairs),
tests it on held-out pairs against copying the output and random subspaces,
reads it inside the causal subspace and decides its status.
Heads: pattern agreement with CIs and optimal matching (``compare.heads``),
what each head writes; ablations (``compare.ablations``); CKA and maps
(``compare.similarity``).
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Iterator

import numpy as np
import torch
from sklearn.metrics import r2_score

from compare import heads as heads_lib
from compare.ablations import ablation_hooks, head_name, run_ablations, z_statistics
from compare.activations import (Dataset, VariableInfo, at_rows, build_dataset, embedding_basis, resid_hooks,
                                 run_cached)
from compare.identifiability import output_partition
from compare.interventions import Pairs, Space, make_pairs, make_space
from compare.locate import Swap, locate
from compare.outputs import OutputReadout
from compare.readouts import Fitted, predict_held_out, read_out
from compare.results import MATCH_OK, Comparison, HeadMatch, Heads, HookReadout, KeyAttention, summarise
from compare.similarity import cka_matrix, map_decoding
from compare.stats import bootstrap
from compare.threads import one_thread
from learned.model import Transformer
from rasp_programs.errors import ToolkitError
from rasp_programs.spec import ProgramSpec

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
    das_restarts: int = 3       # DAS starts per dimension: pattern basis, probe (or logit) direction, random
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
                   das_steps=15, das_dims=(), das_restarts=1, search_das=False, n_null=10, ablation_modes=("mean",),
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
    alias: dict[str, str] = dataclasses.field(default_factory=dict)  # hook -> earlier hook with the same residual
    selection: dict = dataclasses.field(default_factory=dict)       # (variable, hook) -> fit/val-only readout

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
    partitions: dict[str, list[list[str]]] = dataclasses.field(default_factory=dict)  # output-relevant partitions
    untrained_sides: dict[tuple, list["ModelSide"]] = dataclasses.field(default_factory=dict)  # shape -> sides
    subspace_untrained: dict[tuple, float | None] = dataclasses.field(default_factory=dict)


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
    alias = {}
    for i, h in enumerate(hooks[1:], 1):  # an empty sublayer (Tracr padding) leaves the residual as it was
        if np.array_equal(resid[h], resid[hooks[i - 1]]):
            alias[h] = alias.get(hooks[i - 1], hooks[i - 1])
    if readouts:
        for i, h in enumerate(hooks):
            prev = hooks[i - 1] if i else None
            same = h in alias
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
                     raw, key_mass, embedding_basis(model, max_len), direct.detach().double().cpu().numpy(), output,
                     alias=alias)


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
        # Fit and validation pairs take the source at the base's position, so no candidate's counterfactuals
        # across positions steer the subspace; cross-position pairs are for testing only.
        pairs = {}
        for i, v in enumerate(data.variables):
            prng = np.random.default_rng([cfg.seed, i])
            pairs[v.name] = {s: make_pairs(spec, data, v, s, n, prng, cross_share=share)
                             for s, n, share in (("fit", cfg.n_fit, 0.0), ("val", cfg.n_val, 0.0),
                                                 ("test", cfg.n_test, 0.5))}
        partitions = {v.name: output_partition(spec, data, v.name, cfg.seed) for v in data.variables}
        side = _side(compiled, data, cfg, examples, max_len_of(meta, spec))
        sops = {(b["layer"], b["head"]): entry for entry in meta["block_map"] for b in entry["blocks"]
                if b["kind"] == "attn"}
        pad = compiled.cfg.vocab.index(compiled.cfg.pad_token)
        uniform = heads_lib.uniform_rows(data.ids.cpu(), data.row_input, data.row_pos, compiled.cfg.causal, pad)
    prep = Prepared(spec, meta, cfg, data, pairs, examples, uniform, side, sops, heads_lib.empty_heads(compiled),
                    partitions=partitions)
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
        sides = []
        for k in range(cfg.n_untrained):
            rand = Transformer(like.cfg).to(like.param("embed.W_E").dtype)
            rand.init_weights(torch.Generator().manual_seed(10_000 + k))
            side = _side(rand.eval(), data, cfg, [], max_len_of(prep.meta, prep.spec), ci=False, output=output)
            side.full = {}  # kept for subspace baselines; interventions never run on it
            sides.append(side)
            for v in data.variables:
                for h in hooks:
                    scores[v.name][h].append(side.readouts[v.name][h].live.value)
        prep.untrained_sides[key] = sides
        prep.untrained[key] = {v: {h: (float(np.mean(s)), float(np.std(s))) for h, s in hs.items()}
                               for v, hs in scores.items()}
    return prep.untrained[key]


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
    with frozen(prep.compiled.model, model):
        side = prep.compiled if model is prep.compiled.model else _side(
            model, data, cfg, prep.examples, max_len_of(prep.meta, prep.spec), output=output)
        base = untrained_baseline(prep, model, side.readout)
        for v in data.variables:
            for h, r in side.readouts[v.name].items():
                r.untrained_live, r.untrained_sd = base[v.name][h]
        swaps: dict[str, Swap] = {}
        variables = {v.name: locate(prep, side, v, i, swaps) for i, v in enumerate(data.variables)}
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
        summary=summarise(variables, heads), legal_next=legal, attention=key_attention(prep, side),
        layer_norm=model.cfg.layer_norm), side, swaps
