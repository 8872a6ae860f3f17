"""Hofstadter's MIU formal system, in plain Python.

This module is the independent reference for the MIU recogniser. It knows
nothing about RASP, Tracr or torch: it holds the axiom, the four rewrite
rules, a bounded breadth-first derivation search and the decision criterion.
The tests check that the search and the criterion agree.

Strings are plain ``str`` over the alphabet ``{"M", "I", "U"}``.

Example:
    >>> is_theorem("MIU"), is_theorem("MU")
    (True, False)
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Iterator

AXIOM = "MI"
ALPHABET = ("M", "I", "U")


@dataclasses.dataclass(frozen=True)
class Step:
    """One application of a rule: ``before`` rewritten to ``after``."""

    rule: int  # 1..4, Hofstadter's numbering
    before: str
    after: str


def successors(s: str) -> Iterator[Step]:
    """Yields every single-rule rewrite of ``s`` (with repeats removed).

    Rule I:   xI   -> xIU
    Rule II:  Mx   -> Mxx
    Rule III: xIIIy -> xUy  (any occurrence of III)
    Rule IV:  xUUy -> xy    (any occurrence of UU)
    """
    seen: set[str] = set()

    def emit(rule: int, after: str) -> Iterator[Step]:
        if after not in seen:
            seen.add(after)
            yield Step(rule, s, after)

    if s.endswith("I"):
        yield from emit(1, s + "U")
    if s.startswith("M"):
        yield from emit(2, s + s[1:])
    for i in range(len(s) - 2):
        if s[i : i + 3] == "III":
            yield from emit(3, s[:i] + "U" + s[i + 3 :])
    for i in range(len(s) - 1):
        if s[i : i + 2] == "UU":
            yield from emit(4, s[:i] + s[i + 2 :])


def derive(max_len: int, search_bound: int | None = None) -> dict[str, tuple[Step, ...]]:
    """Breadth-first search of theorems, each with a shortest derivation.

    The search never visits a string longer than ``search_bound`` (default
    ``max_len``); longer intermediates are pruned. It returns the theorems of
    length at most ``max_len`` that it reached. A theorem that needs a longer
    intermediate string is missed, so the result is complete only when the
    bound is generous enough (see ``tests/test_miu_system.py`` for the bound
    that makes it complete up to length 6).

    Args:
        max_len: longest theorem to return.
        search_bound: longest intermediate string the search may visit.

    Returns:
        ``{theorem: derivation}``; a derivation is the tuple of steps from the
        axiom (empty for the axiom itself).

    Raises:
        ValueError: if a bound is smaller than the axiom.
    """
    bound = max_len if search_bound is None else search_bound
    if min(max_len, bound) < len(AXIOM):
        raise ValueError(f"bounds must be at least {len(AXIOM)}, got {max_len}/{bound}")
    parent: dict[str, Step | None] = {AXIOM: None}
    queue = collections.deque([AXIOM])
    while queue:
        s = queue.popleft()
        for step in successors(s):
            if len(step.after) <= bound and step.after not in parent:
                parent[step.after] = step
                queue.append(step.after)

    def path(s: str) -> tuple[Step, ...]:
        steps = []
        while (step := parent[s]) is not None:
            steps.append(step)
            s = step.before
        return tuple(reversed(steps))

    return {s: path(s) for s in parent if len(s) <= max_len}


def is_theorem(s: str) -> bool:
    """The decision criterion: ``M`` first, only ``I``/``U`` after, #I not a multiple of 3."""
    return len(s) > 0 and s[0] == "M" and set(s[1:]) <= {"I", "U"} and s.count("I") % 3 != 0


def prefix_verdicts(s: str) -> list[bool]:
    """``is_theorem`` of every prefix of ``s``: the target a causal model emits."""
    return [is_theorem(s[: i + 1]) for i in range(len(s))]


def random_derivation(rng, steps: int, bound: int) -> list[str]:
    """One random walk of the rewrite system from the axiom.

    At each step one of the rewrites of the current string whose result has at
    most ``bound`` letters is taken uniformly at random; the walk stops early
    where there is none.

    Args:
        rng: a ``numpy.random.Generator`` (anything with ``integers(n)``).
        steps: most rule applications.
        bound: longest intermediate string the walk may visit.

    Returns:
        Every string the walk visited, the axiom first (all theorems).
    """
    s, visited = AXIOM, [AXIOM]
    for _ in range(steps):
        nxt = [step.after for step in successors(s) if len(step.after) <= bound]
        if not nxt:
            break
        s = nxt[int(rng.integers(len(nxt)))]
        visited.append(s)
    return visited
