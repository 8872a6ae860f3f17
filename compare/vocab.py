"""A model trained elsewhere, aligned to the program's input vocabulary by token name.

An imported model (``python -m learned.hf``) keeps its own token names and id
order, its own width, depth and context. The comparison encodes every input
once, in the compiled model's ids, so each compared model must read the same
ids. ``align_inputs`` gives an equivalent model whose input embedding rows are
reordered by name: the program's BOS and pad are the model's declared
``bos_token`` and ``pad_token``, and every other token is matched by its
string. Its outputs are untouched (a readout reads them by name:
``compare.outputs``). A tied unembedding is untied first, so the logits do not
move. Width, depth, heads and a longer context stay the model's own;
``check_inputs`` only asks what the comparison needs: the program's tokens, a
context that holds the program's longest input, and the same attention mask.
"""

from __future__ import annotations

import dataclasses

import torch

from learned.model import ModelConfig, Transformer
from rasp_programs.errors import ToolkitError


def token_map(program: ModelConfig, model: ModelConfig) -> dict[str, str]:
    """Program input token -> the model's token of that name (BOS and pad by their declared roles)."""
    roles = {program.bos_token: model.bos_token, program.pad_token: model.pad_token}
    return {t: roles.get(t, t) for t in program.vocab}


def check_inputs(program: ModelConfig, model: ModelConfig, max_len: int, what: str) -> None:
    """One-line ``ToolkitError`` unless ``model`` can read every comparison input as ``program`` does."""
    missing = [t for t, m in token_map(program, model).items() if m not in model.vocab]
    if missing:
        raise ToolkitError(f"{what}: its vocabulary {list(model.vocab)} has no token {missing[0]!r} of the program's "
                           f"inputs {list(program.vocab)} (tokens are matched by name; BOS and pad by role)")
    if model.n_ctx < max_len + 1:
        raise ToolkitError(f"{what}: its context holds {model.n_ctx - 1} tokens after BOS, the program's inputs "
                           f"go up to {max_len}")
    if model.causal != program.causal:
        raise ToolkitError(f"{what}: causal is {model.causal}, the compiled model's is {program.causal} "
                           f"(a model must see the same prefix at each position)")


def align_inputs(model: Transformer, program: ModelConfig) -> Transformer:
    """``model`` itself when its input ids are the program's already; otherwise an equivalent copy whose
    ``embed.W_E`` rows follow ``program.vocab`` (same logits on the same token strings)."""
    names = token_map(program, model.cfg)
    if tuple(names[t] for t in program.vocab) == model.cfg.vocab and model.cfg.bos_token == program.bos_token \
            and model.cfg.pad_token == program.pad_token:
        return model
    rows = torch.tensor([model.cfg.vocab.index(names[t]) for t in program.vocab])
    state = model.tl_state_dict()
    state["unembed.W_U"] = model.param("unembed.W_U").detach().clone()  # [D, O]: explicit, also when tied
    state["embed.W_E"] = state["embed.W_E"][rows].clone()                # [V_program, D]
    cfg = dataclasses.replace(model.cfg, vocab=program.vocab, d_vocab=len(program.vocab),
                              bos_token=program.bos_token, pad_token=program.pad_token, tied_unembed=False)
    copy = Transformer(cfg).to(state["embed.W_E"].dtype)
    copy.load_tl_state_dict(state)
    return copy.train(model.training)
