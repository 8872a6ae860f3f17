"""Tracr parameters -> TransformerLens-named torch weights + labelled metadata."""

from __future__ import annotations

import importlib.metadata as md
from typing import Any

import numpy as np
import torch

from compiled.compile import BOS, PAD, CompiledProgram
from learned.model import ModelConfig, Transformer
from rasp_programs.errors import ToolkitError


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("tracr-pypi", "jax", "dm-haiku", "torch", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def model_config(cp: CompiledProgram) -> ModelConfig:
    """The torch config of a compiled program (shape and vocabularies)."""
    m = cp.model
    vocab = sorted(m.input_encoder.encoding_map, key=m.input_encoder.encoding_map.get)
    out = sorted(m.output_encoder.encoding_map, key=m.output_encoder.encoding_map.get)
    c = m.model_config
    return ModelConfig(
        n_layers=c.num_layers, n_heads=c.num_heads, d_model=len(cp.residual_labels), d_head=c.key_size,
        d_mlp=c.mlp_hidden_size, n_ctx=cp.max_len + 1, d_vocab=len(vocab), d_vocab_out=len(out),
        vocab=tuple(str(v) for v in vocab), output_vocab=tuple(str(v) for v in out),
        bos_token=BOS, pad_token=PAD, causal=cp.spec.causal, act_fn="relu")


def tl_params(cp: CompiledProgram, cfg: ModelConfig) -> dict[str, np.ndarray]:
    """Haiku parameter dict -> ``{TransformerLens name: array}`` (float64)."""
    p = {k: {kk: np.asarray(v, dtype=np.float64) for kk, v in d.items()} for k, d in cp.model.params.items()}
    H, D, K = cfg.n_heads, cfg.d_model, cfg.d_head
    out = {"embed.W_E": p["token_embed"]["embeddings"], "pos_embed.W_pos": p["pos_embed"]["embeddings"]}
    for l in range(cfg.n_layers):
        a, m = f"transformer/layer_{l}/attn/", f"transformer/layer_{l}/mlp/"
        for tl, hk in (("Q", "query"), ("K", "key"), ("V", "value")):
            out[f"blocks.{l}.attn.W_{tl}"] = p[a + hk]["w"].reshape(D, H, K).transpose(1, 0, 2)
            out[f"blocks.{l}.attn.b_{tl}"] = p[a + hk]["b"].reshape(H, K)
        out[f"blocks.{l}.attn.W_O"] = p[a + "linear"]["w"].reshape(H, K, D)
        out[f"blocks.{l}.attn.b_O"] = p[a + "linear"]["b"]
        out[f"blocks.{l}.mlp.W_in"], out[f"blocks.{l}.mlp.b_in"] = p[m + "linear_1"]["w"], p[m + "linear_1"]["b"]
        out[f"blocks.{l}.mlp.W_out"], out[f"blocks.{l}.mlp.b_out"] = p[m + "linear_2"]["w"], p[m + "linear_2"]["b"]
    # The unembedding reads the output SOp's directions *by label*.
    W_U = np.zeros((D, cfg.d_vocab_out))
    index = {lab: i for i, lab in enumerate(cp.residual_labels)}
    for j, value in enumerate(cfg.output_vocab):
        label = f"{cp.spec.output}:{value}"
        if label not in index:
            raise ToolkitError(f"output label {label!r} is not in the residual stream")
        W_U[index[label], j] = 1.0
    out["unembed.W_U"], out["unembed.b_U"] = W_U, np.zeros(cfg.d_vocab_out)
    return out


def to_torch(cp: CompiledProgram, dtype: torch.dtype = torch.float64) -> tuple[Transformer, dict[str, Any]]:
    """The compiled program as a torch ``Transformer`` plus its ``model.json`` metadata."""
    cfg = model_config(cp)
    model = Transformer(cfg)
    model.load_tl_state_dict({k: torch.from_numpy(v) for k, v in tl_params(cp, cfg).items()})
    meta = {
        "kind": "compiled",
        "program": cp.spec.name,
        "max_len": cp.max_len,
        "mlp_exactness": cp.mlp_exactness,
        "residual_labels": cp.residual_labels,
        "block_map": cp.block_map,
        "corrected_value_sets": cp.corrected_value_sets,
        "versions": _versions(),
    }
    return model.to(dtype), meta
