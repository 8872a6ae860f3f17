"""A deterministic finite automaton as plain data, and the two tasks it defines.

``Dfa`` is frozen data: alphabet, states, transitions, start and accepting
states. It is checked when built (one-line ``ToolkitError``): every
(state, symbol) pair has a transition, an accepting state is reachable, and no
symbol clashes with the tokens the pipeline reserves (``BOS``, ``PAD``,
``END``).

Each automaton yields two tasks (``automaton_tasks``), both causal (an output
at every prefix) with the automaton itself as the reference:

  * ``<name>``: membership of the prefix (``True``/``False``), as MIU's
    ``theorem``;
  * ``<name>_next``: the set of legal next tokens. A token is legal when an
    accepting state is still reachable after it (no length bound); ``END`` is
    legal when the prefix is a member. The set is **one categorical output
    whose values are the sets written as strings**, tokens in alphabet order
    then ``END``: ``"{0,1,END}"``, ``"{1}"``, ``"{}"`` (dead prefix). So the
    compiled model, the classifier and the comparison treat it like any other
    categorical output (one class per set that occurs); ``parse_legal`` reads
    it back.

Data (``DataMix``, labels balanced on the final output):
  ``states``         for every length n and every state reachable by a string
                     of length n, uniformly drawn strings of that length ending
                     there (exact counts by dynamic programming);
  ``members``        the length-controlled sampler (``language.LengthControlled``);
  ``hard_negative``  one edit (insert, delete, substitute) from a member, and
                     not a member;
  ``uniform``        uniform strings, so nothing is out of distribution.

Example:
    >>> PARITY.accepts(("1", "0"))
    True
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Sequence

import numpy as np

from rasp_programs.errors import ToolkitError
from rasp_programs.language import Language, LengthControlled
from rasp_programs.spec import DataMix, Task, Tokens, uniform_inputs

RESERVED = ("BOS", "PAD", "END")
END = "END"


@dataclasses.dataclass(frozen=True)
class Dfa:
    """A complete deterministic automaton.

    Attributes:
        name: the membership task's name (``tomita5``).
        description: one line.
        alphabet: input tokens, in the order outputs list them.
        states: state names.
        transitions: ``((state, symbol, next state), ...)``, one per pair.
        start: the start state.
        accepting: accepting states.
        member: what the membership output is called (``theorem`` for MIU).
        impossible: a short non-member a language model should rule out
            (default: the shortest one that looks like a member, first in
            alphabet order; ``shortest_non_member``). MIU declares ``MU``.
        max_len: the tasks' default length.
    """

    name: str
    description: str
    alphabet: tuple[str, ...]
    states: tuple[str, ...]
    transitions: tuple[tuple[str, str, str], ...]
    start: str
    accepting: frozenset[str]
    member: str = "member"
    impossible: Tokens = ()
    max_len: int = 10

    def __post_init__(self):
        clash = sorted(set(self.alphabet) & set(RESERVED))
        if clash:
            raise ToolkitError(f"automaton '{self.name}': symbol {clash[0]!r} clashes with a reserved token {RESERVED}")
        if len(set(self.alphabet)) != len(self.alphabet) or not self.alphabet:
            raise ToolkitError(f"automaton '{self.name}': the alphabet must be non-empty and without repeats")
        known = set(self.states)
        if self.start not in known or not set(self.accepting) <= known:
            raise ToolkitError(f"automaton '{self.name}': start and accepting states must be among {self.states}")
        seen: dict[tuple[str, str], str] = {}
        for s, a, t in self.transitions:
            if s not in known or t not in known or a not in self.alphabet:
                raise ToolkitError(f"automaton '{self.name}': transition {s!r} --{a}--> {t!r} names an unknown "
                                   f"state or symbol")
            if seen.setdefault((s, a), t) != t:
                raise ToolkitError(f"automaton '{self.name}': two transitions from {s!r} on {a!r}")
        for s in self.states:
            for a in self.alphabet:
                if (s, a) not in seen:
                    raise ToolkitError(f"automaton '{self.name}': missing transition from state {s!r} on {a!r}")
        if not set(self.accepting) & self.reachable:
            raise ToolkitError(f"automaton '{self.name}': no accepting state is reachable from {self.start!r}")

    # -- running -------------------------------------------------------------

    @functools.cached_property
    def table(self) -> dict[tuple[str, str], str]:
        """``(state, symbol) -> next state``."""
        return {(s, a): t for s, a, t in self.transitions}

    def step(self, state: str, symbol: str) -> str:
        return self.table[(state, symbol)]

    def closure(self, states) -> tuple[str, ...]:
        """``states`` and every state reachable from them, sorted."""
        seen, stack = set(states), list(states)
        while stack:
            s = stack.pop()
            for a in self.alphabet:
                if (t := self.step(s, a)) not in seen:
                    seen.add(t)
                    stack.append(t)
        return tuple(sorted(seen))

    def run(self, tokens: Sequence[str], state: str | None = None) -> list[str]:
        """The state after every prefix of ``tokens`` (from ``state``, default the start)."""
        state = self.start if state is None else state
        out = []
        for a in tokens:
            state = self.step(state, a)
            out.append(state)
        return out

    def accepts(self, tokens: Sequence[str]) -> bool:
        return (self.run(tokens) or [self.start])[-1] in self.accepting

    @functools.cached_property
    def reachable(self) -> frozenset[str]:
        """States reachable from the start (the start included)."""
        seen, stack = {self.start}, [self.start]
        while stack:
            s = stack.pop()
            for a in self.alphabet:
                t = self.table[(s, a)]
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
        return frozenset(seen)

    @functools.cached_property
    def live(self) -> frozenset[str]:
        """States from which an accepting state is reachable (no length bound)."""
        live = set(self.accepting)
        changed = True
        while changed:
            changed = False
            for (s, _), t in self.table.items():
                if t in live and s not in live:
                    live.add(s)
                    changed = True
        return frozenset(live)

    def legal_next(self, state: str) -> str:
        """The legal next tokens after a prefix ending in ``state``, as the categorical value ``"{0,1,END}"``."""
        legal = [a for a in self.alphabet if self.table[(state, a)] in self.live]
        if state in self.accepting:
            legal.append(END)
        return "{" + ",".join(legal) + "}"

    def membership(self, tokens: Sequence[str]) -> list[bool]:
        return [s in self.accepting for s in self.run(tokens)]

    def next_sets(self, tokens: Sequence[str]) -> list[str]:
        return [self.legal_next(s) for s in self.run(tokens)]

    # -- the transition monoid -------------------------------------------------

    def action(self, word: Sequence[str], domain: Sequence[str] | None = None) -> tuple[str, ...]:
        """The transformation ``word`` induces on ``domain`` (default: reachable states, sorted)."""
        domain = sorted(self.reachable) if domain is None else domain
        return tuple((self.run(word, s) or [s])[-1] for s in domain)

    @functools.cached_property
    def monoid(self) -> dict[tuple[str, ...], Tokens]:
        """The transition monoid on the reachable states: ``transformation -> a shortest word`` (``()``: identity)."""
        domain = sorted(self.reachable)
        out: dict[tuple[str, ...], Tokens] = {tuple(domain): ()}
        frontier: list[Tokens] = [()]
        while frontier:
            nxt = []
            for w in frontier:
                for a in self.alphabet:
                    f = self.action(w + (a,), domain)
                    if f not in out:
                        out[f] = w + (a,)
                        nxt.append(w + (a,))
            frontier = nxt
        return out

    def members(self, max_len: int) -> list[Tokens]:
        return [s for n in range(1, max_len + 1) for s in itertools.product(self.alphabet, repeat=n)
                if self.accepts(s)]

    def shortest_non_member(self) -> Tokens:
        """The shortest non-member that looks like a member (every token legal: its state is live), first in
        alphabet order; where every live prefix is a member (Tomita 1, 4, 7), the shortest non-member."""
        for live_only in (True, False):
            for n in range(1, 2 * len(self.states) + 2):
                for s in itertools.product(self.alphabet, repeat=n):
                    if not self.accepts(s) and (self.run(s)[-1] in self.live or not live_only):
                        return s
        return ()

    def legal_after(self, prefix: Sequence[str]) -> frozenset[str]:
        """The legal next tokens after ``prefix`` as a set (``END`` when it is a member); the empty prefix too."""
        return parse_legal(self.legal_next((self.run(prefix) or [self.start])[-1]))


def parse_legal(value: str) -> frozenset[str]:
    """``"{0,1,END}" -> frozenset({"0", "1", "END"})``."""
    inner = value.strip()[1:-1]
    return frozenset(inner.split(",")) if inner else frozenset()


# -- data ------------------------------------------------------------------------


def state_strings(dfa: Dfa, rng: np.random.Generator, n: int, max_len: int) -> list[Tokens]:
    """About ``n`` strings spread evenly over every (length, reachable state) pair, uniform within a pair."""
    # ways[(k, target)][s]: the number of strings of length k that lead from s to target.
    ways: dict[tuple[int, str], dict[str, int]] = {}
    for target in dfa.states:
        count = {s: int(s == target) for s in dfa.states}
        for k in range(0, max_len + 1):
            ways[(k, target)] = count
            count = {s: sum(count[dfa.step(s, a)] for a in dfa.alphabet) for s in dfa.states}
    pairs = [(k, t) for k in range(1, max_len + 1) for t in sorted(dfa.states) if ways[(k, t)][dfa.start] > 0]
    per = max(1, n // max(1, len(pairs)))
    out = []
    for k, target in pairs:
        for _ in range(per):
            s, word = dfa.start, []
            for left in range(k, 0, -1):
                weights = np.array([ways[(left - 1, target)][dfa.step(s, a)] for a in dfa.alphabet], float)
                a = dfa.alphabet[int(rng.choice(len(dfa.alphabet), p=weights / weights.sum()))]
                word.append(a)
                s = dfa.step(s, a)
            out.append(tuple(word))
    return out


def one_edit(dfa: Dfa, rng: np.random.Generator, member: Tokens, max_len: int) -> Tokens | None:
    """A non-member one insertion, deletion or substitution from ``member`` (``None`` after 20 tries)."""
    for _ in range(20):
        s = list(member)
        kind, i = int(rng.integers(0, 3)), int(rng.integers(0, len(s) + 1))
        a = dfa.alphabet[int(rng.integers(0, len(dfa.alphabet)))]
        if kind == 0:
            s.insert(i, a)
        elif kind == 1 and len(s) > 1:
            s.pop(min(i, len(s) - 1))
        else:
            s[min(i, len(s) - 1)] = a
        s = tuple(s[:max_len])
        if s and not dfa.accepts(s):
            return s
    return None


def _pools(dfa: Dfa):
    def pools(rng: np.random.Generator, vocab: Sequence[str], max_len: int, size: int) -> dict[str, list[Tokens]]:
        members = LengthControlled(language(dfa), max_len, q=0.25).sample(rng, size)
        negatives = [x for m in members if (x := one_edit(dfa, rng, m, max_len)) is not None]
        return {"states": state_strings(dfa, rng, size, max_len), "members": members,
                "hard_negative": negatives or uniform_inputs(rng, vocab, size, max_len),
                "uniform": uniform_inputs(rng, vocab, size, max_len)}
    return pools


def data_mix(dfa: Dfa) -> DataMix:
    return DataMix(pools=_pools(dfa),
                   shares=(("states", 0.35), ("members", 0.2), ("hard_negative", 0.3), ("uniform", 0.15)),
                   balance_final=True, held_out=("states", "members", "hard_negative"))


@functools.cache
def language(dfa: Dfa) -> Language:
    """The automaton's members as a ``Language`` (for the length-controlled sampler and MU-GPT)."""
    return Language(alphabet=dfa.alphabet, is_member=dfa.accepts,
                    impossible=tuple(dfa.impossible) or dfa.shortest_non_member(), member=dfa.member,
                    end_token=END, legal=dfa.legal_after)


def automaton_tasks(dfa: Dfa) -> tuple[Task, Task]:
    """The membership task ``<name>`` and the legal-next-token task ``<name>_next`` (module docstring)."""
    common = dict(vocab=dfa.alphabet, default_max_len=dfa.max_len, causal=True, data=data_mix(dfa),
                  language=language(dfa))
    member = Task(name=dfa.name, description=f"{dfa.description}: membership of every prefix",
                  output=dfa.member, reference=dfa.membership, **common)
    nxt = Task(name=f"{dfa.name}_next", description=f"{dfa.description}: the legal next tokens after every prefix",
               output="legal_next", reference=dfa.next_sets, probe_output="{END}", **common)
    return member, nxt
