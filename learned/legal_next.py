"""The legal-next-token objective (``--objective legal-next``): BCE on the set of legal next tokens.

This is how published formal-language models are often trained (character
prediction; Gers & Schmidhuber 2001, Suzgun et al. 2019): on the language's
members only, at every prefix (the empty one included) the target is the set
of tokens that may follow, ``END`` included when the prefix is a member
(``rasp_programs.language.legal_next``: the automaton's sets, with no length
bound, where the language declares them). Each output is an independent
sigmoid, trained with binary cross-entropy.

The members are drawn up to ``cut`` tokens plus the language's completion
tail (``rasp_programs.language.completion_tail``) and cut to their first
``cut`` tokens: every live prefix of ``cut`` tokens begins some member. With
members of at most ``cut`` tokens, every training prefix of that length was
a whole member, ``END`` was legal after all of them, and the model called
every string of the longest length a member.

The model's ``model.json`` declares the ``legal-next`` readout
(``learned.lm.LegalNext``): a prefix is a member when each of its tokens was
legal (sigmoid above 0.5 at the position before it) and ``END`` is legal
after it, the readout ``compare/`` and imported models (``learned.hf``) use.

Early stop: the verdict is right at every prefix of every evaluation input
(exhaustive up to ``MAX_LEN``), as for the classifier. The model never sees a
non-member's prefix that leaves the language for good (a dead prefix), so
that check asks it to generalise there; ``metrics.json`` also records the
legal sets on the member prefixes it was trained on (``train_sets_exact``).

Shapes: N rows, T = n_ctx positions (BOS first), O = output vocabulary
(tokens + END). Table targets are ``[N, T, 1 + O]``: whether the position is
scored, then the legal set as 0/1.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from learned.artifact import encode
from learned.checkpoints import Snapshots
from learned.data import Table
from learned.evaluate import EvalSet, evaluate
from learned.lm import LegalNext
from learned.lm_data import lm_model_config
from learned.model import ModelConfig, Transformer
from learned.objective import QUICK_CHECK, Objective
from rasp_programs import language as lang
from rasp_programs.errors import ToolkitError
from rasp_programs.spec import ProgramSpec, Tokens

Q = 0.25  # the length-controlled sampler's end probability (as MU-GPT's default)


def legal_rows(cfg: ModelConfig, language: lang.Language, strings: list[Tokens],
               max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``[N, n_ctx]`` (BOS + string, padded) and targets ``[N, n_ctx, 1 + O]`` (scored, legal set)."""
    out = {v: i for i, v in enumerate(cfg.output_vocab)}
    ids = encode(cfg, strings)
    ids = torch.nn.functional.pad(ids, (0, cfg.n_ctx - ids.shape[1]), value=cfg.vocab.index(cfg.pad_token))
    targets = torch.zeros(*ids.shape, 1 + len(cfg.output_vocab), dtype=torch.long)
    for r, s in enumerate(strings):
        for t in range(len(s) + 1):  # position t: after the prefix of t tokens
            targets[r, t, 0] = 1
            for v in lang.legal_next(language, s[:t], max_len):
                targets[r, t, 1 + out[v]] = 1
    return ids, targets


class LegalNextObjective(Objective):
    """BCE on the legal next tokens, trained on members only (module docstring).

    Args:
        spec: the program; must have a ``language`` and a True/False output.
        model_cfg: the compiled shape (outputs replaced by tokens + END).
        cut: longest training string.
        es: the evaluation set, labelled with the program's verdicts.
    """

    name = "legal-next"
    checks_always = True

    def __init__(self, spec: ProgramSpec, model_cfg: ModelConfig, cut: int, es: EvalSet):
        if spec.language is None:
            raise ToolkitError(f"program '{spec.name}' has no language (ProgramSpec.language); "
                               f"--objective legal-next needs one")
        if {"False", "True"} - set(es.output_vocab):
            raise ToolkitError(f"program '{spec.name}' does not output a True/False verdict per prefix; "
                               f"--objective legal-next cannot be scored against it")
        self.language, self.es = spec.language, es
        self.model_cfg = lm_model_config(model_cfg, self.language)
        self.readout = LegalNext(self.language.end_token)
        self.tail = lang.completion_tail(self.language, cut)
        dist: dict[Tokens, float] = {}
        for s, p in lang.LengthControlled(self.language, cut + self.tail, Q).distribution().items():
            dist[s[:cut]] = dist.get(s[:cut], 0.0) + p  # a member longer than the context: its first cut tokens
        self.train = list(dist)
        ids, targets = legal_rows(self.model_cfg, self.language, self.train, cut)
        weights = torch.tensor(list(dist.values()), dtype=torch.float64)
        self.table = Table(ids, targets, weights / weights.sum(), torch.zeros(len(ids), dtype=torch.long),
                           ("length",))
        self.gate = es.gate_rows(cut)
        self.quick = self.gate[torch.randperm(len(self.gate), generator=torch.Generator().manual_seed(0))[:QUICK_CHECK]]
        self.reached: dict[str, Any] | None = None

    # -- the loop's hooks --------------------------------------------------------------

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy of every output at every scored position."""
        scored, legal = targets[..., 0].bool(), targets[..., 1:].float()  # [B, T], [B, T, O]
        return torch.nn.functional.binary_cross_entropy_with_logits(logits[scored].float(), legal[scored])

    @property
    def finished(self) -> bool:
        return self.reached is not None

    def predict(self, model: Transformer, rows: torch.Tensor) -> torch.Tensor:
        """``[R, T]`` verdict ids (the evaluation set's output vocabulary) from the readout."""
        device = next(model.parameters()).device
        ids = self.es.ids[rows]
        was = model.training
        model.eval()
        with torch.inference_mode():
            logits = torch.cat([model(ids[i:i + 8192].to(device)).float().cpu() for i in range(0, len(ids), 8192)])
        model.train(was)
        member = self.readout.verdicts(model.cfg, logits, ids)  # [R, T]
        index = {v: i for i, v in enumerate(self.es.output_vocab)}
        return torch.where(member, index["True"], index["False"])

    def _right(self, model: Transformer, rows: torch.Tensor) -> tuple[bool, float]:
        pred, tgt = self.predict(model, rows), self.es.targets[rows]
        ok = ((pred == tgt) | (tgt < 0)).all(1)
        return bool(ok.all()), float(ok.float().mean())

    def check(self, model: Transformer, step: int, seconds: Callable[[], float]) -> tuple[dict[str, Any], bool]:
        ok, acc = self._right(model, self.quick)
        rows = len(self.quick)
        if ok and len(self.quick) < len(self.gate):
            ok, acc = self._right(model, self.gate)
            rows = len(self.gate)
        record = {"step": step, "rows": rows, "sequence_accuracy": acc, "train_sets_exact": self.sets_exact(model),
                  "seconds": seconds()}
        if ok and self.reached is None:
            self.reached = {"step": step, "seconds": record["seconds"]}
        return record, ok

    def sets_exact(self, model: Transformer) -> float:
        """Share of the training prefixes whose whole legal set the readout gets right."""
        device = next(model.parameters()).device
        was = model.training
        model.eval()
        with torch.inference_mode():
            logits = model(self.table.ids.to(device)).float().cpu()
        model.train(was)
        scored, legal = self.table.targets[..., 0].bool(), self.table.targets[..., 1:].bool()
        return float((self.readout.legal(logits) == legal).all(-1)[scored].float().mean())

    def evaluate(self, model: Transformer, snapshots: Snapshots, steps: list[int],
                 checks: list[dict[str, Any]]) -> dict[str, Any]:
        pred = self.predict(model, torch.arange(len(self.es.inputs)))
        return {"evaluation": evaluate(model, self.es, pred=pred), "reached_100": self.reached,
                "train_sets_exact": self.sets_exact(model), "train_strings": len(self.train)}

    def stop_moment(self) -> dict[str, Any] | None:
        return self.reached

    def artifact_meta(self, model: Transformer) -> dict[str, Any]:
        return {"objective": "legal-next", "readout": self.readout.to_json()}

    def data(self) -> dict[str, Any]:
        return {"sampler": "length", "q": Q, "completion_tail": self.tail, "train_strings": len(self.train),
                "share_of_draws": lang.describe(self.train, self.language.alphabet, self.table.weights.tolist())}

    def state(self) -> dict[str, Any]:
        return {"reached_100": self.reached}

    def load_state(self, state: dict[str, Any]) -> None:
        self.reached = state.get("reached_100")
