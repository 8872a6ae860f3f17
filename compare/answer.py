"""The report's answer in plain words: two or three sentences from the typed results.

What the model computes (per variable of the best candidate, or of the compared program when no
candidates are ranked), which candidate the ranking favours and what it cannot tell apart, and whether
the controls passed. ``report.md`` and ``report.html`` print the same sentences.
"""

from __future__ import annotations

from compare.hypotheses import Ranking
from compare.report_ranking import headline
from compare.results import Comparison, Status, VariableResult
from rasp_programs.registry import get_program

NO_EVIDENCE = (Status.CORRELATIONAL, Status.UNTRAINED_LEVEL, Status.NOT_REPRESENTED)


def _named(v: VariableResult, docs: dict[str, str]) -> str:
    return f"{v.name} ({docs[v.name]})" if docs.get(v.name) else v.name


def _where(v: VariableResult) -> str:
    return f"at {v.found_hook}" + ("" if v.offset == 0 else f", {v.where}")


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def model_sentence(label: str, res: Comparison, docs: dict[str, str], program: str) -> str:
    """What the model computes, variable by variable, in the words of the program's variable docs."""
    by = {s: [v for v in res.variables.values() if v.status is s] for s in Status}
    said = []
    said += [f"{_named(v, docs)} {_where(v)}" for v in by[Status.COMPUTED]]
    said += [f"{v.name} only up to {v.partition_text} {_where(v)}" for v in by[Status.COMPUTED_UP_TO]]
    said += [f"{v.name} causally {_where(v)}, though its value is not readable there" for v in by[Status.CAUSAL_PARTIAL]]
    head = (f"Read through {program}'s variables, {label} computes {_join(said)}" if said
            else f"Read through {program}'s variables, {label} computes none of them causally")
    tail = []
    none = [v.name for s in NO_EVIDENCE for v in by[s]]
    if none:
        tail.append(f"there is no causal evidence for {_join(none)}")
    if by[Status.UNDECIDED]:
        tail.append(f"{_join([v.name for v in by[Status.UNDECIDED]])} "
                    f"{'is' if len(by[Status.UNDECIDED]) == 1 else 'are'} undecided (more data needed)")
    if by[Status.NOT_IDENTIFIABLE]:
        tail.append(f"{_join([v.name for v in by[Status.NOT_IDENTIFIABLE]])} cannot be identified from the output "
                    "on these inputs")
    if by[Status.NOT_TESTABLE]:
        tail.append(f"{_join([v.name for v in by[Status.NOT_TESTABLE]])} cannot be tested here")
    return head + ("; " + "; ".join(tail) if tail else "") + "."


def controls_sentence(controls: list) -> str:
    """``Controls: 5 of 5 pass.`` or which failed; empty when no control ran."""
    checked = [c for c in controls if c.passed is not None]
    if not checked:
        return ""
    failed = [f"{c.name} ({c.why})" if c.why else c.name for c in checked if not c.passed]
    if not failed:
        return f"All {len(checked)} controls pass, so the method measures what it claims on this program."
    return (f"{len(checked) - len(failed)} of {len(checked)} controls pass; {_join(failed)} failed, so read the "
            f"statuses above with that in mind (see Controls).")


def answer(label: str, res: Comparison, program: str, ranking: Ranking | None, controls: list) -> str:
    """The two or three sentences at the top of the report."""
    if ranking is not None:
        top = ranking.order[0]
        sentences = [headline(ranking), model_sentence(label, ranking.candidates[top].comparison, _docs(top), top)]
    else:
        sentences = [model_sentence(label, res, _docs(program), program)]
    extra = controls_sentence(controls)
    return " ".join(sentences + ([extra] if extra else []))


def _docs(program: str) -> dict[str, str]:
    return {v.name: v.doc for v in get_program(program).variables}
