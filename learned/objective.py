"""What differs between training objectives, behind one interface for the loop.

``Objective`` is what ``learned.loop.Trainer`` and ``learned.train.train``
call: the model's config (its output vocabulary), the data table, the batch
score logged per window, the early-stop check, the final evaluation and the
extra ``model.json`` keys. Two objectives exist:

  * ``Classifier`` (here): the program's output at every position, the
    original ``make train`` run. Its check is the exhaustive one: every
    prefix of every input right (a seeded subset of 4,096 rows first, so a
    failed check costs little).
  * ``learned.mugpt.LanguageModel``: next-token prediction on the program's
    positive strings (MU-GPT).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from learned.checkpoints import Snapshots
from learned.data import IGNORE, Table, build_table, describe
from learned.evaluate import EvalSet, all_correct, evaluate
from learned.model import ModelConfig, Transformer
from rasp_programs.spec import ProgramSpec

QUICK_CHECK = 4096  # rows of the early-stop check tried before the full one


class Objective:
    """The hooks the loop calls; see the module docstring.

    Attributes:
        name: ``"classifier"`` or ``"lm"``.
        model_cfg: the model to train (shape and vocabularies).
        table: training rows for ``learned.data.Sampler``.
        scores_batches: whether ``batch_score`` is logged (``batch_accuracy``).
        checks_always: run checks even when early stopping is off (to record moments).
    """

    name = "objective"
    scores_batches = False
    checks_always = False
    model_cfg: ModelConfig
    table: Table

    @property
    def finished(self) -> bool:
        """Whether the early-stop condition has been met (a resumed run then stops at once)."""
        return False

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of logits ``[B, T, O]`` against target ids ``[B, T]`` (``IGNORE`` skipped)."""
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)

    def batch_score(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
        """A ``[]`` score of one batch, or ``None``."""
        return None

    def wants_check(self, perfect_window: bool) -> bool:
        return True

    def check(self, model: Transformer, step: int, seconds: Callable[[], float]) -> tuple[dict[str, Any], bool]:
        """One early-stop check: (its record for ``checks``, whether to stop)."""
        raise NotImplementedError

    def evaluate(self, model: Transformer, snapshots: Snapshots, steps: list[int],
                 checks: list[dict[str, Any]]) -> dict[str, Any]:
        """Metrics of the final model (and of the written checkpoints ``steps``, and of the ``checks``)."""
        raise NotImplementedError

    def stop_moment(self) -> dict[str, Any] | None:
        """``{"step", "seconds"}`` of the early stop, if it happened."""
        return None

    def artifact_meta(self, model: Transformer) -> dict[str, Any]:
        """Extra ``model.json`` keys for a model or checkpoint of this objective."""
        return {}

    def data(self) -> dict[str, Any]:
        """The realised training data, for ``model.json``."""
        return describe(self.table)

    def state(self) -> dict[str, Any]:
        """JSON state for ``--resume``."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass


class Classifier(Objective):
    """The program's output at every position (``make train``).

    Args:
        spec: the program.
        model_cfg: the model (the compiled shape, maybe a narrower residual).
        cut: longest training input.
        data_seed, pool_size, train_size: see ``learned.data.build_table``.
        es: the evaluation set; its covering rows are the early-stop check.
        train_max_len: the length cut, if any (for the length-generalisation report).
    """

    name = "classifier"
    scores_batches = True

    def __init__(self, spec: ProgramSpec, model_cfg: ModelConfig, cut: int, data_seed: int, pool_size: int,
                 train_size: int | None, es: EvalSet, train_max_len: int | None):
        self.model_cfg, self.es, self.train_max_len = model_cfg, es, train_max_len
        self.table = build_table(spec, model_cfg, cut, data_seed, pool_size, train_size)
        self.gate = es.gate_rows(cut)  # every (prefix, position) pair up to the cut
        # A seeded subset is checked first, so a check that fails costs little.
        self.quick = self.gate[torch.randperm(len(self.gate), generator=torch.Generator().manual_seed(0))[:QUICK_CHECK]]
        self.reached: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.reached is not None

    def batch_score(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Share of the batch right at every position."""
        return ((logits.argmax(-1) == targets) | (targets == IGNORE)).all(1).float().mean()

    def wants_check(self, perfect_window: bool) -> bool:
        return perfect_window  # every batch of the window was right everywhere

    def check(self, model: Transformer, step: int, seconds: Callable[[], float]) -> tuple[dict[str, Any], bool]:
        ok, acc = all_correct(model, self.es, self.quick)
        rows = len(self.quick)
        if ok and len(self.quick) < len(self.gate):
            ok, acc = all_correct(model, self.es, self.gate)
            rows = len(self.gate)
        record = {"step": step, "rows": rows, "sequence_accuracy": acc, "seconds": seconds()}
        if ok:
            self.reached = {"step": step, "seconds": record["seconds"]}
        return record, ok

    def evaluate(self, model: Transformer, snapshots: Snapshots, steps: list[int],
                 checks: list[dict[str, Any]]) -> dict[str, Any]:
        return {"evaluation": evaluate(model, self.es, self.train_max_len), "reached_100": self.reached}

    def stop_moment(self) -> dict[str, Any] | None:
        return self.reached

    def state(self) -> dict[str, Any]:
        return {"reached_100": self.reached}

    def load_state(self, state: dict[str, Any]) -> None:
        self.reached = state.get("reached_100")
