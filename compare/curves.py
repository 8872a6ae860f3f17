"""Training-dynamics curves as types, and what is read off them: emergence, order, progress measures.

``compare.dynamics`` fills one ``Curves`` per training run, one entry per
checkpoint in every list; ``analyse_curves`` turns it into an ``Analysis``.
Both are plain data: ``to_json`` / ``from_json`` are the edge to
``dynamics.json``, whose layout they keep (``from_json`` also reads files
written before a field existed).

Emergence: a variable *emerges* at the first step from which it stays causal
(the status rule: IIA lower bound >= 0.9 and above the random-subspace null),
or stays readable (its readout rescaled against untrained networks >= 0.9), to
the last checkpoint.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

MEASURES = ("causal", "readable")  # emergence: the status is causal / rescaled readout >= READABLE
READABLE = 0.9
REJECT = 0.99  # a classifier rejects the impossible string when P(member) <= 1 - REJECT
LM_EPS = 1e-3  # a language model rules it out when P(END | impossible) < LM_EPS (MU-GPT's stop rule)


def _field(kind):
    return dataclasses.field(default_factory=kind)


@dataclasses.dataclass
class VariableCurve:
    """One compiled variable of the compared program, per checkpoint."""

    status: list[str] = _field(list)
    causal: list[bool] = _field(list)
    hook: list[str | None] = _field(list)
    iia: list[float] = _field(list)
    iia_lo: list[float] = _field(list)
    iia_hi: list[float] = _field(list)
    readout: list[float] = _field(list)  # the live-row readout rescaled: untrained networks 0, perfect 1
    readout_raw: list[float] = _field(list)
    untrained: list[float] = _field(list)


@dataclasses.dataclass
class Accuracy:
    """Exhaustive accuracy: every position (``sequence``), the final one, the final one per deciding clause."""

    sequence: list[float] = _field(list)
    final: list[float] = _field(list)
    per_clause: dict[str, list[float]] = _field(dict)


@dataclasses.dataclass
class HeadCurve:
    """One compiled head: its agreement with the learned head it is matched to, and which head that is."""

    score: list[float] = _field(list)
    learned: list[str] = _field(list)


@dataclasses.dataclass(frozen=True)
class Skipped:
    """A checkpoint that could not be compared, and why."""

    step: int
    folder: str
    error: str


@dataclasses.dataclass
class CandidateCurve:
    """One candidate program's score, its CI and its support, per checkpoint."""

    score: list[float] = _field(list)
    lo: list[float] = _field(list)
    hi: list[float] = _field(list)
    support: list[str] = _field(list)


@dataclasses.dataclass
class Curves:
    """Every measurement of one training run, one entry per usable checkpoint (``steps``).

    Attributes:
        impossible: the task's impossible string (``Language.impossible`` joined), or None where the task
            has no language; its probe curve gives the rejection step.
        p_impossible: a language model's probability of that string (None for a classifier).
        leader: the first-ranked candidate program per checkpoint (empty without candidates).
    """

    folder: str
    impossible: str | None = None
    steps: list[int] = _field(list)
    skipped: list[Skipped] = _field(list)
    accuracy: Accuracy = _field(Accuracy)
    probes: dict[str, list[float]] = _field(dict)
    variables: dict[str, VariableCurve] = _field(dict)
    heads: dict[str, HeadCurve] = _field(dict)
    p_impossible: list[float] | None = None
    leader: list[str] = _field(list)
    candidates: dict[str, CandidateCurve] = _field(dict)

    @property
    def lm(self) -> bool:
        return self.p_impossible is not None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Curves:
        acc = d.get("accuracy", {})
        return cls(folder=d.get("folder", ""), impossible=d.get("impossible"), steps=list(d.get("steps", [])),
                   skipped=[Skipped(**s) for s in d.get("skipped", [])],
                   accuracy=Accuracy(**{k: acc[k] for k in ("sequence", "final", "per_clause") if k in acc}),
                   probes=dict(d.get("probes", {})),
                   variables={k: VariableCurve(**v) for k, v in d.get("variables", {}).items()},
                   heads={k: HeadCurve(**v) for k, v in d.get("heads", {}).items()},
                   p_impossible=d.get("p_impossible"), leader=list(d.get("leader", [])),
                   candidates={k: CandidateCurve(**v) for k, v in d.get("candidates", {}).items()})


@dataclasses.dataclass(frozen=True)
class Analysis:
    """What one run's curves say (``analyse_curves``).

    Attributes:
        emergence, order, sentence: per measure (``MEASURES``): each variable's emergence step, the variables
            grouped by it, and the same in words.
        progress_measures: variables that became causal after the first checkpoint and before the accuracy jump.
        impossible_rejected_step: a classifier's first step with P(member | impossible) <= 1 - REJECT (None:
            never, or not probed: see ``impossible_probed``).
        end_below_step: a language model's first step with P(END | impossible) < LM_EPS (None for a classifier,
            or never).
        clear_checkpoints, leader_changes, supported_from: with candidate programs only (else None).
    """

    emergence: dict[str, dict[str, int | None]]
    order: dict[str, list[list[str]]]
    sentence: dict[str, str]
    accuracy_jump_step: int | None
    progress_measures: list[str]
    readable_at_init: list[str]
    impossible: str | None = None
    impossible_probed: bool = False
    impossible_rejected_step: int | None = None
    lm: bool = False
    end_below_step: int | None = None
    clear_checkpoints: int | None = None
    leader_changes: list[list[Any]] | None = None
    supported_from: dict[str, int | None] | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ------------------------------------------------------------ curve analysis --

def emergence_step(steps: Sequence[int], values: Sequence[float], threshold: float) -> int | None:
    """The first step from which ``values`` stay >= ``threshold`` to the end (None if never).

    Example:
        >>> emergence_step([0, 10, 20, 30], [0.1, 0.95, 0.5, 0.96], 0.9)
        30
    """
    found = None
    for step, v in zip(steps, values):
        ok = v is not None and not np.isnan(v) and v >= threshold
        if ok and found is None:
            found = step
        elif not ok:
            found = None
    return found


def first_step(steps: Sequence[int], values: Sequence[float], threshold: float, below: bool = False) -> int | None:
    """The first step where ``values`` reaches ``threshold`` (or falls to it, with ``below``)."""
    for step, v in zip(steps, values):
        if v is not None and not np.isnan(v) and (v <= threshold if below else v >= threshold):
            return step
    return None


def normalised(score: float, baseline: float) -> float:
    """Readout score rescaled so the baseline is 0 and perfect is 1 (clipped to [0, 1]).

    A raw accuracy of 0.99 means nothing for a variable an untrained network
    of the same shape already reads at 0.99 (``count_I`` on live rows).
    """
    if score is None or baseline is None or np.isnan(score) or np.isnan(baseline) or baseline >= 1.0:
        return float("nan")  # nothing to gain over a baseline that is already perfect
    return float(np.clip((score - baseline) / (1.0 - baseline), 0.0, 1.0))


def emergence_order(emergence: dict[str, int | None]) -> list[list[str]]:
    """Variables grouped by emergence step, earliest first; never-emerged last are dropped."""
    steps = sorted({s for s in emergence.values() if s is not None})
    return [sorted(k for k, s in emergence.items() if s == step) for step in steps]


def order_sentence(order: list[list[str]], emergence: dict[str, int | None], first: int = 0,
                   what: str = "readable") -> str:
    """Plain words, e.g. ``count_I (step 120), then theorem (step 300); never: bad_M_at``.

    Variables readable from the first checkpoint on are marked: a random
    network already exposes any function of (token, position) linearly.
    """
    def when(step):
        return f"step {step}" + (", i.e. at initialisation, from the input alone" if step == first else "")
    parts = [" and ".join(group) + f" ({when(emergence[group[0]])})" for group in order]
    never = sorted(k for k, s in emergence.items() if s is None)
    text = ", then ".join(parts) if parts else f"no variable became {what}"
    return text + (f"; never {what}: {', '.join(never)}" if never else "")


def leader_changes(steps: Sequence[int], leaders: Sequence[str]) -> list[list[Any]]:
    """``[[step, candidate], ...]``: the first-ranked candidate at the first checkpoint and wherever it changes.

    Example:
        >>> leader_changes([0, 10, 20], ["miu", "miu_mean", "miu_mean"])
        [[0, 'miu'], [10, 'miu_mean']]
    """
    out: list[list[Any]] = []
    for step, name in zip(steps, leaders):
        if not out or out[-1][1] != name:
            out.append([step, name])
    return out


def analyse_curves(c: Curves) -> Analysis:
    """Emergence steps, order, progress measures, the impossible string's rejection and the candidates' ranking."""
    steps = c.steps
    emergence = {
        "causal": {v: emergence_step(steps, [1.0 if x else 0.0 for x in curve.causal], 0.5)
                   for v, curve in c.variables.items()},
        "readable": {v: emergence_step(steps, curve.readout, READABLE) for v, curve in c.variables.items()},
    }
    order = {m: emergence_order(emergence[m]) for m in MEASURES}
    sentence = {m: order_sentence(order[m], emergence[m], steps[0] if steps else 0, m) for m in MEASURES}
    jump = emergence_step(steps, c.accuracy.sequence, 0.99)
    # A progress measure *became causal* before the jump; causal already at the first checkpoint does not count.
    progress = sorted(v for v, s in emergence["causal"].items()
                      if s is not None and s > steps[0] and (jump is None or s < jump))
    at_init = sorted(v for v, s in emergence["readable"].items() if s is not None and s == steps[0])
    probe = c.probes.get(c.impossible) if c.impossible is not None else None
    extra: dict[str, Any] = {}
    if c.candidates:
        # a checkpoint counts only where one candidate's score CI is clear of every other's
        clear = [(steps[i], lead) for i in range(len(steps)) for lead in c.candidates
                 if all(c.candidates[lead].lo[i] > o.hi[i] for n, o in c.candidates.items() if n != lead)]
        extra = {"clear_checkpoints": len(clear),
                 "leader_changes": leader_changes([s for s, _ in clear], [n for _, n in clear]),
                 "supported_from": {n: emergence_step(steps, [1.0 if s == "supported" else 0.0 for s in o.support],
                                                      0.5) for n, o in c.candidates.items()}}
    return Analysis(
        emergence=emergence, order=order, sentence=sentence, accuracy_jump_step=jump, progress_measures=progress,
        readable_at_init=at_init, impossible=c.impossible, impossible_probed=probe is not None,
        impossible_rejected_step=None if probe is None else first_step(steps, probe, 1 - REJECT, below=True),
        lm=c.lm, end_below_step=first_step(steps, probe or [], LM_EPS, below=True) if c.lm else None, **extra)


def across_seeds(analyses: dict[str, Analysis]) -> dict[str, Any]:
    """Is the emergence order the same in every seed? (JSON-ready)"""
    orders = {seed: a.order["causal"] for seed, a in analyses.items()}
    return {"order_causal": orders, "same_order_in_every_seed": len({repr(o) for o in orders.values()}) == 1,
            "impossible_rejected_step": {seed: a.impossible_rejected_step for seed, a in analyses.items()}}
