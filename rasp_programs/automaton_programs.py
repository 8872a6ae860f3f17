"""Candidate RASP programs derived from an automaton (Liu et al. 2023's shortcuts).

``derive(task)`` returns every construction that applies to the task's
automaton, each a ``ProgramSpec`` named ``<task>.<construction>``, and for
every other construction one line saying why it was skipped. Each candidate is
written twice, as all programs here are: ``build`` in Tracr's RASP (imported
lazily) and a ``Variable`` list in plain Python. Every selector looks at keys
``k <= q`` only, so each program is causal as RASP. Its last variable is the
task's output, a function of the automaton's state (membership, or the legal
next tokens as one categorical string).

  ``counts``  when the letters' actions commute (on the reachable states, or
      on the states after the first token, as for MIU), the state is a
      function of how often each class of letters occurred. Letters with the
      same action form a class; the identity class is not counted; a class
      that sends every state to a dead one is called ``bad_<letters>``. Each
      counted class is marked position-wise (``<class>_at``: the position, or
      -1), counted over the prefix by ``SelectorWidth`` (``count_<class>``),
      and one MLP maps the counts to the output. Where the first token acts
      differently (MIU: an ``M`` is required first and forbidden later),
      position 0 gets the marks, closest to the letter's own, that lead to
      the right state. For ``miu_dfa`` this is exactly the hand-written
      ``miu`` (a test compares every variable).
  ``window``  for languages whose state, up to one absorbing dead state, is a
      function of the last k <= 2 tokens (definite / locally testable: Tomita
      1, 2, 4, ``(ab)*``). Previous-token heads read ``prev_1`` … ``prev_k``
      (a position with nothing that far back reads itself; the MLP knows from
      ``here = (token, position)``), one MLP gives ``local_state`` and
      ``kill_at`` (the window reaches the dead state), a ``SelectorWidth``
      head counts ``kills`` over the prefix, and one MLP decides.
  ``reset``   (``automaton_reset``) one head attends to the last position of
      a letter that resets the automaton, plus a count of what follows.
  ``fractions``  (``automaton_fractions``) where ``counts`` applies: mean
      attention and position give the counts (``miu_mean`` for ``miu_dfa``).
  ``prefix``  the general construction: Hillis–Steele parallel prefix over the
      transition monoid. ``prefix_0`` holds each letter's transformation
      (``f:<a shortest word>``), except at position 0 where it is already the
      state (``q:<state>``). Level k attends exactly ``2^(k-1)`` back
      (``back_<d>``; a position with nothing that far back reads itself, which
      is then already a state) and composes; after ``ceil(log2 MAX_LEN)``
      levels every position holds its state (``state``). Refused when the
      monoid has more than ``MONOID_LIMIT`` elements.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Callable

from rasp_programs.automata import TASK_DFA, TASKS
from rasp_programs.automaton import Dfa
from rasp_programs.automaton_fractions import fractions_program
from rasp_programs.automaton_reset import reset_program
from rasp_programs.errors import ToolkitError
from rasp_programs.spec import ProgramSpec, Task, Variable

CONSTRUCTIONS = ("counts", "window", "reset", "fractions", "prefix")  # the first that applies is `<task>`
MONOID_LIMIT = 64  # largest transition monoid the parallel prefix is derived for (see README for compiled sizes)
SELECTOR_WIDTH_MAX_LEN = 24  # SelectorWidth with mlp_exactness=1000 is exact to 24 (as for miu)


@dataclasses.dataclass(frozen=True)
class Derived:
    """The candidates of one task, in construction order, and why the others were skipped."""

    task: Task
    candidates: tuple[ProgramSpec, ...]
    skipped: tuple[tuple[str, str], ...]  # (construction, reason)


def output_of(task: Task, dfa: Dfa) -> Callable[[str], object]:
    """The task's output as a function of the automaton's state."""
    if task.output == "legal_next":
        return dfa.legal_next
    return lambda state: state in dfa.accepting


def _in_prefix(k, q) -> bool:
    return 0 <= k <= q


def _count_marked_prefix(marked, indices):
    return [sum(1 for k in marked if 0 <= k <= q) for q in indices]


# -- counts ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Counting:
    """How a commutative automaton is tracked by counts."""

    domain: tuple[str, ...]
    x0: str  # the state the counted actions are applied to
    classes: tuple[tuple[str, tuple[str, ...]], ...]  # (class name, its letters), counted ones only
    first: dict  # letter at position 0 -> frozenset of class names marked there

    def marked(self, token: str, index: int, cls: str) -> bool:
        if index == 0:
            return cls in self.first[token]
        return token in dict(self.classes)[cls]


def _commutes(dfa: Dfa, domain) -> tuple[str, str] | None:
    """A pair of letters whose actions on ``domain`` do not commute, or ``None``."""
    for a, b in itertools.combinations(dfa.alphabet, 2):
        if dfa.action((a, b), domain) != dfa.action((b, a), domain):
            return a, b
    return None


def _counting(dfa: Dfa) -> _Counting | str:
    """The counting scheme, or why there is none."""
    reach = tuple(sorted(dfa.reachable))
    after_first = dfa.closure({dfa.step(dfa.start, a) for a in dfa.alphabet})
    whole = _commutes(dfa, reach) is None  # else only after the first token, which then needs its own marks
    domain = reach if whole else after_first
    if not whole and (pair := _commutes(dfa, after_first)) is not None:
        return f"the actions of {pair[0]!r} and {pair[1]!r} do not commute (not even after the first token)"
    groups: dict[tuple[str, ...], list[str]] = {}
    for a in dfa.alphabet:
        groups.setdefault(dfa.action((a,), domain), []).append(a)
    classes = []
    for act, letters in groups.items():
        if act == domain:
            continue  # identity: nothing to count
        dead = len(set(act)) == 1 and act[0] not in dfa.live
        classes.append((("bad_" if dead else "") + "".join(letters), tuple(letters), dead))
    classes.sort(key=lambda c: c[2])  # counted classes first, then the ones that kill
    if not classes:
        return "every letter acts as the identity"
    if len(classes) > 2:
        return f"{len(classes)} classes of letters to count; the final MLP reads at most 2"
    names = tuple(c[0] for c in classes)
    letters = {c[0]: c[1] for c in classes}

    def apply(state, marks):
        for cls in names:
            if cls in marks:
                state = dfa.step(state, letters[cls][0])
        return state

    starts = [dfa.start] if whole else [dfa.step(dfa.start, a) for a in dfa.alphabet] + list(domain)
    for x0 in dict.fromkeys(starts):
        first = {}
        for a in dfa.alphabet:
            own = {c for c in names if a in letters[c]}
            options = [frozenset(m) for r in range(len(names) + 1) for m in itertools.combinations(names, r)
                       if apply(x0, m) == dfa.step(dfa.start, a)]
            if not options:
                break
            first[a] = min(options, key=lambda m: (len(m ^ own), sorted(m)))
        else:
            return _Counting(domain, x0, tuple((n, letters[n]) for n in names), first)
    return "no state lets the first token be expressed by counts"


def _counts(task: Task, dfa: Dfa) -> ProgramSpec | str:
    scheme = _counting(dfa)
    if isinstance(scheme, str):
        return scheme
    out = output_of(task, dfa)
    names = [c for c, _ in scheme.classes]
    letters = dict(scheme.classes)

    def verdict(*counts):
        state = scheme.x0
        for cls, n in zip(names, counts):
            for _ in range(n):
                state = dfa.step(state, letters[cls][0])
        return out(state)

    def mark(cls):
        return lambda t, i: i if scheme.marked(t, i, cls) else -1

    def build():
        from tracr.rasp import rasp

        counts = []
        for cls in names:
            at = rasp.categorical(rasp.SequenceMap(mark(cls), rasp.tokens, rasp.indices)).named(f"{cls}_at")
            select = rasp.Select(at, rasp.indices, _in_prefix).named(f"prefix_{cls}")
            counts.append(rasp.categorical(rasp.SelectorWidth(select)).named(f"count_{cls}"))
        if len(counts) == 1:
            return rasp.categorical(rasp.Map(verdict, counts[0])).named(task.output)
        return rasp.categorical(rasp.SequenceMap(verdict, *counts)).named(task.output)

    def marks(cls):
        return lambda tokens, indices: [mark(cls)(t, i) for t, i in zip(tokens, indices)]

    own_first = all(scheme.first[a] == {c for c in names if a in letters[c]} for a in dfa.alphabet)
    variables = [Variable(f"{c}_at", ("tokens", "indices"), marks(c),
                          f"position of this token if it is {'/'.join(letters[c])}"
                          f"{'' if own_first else ' (the first token: marked as its action there)'}, else -1")
                 for c in names]
    variables += [Variable(f"count_{c}", (f"{c}_at", "indices"), _count_marked_prefix,
                           f"number of {'/'.join(letters[c])} in the prefix") for c in names]
    variables.append(Variable(task.output, tuple(f"count_{c}" for c in names),
                              lambda *cs: [verdict(*v) for v in zip(*cs)],
                              f"{task.output} of the prefix, from the counts"))
    return ProgramSpec(name=f"{task.name}.counts",
                       description=f"{task.description}: SelectorWidth counts of {', '.join(names)}, then one MLP",
                       task=task, max_supported_len=SELECTOR_WIDTH_MAX_LEN, build=build, variables=tuple(variables))


# -- parallel prefix --------------------------------------------------------------


def _prefix(task: Task, dfa: Dfa) -> ProgramSpec | str:
    monoid = dfa.monoid
    if len(monoid) > MONOID_LIMIT:
        return f"its transition monoid has {len(monoid)} elements; the limit is {MONOID_LIMIT}"
    domain = tuple(sorted(dfa.reachable))
    sep = "" if all(len(a) == 1 for a in dfa.alphabet) else " "
    name = {f: "f:" + (sep.join(w) or "ε") for f, w in monoid.items()}
    element = {v: f for f, v in name.items()}
    out = output_of(task, dfa)
    levels = max(1, math.ceil(math.log2(dfa.max_len)))
    max_len = 2 ** levels

    def initial(t, i):
        return "q:" + dfa.step(dfa.start, t) if i == 0 else name[dfa.action((t,), domain)]

    def combine(prev, cur):
        if cur.startswith("q:"):
            return cur
        f = element[cur]
        if prev.startswith("q:"):
            return "q:" + f[domain.index(prev[2:])]
        g = element[prev]  # prev then cur
        return name[tuple(f[domain.index(s)] for s in g)]

    def read_state(value):
        # Tracr infers value sets over every pair of inputs, so it also asks about a transformation at the
        # last level, which no input of length <= 2^levels reaches; any valid output serves there.
        return out(value[2:] if value.startswith("q:") else dfa.start)

    def back(d):
        return lambda k, q: k == (q - d if q >= d else q)

    def build():
        from tracr.rasp import rasp

        cur = rasp.categorical(rasp.SequenceMap(initial, rasp.tokens, rasp.indices)).named("prefix_0")
        for k in range(1, levels + 1):
            d = 2 ** (k - 1)
            select = rasp.Select(rasp.indices, rasp.indices, back(d)).named(f"select_back_{d}")
            prev = rasp.categorical(rasp.Aggregate(select, cur)).named(f"back_{d}")
            cur = rasp.categorical(rasp.SequenceMap(combine, prev, cur)).named(
                "state" if k == levels else f"prefix_{k}")
        return rasp.categorical(rasp.Map(read_state, cur)).named(task.output)

    def gather(d):
        return lambda values, indices: [values[q - d if q >= d else q] for q in indices]

    variables = [Variable("prefix_0", ("tokens", "indices"), lambda ts, ix: [initial(t, i) for t, i in zip(ts, ix)],
                          "the state after the first token, else this token's transformation")]
    for k in range(1, levels + 1):
        d, src = 2 ** (k - 1), f"prefix_{k - 1}"
        dst = "state" if k == levels else f"prefix_{k}"
        variables.append(Variable(f"back_{d}", (src, "indices"), gather(d),
                                  f"{src} at {d} positions back (itself where there is none)"))
        variables.append(Variable(dst, (f"back_{d}", src), lambda p, c: [combine(a, b) for a, b in zip(p, c)],
                                  "the state after the prefix" if dst == "state" else
                                  f"the transformation of the last {2 * d} tokens (the state where that reaches "
                                  f"the start)"))
    variables.append(Variable(task.output, ("state",), lambda s: [read_state(v) for v in s],
                              f"{task.output} of the prefix, from the state"))
    return ProgramSpec(name=f"{task.name}.prefix",
                       description=f"{task.description}: parallel prefix over the transition monoid "
                                   f"({len(monoid)} elements, {levels} levels)",
                       task=task, max_supported_len=max_len, build=build, variables=tuple(variables))


# -- local window --------------------------------------------------------------------


def _window_table(dfa: Dfa, k: int, dead: str, length: int) -> dict | None:
    """``last k tokens -> state`` for every live prefix of length >= k up to ``length``, or ``None`` if ambiguous."""
    table: dict[tuple[str, ...], str] = {}
    for n in range(k, length + 1):
        for w in itertools.product(dfa.alphabet, repeat=n):
            state = (dfa.run(w) or [dfa.start])[-1]
            if state != dead and table.setdefault(w[len(w) - k:], state) != state:
                return None
    return table


def _window(task: Task, dfa: Dfa) -> ProgramSpec | str:
    sinks = sorted(s for s in dfa.reachable - dfa.live if all(dfa.step(s, a) == s for a in dfa.alphabet))
    if len(dfa.reachable - dfa.live) != len(sinks) or len(sinks) > 1:
        return "its dead states are not one absorbing sink"
    dead = sinks[0] if sinks else None
    probe = min(dfa.max_len, 8)
    for k in (1, 2):
        table = _window_table(dfa, k, dead, probe)
        if table is not None:
            break
    else:
        return "the state is not a function of the last 2 tokens (the language is not 2-definite up to a dead sink)"
    out = output_of(task, dfa)

    def local(recent, here):
        """The state at ``here = (token, position)`` from the ``k`` tokens before it (oldest first; where the
        string is shorter, the leading ones are junk), ``dead`` where the window kills."""
        t, i = here
        if i < k:
            return (dfa.run(tuple(recent)[k - i:] + (t,)))[-1]
        state = table.get(tuple(recent), dead)
        return dead if state == dead else dfa.step(state, t)

    def recent_of(*prevs):  # prev_k ... prev_1, oldest first
        return tuple(prevs)

    def back(j):
        return lambda key, q: key == (q - j if q >= j else q)

    def verdict(kills, state):
        return out(dead if kills else state)

    def build():
        from tracr.rasp import rasp

        prevs = []
        for j in range(k, 0, -1):
            select = rasp.Select(rasp.indices, rasp.indices, back(j)).named(f"select_prev_{j}")
            prevs.append(rasp.categorical(rasp.Aggregate(select, rasp.tokens)).named(f"prev_{j}"))
        recent = prevs[0] if k == 1 else rasp.categorical(rasp.SequenceMap(recent_of, *prevs)).named("recent")
        here = rasp.categorical(rasp.SequenceMap(lambda t, i: (t, i), rasp.tokens, rasp.indices)).named("here")
        wrap = (lambda r: (r,)) if k == 1 else (lambda r: r)
        state = rasp.categorical(rasp.SequenceMap(lambda r, h: local(wrap(r), h), recent, here)).named("local_state")
        kill_at = rasp.categorical(rasp.SequenceMap(
            lambda r, h: h[1] if local(wrap(r), h) == dead else -1, recent, here)).named("kill_at")
        kills = rasp.categorical(rasp.SelectorWidth(
            rasp.Select(kill_at, rasp.indices, _in_prefix).named("prefix_kill"))).named("kills")
        return rasp.categorical(rasp.SequenceMap(verdict, kills, state)).named(task.output)

    def gather(j):
        return lambda tokens, indices: [tokens[q - j if q >= j else q] for q in indices]

    variables = [Variable(f"prev_{j}", ("tokens", "indices"), gather(j),
                          f"the token {j} back (this token where there is none)") for j in range(k, 0, -1)]
    wrap = (lambda r: (r,)) if k == 1 else (lambda r: r)
    recent = "prev_1"
    if k > 1:
        recent = "recent"
        variables.append(Variable("recent", tuple(f"prev_{j}" for j in range(k, 0, -1)),
                                  lambda *ps: [recent_of(*v) for v in zip(*ps)], f"the {k} tokens before this one"))
    variables += [
        Variable("here", ("tokens", "indices"), lambda ts, ix: list(zip(ts, ix)), "(token, position)"),
        Variable("local_state", (recent, "here"), lambda rs, hs: [local(wrap(r), h) for r, h in zip(rs, hs)],
                 f"the state read off the last {k + 1} tokens (the dead state where they kill)"),
        Variable("kill_at", (recent, "here"),
                 lambda rs, hs: [h[1] if local(wrap(r), h) == dead else -1 for r, h in zip(rs, hs)],
                 "position of this token if the window ending here kills, else -1"),
        Variable("kills", ("kill_at", "indices"), _count_marked_prefix, "number of killing windows in the prefix"),
        Variable(task.output, ("kills", "local_state"), lambda ks, ss: [verdict(a, b) for a, b in zip(ks, ss)],
                 f"{task.output} of the prefix: dead after a kill, else from the window"),
    ]
    return ProgramSpec(name=f"{task.name}.window",
                       description=f"{task.description}: previous-token heads read the last {k} tokens, "
                                   f"an MLP decides, a SelectorWidth head remembers a kill",
                       task=task, max_supported_len=SELECTOR_WIDTH_MAX_LEN, build=build, variables=tuple(variables))


# -- derivation --------------------------------------------------------------------

def _fractions(task: Task, dfa: Dfa) -> ProgramSpec | str:
    scheme = _counting(dfa)
    return scheme if isinstance(scheme, str) else fractions_program(task, dfa, scheme, output_of(task, dfa))


def _reset(task: Task, dfa: Dfa) -> ProgramSpec | str:
    return reset_program(task, dfa, output_of(task, dfa), SELECTOR_WIDTH_MAX_LEN)


_BUILDERS = {"counts": _counts, "window": _window, "reset": _reset, "fractions": _fractions, "prefix": _prefix}


def derive_from(task: Task, dfa: Dfa) -> Derived:
    """Every construction that applies to ``dfa`` for ``task`` (one of its two tasks), and why the others do not."""
    candidates, skipped = [], []
    for construction in CONSTRUCTIONS:
        made = _BUILDERS[construction](task, dfa)
        if isinstance(made, str):
            skipped.append((construction, made))
        else:
            candidates.append(made)
    return Derived(task, tuple(candidates), tuple(skipped))


@functools.cache
def derive(task_name: str) -> Derived:
    """``derive_from`` for a registered automaton task (cached, so candidates are the same objects).

    Raises:
        ToolkitError: ``task_name`` is not an automaton task (``HYPOTHESES=auto`` needs one).
    """
    if task_name not in TASK_DFA:
        raise ToolkitError(f"task {task_name!r} has no automaton to derive candidates from; "
                           f"automaton tasks: {', '.join(sorted(TASKS))}")
    return derive_from(TASKS[task_name], TASK_DFA[task_name])


def candidate(name: str) -> ProgramSpec:
    """``<task>.<construction>``, or ``<task>`` for its first candidate (renamed to the task).

    Raises:
        ToolkitError: unknown task or construction, or a construction that does not apply (with why).
    """
    task_name, _, construction = name.partition(".")
    derived = derive(task_name)
    if not construction:
        if not derived.candidates:
            raise ToolkitError(f"no construction applies to {task_name!r}: "
                               + "; ".join(f"{c}: {why}" for c, why in derived.skipped))
        return _first(task_name)
    for spec in derived.candidates:
        if spec.name == name:
            return spec
    for c, why in derived.skipped:
        if c == construction:
            raise ToolkitError(f"{name}: skipped, {why}")
    raise ToolkitError(f"unknown construction {construction!r}; constructions: {', '.join(CONSTRUCTIONS)}")


@functools.cache
def _first(task_name: str) -> ProgramSpec:
    first = derive(task_name).candidates[0]
    return dataclasses.replace(first, name=task_name, description=f"{first.description} (= {first.name})")
