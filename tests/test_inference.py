"""The one batched inference loop: batches give what one pass over all inputs gives, the model's mode is kept."""

import itertools

import torch

from compare.activations import run_cached
from learned.artifact import encode
from learned.evaluate import predict_ids
from learned.inference import map_batches, predict_batched
from learned.lm import log_probs
from learned.model import ModelConfig, Transformer


def model_and_ids(dtype=torch.float32) -> tuple[Transformer, torch.Tensor]:
    cfg = ModelConfig(n_layers=2, n_heads=2, d_model=16, d_head=4, d_mlp=16, n_ctx=5, d_vocab=5, d_vocab_out=3,
                      vocab=("BOS", "I", "M", "PAD", "U"), output_vocab=("a", "b", "c"), bos_token="BOS",
                      pad_token="PAD", causal=True)
    model = Transformer(cfg)
    model.init_weights(torch.Generator().manual_seed(0))
    inputs = [x for n in (1, 2, 4) for x in itertools.product("MIU", repeat=n)]  # mixed lengths: padded batches
    return model.to(dtype), encode(cfg, inputs)  # ids: [N, T]


def test_batches_agree_with_one_pass():
    model, ids = model_and_ids(torch.float64)  # float64: batching may not change a single bit that matters
    with torch.no_grad():
        logits, cache = model.run_with_cache(ids)  # [N, T, O]
    for batch in (7, 1000):
        assert torch.equal(predict_ids(model, ids, batch=batch), logits.float().argmax(-1))
        assert torch.allclose(log_probs(model, ids, batch=batch), torch.log_softmax(logits.float(), -1), atol=1e-6)
        got_logits, got = run_cached(model, ids, ["blocks.1.hook_resid_pre"], batch=batch)
        assert torch.allclose(got_logits, logits, atol=1e-12)
        assert torch.allclose(got["blocks.1.hook_resid_pre"], cache["blocks.1.hook_resid_pre"], atol=1e-12)


def test_mode_restored_and_empty_input():
    model, ids = model_and_ids()
    model.train()
    seen = map_batches(model, ids, lambda chunk: (len(chunk), model.training, torch.is_grad_enabled()), batch=40)
    assert [n for n, _, _ in seen] == [40, 40, len(ids) - 80] and not any(t or g for _, t, g in seen)
    assert model.training
    empty = ids[:0]
    assert predict_ids(model, empty).shape == (0, ids.shape[1]) and predict_ids(model, empty).dtype == torch.long
    assert log_probs(model, empty).shape == (0, ids.shape[1], model.cfg.d_vocab_out)
    assert predict_batched(model, empty, lambda logits, chunk: logits[..., 0] > 0).dtype == torch.bool
