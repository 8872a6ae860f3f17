"""``compare_models``: the whole comparison of one learned model against the compiled one.

Usable per checkpoint: ``prepare`` does the compiled side once (inputs,
activations, readouts, patterns, intervention pairs), ``compare_models`` then
costs one pass over the learned model. ``CompareConfig.fast()`` is the cheap
setting for many checkpoints. Every random choice is seeded from
``CompareConfig.seed``; the returned dict is plain JSON (``compare.json``).

Per compiled variable:
  1. readouts at every residual hook (``compare.readouts``); the *aligned
     hook* is the earliest hook at or after the one where the compiled model
     has written the variable whose readout is within 0.01 of the best there,
     and (for an upstream variable) before the learned model's output is
     readable: swapping a subspace that already holds the output would flip
     the output whatever the variable, which is no evidence about it;
  2. candidate subspaces at that hook, each with the embedding span removed
     (an intervention must not swap the raw token or position): the
     readout's row space, LDA, and strongly regularised LDA; the one with the
     best IIA on the *training* pairs is kept and its IIA reported on the
     separate test pairs ("IIA readout subspace");
  3. DAS started from that subspace, same dimension ("IIA DAS");
  4. a status (see the table below) from the readout and the best IIA.
Heads: pattern agreement, optimal matching, what each head writes
(``compare.heads``, ``compare.interventions.head_writes``); ablations; CKA
and learned -> compiled maps (``compare.similarity``).
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Iterator

import numpy as np
import torch

from compare import heads as H
from compare import interventions as I
from compare.activations import Dataset, at_rows, build_dataset, embedding_basis, run_cached, sample_rows, subset
from compare.readouts import Readout, best_hook, fit_readouts, lda_basis
from compare.similarity import cka_matrix, map_decoding
from compare.threads import one_thread
from learned.model import Transformer
from rasp_programs.spec import ProgramSpec

# Status of a compiled variable in the learned model:
#   computed               readable at the aligned hook (``is_readable``) and causal (best IIA >= IIA_OK)
#   input-level            readable already from the embeddings, and no subspace outside them is causal:
#                          no separate representation beyond the tokens and positions
#   correlational only     readable but not causal
#   coarsened              not readable, but causal: the model keeps only what the output needs
#                          (the report names any readable coarsening: == 0, mod 2, mod 3)
#   readable, not testable readable, and no intervention on it has a defined outcome
#   not represented        none of the above
READ_OK = 0.95     # a variable is readable at accuracy / R² >= READ_OK
IIA_OK = 0.9       # ... and causal at IIA >= IIA_OK
WRITES = 0.1       # a head writes a variable if ablating it drops the readout by >= WRITES


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """Sample sizes and seeds of one comparison (saved in ``compare.json``)."""

    seed: int = 0
    n_inputs: int = 3000        # inputs (all of them if there are fewer)
    readout_rows: int = 8000    # rows used for readouts, CKA and maps
    folds: int = 3
    ridge: float = 1e-5
    logistic_iters: int = 50    # L-BFGS iterations of the logistic readouts (variables with <= 3 classes)
    n_ablation_inputs: int = 1000  # inputs for head ablations and head writes
    n_pairs: int = 300          # effective IIA test pairs per variable (as many again train DAS)
    das_steps: int = 100
    das_lr: float = 0.02
    match_threshold: float = 0.8
    n_examples: int = 3

    @classmethod
    def fast(cls, seed: int = 0) -> "CompareConfig":
        """Cheap setting for many checkpoints (training dynamics)."""
        return cls(seed=seed, n_inputs=800, readout_rows=3000, n_ablation_inputs=300, n_pairs=100, das_steps=30,
                   logistic_iters=20)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@contextlib.contextmanager
def frozen(*models: Transformer) -> Iterator[None]:
    """Inside the block: gradients off for the models' parameters and one compute thread
    (``compare.threads.one_thread``); both restored after."""
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


def head_name(l: int, h: int) -> str:
    return f"L{l}H{h}"


@dataclasses.dataclass
class ModelSide:
    """Everything computed from one model on the shared dataset."""

    model: Transformer
    resid: dict[str, np.ndarray]
    pred: np.ndarray
    readouts: dict[str, dict[str, Readout]]
    patterns: dict[int, np.ndarray]        # layer -> [H, N, T-1] renormalised non-BOS rows
    z_means: dict[int, torch.Tensor]
    raw_patterns: dict[int, torch.Tensor]  # layer -> [E, H, T, T] on the example inputs
    sub_resid: dict[str, np.ndarray]       # clean residuals at the rows of the ablation subset
    embed: np.ndarray                      # [D, e] span of the embeddings (left alone by interventions)


@dataclasses.dataclass
class Prepared:
    """The compiled side, shared by every ``compare_models`` call."""

    spec: ProgramSpec
    meta: dict
    config: CompareConfig
    data: Dataset
    rows: np.ndarray
    sub: Dataset                            # the ablation subset
    sub_inputs: np.ndarray
    compiled: ModelSide
    compiled_writes: dict
    empty: set
    sops: dict                              # (layer, head) -> block_map entry of its SOp
    pairs: dict[str, tuple[I.Pairs, I.Pairs]]  # variable -> (train, test)
    examples: list[int]
    uniform: np.ndarray                     # [N, T-1] uniform-over-allowed-keys rows


def _side(model: Transformer, data: Dataset, rows: np.ndarray, cfg: CompareConfig,
          examples: list[int], sub_inputs: np.ndarray, max_len: int, readouts: bool = True) -> ModelSide:
    """Activations, readouts (unless ``readouts=False``) and patterns of one model on the dataset."""
    patt = [f"blocks.{l}.attn.hook_pattern" for l in range(model.cfg.n_layers)]
    zs = [f"blocks.{l}.attn.hook_z" for l in range(model.cfg.n_layers)]
    logits, cache = run_cached(model, data.ids, data.resid_hooks + patt + zs)
    pred = logits.argmax(-1)[torch.from_numpy(data.row_input), torch.from_numpy(data.row_pos)].numpy()
    resid = {h: at_rows(cache[h], data) for h in data.resid_hooks}
    fitted = fit_readouts(data, resid, rows, cfg.folds, cfg.ridge, cfg.seed, cfg.logistic_iters) if readouts else {}
    sub_in, sub_pos = data.row_input[rows], data.row_pos[rows]
    patterns = {l: H.normalised_rows(cache[n], sub_in, sub_pos) for l, n in enumerate(patt)}
    raw = {l: cache[n][examples].double() for l, n in enumerate(patt)}
    z_means = {l: cache[n].mean(0) for l, n in enumerate(zs)}
    sub_rows = np.isin(data.row_input, sub_inputs)
    sub_resid = {h: x[sub_rows] for h, x in resid.items()}
    return ModelSide(model, resid, pred, fitted, patterns, z_means, raw, sub_resid,
                     embedding_basis(model, max_len))


def prepare(spec: ProgramSpec, compiled: Transformer, meta: dict, cfg: CompareConfig) -> Prepared:
    """The compiled side: dataset, activations, readouts, patterns and intervention pairs."""
    with frozen(compiled):
        data = build_dataset(spec, meta, compiled.cfg, cfg.n_inputs, cfg.seed)
        data.ids = data.ids.to(compiled.param("embed.W_E").device)
        rng = np.random.default_rng(cfg.seed)
        rows = sample_rows(data.n_rows, cfg.readout_rows, rng)
        lens = np.array([len(x) for x in data.inputs])
        longest = np.flatnonzero(lens == lens.max())
        examples = sorted(rng.choice(longest, size=min(cfg.n_examples, len(longest)), replace=False).tolist())
        sub_inputs = sample_rows(len(data.inputs), cfg.n_ablation_inputs, rng)
        sub = subset(data, sub_inputs)
        side = _side(compiled, data, rows, cfg, examples, sub_inputs, _max_len(meta, spec))
        empty = H.empty_heads(compiled)
        writes = {n: I.head_writes(compiled, sub, side.readouts, side.sub_resid, n[0], n[1], side.z_means)
                  for n in H.head_names(compiled) if n not in empty}
        sops = {}
        for entry in meta["block_map"]:
            for b in entry["blocks"]:
                if b["kind"] == "attn":
                    sops[(b["layer"], b["head"])] = entry
        pairs = {}
        for v in data.variables:
            prng = np.random.default_rng([cfg.seed, data.variables.index(v)])
            both = I.make_pairs(spec, data, v, 2 * cfg.n_pairs, prng)
            half = len(both) // 2
            pairs[v.name] = (both.take(slice(0, half)), both.take(slice(half, None)))
        pad = compiled.cfg.vocab.index(compiled.cfg.pad_token)
        uniform = H.uniform_rows(data.ids.cpu(), data.row_input[rows], data.row_pos[rows], compiled.cfg.causal, pad)
    return Prepared(spec, meta, cfg, data, rows, sub, sub_inputs, side, writes, empty, sops, pairs, examples, uniform)


def _max_len(meta: dict, spec: ProgramSpec) -> int:
    return int(meta.get("max_len", spec.default_max_len))


def intervention_basis(weight: np.ndarray, embed: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """``[D, r]`` orthonormal basis of the readout's row space with the embedding span projected out."""
    w = weight - embed @ (embed.T @ weight)
    u, s, _ = np.linalg.svd(w, full_matrices=False)
    if s.size == 0 or s[0] <= 1e-12:
        return np.zeros((weight.shape[0], 0))
    return u[:, s > tol * s[0]]


def _output_ready(prep: Prepared, learned: ModelSide, v) -> int | None:
    """For an upstream variable, the first hook (at or after its compiled hook) where the learned model's
    output is already readable: intervening there or later could act through the output directly, so
    the aligned hook stays before it (``None``: no limit, or the output variable itself)."""
    out = prep.spec.output
    if v.name == out:
        return None
    hooks = prep.data.resid_hooks
    ro = learned.readouts[out]
    for i in range(v.written_after + 1, len(hooks)):
        if is_readable(ro[hooks[i]].score, ro[hooks[i]].baseline):
            return i
    return None


def is_readable(score: float, baseline: float) -> bool:
    """Score >= READ_OK and at least half-way from the baseline to 1 (rare classes need more)."""
    return score >= READ_OK and score - baseline >= 0.5 * (1.0 - baseline)


def _variables(prep: Prepared, learned: ModelSide) -> dict:
    cfg, data = prep.config, prep.data
    out = {}
    for vi, v in enumerate(data.variables):
        ro = learned.readouts[v.name]
        hooks = data.resid_hooks
        best_any = max(hooks, key=lambda h: (ro[h].score, -hooks.index(h)))
        at = best_hook(ro, hooks, start=v.written_after, stop=_output_ready(prep, learned, v))
        r = ro[at]
        train, test = prep.pairs[v.name]
        candidates = {"readout": intervention_basis(r.weight, learned.embed)}
        if v.encoding == "categorical":
            x, y = learned.resid[at][prep.rows], data.targets[v.name][prep.rows]
            candidates["lda"] = lda_basis(x, y, len(v.classes), learned.embed, eps=1e-6)
            candidates["lda-regularised"] = lda_basis(x, y, len(v.classes), learned.embed, eps=1.0)
        train_scores = {k: I.readout_iia(learned.model, data, train, at, b) for k, b in candidates.items()}
        chosen = max(candidates, key=lambda k: (np.nan_to_num(train_scores[k], nan=-1.0), -list(candidates).index(k)))
        basis = candidates[chosen]
        iia_ro = I.readout_iia(learned.model, data, test, at, basis)
        dim = max(1, basis.shape[1])
        init = basis
        d = I.das(learned.model, data, train, test, at, init, dim, cfg.das_steps, cfg.das_lr,
                  seed=cfg.seed * 1000 + vi) if cfg.das_steps > 0 else {"iia": float("nan"), "train_iia": float("nan")}
        best_iia = np.nanmax([iia_ro, d["iia"]]) if not (np.isnan(iia_ro) and np.isnan(d["iia"])) else float("nan")
        readable = is_readable(r.score, r.baseline)
        causal = bool(best_iia >= IIA_OK)
        testable = len(test) > 0
        coarse = {}
        for dv in data.derived:
            if dv.name.startswith(v.name + " "):
                dro = learned.readouts[dv.name]
                dh = best_hook(dro, hooks, start=v.written_after)
                coarse[dv.name] = {"hook": dh, "score": dro[dh].score, "baseline": dro[dh].baseline,
                                   "compiled_score": prep.compiled.readouts[dv.name][dh].score}
        kept = [k for k, c in coarse.items() if is_readable(c["score"], c["baseline"])]
        at_input = is_readable(ro[hooks[0]].score, ro[hooks[0]].baseline)
        status = ("computed" if readable and causal else
                  "readable, not testable" if readable and not testable else
                  "input-level" if readable and at_input else
                  "correlational only" if readable else
                  "coarsened" if causal else "not represented")
        out[v.name] = {
            "encoding": v.encoding, "op": v.op, "compiled_block": list(v.labels),
            "compiled_dim": len(v.labels),
            "classes": [str(c) for c in v.classes],
            "compiled_written_at": hooks[v.written_after],
            "readouts": {h: ro[h].summary() for h in hooks},
            "compiled_readouts": {h: prep.compiled.readouts[v.name][h].score for h in hooks},
            "best_hook": best_any, "best_score": ro[best_any].score,
            "best_at_or_after_compiled": hooks.index(best_any) >= v.written_after,
            "aligned_hook": at, "aligned_score": r.score, "baseline": r.baseline,
            "readout_dim": int(r.basis.shape[1]), "readout_energy_dim": r.energy_dim,
            "intervention_dim": int(basis.shape[1]), "intervention_subspace": chosen,
            "subspace_train_iia": train_scores,
            "n_pairs_train": len(train), "n_pairs_test": len(test),
            "iia_readout": iia_ro, "iia_das": d["iia"], "das_train_iia": d["train_iia"], "das_dim": dim,
            "correlational_only": bool(readable and testable and not causal), "status": status,
            "readable_from_embeddings": ro[hooks[0]].score,
            "coarsenings": coarse, "readable_coarsenings": sorted(kept, key=lambda k: -coarse[k]["score"]),
        }
    return out


def _heads(prep: Prepared, learned: ModelSide) -> dict:
    cfg, data, model = prep.config, prep.data, learned.model
    names = H.head_names(model)
    sim = H.similarity_matrix(prep.compiled.patterns, learned.patterns, names, names)
    uni = {n: H.row_agreement(prep.compiled.patterns[n[0]][n[1]], prep.uniform) for n in names}
    live = [i for i, n in enumerate(names) if n not in prep.empty]
    matches = H.match_heads(sim, live)
    writes = {n: I.head_writes(model, prep.sub, learned.readouts, learned.sub_resid, n[0], n[1], learned.z_means)
              for n in names}
    compiled_writes = prep.compiled_writes
    matched_cols = {j for _, j, s in matches if s >= cfg.match_threshold}
    table = []
    for i, j, s in matches:
        c, lh = names[i], names[j]
        entry = prep.sops.get(c, {})
        table.append({
            "compiled": head_name(*c), "sop": entry.get("sop"), "op": entry.get("op"),
            "learned": head_name(*lh), "score": s, "uniform_baseline": uni[c],
            "is_match": s >= cfg.match_threshold,
            "compiled_writes": {k: v for k, v in compiled_writes[c].items() if v >= WRITES},
            "learned_writes": {k: v for k, v in writes[lh].items() if v >= WRITES},
        })
    return {
        "names": [head_name(*n) for n in names],
        "similarity": sim.tolist(),
        "empty_compiled": [head_name(*n) for n in names if n in prep.empty],
        "uniform_baseline": {head_name(*n): uni[n] for n in names},
        "matches": table,
        "unmatched_learned": [{"learned": head_name(*names[j]),
                               "best_compiled": head_name(*names[live[int(np.argmax(sim[live, j]))]]) if live else None,
                               "best_score": float(sim[live, j].max()) if live else float("nan"),
                               "writes": {k: v for k, v in writes[names[j]].items() if v >= WRITES}}
                              for j in range(len(names)) if j not in matched_cols],
        "learned_writes": {head_name(*n): writes[n] for n in names},
        "recovered": [[names[i], names[j]] for i, j, s in matches if s >= cfg.match_threshold],
    }


def _ablation(prep: Prepared, learned: ModelSide, heads: dict) -> dict:
    model, data = learned.model, prep.sub
    names = H.head_names(model)
    by_name = {head_name(*n): n for n in names}
    matched = [by_name[m["learned"]] for m in heads["matches"] if m["is_match"]]
    unmatched = [n for n in names if n not in matched]
    out = {"clean": I.task_accuracy(model, data)}
    for mode in ("mean", "zero"):
        res = {"per_head": {}}
        for n in names:
            res["per_head"][head_name(*n)] = out["clean"] - I.task_accuracy(
                model, data, I.ablation_hooks([n], mode, learned.z_means))
        for group, hs in (("matched", matched), ("unmatched", unmatched)):
            res[group] = {"heads": [head_name(*n) for n in hs],
                          "drop": out["clean"] - I.task_accuracy(model, data, I.ablation_hooks(hs, mode, learned.z_means))
                          if hs else 0.0}
        out[mode] = res
    return out


def compare_models(prep: Prepared, learned_model: Transformer) -> dict:
    """Compares one learned model with the prepared compiled side; returns a JSON-ready dict."""
    cfg, data = prep.config, prep.data
    torch.manual_seed(cfg.seed)
    with frozen(prep.compiled.model, learned_model):
        learned = _side(learned_model, data, prep.rows, cfg, prep.examples, prep.sub_inputs,
                        _max_len(prep.meta, prep.spec))
        variables = _variables(prep, learned)
        heads = _heads(prep, learned)
        ablation = _ablation(prep, learned, heads)
        maps = map_decoding(prep.compiled.resid, learned.resid, data, prep.rows, cfg.folds, cfg.seed)
        cka = cka_matrix(prep.compiled.resid, learned.resid, data.resid_hooks, prep.rows)
        compiled_acc = float((prep.compiled.pred == data.outputs).mean())
    last = data.resid_hooks[-1]
    return {
        "settings": cfg.to_dict(),
        "data": {"n_inputs": len(data.inputs), "exhaustive": data.exhaustive, "n_rows": data.n_rows,
                 "readout_rows": len(prep.rows), "ablation_inputs": len(prep.sub_inputs), "max_len": int(prep.meta.get("max_len", 0))},
        "task_accuracy": {"compiled": compiled_acc, "learned": float((learned.pred == data.outputs).mean())},
        "variables": variables,
        "heads": heads,
        "ablation": ablation,
        "cka": {"hooks": data.resid_hooks, "matrix": cka.tolist(),
                "matched_positions": [float(cka[i, i]) for i in range(len(cka))]},
        "maps": maps,
        "fraction_decodable_one_map": {k: maps[k][last]["fraction_decodable"] for k in maps},
        "examples": {"inputs": ["".join(prep.data.inputs[i]) if all(len(t) == 1 for t in prep.data.inputs[i])
                                else " ".join(prep.data.inputs[i]) for i in prep.examples],
                     "compiled": {head_name(l, h): prep.compiled.raw_patterns[l][:, h].tolist()
                                  for l, h in H.head_names(learned_model)},
                     "learned": {head_name(l, h): learned.raw_patterns[l][:, h].tolist()
                                 for l, h in H.head_names(learned_model)}},
        "summary": summarise(variables, heads),
    }


def summarise(variables: dict, heads: dict) -> dict:
    """Counts behind the verdict: computed / correlational / absent variables, matched heads."""
    n = len(variables)
    comp = [k for k, v in variables.items() if v["status"] == "computed"]
    corr = [k for k, v in variables.items() if v["status"] == "correlational only"]
    untested = [k for k, v in variables.items() if v["status"] == "readable, not testable"]
    coarsened = [k for k, v in variables.items() if v["status"] == "coarsened"]
    corr += [k for k, v in variables.items() if v["status"] == "input-level"]
    live = len(heads["matches"])
    matched = sum(m["is_match"] for m in heads["matches"])
    if comp and len(comp) + len(untested) == n and matched == live:
        verdict = "match"
    elif not comp and not coarsened and not matched:
        verdict = "no match"
    else:
        verdict = "partial match"
    return {"verdict": verdict, "computed": comp, "correlational_only": corr, "readable_not_testable": untested,
            "coarsened": coarsened,
            "not_represented": [k for k in variables if k not in comp + corr + untested + coarsened],
            "heads_matched": matched, "heads_compared": live}
