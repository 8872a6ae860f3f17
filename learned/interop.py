"""Out to TransformerLens 4: an artifact as a TL-native ``TransformerBridge``.

TransformerLens 4.0 removed ``HookedTransformer``; its replacement for a
model built from weights (no Hugging Face checkpoint) is the TL-native
bridge, ``transformer_lens.model_bridge.sources.native.boot``, which needs no
``transformers``. ``to_transformer_lens`` boots one of the artifact's shape
and copies the artifact's weights into it, for every architecture the
project has: compiled and learned (no layer norm, ReLU), GPT-2 blocks (layer
norm, GELU) and imported checkpoints.

    from learned.interop import to_transformer_lens
    bridge = to_transformer_lens("artifacts/miu/compiled")
    logits, cache = bridge.run_with_cache(tokens)  # tokens: [B, T] ids, BOS first

What carries over exactly: the weights under TL's native layout
(``nn.Linear`` ``[out, in]``: ``W_Q [H, D, K]`` becomes ``q.weight [H*K, D]``),
the unembedding bias (the bridge keeps a ``b_U`` buffer), the per-layer
attention scale (``scale_attn_by_inverse_layer_idx``), causal or
bidirectional attention. What does not: our model masks pad keys by itself;
the bridge masks them only when given ``attention_mask=(tokens != pad_id)``.

``transformer-lens`` is a test-only extra of this project, never a run-time
dependency: it is imported inside the function.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from learned.artifact import load_artifact
from learned.model import ModelConfig, Transformer
from rasp_programs.errors import ToolkitError


def bridge_config(cfg: ModelConfig) -> dict[str, Any]:
    """The TL-native config (``TransformerBridgeConfig`` fields) of a model of this shape."""
    return {"d_model": cfg.d_model, "d_head": cfg.d_head, "n_layers": cfg.n_layers, "n_ctx": cfg.n_ctx,
            "n_heads": cfg.n_heads, "d_mlp": cfg.d_mlp, "d_vocab": cfg.d_vocab, "d_vocab_out": cfg.d_vocab_out,
            "act_fn": cfg.act_fn, "normalization_type": cfg.normalization_type, "eps": cfg.eps,
            "attention_dir": "causal" if cfg.causal else "bidirectional", "positional_embedding_type": "standard",
            "original_architecture": "rasp-compare", "init_weights": False}


def native_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """Our TransformerLens-named weights under the bridge's own names (``nn.Linear`` ``[out, in]``)."""
    cfg = model.cfg
    H, D, K = cfg.n_heads, cfg.d_model, cfg.d_head
    w = {name: model.param(name).detach().float() for name in (*cfg.param_shapes(), "unembed.W_U")}
    out = {"embed.weight": w["embed.W_E"], "pos_embed.weight": w["pos_embed.W_pos"],
           "unembed.weight": w["unembed.W_U"].T, "unembed.bias": w["unembed.b_U"]}  # [O, D], [O]
    if cfg.layer_norm:
        out["ln_final.weight"], out["ln_final.bias"] = w["ln_final.w"], w["ln_final.b"]
    for l in range(cfg.n_layers):
        p = f"blocks.{l}."
        for n in "QKV":
            out[p + f"attn.{n.lower()}.weight"] = w[p + f"attn.W_{n}"].permute(0, 2, 1).reshape(H * K, D)  # [H*K, D]
            out[p + f"attn.{n.lower()}.bias"] = w[p + f"attn.b_{n}"].reshape(H * K)
        out[p + "attn.o.weight"] = w[p + "attn.W_O"].reshape(H * K, D).T  # [D, H*K]
        out[p + "attn.o.bias"] = w[p + "attn.b_O"]
        out[p + "mlp.in.weight"], out[p + "mlp.in.bias"] = w[p + "mlp.W_in"].T, w[p + "mlp.b_in"]  # [M, D]
        out[p + "mlp.out.weight"], out[p + "mlp.out.bias"] = w[p + "mlp.W_out"].T, w[p + "mlp.b_out"]  # [D, M]
        if cfg.layer_norm:
            for ln in ("ln1", "ln2"):
                out[p + f"{ln}.weight"], out[p + f"{ln}.bias"] = w[p + f"{ln}.w"], w[p + f"{ln}.b"]
    return {k: v.contiguous() for k, v in out.items()}


def model_to_transformer_lens(model: Transformer) -> Any:
    """A TL-native ``TransformerBridge`` with ``model``'s weights (see the module docstring).

    Raises:
        ToolkitError: ``transformer-lens`` is not installed, or its bridge does not take every weight.
    """
    try:
        from transformer_lens.model_bridge.sources import native
        from transformer_lens.model_bridge.sources.native.model import NativeAttention
    except ImportError:
        raise ToolkitError("to_transformer_lens needs transformer-lens 4.x (pip install 'transformer-lens>=4.3,<4.4'); "
                           "it is a test-only extra, not a dependency of this toolkit") from None
    cfg = model.cfg
    bridge = native.boot(bridge_config(cfg))
    sd = native_state_dict(model)
    ours = bridge.state_dict()
    missing, extra = set(ours) - set(sd), set(sd) - set(ours)
    if missing or extra:
        raise ToolkitError(f"the TransformerLens bridge's weights differ from the artifact's: missing "
                           f"{sorted(missing)[:3]}, unexpected {sorted(extra)[:3]}")
    bridge.load_state_dict(sd, strict=True)
    # The native attention divides scores by one scale per module; GPT-2's inverse-layer scaling is per layer.
    attentions = [m for m in bridge.original_model.modules() if isinstance(m, NativeAttention)]
    if len(attentions) != cfg.n_layers:
        raise ToolkitError(f"the TransformerLens bridge has {len(attentions)} attention modules, expected {cfg.n_layers}")
    for l, attn in enumerate(attentions):
        attn.scale = math.sqrt(cfg.d_head) * (l + 1 if cfg.scale_attn_by_inverse_layer_idx else 1)
    return bridge.eval()


def to_transformer_lens(folder: Path | str) -> Any:
    """The artifact in ``folder`` (``model.safetensors`` + ``model.json``) as a TL-native ``TransformerBridge``.

    Raises:
        ToolkitError: the artifact is missing or corrupt, or ``transformer-lens`` is not installed.
    """
    model, _ = load_artifact(folder)
    return model_to_transformer_lens(model)
