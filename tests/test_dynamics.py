"""Training dynamics: emergence detection on curves with known crossings, and checkpoint handling."""

import json

import numpy as np
import pytest

from compare import curves as C
from compare import dynamics as D
from rasp_programs.errors import ToolkitError


def test_emergence_is_where_the_curve_stays_above():
    steps = [0, 1, 2, 5, 10, 20, 50, 100]
    curve = [0.0, 0.95, 0.4, 0.91, 0.93, 0.992, 0.995, 0.999]
    assert C.emergence_step(steps, curve, 0.9) == 5  # the early spike at step 1 does not count
    assert C.emergence_step(steps, curve, 0.99) == 20
    assert C.emergence_step(steps, curve, 0.9999) is None
    assert C.emergence_step([0, 1, 2], [0.95, 0.2, 0.95], 0.9) == 2
    assert C.emergence_step([0, 1], [float("nan"), 0.95], 0.9) == 1
    assert C.first_step(steps, curve, 0.9) == 1
    assert C.first_step(steps, [0.9, 0.5, 0.005, 0.5], 0.01, below=True) == 2


def test_order_progress_measures_and_rejection_of_the_impossible_string():
    steps = [0, 10, 100, 1000]
    run = {
        "steps": steps, "impossible": "MU",
        "accuracy": {"sequence": [0.3, 0.5, 0.995, 1.0]},  # jump at step 100
        "variables": {
            "count_I": {"causal": [False, True, True, True], "readout": [0.0, 0.2, 0.95, 1.0]},  # causal before
            "theorem": {"causal": [False, False, True, True], "readout": [0.1, 0.6, 0.95, 0.99]},  # with the jump
            "bad_M_at": {"causal": [False, True, False, False], "readout": [0.1, 0.2, 0.3, 0.4]},  # never stays
        },
        "probes": {"MU": [0.5, 0.2, 0.008, 0.001], "MI": [0.5, 0.6, 0.02, 0.0]},
    }
    a = C.analyse_curves(C.Curves.from_json(run))
    assert a.emergence["causal"] == {"count_I": 10, "theorem": 100, "bad_M_at": None}
    assert a.emergence["readable"] == {"count_I": 100, "theorem": 100, "bad_M_at": None}
    assert a.order["causal"] == [["count_I"], ["theorem"]]
    assert a.accuracy_jump_step == 100
    assert a.progress_measures == ["count_I"]
    run["variables"]["bad_M_at"]["causal"] = [True, True, True, True]  # causal from the first checkpoint
    assert C.analyse_curves(C.Curves.from_json(run)).progress_measures == ["count_I"]
    run["variables"]["bad_M_at"]["readout"] = [0.95, 0.95, 0.95, 0.95]
    assert C.analyse_curves(C.Curves.from_json(run)).readable_at_init == ["bad_M_at"]
    assert a.impossible_probed and a.impossible_rejected_step == 100 and a.end_below_step is None
    assert a.sentence["causal"] == "count_I (step 10), then theorem (step 100); never causal: bad_M_at"
    # The rejection step follows the task's impossible string, whichever it is; none where it is not probed.
    assert C.analyse_curves(C.Curves.from_json({**run, "impossible": "MI"})).impossible_rejected_step == 1000
    other = C.analyse_curves(C.Curves.from_json({**run, "impossible": "ab"}))
    assert not other.impossible_probed and other.impossible_rejected_step is None
    # A language model: P(END | impossible) below the stop rule's epsilon.
    lm = C.analyse_curves(C.Curves.from_json({**run, "p_impossible": [0.1, 0.01, 1e-4, 1e-6]}))
    assert lm.lm and lm.end_below_step == 1000


def test_curves_round_trip_through_json():
    run = C.Curves(folder="x", impossible="MU", steps=[0, 5], probes={"MU": [0.5, 0.1]},
                   variables={"v": C.VariableCurve(status=["causal"] * 2, causal=[True, True], iia=[0.9, 1.0])},
                   heads={"L1H0": C.HeadCurve([0.5, 0.9], ["L1H1", "L1H0"])}, skipped=[C.Skipped(3, "y", "bad")],
                   candidates={"miu": C.CandidateCurve([0.1, 0.2], [0.0, 0.1], [0.2, 0.3], ["undecided"] * 2)})
    back = C.Curves.from_json(json.loads(json.dumps(run.to_json())))
    assert back == run
    assert C.analyse_curves(back) == C.analyse_curves(run)


def test_same_order_across_seeds():
    def run(order):
        return C.Analysis(emergence={}, order={"causal": order}, sentence={}, accuracy_jump_step=None,
                          progress_measures=[], readable_at_init=[], impossible_rejected_step=5)
    assert C.across_seeds({"0": run([["a"], ["b"]]), "1": run([["a"], ["b"]])})["same_order_in_every_seed"]
    assert not C.across_seeds({"0": run([["a"], ["b"]]), "1": run([["b"], ["a"]])})["same_order_in_every_seed"]


def test_run_without_checkpoints_says_how_to_make_them(tmp_path):
    with pytest.raises(ToolkitError, match=r"no checkpoints in .*run `make train`"):
        D.checkpoint_folders(tmp_path)
    (tmp_path / "checkpoints" / "step10").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step2").mkdir(parents=True)
    (tmp_path / "checkpoints" / "notes").mkdir(parents=True)
    assert [s for s, _ in D.checkpoint_folders(tmp_path)] == [2, 10]


# ---------------------------------------------------------------- real run --

@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """MIU at length 4: compiled, trained with checkpoints, analysed."""
    pytest.importorskip("jax")
    import compiled.__main__ as compile_cli
    import learned.__main__ as train_cli

    arts, reports = tmp_path_factory.mktemp("arts"), tmp_path_factory.mktemp("reports")
    assert compile_cli.main(["--program", "miu", "--max-len", "4", "--artifacts", str(arts)]) == 0
    # six log-spaced checkpoints (0, 1, 3, 10, 32, 100): the curves' mechanics, at a third of the default's cost
    assert train_cli.main(["--program", "miu", "--artifacts", str(arts), "--seeds", "0", "--no-progress",
                           "--checkpoints", "6"]) == 0
    run = arts / "miu" / "learned" / "seed0"
    # A checkpoint of the wrong shape among the good ones: named, skipped, the rest analysed.
    import dataclasses

    import torch
    from learned.artifact import load_artifact, save_artifact
    from learned.model import Transformer

    good, meta = load_artifact(D.checkpoint_folders(run)[-1][1])
    wrong = Transformer(dataclasses.replace(good.cfg, d_mlp=good.cfg.d_mlp + 1))
    wrong.init_weights(torch.Generator().manual_seed(0))
    save_artifact(run / "checkpoints" / "step1000000", wrong, {k: v for k, v in meta.items() if k != "config"})
    assert D.main(["--program", "miu", "--artifacts", str(arts), "--reports", str(reports), "--seeds", "0"]) == 0
    out = json.loads((reports / "miu" / "dynamics" / "dynamics.json").read_text())
    return arts, run, out


def test_final_checkpoint_agrees_with_the_finished_model(short_run):
    import torch
    from learned.artifact import load_artifact

    arts, run, out = short_run
    curves = out["runs"]["0"]
    metrics = json.loads((run / "metrics.json").read_text())
    final_step, final_folder = [c for c in D.checkpoint_folders(run) if c[0] != 1_000_000][-1]
    assert curves["steps"][-1] == final_step
    finished, _ = load_artifact(run)
    last, _ = load_artifact(final_folder)
    for name, w in finished.tl_state_dict().items():
        assert torch.equal(w, last.tl_state_dict()[name]), name
    assert curves["accuracy"]["sequence"][-1] == metrics["evaluation"]["sequence_accuracy"] == 1.0
    assert curves["steps"][0] == 0 and len(curves["steps"]) >= 5
    assert set(curves["variables"]) == {"I_at", "bad_M_at", "count_I", "count_bad_M", "theorem"}
    # The trained model rejects MU; at step 0 it has no opinion yet.
    assert curves["probes"]["MU"][-1] < 0.5 < curves["probes"]["MI"][-1]
    rejected = curves["analysis"]["impossible_rejected_step"]
    assert curves["impossible"] == "MU" and (rejected is None or rejected > 0)


def test_wrong_shape_checkpoint_is_skipped_and_listed(short_run, capsys):
    _, _, out = short_run
    skipped = out["runs"]["0"]["skipped"]
    assert [s["step"] for s in skipped] == [1_000_000]
    assert "d_mlp" in skipped[0]["error"] and "\n" not in skipped[0]["error"]
    assert 1_000_000 not in out["runs"]["0"]["steps"]


def test_dynamics_cli_on_a_run_without_checkpoints(short_run, tmp_path, capsys):
    arts, _, _ = short_run
    (arts / "miu" / "learned" / "seed7").mkdir()
    code = D.main(["--program", "miu", "--artifacts", str(arts), "--reports", str(tmp_path), "--seeds", "7"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: no checkpoints in ") and "run `make train`" in err
    assert not any(tmp_path.iterdir()), "nothing written"


def test_readouts_are_measured_against_their_baseline():
    assert C.normalised(0.99, 0.98) == pytest.approx(0.5)  # barely above an untrained network
    assert C.normalised(1.0, 0.95) == 1.0 and C.normalised(0.5, 0.6) == 0.0
    assert np.isnan(C.normalised(1.0, 1.0))  # nothing to gain over a perfect baseline
    order = [["I_at"], ["theorem"]]
    assert C.order_sentence(order, {"I_at": 0, "theorem": 40}) == (
        "I_at (step 0, i.e. at initialisation, from the input alone), then theorem (step 40)")


def test_candidate_leader_and_support_over_training():
    """A run that passes through one algorithm on the way to another: the first-ranked candidate changes."""
    steps = [0, 10, 100, 1000]
    run = {
        "steps": steps, "accuracy": {"sequence": [0.3, 0.5, 0.995, 1.0]}, "variables": {}, "probes": {},
        "leader": ["miu", "miu_mean", "miu_mean", "miu"],
        "candidates": {"miu": {"score": [0.65, 0.35, 0.55, 0.95], "support": ["not supported", "undecided", "not supported", "supported"],
                               "lo": [0.6, 0.3, 0.5, 0.92], "hi": [0.7, 0.4, 0.6, 0.97]},
                       "miu_mean": {"score": [0.35, 0.93, 0.6, 0.45], "support": ["not supported", "supported", "not supported", "not supported"],
                                    "lo": [0.3, 0.91, 0.55, 0.4], "hi": [0.4, 0.95, 0.65, 0.5]}},
    }
    a = C.analyse_curves(C.Curves.from_json(run))
    # step 100: the two CIs overlap, so that checkpoint does not count (whichever ranked first)
    assert a.clear_checkpoints == 3
    assert a.leader_changes == [[0, "miu"], [10, "miu_mean"], [1000, "miu"]]
    assert a.supported_from == {"miu": 1000, "miu_mean": None}  # supported only while it stays so
    text = D.markdown({"0": C.Curves.from_json(run)}, {"0": a}, same_order=True)
    assert "clear of every other's at 3 of 4 checkpoints: miu from step 0, then miu_mean from step 10" in text
