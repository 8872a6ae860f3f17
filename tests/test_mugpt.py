"""MU-GPT: theorem-only samplers, the held-out split, the LM readout, the stop rule, resume and bad input.

Runs are real but tiny: MIU at length 4 (10 theorems, 120 inputs), a few
dozen steps. The samplers are checked against the rewrite system
(``miu.derive``) and against the criterion (``miu.is_theorem``), two
independent implementations; the recogniser against a hand-built model whose
next-token probabilities are known in closed form.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import learned.__main__ as cli
from learned import data, lm
from learned.artifact import encode, load_artifact, save_artifact
from learned.checkpoints import STATE_DIR
from learned.lm_data import LMConfig, build_lm_data, lm_model_config, split_targets
from learned.model import ModelConfig, Transformer
from learned.train import TrainConfig, make_objective, train
from rasp_programs import language as lang
from rasp_programs import miu
from rasp_programs.errors import ToolkitError
from rasp_programs.language import MIU_THEOREMS

CPU = torch.device("cpu")
COMPLETE_BOUND_FOR_LEN_6 = 13  # see tests/test_miu_system.py


def miu_cfg(max_len: int = 4) -> ModelConfig:
    """The compiled MIU shape at a small length (classifier outputs, as the compiled artifact has)."""
    return ModelConfig(n_layers=3, n_heads=2, d_model=64, d_head=12, d_mlp=121, n_ctx=max_len + 1, d_vocab=5,
                       d_vocab_out=2, vocab=("BOS", "I", "M", "PAD", "U"), output_vocab=("False", "True"),
                       bos_token="BOS", pad_token="PAD", causal=True)


def tiny(seed: int = 0, lm_kw: dict | None = None, **kw) -> TrainConfig:
    base = dict(max_len=4, seed=seed, steps=60, batch_size=64, log_every=10, check_every=10, lr=1e-2,
                objective="lm", checkpoints=5, pool_size=512)
    return TrainConfig(**{**base, **kw, "lm": LMConfig(**(lm_kw or {}))})


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_artifact(folder)[0].tl_state_dict()


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def theorems(max_len: int) -> set[tuple[str, ...]]:
    """By the rewrite system: everything derivable from MI (complete at length 6 with the documented bound)."""
    return {tuple(s) for s in miu.derive(max_len, search_bound=COMPLETE_BOUND_FOR_LEN_6)}


# -- samplers: only theorems ---------------------------------------------------


def test_random_derivations_are_derivable_theorems_and_distinct():
    walks = lang.random_derivations(MIU_THEOREMS, np.random.default_rng(0), 7, walks=300, steps=30, bound=12)
    reachable = {tuple(s) for s in miu.derive(7, search_bound=12)}  # BFS with the same intermediate bound
    assert len(walks) == len(set(walks)) > 20
    assert set(walks) <= reachable
    assert all(miu.is_theorem("".join(s)) and len(s) <= 7 for s in walks)
    report = lang.describe(walks, MIU_THEOREMS.alphabet)
    assert sum(report["lengths"].values()) == len(walks) == report["strings"]
    assert report["token_counts"]["M"] == {"1": len(walks)}  # one M each, by the rules
    assert "0" not in report["token_counts"]["I"] and "3" not in report["token_counts"]["I"]


def test_length_controlled_support_is_exactly_the_theorems():
    sampler = lang.LengthControlled(MIU_THEOREMS, 6, q=0.3)
    dist = sampler.distribution()
    assert set(dist) == theorems(6)  # the rewrite system ...
    assert set(dist) == {s for s in MIU_THEOREMS.members(6)} and all(miu.is_theorem("".join(s)) for s in dist)
    assert math.isclose(sum(dist.values()), 1.0)
    drawn = sampler.sample(np.random.default_rng(1), 3000)
    assert set(drawn) <= theorems(6) and all(miu.is_theorem("".join(s)) for s in drawn)
    # The step-by-step sampler draws from the exact distribution (total variation, 3,000 draws).
    freq = collections.Counter(drawn)
    tv = 0.5 * sum(abs(freq[s] / len(drawn) - p) for s, p in dist.items())
    assert tv < 0.06


def test_end_is_q_on_theorem_prefixes_and_zero_elsewhere():
    q, max_len = 0.25, 5
    sampler = lang.LengthControlled(MIU_THEOREMS, max_len, q)
    for prefix in sorted(sampler.viable, key=len):
        p_end = sampler.next_distribution(prefix).get("END", 0.0)
        if not miu.is_theorem("".join(prefix)):
            assert p_end == 0.0, prefix
        elif len(prefix) < max_len:
            assert p_end == q, prefix
        else:
            assert p_end == 1.0, prefix  # nothing may follow at the maximum length
        assert math.isclose(sum(sampler.next_distribution(prefix).values()), 1.0)
    with pytest.raises(ValueError):
        sampler.next_distribution(("U",))  # no theorem starts with U


def test_table_rows_are_theorems_with_next_token_targets():
    cfg = lm_model_config(miu_cfg(5), MIU_THEOREMS)
    d = build_lm_data(MIU_THEOREMS, cfg, 5, LMConfig(held_out_share=0.0), seed=0)
    assert cfg.output_vocab == ("I", "M", "U", "END")
    targets, exclude = split_targets(d.table.targets)
    assert not exclude.any()  # nothing held out, nothing left out of the softmax
    for row, tgt, s in zip(d.table.ids.tolist(), targets.tolist(), d.train):
        assert tuple(cfg.vocab[i] for i in row[1:1 + len(s)]) == s and miu.is_theorem("".join(s))
        assert [cfg.output_vocab[t] for t in tgt[:len(s) + 1]] == [*s, "END"]
        assert all(t == data.IGNORE for t in tgt[len(s) + 1:])
    assert set(d.train) == theorems(5)


def test_finite_dataset_is_draws_with_their_counts():
    cfg = lm_model_config(miu_cfg(6), MIU_THEOREMS)
    lm_cfg = LMConfig(held_out_share=0.2)
    full = build_lm_data(MIU_THEOREMS, cfg, 6, lm_cfg, seed=5)
    a = build_lm_data(MIU_THEOREMS, cfg, 6, lm_cfg, seed=5, fixed_size=40)
    b = build_lm_data(MIU_THEOREMS, cfg, 6, lm_cfg, seed=5, fixed_size=40)
    assert a.train == b.train and len(a.train) < 40 and set(a.train) <= set(full.train)
    assert not set(a.train) & a.held_out
    counts = (a.table.weights * 40).round()
    assert torch.allclose(a.table.weights * 40, counts) and counts.sum() == 40  # weights are counts of 40 draws
    with pytest.raises(ToolkitError):
        build_lm_data(MIU_THEOREMS, cfg, 6, lm_cfg, seed=5, fixed_size=0)


# -- held out ---------------------------------------------------------------------


def test_held_out_split_is_seeded_and_sized():
    members = MIU_THEOREMS.members(10)
    a = lang.held_out(members, 0.2, seed=0)
    assert a == lang.held_out(members, 0.2, seed=0) != lang.held_out(members, 0.2, seed=1)
    assert len(a) == round(0.2 * 682) and a <= set(members)
    assert lang.held_out(members, 0.0, seed=0) == frozenset()


@pytest.mark.parametrize("mask", [True, False])
def test_held_out_theorems_are_never_trained_on(tmp_path, monkeypatch, mask):
    """Intercepts every batch the sampler hands to the training loop.

    No held-out theorem is ever emitted; and, left out of the softmax, the loss
    has no gradient on any held-out event: END at a held-out theorem, or a
    token that leads only into held-out theorems.
    """
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    original = data.Sampler.batch

    def spy(self, size):
        ids, tgt = original(self, size)
        seen.append((ids.clone(), tgt.clone()))
        return ids, tgt

    monkeypatch.setattr(data.Sampler, "batch", spy)
    # A split that holds out a theorem shorter than 4, so it is also a prefix of training strings.
    split = next(k for k in range(50) if min(map(len, lang.held_out(MIU_THEOREMS.members(4), 0.3, k))) < 4)
    cfg = tiny(lm_kw={"held_out_share": 0.3, "mask_held_out": mask, "held_out_seed": split}, steps=30)
    train(cfg, miu_cfg(), CPU, tmp_path / "run", progress=False)
    assert len(seen) == 30
    obj = make_objective(cfg, miu_cfg(), None)
    held = obj.lm_data.held_out
    assert len(held) == 3  # 30% of the 10 theorems up to length 4
    # Independently of the implementation: the events only held-out theorems have, by the criterion.
    kept = {tuple(s) for s in MIU_THEOREMS.members(4)} - held
    through_kept = {s[:k] for s in kept for k in range(len(s) + 1)}
    mcfg = obj.model_cfg
    vocab, out = mcfg.vocab, mcfg.output_vocab
    emitted, touched = set(), 0
    for ids, tgt in seen:
        logits = torch.randn(*ids.shape, len(out), requires_grad=True)
        obj.loss(logits, tgt).backward()
        grad = logits.grad.abs()  # [B, T, O]
        target_ids = split_targets(tgt)[0]
        for r, row in enumerate(ids.tolist()):
            tokens = tuple(vocab[i] for i in row[1:] if vocab[i] != "PAD")
            end = target_ids[r].tolist().index(out.index("END"))
            emitted.add(tokens[:end])
            for t in range(end + 1):
                context = tokens[:t]
                events = [out.index("END")] if context in held else []
                events += [out.index(v) for v in "IMU" if context + (v,) not in through_kept
                           and any(h[:t + 1] == context + (v,) for h in held)]
                touched += sum(float(grad[r, t, o]) > 0 for o in events)
    assert emitted and not emitted & held  # no held-out theorem is ever a training string
    assert all(miu.is_theorem("".join(s)) for s in emitted)
    if mask:
        assert touched == 0  # the loss says nothing about held-out theorems
    else:
        assert touched > 0  # the check can fail: plain rejection sampling trains them down


# -- the recogniser against a hand-built model ------------------------------------------


def bigram_model(seed: int = 0) -> tuple[Transformer, np.ndarray, np.ndarray]:
    """Logits at position t = A[t] + B[token at t]: one-hot embeddings, every block zero.

    Returns:
        the model, A ``[T, O]`` and B ``[V, O]``.
    """
    cfg = lm_model_config(miu_cfg(4), MIU_THEOREMS)
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(cfg.n_ctx, cfg.d_vocab_out, generator=g) * 2.5
    B = torch.randn(cfg.d_vocab, cfg.d_vocab_out, generator=g) * 2.5
    sd = {k: torch.zeros(v) for k, v in cfg.param_shapes().items()}
    sd["embed.W_E"][:, :cfg.d_vocab] = torch.eye(cfg.d_vocab)  # token v -> dim v
    sd["pos_embed.W_pos"][:, 8:8 + cfg.n_ctx] = torch.eye(cfg.n_ctx)  # position t -> dim 8 + t
    sd["unembed.W_U"][:cfg.d_vocab] = B
    sd["unembed.W_U"][8:8 + cfg.n_ctx] = A
    model = Transformer(cfg)
    model.load_tl_state_dict(sd)
    return model.eval(), A.double().numpy(), B.double().numpy()


def reference_verdicts(cfg: ModelConfig, A, B, s: tuple[str, ...], tau_token: float, tau_end: float) -> list[bool]:
    """The readout rule in plain numpy on the closed-form probabilities."""
    def probs(t: int, token: str) -> np.ndarray:
        z = A[t] + B[cfg.vocab.index(token)]
        return np.exp(z - z.max()) / np.exp(z - z.max()).sum()

    out, ok, context = [], True, "BOS"
    for t, token in enumerate(s):
        ok = ok and probs(t, context)[cfg.output_vocab.index(token)] >= tau_token
        context = token
        out.append(bool(ok and probs(t + 1, token)[cfg.output_vocab.index("END")] >= tau_end))
    return out


def test_lm_verdicts_match_a_hand_built_model():
    model, A, B = bigram_model()
    cfg = model.cfg
    inputs = [tuple(x) for n in range(1, 5) for x in __import__("itertools").product("MIU", repeat=n)]
    ids = encode(cfg, inputs)
    logp = lm.log_probs(model, ids)
    # Thresholds at medians, so both verdicts are common.
    tau_token = float(np.exp(np.median(logp[..., :3].numpy())))
    tau_end = float(np.exp(np.median(logp[..., 3].numpy())))
    readout = lm.Readout("END", tau_token, tau_end)
    got = lm.lm_verdicts(model, ids, readout)  # [N, T]
    assert got.dtype == torch.bool and not got[:, 0].any()
    n_true = 0
    for r, s in enumerate(inputs):
        want = reference_verdicts(cfg, A, B, s, tau_token, tau_end)
        assert got[r, 1:1 + len(s)].tolist() == want, s
        assert not got[r, 1 + len(s):].any()  # pads are never accepted
        n_true += sum(want)
    assert 0 < n_true < sum(map(len, inputs))


def test_constant_model_by_hand():
    """Every position says P(I, M, U, END) = (0.5, 0.2, 0.2, 0.1): verdicts and P(string) by hand."""
    cfg = lm_model_config(miu_cfg(4), MIU_THEOREMS)
    model = Transformer(cfg)
    with torch.no_grad():
        model.param("unembed.b_U").copy_(torch.tensor([0.5, 0.2, 0.2, 0.1]).log())
    readout = lm.Readout("END", tau_token=0.3, tau_end=0.05)
    v = lm.lm_verdicts(model, encode(cfg, [("I", "I"), ("M",), ("I", "U")]), readout)
    assert v.tolist() == [[False, True, True], [False, False, False], [False, True, False]]
    assert lm.lm_verdicts(model, encode(cfg, [("I",)]), dataclasses.replace(readout, tau_end=0.2)).tolist() == [[False, False]]
    p, p_end = lm.string_probability(model, ("I", "I"), "END")
    assert p == pytest.approx(0.5 * 0.5 * 0.1) and p_end == pytest.approx(0.1)


def test_thresholds_come_from_the_training_events():
    pos, neg = np.log([0.25, 0.3, 1.0]), np.log([1e-5, 1e-4])
    tau, fit = lm.fit_threshold(pos, neg)
    assert tau == pytest.approx(math.sqrt(0.25 * 1e-4)) and fit["separated"] and fit["balanced_accuracy"] == 1
    tau, fit = lm.fit_threshold(pos, np.log([1e-5, 0.27]))  # overlapping: best balanced accuracy
    assert 0.27 < tau < 0.3 and not fit["separated"]
    ev = lm.training_events([("M", "I"), ("M", "I", "I", "U")], held_out=[("M", "I", "I"), ("M", "U", "I")],
                            alphabet="IMU")
    assert ev.prefixes == [(), ("M",), ("M", "I"), ("M", "I", "I"), ("M", "I", "I", "U")]
    assert ev.ends.tolist() == [False, False, True, False, True]
    assert ev.end_known.tolist() == [True, True, True, False, True]  # END at a held-out string: unknown
    assert ev.follows[:3].tolist() == [[False, True, False], [True, False, False], [True, False, False]]
    assert ev.known[1].tolist() == [True, True, False]  # M -> U leads only into the held-out MUI
    assert ev.known[[0, 2, 3, 4]].all()


def test_readout_block_round_trips_and_is_required():
    r = lm.Readout("END", 0.01, 0.002)
    meta = {"config": lm_model_config(miu_cfg(), MIU_THEOREMS).to_dict(), "readout": r.to_json()}
    assert lm.Readout.from_meta(meta) == r
    for bad in ({}, {"readout": {"objective": "lm", "end_token": "END"}},
                {"readout": {**r.to_json(), "tau_end": 0.0}}, {"readout": {**r.to_json(), "end_token": "STOP"}}):
        with pytest.raises(ToolkitError):
            lm.Readout.from_meta({"config": meta["config"], **bad})


# -- the stop rule -------------------------------------------------------------------------


def test_stop_rule_tells_the_two_moments_apart(monkeypatch):
    obj = make_objective(tiny(lm_kw={"stop_when_mu_below": 1e-3}), miu_cfg(), None)
    script = iter([  # (P(END | MU), held-out acceptance, readout separates the training data)
        (0.2, 1.0, True),    # MU still possible
        (5e-4, 0.8, True),   # MU ruled out, but a held-out theorem rejected: first moment only
        (4e-4, 1.0, False),  # both, but the readout does not fit the training data yet
        (3e-4, 1.0, True),   # the stop
    ])

    def probe(model):
        p_end, held, fit = next(script)
        return {"p_impossible": p_end * 0.5, "p_end_impossible": p_end, "held_out_acceptance": held,
                "train_acceptance": 1.0, "train_fit": fit, "tau_token": 0.1, "tau_end": 0.1}

    monkeypatch.setattr(obj, "probe", probe)
    stops = [obj.check(None, step, lambda: float(step))[1] for step in (10, 20, 30, 40)]
    assert stops == [False, False, False, True]
    assert obj.moments["mu_below"]["step"] == 20 and obj.moments["mu_below"]["held_out_acceptance"] == 0.8
    assert obj.moments["mu_below_held_out"]["step"] == 30
    assert obj.moments["stop"] == {"step": 40, "seconds": 40.0, "p_impossible": 1.5e-4, "p_end_impossible": 3e-4,
                                   "held_out_acceptance": 1.0, "train_acceptance": 1.0, "train_fit": True}


def test_stop_rule_stops_training_and_saves_that_model(tmp_path):
    cfg = tiny(3, steps=200)  # the default rule: epsilon 1e-3, held-out accepted, training data fitted
    r = train(cfg, miu_cfg(), CPU, tmp_path / "run", progress=False)
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    stop = m["moments"]["stop"]
    assert stop is not None and r.step == stop["step"] == r.reached_100_step < 200
    first = next(c for c in m["checks"]
                 if c["p_end_impossible"] < 1e-3 and c["held_out_acceptance"] == 1.0 and c["train_fit"])
    assert first["step"] == stop["step"] and m["checks"][-1]["step"] == stop["step"]
    assert len(m["checks"]) > 1  # the rule did not hold at the first check
    assert m["moments"]["mu_below"]["step"] <= stop["step"] and stop["seconds"] > 0
    # The saved model is that checkpoint, with its readout; it loads in the one model class.
    model, meta = load_artifact(tmp_path / "run")
    assert meta["objective"] == "lm" and meta["step"] == stop["step"]
    assert same_weights(model.tl_state_dict(), weights(tmp_path / "run" / "checkpoints" / f"step{stop['step']}"))
    readout = lm.Readout.from_meta(meta)
    assert lm.string_probability(model, ("M", "U"), "END")[1] == pytest.approx(m["p_end_impossible"], rel=1e-4)
    assert m["evaluation"]["inputs"] == 120 and "per_clause" in m["evaluation"]
    ev_ids = encode(model.cfg, [tuple(s.split()) for s in m["held_out"]["rejected_first"]] or [("M",)])
    assert lm.lm_verdicts(model, ev_ids, readout).shape == ev_ids.shape
    ckpt = json.loads((tmp_path / "run" / "checkpoints" / "step0" / "model.json").read_text())
    assert ckpt["readout"]["objective"] == "lm"  # every checkpoint carries its own readout


# -- resume --------------------------------------------------------------------------------


def test_lm_resume_is_bit_exact(tmp_path):
    cfg = tiny(3, steps=200)  # stops by the rule at step 90
    full = train(cfg, miu_cfg(), CPU, tmp_path / "full", progress=False)
    cut = train(cfg, miu_cfg(), CPU, tmp_path / "cut", progress=False, stop_after=25)
    assert cut.interrupted and cut.step == 25 < full.step
    state = json.loads((tmp_path / "cut" / STATE_DIR / "state.json").read_text())
    assert state["optimizer"]["class"] == "AdamW" and "state_dict" in state["optimizer"]
    resumed = train(cfg, miu_cfg(), CPU, tmp_path / "cut", progress=False, resume=True)
    assert resumed.step == full.step and resumed.reached_100_step == full.reached_100_step
    assert same_weights(weights(tmp_path / "cut"), weights(tmp_path / "full"))
    a, b = (json.loads((tmp_path / f / "metrics.json").read_text()) for f in ("full", "cut"))
    assert [c["p_end_impossible"] for c in a["checks"]] == [c["p_end_impossible"] for c in b["checks"]]


@pytest.mark.parametrize("objective", ["lm", "classifier"])
def test_resume_goes_through_the_optimizer_state_dict(tmp_path, objective):
    """Both objectives resume bit-exactly through the state_dict; without its moments a resumed run differs."""
    cfg = tiny(1, steps=40, early_stop=False, objective=objective)
    train(cfg, miu_cfg(), CPU, tmp_path / "full", progress=False)
    for name in ("cut", "blank"):
        train(cfg, miu_cfg(), CPU, tmp_path / name, progress=False, stop_after=20)
    path = tmp_path / "blank" / STATE_DIR / "state.json"
    state = json.loads(path.read_text())
    assert state["optimizer"]["class"] == "AdamW" and state["optimizer"]["state_dict"]["state"]
    state["optimizer"]["state_dict"]["state"] = {}
    path.write_text(json.dumps(state))
    for name in ("cut", "blank"):
        train(cfg, miu_cfg(), CPU, tmp_path / name, progress=False, resume=True)
    assert same_weights(weights(tmp_path / "cut"), weights(tmp_path / "full"))
    assert not same_weights(weights(tmp_path / "blank"), weights(tmp_path / "full"))


def test_optimizer_state_dict_round_trip_without_pickle():
    from learned import checkpoints as ckpt
    model = Transformer(miu_cfg())
    model.init_weights(torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.98))
    model(encode(model.cfg, [("M", "I")])).sum().backward()
    opt.step()
    saved, tensors = ckpt.optimizer_state(model, opt)
    json.dumps(saved)  # JSON only; tensors go to safetensors
    fresh = torch.optim.AdamW(model.parameters(), lr=1.0)
    ckpt.load_optimizer_state(Path("."), model, fresh, json.loads(json.dumps(saved)), tensors)
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert all(torch.equal(a["state"][i][k], b["state"][i][k]) for i in a["state"] for k in a["state"][i])
    with pytest.raises(ToolkitError, match="optimizer 'AdamW', not 'SGD'"):
        ckpt.load_optimizer_state(Path("."), model, torch.optim.SGD(model.parameters(), lr=0.1), saved, tensors)


# -- CLI and bad input ---------------------------------------------------------------------


@pytest.fixture
def arts(tmp_path) -> Path:
    """An artifacts folder holding a fake compiled MIU artifact at length 4 (only its config is read)."""
    save_artifact(tmp_path / "miu" / "compiled", Transformer(miu_cfg()), {"kind": "compiled", "program": "miu"})
    return tmp_path


def cli_run(arts: Path, *extra: str) -> int:
    return cli.main(["--program", "miu", "--device", "cpu", "--artifacts", str(arts), "--no-progress",
                     "--objective", "lm", "--steps", "30", "--batch-size", "32", "--checkpoints", "3", *extra])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cli_trains_an_lm_artifact_and_resumes(arts, capsys):
    assert cli_run(arts, "--seeds", "0 1") == 0
    out = capsys.readouterr().out
    assert "stop rule" in out and "held-out accepted" in out and "summary over 2 seeds" in out
    folder = arts / "miu" / "mugpt" / "seed0"
    model, meta = load_artifact(folder)
    assert meta["objective"] == "lm" and meta["training"]["lm"]["q"] == 0.25 and model.cfg.output_vocab[-1] == "END"
    assert set(json.loads((folder / "metrics.json").read_text())["moments"]) == {"mu_below", "mu_below_held_out", "stop"}
    assert cli_run(arts, "--seeds", "0", "--resume", "--steps", "40") == 0
    assert json.loads((folder / "model.json").read_text())["training"]["steps"] == 40


@pytest.mark.parametrize("argv, message", [
    (["--objective", "gpt"], "unknown objective 'gpt'"),
    (["--q", "0"], "strictly between 0 and 1"),
    (["--q", "1"], "strictly between 0 and 1"),
    (["--q", "-0.5"], "strictly between 0 and 1"),
    (["--q", "half"], "--q must be a number"),
    (["--held-out-share", "1"], "held-out share must be in [0, 1)"),
    (["--held-out-share", "-0.1"], "held-out share must be in [0, 1)"),
    (["--sampler", "derivations", "--derive-bound", "3"], "too small to reach MAX_LEN=4"),
    (["--derive-bound", "2"], "too small to reach MAX_LEN=4"),
    (["--sampler", "bfs"], "unknown sampler"),
    (["--stop-when-mu-below", "2"], "--stop-when-mu-below"),
])
def test_bad_input_is_one_line_and_writes_nothing(arts, capsys, argv, message):
    good = arts / "miu" / "mugpt" / "seed0"
    assert cli_run(arts, "--seeds", "0") == 0
    before = snapshot(arts)
    capsys.readouterr()
    argv = argv if argv[:1] == ["--objective"] else ["--objective", "lm", *argv]
    assert cli.main(["--program", "miu", "--device", "cpu", "--artifacts", str(arts), "--seeds", "0 1",
                     *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert snapshot(arts) == before and good.is_dir()


def test_lm_needs_a_language(arts, capsys):
    save_artifact(arts / "hist" / "compiled", Transformer(dataclasses.replace(
        miu_cfg(), vocab=("BOS", "PAD", "a", "b", "c", "d"), d_vocab=6)), {"kind": "compiled"})
    assert cli.main(["--program", "hist", "--objective", "lm", "--device", "cpu", "--artifacts", str(arts)]) == 2
    assert "has no language" in capsys.readouterr().err
