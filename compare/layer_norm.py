"""What layer norm changes in ``compare/``: the disguise that commutes with it, the direction the unembedding
reads, and the report's note.

A model with pre-LayerNorm (``ModelConfig.layer_norm``) reads its residual
stream only through ``LN(x) = centre(x) / sqrt(mean(centre(x)^2) + eps) * w + b``.
A general invertible map of the residual (``compare.controls.remap``) changes
that function; the maps that leave it unchanged are those that keep the
centred subspace (the complement of the all-ones direction), act on it
orthogonally, and send the all-ones direction to a multiple of itself, plus
anything the centring removes. In the orthonormal basis ``Q = [1/sqrt(D), U]``
such a map is ``B = [[c, 0], [u, O]]`` (row vectors, ``x -> x @ Q @ B @ Q.T``):
``O`` orthogonal ``[D-1, D-1]``, ``c != 0``, ``u`` any ``[D-1]``. Then
``centre(x a) = centre(x) a`` with the same norm, so every layer norm sees the
same normalised vector, rotated: ``centre(x a) = centre(x) (P a P)`` with
``P`` the centring projection and ``P a P`` orthogonal on the centred
subspace. Its weight ``w`` and bias ``b`` do not commute with a rotation, so
they are folded into the reads that follow (``W -> (P a P)^T diag(w) W``,
bias ``+ b W``) and set to 1 and 0 in the copy.

Shapes: D d_model, H n_heads, K d_head, M d_mlp, O d_vocab_out.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from learned.model import Transformer

METHODS_NOTE = (
    "Layer norm (this model normalises before every sublayer and before the unembedding, pre-LN as in GPT-2): "
    "the residual hooks are read before ln1 / ln2 / ln_final, so a swap there is normalised afterwards together "
    "with the rest of the row's residual. What reaches the next sublayer is the swapped part's direction "
    "relative to the whole centred residual, not its scale, and a swap also changes the normalising scale every "
    "other direction of the row sees. The direct path to the logits goes through ln_final, so logit attributions "
    "are not linear in the residual; the output's DAS start is the unembedding as seen from the residual "
    "(diag(ln_final.w) W_U, centred). Whitening makes the methods invariant to any invertible map of the "
    "residual, but the model's function is invariant only to maps that commute with layer norm (a rotation of "
    "the centred subspace, a scale of the all-ones direction), so the disguised control of such a model uses "
    "one of those."
)


def unembed_as_read(model: Transformer) -> torch.Tensor:
    """``[D, O]`` the unembedding as the last residual hook sees it: ``W_U``, or with layer norm
    ``diag(ln_final.w) @ W_U`` with the all-ones direction removed (what ``ln_final`` centres away)."""
    w = model.param("unembed.W_U").detach().double()  # [D, O]
    if not model.cfg.layer_norm:
        return w
    w = model.param("ln_final.w").detach().double()[:, None] * w  # [D, O]
    return w - w.mean(0, keepdim=True)


def commuting_map(d: int, seed: int, invertible: bool) -> torch.Tensor:
    """``[D, D]`` a random map that commutes with layer norm (module docstring): a Haar rotation of the centred
    subspace; with ``invertible`` also a scale ``c`` in [0.3, 3] of the all-ones direction and a random ``u``
    (so the map is not orthogonal)."""
    g = torch.Generator().manual_seed(seed)

    def orthonormal(x: torch.Tensor) -> torch.Tensor:
        q, r = torch.linalg.qr(x)
        return q * torch.sign(torch.diagonal(r))
    basis = orthonormal(torch.cat([torch.ones(d, 1, dtype=torch.float64),
                                   torch.randn(d, d - 1, generator=g, dtype=torch.float64)], 1))  # [D, D], col 0 ∝ 1
    b = torch.zeros(d, d, dtype=torch.float64)
    b[1:, 1:] = orthonormal(torch.randn(d - 1, d - 1, generator=g, dtype=torch.float64))
    b[0, 0] = 1.0
    if invertible:
        b[0, 0] = torch.empty(1, dtype=torch.float64).uniform_(np.log(0.3), np.log(3.0), generator=g).exp().item()
        b[1:, 0] = torch.randn(d - 1, generator=g, dtype=torch.float64)
    return basis @ b @ basis.T


def remap_layer_norm(model: Transformer, a: torch.Tensor, perms: list[list[int]] | None = None) -> Transformer:
    """``compare.controls.remap`` for a model with layer norm: the same function on the residual basis ``x @ a``
    (``a`` from ``commuting_map``), layer-norm weights folded into the reads, heads permuted per layer (new head
    ``perm[h]`` = old head ``h``). The copy's unembedding is untied (``W_E a`` and the folded read differ)."""
    cfg = model.cfg
    dtype = model.param("embed.W_E").dtype
    a64 = a.double()
    centre = torch.eye(cfg.d_model, dtype=torch.float64) - 1.0 / cfg.d_model  # [D, D] P: removes the all-ones part
    # centre(x a) = centre(x) (P a P), orthogonal on the centred subspace, so its transpose undoes it there
    undo = (centre @ a64 @ centre).T  # [D, D]
    w = {name: model.param(name).detach().double() for name in (*cfg.param_shapes(), "unembed.W_U")}

    def fold(ln: str, read: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``read`` ``[D, X]`` after ``ln``: (``(P a P)^T diag(w) read``, ``bias + b read``)."""
        return undo @ (w[ln + ".w"][:, None] * read), bias + w[ln + ".b"] @ read

    out = {"embed.W_E": w["embed.W_E"] @ a64, "pos_embed.W_pos": w["pos_embed.W_pos"] @ a64}
    out["unembed.W_U"], out["unembed.b_U"] = fold("ln_final", w["unembed.W_U"], w["unembed.b_U"])
    out["ln_final.w"], out["ln_final.b"] = torch.ones(cfg.d_model), torch.zeros(cfg.d_model)
    H, D, K = cfg.n_heads, cfg.d_model, cfg.d_head
    for l in range(cfg.n_layers):
        p = f"blocks.{l}."
        for n in "QKV":
            read = w[p + f"attn.W_{n}"].permute(1, 0, 2).reshape(D, H * K)  # [D, H*K]
            r, bias = fold(p + "ln1", read, w[p + f"attn.b_{n}"].reshape(H * K))
            out[p + f"attn.W_{n}"], out[p + f"attn.b_{n}"] = r.reshape(D, H, K).permute(1, 0, 2), bias.reshape(H, K)
        out[p + "mlp.W_in"], out[p + "mlp.b_in"] = fold(p + "ln2", w[p + "mlp.W_in"], w[p + "mlp.b_in"])
        for name in ("attn.W_O", "attn.b_O", "mlp.W_out", "mlp.b_out"):
            out[p + name] = w[p + name] @ a64  # writes: [..., D] -> mapped
        for ln in ("ln1", "ln2"):
            out[p + ln + ".w"], out[p + ln + ".b"] = torch.ones(D), torch.zeros(D)
    for l, perm in enumerate(perms or []):
        order = torch.argsort(torch.tensor(perm))  # new[perm[h]] = old[h]
        for name in ("W_Q", "W_K", "W_V", "b_Q", "b_K", "b_V", "W_O"):
            out[f"blocks.{l}.attn.{name}"] = out[f"blocks.{l}.attn.{name}"][order]
    copy = Transformer(dataclasses.replace(cfg, tied_unembed=False)).to(dtype)
    copy.load_tl_state_dict({k: v.to(dtype).contiguous() for k, v in out.items()})
    return copy.eval()
