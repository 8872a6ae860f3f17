"""Theorem-only training data for the language-model objective (MU-GPT).

Strings come from the program's ``Language`` (``spec.language``; for MIU the
theorems), never from labelled negatives. Each training row is
``BOS + string`` as input and ``string + END`` as target: at position ``t``
the model predicts token ``t + 1`` from the prefix of ``t`` tokens, and at the
last position it predicts ``END``.

Sources (``LMConfig.sampler``):
  * ``length``: the length-controlled sampler (``rasp_programs.language.
    LengthControlled``). Its distribution over the finite set of members up to
    ``max_len`` is known exactly, so the table holds every member with its
    exact probability and a batch is i.i.d. draws from it: the same as
    running the sampler afresh for every row (streaming).
  * ``derivations``: members reached by random derivations, deduplicated,
    each drawn equally often.

Held out: a seeded share of the members (``held_out_share`` of those up to
``max_len``, seed ``held_out_seed``, the same for every model seed) is never
emitted. Not emitting them is not enough for a language model: the softmax
would still be taught that they have probability 0. A held-out member is a
prefix of longer training strings, and there the data says "no END here";
and a token that leads only into held-out members (the last letter of most
held-out strings of length ``max_len``) never follows its context in the
data, so its probability is trained down. With ``mask_held_out`` (the
default) both are *left out of the softmax* at that context (``exclude``):
the loss is the cross-entropy among the outputs the training data can speak
about, and says nothing about the held-out strings either way. Without it,
held-out strings are only rejection-sampled away (implicit negatives).

Regimes: streaming (the whole distribution) and finite: a dataset of
``fixed_size`` strings drawn once from it (with repeats), each distinct
string then weighted by its count, as a language model sees a fixed corpus;
used with weight decay for the grokking regime. (Equal weights would make
``P(END | MI)`` about 1/#strings starting with ``MI``, far below ``q``.)

Table targets are ``[N, T, 1 + O]``: the target id, then one flag per
output that is left out of the softmax there (``split_targets``).

Shapes: N rows, T = n_ctx positions (BOS first), O = output vocabulary.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import numpy as np
import torch

from learned.artifact import encode
from learned.data import IGNORE, Table
from learned.model import ModelConfig
from rasp_programs import language as lang
from rasp_programs.errors import ToolkitError
from rasp_programs.language import Language, Tokens

SAMPLERS = ("length", "derivations")


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """Settings of the language-model objective; saved under ``training.lm``.

    Attributes:
        sampler: ``length`` (length-controlled) or ``derivations``.
        q: end probability at a member prefix (length-controlled sampler).
        held_out_share, held_out_seed: the held-out members (share of those up to max_len).
        mask_held_out: leave the held-out members out of the softmax (module docstring).
        derive_walks, derive_steps, derive_bound: random derivations (walks, rewrites per
            walk, longest intermediate string).
        stop_when_mu_below: the stop rule's epsilon on ``P(END | impossible string)``.
        stop_requires_fit: the stop rule also needs the readout chosen on the training
            data to classify every training event right (see ``learned.mugpt``).
    """

    sampler: str = "length"
    q: float = 0.25
    held_out_share: float = 0.2
    held_out_seed: int = 0
    mask_held_out: bool = True
    derive_walks: int = 20_000
    derive_steps: int = 100
    derive_bound: int = 20
    stop_when_mu_below: float = 1e-3
    stop_requires_fit: bool = True

    def check(self, max_len: int) -> "LMConfig":
        """Raises a one-line ``ToolkitError`` for a setting out of range."""
        if self.sampler not in SAMPLERS:
            raise ToolkitError(f"unknown sampler {self.sampler!r}; use one of {', '.join(SAMPLERS)}")
        lang.check_q(self.q)
        lang.check_share(self.held_out_share)
        lang.check_bound(self.derive_bound, max_len)  # even if unused: a bad value is bad input
        if not 0.0 <= self.stop_when_mu_below < 1.0:
            raise ToolkitError(f"--stop-when-mu-below must be in [0, 1), got {self.stop_when_mu_below!r}")
        return self


def lm_model_config(cfg: ModelConfig, language: Language) -> ModelConfig:
    """The same shape with output vocabulary = the input tokens (in id order) + END."""
    tokens = tuple(t for t in cfg.vocab if t not in (cfg.bos_token, cfg.pad_token))
    if language.end_token in cfg.vocab:
        raise ToolkitError(f"the end token {language.end_token!r} is also an input token")
    out = tokens + (language.end_token,)
    return dataclasses.replace(cfg, output_vocab=out, d_vocab_out=len(out))


def lm_rows(cfg: ModelConfig, strings: list[Tokens], end_token: str,
            held_out: Iterable[Tokens] = ()) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs, next-token targets and what is left out of the softmax.

    Args:
        cfg: the language model's config.
        strings: the training strings.
        end_token: the end output.
        held_out: strings the training signal must say nothing about.

    Returns:
        ids ``[N, n_ctx]`` (BOS + string, padded); targets ``[N, n_ctx]``: the
        output id of token ``t + 1`` at position ``t`` (``END`` after the last
        token, ``IGNORE`` after that); exclude ``[N, n_ctx, O]``: True for
        ``END`` where the prefix is held out, and for a token whose
        continuation is a prefix of held-out strings only.
    """
    out_index = {v: i for i, v in enumerate(cfg.output_vocab)}
    ids = encode(cfg, strings)  # [N, 1 + longest]
    ids = torch.nn.functional.pad(ids, (0, cfg.n_ctx - ids.shape[1]), value=cfg.vocab.index(cfg.pad_token))
    held = set(map(tuple, held_out))
    seen = {s[:k] for s in strings for k in range(len(s) + 1)}
    held_only = {h[:k] for h in held for k in range(len(h) + 1)} - seen
    tokens = [v for v in cfg.output_vocab if v != end_token]
    targets = torch.full(ids.shape, IGNORE, dtype=torch.long)
    exclude = torch.zeros(*ids.shape, len(cfg.output_vocab), dtype=torch.bool)
    for r, s in enumerate(strings):
        for t, target in enumerate([*s, end_token]):
            context = s[:t]
            targets[r, t] = out_index[target]
            exclude[r, t, out_index[end_token]] = context in held
            for v in tokens:
                exclude[r, t, out_index[v]] = context + (v,) in held_only
    return ids, targets, exclude


def split_targets(targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, T, 1 + O]`` table targets -> target ids ``[B, T]`` and the left-out outputs ``[B, T, O]``."""
    return targets[..., 0], targets[..., 1:].bool()


@dataclasses.dataclass
class LMData:
    """What the language-model objective trains on and is checked against.

    Attributes:
        table: rows and sampling weights for ``learned.data.Sampler``.
        train: the distinct training strings (the table's rows, in order).
        held_out: members never emitted (and masked as contexts if ``mask_held_out``).
        masked: the strings left out of the softmax (``held_out``, or empty without ``mask_held_out``).
        description: sampler, sizes and the distribution of lengths and token counts.
    """

    table: Table
    train: list[Tokens]
    held_out: frozenset[Tokens]
    masked: frozenset[Tokens]
    description: dict[str, Any]


def build_lm_data(language: Language, cfg: ModelConfig, max_len: int, lm: LMConfig, seed: int,
                  fixed_size: int | None = None) -> LMData:
    """Builds the theorem-only table (see the module docstring).

    Args:
        language: the program's language.
        cfg: the language model's config (``lm_model_config``).
        max_len: longest string.
        lm: the objective's settings (checked here).
        seed: data seed (derivation walks, the finite set's draw).
        fixed_size: the finite regime's number of draws (the dataset's size).

    Raises:
        ToolkitError: a setting out of range, or an empty finite dataset.
    """
    lm.check(max_len)
    members = language.members(max_len)
    held = lang.held_out(members, lm.held_out_share, lm.held_out_seed)
    if lm.sampler == "length":
        dist = lang.LengthControlled(language, max_len, lm.q).distribution(exclude=held)
        strings, probs = list(dist), np.array(list(dist.values()))
    else:
        derived = lang.random_derivations(language, np.random.default_rng(seed), max_len, lm.derive_walks,
                                          lm.derive_steps, lm.derive_bound)
        strings = [s for s in derived if s not in held]
        if not strings:
            raise ToolkitError("the derivations reached no member outside the held-out set")
        probs = np.full(len(strings), 1.0 / len(strings))
    weights = torch.tensor(probs, dtype=torch.float64)
    if fixed_size is not None:  # a dataset of ``fixed_size`` draws: distinct strings weighted by their counts
        if fixed_size < 1:
            raise ToolkitError(f"the fixed training set must have at least 1 string, got {fixed_size}")
        draws = torch.multinomial(weights, fixed_size, replacement=True, generator=torch.Generator().manual_seed(seed))
        counts = torch.bincount(draws, minlength=len(strings)).to(torch.float64)
        strings = [s for s, c in zip(strings, counts.tolist()) if c > 0]
        weights = counts[counts > 0]
    masked = held if lm.mask_held_out else frozenset()
    ids, targets, exclude = lm_rows(cfg, strings, language.end_token, masked)
    table = Table(ids, torch.cat([targets[..., None], exclude.long()], -1), weights / weights.sum(),
                  torch.zeros(len(strings), dtype=torch.long), (lm.sampler,))
    desc = {"sampler": lm.sampler, "regime": "finite" if fixed_size else "streaming", "draws": fixed_size,
            "members": len(members), "held_out": len(held), "train_strings": len(strings),
            "held_out_left_out_of_softmax": bool(masked),
            "share_of_draws": lang.describe(strings, language.alphabet, weights.tolist())}
    if lm.sampler == "derivations":
        desc["derived"] = lang.describe(derived, language.alphabet)
    return LMData(table, strings, held, masked, desc)
