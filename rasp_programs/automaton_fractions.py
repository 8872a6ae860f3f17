"""The ``fractions`` construction: an automaton's state from prefix means times position.

It applies where ``counts`` applies (``automaton_programs._counting``: the
letters' actions commute, on all reachable states or after the first token)
and uses the same classes of letters and the same marks, but counts the way
the hand-written ``miu_mean`` does: mean attention over the prefix gives each
class's fraction, and MLPs turn fraction and position back into what the state
needs of the count. For ``miu_dfa`` it is ``miu_mean``, variable for variable
(a test compares every variable's values on every string up to length 10).

Per counted class ``c`` (its letters ``L``):
  ``is_<c>``        1 where the token is marked, else 0 (numerical; a
                    categorical ``<c>`` first where the first token is marked
                    by its action there, not by its letter: MIU's ``bad_M``);
  ``frac_<c>``      the mean of ``is_<c>`` over the prefix (numerical
                    ``Aggregate``; needs ``compiled.value_sets``);
  ``frac_<c>_exact``  the fraction as a category (``"3/5"``), classes that
                    do not kill only;
  ``<c>_mod_<p>``   the count mod the period of the class's action (a
                    permutation), or ``<c>_reduced``: the count with the
                    action's threshold and period applied;
  ``<L>_ok``        for a class that sends every state to the dead one: its
                    fraction is 0 (``M_ok``).
The output is one MLP on those (at most two).

When two classes split the alphabet between them, every token marked by its
letter (Tomita 5 and 6, ``(aa)*``), their fractions add up to 1 on every
input: a second ``is_``/``frac_`` pair would carry no information of its own,
and no swap could set one without the other, so the causal model would not be
identifiable. Only the first class that does not kill is counted then; the
other's decoded variable comes from the same fraction and the position (its
count is the position + 1 minus the counted one's).
"""

from __future__ import annotations

import fractions

from rasp_programs.automaton import Dfa
from rasp_programs.miu_programs import MAX_DENOMINATOR, exact_fraction
from rasp_programs.spec import ProgramSpec, Task, Variable

# The mean's fraction x position MLP grows with the length; miu_mean's limit (its docstring) holds here too.
FRACTIONS_MAX_LEN = min(12, MAX_DENOMINATOR)


def power_cycle(dfa: Dfa, letter: str, domain) -> tuple[int, int]:
    """``(index, period)`` of the letter's action on ``domain``: ``f^(index + period) == f^index``, both least."""
    domain = list(domain)
    f = dfa.action((letter,), domain)
    seen, power, n = {}, tuple(domain), 0  # f^0 = the identity
    while power not in seen:
        seen[power] = n
        power = tuple(f[domain.index(s)] for s in power)
        n += 1
    return seen[power], n - seen[power]


def reducer(index: int, period: int):
    """``n -> n`` below ``index``, else ``index + (n - index) mod period``: the same power of the action."""
    return lambda n: n if n < index else index + (n - index) % period


def _prefix_mean(values, indices):
    return [sum(values[: q + 1]) / (q + 1) for q in indices]


def count_of(frac, q) -> int:
    """The count behind a prefix mean: ``"3/5"`` at position 4 -> 3."""
    return round(fractions.Fraction(frac) * (q + 1))


def fractions_program(task: Task, dfa: Dfa, scheme, out) -> ProgramSpec:
    """The candidate ``<task>.fractions`` for a counting ``scheme`` (``automaton_programs._Counting``)."""
    names = [c for c, _ in scheme.classes]
    letters = dict(scheme.classes)
    dead = {c: c.startswith("bad_") for c in names}
    by_token = {c: all(scheme.marked(a, 0, c) == (a in letters[c]) for a in dfa.alphabet) for c in names}
    cycles = {c: power_cycle(dfa, letters[c][0], scheme.domain) for c in names}
    reduce = {c: reducer(*cycles[c]) for c in names}
    # two classes that split the alphabet: the second is read off the first (module docstring)
    split = (len(names) == 2 and all(by_token.values()) and not all(dead.values())
             and sorted(letters[names[0]] + letters[names[1]]) == sorted(dfa.alphabet))
    counted = [next(c for c in names if not dead[c])] if split else list(names)
    other = {c: counted[0] for c in names if c not in counted}  # an uncounted class -> the counted one

    def count_in(c, f, q) -> int:
        """Class ``c``'s count at position ``q`` from the counted class's fraction ``f``."""
        return count_of(f, q) if c in counted else q + 1 - count_of(f, q)

    def decoded(c):
        if dead[c]:
            return c[len("bad_"):] + "_ok"
        index, period = cycles[c]
        return f"{c}_mod_{period}" if index == 0 else f"{c}_reduced"

    def verdict(*values):
        state = scheme.x0
        for c, v in zip(names, values):
            times = (0 if v else 1) if dead[c] else v
            for _ in range(times):
                state = dfa.step(state, letters[c][0])
        return out(state)

    def mark01(c):
        return lambda t, i: 1 if scheme.marked(t, i, c) else 0

    def build():
        from tracr.rasp import rasp

        prefix = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ).named("prefix")
        ones, fracs, finals = {}, {}, []
        for c in counted:
            if by_token[c]:
                ones[c] = rasp.numerical(rasp.Map(lambda t, c=c: 1 if t in letters[c] else 0,
                                                  rasp.tokens)).named(f"is_{c}")
            else:
                cat = rasp.categorical(rasp.SequenceMap(mark01(c), rasp.tokens, rasp.indices)).named(c)
                ones[c] = rasp.numerical(rasp.Map(lambda b: b, cat)).named(f"is_{c}")
        for c in counted:
            fracs[c] = rasp.numerical(rasp.Aggregate(prefix, ones[c], default=0)).named(f"frac_{c}")
        exact = {c: rasp.categorical(rasp.Map(exact_fraction, fracs[c])).named(f"frac_{c}_exact")
                 for c in counted if not dead[c]}
        for c in names:
            if dead[c] and c in counted:
                finals.append(rasp.categorical(rasp.Map(lambda f: f == 0, fracs[c])).named(decoded(c)))
            elif dead[c]:  # no mark of c: every token is the counted class's
                finals.append(rasp.categorical(rasp.Map(lambda f: f == 1, fracs[other[c]])).named(decoded(c)))
            else:
                finals.append(rasp.categorical(rasp.SequenceMap(
                    lambda f, q, c=c: reduce[c](count_in(c, f, q)), exact[c if c in counted else other[c]],
                    rasp.indices)).named(decoded(c)))
        if len(finals) == 1:
            return rasp.categorical(rasp.Map(verdict, finals[0], simplify=False)).named(task.output)
        return rasp.categorical(rasp.SequenceMap(verdict, *finals)).named(task.output)

    variables = []
    for c in counted:
        what = "/".join(letters[c])
        if by_token[c]:
            variables.append(Variable(f"is_{c}", ("tokens",),
                                      lambda ts, c=c: [1 if t in letters[c] else 0 for t in ts],
                                      f"1 if this token is {what}, else 0", "numerical"))
        else:
            variables.append(Variable(c, ("tokens", "indices"),
                                      lambda ts, ix, c=c: [mark01(c)(t, i) for t, i in zip(ts, ix)],
                                      f"1 if this token is {what} (the first token: marked as its action there), "
                                      f"else 0"))
            variables.append(Variable(f"is_{c}", (c,), lambda b: list(b), f"{c} as a number, for mean attention",
                                      "numerical"))
    for c in counted:
        variables.append(Variable(f"frac_{c}", (f"is_{c}", "indices"), _prefix_mean,
                                  f"fraction of {'/'.join(letters[c])} marks in the prefix", "numerical"))
    for c in counted:
        if not dead[c]:
            variables.append(Variable(f"frac_{c}_exact", (f"frac_{c}",), lambda fs: [exact_fraction(f) for f in fs],
                                      f"the fraction of {c} as an exact category ('3/5')"))
    for c in names:
        if dead[c] and c in counted:
            variables.append(Variable(decoded(c), (f"frac_{c}",), lambda fs: [f == 0 for f in fs],
                                      f"no {'/'.join(letters[c])} mark in the prefix"))
        elif dead[c]:
            variables.append(Variable(decoded(c), (f"frac_{other[c]}",), lambda fs: [f == 1 for f in fs],
                                      f"no {'/'.join(letters[c])} in the prefix: the fraction of "
                                      f"{'/'.join(letters[other[c]])} is 1"))
        else:
            index, period = cycles[c]
            what = f"mod {period}" if index == 0 else f"from {index} on mod {period}"
            how = ("from the fraction and the position" if c in counted else
                   f"the position + 1 minus the number of {other[c]}, from its fraction")
            source = c if c in counted else other[c]
            variables.append(Variable(decoded(c), (f"frac_{source}_exact", "indices"),
                                      lambda fs, ix, c=c: [reduce[c](count_in(c, f, q)) for f, q in zip(fs, ix)],
                                      f"number of {c} in the prefix {what}, {how}"))
    variables.append(Variable(task.output, tuple(decoded(c) for c in names),
                              lambda *vs: [verdict(*v) for v in zip(*vs)],
                              f"{task.output} of the prefix, from the decoded counts"))
    return ProgramSpec(name=f"{task.name}.fractions",
                       description=f"{task.description}: mean attention gives the "
                                   f"fraction{'s' if len(counted) > 1 else ''} of {', '.join(counted)}; MLPs "
                                   f"decode {'them' if len(counted) > 1 else 'it'} with the position",
                       task=task, max_supported_len=FRACTIONS_MAX_LEN, build=build, variables=tuple(variables))
