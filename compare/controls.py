"""The four controls the report ends with.

* ``self``: the compiled model against itself; everything must be perfect.
* ``disguised``: the compiled model with its residual stream rotated by a
  random orthogonal matrix (applied to every read and write, so it computes
  exactly the same function) and its heads permuted within each layer. The
  comparison must recover the permutation exactly, with readouts and IIA
  >= 0.99; it shows nothing depends on the basis or the head order.
* ``random``: an untrained model (``Transformer.init_weights``); it must be
  reported as no match.
* ``seed_vs_seed``: two learned models against each other (CKA at matched
  hooks, head-pattern agreement under the optimal matching, the least-squares
  map); the ceiling of agreement one can expect between two trained models.
"""

from __future__ import annotations

import numpy as np
import torch

from compare import heads as H
from compare.pipeline import Prepared, _max_len, _side, compare_models, frozen, head_name
from compare.similarity import linear_cka
from learned.model import Transformer

PASS = 0.99


def disguise(model: Transformer, seed: int) -> tuple[Transformer, np.ndarray, list[list[int]]]:
    """A copy computing the same function in a rotated basis with permuted heads.

    Returns:
        (model, rotation ``[D, D]``, per layer ``perm`` with new head ``perm[h]``
        = old head ``h``).
    """
    g = torch.Generator().manual_seed(seed)
    dtype = model.param("embed.W_E").dtype
    d = model.cfg.d_model
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    q = (q * torch.sign(torch.diagonal(r))).to(dtype)  # Haar-random orthogonal [D, D]
    sd = {k: v.clone() for k, v in model.tl_state_dict().items()}
    out = {}
    perms = []
    for name, w in sd.items():
        if name in ("embed.W_E", "pos_embed.W_pos") or name.endswith(("attn.W_O", "attn.b_O", "mlp.W_out", "mlp.b_out")):
            out[name] = w @ q  # writes: [..., D] -> rotated
        elif name.endswith(("attn.W_Q", "attn.W_K", "attn.W_V")):
            out[name] = torch.einsum("de,hdk->hek", q, w)  # reads: [H, D, K]
        elif name in ("unembed.W_U",) or name.endswith("mlp.W_in"):
            out[name] = q.T @ w
        else:
            out[name] = w
    for l in range(model.cfg.n_layers):
        perm = torch.randperm(model.cfg.n_heads, generator=g)
        inv = torch.argsort(perm)  # new position of old head h is perm[h]: new[perm[h]] = old[h]
        for p in ("W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V", "W_O"):
            out[f"blocks.{l}.attn.{p}"] = out[f"blocks.{l}.attn.{p}"][inv]
        perms.append(perm.tolist())
    copy = Transformer(model.cfg).to(dtype)
    copy.load_tl_state_dict(out)
    return copy.eval(), q.double().numpy(), perms


def random_model(model: Transformer, seed: int) -> Transformer:
    """An untrained model of the same shape, seeded."""
    m = Transformer(model.cfg).to(model.param("embed.W_E").dtype)
    m.init_weights(torch.Generator().manual_seed(seed))
    return m.eval()


def _nanmin(values) -> float:
    """Smallest finite value (IIA is nan where a variable has no usable pairs); nan if none."""
    vals = [float(x) for x in values if x is not None and np.isfinite(x)]
    return min(vals) if vals else float("nan")


def _check(result: dict, heads_expected: dict[str, str] | None) -> dict:
    v = result["variables"]
    out = {
        "min_readout_at_compiled_layer": min(x["readouts"][x["compiled_written_at"]]["score"] for x in v.values()),
        "min_iia_readout": _nanmin(x["iia_readout"] for x in v.values()),
        "min_iia_das": _nanmin(x["iia_das"] for x in v.values()),
        "variables_without_pairs": [k for k, x in v.items() if x["n_pairs_test"] == 0],
        "head_matches": {m["compiled"]: [m["learned"], m["score"]] for m in result["heads"]["matches"]},
        "verdict": result["summary"]["verdict"],
    }
    if heads_expected is not None:
        out["permutation_recovered"] = all(
            out["head_matches"].get(c, [None])[0] == l for c, l in heads_expected.items())
    return out


def run_controls(prep: Prepared, seed: int, learned: list[Transformer] | None = None) -> dict:
    """Runs the controls; returns ``{name: {"passed", "checks", "result"?}}``.

    ``result`` (the full comparison) is kept for every control but seed-vs-seed.
    """
    compiled = prep.compiled.model
    out = {}
    res = compare_models(prep, compiled)
    checks = _check(res, {m["compiled"]: m["compiled"] for m in res["heads"]["matches"]})
    checks["cka_min_matched"] = min(res["cka"]["matched_positions"])
    out["self"] = {"passed": bool(checks["min_readout_at_compiled_layer"] >= PASS and checks["min_iia_readout"] >= PASS
                                  and checks["permutation_recovered"]), "checks": checks, "result": res}

    copy, _, perms = disguise(compiled, seed)
    res = compare_models(prep, copy)
    expected = {head_name(l, h): head_name(l, perms[l][h]) for l in range(len(perms)) for h in range(len(perms[l]))
                if (l, h) not in prep.empty}
    checks = _check(res, expected)
    checks["permutation"] = perms
    out["disguised"] = {"passed": bool(checks["min_readout_at_compiled_layer"] >= PASS
                                       and min(checks["min_iia_readout"], checks["min_iia_das"]) >= PASS
                                       and checks["permutation_recovered"]),
                        "checks": checks, "result": res}

    rand = random_model(compiled, seed)
    res = compare_models(prep, rand)
    checks = _check(res, None)
    out["random"] = {"passed": checks["verdict"] == "no match", "checks": checks, "result": res}

    out["seed_vs_seed"] = seed_vs_seed(prep, learned or [])
    return out


def seed_vs_seed(prep: Prepared, models: list[Transformer]) -> dict:
    """Agreement between every pair of learned models (needs at least two)."""
    if len(models) < 2:
        return {"passed": None, "note": "needs at least two learned seeds", "pairs": []}
    cfg, data, rows = prep.config, prep.data, prep.rows
    with frozen(*models):
        sides = [_side(m, data, rows, cfg, prep.examples, prep.sub_inputs, _max_len(prep.meta, prep.spec),
                       readouts=False) for m in models]
    names = H.head_names(models[0])
    pairs = []
    for a in range(len(models)):
        for b in range(a + 1, len(models)):
            sa, sb = sides[a], sides[b]
            cka = [linear_cka(sa.resid[h][rows], sb.resid[h][rows]) for h in data.resid_hooks]
            sim = H.similarity_matrix(sa.patterns, sb.patterns, names, names)
            match = H.match_heads(sim, list(range(len(names))))
            pairs.append({"a": a, "b": b, "cka_matched": cka, "cka_mean": float(np.mean(cka)),
                          "head_matches": [[head_name(*names[i]), head_name(*names[j]), s] for i, j, s in match],
                          "head_score_mean": float(np.mean([s for _, _, s in match])),
                          "output_agreement": float((sa.pred == sb.pred).mean())})
    return {"passed": None, "note": "ceiling of agreement between two trained models", "pairs": pairs}

