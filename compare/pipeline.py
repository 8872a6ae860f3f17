"""``compare_models``: where, and whether, a model implements each compiled variable.

One stage call after another, as Tracr's ``compile_rasp_to_model`` reads:

1. ``prepare`` (once per run): the inputs, distinct rows, folds and live masks (``compare.activations``);
   intervention pairs (``compare.interventions``); output partitions (``compare.identifiability``); the
   compiled side (``compare.context.model_side``); then the compiled model against itself
   (``Prepared.reference``), so every finding about a learned model stands beside what the same method
   finds in the compiled one.
2. ``measure`` (per model): the model's side and untrained baselines (``compare.context``); each variable
   located and decided (``compare.locate``); heads matched (``compare.heads``); ablations
   (``compare.ablations``); CKA and maps (``compare.similarity``); a typed ``Comparison``.

Everything random is seeded from ``CompareConfig.seed``.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from compare import disk_cache, heads as heads_lib
from compare.ablations import run_ablations
from compare.activations import VariableInfo, build_dataset
from compare.config import CompareConfig
from compare.context import Prepared, ModelSide, check_finite, frozen, max_len_of, model_side, untrained_baseline
from compare.identifiability import output_partition
from compare.interventions import make_pairs
from compare.json_edge import from_json, to_json
from compare.locate import Swap, locate
from compare.parallel import fork_map
from compare.outputs import OutputReadout
from compare.readouts import read_out
from compare.results import (Cka, Comparison, DataSummary, Examples, Head, HookReadout, MapDecoding, Maps,
                             TaskAccuracy, VariableResult)
from compare.status import summarise
from compare.similarity import cka_matrix, map_decoding
from learned.model import Transformer
from rasp_programs.errors import ToolkitError
from rasp_programs.spec import ProgramSpec

__all__ = ["CompareConfig", "Prepared", "ModelSide", "prepare", "compare_models", "measure"]


def prepare(spec: ProgramSpec, compiled: Transformer, meta: dict, cfg: CompareConfig, cache: Path | None = None,
            workers: int | None = None) -> Prepared:
    """Dataset, pairs and the compiled side; then the compiled model against itself (``reference``).

    ``cache``: the folder of records kept between runs (``compare.disk_cache``: untrained baselines and the
    reference with the compiled side's readouts; None: computed every time).
    ``workers``: processes for independent pieces (``compare.parallel``); no result depends on either.
    """
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
            fit = make_pairs(spec, data, v, "fit", cfg.n_fit, prng, cross_share=0.0)
            # held-out pairs only move values the fit pairs move (without fit pairs: values of the fit rows)
            moved = fit.values_moved(data.values[v.name]) if len(fit) else None
            pairs[v.name] = {"fit": fit, **{s: make_pairs(spec, data, v, s, n, prng, cross_share=share, fitted=moved)
                                            for s, n, share in (("val", cfg.n_val, 0.0), ("test", cfg.n_test, 0.5))}}
        partitions = {v.name: output_partition(spec, data, v.name, cfg.seed) for v in data.variables}
        key = disk_cache.comparison_key([compiled.tl_state_dict()], meta, cfg.to_dict(), data)
        stored = disk_cache.load_comparison(cache, key), disk_cache.load_readouts(cache, key)
        warm = None not in stored
        side = model_side(compiled, data, cfg, examples, max_len_of(meta, spec), readouts=not warm)
        sops = {Head(b["layer"], b["head"]): entry for entry in meta["block_map"] for b in entry["blocks"]
                if b["kind"] == "attn"}
        pad = compiled.cfg.vocab.index(compiled.cfg.pad_token)
        uniform = heads_lib.uniform_rows(data.ids.cpu(), data.row_input, data.row_pos, compiled.cfg.causal, pad)
    prep = Prepared(spec=spec, meta=meta, config=cfg, data=data, pairs=pairs, examples=examples, uniform=uniform,
                    compiled=side, sops=sops, empty=heads_lib.empty_heads(compiled), partitions=partitions,
                    cache=cache, workers=workers)
    if warm:  # computed by an earlier run on the same weights, data, settings and code
        side.readouts = {v: {h: from_json(HookReadout, r) for h, r in by_hook.items()}
                         for v, by_hook in stored[1].items()}
        prep.reference = from_json(Comparison, stored[0])  # untrained baselines: built when a model is measured
    else:
        prep.reference = compare_models(prep, compiled)
        disk_cache.save_comparison(cache, key, to_json(prep.reference))
        disk_cache.save_readouts(cache, key, to_json(side.readouts))
    return prep


def compare_fixed(prep: Prepared, model: Transformer) -> Comparison:
    """``compare_models`` for a model fixed by the compiled artifact (a control's disguised, untrained or
    knocked-out copy), read back from ``prep.cache`` when an earlier run made it (``compare.disk_cache``)."""
    key = disk_cache.comparison_key([prep.compiled.model.tl_state_dict(), model.tl_state_dict()], prep.meta,
                                    prep.config.to_dict(), prep.data)
    stored = disk_cache.load_comparison(prep.cache, key)
    if stored is not None:
        return from_json(Comparison, stored)
    result = compare_models(prep, model)
    disk_cache.save_comparison(prep.cache, key, to_json(result))
    return result


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
    end = side.readout.readout.end_token  # the model's own name for the end (an imported model's "<eos>")
    out = {}
    for token in side.model.cfg.output_vocab:
        if token == end:
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


def locate_all(prep: Prepared, side: ModelSide) -> tuple[dict[str, VariableResult], dict[str, Swap]]:
    """``locate`` for every variable, each in its own process (``compare.parallel``): a variable's search
    reads nothing another one writes, and every random choice is seeded by the variable's index."""
    def one(i: int, v: VariableInfo) -> tuple[VariableResult, Swap | None]:
        swaps: dict[str, Swap] = {}
        return locate(prep, side, v, i, swaps), swaps.get(v.name)
    done = fork_map([functools.partial(one, i, v) for i, v in enumerate(prep.data.variables)], prep.workers)
    variables = {v.name: result for v, (result, _) in zip(prep.data.variables, done)}
    return variables, {v.name: swap for v, (_, swap) in zip(prep.data.variables, done) if swap is not None}


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
        side = prep.compiled if model is prep.compiled.model else model_side(
            model, data, cfg, prep.examples, max_len_of(prep.meta, prep.spec), output=output)
        base = untrained_baseline(prep, model, side.readout)
        for v in data.variables:
            for h, r in side.readouts[v.name].items():
                r.untrained_live, r.untrained_sd = base[v.name][h]
        variables, swaps = locate_all(prep, side)
        heads = heads_lib.compare_heads(prep, side)
        matched = [m.learned for m in heads.matches if m.is_match]
        names = heads_lib.head_names(model)
        ablation = run_ablations(model, data, names, {"matched": matched,
                                                      "unmatched": [n for n in names if n not in matched]}, cfg.seed,
                                 side.readout, cfg.ablation_modes)
        legal = legal_next(prep, side) if side.readout.members_only else {}
        same_shape = side.hooks == prep.compiled.hooks
        maps = map_decoding(prep.compiled.resid, side.resid, data) if same_shape else {}
        cka = cka_matrix(prep.compiled.resid, side.resid, prep.compiled.hooks, side.hooks)
        attention = heads_lib.key_attention(prep, side)
    last = data.resid_hooks[-1]
    per_hook = {kind: {h: MapDecoding(**m) for h, m in by_hook.items()} for kind, by_hook in maps.items()}
    comparison = Comparison(
        settings=cfg,
        data=DataSummary(n_inputs=len(data.inputs), n_strings=int(len(np.unique(data.group))),
                         exhaustive=data.exhaustive, n_rows=data.n_rows, causal=data.causal,
                         max_len=max_len_of(prep.meta, prep.spec), folds=cfg.folds,
                         live_share={v.name: float(data.live[v.name].mean()) for v in data.variables}),
        task_accuracy=TaskAccuracy(compiled=float((prep.compiled.pred == data.outputs).mean()),
                                   model=float((side.pred == data.outputs).mean()), readout=side.readout.describe()),
        variables=variables, heads=heads, ablation=ablation,
        cka=Cka(hooks=prep.compiled.hooks, model_hooks=side.hooks, matrix=cka.tolist(),
                matched_positions=[float(cka[i, i]) for i in range(len(cka))] if same_shape else []),
        maps=Maps(per_hook=per_hook,
                  fraction_decodable_one_map={k: m[last].fraction_decodable for k, m in per_hook.items()}),
        examples=Examples(inputs=[" ".join(data.inputs[i]) if any(len(t) > 1 for t in data.inputs[i])
                                  else "".join(data.inputs[i]) for i in prep.examples],
                          compiled={n: prep.compiled.raw_patterns[n.layer][:, n.head].tolist()
                                    for n in heads_lib.head_names(prep.compiled.model)},
                          learned={n: side.raw_patterns[n.layer][:, n.head].tolist() for n in names}),
        summary=summarise(variables, heads), legal_next=legal, attention=attention,
        layer_norm=model.cfg.layer_norm)
    return comparison, side, swaps
