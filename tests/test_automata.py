"""Automata as tasks and their derived candidates, each against an independent implementation.

Every registered automaton against a membership predicate written from the
language's definition (strings up to length 12); the legal-next-token output
against a brute-force search; MIU's automaton against the hand-written MIU
task and its counts candidate against the hand-written ``miu``, variable by
variable; every candidate's causal model against the reference and against
Tracr's ``rasp.evaluate``; compiled exactness for a few candidates here and for
all of them under ``-m slow``; bad input.
"""

import dataclasses
import itertools
import re
import subprocess
import sys

import numpy as np
import pytest

from rasp_programs import automaton_programs, miu
from rasp_programs.automata import DFAS, TASKS
from rasp_programs.automaton import Dfa, automaton_tasks, parse_legal
from rasp_programs.automaton_reset import UndefinedAggregate
from rasp_programs.errors import ToolkitError
from rasp_programs.registry import derived_candidates, expand_hypotheses, get_program, get_task, task_programs


def strings(alphabet, max_len):
    return (s for n in range(1, max_len + 1) for s in itertools.product(alphabet, repeat=n))


def _blocks(s):
    return [(k, len(list(g))) for k, g in itertools.groupby(s)]


def _dyck(n):
    def member(s):
        depth = 0
        for c in s:
            depth += 1 if c == "a" else -1
            if not 0 <= depth <= n:
                return False
        return depth == 0
    return member


# Written from each language's definition, not from its automaton.
PREDICATES = {
    "tomita1": lambda s: set(s) == {"1"},
    "tomita2": lambda s: s == "10" * (len(s) // 2),
    "tomita3": lambda s: not any(a == "1" and m % 2 and b == "0" and n % 2
                                 for (a, m), (b, n) in zip(_blocks(s), _blocks(s)[1:])),
    "tomita4": lambda s: "000" not in s,
    "tomita5": lambda s: s.count("0") % 2 == 0 and s.count("1") % 2 == 0,
    "tomita6": lambda s: (s.count("0") - s.count("1")) % 3 == 0,
    "tomita7": lambda s: re.fullmatch("0*1*0*1*", s) is not None,
    "dyck2": _dyck(2), "dyck3": _dyck(3), "dyck4": _dyck(4),
    "aa": lambda s: re.fullmatch("(aa)*", s) is not None,
    "aaaa": lambda s: re.fullmatch("(aaaa)*", s) is not None,
    "ab": lambda s: re.fullmatch("(ab)*", s) is not None,
    "parity": lambda s: s.count("1") % 2 == 1,
    "miu_dfa": miu.is_theorem,
}


def test_every_language_is_registered_with_both_tasks():
    assert set(DFAS) == set(PREDICATES)
    assert set(TASKS) == set(DFAS) | {f"{n}_next" for n in DFAS}
    for name in DFAS:
        assert get_task(name) is TASKS[name] and get_task(f"{name}_next") is TASKS[f"{name}_next"]


@pytest.mark.parametrize("name", sorted(PREDICATES))
def test_automaton_agrees_with_its_definition(name):
    dfa = DFAS[name]
    n = 0
    for s in strings(dfa.alphabet, 12 if len(dfa.alphabet) == 2 else 9):
        assert dfa.accepts(s) == PREDICATES[name]("".join(s)), s
        n += 1
    assert n > 2_000


def test_miu_dfa_is_the_miu_task_on_all_88572_strings():
    task, dfa = get_task("miu"), DFAS["miu_dfa"]
    inputs = list(strings(dfa.alphabet, 10))
    assert len(inputs) == 88_572 and TASKS["miu_dfa"].output == task.output == "theorem"
    for x in inputs:
        assert dfa.membership(x) == task.reference(x), x
    assert TASKS["miu_dfa"].language.impossible == ("M", "U")


@pytest.mark.parametrize("name", ["tomita3", "tomita4", "dyck2", "ab", "miu_dfa"])
def test_legal_next_tokens_by_brute_force(name):
    dfa = DFAS[name]
    horizon = len(dfa.states)  # an accepting state reachable at all is reachable within |Q| steps
    ext = [()] + list(strings(dfa.alphabet, horizon))
    for x in strings(dfa.alphabet, 6 if len(dfa.alphabet) == 2 else 4):
        for i, value in enumerate(TASKS[f"{name}_next"].reference(x)):
            p = x[: i + 1]
            legal = {a for a in dfa.alphabet if any(dfa.accepts(p + (a,) + e) for e in ext)}
            assert parse_legal(value) == legal | ({"END"} if dfa.accepts(p) else set()), (p, value)


def test_data_mix_covers_every_reachable_state_at_every_length():
    dfa, task = DFAS["tomita4"], TASKS["tomita4"]
    pools = task.data.pools(np.random.default_rng(0), task.vocab, 8, 400)
    assert set(pools) == {n for n, _ in task.data.shares}
    seen = {(len(x), dfa.run(x)[-1]) for x in pools["states"]}
    want = {(len(x), dfa.run(x)[-1]) for x in strings(dfa.alphabet, 8)}
    assert seen == want
    assert all(dfa.accepts(x) for x in pools["members"])
    assert pools["hard_negative"] and not any(dfa.accepts(x) for x in pools["hard_negative"])


# -- candidates --------------------------------------------------------------------

CANDIDATES = sorted(p.name for t in TASKS for p in task_programs(t))
rasp = pytest.importorskip("tracr.rasp.rasp")
from test_programs import named_sops  # noqa: E402 - the one helper, shared with test_programs.py


def test_which_constructions_apply():
    made = {t: [p.name.split(".")[1] for p in task_programs(t)] for t in DFAS}
    assert {t for t, c in made.items() if "counts" in c} == {"tomita1", "tomita5", "tomita6", "aa", "aaaa",
                                                              "parity", "miu_dfa"}
    assert {t for t, c in made.items() if "window" in c} == {"tomita1", "tomita2", "tomita4", "ab"}
    assert {t for t, c in made.items() if "reset" in c} == {"tomita1", "tomita2", "tomita4", "aa", "aaaa", "ab",
                                                             "miu_dfa"}
    assert {t for t, c in made.items() if "fractions" in c} == {t for t, c in made.items() if "counts" in c}
    assert all("prefix" in c for c in made.values())
    assert "no letter resets it" in dict(automaton_programs.derive("tomita7").skipped)["reset"]
    assert "not a function of the last 2 tokens" in dict(automaton_programs.derive("dyck2").skipped)["window"]
    skipped = dict(automaton_programs.derive("tomita4").skipped)
    assert "do not commute" in skipped["counts"]
    assert len(CANDIDATES) == 2 * sum(len(c) for c in made.values())


@pytest.mark.parametrize("name", CANDIDATES)
def test_candidate_causal_model_is_exact_and_matches_rasp(name):
    spec = get_program(name)
    assert spec.task.causal and spec.variables[-1].name == spec.output
    for x in spec.enumerate_inputs(8 if len(spec.vocab) == 2 else 6):
        assert spec.run(x)[spec.output] == spec.reference(x), x
    program = spec.build()
    sops = named_sops(program)
    assert set(sops) == {v.name for v in spec.variables}
    for var in spec.variables:
        assert var.encoding == ("numerical" if rasp.is_numerical(sops[var.name]) else "categorical")
    for x in spec.enumerate_inputs(4):
        values = spec.run(x)
        full = rasp.evaluate(program, list(x))
        for var_name, sop in sops.items():
            assert rasp.evaluate(sop, list(x)) == values[var_name], (x, var_name)
        # causal as RASP: the whole string's output at i is the prefix's own output
        assert full == [rasp.evaluate(program, list(x[: i + 1]))[-1] for i in range(len(x))]


def test_miu_counts_candidate_is_the_hand_written_miu():
    hand, gen = get_program("miu"), get_program("miu_dfa.counts")
    assert [v.name for v in gen.variables] == [v.name for v in hand.variables]
    for x in hand.enumerate_inputs(10):
        assert gen.run(x) == hand.run(x), x


def test_miu_fractions_candidate_is_the_hand_written_miu_mean():
    """Aligned by name: the same variables with the same encodings and values on every string up to length 7
    (length 10, all 88,572 strings, under -m slow)."""
    _same_program(get_program("miu_mean"), get_program("miu_dfa.fractions"), 7)


@pytest.mark.slow
def test_miu_fractions_candidate_is_miu_mean_on_all_88572_strings():
    _same_program(get_program("miu_mean"), get_program("miu_dfa.fractions"), 10)


def _same_program(hand, gen, max_len):
    assert [(v.name, v.encoding) for v in gen.variables] == [(v.name, v.encoding) for v in hand.variables]
    sops_hand, sops_gen = named_sops(hand.build()), named_sops(gen.build())
    assert {n: type(s).__name__ for n, s in sops_gen.items()} == {n: type(s).__name__ for n, s in sops_hand.items()}
    for x in hand.enumerate_inputs(max_len):
        assert gen.run(x) == hand.run(x), x


def test_last_reset_reads_the_last_reset():
    """Tomita 4: the last 1 resets, then the 0s since it are counted; 1 0 0 0 1 0 dies at position 3 for good."""
    values = get_program("tomita4.reset").run(tuple("100010"))
    assert values["reset_at"] == [0, -1, -1, -1, 4, -1] and values["resets"] == [1, 1, 1, 1, 2, 2]
    assert values["since_0"] == [0, 1, 2, 3, 0, 1] and values["kill_at"] == [-1, -1, -1, 3, 4, -1]
    assert values["member"] == [True, True, True, False, False, False]


def test_last_reset_under_an_intervention_reads_only_the_prefix_and_one_key():
    """The attention to the last reset is causally masked and categorical: a count of resets set by hand reads
    the reset with that ordinal at or before the position, and a key that selects nothing there (Tracr writes
    0) is an undefined counterfactual, not a read of a later position. Before this, setting ``resets`` read
    future keys, so compiled ``tomita4.reset`` failed its own swaps of ``resets`` (IIA 0.31) and was not
    supported on itself."""
    spec = get_program("tomita4.reset")
    tokens = tuple("10010")
    assert spec.run(tokens)["last_count_0"][4] == 2  # the 0s up to the reset at position 3
    assert spec.run(tokens, {"resets": {4: 1}})["last_count_0"][4] == 0  # the reset at position 0
    with pytest.raises(UndefinedAggregate, match="key 3 selects 0"):  # ordinal 3 is at position 4, after q = 1
        spec.run(tuple("10011"), {"resets": {1: 3}})


def test_program_names_resolve():
    first = get_program("tomita5")
    assert first.name == "tomita5" and first.task is TASKS["tomita5"] and "tomita5.counts" in first.description
    assert get_program("tomita4").variables == get_program("tomita4.window").variables
    assert get_program("dyck2").variables == get_program("dyck2.prefix").variables
    assert get_program("dyck2_next.prefix").output == "legal_next"
    with pytest.raises(ToolkitError, match="tomita4.counts: skipped, the actions of '0' and '1' do not commute"):
        get_program("tomita4.counts")
    with pytest.raises(ToolkitError, match="tomita7.reset: skipped, no letter resets it"):
        get_program("tomita7.reset")
    with pytest.raises(ToolkitError, match="unknown construction 'nope'"):
        get_program("tomita4.nope")
    with pytest.raises(ToolkitError, match="task 'miu' has no automaton"):
        automaton_programs.derive("miu")


# -- bad input ---------------------------------------------------------------------


def _toy(**kw):
    base = dict(name="toy", description="toy", alphabet=("a", "b"), states=("s", "t"),
                transitions=(("s", "a", "t"), ("s", "b", "s"), ("t", "a", "t"), ("t", "b", "s")),
                start="s", accepting=frozenset({"t"}))
    return Dfa(**{**base, **kw})


@pytest.mark.parametrize("change, message", [
    (dict(transitions=(("s", "a", "t"), ("s", "b", "s"), ("t", "a", "t"))), "missing transition from state 't' on 'b'"),
    (dict(transitions=(("s", "a", "s"), ("s", "b", "s"), ("t", "a", "t"), ("t", "b", "t"))),
     "no accepting state is reachable from 's'"),
    (dict(alphabet=("a", "END"), transitions=(("s", "a", "t"), ("s", "END", "s"), ("t", "a", "t"),
                                              ("t", "END", "s"))), "'END' clashes with a reserved token"),
    (dict(accepting=frozenset({"u"})), "must be among"),
])
def test_bad_automata_give_one_line_errors(change, message):
    with pytest.raises(ToolkitError, match=message) as err:
        _toy(**change)
    assert "\n" not in str(err.value)


def test_too_large_monoid_is_refused_with_its_size():
    """Cycle, swap and merge on 4 states generate all 4^4 = 256 transformations."""
    nxt = {"c": lambda i: (i + 1) % 4, "s": lambda i: {0: 1, 1: 0}.get(i, i), "m": lambda i: 1 if i == 0 else i}
    dfa = Dfa(name="full", description="full transformation monoid", alphabet=("c", "s", "m"),
              states=tuple(f"x{i}" for i in range(4)), start="x0", accepting=frozenset({"x3"}),
              transitions=tuple((f"x{i}", a, f"x{f(i)}") for i in range(4) for a, f in nxt.items()))
    assert len(dfa.monoid) == 256
    derived = automaton_programs.derive_from(automaton_tasks(dfa)[0], dfa)
    assert not derived.candidates
    assert dict(derived.skipped)["prefix"] == "its transition monoid has 256 elements; the limit is 64"


def test_auto_hypotheses_are_the_derived_candidates():
    assert derived_candidates("tomita5") == ("tomita5.counts", "tomita5.fractions", "tomita5.prefix")
    assert derived_candidates("tomita4.window") == derived_candidates("tomita4")
    assert expand_hypotheses("dyck2_next", ["auto"]) == ["dyck2_next.prefix"]
    assert expand_hypotheses("miu", ["miu", "miu_mean"]) == ["miu", "miu_mean"]
    with pytest.raises(ToolkitError, match="stands alone"):
        expand_hypotheses("tomita5", ["auto", "tomita5.counts"])


def test_auto_hypotheses_for_a_task_without_automaton_is_one_line(tmp_path, capsys):
    from compare import __main__ as compare_cli

    r = subprocess.run([sys.executable, "-m", "rasp_programs", "candidates", "miu"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert compare_cli.main(["--program", "miu", "--hypotheses", "auto", "--reports", str(tmp_path / "reports"),
                             "--artifacts", str(tmp_path / "artifacts")]) == 2
    err = capsys.readouterr().err
    for line in (r.stderr, err):
        assert line.count("\n") == 1 and "HYPOTHESES=auto derives candidates from an automaton, and task 'miu'" in line
    assert not any(tmp_path.iterdir())  # nothing written


def test_cli_refuses_a_skipped_construction_in_one_line():
    r = subprocess.run([sys.executable, "-m", "compiled", "--program", "ab.counts"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "ab.counts: skipped" in r.stderr


# -- compiled ----------------------------------------------------------------------

FAST_COMPILED = ["tomita5.counts", "tomita4.window", "dyck2_next.prefix", "tomita5.fractions", "aa.fractions"]  # reset: slow only


def _compiled_exact(name, max_len=None):
    pytest.importorskip("jax")
    from compiled import verify
    from compiled.compile import compile_program
    from compiled.export import to_torch

    spec = get_program(name)
    cp = compile_program(spec, max_len or spec.default_max_len)
    model, _ = to_torch(cp)
    sample = spec.sample_inputs(np.random.default_rng(0), 32, cp.max_len)
    assert verify.against_tracr(cp, model, sample)["passed"]
    r = verify.exhaustive(spec, model.float(), cp.max_len)
    assert r["exhaustive"] and r["passed"], r


@pytest.mark.parametrize("name", FAST_COMPILED)
def test_compiled_candidate_is_exact(name):
    _compiled_exact(name, max_len=6)  # the default length (10) for all candidates is the slow test below


@pytest.mark.slow
@pytest.mark.parametrize("name", CANDIDATES)
def test_every_compiled_candidate_is_exact(name):
    _compiled_exact(name)
