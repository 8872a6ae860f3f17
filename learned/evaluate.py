"""Exhaustive evaluation of a model against the program's own outputs.

Every input of every length up to the maximum (88,572 for MIU at length 10),
or a seeded held-out sample where that is too many, scored at every position
against ``spec.reference``. Reported:

  * ``sequence_accuracy``: every position right. For a causal program such as
    MIU this is the *all-prefix* accuracy (the verdict of every prefix);
  * ``final_accuracy``: the last position right (MIU: the verdict on the
    whole string);
  * ``position_accuracy``: the share of positions right;
  * the same per input length, per output class, and per value of each of
    the task's clauses (``Task.clauses``; for MIU: starts with ``M``, no
    later ``M``, ``I`` count mod 3, and the *deciding* clause, the first that
    rejects the string);
  * with a training length cut, the accuracy on seen and unseen lengths.

This module never imports ``compiled``: the learned side is judged by the
program, not by the compiled model.

Shapes: N inputs, T = 1 + max_len positions (BOS first).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from learned.data import IGNORE, label
from learned.inference import predict_batched
from learned.model import ModelConfig, Transformer
from rasp_programs.spec import ProgramSpec, Tokens


@dataclasses.dataclass
class EvalSet:
    """Labelled evaluation inputs, built once per run.

    Attributes:
        inputs: the token tuples, in order.
        ids, targets: ``[N, T]`` as in ``learned.data.label``.
        lengths: ``[N]`` input lengths.
        exhaustive: whether ``inputs`` is every input up to ``max_len``.
        max_len: longest input.
        output_vocab: what the target ids stand for (the program's outputs).
    """

    spec: ProgramSpec
    inputs: list[Tokens]
    ids: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor
    exhaustive: bool
    max_len: int
    output_vocab: tuple[str, ...] = ()

    def gate_rows(self, max_len: int | None = None) -> torch.Tensor:
        """Rows whose positions cover every scored prediction up to ``max_len``.

        For a causal program every prefix of a longest input is itself an input,
        and its predictions are the longer input's first positions, so the
        longest inputs alone cover every (prefix, position) pair: a cheaper
        early-stop check (59,049 instead of 88,572 inputs for MIU). Otherwise
        every input up to ``max_len``.
        """
        cut = self.max_len if max_len is None else min(max_len, self.max_len)
        if self.spec.causal and self.exhaustive:
            return torch.nonzero(self.lengths == cut).squeeze(1)
        return torch.nonzero(self.lengths <= cut).squeeze(1)


def build_eval_set(spec: ProgramSpec, cfg: ModelConfig, max_len: int, limit: int = 300_000,
                   seed: int = 12345) -> EvalSet:
    """Every input up to ``max_len`` if there are at most ``limit``, else a seeded held-out sample.

    The held-out sample is ``spec.evaluation_inputs`` (uniform). Where the task
    names ``held_out`` pools (MIU, whose uniform strings are almost always
    rejected by their first letter), about half of it is replaced by draws
    from those training pools under the evaluation seed, so the counting
    clause is tested too.
    """
    inputs, exhaustive = spec.evaluation_inputs(max_len, limit, seed)
    mix = spec.task.data
    if not exhaustive and mix.held_out:
        pools = mix.pools(np.random.default_rng(seed), spec.vocab, max_len, limit // 6)
        informative = [x for name in mix.held_out for x in pools[name]]
        inputs = inputs[:limit - len(informative)] + informative
    ids, targets = label(spec, cfg, inputs)
    lengths = torch.tensor([len(x) for x in inputs], dtype=torch.long)
    return EvalSet(spec, inputs, ids, targets, lengths, exhaustive, max_len, cfg.output_vocab)


def predict_ids(model: Transformer, ids: torch.Tensor, batch: int = 8192) -> torch.Tensor:
    """Argmax output ids ``[N, T]`` in float32, on the CPU, batched."""
    return predict_batched(model, ids, lambda logits, _: logits.argmax(-1), batch)


def all_correct(model: Transformer, es: EvalSet, rows: torch.Tensor) -> tuple[bool, float]:
    """Whether every scored position of ``rows`` is right, and the sequence accuracy there."""
    pred = predict_ids(model, es.ids[rows])
    tgt = es.targets[rows]
    ok = ((pred == tgt) | (tgt == IGNORE)).all(1)
    return bool(ok.all()), float(ok.float().mean())


def _acc(mask: torch.Tensor, correct: torch.Tensor) -> dict[str, Any]:
    n = int(mask.sum())
    return {"inputs": n, "accuracy": float(correct[mask].float().mean()) if n else None}


def evaluate(model: Transformer, es: EvalSet, train_max_len: int | None = None,
             pred: torch.Tensor | None = None) -> dict[str, Any]:
    """The full evaluation of the module docstring, as a JSON-ready dict.

    ``pred`` (``[N, T]`` ids into ``es.output_vocab``) scores given predictions
    instead of the model's argmax, e.g. the verdicts a language model's
    readout gives (``learned.lm``).
    """
    cfg = model.cfg
    pred = predict_ids(model, es.ids) if pred is None else pred  # [N, T]
    scored = es.targets != IGNORE  # [N, T]
    right = (pred == es.targets) & scored
    seq_ok = (right | ~scored).all(1)  # [N]
    last = es.lengths  # index of the last token (BOS is position 0)
    final_t = es.targets.gather(1, last[:, None]).squeeze(1)  # [N]
    final_ok = pred.gather(1, last[:, None]).squeeze(1) == final_t
    out: dict[str, Any] = {
        "inputs": len(es.inputs), "exhaustive": es.exhaustive, "max_len": es.max_len,
        "causal": cfg.causal,
        "sequence_accuracy": float(seq_ok.float().mean()),
        "final_accuracy": float(final_ok.float().mean()),
        "position_accuracy": float(right.sum() / scored.sum()),
        "wrong_inputs": int((~seq_ok).sum()),
        "failures": [" ".join(es.inputs[i]) for i in torch.nonzero(~seq_ok).squeeze(1)[:10].tolist()],
    }
    out["per_length"] = {
        int(n): {"inputs": int((es.lengths == n).sum()),
                 "sequence_accuracy": _acc(es.lengths == n, seq_ok)["accuracy"],
                 "final_accuracy": _acc(es.lengths == n, final_ok)["accuracy"]}
        for n in es.lengths.unique().tolist()}
    out["per_class"] = {
        v: {"final": _acc(final_t == c, final_ok),
            "positions": {"positions": int((es.targets == c).sum()),
                          "accuracy": float(right[es.targets == c].float().mean()) if (es.targets == c).any() else None}}
        for c, v in enumerate(es.output_vocab or cfg.output_vocab)}
    if es.spec.task.clauses is not None:
        out["per_clause"] = _per_clause(es, seq_ok, final_ok)
    if train_max_len is not None and train_max_len < es.max_len:
        seen, unseen = es.lengths <= train_max_len, es.lengths > train_max_len
        out["length_generalisation"] = {
            "train_max_len": train_max_len,
            "seen": {"sequence": _acc(seen, seq_ok), "final": _acc(seen, final_ok)},
            "unseen": {"sequence": _acc(unseen, seq_ok), "final": _acc(unseen, final_ok)},
        }
    return out


def _per_clause(es: EvalSet, seq_ok: torch.Tensor, final_ok: torch.Tensor) -> dict[str, Any]:
    clauses = [es.spec.task.clauses(x) for x in es.inputs]
    out: dict[str, Any] = {}
    for key in clauses[0] if clauses else ():
        values = [str(c[key]) for c in clauses]
        out[key] = {}
        for name in sorted(set(values)):
            mask = torch.tensor([v == name for v in values])
            out[key][name] = {"inputs": int(mask.sum()),
                              "final_accuracy": _acc(mask, final_ok)["accuracy"],
                              "sequence_accuracy": _acc(mask, seq_ok)["accuracy"]}
    return out


def summary_line(m: dict[str, Any]) -> str:
    """One line for the terminal."""
    kind = "exhaustive" if m["exhaustive"] else "held-out"
    seq = "all-prefix" if m["causal"] else "all-position"
    return (f"{kind} ({m['inputs']} inputs): final {100 * m['final_accuracy']:.2f}%, "
            f"{seq} {100 * m['sequence_accuracy']:.2f}%, {m['wrong_inputs']} wrong")
