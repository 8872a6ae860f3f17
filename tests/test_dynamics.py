"""Training dynamics: emergence detection on curves with known crossings, and checkpoint handling."""

import pytest

from compare import dynamics as D
from rasp_programs.errors import ToolkitError


def test_emergence_is_where_the_curve_stays_above():
    steps = [0, 1, 2, 5, 10, 20, 50, 100]
    curve = [0.0, 0.95, 0.4, 0.91, 0.93, 0.992, 0.995, 0.999]
    assert D.emergence_step(steps, curve, 0.9) == 5  # the early spike at step 1 does not count
    assert D.emergence_step(steps, curve, 0.99) == 20
    assert D.emergence_step(steps, curve, 0.9999) is None
    assert D.emergence_step([0, 1, 2], [0.95, 0.2, 0.95], 0.9) == 2
    assert D.emergence_step([0, 1], [float("nan"), 0.95], 0.9) == 1
    assert D.first_step(steps, curve, 0.9) == 1
    assert D.first_step(steps, [0.9, 0.5, 0.005, 0.5], 0.01, below=True) == 2


def test_order_progress_measures_and_mu_rejection():
    steps = [0, 10, 100, 1000]
    run = {
        "steps": steps,
        "accuracy": {"sequence": [0.3, 0.5, 0.995, 1.0]},  # jump at step 100
        "variables": {
            "count_I": {"readout": [0.2, 0.95, 0.999, 1.0]},   # 0.9 at 10: before the jump
            "theorem": {"readout": [0.5, 0.6, 0.95, 0.999]},   # 0.9 at 100: with the jump
            "bad_M_at": {"readout": [0.1, 0.2, 0.3, 0.4]},     # never
        },
        "probes": {"MU": [0.5, 0.2, 0.008, 0.001]},
    }
    a = D.analyse_curves(run)
    assert a["emergence"]["0.9"] == {"count_I": 10, "theorem": 100, "bad_M_at": None}
    assert a["emergence"]["0.99"] == {"count_I": 100, "theorem": 1000, "bad_M_at": None}
    assert a["order"]["0.9"] == [["count_I"], ["theorem"]]
    assert a["accuracy_jump_step"] == 100
    assert a["progress_measures"] == ["count_I"]
    assert a["mu_rejected_step"] == 100
    assert a["sentence"]["0.9"] == "count_I (step 10), then theorem (step 100); never readable: bad_M_at"


def test_same_order_across_seeds():
    def run(order):
        return {"analysis": {"order": {"0.9": order}, "mu_rejected_step": 5}}
    assert D.across_seeds({"0": run([["a"], ["b"]]), "1": run([["a"], ["b"]])})["same_order_in_every_seed"]
    assert not D.across_seeds({"0": run([["a"], ["b"]]), "1": run([["b"], ["a"]])})["same_order_in_every_seed"]


def test_run_without_checkpoints_says_how_to_make_them(tmp_path):
    with pytest.raises(ToolkitError, match=r"no checkpoints in .*run `make train`"):
        D.checkpoint_folders(tmp_path)
    (tmp_path / "checkpoints" / "step10").mkdir(parents=True)
    (tmp_path / "checkpoints" / "step2").mkdir(parents=True)
    (tmp_path / "checkpoints" / "notes").mkdir(parents=True)
    assert [s for s, _ in D.checkpoint_folders(tmp_path)] == [2, 10]
