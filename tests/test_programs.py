"""Each registered program: Tracr's RASP evaluator, the plain-Python causal
model and the independent reference agree on every input. Tasks are data:
programs of one task share it, and no stage branches on a program's name."""

import re
from pathlib import Path

import pytest

from rasp_programs import miu
from rasp_programs.errors import ToolkitError
from rasp_programs.registry import PROGRAMS, TASKS, get_program, get_task, resolve_max_len, task_programs

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
    for var in spec.variables:  # the causal model declares each SOp's RASP encoding
        assert var.encoding == ("numerical" if rasp.is_numerical(sops[var.name]) else "categorical"), var.name
    n = 0
    for tokens in spec.enumerate_inputs(min(spec.default_max_len, 6)):
        values = spec.run(tokens)
        for var_name, sop in sops.items():
            assert rasp.evaluate(sop, list(tokens)) == values[var_name], (tokens, var_name)
        assert values[spec.output] == spec.reference(tokens), tokens
        n += 1
    assert n == spec.num_inputs(min(spec.default_max_len, 6))


MIU_PROGRAMS = [p.name for p in task_programs("miu")]


@pytest.mark.parametrize("name", MIU_PROGRAMS)
def test_miu_program_is_causal_as_rasp(name):
    """Evaluated on a whole string, every position carries that prefix's verdict."""
    spec = get_program(name)
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


def test_interventions_on_the_other_miu_programs():
    mean = get_program("miu_mean")
    base = mean.run(tuple("MIUII"))
    assert base["frac_I"] == [0, 1 / 2, 1 / 3, 1 / 2, 3 / 5] and base["frac_I_exact"][-1] == "3/5"
    assert base["I_mod_3"] == [0, 1, 1, 2, 0] and base["theorem"] == [False, True, True, True, False]
    # A fraction from another position (2/5 read at length 5 means two I's): accepted.
    hit = mean.run(tuple("MIUII"), interventions={"frac_I": {4: 2 / 5}})
    assert hit["frac_I_exact"][4] == "2/5" and hit["I_mod_3"][4] == 2 and hit["theorem"][4] is True
    assert hit["is_I"] == base["is_I"]
    first = get_program("miu_first")
    base = first.run(tuple("MIUM"))
    assert base["first"] == ["M"] * 4 and base["count_M"] == [1, 1, 1, 2] and base["theorem"][-1] is False
    # Tell position 2 of "IMI" that the input started with M: its one M and one I make a theorem there.
    hit = first.run(tuple("IMI"), interventions={"first": {2: "M"}})
    assert hit["M_ok"] == [False, False, True] and hit["theorem"] == [False, False, True]
    u = get_program("miu_u")
    assert u.run(tuple("MIUI"))["non_U_mod_3"] == [0, 1, 1, 2]


def test_miu_mod3_scans_residues_and_takes_interventions():
    spec = get_program("miu_mod3")
    base = spec.run(tuple("MIUIIII"))
    assert base["prev_token"] == list("MMIUIII")  # position 0 reads itself; the scan ignores that read
    assert base["I_mod3_at"][:3] == [(0, 0), (1, 1), (0, 2)]
    assert base["last_4"] == [0, 1, 1, 2, 0, 0, 1]  # I's in the last 4 positions, mod 3
    assert base["back_4"][5] == base["last_4"][1] and base["back_4"][2] == base["last_4"][2]
    assert base["I_mod_3"] == [0, 1, 1, 2, 0, 1, 2] and base["theorem"] == [False, True, True, True, False, True, True]
    # The packed state takes a tuple, as in RASP. It only carries its own position's chain; later
    # positions read the plain residues, so one I more in scan_1 at 3 changes the verdict at 3 alone.
    hit = spec.run(tuple("MIUIIII"), interventions={"scan_1": {3: (2, 3)}})
    assert hit["I_mod_3"] == [0, 1, 1, 0, 0, 1, 2] and hit["theorem"][3:5] == [False, False]
    assert hit["last_2"] == base["last_2"] and hit["count_bad_M"] == base["count_bad_M"]  # beside, untouched
    # The plain residue at 3 is what position 5 reads 2 back (and nothing else here).
    hit = spec.run(tuple("MIUIIII"), interventions={"last_2": {3: 2}})
    assert hit["back_2"][5] == 2 and hit["I_mod_3"] == [0, 1, 1, 2, 0, 2, 2] and hit["scan_1"] == base["scan_1"]
    # A residue read from 2 back changes only what reads it.
    hit = spec.run(tuple("MIUIIII"), interventions={"back_2": {6: 0}})
    assert hit["I_mod_3"][:6] == base["I_mod_3"][:6] and hit["I_mod_3"][6] == 0 and hit["theorem"][6] is False


def test_miu_mod3_never_holds_the_count():
    """A negative control: the count of I's is never a value, only its residue (with the position where packed)."""
    spec = get_program("miu_mod3")
    scan = [v.name for v in spec.variables if v.name not in ("bad_M_at", "count_bad_M", "theorem", "prev_token")]
    for tokens in spec.enumerate_inputs(7):
        values = spec.run(tokens)
        assert values["I_mod_3"] == [tokens[: q + 1].count("I") % 3 for q in range(len(tokens))]
        for name in scan:
            residues = [v[0] if isinstance(v, tuple) else v for v in values[name]]
            assert set(residues) <= {0, 1, 2}, (tokens, name)
            assert all(v[1] == q for q, v in enumerate(values[name]) if isinstance(v, tuple)), (tokens, name)
    assert spec.max_supported_len == 16  # the last window; longer prefixes would need another step
    long = tuple("M" + "I" * 16 + "U")
    assert spec.run(long)["I_mod_3"][-1] != long.count("I") % 3  # past 16 the window drops an I


def test_miu_task_is_shared_data():
    task = get_task("miu")
    assert len(MIU_PROGRAMS) >= 3 and {"miu", "miu_mean", "miu_first"} <= set(MIU_PROGRAMS)
    for name in MIU_PROGRAMS:
        spec = get_program(name)
        assert spec.task is task and spec.output == "theorem" and spec.variables[-1].name == "theorem"
        assert spec.vocab == miu.ALPHABET and spec.causal and spec.default_max_len == 10
    assert {c.name for c in task.checks} == {"rewrite_system"}
    assert task.probes[:3] == ("MI", "MU", "MIU") and task.probe_output == "True"
    assert task.clauses(tuple("MIIIU"))["deciding"] == "I_count_mod_3"
    assert {n for n, _ in task.data.shares} == {"well_formed", "derived", "hard_negative", "uniform"}
    assert sum(v for _, v in task.data.shares) == pytest.approx(1.0)
    for name in ("hist", "sort"):  # single-program tasks: generic data, no extra checks
        t = get_program(name).task
        assert t.checks == () and t.clauses is None and t.probes == () and not t.data.balance_final
    assert set(TASKS) == {"miu", "hist", "sort"}


def test_rewrite_system_check_catches_a_rejected_theorem():
    check = get_task("miu").checks[0]
    inputs = [tuple(s) for s in ("MI", "MII", "MIU", "MU")]
    right = {x: [str(v) for v in miu.prefix_verdicts("".join(x))] for x in inputs}
    assert check.run(right, 3)["passed"] and check.run(right, 3)["checked"] == 3
    wrong = {**right, tuple("MIU"): ["False", "True", "False"]}
    r = check.run(wrong, 3)
    assert not r["passed"] and r["derived_and_rejected"] == ["MIU"] and "all accepted: False" in r["summary"]


# Stages must read what is task-specific from the spec. compare/ joins this list once
# compare/dynamics.py reads Task.probes instead of testing the program's name.
BRANCH_FREE = ("learned", "compiled", "compare")
NAME_BRANCH = re.compile(r"""(\.name\s*(==|!=)\s*['"])|(['"]\w+['"]\s*(==|!=)\s*\w+\.name\b)"""
                         r"""|((==|!=)\s*['"]miu['"])|(['"]miu['"]\s*(==|!=))""")


def test_no_stage_branches_on_a_program_name():
    root = Path(__file__).resolve().parents[1]
    hits = [f"{path.relative_to(root)}:{i}: {line.strip()}"
            for package in BRANCH_FREE for path in sorted((root / package).rglob("*.py"))
            for i, line in enumerate(path.read_text().splitlines(), 1) if NAME_BRANCH.search(line)]
    assert not hits, "a program-name branch means a field is missing from Task/ProgramSpec:\n" + "\n".join(hits)
    assert NAME_BRANCH.search('    if spec.name == "miu":') and NAME_BRANCH.search("if 'miu' == spec.name:")
    assert NAME_BRANCH.search('if program == "miu":') and not NAME_BRANCH.search('if name == "auto":')


def test_registry_errors():
    with pytest.raises(ToolkitError, match=r"unknown program 'nope'; known programs: hist, miu, miu_first, miu_mean"):
        get_program("nope")
    with pytest.raises(ToolkitError, match="unknown task 'nope'; known tasks: hist, miu, sort"):
        get_task("nope")
    with pytest.raises(ToolkitError, match="has no variable 'nope'"):
        get_program("miu").variable("nope")
    spec = get_program("miu")
    assert resolve_max_len(spec, "") == 10 and resolve_max_len(spec, "7") == 7
    for bad in ("0", "-3", "25", "ten"):
        with pytest.raises(ToolkitError, match="MAX_LEN"):
            resolve_max_len(spec, bad)
    with pytest.raises(ToolkitError, match="MAX_LEN=13 is out of range for program 'miu_mean'"):
        resolve_max_len(get_program("miu_mean"), "13")


def test_token_checks():
    spec = get_program("miu")
    assert spec.parse("MIU", 10) == ("M", "I", "U")
    with pytest.raises(ToolkitError, match="token 'X' is not in the vocabulary"):
        spec.parse("MIX", 10)
    with pytest.raises(ToolkitError, match="longer than the model's maximum 10"):
        spec.parse("M" + "I" * 10, 10)
