"""Each registered program: Tracr's RASP evaluator, the plain-Python causal
model and the independent reference agree on every input."""

import pytest

from rasp_programs.errors import ToolkitError
from rasp_programs.registry import PROGRAMS, get_program, resolve_max_len

rasp = pytest.importorskip("tracr.rasp.rasp")


def named_sops(program):
    """Every SOp reachable from ``program``, by the name given with .named()."""
    seen, stack = {}, [program]
    while stack:
        expr = stack.pop()
        if isinstance(expr, rasp.SOp) and expr.label not in (rasp.tokens.label, rasp.indices.label):
            seen[expr.name] = expr
        stack.extend(expr.children)
    return seen


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_every_variable_matches_the_rasp_evaluator(name):
    spec = get_program(name)
    program = spec.build()
    sops = named_sops(program)
    assert set(sops) == {v.name for v in spec.variables}, "every named SOp has a plain-Python twin"
    n = 0
    for tokens in spec.enumerate_inputs(min(spec.default_max_len, 6)):
        values = spec.run(tokens)
        for var_name, sop in sops.items():
            assert rasp.evaluate(sop, list(tokens)) == values[var_name], (tokens, var_name)
        assert values[spec.output] == spec.reference(tokens), tokens
        n += 1
    assert n == spec.num_inputs(min(spec.default_max_len, 6))


def test_miu_program_is_causal_as_rasp():
    """Evaluated on a whole string, every position carries that prefix's verdict."""
    spec = get_program("miu")
    program = spec.build()
    for tokens in spec.enumerate_inputs(7):
        full = rasp.evaluate(program, list(tokens))
        assert full == [rasp.evaluate(program, list(tokens[: i + 1]))[-1] for i in range(len(tokens))]


def test_interventions_recompute_downstream_only():
    spec = get_program("miu")
    tokens = tuple("MIIU")
    base = spec.run(tokens)
    assert base["count_I"] == [0, 1, 2, 2] and base["theorem"] == [False, True, True, True]
    hit = spec.run(tokens, interventions={"count_I": {3: 3}})
    assert hit["theorem"] == [False, True, True, False]
    assert hit["I_at"] == base["I_at"]  # upstream untouched
    hit = spec.run(tokens, interventions={"I_at": {1: -1}})  # hide the first I
    assert hit["count_I"] == [0, 0, 1, 1] and hit["theorem"] == [False, False, True, True]
    with pytest.raises(ToolkitError, match="unknown variable"):
        spec.run(tokens, interventions={"nope": {0: 1}})


def test_registry_errors():
    with pytest.raises(ToolkitError, match="unknown program 'nope'; known programs: hist, miu, sort"):
        get_program("nope")
    spec = get_program("miu")
    assert resolve_max_len(spec, "") == 10 and resolve_max_len(spec, "7") == 7
    for bad in ("0", "-3", "25", "ten"):
        with pytest.raises(ToolkitError, match="MAX_LEN"):
            resolve_max_len(spec, bad)


def test_token_checks():
    spec = get_program("miu")
    assert spec.parse("MIU", 10) == ("M", "I", "U")
    with pytest.raises(ToolkitError, match="token 'X' is not in the vocabulary"):
        spec.parse("MIX", 10)
    with pytest.raises(ToolkitError, match="longer than the model's maximum 10"):
        spec.parse("M" + "I" * 10, 10)
