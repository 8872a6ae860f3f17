"""Checks that the torch port is Tracr's model, and that both are correct.

* ``against_tracr``: the same inputs through Tracr's own Haiku forward pass
  (float64) and through the torch port (float64); every residual stream must
  agree to ``atol`` and the decoded outputs must be identical.
* ``exhaustive``: the torch port on every input of every length up to the
  maximum (a large seeded sample where that is too many), checked at every
  position against the program's independent reference, then the task's own
  checks (``Task.checks``; for MIU the rewrite system where its bounded search
  reaches).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import jax
import numpy as np
import torch

from compiled.compile import CompiledProgram
from learned.artifact import encode
from learned.evaluate import predict_ids
from learned.model import Transformer
from rasp_programs.spec import ProgramSpec, Tokens


def tracr_forward(cp: CompiledProgram, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Tracr's batched forward pass in float64. ``ids``: [B, T] -> residuals [L, B, T, D] etc."""
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), cp.model.params)
        out = cp.model.forward(params, jax.numpy.asarray(ids))
        t = out.transformer_output
        return {
            "embeddings": np.asarray(t.input_embeddings),
            "residuals": np.stack([np.asarray(r) for r in t.residuals]),  # [2L, B, T, D]
            "attn_logits": np.stack([np.asarray(a) for a in t.attn_logits]),  # [L, B, H, T, T]
            "argmax": np.asarray(out.unembedded_output),  # [B, T]
        }


def against_tracr(cp: CompiledProgram, model: Transformer, inputs: Sequence[Tokens],
                  atol: float = 1e-5) -> dict[str, Any]:
    """Runs both forward passes on ``inputs`` and returns the largest differences.

    Tracr's assembled model does not pass its pad token to the attention mask,
    so a padded position would be attended to on its side. (The torch port
    masks pad keys, which is what makes padded batches safe there.) A causal
    model therefore runs as one batch padded at the end, compared at each
    input's own positions only: no later position reaches an earlier one. A
    non-causal one runs in groups of one length, never padded. Tracr reports
    attention logits before masking, so the causal mask is applied here
    before the softmax.
    """
    model = model.to(torch.float64)
    resid_err = patt_err = 0.0
    same = True
    by_len: dict[int, list[Tokens]] = {}
    for x in inputs:
        by_len.setdefault(len(x), []).append(x)
    # JAX compiles each primitive once per shape, so every group costs seconds: a causal model needs one.
    groups = [list(inputs)] if model.cfg.causal else [g for _, g in sorted(by_len.items())]
    for group in groups:
        ids = encode(model.cfg, group)  # [B, T], padded at the end
        t = ids.shape[1]
        own = torch.arange(t)[None, :] <= torch.tensor([len(x) for x in group])[:, None]  # [B, T]: BOS + tokens
        ref = tracr_forward(cp, ids.numpy())
        with torch.no_grad():
            logits, cache = model.run_with_cache(ids)
        ours = [cache["blocks.0.hook_resid_pre"]]
        for l in range(model.cfg.n_layers):
            ours += [cache[f"blocks.{l}.hook_resid_mid"], cache[f"blocks.{l}.hook_resid_post"]]
        theirs = [ref["embeddings"], *ref["residuals"]]
        resid_err = max(resid_err, *(float(np.abs(a - b.numpy())[own.numpy()].max()) for a, b in zip(theirs, ours)))
        for l in range(model.cfg.n_layers):
            logit = torch.from_numpy(ref["attn_logits"][l])  # [B, H, T, T]
            if model.cfg.causal:
                logit = logit.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), -torch.inf)
            diff = (logit.softmax(-1) - cache[f"blocks.{l}.attn.hook_pattern"]).abs().amax(dim=(1, 3))  # [B, T]
            patt_err = max(patt_err, float(diff[own].max()))
        mine = own.clone()
        mine[:, 0] = False  # BOS carries no output
        same &= bool((ref["argmax"] == logits.argmax(-1).numpy())[mine.numpy()].all())
    return {"inputs": len(inputs), "max_resid_abs_diff": resid_err, "max_pattern_abs_diff": patt_err,
            "decoded_identical": same, "passed": bool(same and resid_err <= atol)}


def predict(model: Transformer, inputs: Sequence[Tokens], batch: int = 16384) -> list[list[str]]:
    """Decoded outputs of the torch model at every position (``learned.evaluate.predict_ids``, batched)."""
    ids = predict_ids(model, encode(model.cfg, inputs), batch)  # [N, T]
    vocab = model.cfg.output_vocab
    return [[vocab[i] for i in row[1:len(x) + 1]] for row, x in zip(ids.tolist(), inputs)]


def exhaustive(spec: ProgramSpec, model: Transformer, max_len: int, limit: int = 300_000) -> dict[str, Any]:
    """Checks every position of every input (or a seeded sample) against the reference."""
    t0 = time.perf_counter()
    inputs, complete = spec.evaluation_inputs(max_len, limit)
    preds = predict(model, inputs)
    wrong = [x for x, p in zip(inputs, preds) if p != [str(v) for v in spec.reference(x)]]
    result: dict[str, Any] = {"dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
                              "inputs": len(inputs), "exhaustive": complete, "passed_inputs": len(inputs) - len(wrong),
                              "failures": ["".join(x) for x in wrong[:10]]}
    outputs = dict(zip(inputs, preds))
    for check in spec.task.checks:
        result[check.name] = check.run(outputs, max_len)
    result["seconds"] = time.perf_counter() - t0
    result["passed"] = not wrong and all(result[check.name]["passed"] for check in spec.task.checks)
    return result
