"""The recogniser read from a language model: a verdict for every prefix.

MU-GPT is trained to continue members of a language (MIU theorems), not to
classify. Its verdict on a prefix is read from its next-token probabilities
(``Readout``): accept the prefix when

  * every token so far had probability >= ``tau_token`` given the tokens
    before it (the first one given BOS); and
  * ``P(END | prefix) >= tau_end``.

``lm_verdicts(model, ids, readout)`` returns these verdicts ``[B, T]`` for
inputs in the artifact format (BOS first, padded), torch only, so
``compare/`` can score any LM artifact like a classifier: position ``t``
holds the verdict on the prefix of ``t`` tokens (position 0, BOS, and pads
are False).

The thresholds are chosen on the training data only (``choose_readout``).
Every prefix of a training string is a training context; what the data
says there is known: ``END`` follows it or not, each token follows it or
not. The events training leaves out of the softmax (``learned.lm_data``:
``END`` at a held-out string, a token leading only into held-out strings)
are left out here too: the data does not speak about them. Each threshold maximises the balanced accuracy of those events, placed
half-way (in log probability) across the widest gap among the best cuts.

Shapes: B strings, T = 1 + max_len positions, O output vocabulary.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from learned.artifact import encode
from learned.inference import predict_batched
from learned.model import ModelConfig, Transformer
from rasp_programs.errors import ToolkitError

Tokens = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Readout:
    """How a verdict is read from an LM; saved as ``readout`` in ``model.json``.

    Attributes:
        end_token: the output that ends a string.
        tau_token: least probability of every token so far.
        tau_end: least probability of ending here.
    """

    end_token: str
    tau_token: float
    tau_end: float

    def to_json(self) -> dict[str, Any]:
        return {"objective": "lm", "end_token": self.end_token, "tau_token": self.tau_token, "tau_end": self.tau_end,
                "rule": "accept a prefix when every token so far had probability >= tau_token "
                        "and P(end_token | prefix) >= tau_end"}

    @classmethod
    def from_meta(cls, meta: dict[str, Any], where: str = "model.json") -> "Readout":
        """The readout of an artifact's ``model.json``; one-line error if missing or malformed."""
        block = meta.get("readout")
        if not isinstance(block, dict) or block.get("objective") != "lm":
            raise ToolkitError(f"{where} has no language-model readout block (\"readout\" with objective \"lm\")")
        try:
            out = cls(str(block["end_token"]), float(block["tau_token"]), float(block["tau_end"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ToolkitError(f"malformed readout in {where}: {e}") from None
        vocab = meta.get("config", {}).get("output_vocab", [])
        if out.end_token not in vocab or not (0 < out.tau_token <= 1 and 0 < out.tau_end <= 1):
            raise ToolkitError(f"malformed readout in {where}: end token not in output_vocab or a threshold "
                               f"outside (0, 1]")
        return out


@dataclasses.dataclass(frozen=True)
class LegalNext:
    """The next-token-legality readout (character prediction, trained with BCE); ``readout`` in ``model.json``.

    Each output is an independent sigmoid: token ``o`` is legal after a prefix when
    ``sigmoid(logit_o) > threshold`` (0.5: the logit is positive). The output at position ``t`` is the set of
    legal next tokens after the prefix of ``t`` tokens. The prefix is in the language when each of its tokens
    was legal after the tokens before it and ``end_token`` is legal after it: the acceptance rule of character
    prediction, and the LM readout's with sigmoids for probabilities. A model trained on members only never
    sees a prefix that has left the language; it rejects one at the first token it predicted illegal, where
    ``end_token`` alone would be noise.
    """

    end_token: str
    threshold: float = 0.5

    def to_json(self) -> dict[str, Any]:
        return {"objective": "legal-next", "end_token": self.end_token, "threshold": self.threshold,
                "rule": "a token is legal next when sigmoid(its logit) > threshold; a prefix is in the "
                        "language when each of its tokens was legal and end_token is legal after it"}

    @classmethod
    def from_meta(cls, meta: dict[str, Any], where: str = "model.json") -> "LegalNext":
        """The readout of an artifact's ``model.json``; one-line error if missing or malformed."""
        block = meta.get("readout")
        if not isinstance(block, dict) or block.get("objective") != "legal-next":
            raise ToolkitError(f"{where} has no legal-next readout block (\"readout\" with objective \"legal-next\")")
        try:
            out = cls(str(block["end_token"]), float(block.get("threshold", 0.5)))
        except (KeyError, TypeError, ValueError) as e:
            raise ToolkitError(f"malformed readout in {where}: {e}") from None
        if out.end_token not in meta.get("config", {}).get("output_vocab", []) or not 0 < out.threshold < 1:
            raise ToolkitError(f"malformed readout in {where}: end token not in output_vocab or threshold "
                               f"outside (0, 1)")
        return out

    def logit_threshold(self) -> float:
        """The threshold as a logit: ``log(p / (1 - p))`` (0 for 0.5)."""
        return math.log(self.threshold / (1 - self.threshold))

    def legal(self, logits: torch.Tensor) -> torch.Tensor:
        """``[B, T, O]`` bool: which outputs are legal next after each prefix."""
        return logits > self.logit_threshold()

    def tokens_legal(self, cfg: ModelConfig, logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` bool: every token of the prefix was legal after the tokens before it; False at BOS and pads.

        ``logits`` ``[B, T, O]``, ``ids`` ``[B, T]``: position ``t``'s token is read at position ``t - 1``.
        """
        # token_log_probs is a gather: it reads logits as well as log-probabilities
        return every_token_so_far(cfg, token_log_probs(cfg, logits, ids) > self.logit_threshold(), ids)

    def verdicts(self, cfg: ModelConfig, logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """``[B, T]`` bool: the prefix is in the language (class docstring)."""
        end = logits[..., cfg.output_vocab.index(self.end_token)] > self.logit_threshold()  # [B, T]
        return self.tokens_legal(cfg, logits, ids) & end


def log_probs(model: Transformer, ids: torch.Tensor, batch: int = 8192) -> torch.Tensor:
    """Next-token log-probabilities ``[N, T, O]`` (float32, on the CPU), batched, without autograd."""
    return predict_batched(model, ids, lambda logits, _: torch.log_softmax(logits, -1), batch)


def _input_to_output(cfg: ModelConfig) -> torch.Tensor:
    """``[V]``: the output id of each input token (-1 for BOS and pad)."""
    out = {v: i for i, v in enumerate(cfg.output_vocab)}
    return torch.tensor([out.get(t, -1) if t not in (cfg.bos_token, cfg.pad_token) else -1 for t in cfg.vocab])


def token_log_probs(cfg: ModelConfig, logp: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``[N, T]``: log P(token t | tokens before it) at position t >= 1; 0 at BOS and pads."""
    out_id = _input_to_output(cfg)[ids[:, 1:]]  # [N, T-1]
    got = logp[:, :-1].gather(2, out_id.clamp(min=0)[..., None]).squeeze(2)  # [N, T-1]
    got = torch.where(out_id >= 0, got, torch.zeros_like(got))
    return torch.cat([torch.zeros_like(got[:, :1]), got], 1)


def every_token_so_far(cfg: ModelConfig, token_ok: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``[N, T]`` bool: ``token_ok`` ``[N, T]`` held at every real token up to ``t``; False at BOS and pads."""
    real = ids != cfg.vocab.index(cfg.pad_token)  # [N, T]
    real[:, 0] = False
    return (token_ok | ~real).int().cummin(1).values.bool() & real


def verdicts_from(cfg: ModelConfig, logp: torch.Tensor, ids: torch.Tensor, readout: Readout) -> torch.Tensor:
    """The verdicts ``[N, T]`` (bool) from log-probabilities ``[N, T, O]``; see the module docstring."""
    tokens_ok = every_token_so_far(cfg, token_log_probs(cfg, logp, ids) >= math.log(readout.tau_token), ids)
    end_ok = logp[..., cfg.output_vocab.index(readout.end_token)] >= math.log(readout.tau_end)  # [N, T]
    return tokens_ok & end_ok


def lm_verdicts(model: Transformer, ids: torch.Tensor, readout: Readout) -> torch.Tensor:
    """Per-prefix verdicts ``[B, T]`` (bool, on the CPU) of an LM artifact on inputs ``ids`` ``[B, T]``.

    Example:
        >>> model, meta = load_artifact("artifacts/miu/mugpt/seed0")
        >>> lm_verdicts(model, encode(model.cfg, [tuple("MIU")]), Readout.from_meta(meta))
        tensor([[False, False,  True,  True]])
    """
    return verdicts_from(model.cfg, log_probs(model, ids), ids.cpu(), readout)


def string_probability(model: Transformer, tokens: Sequence[str], end_token: str) -> tuple[float, float]:
    """``(P(string), P(END | string))``: P(string) = product of token probabilities times P(END | string)."""
    ids = encode(model.cfg, [tuple(tokens)])
    logp = log_probs(model, ids)[0].double()  # [T, O]
    tok = token_log_probs(model.cfg, logp[None], ids)[0]  # [T]
    end = float(logp[len(tokens), model.cfg.output_vocab.index(end_token)])
    return math.exp(float(tok.sum()) + end), math.exp(end)


# -- thresholds from the training data ----------------------------------------------


def fit_threshold(pos: np.ndarray, neg: np.ndarray) -> tuple[float, dict[str, Any]]:
    """A threshold on log-probabilities: best balanced accuracy, half-way across the widest best gap.

    Args:
        pos: log-probabilities of events that happen in the training data.
        neg: log-probabilities of events that never do.

    Returns:
        (threshold as a probability, {balanced_accuracy, separated, min_positive, max_negative}).
    """
    pos, neg = np.asarray(pos, dtype=np.float64), np.asarray(neg, dtype=np.float64)
    values = np.unique(np.concatenate([pos, neg]))
    cuts = np.concatenate([[values[0] - 1.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1.0]])
    gaps = np.concatenate([[1.0], np.diff(values), [1.0]])
    tpr = (np.sort(pos)[None, :] >= cuts[:, None]).mean(1) if len(pos) else np.ones(len(cuts))
    tnr = (np.sort(neg)[None, :] < cuts[:, None]).mean(1) if len(neg) else np.ones(len(cuts))
    bal = (tpr + tnr) / 2
    best = np.flatnonzero(bal >= bal.max() - 1e-12)
    k = best[np.argmax(gaps[best])]
    tau = float(min(1.0, math.exp(cuts[k])))
    return tau, {"balanced_accuracy": float(bal[k]),
                 "separated": bool(len(pos) == 0 or len(neg) == 0 or pos.min() > neg.max()),
                 "min_positive": float(np.exp(pos.min())) if len(pos) else None,
                 "max_negative": float(np.exp(neg.max())) if len(neg) else None}


@dataclasses.dataclass(frozen=True)
class TrainingEvents:
    """What the training data says after each of its contexts.

    Attributes:
        prefixes: every prefix (the empty one included) of a training string.
        ends: ``[P]`` whether a training string ends there.
        end_known: ``[P]`` False at a held-out string (neither positive nor negative).
        follows: ``[P, A]`` whether a training string continues with token ``alphabet[a]``.
        known: ``[P, A]`` False where the token leads only into held-out strings.
        alphabet: the tokens.
    """

    prefixes: list[Tokens]
    ends: np.ndarray
    end_known: np.ndarray
    follows: np.ndarray
    known: np.ndarray
    alphabet: tuple[str, ...]


def training_events(train: Iterable[Tokens], held_out: Iterable[Tokens], alphabet: Sequence[str]) -> TrainingEvents:
    """The events of ``train``'s contexts, with those about ``held_out`` strings marked unknown."""
    train = set(map(tuple, train))
    held = set(map(tuple, held_out))
    seen = {s[:k] for s in train for k in range(len(s) + 1)}
    held_only = {h[:k] for h in held for k in range(len(h) + 1)} - seen
    prefixes = sorted(seen, key=lambda p: (len(p), p))
    shape = (len(prefixes), len(alphabet))
    follows = np.array([[p + (a,) in seen for a in alphabet] for p in prefixes], dtype=bool).reshape(shape)
    known = np.array([[p + (a,) not in held_only for a in alphabet] for p in prefixes], dtype=bool).reshape(shape)
    return TrainingEvents(prefixes, np.array([p in train for p in prefixes], dtype=bool),
                          np.array([p not in held for p in prefixes], dtype=bool), follows, known, tuple(alphabet))


def choose_readout(model: Transformer, events: TrainingEvents, end_token: str) -> tuple[Readout, dict[str, Any]]:
    """Thresholds from the training events only (module docstring); also how well they separate them."""
    cfg = model.cfg
    ids = encode(cfg, events.prefixes)  # [P, 1 + longest]
    logp = log_probs(model, ids)  # [P, T, O]
    last = torch.tensor([len(p) for p in events.prefixes])
    at = logp[torch.arange(len(last)), last].double().numpy()  # [P, O]: what follows each prefix
    end = at[:, cfg.output_vocab.index(end_token)]
    tok = at[:, [cfg.output_vocab.index(a) for a in events.alphabet]]  # [P, A]
    tau_end, end_fit = fit_threshold(end[events.ends & events.end_known], end[~events.ends & events.end_known])
    tau_token, token_fit = fit_threshold(tok[events.follows & events.known], tok[~events.follows & events.known])
    return Readout(end_token, tau_token, tau_end), {"end": end_fit, "token": token_fit,
                                                    "contexts": len(events.prefixes)}
