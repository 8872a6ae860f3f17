"""Controls: comparisons whose right answer is known, so ``compare/`` can be caught measuring nothing.

Each control can fail, and each is a test (``tests/test_compare.py``):

* ``self``: the compiled model against itself (``Prepared.reference``).
  Every testable variable must be causal and every live head matched;
  variables that too few test pairs tell apart from copying the output
  ("not identifiable from the output here") are listed, not required.
* ``disguised (rotation)`` and ``disguised (invertible)``: the compiled
  model with its residual stream mapped by a random orthogonal matrix, or by
  a random invertible, non-orthogonal one (every read and write adjusted, so
  it computes the same function), and its heads permuted within each layer.
  Both must give the same statuses and hooks as ``self`` and recover the
  permutation.
* ``untrained``: a network with random weights; nothing may be causal and no
  head may match ("no match").
* ``knockout``: the compiled model with one live head's ``W_O`` zeroed. The
  head's variable and everything computed from it must lose "computed", and
  the clean balanced accuracy must drop (its CI below the compiled model's).
* ``distributed``: one variable's block mixed into other directions by an
  invertible map. It must still be found, with an intervention dimension
  close to the compiled block's.
* ``seed vs seed``: two learned models against each other (CKA, head
  agreement, output agreement): the ceiling of agreement between two trained
  models, not a pass/fail check.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from compare import heads as heads_lib
from compare.layer_norm import commuting_map, remap_layer_norm
from compare.context import Prepared, frozen, max_len_of, model_side
from compare.parallel import fork_map
from compare.pipeline import compare_fixed
from compare.results import Comparison, Head, Status
from compare.outputs import OutputReadout
from compare.similarity import linear_cka
from learned.model import Transformer

SEED_VS_SEED = "seed vs seed"
WRITES = ("embed.W_E", "pos_embed.W_pos")
WRITE_SUFFIXES = ("attn.W_O", "attn.b_O", "mlp.W_out", "mlp.b_out")
READ_SUFFIXES = ("attn.W_Q", "attn.W_K", "attn.W_V")


def remap(model: Transformer, a: torch.Tensor, perms: list[list[int]] | None = None) -> Transformer:
    """A copy computing the same function on the residual basis ``x @ a`` (``a`` ``[D, D]`` invertible),
    with heads permuted per layer (new head ``perm[h]`` = old head ``h``)."""
    dtype = model.param("embed.W_E").dtype
    a = a.to(dtype)
    inv = torch.linalg.inv(a.double()).to(dtype)
    out = {}
    for name, w in model.tl_state_dict().items():
        if name in WRITES or name.endswith(WRITE_SUFFIXES):
            out[name] = w @ a                                     # writes: [..., D] -> mapped
        elif name.endswith(READ_SUFFIXES):
            out[name] = torch.einsum("de,hek->hdk", inv, w)      # reads: [H, D, K]
        elif name == "unembed.W_U" or name.endswith("mlp.W_in"):
            out[name] = inv @ w                                   # reads: [D, X]
        else:
            out[name] = w.clone()
    for l, perm in enumerate(perms or []):
        order = torch.argsort(torch.tensor(perm))  # new[perm[h]] = old[h]
        for p in ("W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V", "W_O"):
            out[f"blocks.{l}.attn.{p}"] = out[f"blocks.{l}.attn.{p}"][order]
    copy = Transformer(model.cfg).to(dtype)
    copy.load_tl_state_dict(out)
    return copy.eval()


def random_map(d: int, seed: int, invertible: bool) -> torch.Tensor:
    """A Haar-random rotation, or (``invertible``) rotation @ diag(0.3..3) @ rotation: not orthogonal."""
    g = torch.Generator().manual_seed(seed)

    def rotation() -> torch.Tensor:
        q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        return q * torch.sign(torch.diagonal(r))
    if not invertible:
        return rotation()
    scales = torch.exp(torch.empty(d, dtype=torch.float64).uniform_(np.log(0.3), np.log(3.0), generator=g))
    return rotation() @ torch.diag(scales) @ rotation()


def disguise(model: Transformer, seed: int, invertible: bool = False) -> tuple[Transformer, list[list[int]]]:
    """``remap`` by a random map with random head permutations; returns (copy, perms). A model with layer
    norm gets a map that commutes with it instead (``compare.layer_norm``: a general invertible map does not)."""
    g = torch.Generator().manual_seed(seed + 1)
    perms = [torch.randperm(model.cfg.n_heads, generator=g).tolist() for _ in range(model.cfg.n_layers)]
    if model.cfg.layer_norm:
        return remap_layer_norm(model, commuting_map(model.cfg.d_model, seed, invertible), perms), perms
    return remap(model, random_map(model.cfg.d_model, seed, invertible), perms), perms


def random_model(model: Transformer, seed: int) -> Transformer:
    """An untrained model of the same shape, seeded."""
    m = Transformer(model.cfg).to(model.param("embed.W_E").dtype)
    m.init_weights(torch.Generator().manual_seed(seed))
    return m.eval()


def knockout(model: Transformer, layer: int, head: int) -> Transformer:
    """A copy with one head's ``W_O`` zeroed."""
    sd = {k: v.clone() for k, v in model.tl_state_dict().items()}
    sd[f"blocks.{layer}.attn.W_O"][head] = 0.0
    copy = Transformer(model.cfg).to(model.param("embed.W_E").dtype)
    copy.load_tl_state_dict(sd)
    return copy.eval()


def distribute(model: Transformer, dims: list[int], others: list[int], seed: int) -> Transformer:
    """A copy whose residual directions ``dims`` (one variable's block) are mixed with ``others`` by a
    random invertible map on their span (identity elsewhere)."""
    d = model.cfg.d_model
    sub = dims + others
    a = torch.eye(d, dtype=torch.float64)
    a[np.ix_(sub, sub)] = random_map(len(sub), seed, invertible=True)
    return remap(model, a)


@dataclasses.dataclass
class ControlResult:
    """One control: what it expects and found (one line each, for the report's table), whether it passed,
    the details checked (for ``compare.json``), and the comparison it ran."""

    name: str
    passed: bool | None
    checks: dict
    result: Comparison | None = None
    expected: str = ""
    found: str = ""
    why: str = ""  # what failed, in a few words (the report's first screen names it); empty when it passed


def _status_line(statuses: dict[str, str]) -> str:
    return "; ".join(f"{k} {v}" for k, v in statuses.items())


def _statuses(c: Comparison) -> dict[str, str]:
    return {k: v.status.value for k, v in c.variables.items()}


def _hooks(c: Comparison) -> dict[str, str | None]:
    return {k: v.found_hook for k, v in c.variables.items()}


def check_self(ref: Comparison) -> ControlResult:
    unidentifiable = [k for k, v in ref.variables.items() if v.status is Status.NOT_IDENTIFIABLE]
    testable = [v for k, v in ref.variables.items()
                if v.status not in (Status.NOT_TESTABLE, Status.NOT_IDENTIFIABLE)]
    ok = bool(testable) and all(v.status.causal for v in testable) and ref.heads.matched == len(ref.heads.matches)
    found = _status_line(_statuses(ref)) + f"; heads matched {ref.heads.matched}/{len(ref.heads.matches)}"
    unmatched = len(ref.heads.matches) - ref.heads.matched
    why = "" if ok else "; ".join(
        [f"{v.name} {v.status.value}" for v in testable if not v.status.causal]
        + ([f"{unmatched} of {len(ref.heads.matches)} heads unmatched"] if unmatched else [])
        + ([] if testable else ["no testable variable"]))
    return ControlResult("self", ok, {"statuses": _statuses(ref), "hooks": _hooks(ref),
                                      "not identifiable (not required)": unidentifiable,
                                      "heads": {m.compiled: m.learned for m in ref.heads.matches}}, ref,
                         expected="every identifiable variable causal; every live head matched to itself",
                         found=found, why=why)


def check_disguised(prep: Prepared, seed: int, invertible: bool) -> ControlResult:
    ref = prep.reference
    copy, perms = disguise(prep.compiled.model, seed, invertible)
    res = compare_fixed(prep, copy)
    expected = {m.compiled: Head(m.compiled.layer, perms[m.compiled.layer][m.compiled.head])
                for m in ref.heads.matches}
    got = {m.compiled: m.learned for m in res.heads.matches if m.is_match}
    checks = {"statuses": _statuses(res), "hooks": _hooks(res), "reference_statuses": _statuses(ref),
              "heads": got, "expected_heads": expected, "permutation": perms}
    same_status, same_hooks = _statuses(res) == _statuses(ref), _hooks(res) == _hooks(ref)
    ok = same_status and same_hooks and got == expected
    found = ("the same statuses" if same_status else "statuses " + _status_line(_statuses(res))) + (
        ", hooks" if same_hooks else ", other hooks") + (
        ", permuted heads matched" if got == expected else f", heads matched {len(got)}/{len(expected)} as permuted")
    why = "; ".join(w for w, bad in (("other statuses", not same_status), ("other hooks", not same_hooks),
                                     ("heads not matched as permuted", got != expected)) if bad)
    return ControlResult("disguised (invertible)" if invertible else "disguised (rotation)", ok, checks, res,
                         expected="the compiled model's statuses and hooks; each head matched to its permuted copy",
                         found=found, why=why)


def check_untrained(prep: Prepared, seed: int) -> ControlResult:
    res = compare_fixed(prep, random_model(prep.compiled.model, seed))
    causal = [k for k, v in res.variables.items() if v.status.causal]
    ok = res.summary.verdict == "no match" and not causal
    found = f"{res.summary.verdict}; causal: {', '.join(causal) or 'none'}"
    return ControlResult("untrained", ok,
                         {"verdict": res.summary.verdict, "causal": causal, "statuses": _statuses(res)}, res,
                         expected="no match: no variable causal, no head matched", found=found,
                         why="" if ok else found)


def knockout_target(prep: Prepared) -> tuple[Head, str] | None:
    """The live compiled head whose SOp has the most descendants, and that SOp, for the knockout."""
    heads = [(head, e["sop"]) for head, e in prep.sops.items() if head not in prep.empty]
    if not heads:
        return None
    return max(heads, key=lambda t: (len(prep.spec.descendants(t[1])), -t[0].layer, -t[0].head))


def check_knockout(prep: Prepared) -> ControlResult:
    target = knockout_target(prep)
    if target is None:
        return ControlResult("knockout", None, {"note": "no live compiled head"}, expected="(not run)",
                             found="no live compiled head")
    head, sop = target
    res = compare_fixed(prep, knockout(prep.compiled.model, head.layer, head.head))
    lost = {sop} | prep.spec.descendants(sop)
    still = [k for k in lost if res.variables[k].status in (Status.COMPUTED, Status.COMPUTED_UP_TO)]
    ref_bal = prep.reference.ablation.clean.balanced_accuracy
    bal = res.ablation.clean.balanced_accuracy
    damaged = bool(bal.hi < ref_bal.lo)
    return ControlResult("knockout", not still and damaged,
                         {"head": head, "variable": sop, "must_lose": sorted(lost),
                          "still_computed": still, "statuses": _statuses(res),
                          "balanced_accuracy": bal.fmt(3), "compiled_balanced_accuracy": ref_bal.fmt(3)}, res,
                         expected=f"zeroing {head} ({sop}) loses {', '.join(sorted(lost))}; task accuracy drops",
                         found=(f"still computed: {', '.join(still) or 'none'}; balanced accuracy {bal.fmt(3)} vs "
                                f"{ref_bal.fmt(3)}"),
                         why="; ".join(([f"still computed: {', '.join(still)}"] if still else [])
                                       + ([] if damaged else ["task accuracy did not drop"])))


def check_distributed(prep: Prepared, seed: int) -> ControlResult:
    """Mixes the block of the first variable the reference finds by its pattern with every other block."""
    ref = prep.reference
    data = prep.data
    target = next((v for v in data.variables if ref.variables[v.name].status.causal
                   and ref.variables[v.name].intervention.subspace.startswith("pattern")), None)
    if target is None:
        return ControlResult("distributed", None, {"note": "no variable found by its pattern in the compiled model"},
                             expected="(not run)", found="no variable found by its pattern in the compiled model")
    own = list(target.dims)
    rest = [i for v in data.variables if v.name != target.name for i in v.dims]
    res = compare_fixed(prep, distribute(prep.compiled.model, own, rest, seed))
    got, want = res.variables[target.name], ref.variables[target.name]
    dim = got.intervention.dim if got.intervention else None
    close = dim is not None and abs(dim - want.intervention.dim) <= max(1, want.intervention.dim // 4)
    return ControlResult("distributed", bool(got.status == want.status and close),
                         {"variable": target.name, "mixed_dims": len(own) + len(rest), "status": got.status.value,
                          "reference_status": want.status.value, "dim": dim, "reference_dim": want.intervention.dim,
                          "compiled_block_dim": len(own)}, res,
                         expected=f"{target.name} {want.status.value} in about {want.intervention.dim} dimensions",
                         found=f"{got.status.value} in {dim} dimensions")


def seed_vs_seed(prep: Prepared, models: list[Transformer], outputs: list[OutputReadout | None] | None = None
                 ) -> ControlResult:
    """Agreement between every pair of learned models (needs at least two); ``outputs``: their readouts."""
    if len(models) < 2:
        return ControlResult(SEED_VS_SEED, None, {"note": "needs at least two learned seeds", "pairs": []},
                             expected="(a ceiling, not a check)", found="needs at least two learned seeds")
    data = prep.data
    outputs = outputs or [None] * len(models)
    with frozen(*models):
        sides = [model_side(m, data, prep.config, prep.examples, max_len_of(prep.meta, prep.spec), readouts=False,
                       output=o) for m, o in zip(models, outputs)]
    pairs = []
    for a in range(len(models)):
        for b in range(a + 1, len(models)):
            sa, sb = sides[a], sides[b]
            # Models of their own shapes (imported ones) agree where they share a hook name, and their heads
            # are matched rectangularly.
            cka = [linear_cka(sa.resid[h], sb.resid[h]) for h in sa.hooks if h in sb.resid]
            names_a, names_b = heads_lib.head_names(models[a]), heads_lib.head_names(models[b])
            sim = heads_lib.similarity_matrix(sa.patterns, sb.patterns, names_a, names_b)
            match = heads_lib.match_heads(sim, list(range(len(names_a))))
            pairs.append({"a": a, "b": b, "cka_matched": cka, "cka_mean": float(np.mean(cka)),
                          "head_matches": [[names_a[i], names_b[j], s] for i, j, s in match],
                          "head_score_mean": float(np.mean([s for _, _, s in match])),
                          "output_agreement": float((sa.pred == sb.pred).mean())})
    found = "; ".join(f"seeds {p['a']} and {p['b']}: CKA {p['cka_mean']:.2f}, heads {p['head_score_mean']:.2f}, "
                      f"outputs {p['output_agreement']:.3f}" for p in pairs)
    return ControlResult(SEED_VS_SEED, None, {"note": "ceiling of agreement between two trained models",
                                                "pairs": pairs}, expected="(a ceiling, not a check)", found=found)


def checks_only(prep: Prepared) -> Prepared:
    """The prepared state the controls run on: without the per-head ablations and the control-task readout,
    which no check and no status reads (the same methods otherwise)."""
    return dataclasses.replace(prep, config=dataclasses.replace(prep.config, ablation_modes=(), control_task=False))


def run_controls(prep: Prepared, seed: int, learned: list[Transformer] | None = None,
                 which: tuple[str, ...] = ("self", "rotation", "invertible", "untrained", "knockout"),
                 outputs: list[OutputReadout | None] | None = None, workers: int | None = None
                 ) -> list[ControlResult]:
    """Runs the chosen controls (``distributed`` too if named) and seed-vs-seed on the learned models.

    The checks read statuses, hooks, head matches and clean task metrics only, so the controls skip the
    per-head ablations and the control-task readout (the same methods otherwise). They are independent
    and seeded, so they run side by side in forked processes (``workers``: default every CPU) with the
    same results as one after another.
    """
    prep = checks_only(prep)
    makers = {"self": lambda: check_self(prep.reference),
              "rotation": lambda: check_disguised(prep, seed, invertible=False),
              "invertible": lambda: check_disguised(prep, seed, invertible=True),
              "untrained": lambda: check_untrained(prep, seed),
              "knockout": lambda: check_knockout(prep),
              "distributed": lambda: check_distributed(prep, seed)}
    return fork_map([makers[k] for k in which] + [lambda: seed_vs_seed(prep, learned or [], outputs)], workers)
