"""The one status rule (``decide_status``) and the verdict of a comparison (``summarise``).

Both read only the typed records of ``compare.results`` and its thresholds, and decide from
confidence-interval bounds, never from a point estimate alone.
"""

from __future__ import annotations

import math

from compare.results import (IIA_OK, MARGIN, MIN_DISTINGUISHING, READ_OK, Coarsening, Heads, HookReadout,
                             Intervention, Status, Summary, VariableResult)
from compare.stats import Tri, at_least


def decide_status(readout: HookReadout | None, intervention: Intervention | None,
                  coarsenings: list[Coarsening], testable: bool = True,
                  coarser: bool = False) -> tuple[Tri, Tri, Tri, Status]:
    """The one place a status is decided; returns (readable, beyond_untrained, causal, status).

    * causal: IIA on the deciding test pairs (the *distinguishing* ones for a variable other than the
      output) >= IIA_OK and above the random-subspace null's 95th percentile, both on the CI's lower
      bound (``NO`` when the upper bound is below IIA_OK or the point estimate is within the null). With
      fewer than ``MIN_DISTINGUISHING`` distinguishing pairs the variable is *not identifiable from the
      output here*: a swap of the output alone would pass its other pairs.
    * computed: causal, and the full value readable *inside the causal subspace* (live rows, lower bound
      >= READ_OK) and beyond untrained networks' readout in a subspace of the same kind and size (lower
      bound >= their mean + MARGIN, or 1.0 where that is above 1: a position-wise variable is read
      perfectly from any embedding).
    * computed up to its output partition (``coarser``: the output cannot tell some values apart): causal,
      but the full value is not shown to be there; interventions on the output cannot show more.
    * readable / beyond (the whole residual at the hook) only tell the non-causal statuses apart.

    ``testable``: there are live rows and effective pairs. Then a variable with no subspace to swap
    anywhere (no linear footprint) is not causal, rather than not testable.
    """
    if not testable or readout is None or not readout.live.defined:
        return Tri.NO, Tri.NO, Tri.NO, Status.NOT_TESTABLE
    readable = at_least(readout.live, READ_OK)
    base = readout.untrained_live if readout.untrained_live is not None else readout.majority_live
    beyond = at_least(readout.live, min(base + MARGIN, 1.0 + 1e-9))
    if (intervention is not None and intervention.decides_on == "distinguishing"
            and intervention.n_distinguishing < MIN_DISTINGUISHING):
        return readable, beyond, Tri.UNDECIDED, Status.NOT_IDENTIFIABLE
    if intervention is None or not intervention.deciding.defined:
        causal = Tri.NO
    else:
        iia, null = intervention.deciding, intervention.null_p95  # null: nan when the subspace is the whole space
        causal = at_least(iia, IIA_OK)
        if causal is Tri.YES and math.isfinite(null) and iia.lo <= null:
            causal = Tri.UNDECIDED
        if math.isfinite(null) and iia.value <= null:
            causal = Tri.NO
    if causal is Tri.YES:
        sub, sub_base = intervention.subspace_readout, intervention.subspace_untrained
        full = at_least(sub, READ_OK)
        if full is Tri.YES and sub_base is not None:  # beyond untrained: by MARGIN, or perfect where that is out of reach
            full = at_least(sub, min(sub_base + MARGIN, 1.0))
        if full is Tri.YES:
            status = Status.COMPUTED
        elif coarser:
            status = Status.COMPUTED_UP_TO
        elif full is Tri.NO:
            status = Status.CAUSAL_PARTIAL
        else:
            status = Status.UNDECIDED
    elif causal is Tri.NO:  # readability only tells the non-causal statuses apart
        if readable is Tri.NO:
            status = Status.NOT_REPRESENTED
        elif beyond is Tri.NO:
            status = Status.UNTRAINED_LEVEL
        elif beyond is Tri.YES and readable is Tri.YES:
            status = Status.CORRELATIONAL
        else:
            status = Status.UNDECIDED
    else:
        status = Status.UNDECIDED
    return readable, beyond, causal, status


def summarise(variables: dict[str, VariableResult], heads: Heads) -> Summary:
    """The verdict: ``match`` (every testable variable computed, every live head matched), ``no match``
    (nothing causal, no head matched) or ``partial match``."""
    by = {s: [k for k, v in variables.items() if v.status is s] for s in Status}
    live = len(heads.matches)
    causal = [k for k, v in variables.items() if v.status.causal]
    testable = [k for k in variables if variables[k].status is not Status.NOT_TESTABLE]
    if testable and len(by[Status.COMPUTED]) == len(testable) and heads.matched == live:
        verdict = "match"
    elif not causal and not heads.matched:
        verdict = "no match"
    else:
        verdict = "partial match"
    return Summary(verdict, by[Status.COMPUTED], by[Status.CAUSAL_PARTIAL], by[Status.UNDECIDED],
                   by[Status.CORRELATIONAL], by[Status.UNTRAINED_LEVEL], by[Status.NOT_REPRESENTED],
                   by[Status.NOT_TESTABLE], heads.matched, live, by[Status.COMPUTED_UP_TO],
                   by[Status.NOT_IDENTIFIABLE])
