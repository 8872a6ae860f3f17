"""How the program's output is read from a model's logits (``OutputReadout``).

A classifier trained on the program's outputs (and every compiled model)
emits them directly: the output is the argmax over its ``output_vocab``. A
language model such as MU-GPT emits next tokens; its artifact declares in
``model.json`` how a verdict is read from them (``learned.lm.Readout``:
every token so far probable enough, and ``P(END | prefix)`` above a
threshold). A next-token-legality model (``learned.lm.LegalNext``, e.g. an
imported GPT-2) says a prefix is a member when each of its tokens and then
``END`` had ``sigmoid(logit) > 0.5``.
An imported model declared ``argmax`` takes the argmax over the output
tokens that name the program's values. ``compare/`` scores task accuracy,
interventions and ablations through this interface, so the same methods
apply to all of them.

Every readout maps logits ``[B, T, O]`` (and the input ids ``[B, T]``) to the
program's output ids ``[B, T]`` in the *compiled* output vocabulary, gives a
differentiable loss towards target outputs (for DAS), and the margin of the
correct output (for ablations).

Shapes: B inputs, T positions, O the model's output vocabulary.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from compare.layer_norm import unembed_as_read
from learned.lm import LegalNext, Readout, every_token_so_far, token_log_probs
from learned.model import ModelConfig
from rasp_programs.errors import ToolkitError

IGNORE = -100


class OutputReadout:
    """Base: the argmax of a model whose output vocabulary is the program's."""

    kind = "argmax"
    members_only = False  # trained on members of the task's language only (then compared where it is well formed)

    def __init__(self, cfg: ModelConfig, program_vocab: tuple[str, ...]):
        if tuple(cfg.output_vocab) != tuple(program_vocab):
            raise ToolkitError(f"the model's output vocabulary {list(cfg.output_vocab)} is not the program's "
                               f"{list(program_vocab)}, and its model.json declares no readout")
        self.cfg = cfg

    def predict(self, logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` program output ids."""
        return logits.argmax(-1)

    def loss(self, logits: torch.Tensor, ids: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """A scale-free differentiable loss towards ``target`` ``[B, T]`` (``IGNORE`` where unscored).

        Cross-entropy of the logits divided by their own (detached) spread per position: with a compiled
        model's logits near 10^3, plain cross-entropy is about 0 long before a DAS direction is right.
        """
        scale = logits.detach().float().std(-1, keepdim=True).clamp_min(1e-6)
        return F.cross_entropy((logits.float() / scale).flatten(0, 1), target.flatten(), ignore_index=IGNORE)

    def directions(self, model) -> "torch.Tensor":
        """``[D, c]`` residual directions the readout compares at the last hook: the unembedding's columns
        minus their mean (for two outputs, the logit-difference direction). A DAS start for the output."""
        w = unembed_as_read(model)  # [D, O]
        return w - w.mean(1, keepdim=True)

    def margin(self, logits: torch.Tensor, ids: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` the correct output's logit minus the largest other one."""
        logits = logits.double()
        correct = logits.gather(2, target.clamp(min=0)[..., None]).squeeze(2)
        other = logits.scatter(2, target.clamp(min=0)[..., None], -torch.inf).max(2).values
        return correct - other

    def describe(self) -> str:
        return "argmax of the model's output (the program's output vocabulary)"


class LMReadout(OutputReadout):
    """MU-GPT's verdict from next-token probabilities; the program's output must be a boolean."""

    kind = "lm"
    members_only = True

    def __init__(self, cfg: ModelConfig, program_vocab: tuple[str, ...], readout: Readout):
        if sorted(program_vocab) != ["False", "True"]:
            raise ToolkitError(f"a language-model readout gives a verdict; the program's outputs are "
                               f"{list(program_vocab)}")
        self.cfg, self.readout = cfg, readout
        self.true, self.false = program_vocab.index("True"), program_vocab.index("False")
        self.end = cfg.output_vocab.index(readout.end_token)

    def _parts(self, logits: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens so far all probable enough ``[B, T]``, log P(END) minus log tau_end ``[B, T]``)."""
        logp = torch.log_softmax(logits.float(), -1)
        probable = token_log_probs(self.cfg, logp.detach(), ids) >= math.log(self.readout.tau_token)  # [B, T]
        return every_token_so_far(self.cfg, probable, ids), logp[..., self.end] - math.log(self.readout.tau_end)

    def predict(self, logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        ok, end = self._parts(logits, ids)
        return torch.where(ok & (end >= 0), self.true, self.false)

    def loss(self, logits: torch.Tensor, ids: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scale-free: ``log P(END) - log tau_end`` divided by the (detached) spread of the log-probabilities."""
        _, end = self._parts(logits, ids)
        scale = torch.log_softmax(logits.detach().float(), -1).std(-1).clamp_min(1e-6)
        scored = target != IGNORE
        sign = torch.where(target == self.true, 1.0, -1.0)
        return F.softplus(-sign * end / scale)[scored].mean()

    def directions(self, model) -> "torch.Tensor":
        """``[D, 1]``: the END column of the unembedding minus the mean column (log P(END) grows along it)."""
        w = unembed_as_read(model)  # [D, O]
        return (w[:, self.end] - w.mean(1))[:, None]

    def margin(self, logits: torch.Tensor, ids: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ok, end = self._parts(logits, ids)
        sign = torch.where(target == self.true, 1.0, -1.0).double()
        # a prefix whose tokens were not all probable is False whatever P(END) says
        return torch.where(ok, sign * end.double(), -sign * torch.ones_like(sign))

    def describe(self) -> str:
        r = self.readout
        return (f"language-model verdict: every token so far had probability >= {r.tau_token:.3g} and "
                f"P({r.end_token} | prefix) >= {r.tau_end:.3g}")


class LegalNextReadout(LMReadout):
    """Next-token legality (BCE-trained): the prefix is a member when each of its tokens was legal and END is
    legal after it (``learned.lm.LegalNext``)."""

    kind = "legal-next"

    def __init__(self, cfg: ModelConfig, program_vocab: tuple[str, ...], readout: LegalNext):
        if sorted(program_vocab) != ["False", "True"]:
            raise ToolkitError(f"a legal-next readout gives a verdict; the program's outputs are {list(program_vocab)}")
        self.cfg, self.readout = cfg, readout
        self.true, self.false = program_vocab.index("True"), program_vocab.index("False")
        self.end = cfg.output_vocab.index(readout.end_token)

    def _parts(self, logits: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(every token so far legal ``[B, T]``, END's logit minus the threshold's logit ``[B, T]``)."""
        ok = self.readout.tokens_legal(self.cfg, logits.detach().float(), ids)  # False at BOS and pads
        return ok, logits[..., self.end].float() - self.readout.logit_threshold()

    def predict(self, logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        ok, end = self._parts(logits, ids)
        return torch.where(ok & (end > 0), self.true, self.false)  # strictly above: sigmoid > threshold

    def describe(self) -> str:
        return (f"next-token legality: the prefix is a member when each of its tokens, and then "
                f"{self.readout.end_token}, had sigmoid(logit) > {self.readout.threshold:g}")


class TokenArgmaxReadout(OutputReadout):
    """An imported classifier: the argmax over the output tokens named after the program's values."""

    def __init__(self, cfg: ModelConfig, program_vocab: tuple[str, ...]):
        missing = [v for v in program_vocab if v not in cfg.output_vocab]
        if missing:
            raise ToolkitError(f"an argmax readout needs an output token per program value; {missing} are not in "
                               f"the model's output vocabulary {list(cfg.output_vocab)}")
        self.cfg = cfg
        self.ids = torch.tensor([cfg.output_vocab.index(v) for v in program_vocab])

    def predict(self, logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        return super().predict(logits[..., self.ids.to(logits.device)], ids)

    def loss(self, logits: torch.Tensor, ids: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().loss(logits[..., self.ids.to(logits.device)], ids, target)

    def margin(self, logits: torch.Tensor, ids: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().margin(logits[..., self.ids.to(logits.device)], ids, target)

    def directions(self, model) -> torch.Tensor:
        w = unembed_as_read(model)[:, self.ids]  # [D, program values]
        return w - w.mean(1, keepdim=True)

    def describe(self) -> str:
        return "argmax over the model's output tokens that name the program's values"


def readout_for(cfg: ModelConfig, meta: dict, program_vocab: tuple[str, ...], where: str) -> OutputReadout:
    """The readout an artifact declares (``readout`` in ``model.json``), else the plain argmax.

    Raises:
        ToolkitError: a model whose outputs are not the program's and which declares no readout.
    """
    block = meta.get("readout")
    kind = block.get("objective") if isinstance(block, dict) else None
    if kind == "legal-next":
        return LegalNextReadout(cfg, program_vocab, LegalNext.from_meta(meta, where))
    if kind == "argmax":
        return TokenArgmaxReadout(cfg, program_vocab)
    if block is not None or meta.get("objective") == "lm":
        return LMReadout(cfg, program_vocab, Readout.from_meta(meta, where))
    return OutputReadout(cfg, program_vocab)
