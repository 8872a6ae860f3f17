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
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from learned.model import Transformer

BOS_ONLY = 0.05


def head_names(model: Transformer) -> list[tuple[int, int]]:
    return [(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]


@torch.no_grad()
def empty_heads(model: Transformer, atol: float = 1e-12) -> set[tuple[int, int]]:
    """Heads whose OV circuit ``W_V @ W_O`` (and ``b_V``) is zero: they write nothing."""
    out = set()
    for l, h in head_names(model):  # noqa: E741
        ov = model.param(f"blocks.{l}.attn.W_V")[h] @ model.param(f"blocks.{l}.attn.W_O")[h]  # [D, D]
        bv = model.param(f"blocks.{l}.attn.b_V")[h] @ model.param(f"blocks.{l}.attn.W_O")[h]  # [D]
        if float(ov.abs().max()) <= atol and float(bv.abs().max()) <= atol:
            out.add((l, h))
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
