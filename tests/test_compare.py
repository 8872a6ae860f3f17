"""Tests for compare/: the controls, each defect the methods guard against, the report and bad input.

The compiled models are built in a fixture with Tracr when the artifacts are
missing (skipped where JAX is not installed). MIU runs at the default length
(10) with a reduced ``CompareConfig``; the full-size run is ``make compare``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from compare import __main__ as cli
from compare.ablations import metrics, z_statistics
from compare.answer import controls_sentence
from compare.activations import build_dataset, resid_hooks
from compare.context import untrained_baseline, untrained_key
from compare.controls import (check_disguised, check_distributed, check_knockout, check_self, check_untrained,
                              checks_only, disguise, random_model, seed_vs_seed)
from compare.heads import match_heads, normalised_rows, row_agreement
from compare.interventions import agrees, design, make_space, patched_outputs, pattern_swap
from compare.outputs import OutputReadout
from compare.locate import _held, locate, output_ready
from compare.pipeline import CompareConfig, compare_models, prepare
from compare.readouts import read_out
from compare.report import build_doc, read_report
from compare.json_edge import from_json, to_json
from compare.results import Comparison, HookReadout, Intervention, Status
from compare.status import decide_status
from compare import similarity
from compare.similarity import linear_cka
from compare.stats import Estimate, Tri, at_least, bootstrap
from learned.artifact import encode, load_artifact, save_artifact
from learned.model import ModelConfig, Transformer
from rasp_programs.registry import get_program

SMALL = CompareConfig(n_inputs=1500, n_untrained=3, n_fit=150, n_val=100, n_test=150, das_steps=20,
                      das_dims=(1, 4), n_null=10)
TINY = CompareConfig(n_inputs=300, n_untrained=1, n_fit=60, n_val=40, n_test=60, das_steps=5, das_dims=(),
                     n_null=3)
def load(artifacts: Path, program: str) -> tuple[Transformer, dict]:
    return load_artifact(artifacts / program / "compiled", dtype=torch.float64)  # as `make compare` loads it


@pytest.fixture(scope="session")
def miu(artifacts):
    model, meta = load(artifacts, "miu")
    return prepare(get_program("miu"), model, meta, SMALL)


@pytest.fixture(scope="session")
def miu_checks(miu):
    """What the controls run on (``run_controls``): no per-head ablations or control task, which no check reads."""
    return checks_only(miu)


# ------------------------------------------------------------ the controls --

def test_control_self(miu):
    """The compiled model against itself: every variable computed, the counts included, on distinguishing pairs."""
    c = check_self(miu.reference)
    assert c.passed, c.checks
    ref = miu.reference
    assert {k: v.status for k, v in ref.variables.items()} == {k: Status.COMPUTED for k in ref.variables}
    assert all(m.compiled == m.learned and m.agreement.lo > 0.99 for m in ref.heads.matches)
    assert np.allclose(np.diag(ref.cka.matrix), 1.0)
    # count_I is found where its one-hot block is written (the search no longer stops where the output is
    # readable), decided on pairs that tell it from the verdict it feeds
    count_i = ref.variables["count_I"]
    assert count_i.found_hook == "blocks.2.hook_resid_pre" and count_i.offset == 0
    assert count_i.intervention.decides_on == "distinguishing" and count_i.intervention.n_distinguishing >= 20
    assert count_i.iia.lo >= 0.9 and count_i.intervention.subspace_readout.lo >= 0.95
    assert count_i.partition_text == "{0 mod 3} vs {1, 2 mod 3}"
    assert ref.variables["theorem"].found_hook == "blocks.2.hook_resid_post"


def test_held_out_pairs_move_only_values_the_fit_pairs_move(miu):
    """A subspace is tested only on values it was fitted to move. Before, a value present on some fit row
    but in no fit pair could be held out: ``bad_M_at`` = 0 (a first token other than M) lives on one prefix
    of the fit split, not a live one, and the test pairs then set or replaced it along a DAS direction
    fitted without it (the default setting's self control failed on exactly those pairs)."""
    values, checked = miu.data.values, 0
    for name, by_split in miu.pairs.items():
        fit = by_split["fit"]
        if not len(fit):
            continue
        moved = fit.values_moved(values[name])
        for split in ("val", "test"):
            held = by_split[split].values_moved(values[name])
            assert held <= moved, (name, split, sorted(held - moved))
            checked += len(held)
    assert checked > 20


def test_graph_layout_is_the_same_in_every_process():
    """The report's computation graph places each node where it did in any other run: string hashing changes
    between processes, and with it the order of a set (networkx groups layers through sets)."""
    code = ("from compare.figures import graph_layout; from rasp_programs.registry import get_program; "
            "g, pos = graph_layout([list(e) for e in get_program('miu').graph.edges]); "
            "print(sorted((n, [round(float(x), 6) for x in p]) for n, p in pos.items()))")
    outs = {subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": str(seed)},
                           capture_output=True, text=True, check=True).stdout for seed in (1, 2, 3)}
    assert len(outs) == 1, outs


def test_a_failed_control_says_what_failed_on_the_first_screen(miu):
    """The self control with one variable left undecided fails, names it, and the report's opening sentence
    carries the name (a reader of the first screen learns which variable the method could not establish)."""
    ref = copy.deepcopy(miu.reference)
    ref.variables["bad_M_at"] = dataclasses.replace(ref.variables["bad_M_at"], status=Status.UNDECIDED)
    failed = check_self(ref)
    assert not failed.passed and failed.why == "bad_M_at undecided"
    assert check_self(miu.reference).why == ""
    sentence = controls_sentence([failed, check_self(miu.reference)])
    assert sentence.startswith("1 of 2 controls pass; self (bad_M_at undecided) failed"), sentence


def test_failed_disguise_and_knockout_say_what_failed(miu_checks, monkeypatch):
    """A disguised copy that comes back with another status, and a knockout that changes nothing, fail and
    name what failed (the comparison they run is replaced by the compiled model's own, one status changed)."""
    import compare.controls as controls

    ref = miu_checks.reference
    moved = copy.deepcopy(ref)
    moved.variables["count_I"] = dataclasses.replace(moved.variables["count_I"], status=Status.UNDECIDED)
    monkeypatch.setattr(controls, "compare_fixed", lambda prep, model: moved)
    c = check_disguised(miu_checks, seed=3, invertible=False)
    assert not c.passed and c.why.startswith("other statuses"), c.why
    assert "count_I undecided" in c.found
    monkeypatch.setattr(controls, "compare_fixed", lambda prep, model: ref)  # the knockout lost nothing
    k = check_knockout(miu_checks)
    assert not k.passed
    assert k.why.startswith("still computed: ") and k.why.endswith("; task accuracy did not drop"), k.why
    assert controls_sentence([k]).startswith(f"0 of 1 controls pass; knockout ({k.why}) failed"), controls_sentence([k])


@pytest.mark.parametrize("invertible", [False, True], ids=["rotation", "invertible"])
def test_control_disguised_copy(miu_checks, invertible):
    c = check_disguised(miu_checks, seed=3, invertible=invertible)
    assert c.passed, c.checks
    assert c.checks["statuses"] == c.checks["reference_statuses"]
    assert c.checks["heads"] == c.checks["expected_heads"]


def test_disguised_copies_compute_the_same_function(artifacts):
    model, _ = load(artifacts, "miu")
    model = model.double()  # a non-orthogonal map of Tracr's large weights needs float64 to compare closely
    ids = encode(model.cfg, [tuple("MIIUI"), tuple("MUMU"), tuple("MIIIIIIIII")])
    for invertible in (False, True):
        copy, perms = disguise(model, seed=5, invertible=invertible)
        assert torch.allclose(model(ids), copy(ids), atol=1e-6)
        assert not torch.allclose(copy.param("embed.W_E"), model.param("embed.W_E"))
    w = disguise(model, 5, invertible=True)[0].param("embed.W_E").double()
    gram = w.T @ w  # a non-orthogonal map changes the embeddings' Gram matrix; a rotation would not
    assert not torch.allclose(gram, model.param("embed.W_E").double().T @ model.param("embed.W_E").double(), atol=1e-2)


def test_control_coarsened_model_is_computed_only_up_to_its_partition(miu, miu_checks, artifacts):
    """miu_mod3 tracks I mod 3 with a prefix scan and never holds the count. Compared as if learned against
    miu, count_I is causal on distinguishing pairs but may only be "computed up to {0 mod 3} vs {1, 2 mod 3}":
    its full value is not readable inside the causal subspace. The compiled miu against itself reads it in
    full (``test_control_self``): the positive half of this pair."""
    coarse, _ = load(artifacts, "miu_mod3")
    # ablations and the control task play no part in a variable's status (as in check_distributed); one
    # untrained network of miu_mod3's shape (6 layers) for its baseline, a third of the cost of three
    prep = dataclasses.replace(miu_checks, config=dataclasses.replace(miu_checks.config, n_untrained=1))
    res = compare_models(prep, coarse)
    count_i = res.variables["count_I"]
    assert count_i.status is Status.COMPUTED_UP_TO, (count_i.status, count_i.intervention.subspace_readout)
    assert count_i.partition_text == "{0 mod 3} vs {1, 2 mod 3}"
    assert count_i.iia.lo >= 0.9 and count_i.intervention.subspace_readout.hi < 0.95
    assert miu.reference.variables["count_I"].status is Status.COMPUTED
    assert res.variables["count_bad_M"].status is Status.COMPUTED  # the M rule is miu's own


@pytest.mark.slow  # 2 min; the fast suite keeps the golden record (test_compare_unchanged) and fork_map's checks
def test_comparisons_are_deterministic(artifacts):
    """The same model compared alone, or after another one in the same process, with torch's global generator
    in any state, gives the same record bit for bit (DAS seeds a local generator; nothing reads the global)."""
    model, meta = load(artifacts, "miu")
    cfg = dataclasses.replace(TINY, das_dims=(1,), das_restarts=3)  # DAS with every kind of start runs
    torch.manual_seed(0)
    alone = prepare(get_program("miu"), model, meta, cfg)
    copy, _ = disguise(model, 3)
    first = to_json(compare_models(alone, copy))
    torch.manual_seed(99)
    torch.rand(17)
    again = prepare(get_program("miu"), model, meta, cfg)
    compare_models(again, random_model(model, 1))
    assert to_json(compare_models(again, copy)) == first
    assert any(v.intervention and v.intervention.subspace == "das" or "1" in v.intervention.das_sweep
               for v in again.reference.variables.values() if v.intervention)


def test_control_untrained_is_no_match(miu_checks):
    c = check_untrained(miu_checks, seed=0)
    assert c.passed, c.checks
    assert not any(m.is_match for m in c.result.heads.matches)


def test_control_knockout(miu_checks):
    c = check_knockout(miu_checks)
    assert c.passed, c.checks
    assert str(c.checks["head"]) == "L1H0" and c.checks["variable"] == "count_I"
    assert set(c.checks["must_lose"]) == {"count_I", "theorem"}
    assert c.result.variables["count_bad_M"].iia.value > 0.85  # the other head's variable still acts


def test_control_distributed_code(miu_checks):
    c = check_distributed(miu_checks, seed=2)
    assert c.passed, c.checks
    assert c.checks["mixed_dims"] > c.checks["compiled_block_dim"]


def test_seed_vs_seed_ceiling(miu):
    compiled = miu.compiled.model
    same = seed_vs_seed(miu, [compiled, disguise(compiled, 3)[0]]).checks["pairs"][0]
    assert min(same["cka_matched"]) > 0.999 and same["output_agreement"] == 1.0
    diff = seed_vs_seed(miu, [random_model(compiled, 1), random_model(compiled, 2)]).checks["pairs"][0]
    assert diff["cka_mean"] < same["cka_mean"] - 0.05 and diff["output_agreement"] < 1.0
    assert seed_vs_seed(miu, [compiled]).checks["pairs"] == []


@pytest.mark.parametrize("program", [pytest.param("miu_first", marks=pytest.mark.slow),
                                     pytest.param("miu_u", marks=pytest.mark.slow), "hist", "sort"])
def test_other_programs_disguised_copy(artifacts, program):
    model, meta = load(artifacts, program)
    prep = checks_only(prepare(get_program(program), model, meta, TINY))
    c = check_disguised(prep, seed=1, invertible=True)
    assert c.passed, c.checks


# ---------------------------------------- each defect has a test that fails --

def test_rows_are_distinct_prefixes_and_folds_are_grouped(miu):
    data = miu.data
    prefixes = [data.inputs[i][:p] for i, p in zip(data.row_input, data.row_pos)]
    assert len(set(prefixes)) == len(prefixes)  # a causal program: one row per distinct prefix
    for g in np.unique(data.group):
        assert len(np.unique(data.fold[data.group == g])) == 1  # a string never straddles folds
    assert {0, 1, 2} == set(np.unique(data.fold))


def test_test_pairs_share_nothing_with_training_pairs(miu):
    data = miu.data
    for name, splits in miu.pairs.items():
        def keys(p):
            return {(data.inputs[data.row_input[b]], data.inputs[data.row_input[s]], data.row_pos[b])
                    for b, s in zip(p.base, p.source)}
        test = keys(splits["test"])
        assert not test & keys(splits["fit"]) and not test & keys(splits["val"])
        bases = {data.inputs[data.row_input[b]] for b in splits["test"].base}
        assert not bases & {data.inputs[data.row_input[b]] for b in splits["fit"].base}


def test_live_rows_follow_the_causal_model(miu):
    data = miu.data
    well_formed = np.array([x[0] == "M" and "M" not in x[1:] for x in data.inputs])[data.row_input]
    assert np.array_equal(data.live["count_I"], well_formed)  # count_I only matters while the M rule holds
    # the values tried are those seen at the row's position: a one-token prefix is never a theorem
    assert data.live["theorem"][data.row_pos > 1].all() and not data.live["theorem"][data.row_pos == 1].any()
    assert 0.1 < data.live["count_I"].mean() < 0.9  # the training mix makes it live often, not always


def test_coarsenings_only_for_counts(miu):
    names = {d.name for d in miu.data.derived}
    assert "count_I mod 3" in names
    assert not any(n.startswith(("I_at", "bad_M_at")) for n in names)  # -1 % 3 == 2 would merge "none" with 2, 5, 8


def test_probe_is_multinomial_logistic_and_reads_many_classes():
    """The probe for a many-class variable is scikit-learn's multinomial logistic regression (not LDA), and
    it reads 10 classes along one direction. (On this synthetic data LDA reads them too: the type check is
    what catches a return to LDA, not the accuracy.)"""
    from compare.activations import VariableInfo

    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 2000)
    x = np.concatenate([np.stack([y + 0.05 * rng.standard_normal(2000), 1.0 / (y + 1)], 1),
                        rng.standard_normal((2000, 6))], 1)
    info = VariableInfo("v", "categorical", (), (), tuple(range(10)), 0, "")

    class Data:
        targets, live = {"v": y}, {"v": np.ones(2000, dtype=bool)}
        fold, group = np.arange(2000) % 3, np.arange(2000)
    r, fitted = read_out(Data, x, info, "h", 0, 200)
    assert r.live.lo > 0.95 and type(fitted.models[0][-1]).__name__ == "LogisticRegression"


def test_untrained_baseline_is_kept_per_dtype(miu, monkeypatch):
    """A float32 model of the compiled shape is measured against float32 untrained networks, not the float64
    baseline the compiled reference left in memory: keyed by shape alone, a cold run (reference first) and a
    warm one (reference from the disk cache) gave different untrained levels and statuses. The networks'
    readouts are stubbed to say which dtype they ran in (the real ones take minutes)."""
    from compare import context

    def side_in_its_dtype(model, data, *args, **kwargs):
        level = 1.0 if model.param("embed.W_E").dtype == torch.float32 else 0.0
        hooks = resid_hooks(model.cfg)
        return types.SimpleNamespace(full={}, readouts={v.name: {h: types.SimpleNamespace(
            live=types.SimpleNamespace(value=level)) for h in hooks} for v in data.variables})

    monkeypatch.setattr(context, "model_side", side_in_its_dtype)
    prep = dataclasses.replace(miu, untrained={}, untrained_sides={}, subspace_untrained={}, cache=None, workers=1)
    compiled = prep.compiled.model
    single = copy.deepcopy(compiled).float()
    assert untrained_key(single) != untrained_key(compiled)
    for model, level in ((compiled, 0.0), (single, 1.0), (compiled, 0.0)):
        scores = untrained_baseline(prep, model)
        assert {m for by_hook in scores.values() for m, _ in by_hook.values()} == {level}
        assert len(prep.untrained_sides[untrained_key(model)]) == prep.config.n_untrained
    assert len(prep.untrained) == 2


def test_untrained_and_control_task_baselines(miu):
    v = miu.reference.variables["count_I"]
    assert v.readout.untrained_live is not None and v.readout.untrained_sd is not None
    assert v.control_task is not None and v.control_task.defined
    # an untrained network reads count_I on live rows after its first attention layer: readability is cheap
    assert v.readout_at("blocks.1.hook_resid_pre").untrained_live > 0.8


def test_a_swap_holds_variables_that_vary_only_among_sources():
    """Two exclusive one-hot variables, like ``is_I`` and ``is_bad_M`` (one token each). Where ``a`` is live
    ``b`` is constant, so ``a``'s forward model cannot hold ``b`` fixed; but a source can carry ``b``. In
    whitened coordinates the two are not orthogonal, and without ``b``'s patterns (fitted on every row) a
    swap from such a source moves ``a`` by about half its step: compiled ``miu_mean`` failed its self control
    that way. With them the swap moves exactly ``a``."""
    ab = np.array([(1, 0)] * 30 + [(0, 1)] * 20 + [(0, 0)] * 50, dtype=float)  # [N, 2] rows of (a, b)
    xt = ab @ np.array([[2.0, 0.5, 0.0], [0.3, -1.0, 0.0]])  # [N, D]: what the layers wrote
    space = make_space(xt)
    rows = np.flatnonzero(ab[:, 1] == 0)  # where a is live
    data = types.SimpleNamespace(targets={"a": ab[:, 0].astype(int), "b": ab[:, 1].astype(int)},
                                 var=lambda n: types.SimpleNamespace(encoding="numerical", classes=[0, 1]))
    g, cols = design(data, rows, ["a", "b"])
    assert "b" in cols and cols["b"].stop == cols["b"].start  # b is constant where a is live
    base, source = xt[0], xt[30]  # a=1, b=0 -> a=0, b=1
    want = xt[50] - xt[0]         # a=1 -> a=0, b unchanged
    every = np.arange(len(ab))
    held = _held(space, xt, *design(data, every, ["a", "b"]), "a")
    for with_b, ok in ((False, False), (True, True)):
        _, proj = pattern_swap(space, xt[rows], g, cols, "a", held=held if with_b else None)
        step = (source - base) @ space.lift(proj)
        assert np.allclose(step, want, atol=1e-9) is ok, (with_b, step, want)


def test_pattern_subspace_is_where_the_variable_varies(miu):
    """Patterns, not filters: the swap's subspace holds most of the variable's class-mean variance (a
    discriminant filter can be nearly orthogonal to it), swapping it acts like the variable, and swapping
    another variable's subspace on the same pairs does not (a negative control for IIA)."""
    data, side = miu.data, miu.compiled
    hook = "blocks.1.hook_resid_pre"
    space = side.space(data, hook)
    pairs = miu.pairs["I_at"]["test"]

    def swap(var: str, others: list[str]):
        rows = np.flatnonzero(data.split("fit") & data.live[var])
        g, cols = design(data, rows, [var, *others])
        return rows, *pattern_swap(space, side.xt(hook)[rows], g, cols, var)
    rows, own, proj = swap("I_at", ["bad_M_at", "count_bad_M"])
    z = space.z(side.xt(hook)[rows])
    y = data.targets["I_at"][rows]
    means = np.stack([z[y == c].mean(0) - z.mean(0) for c in np.unique(y)])  # [C, r]
    assert np.linalg.norm(means @ own) ** 2 / np.linalg.norm(means) ** 2 > 0.9
    site = side.site(data, hook)
    assert agrees(site.outputs(pairs, proj), pairs.target).mean() >= 0.95
    _, _, wrong = swap("bad_M_at", ["I_at", "count_I"])
    assert agrees(site.outputs(pairs, wrong), pairs.target).mean() < 0.2


def test_a_swap_of_the_verdict_alone_fails_every_distinguishing_pair(miu):
    """The verdict-only control. In the compiled model the output is linearly readable at
    blocks.2.hook_resid_pre, where count_I's block is written. A hand-built swap that writes only the
    source's verdict (theorem's own residual block, at the last hook) scores high on all pairs of the
    upstream variables, as the old test did, and fails every distinguishing pair: there the model follows
    the copy, never the variable."""
    data, side = miu.data, miu.compiled
    hooks = data.resid_hooks
    assert hooks[output_ready(miu, side)] == "blocks.2.hook_resid_pre"  # readable before count_I is decoded
    hook = hooks[-1]
    dims = list(data.var("theorem").dims)
    verdict_only = np.zeros((side.model.cfg.d_model,) * 2)
    verdict_only[dims, dims] = 1.0  # residual coordinates: swap theorem's block, nothing else
    for name in ("I_at", "bad_M_at", "count_I", "count_bad_M"):
        test = miu.pairs[name]["test"]
        site = side.site(data, hook)
        out = patched_outputs(side.model, data, test, hook, site.delta(test), verdict_only, site.base(test),
                              side.readout)
        hit = agrees(out, test.target)
        dist = test.distinguishing
        assert dist.sum() >= 20, name
        assert hit[~dist].mean() == 1.0, name          # where the counterfactual is the copy, copying passes
        assert hit[dist].mean() == 0.0, name           # ... and it never passes a distinguishing pair
        assert agrees(out[torch.from_numpy(np.flatnonzero(dist))],
                      test.copy[torch.from_numpy(np.flatnonzero(dist))]).all(), name


def test_pairs_carry_three_predictions_and_sources_from_all_rows(miu):
    data = miu.data
    for name in ("count_I", "count_bad_M"):
        test = miu.pairs[name]["test"]
        assert (~data.live[name][test.source]).any()  # sources are not only live rows
        assert not agrees(test.keep, test.target).any()  # effective: never "no change"
        copy_ok = agrees(test.copy, test.target)
        assert (copy_ok == ~test.distinguishing).all()
    theorem = miu.pairs["theorem"]["test"]
    assert not theorem.distinguishing.any() and agrees(theorem.copy, theorem.target).all()
    for split in ("fit", "val"):  # fit and validation pairs are same-position only
        assert not miu.pairs["count_I"][split].cross.any()
    assert miu.pairs["count_I"]["test"].cross.any()


def test_iia_per_position_and_value(miu):
    iv = miu.reference.variables["count_I"].intervention
    assert len(iv.per_position) >= 5 and set(iv.per_value) <= {str(c) for c in range(11)}
    assert sum(e.n for e in iv.per_position.values()) == iv.n_distinguishing  # strata of the deciding pairs
    assert np.isfinite(iv.null_p95) and iv.null_p95 < iv.deciding.lo
    small = [e for e in iv.per_position.values() if e.n < 5]
    assert all(not e.has_ci for e in small)  # no interval below 5 pairs


def test_choices_are_made_without_test_pairs(miu):
    """Scrambling the test pairs' targets changes the reported IIA but no choice (hook, subspace, dimension)."""
    v = miu.data.var("count_bad_M")
    side = miu.compiled
    miu = dataclasses.replace(miu, config=dataclasses.replace(miu.config, das_dims=(1,)))  # one sweep step: faster
    clean = locate(miu, side, v, 3)
    test = miu.pairs[v.name]["test"]
    saved = test.target.clone()
    try:
        test.target[test.target >= 0] = 1 - test.target[test.target >= 0]
        scrambled = locate(miu, side, v, 3)
    finally:
        test.target.copy_(saved)
    a, b = clean.intervention, scrambled.intervention
    assert (clean.found_hook, a.subspace, a.dim, a.val_iia) == (scrambled.found_hook, b.subspace, b.dim, b.val_iia)
    assert a.test.value > 0.9 > b.test.value


def test_swaps_never_move_the_direct_embedding(miu):
    """A swap moves what the layers wrote, never the raw token or position. The strongest swap (the whole
    whitened space) at blocks.1.hook_resid_pre, on pairs whose base and source hold different tokens: in the
    patched run, the token and position blocks of the residual one hook later still hold the base's own
    token and position (Tracr's layers never write there), while the variables' blocks did change."""
    data, side = miu.data, miu.compiled
    hook, later = "blocks.1.hook_resid_pre", "blocks.1.hook_resid_mid"
    assert side.space(data, "blocks.0.hook_resid_pre").m == 0  # before any layer there is nothing to swap
    pairs = miu.pairs["count_I"]["test"]
    tokens = data.ids[torch.from_numpy(data.row_input), torch.from_numpy(data.row_pos)].numpy()
    pairs = pairs.subset(tokens[pairs.source] != tokens[pairs.base])
    assert len(pairs) >= 20
    site = side.site(data, hook)
    step = torch.as_tensor(site.delta(pairs) @ site.space.lift(np.eye(site.space.m)))  # [P, D]
    ids = data.ids[torch.from_numpy(data.row_input[pairs.base])]
    pos, idx = torch.from_numpy(data.row_pos[pairs.base]), torch.arange(len(pairs))
    seen = {}

    def swap(x, name):
        return x.index_put((idx, pos), x[idx, pos] + step.to(x.dtype))

    def keep(x, name):
        seen[name] = x[idx, pos].detach().clone()
        return x
    side.model(ids, hooks={hook: swap, later: keep}, start=(hook, site.base(pairs)))
    clean = side.full[later][torch.from_numpy(data.row_input[pairs.base]), pos]  # [P, D]
    labels = miu.meta["residual_labels"]
    embedded = [i for i, name in enumerate(labels) if name.startswith(("tokens:", "indices:"))]
    written = [i for i, name in enumerate(labels) if name.startswith(("count_I", "theorem"))]
    assert embedded and written
    assert torch.equal(seen[later][:, embedded], clean[:, embedded])
    assert not torch.allclose(seen[later][:, written], clean[:, written])


def test_ablation_metrics_do_not_saturate(miu):
    """A constant answer scores high plain accuracy on skewed rows but chance balanced accuracy."""
    model = miu.compiled.model
    sd = {k: v.clone() for k, v in model.tl_state_dict().items()}
    sd["unembed.W_U"].zero_()
    sd["unembed.b_U"] = torch.tensor([1.0, 0.0])  # always "False"
    const = Transformer(model.cfg)
    const.load_tl_state_dict(sd)
    m, _ = metrics(const, miu.data, 0, OutputReadout(const.cfg, miu.data.output_vocab))
    assert m.balanced_accuracy.value == pytest.approx(0.5)
    assert m.accuracy == pytest.approx(float((miu.data.outputs == 0).mean()))
    assert m.logit_diff.value < 0 or m.accuracy < 1


def test_mean_ablation_ignores_pads(artifacts):
    model, meta = load(artifacts, "miu")
    spec = get_program("miu")
    data = build_dataset(spec, {**meta, "max_len": 10}, model.cfg, 60, 0)
    means, _, _ = z_statistics(model, data, 0)
    from compare.activations import run_cached
    _, cache = run_cached(model, data.ids, ["blocks.1.attn.hook_z"])
    z = cache["blocks.1.attn.hook_z"]
    pad = model.cfg.vocab.index(model.cfg.pad_token)
    t = data.ids.shape[1] - 1
    real = data.ids[:, t] != pad
    assert 0 < real.sum() < len(real)
    assert torch.allclose(means[1][t], z[real, t].mean(0), atol=1e-6)


def test_status_is_decided_on_ci_bounds():
    def ro(lo, hi, untrained=0.5):
        return HookReadout("h", Estimate((lo + hi) / 2, lo, hi, 100), Estimate((lo + hi) / 2, lo, hi, 100), 0.5, 0.5,
                           untrained, 0.0)

    def iv(lo, hi, null=0.1, inside=(0.97, 1.0), inside_untrained=0.5, n_dist=100, output=False):
        est = Estimate((lo + hi) / 2, lo, hi, n_dist)
        return Intervention("h", "pattern", 1, 0.9, est, 0.05, null, 0.0, {}, {}, {}, 1, 1, 1,
                            decides_on="all" if output else "distinguishing", distinguishing=est,
                            subspace_readout=Estimate(sum(inside) / 2, *inside, 100),
                            subspace_untrained=inside_untrained)
    assert decide_status(ro(0.97, 1.0), iv(0.93, 0.99), [])[3] is Status.COMPUTED
    assert decide_status(ro(0.97, 1.0), iv(0.87, 0.93), [])[3] is Status.UNDECIDED  # 0.9 inside the CI
    assert decide_status(ro(0.97, 1.0), iv(0.93, 0.99, null=0.95), [])[3] is Status.UNDECIDED  # not above the null
    assert decide_status(ro(0.97, 1.0), iv(0.3, 0.5), [])[3] is Status.CORRELATIONAL
    assert decide_status(ro(0.97, 1.0, untrained=0.99), iv(0.3, 0.5), [])[3] is Status.UNTRAINED_LEVEL
    assert decide_status(ro(0.5, 0.7), iv(0.1, 0.2), [])[3] is Status.NOT_REPRESENTED
    assert decide_status(ro(0.5, 0.7), None, [])[3] is Status.NOT_REPRESENTED  # no footprint to swap anywhere
    assert decide_status(ro(0.5, 0.7), None, [], testable=False)[3] is Status.NOT_TESTABLE
    assert decide_status(ro(0.94, 0.97, untrained=0.95), iv(0.3, 0.5), [])[3] is Status.UNTRAINED_LEVEL
    # the full value must be readable inside the causal subspace, beyond untrained networks there
    not_inside = iv(0.93, 0.99, inside=(0.5, 0.7))
    assert decide_status(ro(0.97, 1.0), not_inside, [])[3] is Status.CAUSAL_PARTIAL
    assert decide_status(ro(0.97, 1.0), not_inside, [], coarser=True)[3] is Status.COMPUTED_UP_TO
    as_untrained = iv(0.93, 0.99, inside=(0.96, 0.99), inside_untrained=0.97)
    assert decide_status(ro(0.97, 1.0), as_untrained, [], coarser=True)[3] is Status.COMPUTED_UP_TO
    perfect = iv(0.93, 0.99, inside=(1.0, 1.0), inside_untrained=0.998)  # position-wise: untrained reads it too
    assert decide_status(ro(0.97, 1.0), perfect, [])[3] is Status.COMPUTED
    # too few pairs that tell it from copying the output
    assert decide_status(ro(0.97, 1.0), iv(0.93, 0.99, n_dist=12), [])[3] is Status.NOT_IDENTIFIABLE
    assert decide_status(ro(0.97, 1.0), iv(0.93, 0.99, n_dist=12, output=True), [])[3] is Status.COMPUTED
    assert at_least(Estimate(0.91, 0.88, 0.94, 10), 0.9) is Tri.UNDECIDED
    assert Status("causal, not fully readable") is Status.CAUSAL_PARTIAL  # an old compare.json still reads


def test_every_status_has_a_colour():
    """The computation-graph figure colours each variable by its status (a missing one crashed a report)."""
    from compare import figures
    assert set(figures.STATUS_COLOURS) == set(Status)


def test_two_way_bootstrap_and_small_strata():
    """Sources repeat across pairs: resampling them as well widens the interval; below 5 units, no interval."""
    rng = np.random.default_rng(1)
    src_effect = rng.random(20) < 0.5  # 20 sources, each either always hit or always missed
    sources = rng.integers(0, 20, 600)
    hits_ = src_effect[sources].astype(float)
    bases = np.arange(600)
    one = bootstrap(hits_, bases, 0)
    two = bootstrap(hits_, bases, 0, groups2=sources)
    assert (two.hi - two.lo) > 2 * (one.hi - one.lo)
    assert one.value == two.value
    small = bootstrap(np.ones(4), None, 0)
    assert small.value == 1.0 and not small.has_ci and small.fmt() == "1.00 (n=4)"


def test_bootstrap_resamples_groups():
    rng = np.random.default_rng(0)
    hits_ = (rng.random(2000) < 0.7).astype(float)
    rows = bootstrap(hits_, None, 0)
    copies = bootstrap(np.repeat(hits_[:200], 10), np.repeat(np.arange(200), 10), 0)  # 200 strings, 10 copies each
    assert rows.lo < 0.7 < rows.hi
    assert (copies.hi - copies.lo) > 2 * (rows.hi - rows.lo)  # copies are not independent evidence


def test_results_round_trip_through_json(miu):
    res = miu.reference
    again = from_json(Comparison, json.loads(json.dumps(to_json(res))))
    assert to_json(again) == to_json(res)
    assert again.variables["count_I"].status is res.variables["count_I"].status


def test_procrustes_recovers_a_rotation_and_falls_back_where_gesdd_fails(monkeypatch):
    """The Procrustes map finds a known rotation; where scipy's SVD does not converge (it did on compiled
    miu_dfa.fractions at one benchmark seed) the gesvd fallback gives the same rotation and scale."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((100, 6))
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    r, scale = similarity.procrustes(a, a @ q)
    np.testing.assert_allclose(r, q, atol=1e-10)
    assert scale == pytest.approx(float((a ** 2).sum()))

    def no_convergence(*args, **kwargs):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(similarity, "orthogonal_procrustes", no_convergence)
    r2, scale2 = similarity.procrustes(a, a @ q)
    np.testing.assert_allclose(r2, q, atol=1e-10)
    assert scale2 == pytest.approx(scale)


def test_cka_and_head_agreement_reference_values():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 6))
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    assert linear_cka(x, 3 * x @ q) == pytest.approx(1.0)
    assert linear_cka(x, rng.standard_normal((200, 6))) < 0.2
    p = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])
    assert row_agreement(p, p) == 1.0
    assert row_agreement(p, np.array([[0.0, 0.5, 0.5], [0.0, 0.0, 0.0]])) == pytest.approx(0.75)


def test_bos_column_is_ignored():
    tracr = torch.tensor([[[[1.0, 0, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0], [1.0, 0, 0, 0]]]])
    learned = torch.tensor([[[[1.0, 0, 0, 0], [0, 0.5, 0.5, 0], [0.02, 0.49, 0.49, 0]]]])
    rows_in, rows_pos = np.zeros(2, dtype=int), np.array([1, 2])
    a, b = normalised_rows(tracr, rows_in, rows_pos), normalised_rows(learned, rows_in, rows_pos)
    assert np.allclose(a[0], [[0.5, 0.5, 0], [0, 0, 0]]) and np.allclose(b[0], [[0.5, 0.5, 0], [0.5, 0.5, 0]])


def test_matching_is_optimal_not_greedy():
    score = np.array([[0.9, 0.8], [0.85, 0.1]])
    assert [(i, j) for i, j, _ in match_heads(score, [0, 1])] == [(0, 1), (1, 0)]


# ------------------------------------------------------ report and the CLI --

def run_cli(capsys, argv):
    code = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, [e for e in err if e.startswith("error")]


def test_report_is_written_and_rebuilt_from_json(artifacts, tmp_path):
    learned = tmp_path / "mine"
    save_artifact(learned, random_model(load(artifacts, "miu")[0], 4), {"kind": "learned"})
    path = cli.run("miu", artifacts, tmp_path / "reports", [0], [str(learned)], TINY, log=lambda s: None)
    folder = path.parent
    names = {p.name for p in folder.iterdir()}
    assert {"report.html", "report.md", "compare.json", "readout_heatmap.png", "cka.png", "head_similarity.png",
            "attention_grids.png", "iia.png", "ablation.png"} <= names
    html = path.read_text()
    assert html.count("data:image/png;base64,") >= 6 and not re.search(r"(src|href)=['\"](http|/|\.)", html)
    data = read_report(folder / "compare.json")
    md = (folder / "report.md").read_text()
    # the first screen: the answer in words from the typed results, then the status graph; the rest collapsed
    summary = data.runs[0].result.summary
    answer = md.split("\n\n")[1]
    assert answer.startswith("Read through miu's variables, mine computes")
    assert all(name in answer for name in summary.undecided + summary.not_represented + summary.computed)
    assert md.split("\n\n")[2].startswith("![miu's computation graph")
    sections = re.findall(r"^## (.*)$", md, flags=re.M)
    assert sections[-2:] == ["Controls", "Methods"]
    assert html.count("<details>") == len(sections)
    assert html.index("class='answer'") < html.index("alt='miu&#x27;s computation graph") < html.index("<details>")
    assert "<table><tr><th>control</th><th>expected</th><th>found</th><th>pass</th>" in html
    figs = {"readouts": "readout_heatmap.png", "cka": "cka.png", "heads": "head_similarity.png", "iia": "iia.png",
            "ablation": "ablation.png", "attention": "attention_grids.png", "key_attention": "key_attention.png",
            "status_graph": "status_graph.png"}
    assert build_doc(get_program("miu"), data, figs, folder).markdown() == md


def test_non_finite_weights_are_a_one_line_error(artifacts, tmp_path, capsys):
    model, _ = load(artifacts, "miu")
    sd = model.tl_state_dict()
    sd["blocks.1.mlp.W_in"][0, 0] = float("nan")
    bad = Transformer(model.cfg)
    bad.load_tl_state_dict(sd)
    save_artifact(tmp_path / "nan", bad, {"kind": "learned"})
    code, err = run_cli(capsys, ["--program", "miu", "--artifacts", str(artifacts), "--reports",
                                 str(tmp_path / "r"), "--learned", str(tmp_path / "nan")])
    assert code == 2 and len(err) == 1
    assert "blocks.1.mlp.W_in" in err[0] and "nan" in err[0].lower() and "model.safetensors" in err[0]
    assert not (tmp_path / "r" / "miu").exists()


def test_a_checkpoint_that_cannot_read_the_inputs_is_one_line_error(artifacts, tmp_path, capsys):
    """Its own width is fine (tests/test_imported_compare.py); a context shorter than the inputs is not."""
    cfg = ModelConfig.from_dict({**load(artifacts, "miu")[0].cfg.to_dict(), "n_ctx": 6})
    save_artifact(tmp_path / "small", Transformer(cfg), {"kind": "learned"})
    code, err = run_cli(capsys, ["--program", "miu", "--artifacts", str(artifacts), "--reports",
                                 str(tmp_path / "r"), "--learned", str(tmp_path / "small")])
    assert code == 2 and len(err) == 1 and "context holds 5 tokens after BOS" in err[0]
    assert not (tmp_path / "r" / "miu").exists()


def test_missing_artifacts_name_the_make_target(artifacts, tmp_path, capsys):
    (tmp_path / "a" / "miu").mkdir(parents=True)
    code, err = run_cli(capsys, ["--program", "miu", "--artifacts", str(tmp_path / "a"), "--reports", str(tmp_path / "r")])
    assert code == 2 and len(err) == 1 and "make compile" in err[0]
    code, err = run_cli(capsys, ["--program", "miu", "--artifacts", str(artifacts), "--reports", str(tmp_path / "r"),
                                 "--seeds", "987"])
    assert code == 2 and len(err) == 1 and "make train" in err[0] and "seed987" in err[0]


def test_program_without_artifacts_and_unknown_program(tmp_path, capsys):
    code, err = run_cli(capsys, ["--program", "hist", "--artifacts", str(tmp_path), "--reports", str(tmp_path / "r")])
    assert code == 2 and len(err) == 1 and "no artifacts for program 'hist'" in err[0]
    code, err = run_cli(capsys, ["--program", "nope", "--artifacts", str(tmp_path), "--reports", str(tmp_path / "r")])
    assert code == 2 and len(err) == 1 and "unknown program" in err[0]


def test_corrupt_compare_json_is_one_line_error(tmp_path):
    from rasp_programs.errors import ToolkitError
    (tmp_path / "compare.json").write_text("{not json")
    with pytest.raises(ToolkitError, match="corrupt"):
        read_report(tmp_path / "compare.json")
    (tmp_path / "compare.json").write_text(json.dumps({"program": "miu"}))
    with pytest.raises(ToolkitError, match="schema"):
        read_report(tmp_path / "compare.json")


def test_interrupted_run_keeps_the_previous_report(artifacts, tmp_path, monkeypatch):
    from compare import report

    good = tmp_path / "reports" / "miu"
    good.mkdir(parents=True)
    (good / "report.html").write_text("previous good report")

    def boom(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(report.figures, "draw_all", boom)
    with pytest.raises(KeyboardInterrupt):
        cli.run("miu", artifacts, tmp_path / "reports", [0], [str(artifacts / "miu" / "compiled")], TINY,
                controls=False, log=lambda s: None)
    assert (good / "report.html").read_text() == "previous good report"
    assert [p.name for p in good.parent.iterdir()] == ["miu"]


def test_dynamics_folder_is_kept_and_folded_in(artifacts, tmp_path):
    dyn = tmp_path / "reports" / "miu" / "dynamics"
    dyn.mkdir(parents=True)
    (dyn / "dynamics.md").write_text("# Dynamics\n\ncount_I emerged at step 300\n")
    path = cli.run("miu", artifacts, tmp_path / "reports", [0], [str(artifacts / "miu" / "compiled")], TINY,
                   controls=False, log=lambda s: None)
    assert (path.parent / "dynamics" / "dynamics.md").is_file()
    assert "count_I emerged at step 300" in (path.parent / "report.md").read_text()


@pytest.mark.slow
def test_miu_mean_disguised_copy(artifacts):
    """miu_mean's two mean heads both attend uniformly; only what they write tells them apart. At the TINY
    size some statuses sit on a threshold, so this runs at SMALL."""
    model, meta = load(artifacts, "miu_mean")
    prep = prepare(get_program("miu_mean"), model, meta, SMALL)
    self_check = check_self(prep.reference)
    assert self_check.passed, self_check.checks
    # I_mod_3 is written when the output is already linearly readable; it is located all the same now
    assert prep.reference.variables["I_mod_3"].status.causal
    assert check_disguised(prep, seed=1, invertible=True).passed


@pytest.mark.slow
def test_controls_at_default_size(artifacts):
    """The controls at the default CompareConfig (what `make compare` runs)."""
    model, meta = load(artifacts, "miu")
    prep = prepare(get_program("miu"), model, meta, CompareConfig())
    assert check_self(prep.reference).passed
    for invertible in (False, True):
        assert check_disguised(prep, 0, invertible).passed
    assert check_untrained(prep, 0).passed and check_knockout(prep).passed and check_distributed(prep, 0).passed


def test_running_from_a_hook_equals_the_full_run(artifacts):
    """Interventions start the patched run at the hook (``Transformer.forward(start=...)``); it must agree
    with the run from the embeddings, and fire hooks from the start hook on."""
    model, _ = load(artifacts, "miu")
    model = model.double()
    ids = encode(model.cfg, [tuple("MIUIMI"), tuple("MII"), tuple("UUIMIIII")])
    logits, cache = model.run_with_cache(ids)
    for hook in resid_hooks(model.cfg):
        seen = []
        out = model(ids, start=(hook, cache[hook]), hooks={h: (lambda x, n: seen.append(n)) for h in resid_hooks(model.cfg)})
        assert torch.allclose(out, logits, atol=1e-9), hook
        assert seen[0] == hook and "hook_embed" not in seen
    with pytest.raises(ValueError, match="not a residual hook"):
        model(ids, start=("blocks.0.attn.hook_z", cache["blocks.0.hook_resid_pre"]))


def test_stopping_at_a_hook_returns_the_full_runs_residual(artifacts):
    """``stop_at`` (head writes read one layer's output) returns that residual, bit for bit the full run's,
    and runs nothing after it: no later hook fires."""
    model, _ = load(artifacts, "miu")
    ids = encode(model.cfg, [tuple("MIUIMI"), tuple("MII"), tuple("UUIMIIII")])
    _, cache = model.run_with_cache(ids)
    hooks = resid_hooks(model.cfg)
    for i, hook in enumerate(hooks):
        seen = []
        out = model(ids, stop_at=hook, hooks={h: (lambda x, n: seen.append(n)) for h in hooks})
        assert torch.equal(out, cache[hook]), hook
        assert seen == hooks[:i + 1]
        start = hooks[max(i - 1, 0)]
        assert torch.equal(model(ids, start=(start, cache[start]), stop_at=hook), cache[hook])
    with pytest.raises(ValueError, match="not a residual hook"):
        model(ids, stop_at="blocks.0.attn.hook_z")
    with pytest.raises(ValueError, match="before the start"):
        model(ids, start=(hooks[2], cache[hooks[2]]), stop_at=hooks[1])


# ------------------------------------------------------- language models (MU-GPT) --

def _lm(artifacts: Path, seed: int = 0) -> tuple[Transformer, dict]:
    """An untrained MU-GPT-shaped language model and a model.json with its readout block."""
    from learned.lm import Readout
    from learned.lm_data import lm_model_config

    compiled, _ = load(artifacts, "miu")
    cfg = lm_model_config(compiled.cfg, get_program("miu").language)
    model = Transformer(cfg)
    model.init_weights(torch.Generator().manual_seed(seed))
    return model.eval(), {"kind": "learned", "objective": "lm", "readout": Readout("END", 0.2, 0.3).to_json()}


def test_lm_readout_agrees_with_learned_lm(artifacts):
    """Two implementations of MU-GPT's verdict: compare.outputs.LMReadout and learned.lm.lm_verdicts."""
    from compare.outputs import readout_for
    from learned.lm import Readout, lm_verdicts

    model, meta = _lm(artifacts, seed=3)
    compiled, _ = load(artifacts, "miu")
    output = readout_for(model.cfg, {"config": model.cfg.to_dict(), **meta}, compiled.cfg.output_vocab, "test")
    strings = [tuple(s) for s in ("M", "MI", "MIU", "MUI", "MIIIIIIIII", "UMI", "MM", "MIUUIIUU")]
    ids = encode(model.cfg, strings)
    with torch.no_grad():
        ours = output.predict(model(ids), ids)
    theirs = lm_verdicts(model, ids, Readout.from_meta({"config": model.cfg.to_dict(), **meta}))
    true = compiled.cfg.output_vocab.index("True")
    assert torch.equal(ours == true, theirs)
    assert 0 < int(theirs.sum()) < int((ids != model.cfg.vocab.index(model.cfg.pad_token)).sum()) - len(strings)


def test_compare_an_lm_through_its_readout(artifacts, tmp_path, capsys):
    model, meta = _lm(artifacts)
    save_artifact(tmp_path / "lm", model, meta)
    path = cli.run("miu", artifacts, tmp_path / "reports", [0], [str(tmp_path / "lm")], TINY, controls=False,
                   log=lambda s: None, out=tmp_path / "reports" / "miu" / "mugpt")
    data = read_report(path.parent / "compare.json")
    res = data.runs[0].result
    assert "language-model verdict" in res.task_accuracy.readout and set(res.legal_next) == {"END"}
    assert "## What a language model needs: legal next tokens" in (path.parent / "report.md").read_text()
    # without its readout block, an LM artifact is refused in one line
    save_artifact(tmp_path / "bare", model, {"kind": "learned"})
    code, err = run_cli(capsys, ["--program", "miu", "--artifacts", str(artifacts), "--reports", str(tmp_path / "r"),
                                 "--learned", str(tmp_path / "bare")])
    assert code == 2 and len(err) == 1 and "declares no readout" in err[0]
