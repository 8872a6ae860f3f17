"""A model trained elsewhere, compared as our own: its own token names and order, width and context.

The model here is ours (a random GPT-2-block ``Transformer``), written out as a
Hugging Face folder by ``learned.hf --export`` and read back by the importer,
so no download and no ``transformers`` are needed. Two implementations
agree: the imported model on its own ids against the copy ``compare`` aligns
to the program's ids by name.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from compare.__main__ import main as compare_main
from compare.loading import load_models
from compare.results import Head, Status
from compare.vocab import align_inputs, check_inputs
from learned.artifact import encode, load_artifact, save_artifact
from learned.hf import export_checkpoint, import_checkpoint
from learned.model import ModelConfig, Transformer
from rasp_programs.errors import ToolkitError

# Its own names and order; "<sep>" is a token MIU does not know (declared unused); BOS and pad by role.
VOCAB = ("U", "<pad>", "I", "<s>", "M", "<eos>", "<sep>")
ROLES = dict(bos="<s>", end="<eos>", pad="<pad>")


def own_model(compiled: ModelConfig, width: int = 24, n_ctx: int = 16, seed: int = 0, layers: int = 2) -> Transformer:
    """A random causal GPT-2-block model of its own width, depth and context, with every LN away from init."""
    cfg = ModelConfig(n_layers=layers, n_heads=2, d_model=width, d_head=width // 2, d_mlp=2 * width, n_ctx=n_ctx,
                      d_vocab=len(VOCAB), d_vocab_out=len(VOCAB), vocab=VOCAB, output_vocab=VOCAB, bos_token="<s>",
                      pad_token="<pad>", causal=compiled.causal, act_fn="gelu_new", normalization_type="LN",
                      tied_unembed=True)
    model = Transformer(cfg)
    g = torch.Generator().manual_seed(seed)
    model.init_weights(g)
    with torch.no_grad():
        for name in cfg.param_shapes():
            if name.endswith((".w", ".b")) or ".b_" in name and name != "unembed.b_U":
                model.param(name).add_(0.3 * torch.randn(model.param(name).shape, generator=g))
        model.param("unembed.b_U").zero_()  # GPT-2's lm_head has no bias
    return model.eval()


@pytest.fixture(scope="module")
def imported(artifacts, tmp_path_factory):
    """(the model as written, the imported artifact folder): ours -> HF folder -> ``learned.hf`` import."""
    compiled, _ = load_artifact(artifacts / "miu" / "compiled", dtype=torch.float64)
    model = own_model(compiled.cfg)
    root = tmp_path_factory.mktemp("imported")
    save_artifact(root / "ours", model, {"kind": "learned"})
    export_checkpoint(root / "ours", root / "hf")
    (root / "hf" / "vocab.json").unlink()  # like many research models: the id order is given on the command line
    (root / "hf" / "tokenizer.json").unlink()
    import_checkpoint(root / "hf", root / "imported", vocab=VOCAB, unused=["<sep>"], program="miu",
                      readout="legal-next", **ROLES)
    return model, root / "imported"


def test_aligned_copy_gives_the_same_logits_on_the_same_strings(artifacts, imported):
    original, folder = imported
    compiled, _, models = load_models("miu", artifacts, [], [str(folder)])
    aligned = models[0].model
    assert aligned.cfg.vocab == compiled.cfg.vocab and aligned.cfg.output_vocab == VOCAB
    assert (aligned.cfg.d_model, aligned.cfg.n_ctx, aligned.cfg.n_layers) == (24, 16, 2)  # its own shape
    strings = [tuple("MIUUI"), tuple("M"), tuple("MIIIIIIIII"), tuple("UM"), tuple("MUUUIIIU")]
    with torch.no_grad():
        ours = aligned(encode(compiled.cfg, strings))          # the program's ids
        theirs = original(encode(original.cfg, strings))       # the model's own ids
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max() <= 1e-6
    assert not torch.equal(encode(compiled.cfg, strings), encode(original.cfg, strings))  # the ids did differ
    assert align_inputs(aligned, compiled.cfg) is aligned  # already aligned: the same object


def test_our_own_models_are_not_copied(artifacts):
    compiled, _ = load_artifact(artifacts / "miu" / "compiled", dtype=torch.float64)
    assert align_inputs(compiled, compiled.cfg) is compiled


def test_what_a_model_must_share_with_the_program(artifacts):
    compiled, _ = load_artifact(artifacts / "miu" / "compiled")
    cfg = own_model(compiled.cfg).cfg
    check_inputs(compiled.cfg, cfg, 10, "m")  # other width, depth, context, names and order: fine
    no_u = tuple("X" if t == "U" else t for t in VOCAB)
    for change, message in ((dict(vocab=no_u, output_vocab=no_u), "has no token 'U'"),
                            (dict(n_ctx=8), "holds 7 tokens after BOS, the program's inputs go up to 10"),
                            (dict(causal=not compiled.cfg.causal), "causal is")):
        with pytest.raises(ToolkitError, match=message):
            check_inputs(compiled.cfg, dataclasses.replace(cfg, **change), 10, "m")


def test_make_compare_on_an_imported_model(artifacts, imported, tmp_path, capsys):
    """The CLI end to end on the imported model: its own hooks and width in compare.json."""
    _, folder = imported
    out = tmp_path / "report"
    assert compare_main(["--program", "miu", "--artifacts", str(artifacts), "--learned", str(folder), "--fast",
                         "--no-controls", "--out", str(out), "--workers", "1"]) == 0
    record = json.loads((out / "compare.json").read_text())
    result = record["runs"][0]["result"]
    assert result["layer_norm"] is True
    assert result["cka"]["model_hooks"] == ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_mid",
                                            "blocks.1.hook_resid_pre", "blocks.1.hook_resid_mid",
                                            "blocks.1.hook_resid_post"]  # its own depth
    assert result["task_accuracy"]["readout"].startswith("next-token legality")
    statuses = {k: Status(v["status"]) for k, v in result["variables"].items()}
    assert set(statuses) == {"I_at", "bad_M_at", "count_I", "count_bad_M", "theorem"}
    assert not any(s.causal for s in statuses.values()), statuses  # random weights: nothing is causal
    assert result["settings"]["well_formed_only"] is True  # trained on members only: compared where well formed
    assert "<eos>" in result["legal_next"]  # the end's legality, under the model's own name for it
    assert "Layer norm (this model normalises before every sublayer" in (out / "report.md").read_text()


def test_seed_vs_seed_takes_models_of_their_own_shapes(artifacts):
    """Two imported models of different widths and depths: CKA where they share a hook, heads matched
    rectangularly (the control reads each model's own heads)."""
    from types import SimpleNamespace

    from compare.activations import build_dataset
    from compare.config import CompareConfig
    from compare.controls import seed_vs_seed
    from compare.outputs import LegalNextReadout
    from learned.lm import LegalNext
    from rasp_programs.registry import get_program

    compiled, meta = load_artifact(artifacts / "miu" / "compiled", dtype=torch.float64)
    spec, cfg = get_program("miu"), CompareConfig.fast()
    data = build_dataset(spec, meta, compiled.cfg, 200, cfg.seed, cfg.folds, None)
    prep = SimpleNamespace(data=data, config=cfg, examples=[0], meta=meta, spec=spec)
    models = [align_inputs(own_model(compiled.cfg, width=24), compiled.cfg),
              align_inputs(own_model(compiled.cfg, width=32, seed=1, layers=3), compiled.cfg)]
    outputs = [LegalNextReadout(m.cfg, compiled.cfg.output_vocab, LegalNext("<eos>")) for m in models]
    pair = seed_vs_seed(prep, models, outputs).checks["pairs"][0]
    assert len(pair["cka_matched"]) == 4  # blocks.0 pre/mid and blocks.1 pre/mid; the last post differs
    assert len(pair["head_matches"]) == 4  # each of the first model's 4 heads, to one of the second's 6
    assert {m[0] for m in pair["head_matches"]} == {Head(l, h) for l in range(2) for h in range(2)}
    assert {m[1] for m in pair["head_matches"]} <= {Head(l, h) for l in range(3) for h in range(2)}
