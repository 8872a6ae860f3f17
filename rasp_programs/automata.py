"""The registered regular languages, each a ``Dfa``, and their tasks.

  ``tomita1`` … ``tomita7``  over ``0 1``, the definitions of Tomita (1982) as
      used by Weiss et al. (2018): 1: ``1*``; 2: ``(10)*``; 3: no odd-length
      block of 1s immediately followed by an odd-length block of 0s; 4: no
      ``000``; 5: even numbers of 0s and of 1s; 6: #0 − #1 ≡ 0 (mod 3);
      7: ``0*1*0*1*``.
  ``dyck2`` … ``dyck4``      bounded Dyck-1 over ``a b`` (``a`` opens, ``b``
      closes): balanced, never below 0, depth at most n.
  ``aa``, ``aaaa``, ``ab``   ``(aa)*``, ``(aaaa)*``, ``(ab)*`` over ``a b``. A
      one-letter alphabet would leave one input per length (nothing to
      classify), so ``b`` is there and kills ``(aa)*`` and ``(aaaa)*``.
  ``parity``                 over ``0 1``: an odd number of 1s (PARITY).
  ``miu_dfa``                MIU's criterion as an automaton: ``M`` first, no
      other ``M``, the ``I`` count not a multiple of 3; its output is called
      ``theorem`` and its impossible string stays ``MU``.

Each language has a membership task ``<name>`` and a legal-next-token task
``<name>_next`` (``rasp_programs.automaton``).
"""

from __future__ import annotations

from rasp_programs.automaton import Dfa, automaton_tasks
from rasp_programs.spec import Task

BITS = ("0", "1")
AB = ("a", "b")
DEAD = "dead"


def _dfa(name: str, description: str, alphabet, table: dict[str, dict[str, str]], start: str, accepting,
         **kw) -> Dfa:
    """A ``Dfa`` from ``{state: {symbol: next}}``; symbols a state does not list go to ``dead``."""
    complete = all(a in row for row in table.values() for a in alphabet)
    states = tuple(dict.fromkeys([*table] + ([] if complete else [DEAD])))
    full = {s: {a: table.get(s, {}).get(a, DEAD) for a in alphabet} for s in states}
    return Dfa(name=name, description=description, alphabet=tuple(alphabet), states=states,
               transitions=tuple((s, a, t) for s, row in full.items() for a, t in row.items()),
               start=start, accepting=frozenset(accepting), **kw)


def _cycle(name: str, description: str, alphabet, counted: str, period: int, kill: str | None, accept) -> Dfa:
    """Count ``counted`` mod ``period``; ``kill`` (if any) goes to ``dead``, other symbols keep the state."""
    table = {}
    for k in range(period):
        row = {a: f"c{k}" for a in alphabet if a != kill}
        row[counted] = f"c{(k + 1) % period}"
        table[f"c{k}"] = row
    return _dfa(name, description, alphabet, table, "c0", [f"c{k}" for k in accept])


def _dyck(n: int) -> Dfa:
    table = {f"d{k}": {**({"a": f"d{k + 1}"} if k < n else {}), **({"b": f"d{k - 1}"} if k > 0 else {})}
             for k in range(n + 1)}
    return _dfa(f"dyck{n}", f"bounded Dyck-1, depth <= {n} (a opens, b closes)", AB, table, "d0", ["d0"])


LANGUAGES: tuple[Dfa, ...] = (
    _dfa("tomita1", "Tomita 1: 1*", BITS, {"q0": {"1": "q0"}}, "q0", ["q0"]),
    _dfa("tomita2", "Tomita 2: (10)*", BITS, {"q0": {"1": "q1"}, "q1": {"0": "q0"}}, "q0", ["q0"]),
    _dfa("tomita3", "Tomita 3: no odd block of 1s followed by an odd block of 0s", BITS,
         {"even": {"0": "even", "1": "odd1"}, "odd1": {"0": "odd0", "1": "even"},
          "odd0": {"0": "even0"}, "even0": {"0": "odd0", "1": "odd1"}}, "even", ["even", "odd1", "even0"]),
    _dfa("tomita4", "Tomita 4: no 000", BITS,
         {"z0": {"0": "z1", "1": "z0"}, "z1": {"0": "z2", "1": "z0"}, "z2": {"1": "z0"}}, "z0", ["z0", "z1", "z2"]),
    _dfa("tomita5", "Tomita 5: even number of 0s and of 1s", BITS,
         {f"e{i}{j}": {"0": f"e{1 - i}{j}", "1": f"e{i}{1 - j}"} for i in (0, 1) for j in (0, 1)}, "e00", ["e00"]),
    _dfa("tomita6", "Tomita 6: #0 - #1 = 0 mod 3", BITS,
         {f"m{k}": {"0": f"m{(k + 1) % 3}", "1": f"m{(k - 1) % 3}"} for k in range(3)}, "m0", ["m0"]),
    _dfa("tomita7", "Tomita 7: 0*1*0*1*", BITS,
         {"p0": {"0": "p0", "1": "p1"}, "p1": {"0": "p2", "1": "p1"}, "p2": {"0": "p2", "1": "p3"},
          "p3": {"1": "p3"}}, "p0", ["p0", "p1", "p2", "p3"]),
    _dyck(2), _dyck(3), _dyck(4),
    _cycle("aa", "(aa)*", AB, "a", 2, "b", [0]),
    _cycle("aaaa", "(aaaa)*", AB, "a", 4, "b", [0]),
    _dfa("ab", "(ab)*", AB, {"s0": {"a": "s1"}, "s1": {"b": "s0"}}, "s0", ["s0"]),
    _cycle("parity", "parity: an odd number of 1s", BITS, "1", 2, None, [1]),
    _dfa("miu_dfa", "MIU theorems as an automaton", ("M", "I", "U"),
         {"start": {"M": "i0"}, **{f"i{k}": {"I": f"i{(k + 1) % 3}", "U": f"i{k}"} for k in range(3)}},
         "start", ["i1", "i2"], member="theorem", impossible=("M", "U")),
)

DFAS: dict[str, Dfa] = {d.name: d for d in LANGUAGES}
_PAIRS = tuple((d, t) for d in LANGUAGES for t in automaton_tasks(d))  # each Task built once: tasks compare by `is`
TASKS: dict[str, Task] = {t.name: t for _, t in _PAIRS}
TASK_DFA: dict[str, Dfa] = {t.name: d for d, t in _PAIRS}
