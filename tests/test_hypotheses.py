"""Tests for compare.hypotheses: candidate programs ranked against one model, and its controls.

Controls (each can fail): a compiled candidate, compared as if it were the
learned model, must rank itself first, be supported and be told apart from
every other candidate; so must a disguised copy of it (its residual stream
mapped by an invertible map, heads permuted); an untrained network supports
no candidate; ranking a single candidate reproduces the plain comparison.
The compiled candidates have other shapes than one another, so every
comparison here is between models of different shapes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from compare import __main__ as cli
from compare.activations import build_dataset
from compare.controls import disguise, random_model
from compare.hypotheses import Support, _one_to_one, positionwise, rank
from compare.pipeline import CompareConfig, compare_models, prepare
from compare.report import build_doc, read_report
from compare.json_edge import to_json
from learned.artifact import load_artifact, save_artifact
from rasp_programs.registry import get_program

HYP = CompareConfig(n_inputs=600, n_untrained=1, n_fit=80, n_val=60, n_test=200, das_steps=10, das_dims=(),
                    n_null=3, ablation_modes=(), control_task=False)


def load(artifacts: Path, program: str):
    return load_artifact(artifacts / program / "compiled", dtype=torch.float64)


@pytest.fixture(scope="session")
def preps(artifacts):
    """The fast tests' candidates: a count and a fraction, the pair that only cross-position pairs tell apart."""
    return {p: prepare(get_program(p), *load(artifacts, p), HYP) for p in ("miu", "miu_mean")}


@pytest.fixture(scope="session")
def all_preps(artifacts, preps):
    """Every candidate, miu_first (a superset of miu) too."""
    return {**preps, "miu_first": prepare(get_program("miu_first"), *load(artifacts, "miu_first"), HYP)}


def check_identifies(ranking, name: str) -> None:
    """``name`` ranks first with a clear margin: told apart from every rival (head to head, or by score CIs that
    do not overlap), beaten by none, every rival beaten head to head or scoring lower, and none supported."""
    assert ranking.order[0] == name, (ranking.order, {n: c.score.fmt() for n, c in ranking.candidates.items()})
    assert all(ranking.told_apart(name, other) for other in ranking.order[1:]), ranking.not_told_apart
    assert not any(d.winner not in (None, name) for d in ranking.head_to_head if name in (d.a, d.b))
    beaten = {d.b if d.winner == d.a else d.a for d in ranking.head_to_head if d.winner == name}
    for other in ranking.order[1:]:
        assert ranking.candidates[other].support is not Support.SUPPORTED
        # a rival scores lower, or loses head to head (a count scores well on the pairs where it agrees
        # with a fraction; only the pairs where they differ tell them apart)
        assert other in beaten or ranking.candidates[other].score.value < ranking.candidates[name].score.value


# ------------------------------------------------------------------ controls --

def test_self_identification_mean_attention(preps):
    """Compiled miu_mean (5 layers, 1 head) against the count: it must name itself (against miu_first too in
    the slow ``test_each_candidate_identifies_itself``).
    Only cross-position pairs can tell a fraction from a count."""
    model = preps["miu_mean"].compiled.model
    ranking = rank(preps, model)
    check_identifies(ranking, "miu_mean")
    assert ranking.candidates["miu_mean"].support is Support.SUPPORTED, ranking.candidates["miu_mean"].score.fmt()
    duel = next(d for d in ranking.head_to_head if {d.a, d.b} == {"miu", "miu_mean"})
    assert duel.n >= 20 and duel.winner == "miu_mean"
    # the count is told from the fraction on the pairs where they predict different outputs: there the model
    # follows the fraction (on a candidate's own distinguishing pairs count and fraction mostly agree). Since
    # a copied verdict counts only where the swap is faithful, these are frac_I_exact's pairs (2026-12-03:
    # 25 pairs, the count followed on none)
    assert any(v.startswith("count_I ~ frac_I") for v in duel.via), duel.via
    follows_mean = duel.b_follows if duel.b == "miu_mean" else duel.a_follows
    follows_count = duel.a_follows if duel.b == "miu_mean" else duel.b_follows
    assert follows_mean.value > follows_count.value
    # determinism: a candidate's results do not depend on which candidates were ranked before it
    torch.manual_seed(1234)  # and not on torch's global generator either
    alone = rank({"miu_mean": preps["miu_mean"]}, model)
    assert to_json(alone.candidates["miu_mean"].comparison) == to_json(ranking.candidates["miu_mean"].comparison)
    assert alone.candidates["miu_mean"].score == ranking.candidates["miu_mean"].score


def test_untrained_network_supports_no_candidate(preps):
    ranking = rank(preps, random_model(preps["miu"].compiled.model, 3))
    assert not any(c.support is Support.SUPPORTED for c in ranking.candidates.values())
    assert all(c.score.hi < 0.9 for c in ranking.candidates.values() if c.score.defined)


def test_one_candidate_reproduces_the_plain_comparison(preps):
    model, _ = disguise(preps["miu"].compiled.model, 5, invertible=True)
    ranking = rank({"miu": preps["miu"]}, model)
    assert to_json(ranking.candidates["miu"].comparison) == to_json(compare_models(preps["miu"], model))
    assert ranking.order == ["miu"] and ranking.head_to_head == [] and ranking.not_told_apart == []


SUPERSET = pytest.mark.xfail(strict=True, reason=(
    "measured 2026-12-03: compiled miu_first computes every variable of miu (count_I, and count_M one-to-one "
    "with count_bad_M) and one more (the first M); no swap makes the two predict different outputs (0 "
    "head-to-head pairs), and miu ranks first on its score, 1.00 [1.00, 1.00] against 1.00 [0.98, 1.00] (the "
    "difference -0.00 [-0.01, 0.00]; miu_first's M_ok crosses positions at 0.98 [0.87, 1.00]), plain and "
    "disguised: the score cannot prefer the candidate that explains more of the model"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["miu", "miu_mean", pytest.param("miu_first", marks=SUPERSET)])
@pytest.mark.parametrize("disguised", [False, True], ids=["plain", "disguised"])
def test_each_candidate_identifies_itself(all_preps, name, disguised):
    """Every candidate, plain and disguised, ranks itself first with a clear margin, and miu and miu_mean are
    supported. Compiled miu beats miu_mean head to head since an unchanged output counts for the candidate
    predicting no change where the swap is effective (``compare.hypotheses``); before that it lost. miu_first
    is a strict xfail (reason above)."""
    model = all_preps[name].compiled.model
    if disguised:
        model, _ = disguise(model, 11, invertible=True)
    ranking = rank(all_preps, model)
    check_identifies(ranking, name)
    if name != "miu_first":
        assert ranking.candidates[name].support is Support.SUPPORTED, ranking.candidates[name].score.fmt()


# ------------------------------------------------------------- the pieces --

def test_counterparts_are_one_to_one_at_each_position():
    pos = np.array([1, 1, 2, 2, 2])
    count = [0, 1, 0, 1, 2]
    frac = [0.0, 1.0, 0.0, 0.5, 1.0]                 # count / position: one-to-one at each position
    assert _one_to_one(count, frac, pos) and _one_to_one(frac, count, pos)
    assert not _one_to_one(count, [0, 1, 0, 1, 1], pos)  # a coarsening (count > 0) is not a counterpart
    assert not _one_to_one(count, [7] * 5, pos)          # nor is a constant


def _tested(outputs, target, copy, keep, changed):
    """Synthetic test pairs of one variable at the last of two positions (BOS ignored), one string each."""
    from compare.hypotheses import _Tested
    from compare.interventions import Pairs
    from compare.outputs import IGNORE

    n = len(target)

    def rows(v):
        return torch.tensor([[IGNORE, int(x)] for x in v])
    idx = np.arange(n)
    pairs = Pairs(idx, idx, rows(target), np.array(["x"] * n), np.ones(n, bool), rows(copy), rows(keep),
                  np.ones(n, bool))
    return _Tested(pairs, np.ones(n, bool), None if outputs is None else rows(outputs), idx, np.asarray(changed),
                   idx + n)


def test_a_copied_verdict_counts_head_to_head_only_where_the_swap_is_faithful():
    """On 40 binary-output pairs the candidate predicts the source's own output (copy), its rival no change.
    A swap that copies the output meets the prediction on every pair. Whether those pairs count depends on
    the variable's distinguishing pairs: if there the swap misses the variable's counterfactual (it carries
    only the output), no pair counts; if it hits, every pair does."""
    from compare.hypotheses import _deciding

    n = 40
    ones, zeros = np.ones(n, int), np.zeros(n, int)
    pairs = _tested(ones, ones, ones, zeros, np.ones(n, bool))   # the model copied, as predicted
    theirs = pairs.pairs.keep.clone()
    live = np.ones(n, bool)
    copying = _tested(ones, zeros, ones, zeros, np.ones(n, bool))  # distinguishing pairs: wants 0, gets the copy
    faithful = _tested(zeros, zeros, ones, ones, np.ones(n, bool))  # ... gets the counterfactual
    differ, _ = _deciding(pairs, theirs, copying, live, 0)
    assert not differ.any()
    differ, counts = _deciding(pairs, theirs, faithful, live, 0)
    assert differ.all() and counts.all()
    # where neither prediction is the source's own output (three output classes), the pairs count either way
    other = _tested(ones, ones, zeros, zeros, np.ones(n, bool))
    assert _deciding(other, torch.full_like(other.pairs.keep, 2), copying, live, 0)[0].all()


def test_position_wise_variables_are_recognised(artifacts):
    model, meta = load(artifacts, "miu_first")
    data = build_dataset(get_program("miu_first"), meta, model.cfg, HYP.n_inputs, HYP.seed, HYP.folds)
    assert positionwise(data, "I_at") and positionwise(data, "M_at")
    assert not positionwise(data, "first") and not positionwise(data, "count_I")


def test_cross_position_pairs_set_values_the_base_position_takes(preps):
    prep = preps["miu"]
    data = prep.data
    pairs = prep.pairs["count_I"]["test"]
    cross = pairs.cross
    assert 0.3 < cross.mean() < 0.7
    assert (data.row_pos[pairs.source[cross]] != data.row_pos[pairs.base[cross]]).all()
    assert (data.row_pos[pairs.source[~cross]] == data.row_pos[pairs.base[~cross]]).all()
    seen = {(int(p), str(v)) for p, v in zip(data.row_pos, data.values["count_I"])}
    assert all((int(data.row_pos[b]), v) in seen for b, v in zip(pairs.base, pairs.value))


def test_candidates_must_share_the_task(artifacts, tmp_path, capsys):
    code = cli.main(["--program", "miu", "--artifacts", str(artifacts), "--reports", str(tmp_path),
                     "--hypotheses", "miu", "hist"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hist" in err and "task" in err


def test_report_opens_with_which_algorithm(artifacts, tmp_path):
    """`--hypotheses` end to end; a disguised compiled miu_first stands in for a model trained at its shape."""
    model, _ = disguise(load(artifacts, "miu_first")[0], 2, invertible=False)
    save_artifact(tmp_path / "mine", model.float(), {"kind": "learned"})
    cfg = dataclasses.replace(HYP, n_inputs=400, n_fit=60, n_val=40, n_test=60, das_steps=3)  # the layout only
    path = cli.run("miu_first", artifacts, tmp_path / "reports", [0], [str(tmp_path / "mine")], cfg,
                   controls=False, log=lambda s: None, hypotheses=["miu", "miu_first"])
    md = (path.parent / "report.md").read_text()
    # first screen: the ranking's headline, the ranking table, the best candidate's graph; then the sections
    answer = md.split("\n\n")[1]
    data = read_report(path.parent / "compare.json")
    top = data.hypotheses[0].ranking.order[0]
    assert answer.startswith(top) and f"Read through {top}'s variables" in answer
    assert md.index("| rank | candidate |") < md.index("## Which algorithm? The ranking in full")
    assert md.index(f"![{top}'s computation graph") < md.index("## Which algorithm?")
    assert md.index("## Which algorithm?") < md.index("## Each variable of miu_first in words")
    assert "algorithm_graphs.png" in md and "What each head looks at" in md
    ranking = data.hypotheses[0].ranking
    assert set(ranking.order) == {"miu", "miu_first"}
    # the plain comparison is the ranking's own candidate, not a second run
    assert to_json(data.runs[0].result) == to_json(ranking.candidates["miu_first"].comparison)
    figs = {"readouts": "readout_heatmap.png", "cka": "cka.png", "heads": "head_similarity.png", "iia": "iia.png",
            "ablation": "ablation.png", "attention": "attention_grids.png", "key_attention": "key_attention.png",
            "graphs": "algorithm_graphs.png", "status_graph": "status_graph.png"}
    assert build_doc(get_program("miu_first"), data, figs, path.parent).markdown() == md


@pytest.mark.slow
def test_forked_workers_give_the_same_report_as_one_process(artifacts, tmp_path):
    """Candidates and controls run in forked processes (``compare.parallel``); every choice is seeded from
    the config, so the record is the same with one process as with two (about 2 min: slow; the fast
    ``tests/test_parallel.py`` checks ``fork_map`` itself)."""
    model, _ = disguise(load(artifacts, "miu_mean")[0], 3, invertible=False)
    save_artifact(tmp_path / "mine", model.float(), {"kind": "learned"})
    cfg = dataclasses.replace(HYP, n_inputs=400, n_fit=60, n_val=40, n_test=60, das_steps=3, das_dims=(), n_null=3)
    records = []
    for workers in (1, 2):
        path = cli.run("miu_mean", artifacts, tmp_path / f"r{workers}", [0], [str(tmp_path / "mine")], cfg,
                       log=lambda s: None, hypotheses=["miu", "miu_mean"], workers=workers)
        record = json.loads((path.parent / "compare.json").read_text())
        record.pop("seconds")
        records.append(record)
    assert records[0] == records[1]
    assert records[0]["controls"] and records[0]["hypotheses"]
