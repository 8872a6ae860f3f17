"""The learned stage: data, training, evaluation, run folders and the CLI's bad-input handling.

Training runs here are real but tiny: MIU at length 4 (120 inputs) in the
compiled model's layer/head layout, a few hundred steps of batch 64.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import learned.__main__ as cli
from learned import checkpoints as ckpt
from learned import data
from learned.artifact import encode, decode, load_artifact, save_artifact
from learned.evaluate import build_eval_set, evaluate
from learned.model import ModelConfig, Transformer
from learned.train import TrainConfig, lr_at, train
from rasp_programs import miu, miu_task
from rasp_programs.errors import ToolkitError
from rasp_programs.registry import get_program

MIU = get_program("miu")
CPU = torch.device("cpu")


def miu_cfg(max_len: int = 4, d_model: int = 64) -> ModelConfig:
    """The compiled MIU shape (3 layers, 2 heads) at a small length."""
    return ModelConfig(n_layers=3, n_heads=2, d_model=d_model, d_head=12, d_mlp=121, n_ctx=max_len + 1, d_vocab=5,
                       d_vocab_out=2, vocab=("BOS", "I", "M", "PAD", "U"), output_vocab=("False", "True"),
                       bos_token="BOS", pad_token="PAD", causal=True)


def tiny(seed: int = 0, **kw) -> TrainConfig:
    base = dict(max_len=4, seed=seed, steps=400, batch_size=64, pool_size=512, log_every=10, check_every=20)
    return TrainConfig(**{**base, **kw})


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_artifact(folder)[0].tl_state_dict()


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, object]:
    folder = tmp_path_factory.mktemp("run") / "seed0"
    return folder, train(tiny(0), miu_cfg(), CPU, folder, progress=False)


# -- data ---------------------------------------------------------------------


def test_data_labels_are_the_program_and_balanced():
    cfg = miu_cfg(6)
    table = data.build_table(MIU, cfg, 6, seed=3, pool_size=400)
    assert table.pool_names == ("well_formed", "derived", "hard_negative", "uniform")
    vocab = cfg.vocab
    for row, tgt in zip(table.ids[:300].tolist(), table.targets[:300].tolist()):
        s = "".join(vocab[i] for i in row[1:] if vocab[i] != "PAD")
        # Independent check: the rewrite system's criterion, prefix by prefix.
        assert [cfg.output_vocab[t] for t in tgt[1:1 + len(s)]] == [str(v) for v in miu.prefix_verdicts(s)]
        assert all(t == data.IGNORE for t in tgt[1 + len(s):]) and tgt[0] == data.IGNORE
    share = data.describe(table)["final_class_share"]
    assert share[0] == pytest.approx(0.5) and share[1] == pytest.approx(0.5)


def test_hard_negatives_are_one_edit_from_a_theorem():
    import numpy as np
    rng = np.random.default_rng(0)
    for _ in range(200):
        t = "M" + "".join(rng.choice(["I", "U"], size=int(rng.integers(0, 6))))
        s = "".join(miu_task.hard_negative(rng, t, 10))
        # one insertion, deletion or substitution: lengths differ by <= 1 and a common subsequence is long
        assert abs(len(s) - len(t)) <= 1
        assert any(s == t[:i] + c + t[i:] or s == t[:i] + t[i + 1:] or s == t[:i] + c + t[i + 1:]
                   for i in range(len(t) + 1) for c in "MIU") or s == t + "I"


def test_data_seed_is_separate_from_model_seed():
    cfg = miu_cfg()
    a = data.build_table(MIU, cfg, 4, seed=5, pool_size=64)
    b = data.build_table(MIU, cfg, 4, seed=5, pool_size=64)
    c = data.build_table(MIU, cfg, 4, seed=6, pool_size=64)
    assert torch.equal(a.ids, b.ids) and not torch.equal(a.ids, c.ids)
    assert TrainConfig(seed=1).resolved_data_seed != TrainConfig(seed=2).resolved_data_seed
    assert TrainConfig(seed=1, data_seed=7).resolved_data_seed == TrainConfig(seed=2, data_seed=7).resolved_data_seed


def test_schedule_warms_up_then_decays():
    cfg = TrainConfig(steps=1000, warmup=50, lr=1e-2, min_lr_ratio=0.1)
    lrs = [lr_at(cfg, s) for s in range(1000)]
    assert lrs[0] < lrs[49] == pytest.approx(1e-2)
    assert all(a >= b for a, b in zip(lrs[50:], lrs[51:]))
    assert lr_at(cfg, 1000) == pytest.approx(1e-3)


# -- evaluation ---------------------------------------------------------------


def test_evaluation_agrees_with_an_independent_decode():
    cfg = miu_cfg()
    model = Transformer(cfg)
    model.init_weights(torch.Generator().manual_seed(1))
    es = build_eval_set(MIU, cfg, 4)
    m = evaluate(model, es)
    assert m["exhaustive"] and m["inputs"] == 3 + 9 + 27 + 81
    assert {n: v["inputs"] for n, v in m["per_length"].items()} == {n: 3 ** n for n in range(1, 5)}
    inputs = list(MIU.enumerate_inputs(4))
    preds = [row[:len(x)] for row, x in zip(decode(cfg, model(encode(cfg, inputs))), inputs)]
    truth = [[str(v) for v in miu.prefix_verdicts("".join(x))] for x in inputs]
    assert m["sequence_accuracy"] == pytest.approx(sum(p == t for p, t in zip(preds, truth)) / len(inputs))
    assert m["final_accuracy"] == pytest.approx(sum(p[-1] == t[-1] for p, t in zip(preds, truth)) / len(inputs))
    assert m["sequence_accuracy"] < 1.0  # a random model is not right everywhere (negative control)
    clause = m["per_clause"]["deciding"]
    assert sum(v["inputs"] for v in clause.values()) == len(inputs)
    assert clause["theorem"]["inputs"] == sum(miu.is_theorem("".join(x)) for x in inputs)


def test_clauses():
    assert miu_task.clauses(tuple("MIU"))["deciding"] == "theorem"
    assert miu_task.clauses(tuple("MU"))["deciding"] == "I_count_mod_3"
    assert miu_task.clauses(tuple("MIM"))["deciding"] == "later_M"
    assert miu_task.clauses(tuple("IM"))["deciding"] == "starts_with_M"


def test_gate_rows_cover_every_prefix():
    es = build_eval_set(MIU, miu_cfg(), 4)
    rows = es.gate_rows()
    prefixes = {es.inputs[r][:k] for r in rows.tolist() for k in range(1, 5)}
    assert prefixes == set(es.inputs)


# -- training -----------------------------------------------------------------


def test_short_run_reaches_100_and_round_trips(run):
    folder, r = run
    m = json.loads((folder / "metrics.json").read_text())
    assert r.reached_100_step is not None and r.step == r.reached_100_step
    assert m["evaluation"]["exhaustive"] and m["evaluation"]["sequence_accuracy"] == 1.0
    # Loaded from disk by the shared class, the model is right on every prefix of every input.
    model, meta = load_artifact(folder)
    assert meta["kind"] == "learned" and meta["training"]["seed"] == 0 and meta["config"] == miu_cfg().to_dict()
    inputs = list(MIU.enumerate_inputs(4))
    preds = [row[:len(x)] for row, x in zip(decode(model.cfg, model(encode(model.cfg, inputs))), inputs)]
    assert preds == [[str(v) for v in miu.prefix_verdicts("".join(x))] for x in inputs]


def test_save_load_round_trip_is_exact(tmp_path):
    model = Transformer(miu_cfg())
    model.init_weights(torch.Generator().manual_seed(4))
    save_artifact(tmp_path / "a", model, {"kind": "learned"})
    loaded, _ = load_artifact(tmp_path / "a")
    ids = encode(model.cfg, list(MIU.enumerate_inputs(4)))
    assert torch.equal(model(ids), loaded(ids))


def test_checkpoints_are_log_spaced_with_0_and_final(run):
    folder, r = run
    steps = sorted(int(p.name[4:]) for p in (folder / "checkpoints").iterdir())
    assert steps[0] == 0 and steps[-1] == r.step and len(steps) >= 10
    assert same_weights(weights(folder / "checkpoints" / f"step{r.step}"), weights(folder))
    ideal = ckpt.log_spaced(5000, 20)
    assert ideal[0] == 0 and ideal[-1] == 5000 and len(ideal) == 20
    ratios = [b / a for a, b in zip(ideal[6:], ideal[7:])]  # past the rounding of small steps
    assert max(ratios) / min(ratios) < 1.2  # geometric spacing
    assert ckpt.log_spaced(3, 20) == [0, 1, 2, 3]


def test_training_is_deterministic_for_a_seed(tmp_path):
    cfg = tiny(1, steps=30, early_stop=False)
    a = train(cfg, miu_cfg(), CPU, tmp_path / "a", progress=False)
    b = train(cfg, miu_cfg(), CPU, tmp_path / "b", progress=False)
    c = train(dataclasses.replace(cfg, seed=2), miu_cfg(), CPU, tmp_path / "c", progress=False)
    assert a.step == b.step == 30
    assert same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    assert not same_weights(weights(tmp_path / "a"), weights(tmp_path / "c"))


def test_interrupt_then_resume_equals_an_uninterrupted_run(tmp_path):
    cfg = tiny(3)  # early stop on: the resumed run must also stop at the same step
    full = train(cfg, miu_cfg(), CPU, tmp_path / "full", progress=False)
    cut = train(cfg, miu_cfg(), CPU, tmp_path / "cut", progress=False, stop_after=25)
    assert cut.interrupted and cut.step == 25 < full.step
    assert (tmp_path / "cut" / "checkpoints" / "step25").is_dir()  # Ctrl-C leaves a good checkpoint
    assert not same_weights(weights(tmp_path / "cut"), weights(tmp_path / "full"))
    resumed = train(cfg, miu_cfg(), CPU, tmp_path / "cut", progress=False, resume=True)
    assert resumed.reached_100_step == full.reached_100_step == full.step == resumed.step
    assert same_weights(weights(tmp_path / "cut"), weights(tmp_path / "full"))


# -- CLI and bad input ----------------------------------------------------------


@pytest.fixture
def arts(tmp_path) -> Path:
    """An artifacts folder holding a fake compiled MIU artifact at length 4 (only its config is read)."""
    save_artifact(tmp_path / "miu" / "compiled", Transformer(miu_cfg()), {"kind": "compiled", "program": "miu"})
    return tmp_path


def cli_run(arts: Path, *extra: str) -> int:
    return cli.main(["--program", "miu", "--device", "cpu", "--artifacts", str(arts), "--no-progress",
                     "--steps", "40", *extra])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cli_trains_and_summarises_seeds(arts, capsys):
    assert cli_run(arts, "--seeds", "0 1", "--batch-size", "64") == 0
    out = capsys.readouterr().out
    assert "summary over 2 seeds" in out
    for s in (0, 1):
        assert (arts / "miu" / "learned" / f"seed{s}" / "metrics.json").is_file()


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "-1"], "non-negative integer"),
    (["--seeds", "x"], "non-negative integer"),
    (["--seeds", "1.5"], "non-negative integer"),
    (["--seeds", ""], "SEEDS is empty"),
    (["--seeds", "0", "--steps", "-3"], "--steps must be a non-negative integer"),
    (["--seeds", "0", "--steps", "ten"], "--steps must be a non-negative integer"),
    (["--seeds", "0", "--d-model", "500"], "--d-model"),
    (["--seeds", "0", "--out-name", "../x"], "--out-name"),
    (["--seeds", "0 0"], "duplicates"),
    (["--seeds", "0", "--lr", "0"], "--lr must be a positive number"),
    (["--seeds", "0", "--lr", "fast"], "--lr must be a positive number"),
])
def test_bad_numbers_are_one_line_errors(arts, capsys, argv, message):
    good = arts / "miu" / "learned" / "seed0"
    assert cli_run(arts, "--seeds", "0", "--batch-size", "64") == 0
    before = snapshot(good)
    capsys.readouterr()
    assert cli.main(["--program", "miu", "--device", "cpu", "--artifacts", str(arts), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert snapshot(good) == before


def test_a_diverging_run_stops_with_one_line_and_writes_no_model(arts, capsys):
    """A learning rate far too high: the loss turns non-finite in the first logging window, and the run stops
    there with a one-line error (it used to train its whole budget on NaN weights, which compare refuses)."""
    assert cli_run(arts, "--seeds", "0", "--batch-size", "64", "--lr", "1e30") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: training diverged: the mean loss of steps 1-") and "\n" not in err, err
    assert not (arts / "miu" / "learned" / "seed0" / "model.safetensors").exists()


def test_missing_compiled_artifact_says_make_compile(tmp_path, capsys):
    assert cli_run(tmp_path, "--seeds", "0") == 2
    assert "make compile" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu(arts, capsys):
    assert cli.main(["--device", "cuda", "--artifacts", str(arts)]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["truncate_weights", "corrupt_json", "drop_state", "truncate_state"])
def test_corrupt_checkpoint_on_resume_is_refused_and_kept(arts, capsys, damage):
    good = arts / "miu" / "learned" / "seed0"
    assert cli_run(arts, "--seeds", "0", "--batch-size", "64") == 0
    target = {"truncate_weights": good / "model.safetensors", "corrupt_json": good / "model.json",
              "drop_state": good / "state" / "state.safetensors",
              "truncate_state": good / "state" / "state.safetensors"}[damage]
    if damage == "drop_state":
        target.unlink()
    elif damage == "corrupt_json":
        target.write_text("{not json")
    else:
        target.write_bytes(target.read_bytes()[:100])
    before = snapshot(good)
    capsys.readouterr()
    assert cli_run(arts, "--seeds", "0", "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert snapshot(good) == before


def test_shape_mismatch_with_compiled_is_refused(arts, capsys):
    good = arts / "miu" / "learned" / "seed0"
    assert cli_run(arts, "--seeds", "0", "--batch-size", "64") == 0
    before = snapshot(good)
    # Recompiled with another shape: the learned run no longer matches and must not be resumed or touched.
    other = dataclasses.replace(miu_cfg(), d_mlp=50)
    save_artifact(arts / "miu" / "compiled", Transformer(other), {"kind": "compiled"})
    capsys.readouterr()
    assert cli_run(arts, "--seeds", "0", "--resume") == 2
    err = capsys.readouterr().err
    assert "d_mlp" in err and "does not match" in err
    assert snapshot(good) == before
    # A learned model.json with another vocabulary is refused the same way.
    meta = json.loads((good / "model.json").read_text())
    save_artifact(arts / "miu" / "compiled", Transformer(miu_cfg()), {"kind": "compiled"})
    meta["config"]["output_vocab"] = ["no", "yes"]
    (good / "model.json").write_text(json.dumps(meta))
    assert cli_run(arts, "--seeds", "0", "--resume") == 2
    assert "output_vocab" in capsys.readouterr().err


def test_resume_via_cli_continues(arts):
    assert cli_run(arts, "--seeds", "0", "--batch-size", "64") == 0
    folder = arts / "miu" / "learned" / "seed0"
    first = json.loads((folder / "model.json").read_text())["step"]
    assert cli.main(["--program", "miu", "--device", "cpu", "--artifacts", str(arts), "--no-progress",
                     "--seeds", "0", "--resume", "--steps", "60"]) == 0
    meta = json.loads((folder / "model.json").read_text())
    assert meta["step"] >= first and meta["training"]["steps"] == 60


def test_learned_does_not_import_compiled():
    import subprocess
    import sys
    code = ("import sys, learned.__main__, learned.train, learned.evaluate, learned.bench; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('compiled', 'jax', 'tracr')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_length_cut_trains_short_and_reports_long(tmp_path):
    r = train(tiny(0, train_max_len=2), miu_cfg(), CPU, tmp_path / "cut", progress=False)
    gen = r.metrics["evaluation"]["length_generalisation"]
    assert gen["train_max_len"] == 2 and gen["seen"]["sequence"]["accuracy"] == 1.0
    assert gen["seen"]["sequence"]["inputs"] == 3 + 9 and gen["unseen"]["sequence"]["inputs"] == 27 + 81
    table = data.build_table(MIU, miu_cfg(), 2, seed=0, pool_size=64)
    assert int((table.targets != data.IGNORE).sum(1).max()) <= 2  # no training input is longer than the cut


def test_grokking_regime_uses_a_small_fixed_set():
    from learned.train import grokking
    cfg = grokking(TrainConfig())
    assert cfg.train_size and cfg.weight_decay > 0 and TrainConfig().train_size is None
    assert TrainConfig().weight_decay == 0.0  # the default run is unchanged
    table = data.build_table(MIU, miu_cfg(), 4, seed=0, pool_size=256, fixed_size=50)
    assert len(table.ids) == 50 and torch.allclose(table.weights, torch.full((50,), 1 / 50, dtype=torch.float64))
    with pytest.raises(ToolkitError):
        data.build_table(MIU, miu_cfg(), 4, seed=0, pool_size=8, fixed_size=10_000)


def test_held_out_set_for_large_spaces_is_informative():
    es = build_eval_set(MIU, miu_cfg(8), 8, limit=3000)
    assert not es.exhaustive and len(es.inputs) == 3000
    theorems = sum(miu.is_theorem("".join(x)) for x in es.inputs)
    assert theorems > 300  # a uniform sample of this size would hold about 3000 * 0.017 = 52
    rows = es.gate_rows()
    assert len(rows) == 3000  # not exhaustive: the covering shortcut is not used


@pytest.mark.slow
def test_miu_length_10_reaches_100_exhaustively(tmp_path):
    """The headline target on one seed: every prefix of all 88,572 strings (about 30-60 s)."""
    r = train(TrainConfig(seed=0), miu_cfg(10), CPU, tmp_path / "seed0", progress=False)
    ev = r.metrics["evaluation"]
    assert ev["exhaustive"] and ev["inputs"] == 88_572
    assert ev["sequence_accuracy"] == 1.0 and ev["final_accuracy"] == 1.0 and r.reached_100_step is not None
    assert len(list((tmp_path / "seed0" / "checkpoints").iterdir())) == 20
