"""A program's positive strings as data: what a language model is trained on.

The MU-GPT experiment (issue 11) trains a GPT on the *members* of a formal
language only (for MIU: the theorems), never on labelled negatives. A
``Language`` holds what ``learned/`` needs for that, so no code outside
``rasp_programs/`` asks which program it is:

  * ``alphabet`` and ``is_member``: the membership test (MIU: the criterion);
  * ``derive``: one random derivation (MIU: a walk of the four rewrite rules
    from ``MI``), a source of members that knows nothing of the criterion;
  * ``impossible``: a short non-member the model should learn to rule out
    (MIU: ``MU``); its probability is tracked during training.

Two samplers of members up to a maximum length build on it:

  * ``random_derivations``: many walks with a bound on the intermediate
    length; every visited member up to the maximum length, deduplicated;
  * ``LengthControlled``: a string is built token by token. An end is
    allowed only when the string so far is a member, and is then taken with
    probability ``q`` (always, where no token can follow); otherwise the next
    token is uniform over the tokens that can still reach a member within the
    maximum length. So ``P(end | prefix) = q`` on member prefixes and 0
    elsewhere: the "legal move" structure of Othello-GPT. The distribution
    over whole strings is finite and known exactly (``distribution``);
    ``sample`` draws from it step by step.

``held_out`` picks a seeded share of the members that training never sees.

Shapes: a string is a tuple of tokens (``Tokens``) of length 1..max_len.

Example:
    >>> sampler = LengthControlled(MIU_THEOREMS, max_len=4, q=0.25)
    >>> sampler.next_distribution(("M", "I"))
    {'END': 0.25, 'I': 0.375, 'U': 0.375}
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
from typing import Callable, Iterable

import numpy as np

from rasp_programs import miu
from rasp_programs.errors import ToolkitError

Tokens = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Language:
    """The members of a formal language, as ``ProgramSpec.language``.

    Attributes:
        alphabet: the tokens strings are made of.
        is_member: the membership test for one string.
        impossible: a short non-member the model should learn to rule out.
        derive: ``derive(rng, steps, bound)`` -> the members one random
            derivation visits (intermediates up to ``bound`` tokens); ``None``
            where the language has no rewrite system.
        well_formed: the strings on which membership is a real decision (MIU:
            ``M`` first and no other ``M``); where ``P(end)`` is scored.
        member: what a member is called in reports ("theorem").
        end_token: the name of the end-of-string output of a language model.
        legal: ``prefix -> the legal next tokens`` (``end_token`` included when
            the prefix is a member), with no length bound; ``None``: the
            length-controlled sampler's support is used (``legal_next``).
    """

    alphabet: tuple[str, ...]
    is_member: Callable[[Tokens], bool]
    impossible: Tokens
    derive: Callable[[np.random.Generator, int, int], list[Tokens]] | None = None
    well_formed: Callable[[Tokens], bool] | None = None
    member: str = "member"
    end_token: str = "END"
    legal: Callable[[Tokens], frozenset[str]] | None = None

    def members(self, max_len: int) -> list[Tokens]:
        """Every member of length 1..max_len, shortest first, then in alphabet order."""
        return list(_members(self, max_len))


@functools.cache
def _members(language: Language, max_len: int) -> tuple[Tokens, ...]:
    return tuple(s for n in range(1, max_len + 1) for s in itertools.product(language.alphabet, repeat=n)
                 if language.is_member(s))


def legal_next(language: Language, prefix: Tokens, max_len: int) -> frozenset[str]:
    """The tokens (and ``end_token``) legal after ``prefix``: ``language.legal``, else those that can still reach a
    member of length <= ``max_len`` (the empty set after a prefix that cannot)."""
    if language.legal is not None:
        return language.legal(tuple(prefix))
    sampler = _support(language, max_len)
    return frozenset(sampler.next_distribution(tuple(prefix))) if tuple(prefix) in sampler.viable else frozenset()


def completion_tail(language: Language, length: int) -> int:
    """How far past ``length`` tokens members must run for every live prefix of ``length`` tokens to begin one:
    the longest, over those prefixes, of the shortest completion to a member (``language.legal``, no length
    bound). 0 without ``legal``: there the bounded support defines what is live, by length.

    Example (Tomita 5, even 0s and even 1s): ``0 1`` and its like need two more tokens, so 2.
    """
    if language.legal is None:
        return 0
    end = language.end_token
    live: set[Tokens] = {()}
    for _ in range(length):
        live = {p + (t,) for p in live for t in language.legal(p) if t != end}
    tail = 0
    for prefix in live:
        depth, frontier = 0, {prefix}
        while not any(end in language.legal(p) for p in frontier):  # terminates: every prefix here is live
            depth += 1
            frontier = {p + (t,) for p in frontier for t in language.legal(p) if t != end}
        tail = max(tail, depth)
    return tail


@functools.cache
def _support(language: Language, max_len: int) -> "LengthControlled":
    return LengthControlled(language, max_len, q=0.5)


# -- checks of user settings (one-line errors) ----------------------------------


def check_q(q: float) -> float:
    """``q`` must lie strictly between 0 and 1."""
    if not isinstance(q, (int, float)) or isinstance(q, bool) or not 0.0 < q < 1.0:
        raise ToolkitError(f"the end probability q must be strictly between 0 and 1, got {q!r}")
    return float(q)


def check_share(share: float) -> float:
    """A held-out share must lie in [0, 1)."""
    if not isinstance(share, (int, float)) or isinstance(share, bool) or not 0.0 <= share < 1.0:
        raise ToolkitError(f"the held-out share must be in [0, 1), got {share!r}")
    return float(share)


def check_bound(bound: int, max_len: int) -> int:
    """A derivation bound below the maximum length can never produce the longest strings."""
    if not isinstance(bound, int) or isinstance(bound, bool) or bound < max_len:
        raise ToolkitError(f"the derivation bound {bound!r} is too small to reach MAX_LEN={max_len}; "
                           f"use at least {max_len}")
    return bound


# -- samplers ------------------------------------------------------------------


def random_derivations(language: Language, rng: np.random.Generator, max_len: int, walks: int, steps: int,
                       bound: int) -> list[Tokens]:
    """Members visited by ``walks`` random derivations, each up to ``steps`` rewrites.

    Args:
        language: must have ``derive``.
        rng: the data generator.
        max_len: longest member kept.
        walks, steps: number and length of the walks.
        bound: longest intermediate string (at least ``max_len``).

    Returns:
        Distinct members up to ``max_len``, in order of first visit.

    Raises:
        ToolkitError: no rewrite system, or a bound too small to reach ``max_len``.
    """
    if language.derive is None:
        raise ToolkitError("this program's language has no rewrite system to derive strings with")
    check_bound(bound, max_len)
    seen: dict[Tokens, None] = {}
    for _ in range(walks):
        for s in language.derive(rng, steps, bound):
            if len(s) <= max_len:
                seen.setdefault(tuple(s))
    return list(seen)


class LengthControlled:
    """The length-controlled sampler of the module docstring.

    Args:
        language: the language.
        max_len: longest string.
        q: probability of ending at a member prefix, in (0, 1).
    """

    def __init__(self, language: Language, max_len: int, q: float):
        self.language, self.max_len, self.q = language, max_len, check_q(q)
        self.members = frozenset(language.members(max_len))
        if not self.members:
            raise ToolkitError(f"the language has no member of length <= {max_len}")
        self.viable = frozenset(m[:k] for m in self.members for k in range(len(m) + 1))

    def next_distribution(self, prefix: Tokens) -> dict[str, float]:
        """``{token or END: probability}`` of what follows ``prefix`` (a viable prefix)."""
        prefix = tuple(prefix)
        if prefix not in self.viable:
            raise ValueError(f"{prefix!r} cannot be extended to a member of length <= {self.max_len}")
        legal = [t for t in self.language.alphabet if prefix + (t,) in self.viable]
        end = self.language.end_token
        if prefix not in self.members:
            return {t: 1.0 / len(legal) for t in legal}
        if not legal:
            return {end: 1.0}
        return {end: self.q, **{t: (1.0 - self.q) / len(legal) for t in legal}}

    def distribution(self, exclude: Iterable[Tokens] = ()) -> dict[Tokens, float]:
        """Exact probability of every member, renormalised without ``exclude``.

        Drawing from this is the same as running ``sample`` and redrawing every
        string that falls in ``exclude``.
        """
        probs: dict[Tokens, float] = {}
        stack = [((), 1.0)]
        while stack:
            prefix, p = stack.pop()
            for nxt, pn in self.next_distribution(prefix).items():
                if nxt == self.language.end_token:
                    probs[prefix] = p * pn
                else:
                    stack.append((prefix + (nxt,), p * pn))
        drop = set(map(tuple, exclude))
        kept = {s: p for s, p in sorted(probs.items(), key=lambda kv: (len(kv[0]), kv[0])) if s not in drop}
        total = sum(kept.values())
        if not kept or total <= 0:
            raise ToolkitError("every member is excluded; lower the held-out share")
        return {s: p / total for s, p in kept.items()}

    def sample(self, rng: np.random.Generator, n: int, exclude: Iterable[Tokens] = ()) -> list[Tokens]:
        """``n`` strings drawn step by step; a string in ``exclude`` is discarded and redrawn."""
        drop = set(map(tuple, exclude))
        if self.members <= drop:
            raise ToolkitError("every member is excluded; lower the held-out share")
        out: list[Tokens] = []
        while len(out) < n:
            prefix: Tokens = ()
            while True:
                dist = self.next_distribution(prefix)
                keys = list(dist)
                nxt = keys[int(rng.choice(len(keys), p=np.array([dist[k] for k in keys])))]
                if nxt == self.language.end_token:
                    break
                prefix += (nxt,)
            if prefix not in drop:
                out.append(prefix)
        return out


def held_out(members: Iterable[Tokens], share: float, seed: int) -> frozenset[Tokens]:
    """A seeded ``share`` of ``members`` (rounded), chosen without replacement.

    Raises:
        ToolkitError: ``share`` outside [0, 1).
    """
    share = check_share(share)
    pool = sorted(set(map(tuple, members)), key=lambda s: (len(s), s))
    k = int(round(share * len(pool)))
    pick = np.random.default_rng(seed).choice(len(pool), size=k, replace=False) if k else []
    return frozenset(pool[int(i)] for i in pick)


def describe(strings: Iterable[Tokens], alphabet: Iterable[str], weights: Iterable[float] | None = None) -> dict:
    """The distribution of lengths and of each token's count over ``strings``.

    Counts of strings, or, with ``weights``, the share of the weight (rounded).
    """
    strings = [tuple(s) for s in strings]
    w = [1.0] * len(strings) if weights is None else [float(x) for x in weights]
    lengths: collections.Counter = collections.Counter()
    counts = {t: collections.Counter() for t in alphabet}
    for s, x in zip(strings, w):
        lengths[len(s)] += x
        for t, c in counts.items():
            c[s.count(t)] += x

    def fmt(c: collections.Counter) -> dict[str, float]:
        return {str(k): (int(c[k]) if weights is None else round(c[k] / sum(w), 4)) for k in sorted(c)}

    return {"strings": len(strings), "lengths": fmt(lengths), "token_counts": {t: fmt(c) for t, c in counts.items()}}


# -- MIU ------------------------------------------------------------------------


def _miu_member(s: Tokens) -> bool:
    return miu.is_theorem("".join(s))


def _miu_well_formed(s: Tokens) -> bool:
    return len(s) > 0 and s[0] == "M" and "M" not in s[1:]


def _miu_derive(rng: np.random.Generator, steps: int, bound: int) -> list[Tokens]:
    return [tuple(s) for s in miu.random_derivation(rng, steps, bound)]


MIU_THEOREMS = Language(alphabet=miu.ALPHABET, is_member=_miu_member, impossible=("M", "U"),
                        derive=_miu_derive, well_formed=_miu_well_formed, member="theorem")
