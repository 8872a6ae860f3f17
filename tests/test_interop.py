"""Out to TransformerLens 4: ``learned.interop.to_transformer_lens`` against our own forward pass.

Two implementations agreeing: TransformerLens 4's TL-native ``TransformerBridge``
(its own attention, MLP and layer norm modules, a test-only dependency) with
the artifact's weights, against ``learned.model.Transformer``, for each
architecture the project has: compiled (Tracr, no layer norm), learned (no
layer norm, ReLU), GPT-2 blocks (layer norm, GELU, tied, inverse-layer
scaling) and a checkpoint imported from ``transformers``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from learned.artifact import load_artifact, save_artifact
from learned.interop import to_transformer_lens
from learned.model import ModelConfig, Transformer

pytest.importorskip("transformer_lens")

SMALL = ModelConfig(n_layers=2, n_heads=2, d_model=16, d_head=6, d_mlp=24, n_ctx=9, d_vocab=6, d_vocab_out=3,
                    vocab=("a", "b", "c", "d", "BOS", "PAD"), output_vocab=("x", "y", "z"), bos_token="BOS",
                    pad_token="PAD", causal=True)
GPT2 = dataclasses.replace(SMALL, n_layers=3, d_head=8, d_vocab_out=6, output_vocab=SMALL.vocab, act_fn="gelu_new",
                           normalization_type="LN", tied_unembed=True, scale_attn_by_inverse_layer_idx=True)


def random_model(cfg: ModelConfig, seed: int) -> Transformer:
    """Random weights with every bias and layer-norm parameter away from its init."""
    model = Transformer(cfg)
    g = torch.Generator().manual_seed(seed)
    model.init_weights(g)
    with torch.no_grad():
        for name in cfg.param_shapes():
            if ".b_" in name or name.endswith((".b", ".w")):
                model.param(name).add_(0.3 * torch.randn(model.param(name).shape, generator=g))
    return model.eval()


def batches(cfg: ModelConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[64, n_ctx]`` BOS-first random strings: unpadded, and right-padded to every length."""
    g = torch.Generator().manual_seed(seed)
    bos, pad = cfg.vocab.index(cfg.bos_token), cfg.vocab.index(cfg.pad_token)
    symbols = torch.tensor([i for i, t in enumerate(cfg.vocab) if i not in (bos, pad)])
    full = symbols[torch.randint(len(symbols), (64, cfg.n_ctx), generator=g)]
    full[:, 0] = bos
    padded = full.clone()
    for i in range(64):
        padded[i, 2 + i % (cfg.n_ctx - 2):] = pad
    return full, padded


def largest_difference(folder, seed: int = 0) -> dict[torch.dtype, float]:
    """Largest |logit difference| bridge vs ours at every real position, per dtype (padded: with attention_mask)."""
    model, _ = load_artifact(folder)
    bridge = to_transformer_lens(folder)
    pad = model.cfg.vocab.index(model.cfg.pad_token)
    out = {}
    for dtype in (torch.float32, torch.float64):
        model, bridge = model.to(dtype), bridge.to(dtype)
        worst = 0.0
        for ids in batches(model.cfg, seed):
            keep = ids != pad
            with torch.no_grad():
                ours = model(ids)  # [B, T, O]
                theirs = bridge(ids, attention_mask=keep.long())  # [B, T, O]
            worst = max(worst, float((ours - theirs).abs()[keep].max()))
        out[dtype] = worst
    return out


def check(folder, what: str) -> None:
    diff = largest_difference(folder)
    print(f"{what}: max |logit diff| bridge vs ours: float64 {diff[torch.float64]:.1e}, "
          f"float32 {diff[torch.float32]:.1e}")
    assert diff[torch.float64] <= 1e-5, (what, diff)


@pytest.fixture(scope="module")
def compiled_miu(tmp_path_factory):
    """The repository's compiled MIU artifact, else MIU compiled here at length 6 (the whole ``artifacts``
    fixture compiles every program, ~30 s)."""
    from conftest import ROOT

    if (ROOT / "artifacts" / "miu" / "compiled" / "model.json").is_file():
        return ROOT / "artifacts" / "miu" / "compiled"
    pytest.importorskip("jax")
    from compiled.compile import compile_program
    from compiled.export import to_torch
    from rasp_programs.registry import get_program

    folder = tmp_path_factory.mktemp("compiled") / "miu"
    save_artifact(folder, *to_torch(compile_program(get_program("miu"), 6)))
    return folder


def test_compiled(compiled_miu):
    """The compiled MIU model: Tracr's weights, no layer norm."""
    check(compiled_miu, "compiled miu")


def test_learned_architecture_without_layer_norm(tmp_path):
    save_artifact(tmp_path / "learned", random_model(SMALL, 0), {})
    check(tmp_path / "learned", "learned (no LN)")
    assert largest_difference(tmp_path / "learned")[torch.float32] <= 1e-5


def test_gpt2_blocks(tmp_path):
    """Layer norm, gelu_new, tied unembedding with a bias, scale_attn_by_inverse_layer_idx, 3 layers."""
    save_artifact(tmp_path / "gpt2", random_model(GPT2, 1), {})
    check(tmp_path / "gpt2", "GPT-2 blocks")
    assert largest_difference(tmp_path / "gpt2")[torch.float32] <= 1e-5


def test_bidirectional_attention(tmp_path):
    save_artifact(tmp_path / "bidi", random_model(dataclasses.replace(SMALL, causal=False, act_fn="gelu"), 2), {})
    model, _ = load_artifact(tmp_path / "bidi")
    full, _ = batches(model.cfg, 0)
    with torch.no_grad():
        assert (model(full) - to_transformer_lens(tmp_path / "bidi")(full)).abs().max() <= 1e-5


def test_imported_checkpoint(tmp_path):
    pytest.importorskip("transformers")
    from learned.hf import import_checkpoint
    from test_gpt2 import ROLES, TOKENS, hf_model

    hf_model(2, 4, 32, "gelu_new", False, False, seed=5).save_pretrained(tmp_path / "hf")
    import_checkpoint(tmp_path / "hf", tmp_path / "imported", vocab=TOKENS, **ROLES)
    check(tmp_path / "imported", "imported GPT-2")
    assert largest_difference(tmp_path / "imported")[torch.float32] <= 1e-5


def test_the_bridge_hooks_see_our_activations(tmp_path):
    """TL hook names of the bridge carry our activations (residual before ln1, pattern, MLP post)."""
    save_artifact(tmp_path / "gpt2", random_model(GPT2, 3), {})
    model, _ = load_artifact(tmp_path / "gpt2")
    bridge = to_transformer_lens(tmp_path / "gpt2")
    full, _ = batches(model.cfg, 1)
    with torch.no_grad():
        _, theirs = bridge.run_with_cache(full)
        _, ours = model.run_with_cache(full)
    for name in ("blocks.1.hook_resid_pre", "blocks.2.attn.hook_pattern", "blocks.0.mlp.hook_post",
                 "blocks.2.hook_resid_post"):
        assert (theirs[name] - ours[name]).abs().max() <= 1e-5, name


def test_missing_transformer_lens_is_one_line(tmp_path, monkeypatch):
    import builtins

    from rasp_programs.errors import ToolkitError

    save_artifact(tmp_path / "learned", random_model(SMALL, 0), {})
    real_import = builtins.__import__

    def no_tl(name, *args, **kwargs):
        if name.startswith("transformer_lens"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tl)
    with pytest.raises(ToolkitError, match="transformer-lens 4"):
        to_transformer_lens(tmp_path / "learned")


def test_importing_interop_loads_neither_transformer_lens_nor_transformers():
    import subprocess
    import sys

    code = ("import sys, learned.interop, learned.bench_hf, compare.layer_norm; "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('transformer_lens', 'transformers')], 'imported'")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_an_exported_folder_boots_in_transformer_lens_from_transformers(tmp_path, monkeypatch):
    """``python -m learned.hf --export`` writes a folder TL 4's ``TransformerBridge.boot_transformers`` loads,
    tokenizer included (word-level ``tokenizer.json``), giving our logits."""
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformer_lens.model_bridge import TransformerBridge
    import transformer_lens.model_bridge.sources.transformers  # noqa: F401  (attaches boot_transformers)

    from learned.hf import export_checkpoint, import_checkpoint
    from test_gpt2 import ROLES, TOKENS, hf_model

    hf_model(2, 2, 32, "gelu_new", False, False, seed=1).save_pretrained(tmp_path / "hf")
    ours = import_checkpoint(tmp_path / "hf", tmp_path / "a", vocab=TOKENS, **ROLES)
    export_checkpoint(tmp_path / "a", tmp_path / "exported")
    bridge = TransformerBridge.boot_transformers(str(tmp_path / "exported"))
    full, _ = batches(ours.cfg, 2)
    with torch.no_grad():
        assert (bridge(full) - ours(full)).abs().max() <= 1e-5
    assert bridge.tokenizer("a b d").input_ids[-3:] == [TOKENS.index(t) for t in "abd"]
