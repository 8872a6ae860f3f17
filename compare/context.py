"""The context of a comparison: the prepared shared state and each model's side.

``Prepared`` is what ``compare.pipeline.prepare`` computes once per run (inputs, folds, live masks,
intervention pairs, the compiled side, untrained baselines, the compiled model against itself);
``ModelSide`` is one model's activations, readouts and attention on those inputs (``model_side``). Every
later stage (``compare.locate``, ``compare.heads``, ``compare.hypotheses``, ``compare.controls``) reads
them; none rebuilds them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

from compare import disk_cache, heads as heads_lib
from compare.activations import (Dataset, after_attn, after_mlp, at_rows, embedding_basis, resid_hooks,
                                 run_cached)
from compare.config import CompareConfig
from compare.interventions import Pairs, Space, make_space
from compare.outputs import OutputReadout
from compare.parallel import fork_map
from compare.readouts import Fitted, read_out
from compare.results import Head, HookReadout
from compare.site import Site
from compare.threads import one_thread
from learned.model import Transformer
from rasp_programs.errors import ToolkitError
from rasp_programs.spec import ProgramSpec

if TYPE_CHECKING:
    from compare.results import Comparison


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

    def after_attn(self, layer: int) -> str:
        """The residual hook right after ``layer``'s attention."""
        return after_attn(self.model.cfg, layer)

    def after_mlp(self, layer: int) -> str:
        """The residual hook right after ``layer``'s MLP (the layer's output)."""
        return after_mlp(self.model.cfg, layer)

    def xt(self, hook: str) -> np.ndarray:
        """``[N, D]`` what the layers wrote by ``hook``: the residual without the row's direct embedding."""
        return self.resid[hook] - self.direct

    def space(self, data: Dataset, hook: str) -> Space:
        if hook not in self.spaces:
            self.spaces[hook] = make_space(self.xt(hook)[data.split("train")])
        return self.spaces[hook]

    def site(self, data: Dataset, hook: str) -> Site:
        """Where this model's interventions at ``hook`` run (``compare.site``)."""
        return Site(self.model, data, hook, self.space(data, hook), self.xt(hook), self.full[hook], self.readout)


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
    sops: dict[Head, dict]                       # head -> block_map entry of its SOp
    empty: set[Head]                             # compiled heads that write nothing (Tracr padding)
    # untrained networks' scores and sides, by ``untrained_key`` of the model they are the baseline of
    untrained: dict[str, dict[str, dict[str, tuple[float, float]]]] = dataclasses.field(default_factory=dict)
    reference: Comparison | None = None          # the compiled model against itself
    partitions: dict[str, list[list[str]]] = dataclasses.field(default_factory=dict)  # output-relevant partitions
    untrained_sides: dict[str, list["ModelSide"]] = dataclasses.field(default_factory=dict)
    subspace_untrained: dict[tuple, float | None] = dataclasses.field(default_factory=dict)
    cache: Path | None = None                    # records kept between runs (compare.disk_cache)
    workers: int | None = None                   # processes for independent pieces (compare.parallel)


def max_len_of(meta: dict, spec: ProgramSpec) -> int:
    return int(meta.get("max_len", spec.default_max_len))


def check_finite(model: Transformer, what: str) -> None:
    """Raises a one-line ``ToolkitError`` naming the first parameter with a NaN or infinity."""
    for name, w in model.tl_state_dict().items():
        if not torch.isfinite(w).all():
            raise ToolkitError(f"{what}: parameter {name} has non-finite values (NaN or inf)")


def model_side(model: Transformer, data: Dataset, cfg: CompareConfig, examples: list[int], max_len: int,
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
    key_ids = heads_lib.key_token_ids(model.cfg)
    key_mass = {l: heads_lib.key_token_mass(cache[n].cpu(), data.ids.cpu(), data.row_input, data.row_pos, key_ids)
                for l, n in enumerate(patt)}
    tokens = data.ids[torch.from_numpy(data.row_input), torch.from_numpy(data.row_pos)]
    direct = (model.param("embed.W_E")[tokens] + model.param("pos_embed.W_pos")[torch.from_numpy(data.row_pos)])
    return ModelSide(model, hooks, resid, {h: cache[h] for h in hooks}, pred, side_readouts, fitted, patterns,
                     raw, key_mass, embedding_basis(model, max_len), direct.detach().double().cpu().numpy(), output,
                     alias=alias)


def untrained_key(model: Transformer) -> str:
    """What an untrained baseline depends on in the model it is compared with: its shape and its dtype (the
    untrained networks are built in it; a float64 baseline is not a float32 model's)."""
    return f"{model.cfg.shape_key()}|{model.param('embed.W_E').dtype}"


def untrained_baseline(prep: Prepared, like: Transformer,
                       output: OutputReadout | None = None) -> dict[str, dict[str, tuple[float, float]]]:
    """Live readout scores of ``n_untrained`` untrained networks shaped like ``like``: var -> hook -> (mean, sd).

    The scores come from ``prep.cache`` when it holds them for this shape and dataset
    (``compare.disk_cache``); otherwise each network's probes run in its own process
    (``compare.parallel``). The networks' activations (for the subspace baselines) are computed here.
    """
    key = untrained_key(like)
    if key not in prep.untrained:
        cfg, data = prep.config, prep.data
        dtype = like.param("embed.W_E").dtype
        max_len = max_len_of(prep.meta, prep.spec)
        settings = {"seed": cfg.seed, "n_untrained": cfg.n_untrained, "probe_iter": cfg.probe_iter}
        stored = disk_cache.baseline_key(like.cfg.shape_key(), str(dtype), settings, data)

        def network(k: int) -> Transformer:
            rand = Transformer(like.cfg).to(dtype)
            rand.init_weights(torch.Generator().manual_seed(10_000 + k))
            return rand.eval()

        def scores_of(k: int) -> dict[str, dict[str, float]]:
            side = model_side(network(k), data, cfg, [], max_len, ci=False, output=output)
            return {v: {h: r.live.value for h, r in by_hook.items()} for v, by_hook in side.readouts.items()}

        scores = disk_cache.load_baseline(prep.cache, stored)
        if scores is None:
            per_network = fork_map([functools.partial(scores_of, k) for k in range(cfg.n_untrained)], prep.workers)
            def spread(values: list[float]) -> tuple[float, float]:
                return float(np.mean(values)), float(np.std(values))
            scores = {v.name: {h: spread([n[v.name][h] for n in per_network]) for h in resid_hooks(like.cfg)}
                      for v in data.variables}
            disk_cache.save_baseline(prep.cache, stored, scores)
        sides = []
        for k in range(cfg.n_untrained):  # kept for subspace baselines; interventions never run on them
            side = model_side(network(k), data, cfg, [], max_len, readouts=False, output=output)
            side.full = {}
            sides.append(side)
        prep.untrained_sides[key] = sides
        prep.untrained[key] = scores
    return prep.untrained[key]
