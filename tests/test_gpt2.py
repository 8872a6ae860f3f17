"""GPT-2 blocks in the one model class, and Hugging Face checkpoints imported exactly.

Two implementations agreeing: ``transformers``' own ``GPT2LMHeadModel``
(a test-only dependency) against ``learned.model.Transformer`` after
``learned.hf`` has read the saved folder with safetensors and JSON only.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from learned.artifact import encode, load_artifact
from learned.hf import import_checkpoint, main as hf_main
from learned.model import ModelConfig, Transformer

transformers = pytest.importorskip("transformers")

TOKENS = ("a", "b", "c", "d", "<bos>", "<eos>", "<pad>")
BOS, EOS, PAD = 4, 5, 6
ROLES = dict(bos="<bos>", end="<eos>", pad="<pad>")

# (layers, heads, width, activation, tied, scale_attn_by_inverse_layer_idx): 1-3 layers, 1-4 heads, widths 16-64.
GRID = [
    (1, 1, 16, "gelu_new", True, False),
    (1, 4, 32, "relu", False, False),
    (2, 2, 16, "relu", True, True),
    (2, 4, 64, "gelu_new", False, False),
    (3, 1, 24, "gelu_new", False, True),
    (3, 2, 48, "relu", True, False),
    (3, 4, 64, "gelu_new", True, False),
    (2, 3, 36, "gelu", False, False),
]


def hf_model(layers: int, heads: int, width: int, act: str, tied: bool, inv_layer: bool, seed: int = 0):
    """A random GPT-2, briefly trained (so layer norms and biases are not at their init)."""
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=len(TOKENS), n_positions=12, n_embd=width, n_layer=layers,
                                     n_head=heads, activation_function=act, tie_word_embeddings=tied,
                                     scale_attn_by_inverse_layer_idx=inv_layer, resid_pdrop=0.0, embd_pdrop=0.0,
                                     attn_pdrop=0.0, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    model = transformers.GPT2LMHeadModel(config)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    g = torch.Generator().manual_seed(seed)
    for _ in range(4):
        ids = torch.cat([torch.full((16, 1), BOS), torch.randint(0, 4, (16, 8), generator=g)], 1)
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def random_batch(n: int, n_ctx: int, seed: int) -> torch.Tensor:
    """``[n, n_ctx]`` BOS-first inputs of every length 1..n_ctx-1 (cycled), right-padded."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((n, n_ctx), PAD)
    ids[:, 0] = BOS
    for i in range(n):
        length = 1 + i % (n_ctx - 1)
        ids[i, 1:1 + length] = torch.randint(0, 4, (length,), generator=g)
    return ids


@pytest.fixture(scope="module")
def grid_models(tmp_path_factory):
    out = []
    for i, params in enumerate(GRID):
        folder = tmp_path_factory.mktemp(f"hf{i}")
        model = hf_model(*params, seed=i)
        model.save_pretrained(folder)
        out.append((params, model, folder))
    return out


def test_grid_agrees_with_transformers_at_every_position(grid_models, tmp_path):
    worst = 0.0
    for i, (params, hf, folder) in enumerate(grid_models):
        ours = import_checkpoint(folder, tmp_path / f"a{i}", vocab=TOKENS, **ROLES)
        assert ours.cfg.tied_unembed == params[4] and ours.cfg.act_fn == {"gelu": "gelu"}.get(params[3], params[3])
        ids = random_batch(64, 12, seed=i)  # padded batch: lengths 1..11
        mask = (ids != PAD).long()
        with torch.no_grad():
            want = hf(input_ids=ids, attention_mask=mask).logits  # [B, T, V]
            got = ours(ids)
            full = ids[:, :1].repeat(1, 12)
            full[:, 1:] = torch.randint(0, 4, (64, 11), generator=torch.Generator().manual_seed(i))
            want_full, got_full = hf(input_ids=full).logits, ours(full)  # unpadded, every position
        real = mask.bool()
        diff = max(float((got - want).abs()[real].max()), float((got_full - want_full).abs().max()))
        worst = max(worst, diff)
        assert diff <= 1e-5, (params, diff)
        # the artifact reloads to the same model
        loaded, meta = load_artifact(tmp_path / f"a{i}")
        with torch.no_grad():
            assert torch.equal(loaded(ids), got)
        assert meta["provenance"]["sha256"].keys() >= {"config.json", "model.safetensors"}
    print(f"max |logit diff| vs transformers over {len(grid_models)} configs: {worst:.2e}")


def test_hooks_see_the_same_model(grid_models, tmp_path):
    """The hooked path (manual layer norm, explicit pattern) equals the fused one; TL hook names exist."""
    params, _, folder = grid_models[3]
    ours = import_checkpoint(folder, tmp_path / "a", vocab=TOKENS, **ROLES)
    ids = random_batch(32, 12, seed=1)
    with torch.no_grad():
        plain = ours(ids)
        hooked, cache = ours.run_with_cache(ids)
    assert (hooked - plain).abs().max() <= 1e-5
    for name in ("blocks.0.ln1.hook_scale", "blocks.0.ln1.hook_normalized", "blocks.1.ln2.hook_normalized",
                 "ln_final.hook_normalized", "ln_final.hook_scale", "blocks.1.attn.hook_pattern"):
        assert name in cache
    assert cache["blocks.0.ln1.hook_scale"].shape == (32, 12, 1)
    assert cache["ln_final.hook_normalized"].shape == (32, 12, params[2])
    # an intervention on a layer-norm hook changes the output
    with torch.no_grad():
        zeroed = ours(ids, hooks={"ln_final.hook_normalized": lambda x, name: torch.zeros_like(x)})
    assert torch.allclose(zeroed, ours.param("unembed.b_U").expand_as(zeroed))


def test_vocabulary_from_tokenizer_json(grid_models, tmp_path):
    _, _, folder = grid_models[0]
    src = tmp_path / "src"
    src.mkdir()
    for f in folder.iterdir():
        (src / f.name).write_bytes(f.read_bytes())
    (src / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(TOKENS)}))
    model = import_checkpoint(src, tmp_path / "a", **ROLES)
    assert model.cfg.vocab == TOKENS
    with pytest.raises(Exception, match="disagrees"):
        import_checkpoint(src, tmp_path / "b", vocab=TOKENS[::-1], **ROLES)


def test_program_vocabulary_is_checked_and_legal_next_is_read(grid_models, tmp_path):
    """MIU's tokens by name; a token the task lacks needs --unused; compare reads the legal-next verdict."""
    from compare.outputs import LegalNextReadout, readout_for

    _, hf, folder = grid_models[0]
    miu = ("I", "M", "U", "X", "<bos>", "<eos>", "<pad>")
    assert hf_main([str(folder), "--out", str(tmp_path / "bad"), "--vocab", " ".join(miu), "--bos", "<bos>",
                    "--end", "<eos>", "--pad", "<pad>", "--program", "miu"]) == 2
    assert not (tmp_path / "bad").exists()
    model = import_checkpoint(folder, tmp_path / "ok", vocab=miu, unused=["X"], program="miu", **ROLES)
    _, meta = load_artifact(tmp_path / "ok")
    assert meta["readout"]["objective"] == "legal-next" and meta["roles"]["unused"] == ["X"]
    readout = readout_for(model.cfg, meta, ("False", "True"), "model.json")
    assert isinstance(readout, LegalNextReadout)
    ids = encode(model.cfg, [tuple("MIU"), tuple("MI")])
    with torch.no_grad():
        logits = model(ids)
    verdict = readout.predict(logits, ids)
    legal = torch.sigmoid(logits) > 0.5  # [B, T, O]: the model's legal sets, read one prefix at a time below
    expected = torch.zeros_like(verdict, dtype=torch.bool)
    for b, s in enumerate(["MIU", "MI"]):
        for t in range(1, len(s) + 1):
            tokens_legal = all(legal[b, i - 1, miu.index(s[i - 1])] for i in range(1, t + 1))
            expected[b, t] = tokens_legal and legal[b, t, miu.index("<eos>")]
    assert torch.equal(verdict.bool(), expected)


def bad_folder(tmp_path: Path, folder: Path, damage: str) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for f in folder.iterdir():
        (src / f.name).write_bytes(f.read_bytes())
    config = json.loads((src / "config.json").read_text())
    if damage == "pickle_only":
        (src / "model.safetensors").unlink()
        (src / "pytorch_model.bin").write_bytes(b"not to be unpickled")
    elif damage == "llama":
        (src / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    elif damage == "shape":
        (src / "config.json").write_text(json.dumps({**config, "n_inner": 8}))
    elif damage == "no_config":
        (src / "config.json").unlink()
    elif damage in ("nan", "inf"):
        sd = load_file(str(src / "model.safetensors"))
        sd["transformer.h.0.mlp.c_fc.weight"][0, 0] = float(damage)
        save_file(sd, str(src / "model.safetensors"), metadata={"format": "pt"})
    return src


@pytest.mark.parametrize("damage, argv, message", [
    ("pickle_only", [], "pickle"),
    ("llama", [], "model_type 'llama'"),
    ("shape", [], "disagree"),
    ("no_config", [], "config.json"),
    ("nan", [], "NaN"),
    ("inf", [], "infinite"),
    (None, ["--vocab", "a b c"], "3 tokens"),
    (None, ["--vocab", "I M U Q <bos> <eos> <pad>", "--program", "miu"], "token 'Q' is not a token of task"),
    (None, ["--vocab", "a b c d <bos> <eos> <pad>", "--bos", "<nope>"], "not in the vocabulary"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(grid_models, tmp_path, capsys, damage, argv, message):
    _, _, folder = grid_models[0]
    src = bad_folder(tmp_path, folder, damage) if damage else folder
    argv = argv or ["--vocab", " ".join(TOKENS)]
    roles = [] if "--bos" in argv else ["--bos", "<bos>"]
    out = tmp_path / "out" / "artifact"
    code = hf_main([str(src), "--out", str(out), *argv, *roles, "--end", "<eos>", "--pad", "<pad>"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_old_config_reads_back_as_it_was_and_layer_norm_paths_agree():
    """A model.json without the GPT-2 keys is the old architecture, and to_dict writes it unchanged."""
    old = {"n_layers": 1, "n_heads": 1, "d_model": 8, "d_head": 4, "d_mlp": 8, "n_ctx": 5, "d_vocab": 4,
           "d_vocab_out": 2, "vocab": ["a", "b", "BOS", "PAD"], "output_vocab": ["0", "1"], "bos_token": "BOS",
           "pad_token": "PAD", "causal": True, "act_fn": "relu"}
    cfg = ModelConfig.from_dict(old)
    assert cfg.to_dict() == old and not cfg.layer_norm and not cfg.tied_unembed
    assert "blocks.0.ln1.w" not in cfg.param_shapes()
    gpt2 = dataclasses.replace(cfg, normalization_type="LN", act_fn="gelu_new")
    assert ModelConfig.from_dict(gpt2.to_dict()) == gpt2
    model = Transformer(gpt2)
    model.init_weights(torch.Generator().manual_seed(0))
    with torch.no_grad():
        for name in ("blocks.0.ln1.w", "blocks.0.ln1.b", "ln_final.w"):
            model.param(name).add_(torch.randn(8) * 0.3)
        ids = torch.tensor([[2, 0, 1, 3, 3], [2, 1, 1, 0, 1]])
        fused, hooked = model(ids), model.run_with_cache(ids)[0]
    assert (fused - hooked).abs().max() <= 1e-6


def test_arch_gpt2_trains_the_compiled_shape_with_layer_norm(tmp_path):
    """``--arch gpt2``: the compiled shape with layer norm and gelu_new, at its own learning rate; resume checks it."""
    from learned.__main__ import build_parser, config_from_args
    from learned.train import learned_model_config, trained_model_config

    compiled = ModelConfig(n_layers=2, n_heads=1, d_model=8, d_head=4, d_mlp=8, n_ctx=5, d_vocab=5, d_vocab_out=2,
                           vocab=("M", "I", "U", "BOS", "PAD"), output_vocab=("False", "True"), bos_token="BOS",
                           pad_token="PAD", causal=True)
    cfg = config_from_args(build_parser().parse_args(["--arch", "gpt2"]), compiled, 0)
    model_cfg = trained_model_config(cfg, compiled)
    assert model_cfg.layer_norm and model_cfg.act_fn == "gelu_new" and cfg.lr == 3e-3
    assert dataclasses.replace(model_cfg, normalization_type=None, act_fn="relu") == compiled
    assert trained_model_config(config_from_args(build_parser().parse_args([]), compiled, 0), compiled) == compiled
    with pytest.raises(Exception, match="unknown --arch"):
        learned_model_config(compiled, None, "llama")


def test_export_round_trips_and_transformers_loads_it(grid_models, tmp_path):
    """Import, export, import: identical weights; transformers loads the export and agrees."""
    for i in (1, 2):  # untied relu; tied with scale_attn_by_inverse_layer_idx
        _, _, folder = grid_models[i]
        first = import_checkpoint(folder, tmp_path / f"a{i}", vocab=TOKENS, **ROLES)
        assert hf_main(["--export", str(tmp_path / f"a{i}"), str(tmp_path / f"hf{i}")]) == 0
        again = import_checkpoint(tmp_path / f"hf{i}", tmp_path / f"b{i}", **ROLES)  # vocabulary from vocab.json
        assert again.cfg == first.cfg
        assert all(torch.equal(a, b) for a, b in zip(first.tl_state_dict().values(), again.tl_state_dict().values()))
        hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / f"hf{i}").eval()
        ids = random_batch(16, 12, seed=3)
        with torch.no_grad():
            diff = (hf(input_ids=ids, attention_mask=(ids != PAD).long()).logits - first(ids)).abs()[ids != PAD]
        assert diff.max() <= 1e-5


def test_export_refuses_what_gpt2_cannot_express(tmp_path, capsys):
    from learned.artifact import save_artifact

    cfg = ModelConfig(n_layers=1, n_heads=1, d_model=8, d_head=8, d_mlp=8, n_ctx=5, d_vocab=4, d_vocab_out=4,
                      vocab=("a", "b", "BOS", "PAD"), output_vocab=("a", "b", "BOS", "PAD"), bos_token="BOS",
                      pad_token="PAD", causal=True)
    save_artifact(tmp_path / "tracr", Transformer(cfg), {})
    assert hf_main(["--export", str(tmp_path / "tracr"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no layer norm" in err
    assert not (tmp_path / "out").exists()


def test_importer_needs_no_transformers():
    import subprocess
    import sys

    code = ("import sys, learned.hf, learned.model, compare.outputs; "
            "assert not [m for m in sys.modules if m.split('.')[0] in ('transformers', 'jax')], 'imported'")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
