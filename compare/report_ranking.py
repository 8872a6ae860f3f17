"""The report's "Which algorithm?" section and the table of what each head looks at.

Both write into the report's ``Doc`` (``compare.report``) and read typed
records only: a ``Ranking`` per model (``compare.hypotheses``) and a
``KeyAttention``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from compare.hypotheses import MIN_PAIRS, CandidateResult, HeadToHead, Ranking, Support
from compare.results import IIA_OK, KeyAttention


def _duel_text(d: HeadToHead, me: str) -> str:
    other = d.b if d.a == me else d.a
    mine, theirs = (d.a_follows, d.b_follows) if d.a == me else (d.b_follows, d.a_follows)
    gap = d.score_diff.value if d.a == me else -d.score_diff.value
    scores = ""
    if d.winner is None and d.score_diff.defined and (d.score_diff.lo > 0 or d.score_diff.hi < 0):
        scores = f"; its score is {'higher' if gap > 0 else 'lower'} (difference {d.score_diff.fmt()} for {d.a} - {d.b})"
    if d.n == 0:
        return f"predicts the same as {other} on every pair tried (no distinguishing pair){scores}"
    result = "beats" if d.winner == me else "loses to" if d.winner == other else "draws with"
    return (f"{result} {other} head to head: on {d.n} distinguishing pairs the model follows it on {mine.fmt()} "
            f"and {other} on {theirs.fmt()}{scores}")


def candidate_sentence(r: Ranking, name: str) -> str:
    """What the evidence shows about one candidate, every number with its CI."""
    c = r.candidates[name]
    if c.support is Support.NOT_TESTABLE:
        return f"{name} ({c.description}): not testable (no algorithmic variable has live rows and test pairs)."
    parts = []
    for v in c.variables:
        where = f"at {v.hook}" if v.hook else "nowhere"
        heads = f", written by {', '.join(map(str, v.heads))}" if v.heads else ""
        parts.append(f"{v.name} {v.status.value} {where}{heads} (IIA on distinguishing pairs: same position "
                     f"{v.iia_same.fmt()}, other position {v.iia_cross.fmt()}; copied the source's output on "
                     f"{v.follows_copy.fmt()})")
    duels = [_duel_text(d, name) for d in r.head_to_head if name in (d.a, d.b)]
    return (f"{name} ({c.description}): {c.support.value}, score {c.score.fmt()}. " + "; ".join(parts) + "."
            + (" It " + "; it ".join(duels) + "." if duels else ""))


def headline(r: Ranking) -> str:
    """The one-sentence answer, or why there is none."""
    top = r.order[0]
    best = r.candidates[top]
    tied = [b for a, b in r.not_told_apart if a == top] + [a for a, b in r.not_told_apart if b == top]
    if best.support is Support.SUPPORTED and not tied:
        return f"The model implements {top}: it is supported and every other candidate is told apart from it."
    if tied:
        return (f"{top} ranks first, but the data cannot tell it apart from {', '.join(tied)}; "
                f"{top} is {best.support.value}.")
    return (f"{top} ranks first and is told apart from every other candidate, but it is {best.support.value} "
            f"(score {best.score.fmt()} against the threshold {IIA_OK}): no candidate explains the model in full.")


def _row(rank: int, c: CandidateResult, r: Ranking) -> list[Any]:
    wins = [d for d in r.head_to_head if d.winner == c.program]
    losses = [d for d in r.head_to_head if d.winner and d.winner != c.program and c.program in (d.a, d.b)]
    shape = c.shape
    return [rank, c.program, c.description, f"{shape['n_layers']}L {shape['n_heads']}H d{shape['d_model']}",
            c.score.fmt(), f"{c.copy_score_all_pairs:.2f}" if math.isfinite(c.copy_score_all_pairs)
            else "n/a", c.support.value,
            f"{sum(v.status.causal for v in c.variables)}/{len(c.variables)}",
            ", ".join(sorted({d.a if d.b == c.program else d.b for d in wins})) or "-",
            ", ".join(sorted({d.winner for d in losses})) or "-"]


def ranking_table(doc, r: Ranking) -> None:
    """The first screen's ranking: one row per candidate, best first, every score with its CI."""
    top = r.order[0]
    doc.table(["rank", "candidate", "algorithm", "score (95% CI)", "support", "causal variables",
               f"told apart from {top}"],
              [[i + 1, n, r.candidates[n].description, r.candidates[n].score.fmt(), r.candidates[n].support.value,
                f"{sum(v.status.causal for v in r.candidates[n].variables)}/{len(r.candidates[n].variables)}",
                "-" if n == top else "yes" if r.told_apart(top, n) else "no"] for i, n in enumerate(r.order)])


def section_which_algorithm(doc, runs: list, figs: dict[str, str]) -> None:
    """The report's first section: the ranking per model, one sentence per candidate, the graphs."""
    doc.p("Every candidate program of this task is compared with the model by the same methods (statuses with "
          "CIs per variable). Its score is the null-corrected test IIA of its algorithmic variables (not the "
          "output, not position-wise ones) on their distinguishing pairs, where the variable's counterfactual "
          "differs from both copying the source's output and no change (by the program both chance levels are 0 "
          "there; the score subtracts the model's own, from its unpatched outputs), "
          "averaged within groups of variables that determine each other, then over groups, so a candidate does "
          "not win by having more variables; half the test pairs take the source from another position. The "
          "column 'copying would score' is what a swap that only copies the source's output would have scored "
          "on all test pairs: the score before distinguishing pairs. Where two candidates predict different "
          "outputs for a swap, the model's output decides between them (head to head); an output the swap left "
          "unchanged counts for the candidate predicting no change only where the swap is shown effective (its "
          f"same-position IIA lower bound ≥ {IIA_OK} on at least {MIN_PAIRS} pairs). Supported: score lower "
          f"bound ≥ {IIA_OK} and no candidate beats it; told apart: a head-to-head CI clear of 0 (at least "
          f"{MIN_PAIRS} pairs), or a CI of the score difference (base and source strings resampled for both) "
          "clear of 0. Candidates are ordered by how many others are told apart from them in their favour, then "
          "by score.")
    for run in runs:
        r: Ranking = run.ranking
        doc.h(3, f"{run.label}: {headline(r)}")
        doc.table(["rank", "candidate", "algorithm", "shape", "score (95% CI)", "copying would score", "support",
                   "causal variables",
                   "beats head to head", "loses head to head"],
                  [_row(i + 1, r.candidates[n], r) for i, n in enumerate(r.order)])
        doc.items([candidate_sentence(r, n) for n in r.order])
        doc.table(["candidates", "distinguishing pairs", "model follows first", "model follows second",
                   "difference", "head-to-head winner", "from variables", "score difference", "told apart?"],
                  [[f"{d.a} vs {d.b}", d.n, d.a_follows.fmt(), d.b_follows.fmt(), d.diff.fmt(), d.winner or "-",
                    "; ".join(d.via) or "-", d.score_diff.fmt(),
                    "yes" if r.told_apart(d.a, d.b) else "no"] for d in r.head_to_head])
        reasons: dict[str, list[str]] = {}
        for n, c in r.candidates.items():
            for v, why in c.left_out.items():
                reasons.setdefault(why, []).append(f"{n}.{v}")
        doc.p("Left out of the scores: " + "; ".join(f"{why}: {', '.join(vs)}" for why, vs in reasons.items()) + ".")
    if len(runs) > 1:
        _across_models(doc, runs)
    if "graphs" in figs:
        doc.img(figs["graphs"], f"Each candidate's computation graph ({runs[0].label}), coloured by each "
                                "variable's status in the model; under each name, the hook where it lives, its "
                                "test IIA (same and cross position) and the model's heads that write it.")


def _across_models(doc, runs: list) -> None:
    names = runs[0].ranking.order
    rows = []
    for n in sorted(names):
        scores = [r.ranking.candidates[n].score.value for r in runs if r.ranking.candidates[n].score.defined]
        first = sum(r.ranking.order[0] == n for r in runs)
        support = {}
        for r in runs:
            s = r.ranking.candidates[n].support.value
            support[s] = support.get(s, 0) + 1
        rows.append([n, f"{np.mean(scores):.2f} ± {np.std(scores):.2f}" if scores else "n/a", f"{first}/{len(runs)}",
                     ", ".join(f"{k}: {c}/{len(runs)}" for k, c in sorted(support.items(), key=lambda kv: -kv[1]))])
    doc.p("Across models (seeds):")
    doc.table(["candidate", "score mean ± sd", "ranked first", "support counts"], rows)


def section_attention(doc, att: KeyAttention, figs: dict[str, str]) -> None:
    """What each head looks at: mean attention mass per key token type, beside a uniform head's."""
    doc.p("Mean attention mass on each key token type over all rows (per query position in the figure). The "
          "uniform row is what a head attending evenly to every allowed key would give: the mass a token type "
          "gets from its frequency alone.")
    doc.table(["head", *att.tokens],
              [[h, *(f"{x:.2f}" for x in m)] for h, m in att.overall.items()]
              + [["uniform head", *(f"{x:.2f}" for x in att.uniform_overall)]])
    if "key_attention" in figs:
        doc.img(figs["key_attention"], "Attention mass per key token type (rows) by query position (columns), "
                                       "one panel per head; the last panel is a uniform head.")
