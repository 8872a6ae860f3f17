"""Head alignment: attention-pattern similarity and optimal matching.

Similarity of two heads on the same inputs: for every real query row, drop
the BOS key column (Tracr attends to BOS as the default when a selector is
empty, and for SelectorWidth it always keeps BOS in the mix), renormalise the
rest, and take ``1 - total variation distance`` between the two rows; average
over rows. A row that puts less than ``BOS_ONLY`` of its mass off BOS is
"BOS only"; two BOS-only rows agree (score 1), one BOS-only row agrees with
nothing (score 0). Scores lie in [0, 1]; the report also gives each compiled
head's score against a head that attends uniformly to every allowed key, a
pattern-free baseline.

Compiled heads whose OV circuit is exactly zero (Tracr pads every layer to
the same head count) are *empty*: listed, and left out of the matching.
Matching is ``scipy.optimize.linear_sum_assignment`` on the score matrix.
Patterns decide; what a head *writes* (the drop of each variable's readout
when the head is mean-ablated) only breaks near-ties, such as two heads that
both average the prefix (``compare_heads``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import r2_score

from compare.ablations import ablation_hooks, z_statistics
from compare.activations import at_rows, run_cached
from compare.readouts import predict_held_out
from compare.results import MATCH_OK, Head, HeadMatch, Heads, KeyAttention
from compare.stats import bootstrap
from learned.model import Transformer

if TYPE_CHECKING:
    from compare.context import ModelSide, Prepared

BOS_ONLY = 0.05
WRITES = 0.1       # a head writes a variable if ablating it drops the live readout by >= WRITES


def head_names(model: Transformer) -> list[Head]:
    return [Head(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]


@torch.no_grad()
def empty_heads(model: Transformer, atol: float = 1e-12) -> set[Head]:
    """Heads whose OV circuit ``W_V @ W_O`` (and ``b_V``) is zero: they write nothing."""
    out = set()
    for l, h in head_names(model):  # noqa: E741
        ov = model.param(f"blocks.{l}.attn.W_V")[h] @ model.param(f"blocks.{l}.attn.W_O")[h]  # [D, D]
        bv = model.param(f"blocks.{l}.attn.b_V")[h] @ model.param(f"blocks.{l}.attn.W_O")[h]  # [D]
        if float(ov.abs().max()) <= atol and float(bv.abs().max()) <= atol:
            out.add(Head(l, h))
    return out


def normalised_rows(pattern: torch.Tensor, row_input: np.ndarray, row_pos: np.ndarray) -> np.ndarray:
    """``[B, H, T, T]`` pattern -> ``[H, N, T-1]`` non-BOS key distributions per row (zeros if BOS only)."""
    rows = pattern[torch.from_numpy(row_input), :, torch.from_numpy(row_pos), 1:].double().numpy()  # [N, H, T-1]
    mass = rows.sum(-1, keepdims=True)
    rows = np.where(mass >= BOS_ONLY, rows / np.maximum(mass, 1e-300), 0.0)
    return rows.transpose(1, 0, 2)


def row_agreements(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per row ``1 - TV(p, q)`` ``[N]``, with the BOS-only conventions above. ``p, q``: ``[N, T-1]``."""
    p_empty, q_empty = p.sum(-1) == 0, q.sum(-1) == 0
    agree = 1.0 - 0.5 * np.abs(p - q).sum(-1)
    return np.where(p_empty | q_empty, (p_empty & q_empty).astype(float), agree)


def row_agreement(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over rows of ``row_agreements``."""
    return float(row_agreements(p, q).mean())


def uniform_rows(ids: torch.Tensor, row_input: np.ndarray, row_pos: np.ndarray, causal: bool,
                 pad_id: int) -> np.ndarray:
    """``[N, T-1]``: uniform attention over the allowed non-BOS keys of each row."""
    keys = ids[torch.from_numpy(row_input), 1:].numpy() != pad_id  # [N, T-1]
    if causal:
        keys &= np.arange(1, ids.shape[1])[None, :] <= row_pos[:, None]
    return keys / np.maximum(keys.sum(-1, keepdims=True), 1)


def similarity_matrix(a: dict[int, np.ndarray], b: dict[int, np.ndarray],
                      heads_a: list[tuple[int, int]], heads_b: list[tuple[int, int]]) -> np.ndarray:
    """``[len(heads_a), len(heads_b)]`` pattern agreement; ``a[l]``: ``[H, N, T-1]`` per layer."""
    return np.array([[row_agreement(a[la][ha], b[lb][hb]) for lb, hb in heads_b] for la, ha in heads_a])


def match_heads(score: np.ndarray, rows: list[int]) -> list[tuple[int, int, float]]:
    """Optimal one-to-one matching of the given rows (compiled heads) to columns (learned heads).

    Returns:
        ``(row, column, score)`` per matched pair, by row.
    """
    if not rows:
        return []
    r, c = linear_sum_assignment(score[rows], maximize=True)
    return sorted((rows[i], int(j), float(score[rows[i], j])) for i, j in zip(r, c))


def key_token_mass(pattern: torch.Tensor, ids: torch.Tensor, row_input: np.ndarray, row_pos: np.ndarray,
                   token_ids: list[int]) -> np.ndarray:
    """``[H, N, K]``: each row's attention mass on keys holding each of ``token_ids`` (BOS included).

    ``pattern`` ``[B, H, T, T]``; ``ids`` ``[B, T]``. Rows sum to 1 over the token types when every
    token that can be attended to is listed.
    """
    rows = pattern[torch.from_numpy(row_input), :, torch.from_numpy(row_pos), :].double().numpy()  # [N, H, T]
    keys = ids[torch.from_numpy(row_input)].numpy()  # [N, T]
    onehot = (keys[:, :, None] == np.array(token_ids)[None, None, :]).astype(np.float64)  # [N, T, K]
    return np.einsum("nht,ntk->hnk", rows, onehot)


def uniform_key_mass(ids: torch.Tensor, row_input: np.ndarray, row_pos: np.ndarray, token_ids: list[int],
                     causal: bool, pad_id: int) -> np.ndarray:
    """``[N, K]``: the mass a head attending uniformly to every allowed key (BOS included) puts on each type."""
    keys = ids[torch.from_numpy(row_input)].numpy()  # [N, T]
    allowed = keys != pad_id
    if causal:
        allowed &= np.arange(ids.shape[1])[None, :] <= row_pos[:, None]
    weights = allowed / np.maximum(allowed.sum(-1, keepdims=True), 1)
    onehot = (keys[:, :, None] == np.array(token_ids)[None, None, :]).astype(np.float64)
    return np.einsum("nt,ntk->nk", weights, onehot)


def by_position(mass: np.ndarray, row_pos: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Mean of ``[..., N, K]`` over the rows at each query position: (positions, ``[..., P, K]``)."""
    positions = sorted(set(row_pos.tolist()))
    return positions, np.stack([mass[..., row_pos == p, :].mean(-2) for p in positions], -2)


def key_token_ids(cfg) -> list[int]:
    """Ids of the tokens a head can attend to: every input token but the pad."""
    return [i for i, t in enumerate(cfg.vocab) if t != cfg.pad_token]


def key_attention(prep: "Prepared", side: "ModelSide") -> KeyAttention:
    """Attention mass of every head of ``side`` per key token type, by query position (see ``KeyAttention``)."""
    data, cfg = prep.data, side.model.cfg
    ids = key_token_ids(cfg)
    uniform = uniform_key_mass(data.ids.cpu(), data.row_input, data.row_pos, ids, cfg.causal,
                               cfg.vocab.index(cfg.pad_token))  # [N, K]
    positions, uni = by_position(uniform, data.row_pos)
    heads, overall = {}, {}
    for head in head_names(side.model):
        mass = side.key_mass[head.layer][head.head]  # [N, K]
        heads[head] = by_position(mass, data.row_pos)[1].tolist()
        overall[head] = mass.mean(0).tolist()
    return KeyAttention([cfg.vocab[i] for i in ids], positions, heads, uni.tolist(), overall,
                        uniform.mean(0).tolist())


def head_writes(prep: "Prepared", side: "ModelSide", head: Head, means, resampled,
                inputs: dict[str, torch.Tensor]) -> dict[str, float]:
    """Drop of every variable's held-out live readout at the end of the head's layer when it is mean-ablated.

    ``inputs``: the clean run's ``hook_resid_pre`` of every layer ``{hook: [B, T, D]}``. The ablated run
    starts at the head's layer from it and stops at the layer's end: the layers before are the clean run's
    bit for bit, and nothing after is read."""
    data = prep.data
    hook, first = side.after_mlp(head.layer), f"blocks.{head.layer}.hook_resid_pre"
    _, abl = run_cached(side.model, data.ids, [hook], hooks=ablation_hooks([head], "mean", means, resampled),
                        start=(first, inputs[first]), stop_at=hook)
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


def compare_heads(prep: "Prepared", side: "ModelSide") -> Heads:
    """Pattern agreement of every compiled head with every learned head, matching, and head writes."""
    compiled_names = head_names(prep.compiled.model)
    learned_names = head_names(side.model)
    sim = similarity_matrix(prep.compiled.patterns, side.patterns, compiled_names, learned_names)
    # A head that writes nothing (all-zero OV, as Tracr pads layers) matches nothing: its pattern is noise, and
    # a uniform one would tie with a compiled mean head.
    silent = empty_heads(side.model)
    sim[:, [j for j, n in enumerate(learned_names) if n in silent]] = 0.0
    live = [i for i, n in enumerate(compiled_names) if n not in prep.empty]
    firsts = tuple(f"blocks.{l}.hook_resid_pre" for l in sorted({h.layer for h in learned_names}))
    means, resampled, inputs = z_statistics(side.model, prep.data, prep.config.seed, keep=firsts)
    writes = {n: head_writes(prep, side, n, means, resampled, inputs) for n in learned_names}
    # the reference is the compiled model itself
    ref_writes = prep.reference.heads.learned_writes if prep.reference else writes
    tie = np.array([[_write_similarity(ref_writes.get(c, {}), writes[lh]) for lh in learned_names]
                    for c in compiled_names])
    matches = []
    for i, j, _ in match_heads(sim + 0.01 * tie, live):
        c, lh = compiled_names[i], learned_names[j]
        compiled_rows = prep.compiled.patterns[c.layer][c.head]
        agreement = bootstrap(row_agreements(compiled_rows, side.patterns[lh.layer][lh.head]), prep.data.group,
                              prep.config.seed)
        entry = prep.sops.get(c, {})
        matches.append(HeadMatch(
            compiled=c, learned=lh, sop=entry.get("sop", ""), op=entry.get("op", ""), agreement=agreement,
            uniform=row_agreement(compiled_rows, prep.uniform), is_match=bool(agreement.lo >= MATCH_OK),
            compiled_writes={k: x for k, x in ref_writes.get(c, {}).items() if x >= WRITES},
            learned_writes={k: x for k, x in writes[lh].items() if x >= WRITES}))
    matched = {m.learned for m in matches if m.is_match}
    return Heads(compiled_names=compiled_names, learned_names=learned_names, similarity=sim.tolist(),
                 empty_compiled=[n for n in compiled_names if n in prep.empty], matches=matches,
                 unmatched_learned=[n for n in learned_names if n not in matched], learned_writes=writes)
