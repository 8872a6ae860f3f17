"""Typed records: what one job wrote (``JobRecord``), with JSON only at the edge.

A job's record is the last thing it writes (atomically), after its artifact
and report; the driver builds every table from these files alone.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from pathlib import Path
from typing import Any

from benchmark.jobs import JobSpec

# Bump when what a job computes changes: records of another version are rerun (their trained models are
# reused when the training config matches), never reused. 2: the head-to-head's effectiveness gate, untrained
# baselines kept per dtype (compare.hypotheses, compare.context). 3: a fractions candidate counts one of two
# classes that split the alphabet (rasp_programs.automaton_fractions); the head-to-head counts a pair whose
# prediction is the source's own output only where the swap is faithful. 4: a reset candidate's last-reset
# attention under an intervention reads only earlier keys and is undefined unless it selects one value
# (rasp_programs.automaton_reset). 5: validation and test pairs move only values a fit pair moves; every
# job of a task is compared on the same inputs and pairs (adapter.COMPARE_SEED). 6: a legal-next verdict needs
# every token of the prefix legal, then END (learned.lm.LegalNext); classifier and LM jobs compare as in 5.
# 7: a pattern swap holds fixed the patterns of variables that vary among sources but not where the swapped
# variable is live (compare.interventions.pattern_swap's ``held``).
VERSION = 7


class JobStatus(enum.Enum):
    OK = "ok"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class Score:
    """A candidate's score (null-corrected IIA on distinguishing pairs) with its 95% CI."""

    value: float
    lo: float
    hi: float

    def fmt(self) -> str:
        if not math.isfinite(self.value):
            return "n/a"
        ci = f" [{self.lo:.2f}, {self.hi:.2f}]" if math.isfinite(self.lo) and math.isfinite(self.hi) else ""
        return f"{self.value:.2f}{ci}"


@dataclasses.dataclass(frozen=True)
class CandidateScore:
    program: str
    construction: str
    score: Score
    support: str  # compare.hypotheses.Support's value: supported, undecided, not supported, not testable


@dataclasses.dataclass(frozen=True)
class Training:
    """The trained model's run: whether the early-stop check reached 100%, where, and the final evaluation."""

    steps: int                     # steps run
    reached_100_step: int | None   # the early stop (None: not reached within the budget)
    sequence_accuracy: float       # exhaustive, every position
    seconds: float


@dataclasses.dataclass(frozen=True)
class JobRecord:
    """What one job did. ``candidates`` are in ranking order (the first is the top-ranked)."""

    spec: JobSpec
    status: JobStatus
    error: str | None = None
    version: int = VERSION
    program: str | None = None            # the candidate whose shape it trained at (or compared first)
    run: str | None = None                # artifact folder
    report: str | None = None             # report folder
    trained: bool = False                 # this execution trained the model
    training: Training | None = None
    candidates: tuple[CandidateScore, ...] = ()
    told_apart: int = 0                   # candidate pairs the data tells apart
    pairs: int = 0                        # candidate pairs
    seconds: float = 0.0

    @property
    def top(self) -> CandidateScore | None:
        return self.candidates[0] if self.candidates else None

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["status"] = self.status.value
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "JobRecord":
        t = d.get("training")
        return cls(spec=JobSpec.from_dict(d["spec"]), status=JobStatus(d["status"]), error=d.get("error"),
                   version=int(d.get("version", 0)), program=d.get("program"), run=d.get("run"),
                   report=d.get("report"), trained=bool(d.get("trained")),
                   training=Training(**t) if t else None,
                   candidates=tuple(CandidateScore(c["program"], c["construction"], Score(**c["score"]),
                                                   c["support"]) for c in d.get("candidates", ())),
                   told_apart=int(d.get("told_apart", 0)), pairs=int(d.get("pairs", 0)),
                   seconds=float(d.get("seconds", 0.0)))


def read_record(path: Path) -> JobRecord | None:
    """The record at ``path``; ``None`` if it is missing or unreadable (the job is then run again)."""
    try:
        return JobRecord.from_json(json.loads(Path(path).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
