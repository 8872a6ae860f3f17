"""Which algorithm? Candidate programs of one task ranked against one model.

A task can be solved by several registered programs with different
intermediate variables (``rasp_programs``: ``miu`` counts I's, ``miu_mean``
averages them, ``miu_u`` counts U's ...). ``rank`` compares one model with
every candidate by the methods of ``compare.pipeline`` (so each candidate's
variables get statuses with CIs), then asks what only several candidates can
ask: where two candidates predict *different* outputs for an intervention,
which one does the model follow?

* **Algorithmic variables.** A candidate's score counts its variables that
  are neither the task's output (every candidate has it) nor position-wise
  (on the rows, a function of the current token and position alone: every
  model has those in its embedding, so they tell no algorithms apart), and
  that enough test pairs tell apart from copying the output
  (``MIN_DISTINGUISHING``; else "not identifiable from the output here").
* **Pairs.** Subspaces are fitted and chosen on same-position pairs only
  (``compare.pipeline.prepare``), so no candidate's cross-position
  counterfactuals steer them; half the *test* pairs take the source from
  another position, where a count and a fraction of the prefix disagree.
* **Score**: for each algorithmic variable, its null-corrected IIA on its
  *distinguishing* test pairs: IIA minus the larger chance level, "copy
  source" or "no change" (by the program both are 0 on those pairs; by the
  model's own unpatched outputs they need not be: an untrained network that
  always says False hits every counterfactual False with no swap),
  averaged within each *counterpart group* of the candidate's
  variables (variables that determine each other at every position count
  once), then over the groups; a 95% CI resampling base and source strings.
  A variable without a causal subspace anywhere scores 0 on its pairs.
  ``copy_score_all_pairs`` is what a swap that only copies the source's
  output would have scored on all test pairs (the score before distinguishing
  pairs).
* **Counterparts across candidates.** Variable ``v`` of candidate A and ``w``
  of candidate B are counterparts when, on ``v``'s live rows, each
  determines the other at every position (``count_I`` and ``frac_I``;
  ``count_I`` and ``count_U`` once the M rule holds). B then predicts the
  outcome of a swap of ``v`` as the swap of ``w`` with the source's value of
  ``w``.
* **Head to head**: on the test pairs of ``v`` whose source is a live row of
  ``v`` (where the counterparts correspond) and where A's counterfactual (via
  ``v``) and B's (via ``w``) are different outputs, the model's output after
  the swap follows A, B or neither. An output the swap left unchanged
  follows the candidate that predicts no change only when the swap is shown
  to be *effective*: on ``v``'s same-position distinguishing pairs, where A
  and B predict the same change, it moves the output as predicted (IIA lower
  bound at least ``IIA_OK`` on at least ``MIN_PAIRS`` pairs). A swap not
  shown to be effective might change nothing at all, so with it only a
  changed output follows anyone. (With a one-position verdict, one of two
  different predictions is always "no change": without the gate the duel
  would only count the candidate predicting a change, and a compiled count
  lost to the fraction.) ``HeadToHead`` gives both shares and their
  difference with a bootstrap CI; a CI clear of 0 names a winner.
* **Support** (from CI bounds): *supported* when the score's lower bound is at
  least ``IIA_OK`` and no rival beats it head to head; *not supported* when
  the upper bound is below ``IIA_OK`` or a rival beats it; else *undecided*.
* Two candidates are **told apart** when one wins head to head, or when the
  CI of the difference of their scores (base and source strings resampled
  for both at once) excludes 0; otherwise the report says the data cannot
  tell them apart. Candidates are ordered by how many others are told apart
  from them in their favour, then by score; untestable candidates last.

Shapes: P pairs, T positions.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
from typing import Any, Callable

import numpy as np
import torch

from compare.activations import Dataset, after_attn, resid_hooks
from compare.interventions import Pairs, agrees, target_row
from compare.outputs import OutputReadout
from compare.locate import Swap
from compare.context import Prepared
from compare.heads import WRITES
from compare.parallel import fork_map
from compare.pipeline import measure
from compare.results import IIA_OK, MIN_DISTINGUISHING, Comparison, Head, KeyAttention, Status
from compare.stats import Estimate, Stat, bootstrap
from learned.model import ModelConfig, Transformer
from rasp_programs.errors import ToolkitError

MIN_PAIRS = 20   # fewer distinguishing pairs than this cannot tell two candidates apart


class Support(enum.Enum):
    SUPPORTED = "supported"
    UNDECIDED = "undecided"
    NOT_SUPPORTED = "not supported"
    NOT_TESTABLE = "not testable"


@dataclasses.dataclass
class VariableScore:
    """One algorithmic variable of a candidate in the model.

    Attributes:
        iia_same, iia_cross, iia: test IIA on the distinguishing same-position pairs, cross-position pairs,
            and both.
        counterparts: rival candidate -> its variable in one-to-one correspondence at every position.
        heads: the model's heads that write it (its readout drops by >= ``WRITES`` when mean-ablated).
        group: the counterpart group within the candidate (variables that determine each other share one).
        follows_copy: share of the distinguishing pairs on which the model's output was the source's own.
    """

    name: str
    status: Status
    hook: str | None
    subspace: str | None
    iia_same: Estimate
    iia_cross: Estimate
    iia: Estimate
    counterparts: dict[str, str]
    heads: list[Head]
    group: int = 0
    follows_copy: Estimate = Estimate.empty()


@dataclasses.dataclass
class CandidateResult:
    """One candidate against the model. ``copy_score_all_pairs``: what copying the source's output would have
    scored with IIA on all test pairs (on the distinguishing pairs the score uses, it scores 0)."""

    program: str
    description: str
    shape: dict[str, int]
    score: Estimate
    support: Support
    variables: list[VariableScore]
    left_out: dict[str, str]            # variable -> why it is not in the score
    edges: list[list[str]]              # [parent, child] of the program's computation graph
    comparison: Comparison
    copy_score_all_pairs: float = float("nan")

    def variable(self, name: str) -> VariableScore | None:
        return next((v for v in self.variables if v.name == name), None)


@dataclasses.dataclass
class HeadToHead:
    """Candidates ``a`` and ``b`` on the pairs where they predict different outputs.

    Attributes:
        n: distinguishing pairs.
        a_follows, b_follows: share of them on which the model's output is ``a``'s (``b``'s) prediction.
        diff: ``a_follows - b_follows`` with its CI.
        winner: the candidate the CI favours; ``None``: not told apart by these pairs.
        via: the counterpart variables the pairs came from (``count_I ~ frac_I``).
        score_diff: ``a``'s score minus ``b``'s, with a CI from resampling base strings for both at once.
    """

    a: str
    b: str
    n: int
    a_follows: Estimate
    b_follows: Estimate
    diff: Estimate
    winner: str | None
    via: list[str]
    score_diff: Estimate = Estimate.empty()


@dataclasses.dataclass
class Ranking:
    """Every candidate against one model, best first."""

    order: list[str]
    candidates: dict[str, CandidateResult]
    head_to_head: list[HeadToHead]
    not_told_apart: list[list[str]]     # pairs of candidates the data cannot tell apart

    @property
    def attention(self) -> KeyAttention | None:
        """What the model's heads look at (the same in every candidate's comparison)."""
        return self.candidates[self.order[0]].comparison.attention

    def told_apart(self, a: str, b: str) -> bool:
        return sorted([a, b]) not in [sorted(p) for p in self.not_told_apart]


@dataclasses.dataclass
class _Tested:
    """Distinguishing test pairs of one variable and the model's outputs with its swap (``None``: no swap found)."""

    pairs: Pairs
    cross: np.ndarray      # [P] bool: source from another position
    outputs: torch.Tensor | None  # [P, T]
    groups: np.ndarray     # [P] base input string
    changed: np.ndarray    # [P] bool: the swap changed the model's output at a scored position
    sources: np.ndarray    # [P] source input string
    weight: float = 1.0    # 1 / the size of the variable's counterpart group in its candidate
    chance: float = 0.0    # the larger chance level (copy source, no change) on these pairs


def positionwise(data: Dataset, name: str) -> bool:
    """Whether, on the rows, the variable is a function of the current token and position alone."""
    tokens = data.ids[torch.from_numpy(data.row_input), torch.from_numpy(data.row_pos)].numpy()
    key = tokens.astype(np.int64) * (data.ids.shape[1] + 1) + data.row_pos
    values = np.unique(np.asarray([str(x) for x in data.values[name]]), return_inverse=True)[1]
    return len(np.unique(np.stack([key, values], 1), axis=0)) == len(np.unique(key))


def _one_to_one(a: list, b: list, pos: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` determine each other at every position (and ``b`` is not constant)."""
    x = np.unique([str(v) for v in a], return_inverse=True)[1]
    y = np.unique([str(v) for v in b], return_inverse=True)[1]
    if len(np.unique(y)) < 2:
        return False
    for p in np.unique(pos):
        at = pos == p
        pairs = len(np.unique(np.stack([x[at], y[at]], 1), axis=0))
        if pairs != len(np.unique(x[at])) or pairs != len(np.unique(y[at])):
            return False
    return True


class _Runs:
    """Cached causal-model runs of one candidate on the shared inputs."""

    def __init__(self, prep: Prepared):
        self.spec, self.data = prep.spec, prep.data
        self._cache: dict[int, dict[str, list]] = {}

    def value(self, var: str, row: int) -> Any:
        i = int(self.data.row_input[row])
        if i not in self._cache:
            self._cache[i] = self.spec.run(self.data.inputs[i])
        return self._cache[i][var][int(self.data.row_pos[row]) - 1]

    def values(self, var: str, rows: np.ndarray) -> list:
        return [self.value(var, int(r)) for r in rows]


def _algorithmic(prep: Prepared) -> tuple[list[str], dict[str, str]]:
    """The candidate's algorithmic variables, and why each other one is left out of the score."""
    data, keep, left = prep.data, [], {}
    for v in data.variables:
        if v.name == prep.spec.output:
            left[v.name] = "the task's output (every candidate has it)"
        elif positionwise(data, v.name):
            left[v.name] = "position-wise (a function of the current token and position: in every embedding)"
        elif not data.live[v.name].any() or not len(prep.pairs[v.name]["test"]):
            left[v.name] = "not testable (no live rows or no effective test pairs)"
        elif prep.pairs[v.name]["test"].distinguishing.sum() < MIN_DISTINGUISHING:
            left[v.name] = (f"not identifiable from the output here (fewer than {MIN_DISTINGUISHING} test pairs "
                            "tell it from copying the output)")
        else:
            keep.append(v.name)
    return keep, left


def _test(prep: Prepared, swap: Swap | None, name: str, weight: float = 1.0, everything: bool = False,
          chance: float = 0.0) -> _Tested:
    """The distinguishing (``everything``: all) test pairs of ``name`` (same and cross position) and the model's
    outputs with its swap."""
    every = prep.pairs[name]["test"]
    dist = np.ones(len(every), dtype=bool) if everything else every.distinguishing
    pairs = every.subset(dist)
    rows = torch.from_numpy(np.flatnonzero(dist))
    outputs = swap.test_outputs[rows] if swap is not None and len(pairs) else None
    changed = (~agrees(outputs, swap.own_outputs[rows], like=pairs.target) if outputs is not None
               else np.zeros(len(pairs), dtype=bool))
    return _Tested(pairs, pairs.cross, outputs, prep.data.group[pairs.base], changed, prep.data.group[pairs.source],
                   weight, max([chance, *pairs.chance()]) if len(pairs) else 0.0)


def _groups(prep: Prepared, names: list[str]) -> dict[str, int]:
    """Counterpart groups within one candidate: variables that determine each other at every position on the
    first one's live rows share a group (so a candidate does not win by having more variables)."""
    data, group = prep.data, {}
    for i, v in enumerate(names):
        rows = np.flatnonzero(data.live[v])
        mine = [data.values[v][r] for r in rows]
        group[v] = next((group[w] for w in names[:i]
                         if _one_to_one(mine, [data.values[w][r] for r in rows], data.row_pos[rows])), i)
    return group


def _hits(t: _Tested, target: torch.Tensor | None = None) -> np.ndarray:
    target = t.pairs.target if target is None else target
    if t.outputs is None:
        return np.zeros(len(t.pairs), dtype=bool)
    return agrees(t.outputs, target)


def _columns(tested: dict[str, _Tested]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per pair: (hit - chance) * w_v / n_v and w_v / n_v (``n_v`` the variable's pairs, ``w_v`` one over its
    counterpart group's size), the base and the source string: the score is the ratio of their totals,
    the mean over counterpart groups of null-corrected IIA."""
    parts = [((_hits(t).astype(float) - t.chance) * t.weight / len(t.pairs),
              np.full(len(t.pairs), t.weight / len(t.pairs)), t.groups, t.sources)
             for t in tested.values() if len(t.pairs)]
    if not parts:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return tuple(np.concatenate(x) for x in zip(*parts))  # type: ignore[return-value]


def _score(tested: dict[str, _Tested], seed: int) -> Estimate:
    """Mean over counterpart groups of null-corrected IIA on distinguishing pairs, with a CI from resampling
    base and source strings (all variables at once)."""
    hw, w, groups, sources = _columns(tested)
    if not len(w):
        return Estimate.empty()
    return bootstrap(hw / w, groups, seed, stat=Stat(np.stack([hw, w], 1), lambda t: t[..., 0] / t[..., 1]),
                     groups2=sources)


def _copy_score(prep: Prepared, names: list[str]) -> float:
    """What a swap that copies the source's output would score as the mean over variables of IIA on all test
    pairs (the score before distinguishing pairs): the mean of each variable's "copy source" chance level."""
    levels = [prep.pairs[v]["test"].chance()[0] for v in names if len(prep.pairs[v]["test"])]
    return float(np.mean(levels)) if levels else float("nan")


def _score_difference(a: dict[str, _Tested], b: dict[str, _Tested], seed: int) -> Estimate:
    """Score of ``a`` minus score of ``b``, resampling strings jointly (the candidates share the inputs)."""
    ha, wa, ga, sa = _columns(a)
    hb, wb, gb, sb = _columns(b)
    if not len(wa) or not len(wb):
        return Estimate.empty()
    cols = np.zeros((len(wa) + len(wb), 4))
    cols[:len(wa), 0], cols[:len(wa), 1], cols[len(wa):, 2], cols[len(wa):, 3] = ha, wa, hb, wb
    stat = Stat(cols, lambda t: t[..., 0] / t[..., 1] - t[..., 2] / t[..., 3])
    return bootstrap(np.zeros(len(cols)), np.concatenate([ga, gb]), seed, stat=stat,
                     groups2=np.concatenate([sa, sb]))


def rank(preps: dict[str, Prepared], model: Transformer, output: OutputReadout | None = None,
         log: Callable[[str], None] = lambda s: None, workers: int | None = None) -> Ranking:
    """Compares ``model`` with every candidate (``preps``: program name -> its ``Prepared``) and ranks them.

    Every candidate must solve the same task on the same sampled inputs (``prepare`` with one config).
    The candidates are measured side by side in forked processes (``compare.parallel``; ``workers``:
    default every CPU), with the same seeded results as one after another.
    """
    names = list(preps)
    first = preps[names[0]]
    for n in names[1:]:
        if preps[n].spec.task is not first.spec.task:
            raise ToolkitError(f"candidate '{n}' solves task '{preps[n].spec.task.name}', "
                               f"not '{first.spec.task.name}'")
        if preps[n].data.inputs != first.data.inputs:
            raise ToolkitError(f"candidate '{n}' was prepared on other inputs than '{names[0]}'")
    seed = first.config.seed
    runs = {n: _Runs(p) for n, p in preps.items()}
    comps, tested, every, left, algo = {}, {}, {}, {}, {}
    log(f"  measuring candidates {', '.join(names)} ...")
    measured = fork_map([lambda prep=prep: measure(prep, model, output)[0::2] for prep in preps.values()], workers)
    for (n, prep), (comps[n], swaps) in zip(preps.items(), measured):
        algo[n], left[n] = _algorithmic(prep)
        group = _groups(prep, algo[n])
        size = {g: list(group.values()).count(g) for g in group.values()}
        ivs = {v: comps[n].variables[v].intervention for v in algo[n]}
        tested[n] = {v: _test(prep, swaps.get(v), v, 1.0 / size[group[v]],
                              chance=ivs[v].model_chance if ivs[v] is not None else 0.0) for v in algo[n]}
        every[n] = {v: _test(prep, swaps.get(v), v, everything=True) for v in algo[n]}
    counterparts = {(a, v): {b: w for b in names if b != a
                             for w in [_counterpart(preps[a], runs[b], algo[b], v)] if w}
                    for a in names for v in algo[a]}
    duels = [dataclasses.replace(_duel(a, b, preps, runs, every, tested, counterparts, seed),
                                 score_diff=_score_difference(tested[a], tested[b], seed))
             for a, b in itertools.combinations(names, 2)]
    beaten = {d.b if d.winner == d.a else d.a for d in duels if d.winner}
    results = {}
    for n, prep in preps.items():
        score = _score(tested[n], seed)
        group = _groups(prep, algo[n])
        results[n] = CandidateResult(
            program=n, description=prep.spec.description, shape=_shape(prep), score=score,
            support=_support(score, n in beaten),
            variables=[_variable_score(comps[n], v, tested[n][v], counterparts[(n, v)], seed, model.cfg, group[v])
                       for v in algo[n]],
            left_out=left[n],
            edges=[[p, v.name] for v in prep.spec.variables for p in prep.spec.graph.predecessors(v.name)],
            comparison=comps[n], copy_score_all_pairs=_copy_score(prep, algo[n]))
    order = sorted(names, key=lambda n: (results[n].support is Support.NOT_TESTABLE, len(_losses(n, duels)),
                                         -_value(results[n].score), names.index(n)))
    not_apart = []
    for a, b in itertools.combinations(order, 2):
        duel = next(d for d in duels if {d.a, d.b} == {a, b})
        gap = duel.score_diff
        if duel.winner is None and not (gap.defined and (gap.lo > 0 or gap.hi < 0)):
            not_apart.append([a, b])
    return Ranking(order, results, duels, not_apart)


def _losses(name: str, duels: list[HeadToHead]) -> list[str]:
    """The candidates ``name`` is told apart from in their favour: beaten head to head, or, with no head-to-head
    winner, a score difference whose CI excludes 0 against it."""
    out = []
    for d in duels:
        if name not in (d.a, d.b):
            continue
        other = d.b if d.a == name else d.a
        gap = d.score_diff if d.a == name else dataclasses.replace(
            d.score_diff, value=-d.score_diff.value, lo=-d.score_diff.hi, hi=-d.score_diff.lo)
        if d.winner == other or (d.winner is None and gap.defined and gap.hi < 0):
            out.append(other)
    return out


def _value(e: Estimate) -> float:
    return e.value if e.defined else -1.0


def _shape(prep: Prepared) -> dict[str, int]:
    c = prep.compiled.model.cfg
    return {"n_layers": c.n_layers, "n_heads": c.n_heads, "d_model": c.d_model, "d_mlp": c.d_mlp}


def _support(score: Estimate, beaten: bool) -> Support:
    if not score.defined:
        return Support.NOT_TESTABLE
    if beaten or score.hi < IIA_OK:
        return Support.NOT_SUPPORTED
    return Support.SUPPORTED if score.lo >= IIA_OK else Support.UNDECIDED


def _counterpart(prep: Prepared, rival: _Runs, rival_algo: list[str], name: str) -> str | None:
    """The rival's first algorithmic variable in one-to-one correspondence with ``name`` on its live rows."""
    data = prep.data
    rows = np.flatnonzero(data.live[name])
    mine = [data.values[name][r] for r in rows]
    for w in rival_algo:
        if _one_to_one(mine, rival.values(w, rows), data.row_pos[rows]):
            return w
    return None


def _effective(t: _Tested, seed: int) -> bool:
    """The swap moves the output as predicted on the variable's same-position distinguishing pairs (where a
    variable and its counterparts predict the same change): IIA lower bound at least ``IIA_OK``, on at least
    ``MIN_PAIRS`` pairs."""
    same = ~t.cross
    if t.outputs is None or same.sum() < MIN_PAIRS:
        return False
    return bootstrap(_hits(t)[same].astype(float), t.groups[same], seed, groups2=t.sources[same]).lo >= IIA_OK


def _faithful(t: _Tested, seed: int) -> bool:
    """The swap sets the variable itself, not the output it feeds: on the variable's distinguishing pairs
    (where its counterfactual is neither the source's own output nor no change; at any position) IIA lower
    bound at least ``IIA_OK``, on at least ``MIN_PAIRS`` pairs."""
    if t.outputs is None or len(t.pairs) < MIN_PAIRS:
        return False
    return bootstrap(_hits(t).astype(float), t.groups, seed, groups2=t.sources).lo >= IIA_OK


def _deciding(t: _Tested, theirs: torch.Tensor, scored: _Tested, live: np.ndarray, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Of one variable's test pairs ``t`` (``theirs`` ``[P, T]``: the other candidate's predictions; ``scored``:
    the variable's distinguishing pairs; ``live`` ``[P]``: the source is on a live row): ``[P]`` the pairs that
    tell the two candidates apart, and ``[P]`` those on which the model's output counts for either."""
    # the counterparts correspond on v's live rows only: a source elsewhere (a string whose M rule is
    # already broken, where count_bad_M and count_M part ways) says nothing about which one the model holds
    differ = ~agrees(theirs, t.pairs.target) & live
    # A prediction that is the source's own output is met by any swap that carries the output: such a pair
    # counts only where the swap is shown to set the variable itself (``_faithful``). Without it a variable
    # that fixes the whole state at a position (a fraction of a two-letter alphabet) won every pair where a
    # model copied the source's verdict.
    if not _faithful(scored, seed):
        differ &= ~(agrees(t.pairs.copy, t.pairs.target) | agrees(t.pairs.copy, theirs, like=t.pairs.target))
    # an unchanged output follows the candidate predicting no change only if the swap is effective: a swap
    # that changes nothing would otherwise "follow" whichever candidate predicts the model's own output
    return differ, t.changed | _effective(scored, seed)


def _duel(a: str, b: str, preps: dict[str, Prepared], runs: dict[str, _Runs], tested: dict, scored: dict,
          counterparts: dict, seed: int) -> HeadToHead:
    """Which of ``a`` and ``b`` the model follows on the pairs where their counterfactuals differ (``tested``:
    every test pair of each variable; ``scored``: its distinguishing ones, which say whether the swap is
    effective)."""
    follow_a, follow_b, groups, sources, via = [], [], [], [], []
    for mine, other in ((a, b), (b, a)):
        for v, t in tested[mine].items():
            w = counterparts[(mine, v)].get(other)
            if w is None or not len(t.pairs):
                continue
            prep = preps[mine]
            theirs = []
            for base, source in zip(t.pairs.base, t.pairs.source):
                row = target_row(preps[other].spec, prep.data, int(base), w, runs[other].value(w, int(source)),
                                 effective=False)
                theirs.append(row if row is not None else [-1] * prep.data.ids.shape[1])
            theirs_t = torch.tensor(theirs, dtype=torch.long)
            differ, counts = _deciding(t, theirs_t, scored[mine][v], prep.data.live[v][t.pairs.source], seed)
            if not differ.any():
                continue
            label = f"{v} ~ {w}" if mine == a else f"{w} ~ {v}"
            via += [] if label in via else [label]
            h_mine, h_theirs = (_hits(t) & counts)[differ], (_hits(t, theirs_t) & counts)[differ]
            follow_a.append(h_mine if mine == a else h_theirs)
            follow_b.append(h_theirs if mine == a else h_mine)
            groups.append(t.groups[differ])
            sources.append(t.sources[differ])
    if not follow_a:
        empty = Estimate.empty()
        return HeadToHead(a, b, 0, empty, empty, empty, None, [])
    fa, fb = (np.concatenate(x).astype(float) for x in (follow_a, follow_b))
    g, src = np.concatenate(groups), np.concatenate(sources)
    diff = bootstrap(fa - fb, g, seed, groups2=src)
    winner = None
    if len(fa) >= MIN_PAIRS and diff.defined:
        winner = a if diff.lo > 0 else b if diff.hi < 0 else None
    return HeadToHead(a, b, len(fa), bootstrap(fa, g, seed, groups2=src), bootstrap(fb, g, seed, groups2=src), diff,
                      winner, via)


def _variable_score(comp: Comparison, name: str, t: _Tested, counterparts: dict[str, str], seed: int,
                    cfg: ModelConfig, group: int) -> VariableScore:
    v = comp.variables[name]
    hits = _hits(t).astype(float)
    # heads whose output reaches the hook where the variable lives and whose ablation drops its readout
    hooks = resid_hooks(cfg)
    reach = hooks.index(v.found_hook) if v.found_hook else -1
    heads = [h for h, writes in comp.heads.learned_writes.items()
             if writes.get(name, 0.0) >= WRITES and hooks.index(after_attn(cfg, h.layer)) <= reach]
    iv = v.intervention
    return VariableScore(
        name=name, status=v.status, hook=v.found_hook, subspace=iv.subspace if iv else None,
        iia_same=bootstrap(hits[~t.cross], t.groups[~t.cross], seed, groups2=t.sources[~t.cross]),
        iia_cross=bootstrap(hits[t.cross], t.groups[t.cross], seed, groups2=t.sources[t.cross]),
        iia=bootstrap(hits, t.groups, seed, groups2=t.sources), counterparts=counterparts, heads=heads,
        group=group, follows_copy=iv.follows_copy if iv else Estimate.empty())
