"""The ``reset`` construction: attention to the last reset, plus what follows it.

A letter *resets* the automaton when, after the first token, it sends every
live state to one state (or to the dead one): Tomita 4's ``1``, Tomita 1's
and ``(aa)*``'s killing letters, both letters of Tomita 2 and ``(ab)*``,
MIU's ``M`` ("an M after the first position"). Position 0 always counts as a
reset (the start is one). The letters that are not resets and not the
identity must all act alike (one counted class ``c``), so the state after the
last reset depends only on how many of them came since.

Variables, in order (``here`` and the kill part only where a dead state
exists):
  ``reset_at``       this position if it resets (position 0 always), else -1;
  ``resets``         the number of resets in the prefix (``SelectorWidth``);
  ``reset_state``    the state right after this token if it resets, else ``-``;
  ``reset_key``      ``resets`` at a reset, else 0: the last reset at or
                     before q is the one key equal to q's ``resets``, so one
                     head attends to exactly that position;
  ``<c>_at``, ``count_<c>``  the counted class, as in ``counts``;
  ``last_reset``     ``reset_state`` at the last reset (the state itself when
                     no class is counted: then it is called ``state``);
  ``last_count_<c>``, ``since_<c>``  the count at the last reset, and the
                     count since (reduced by the action's threshold and period);
  ``state``          the state, provided no step so far went to the dead state;
  ``prev_state``     ``state`` one position back (a previous-token head);
  ``here``           ``(token, position)``;
  ``kill_at``        this position if its step from ``prev_state`` (from the
                     start at position 0) goes to the dead state, else -1;
  ``kills``          the number of such steps in the prefix;
  the output         from ``state``, or the dead state after a kill.

``state`` is right wherever every earlier state was live (a reset sends a
live state to its one live image; the counted letters act as a power), so the
first step into the dead state is always seen by ``kill_at``.
"""

from __future__ import annotations

from rasp_programs.automaton import Dfa
from rasp_programs.automaton_fractions import power_cycle, reducer
from rasp_programs.spec import ProgramSpec, Task, Variable

NOT_RESET = "-"


class UndefinedAggregate(ValueError):
    """A categorical attention that selects no value or several distinct ones (only under an intervention)."""


def _in_prefix(k, q) -> bool:
    return 0 <= k <= q


def _count_marked_prefix(marked, indices):
    return [sum(1 for k in marked if 0 <= k <= q) for q in indices]


def reset_program(task: Task, dfa: Dfa, out, selector_width_max_len: int) -> ProgramSpec | str:
    """The candidate ``<task>.reset``, or why the construction does not apply."""
    dead_states = sorted(dfa.reachable - dfa.live)
    if any(dfa.step(s, a) != s for s in dead_states for a in dfa.alphabet) or len(dead_states) > 1:
        return "its dead states are not one absorbing sink"
    dead = dead_states[0] if dead_states else None
    after = dfa.closure({dfa.step(dfa.start, a) for a in dfa.alphabet})  # closed: every state after a token
    live = [s for s in after if s != dead]
    if not live:
        return "no live state after the first token"

    def act(a):
        return tuple(dfa.step(s, a) for s in live)

    identity = [a for a in dfa.alphabet if act(a) == tuple(live)]
    resets: dict[str, str] = {}
    for a in dfa.alphabet:
        image = sorted({t for t in act(a) if t != dead})
        if a not in identity and len(image) <= 1:
            resets[a] = image[0] if image else dead
    if not resets:
        return "no letter resets it (sends every live state to one state or to the dead state)"
    rest = [a for a in dfa.alphabet if a not in resets and a not in identity]
    if len({act(a) for a in rest}) > 1:
        return (f"the letters {', '.join(rest)} that follow the last reset act in {len({act(a) for a in rest})} "
                f"different ways (one counted class at most)")
    counted = "".join(rest)
    reduce = reducer(*power_cycle(dfa, rest[0], after)) if rest else None

    def reset_state(t, i):
        if i == 0:
            return dfa.step(dfa.start, t)
        return resets.get(t, NOT_RESET)

    def real(state):
        # Tracr infers value sets over every combination of inputs, so it also asks about NOT_RESET, which an
        # attention to the last reset never reads on a real input; any state serves there.
        return dfa.start if state == NOT_RESET else state

    def advance(state, n):
        state = real(state)
        for _ in range(n):
            state = dfa.step(state, rest[0])
        return state

    def since(n, m):
        return reduce(n - m)

    def kill(prev, here):
        t, i = here
        return i if (dfa.step(dfa.start, t) if i == 0 else dfa.step(real(prev), t)) == dead else -1

    def verdict(kills, state):
        return out(dead if kills else real(state))

    reset_at = lambda t, i: i if i == 0 or t in resets else -1  # noqa: E731
    reset_key = lambda n, at: n if at >= 0 else 0  # noqa: E731
    state_name = "last_reset" if rest else "state"

    def build():
        from tracr.rasp import rasp

        at = rasp.categorical(rasp.SequenceMap(reset_at, rasp.tokens, rasp.indices)).named("reset_at")
        n = rasp.categorical(rasp.SelectorWidth(rasp.Select(at, rasp.indices, _in_prefix).named("prefix_resets")
                                                )).named("resets")
        value = rasp.categorical(rasp.SequenceMap(reset_state, rasp.tokens, rasp.indices)).named("reset_state")
        key = rasp.categorical(rasp.SequenceMap(reset_key, n, at)).named("reset_key")
        last = rasp.Select(key, n, lambda k, q: k == q).named("select_last_reset")
        state = rasp.categorical(rasp.Aggregate(last, value)).named(state_name)
        if rest:
            c_at = rasp.categorical(rasp.SequenceMap(lambda t, i: i if t in rest else -1, rasp.tokens,
                                                     rasp.indices)).named(f"{counted}_at")
            count = rasp.categorical(rasp.SelectorWidth(rasp.Select(c_at, rasp.indices, _in_prefix).named(
                f"prefix_{counted}"))).named(f"count_{counted}")
            then = rasp.categorical(rasp.Aggregate(last, count)).named(f"last_count_{counted}")
            gap = rasp.categorical(rasp.SequenceMap(since, count, then)).named(f"since_{counted}")
            state = rasp.categorical(rasp.SequenceMap(advance, state, gap)).named("state")
        if dead is None:
            return rasp.categorical(rasp.Map(lambda s: out(real(s)), state)).named(task.output)
        prev = rasp.categorical(rasp.Aggregate(rasp.Select(rasp.indices, rasp.indices, _back).named("select_prev"),
                                               state)).named("prev_state")
        here = rasp.categorical(rasp.SequenceMap(lambda t, i: (t, i), rasp.tokens, rasp.indices)).named("here")
        kill_at = rasp.categorical(rasp.SequenceMap(kill, prev, here)).named("kill_at")
        kills = rasp.categorical(rasp.SelectorWidth(
            rasp.Select(kill_at, rasp.indices, _in_prefix).named("prefix_kill"))).named("kills")
        return rasp.categorical(rasp.SequenceMap(verdict, kills, state)).named(task.output)

    def last_of(values, keys, ns):
        # The attention at q reads keys k <= q (the compiled model is causally masked). A categorical Aggregate
        # is defined only where it selects one distinct value: with none Tracr writes 0 (RASP says None), with
        # several a mixture. Neither happens on a real input; a variable set by hand can make either happen,
        # and that counterfactual is undefined (compare.interventions then skips the pair).
        out = []
        for q, m in enumerate(ns):
            found = {values[k] for k in range(q + 1) if keys[k] == m}
            if len(found) != 1:
                raise UndefinedAggregate(f"position {q}: key {m!r} selects {len(found)} distinct values")
            out.append(found.pop())
        return out

    letters = "/".join(resets)
    variables = [
        Variable("reset_at", ("tokens", "indices"), lambda ts, ix: [reset_at(t, i) for t, i in zip(ts, ix)],
                 f"position of this token if it resets ({letters}; position 0 always), else -1"),
        Variable("resets", ("reset_at", "indices"), _count_marked_prefix, "number of resets in the prefix"),
        Variable("reset_state", ("tokens", "indices"), lambda ts, ix: [reset_state(t, i) for t, i in zip(ts, ix)],
                 f"the state right after this token if it resets, else {NOT_RESET!r}"),
        Variable("reset_key", ("resets", "reset_at"), lambda ns, ats: [reset_key(n, a) for n, a in zip(ns, ats)],
                 "the ordinal of this reset (0 if none): the key the last reset is found by"),
    ]
    if rest:
        variables += [
            Variable(f"{counted}_at", ("tokens", "indices"),
                     lambda ts, ix: [i if t in rest else -1 for t, i in zip(ts, ix)],
                     f"position of this token if it is {'/'.join(rest)}, else -1"),
            Variable(f"count_{counted}", (f"{counted}_at", "indices"), _count_marked_prefix,
                     f"number of {'/'.join(rest)} in the prefix"),
        ]
    variables.append(Variable(state_name, ("reset_state", "reset_key", "resets"), last_of,
                              "the state right after the last reset" if rest else
                              "the state after the last reset, which is the state while no step went dead"))
    if rest:
        variables += [
            Variable(f"last_count_{counted}", (f"count_{counted}", "reset_key", "resets"), last_of,
                     f"number of {'/'.join(rest)} up to the last reset"),
            Variable(f"since_{counted}", (f"count_{counted}", f"last_count_{counted}"),
                     lambda ns, ms: [since(n, m) for n, m in zip(ns, ms)],
                     f"number of {'/'.join(rest)} since the last reset (reduced to the action's cycle)"),
            Variable("state", ("last_reset", f"since_{counted}"),
                     lambda ss, gs: [advance(s, g) for s, g in zip(ss, gs)],
                     "the state, provided no step so far went to the dead state"),
        ]
    if dead is None:
        variables.append(Variable(task.output, ("state",), lambda ss: [out(real(s)) for s in ss],
                                  f"{task.output} of the prefix, from the state"))
    else:
        variables += [
            Variable("prev_state", ("state", "indices"),
                     lambda ss, ix: [ss[q - 1 if q >= 1 else q] for q in ix],
                     "state one position back (itself at position 0)"),
            Variable("here", ("tokens", "indices"), lambda ts, ix: list(zip(ts, ix)), "(token, position)"),
            Variable("kill_at", ("prev_state", "here"), lambda ps, hs: [kill(p, h) for p, h in zip(ps, hs)],
                     "position of this token if its step goes to the dead state, else -1"),
            Variable("kills", ("kill_at", "indices"), _count_marked_prefix,
                     "number of steps into the dead state in the prefix"),
            Variable(task.output, ("kills", "state"), lambda ks, ss: [verdict(k, s) for k, s in zip(ks, ss)],
                     f"{task.output} of the prefix: dead after a kill, else from the state"),
        ]
    what = f", then counts {'/'.join(rest)} since" if rest else ""
    return ProgramSpec(name=f"{task.name}.reset",
                       description=f"{task.description}: one head attends to the last reset ({letters}){what}; "
                                   f"a SelectorWidth head remembers a step into the dead state",
                       task=task, max_supported_len=selector_width_max_len, build=build, variables=tuple(variables))


def _back(k, q) -> bool:
    return k == (q - 1 if q >= 1 else q)
