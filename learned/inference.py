"""The one batched inference loop: a model over many inputs, a batch at a time, without autograd.

Evaluation (``learned.evaluate.predict_ids``), the language model's
log-probabilities (``learned.lm.log_probs``), the comparison's activation
cache (``compare.activations.run_cached``) and training dynamics
(``compare.dynamics``) all run through ``map_batches``, so batching, the
device and eval mode are decided in one place.

Shapes: N inputs, B a batch of them, T positions, O outputs.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import torch

from learned.model import Transformer

T = TypeVar("T")


def map_batches(model: Transformer, ids: torch.Tensor, step: Callable[[torch.Tensor], T], batch: int) -> list[T]:
    """``step(chunk)`` for each run of ``batch`` rows of ``ids`` ``[N, T]``, moved to the model's device, in eval
    mode and without autograd; the model's train/eval mode is restored afterwards.

    Example:
        >>> map_batches(model, ids, lambda chunk: len(chunk), 4096)  # doctest: +SKIP
        [4096, 4096, 1808]
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return [step(ids[i:i + batch].to(device)) for i in range(0, len(ids), batch)]
    finally:
        model.train(was_training)


def predict_batched(model: Transformer, ids: torch.Tensor,
                    read: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], batch: int = 8192) -> torch.Tensor:
    """``read(logits, chunk)`` on every batch (logits ``[B, T, O]`` in float32, chunk ``[B, T]``), joined on the CPU.

    With no input, ``read`` sees an empty batch, so the result has its usual dtype and trailing shape.
    """
    parts = map_batches(model, ids, lambda chunk: read(model(chunk).float(), chunk).cpu(), batch)
    if parts:
        return torch.cat(parts)
    return read(torch.zeros(0, ids.shape[1], model.cfg.d_vocab_out), ids[:0].cpu())
