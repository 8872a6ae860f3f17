"""The parts of a GPT-2 block that the Tracr-shaped model lacks: layer norm and GELU.

Both are plain functions of tensors, so ``learned.model.Transformer`` calls
them by name and fires the TransformerLens hooks around them.

Shapes: B batch, T positions, D d_model.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

# act_fn (TransformerLens / Hugging Face names) -> the function. "gelu_new" is GPT-2's tanh approximation.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
}
NORMALIZATIONS = (None, "LN")


def layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float, prefix: str,
               hp: Callable[[str, torch.Tensor], torch.Tensor], want: Callable[[str], bool]) -> torch.Tensor:
    """LayerNorm of ``x`` ``[B, T, D]`` with weight and bias ``[D]``; hooks ``{prefix}.hook_scale`` and
    ``{prefix}.hook_normalized`` as in TransformerLens.

    ``hook_scale`` ``[B, T, 1]`` is ``sqrt(var + eps)`` of the centred input; ``hook_normalized``
    ``[B, T, D]`` is the output (weight and bias applied). When no hook reads either, the fused
    ``F.layer_norm`` computes the same thing (a test checks the two agree).
    """
    scale_name, norm_name = prefix + ".hook_scale", prefix + ".hook_normalized"
    if not (want(scale_name) or want(norm_name)):
        return F.layer_norm(x, x.shape[-1:], w, b, eps)  # [B, T, D]
    centred = x - x.mean(-1, keepdim=True)  # [B, T, D]
    scale = hp(scale_name, (centred.pow(2).mean(-1, keepdim=True) + eps).sqrt())  # [B, T, 1]
    return hp(norm_name, centred / scale * w + b)  # [B, T, D]
