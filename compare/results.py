"""The result schema of one comparison: typed records, JSON only at the edge.

``compare_models`` returns a ``Comparison``; ``report``, ``figures``,
``controls`` and ``dynamics`` read its attributes. ``compare.json_edge``
converts any record here to and from plain JSON, so ``compare.json`` is the
complete record and a report can be rebuilt from it alone.

The status of a compiled variable in the learned model (``Status``) is
decided in one place, ``compare.status.decide_status``, from
confidence-interval bounds, and the verdict in ``compare.status.summarise``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import NamedTuple

from compare.config import CompareConfig
from compare.stats import Estimate, Tri

READ_OK = 0.95    # readable: accuracy (or R²) on live rows at or above this, on the CI's lower bound
IIA_OK = 0.9      # causal: interchange-intervention accuracy at or above this, on the CI's lower bound
MARGIN = 0.05     # readable *beyond an untrained network*: lower bound >= untrained mean + MARGIN
MATCH_OK = 0.8    # a head matches at pattern agreement >= MATCH_OK (CI lower bound)


MIN_DISTINGUISHING = 20  # fewer distinguishing test pairs than this: not identifiable from the output here


class Head(NamedTuple):
    """One attention head, ``Head(layer, head)``; written ``L{layer}H{head}`` (TransformerLens's ``L1H0``)."""

    layer: int
    head: int

    def __str__(self) -> str:
        return f"L{self.layer}H{self.head}"

    @classmethod
    def parse(cls, text: str) -> "Head":
        """``"L1H0"`` -> ``Head(1, 0)`` (reading ``compare.json`` only: code passes ``Head`` values)."""
        layer, _, head = text.removeprefix("L").partition("H")
        return cls(int(layer), int(head))


class Status(enum.Enum):
    """What the evidence says about one compiled variable in the learned model."""

    COMPUTED = "computed"                       # causal, and its full value readable inside the causal subspace
    COMPUTED_UP_TO = "computed up to its output partition"  # causal; only the values the output tells apart
    CAUSAL_PARTIAL = "causal, not readable"     # causal, but not readable inside its subspace (no coarser partition)
    UNDECIDED = "undecided"                     # a CI straddles a threshold: more data needed
    NOT_IDENTIFIABLE = "not identifiable from the output here"  # too few pairs tell it from copying the output
    CORRELATIONAL = "correlational only"        # readable beyond an untrained network, not causal
    UNTRAINED_LEVEL = "readable as in an untrained network"  # readable, but so it is with random weights
    NOT_REPRESENTED = "not represented"         # neither readable nor causal
    NOT_TESTABLE = "not testable"               # no live rows or no effective intervention pairs

    @property
    def causal(self) -> bool:
        return self in (Status.COMPUTED, Status.COMPUTED_UP_TO, Status.CAUSAL_PARTIAL)

    @classmethod
    def _missing_(cls, value: object) -> "Status | None":
        return {"causal, not fully readable": cls.CAUSAL_PARTIAL}.get(value)  # compare.json before the rename


@dataclasses.dataclass
class HookReadout:
    """Cross-validated readout of one variable at one residual hook (folds grouped by input string).

    Attributes:
        hook: residual hook name.
        all, live: accuracy (categorical) or R² (numerical) on all rows / on rows where the variable is live.
        majority_all, majority_live: majority-class accuracy on the same rows (0 for R²).
        untrained_live: mean live score over untrained networks of the same shape (``None``: not run).
        untrained_sd: their standard deviation.
    """

    hook: str
    all: Estimate
    live: Estimate
    majority_all: float
    majority_live: float
    untrained_live: float | None = None
    untrained_sd: float | None = None


@dataclasses.dataclass
class HookTrial:
    """One step of the search for where a variable lives: validation IIA at one hook.

    The IIAs are on the validation pairs that decide (the distinguishing ones, for a variable other than
    the output), and ``readable`` comes from probes fitted and scored without the test fold.
    """

    hook: str
    readable: bool           # live readout (point estimate, fit and validation folds only) >= READ_OK
    val_pattern: float       # validation IIA of the pattern subspace (nan: no subspace there)
    val_das: float | None    # validation IIA of DAS at the pattern's dimension (None: not tried)


@dataclasses.dataclass
class Intervention:
    """The causal test at the chosen hook, scored on held-out pairs.

    Attributes:
        hook: where the subspace is swapped.
        subspace: ``"pattern"`` (the variable's patterns, leaving its siblings' alone),
            ``"pattern|ancestors"`` (leaving its ancestors' alone too) or ``"das"`` (learned rotation).
        dim: its dimension.
        val_iia: IIA on validation pairs (what the choice was made on).
        test: IIA on test pairs (bases, sources and positions unseen in fitting and selection).
        null_mean, null_p95: IIA of random subspaces of the same dimension on the test pairs (nan when
            the subspace is all the layers wrote at the hook: there is then no other subspace to compare).
        embed_overlap: share of the residual directions the chosen swap writes that lie in the span
            of the token and position embeddings (the direct embedding itself is never swapped).
        das_sweep: DAS dimension -> validation IIA.
        per_position: model position -> test IIA.
        per_value: the value being set (source value) -> test IIA.
        n_fit, n_val, n_test: effective pairs in each split.
        per_kind: ``"same position"`` / ``"other position"`` (the source's) -> test IIA.
        decides_on: ``"distinguishing"`` (the pairs on which the variable's counterfactual differs from both
            "copy source" and "no change"; every variable but the output) or ``"all"`` (the output).
        distinguishing: test IIA on the distinguishing pairs (what the status reads, but for the output).
        chance_copy, chance_no_change: IIA of the two trivial hypotheses on all test pairs (on the
            distinguishing ones both are 0 by definition).
        follows_copy: on the distinguishing test pairs, the share where the model's output after the swap is
            the source's own output: a swap that carries only the output scores 1 here.
        restarts: the test IIA (on the deciding pairs) of every DAS restart of the chosen dimension; their
            spread is folded into ``distinguishing`` / ``test`` 's interval.
        subspace_readout: the variable's full value read (cross-validated probe, live rows) from the
            activations projected onto the chosen subspace.
        subspace_untrained: the same readout in untrained networks' subspace of the same kind and size.
        read_in: the subspace read: the variable's pattern subspace at the hook when its swap is causal on
            validation pairs, else the chosen one (``"pattern, dim 9"``).
        model_chance_copy, model_chance_no_change: on the deciding pairs, how often the *model's* own output on
            the source (at the base position), or on the base unpatched, already equals the counterfactual: a
            wrong or constant model hits some counterfactuals with no swap at all. ``null_corrected`` subtracts
            the larger.
    CIs resample base and source strings together.
    """

    hook: str
    subspace: str
    dim: int
    val_iia: float
    test: Estimate
    null_mean: float
    null_p95: float
    embed_overlap: float
    das_sweep: dict[str, float]
    per_position: dict[str, Estimate]
    per_value: dict[str, Estimate]
    n_fit: int
    n_val: int
    n_test: int
    per_kind: dict[str, Estimate] = dataclasses.field(default_factory=dict)
    decides_on: str = "all"
    distinguishing: Estimate = Estimate.empty()
    chance_copy: float = math.nan
    chance_no_change: float = math.nan
    follows_copy: Estimate = Estimate.empty()
    restarts: list[float] = dataclasses.field(default_factory=list)
    subspace_readout: Estimate = Estimate.empty()
    subspace_untrained: float | None = None
    read_in: str = ""
    model_chance_copy: float = math.nan
    model_chance_no_change: float = math.nan

    @property
    def model_chance(self) -> float:
        """The larger of the model's two chance levels on the deciding pairs (0 when undefined)."""
        finite = [x for x in (self.model_chance_copy, self.model_chance_no_change) if math.isfinite(x)]
        return max(finite) if finite else 0.0

    @property
    def deciding(self) -> Estimate:
        """The test IIA the status is decided on."""
        return self.distinguishing if self.decides_on == "distinguishing" else self.test

    @property
    def n_distinguishing(self) -> int:
        return self.distinguishing.n


@dataclasses.dataclass
class Coarsening:
    """A coarser function of an integer variable (``count_I mod 3``), read out at the chosen hook."""

    name: str
    hook: str
    live: Estimate
    majority_live: float


@dataclasses.dataclass
class VariableResult:
    """Everything measured about one compiled variable in one model."""

    name: str
    encoding: str
    op: str
    classes: list[str]
    compiled_hook: str
    compiled_dim: int
    live_share: float
    readouts: list[HookReadout]
    search: list[HookTrial]
    output_ready_hook: str | None
    found_hook: str | None
    offset: int | None
    readout: HookReadout | None
    control_task: Estimate | None
    intervention: Intervention | None
    readable: Tri
    beyond_untrained: Tri
    causal: Tri
    status: Status
    coarsenings: list[Coarsening] = dataclasses.field(default_factory=list)
    reference_hook: str | None = None          # where the same method finds it in the compiled model
    compiled_live: dict[str, float] = dataclasses.field(default_factory=dict)  # compiled live readout per hook
    compiled_first_hook: str | None = None     # after the first compiled block that computes it
    partition: list[list[str]] = dataclasses.field(default_factory=list)  # values the output tells apart
    partition_text: str = ""                    # ``{0 mod 3} vs {1, 2 mod 3}``

    def readout_at(self, hook: str) -> HookReadout:
        return next(r for r in self.readouts if r.hook == hook)

    @property
    def iia(self) -> Estimate:
        """The test IIA the status was decided on (distinguishing pairs, but for the output)."""
        return self.intervention.deciding if self.intervention else Estimate.empty()

    @property
    def where(self) -> str:
        """``2 sublayers earlier than compiled`` and the like (relative to the compiled block map)."""
        if self.offset is None:
            return "not found"
        if self.offset == 0:
            return "at the compiled hook"
        n = abs(self.offset)
        return f"{n} sublayer{'s' if n > 1 else ''} {'earlier' if self.offset < 0 else 'later'} than compiled"


@dataclasses.dataclass
class HeadMatch:
    """One compiled head and the learned head matched to it."""

    compiled: Head
    learned: Head
    sop: str
    op: str
    agreement: Estimate
    uniform: float
    is_match: bool
    compiled_writes: dict[str, float]
    learned_writes: dict[str, float]


@dataclasses.dataclass
class Heads:
    compiled_names: list[Head]
    learned_names: list[Head]
    similarity: list[list[float]]   # [compiled head, learned head] pattern agreement
    empty_compiled: list[Head]
    matches: list[HeadMatch]
    unmatched_learned: list[Head]
    learned_writes: dict[Head, dict[str, float]]

    @property
    def matched(self) -> int:
        return sum(m.is_match for m in self.matches)


@dataclasses.dataclass
class Metrics:
    """Task performance on the ablation rows: balanced accuracy and the correct class's logit margin."""

    balanced_accuracy: Estimate
    logit_diff: Estimate
    accuracy: float


@dataclasses.dataclass
class AblationResult:
    """One ablation (a head or a group of heads, in one mode) and its effect."""

    heads: list[Head]
    mode: str           # "zero" | "mean" | "resample"
    metrics: Metrics
    drop: float         # clean balanced accuracy minus ablated


@dataclasses.dataclass
class Ablations:
    clean: Metrics
    chance: float       # balanced accuracy of a constant answer
    per_head: list[AblationResult]
    groups: list[AblationResult]   # "matched" / "unmatched" heads, every mode


@dataclasses.dataclass
class Summary:
    verdict: str
    computed: list[str]
    causal_partial: list[str]
    undecided: list[str]
    correlational: list[str]
    untrained_level: list[str]
    not_represented: list[str]
    not_testable: list[str]
    heads_matched: int
    heads_compared: int
    computed_up_to: list[str] = dataclasses.field(default_factory=list)
    not_identifiable: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class KeyAttention:
    """What each head of the compared model looks at: attention mass per key token type, by query position.

    Attributes:
        tokens: the key token types (BOS included, pads never attended to).
        positions: query positions (model positions; BOS is 0).
        heads: head name -> ``[position][token]`` mean mass over the rows at that query position.
        uniform: ``[position][token]`` the same for a head attending uniformly to every allowed key
            (the mass a token type gets from its frequency alone).
        overall: head name -> ``[token]`` mean mass over all rows.
        uniform_overall: ``[token]`` the uniform head's mean mass over all rows.
    """

    tokens: list[str]
    positions: list[int]
    heads: dict[Head, list[list[float]]]
    uniform: list[list[float]]
    overall: dict[Head, list[float]]
    uniform_overall: list[float]


@dataclasses.dataclass
class DataSummary:
    """The rows a comparison ran on."""

    n_inputs: int
    n_strings: int
    exhaustive: bool        # every input up to ``max_len`` (else a seeded sample of the training mix)
    n_rows: int
    causal: bool            # one row per distinct prefix (else per input and position)
    max_len: int
    folds: int
    live_share: dict[str, float]   # variable -> share of rows where it is live


@dataclasses.dataclass
class TaskAccuracy:
    """Task accuracy of both models on the rows, and how the compared model's output is read."""

    compiled: float
    model: float
    readout: str


@dataclasses.dataclass
class Cka:
    """Linear CKA of every compiled hook (rows) with every model hook (columns)."""

    hooks: list[str]
    model_hooks: list[str]
    matrix: list[list[float]]
    matched_positions: list[float]   # the diagonal, when both models have the same hooks (else empty)


@dataclasses.dataclass
class MapDecoding:
    """One map learned -> compiled at one hook, fit on other folds: R² and each variable decoded through it."""

    r2: float
    variables: dict[str, float]
    fraction_decodable: float


@dataclasses.dataclass
class Maps:
    """``per_hook``: map kind (``lstsq``, ``procrustes``) -> hook -> decoding; empty for another width."""

    per_hook: dict[str, dict[str, MapDecoding]]
    fraction_decodable_one_map: dict[str, float]   # map kind -> at the last hook


@dataclasses.dataclass
class Examples:
    """Attention patterns ``[E][T][T]`` of every head on a few of the longest inputs."""

    inputs: list[str]
    compiled: dict[Head, list]
    learned: dict[Head, list]


@dataclasses.dataclass
class Comparison:
    """The whole comparison of one model against the compiled one."""

    settings: CompareConfig
    data: DataSummary
    task_accuracy: TaskAccuracy
    variables: dict[str, VariableResult]
    heads: Heads
    ablation: Ablations
    cka: Cka
    maps: Maps
    examples: Examples
    summary: Summary
    legal_next: dict[str, list[HookReadout]] = dataclasses.field(default_factory=dict)  # language models only
    attention: KeyAttention | None = None  # the compared model's heads: mass per key token type
    layer_norm: bool = False  # the compared model has pre-LayerNorm (ModelConfig.layer_norm); the report says what changes
