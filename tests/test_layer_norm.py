"""Comparing models with layer norm: the disguise control and what the report says.

The disguise of a layer-norm model (``compare.layer_norm``) maps the residual
stream by ``a = Q [[c, 0], [u, O]] Q^T`` with ``Q = [1/sqrt(D), U]``: ``O`` a
Haar rotation of the centred subspace, and for the "invertible" control also
``c`` in [0.3, 3] on the all-ones direction and a random ``u`` (so ``a`` is not
orthogonal). The layer norms' weights and biases are folded into the reads
that follow. The general invertible map of ``compare.controls.remap`` does not
commute with layer norm, and a test shows that it changes the function.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from compare.controls import disguise, random_map, remap
from compare.layer_norm import METHODS_NOTE, commuting_map, unembed_as_read
from learned.artifact import encode, load_artifact
from learned.model import ModelConfig, Transformer

GPT2 = ModelConfig(n_layers=3, n_heads=2, d_model=16, d_head=8, d_mlp=24, n_ctx=9, d_vocab=6, d_vocab_out=6,
                   vocab=("a", "b", "c", "d", "BOS", "PAD"), output_vocab=("a", "b", "c", "d", "BOS", "PAD"),
                   bos_token="BOS", pad_token="PAD", causal=True, act_fn="gelu_new", normalization_type="LN",
                   tied_unembed=True, scale_attn_by_inverse_layer_idx=True)


def random_gpt2(seed: int = 0) -> Transformer:
    """A random GPT-2-block model (float64) with every bias and layer-norm parameter away from its init."""
    model = Transformer(GPT2).double()
    g = torch.Generator().manual_seed(seed)
    model.init_weights(g)
    with torch.no_grad():
        for name in GPT2.param_shapes():
            if ".b_" in name or name.endswith((".b", ".w")):
                model.param(name).add_(0.3 * torch.randn(model.param(name).shape, generator=g, dtype=torch.float64))
    return model.eval()


def inputs(cfg: ModelConfig) -> torch.Tensor:
    return encode(cfg, [tuple("abcdabcd"), tuple("dd"), tuple("cab"), tuple("a")])


def test_commuting_disguise_leaves_the_logits_unchanged():
    model = random_gpt2()
    ids = inputs(model.cfg)
    with torch.no_grad():
        want = model(ids)
        for invertible in (False, True):
            copy, perms = disguise(model, seed=4, invertible=invertible)
            diff = float((copy(ids) - want).abs().max())
            print(f"layer-norm disguise ({'invertible' if invertible else 'rotation'}): max |logit diff| {diff:.1e}")
            assert diff <= 1e-5
            assert copy.cfg.layer_norm and not copy.cfg.tied_unembed
            assert not torch.allclose(copy.param("embed.W_E"), model.param("embed.W_E"))
            assert [sorted(p) for p in perms] == [list(range(GPT2.n_heads))] * GPT2.n_layers
        # what the control would do without the commuting map: the function changes
        general = remap(model, random_map(GPT2.d_model, 4, invertible=True))
        assert (general(ids) - want).abs().max() > 1e-2


def test_the_invertible_commuting_map_is_not_orthogonal_and_keeps_the_centred_subspace():
    d = GPT2.d_model
    rotation, general = commuting_map(d, 1, invertible=False), commuting_map(d, 1, invertible=True)
    eye, ones = torch.eye(d, dtype=torch.float64), torch.ones(1, d, dtype=torch.float64)
    assert torch.allclose(rotation @ rotation.T, eye, atol=1e-12)
    assert not torch.allclose(general @ general.T, eye, atol=1e-2)
    for a in (rotation, general):
        x = torch.randn(5, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        centred = x - x.mean(1, keepdim=True)
        y = x @ a
        # layer norm's input after the map: the centred input, mapped, with the same norm
        assert torch.allclose((y - y.mean(1, keepdim=True)).norm(dim=1), centred.norm(dim=1), atol=1e-10)
        assert torch.allclose((ones @ a) / (ones @ a).norm(), ones / ones.norm(), atol=1e-12)  # 1 stays 1


def test_unembedding_as_read_through_ln_final():
    """Without layer norm the output's DAS start reads W_U as before; with it, a step along the direction
    ``unembed_as_read`` gives for an output moves that output's logit most (first order, at a centred point)."""
    plain = Transformer(dataclasses.replace(GPT2, normalization_type=None, tied_unembed=False))
    plain.init_weights(torch.Generator().manual_seed(0))
    assert torch.equal(unembed_as_read(plain), plain.param("unembed.W_U").detach().double())
    model = random_gpt2(2)
    w = unembed_as_read(model)  # [D, O]
    assert torch.allclose(w.sum(0), torch.zeros(GPT2.d_vocab_out, dtype=torch.float64), atol=1e-12)
    # finite differences of the logits of ln_final(x) W_U at a centred x of unit variance, where ln_final's
    # Jacobian is P diag(w) up to the part along x itself (sqrt(D) |x| scale)
    x = torch.randn(GPT2.d_model, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = (x - x.mean()) / (x - x.mean()).pow(2).mean().sqrt()
    ln = torch.nn.functional.layer_norm
    lw, lb, wu = model.param("ln_final.w").detach(), model.param("ln_final.b").detach(), model.param("unembed.W_U")
    logits = lambda r: ln(r, (GPT2.d_model,), lw, lb, GPT2.eps) @ wu.detach()  # noqa: E731
    jac = torch.autograd.functional.jacobian(logits, x)  # [O, D]
    along_x = x / x.norm()
    jac_perp = jac - (jac @ along_x)[:, None] * along_x  # the radial part is what normalisation removes
    w_perp = w.T - (w.T @ along_x)[:, None] * along_x
    assert torch.allclose(jac_perp, w_perp, atol=1e-4)


@pytest.fixture(scope="module")
def compiled_miu(artifacts):
    """The compiled MIU model and its model.json at the default length (10), as every other test file has it:
    at length 6 the GPT-2-block model's position-wise ``I_at`` sits on the untrained-level boundary (measured
    2026-12-03: readable as in an untrained network in the model, undecided in a disguised copy)."""
    return load_artifact(artifacts / "miu" / "compiled", dtype=torch.float64)


@pytest.fixture(scope="module")
def gpt2_miu(compiled_miu, tmp_path_factory):
    """The compiled MIU model and a GPT-2-block model trained on it with ``--arch gpt2`` (at the compiled
    model's length)."""
    from learned.__main__ import build_parser, config_from_args
    from learned.train import train

    compiled, meta = compiled_miu
    cfg = config_from_args(build_parser().parse_args(["--arch", "gpt2"]), compiled.cfg, 0)
    run = tmp_path_factory.mktemp("gpt2") / "seed0"
    t0 = time.perf_counter()
    result = train(cfg, compiled.cfg, torch.device("cpu"), run, progress=False)
    print(f"trained a GPT-2-block MIU model at length {cfg.max_len} in {time.perf_counter() - t0:.0f} s "
          f"(100% at step {result.reached_100_step})")
    model, _ = load_artifact(run)
    return compiled, meta, model


@pytest.mark.slow
def test_control_disguised_gpt2_block_model_gives_the_same_statuses(gpt2_miu):
    """A GPT-2-block MIU model and its layer-norm disguises (rotation; rotation + scale and shear of the
    all-ones direction), heads permuted: same statuses, hooks and head matches; the report notes layer norm."""
    from compare.results import Head
    from compare.pipeline import compare_models, prepare
    from compare.report import Doc, _methods
    from rasp_programs.registry import get_program
    from test_compare import SMALL

    compiled, meta, model = gpt2_miu
    prep = prepare(get_program("miu"), compiled, meta, dataclasses.replace(SMALL, ablation_modes=(),
                                                                           control_task=False))
    plain = compare_models(prep, model)
    statuses = {k: v.status for k, v in plain.variables.items()}
    hooks = {k: v.found_hook for k, v in plain.variables.items()}
    print("GPT-2-block MIU model:", {k: s.value for k, s in statuses.items()}, hooks)
    for invertible in (False, True):
        copy, perms = disguise(model, seed=3, invertible=invertible)
        with torch.no_grad():
            ids = encode(model.cfg, [tuple("MIIUI"), tuple("MUMU"), tuple("MIIIIIIIII"[:model.cfg.n_ctx - 1])])
            assert (model.double()(ids) - copy.double()(ids)).abs().max() <= 1e-5
        model, copy = model.float(), copy.float()
        res = compare_models(prep, copy)
        assert {k: v.status for k, v in res.variables.items()} == statuses
        assert {k: v.found_hook for k, v in res.variables.items()} == hooks
        want = {m.compiled: Head(m.learned.layer, perms[m.learned.layer][m.learned.head])
                for m in plain.heads.matches if m.is_match}
        assert {m.compiled: m.learned for m in res.heads.matches if m.is_match} == want
    assert plain.layer_norm and not prep.reference.layer_norm
    for res, note in ((plain, True), (prep.reference, False)):
        doc = Doc()
        _methods(doc, res)
        assert (METHODS_NOTE in doc.markdown()) is note


@pytest.mark.slow
def test_control_disguised_legal_next_gpt2_model_gives_the_same_statuses(compiled_miu, tmp_path):
    """The issue's control: a GPT-2-block model trained on MIU with the legality objective (``--objective
    legal-next --arch gpt2``), read through its legal-next readout, and its invertible layer-norm disguise
    (heads permuted): the same statuses and hooks."""
    import shutil

    from compare.loading import load_models
    from compare.pipeline import compare_models, prepare
    from learned.__main__ import main as train_main
    from learned.artifact import save_artifact
    from rasp_programs.registry import get_program
    from test_compare import SMALL

    save_artifact(tmp_path / "miu" / "compiled", *compiled_miu)
    t0 = time.perf_counter()
    assert train_main(["--program", "miu", "--objective", "legal-next", "--arch", "gpt2", "--seeds", "0",
                       "--artifacts", str(tmp_path), "--no-progress"]) == 0
    print(f"trained a legal-next GPT-2-block MIU model in {time.perf_counter() - t0:.0f} s")
    compiled, meta, (learned,) = load_models("miu", tmp_path, [], [str(tmp_path / "miu" / "legalnext" / "seed0")])
    assert learned.output.kind == "legal-next" and learned.model.cfg.layer_norm
    prep = prepare(get_program("miu"), compiled, meta, dataclasses.replace(  # where it is well formed, as run() does
        SMALL, ablation_modes=(), control_task=False, well_formed_only=learned.output.members_only))
    plain = compare_models(prep, learned.model, learned.output)
    copy, _ = disguise(learned.model, seed=3, invertible=True)
    res = compare_models(prep, copy.float(), learned.output)
    print("legal-next GPT-2-block MIU model:", {k: v.status.value for k, v in plain.variables.items()})
    assert {k: v.status for k, v in res.variables.items()} == {k: v.status for k, v in plain.variables.items()}
    assert {k: v.found_hook for k, v in res.variables.items()} == {k: v.found_hook for k, v in plain.variables.items()}
    shutil.rmtree(tmp_path / "miu")


def test_a_gpt2_block_model_is_comparable_but_not_another_shape_or_vocabulary():
    from learned.artifact import check_comparable
    from rasp_programs.errors import ToolkitError

    compiled = dataclasses.replace(GPT2, act_fn="relu", normalization_type=None, tied_unembed=False,
                                   scale_attn_by_inverse_layer_idx=False)
    check_comparable(compiled, GPT2, "model")  # layer norm, gelu_new, tied: the model's own architecture
    for change, field in ((dict(d_model=32, d_head=16), "d_model"), (dict(n_ctx=12), "n_ctx"),
                          (dict(vocab=("a", "b", "c", "e", "BOS", "PAD"), output_vocab=("a", "b", "c", "e", "BOS", "PAD")),
                           "vocab")):
        with pytest.raises(ToolkitError, match=f"{field} is"):
            check_comparable(compiled, dataclasses.replace(GPT2, **change), "model")
