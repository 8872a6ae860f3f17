"""The legal-next objective: its targets against brute force, and its readout against compare's.

Targets: an automaton language's legal sets (no length bound) against a search
over continuations; MIU's (no declared sets: the length-controlled support)
against the theorems up to the length. A tiny real run writes the
``legal-next`` readout, and ``compare.outputs``' reading of it gives the
objective's own verdicts.
"""

from __future__ import annotations

import itertools

import torch

from learned.artifact import load_artifact
from learned.legal_next import legal_rows
from learned.lm_data import lm_model_config
from learned.model import ModelConfig
from learned.train import TrainConfig, make_objective, train
from rasp_programs import language as lang
from rasp_programs import miu
from rasp_programs.automata import DFAS, TASKS

CPU = torch.device("cpu")


def _cfg(vocab, max_len, output_vocab=("False", "True")) -> ModelConfig:
    vocab = tuple(sorted((*vocab, "BOS", "PAD")))
    return ModelConfig(n_layers=2, n_heads=1, d_model=16, d_head=4, d_mlp=16, n_ctx=max_len + 1, d_vocab=len(vocab),
                       d_vocab_out=len(output_vocab), vocab=vocab, output_vocab=output_vocab, bos_token="BOS",
                       pad_token="PAD", causal=True)


def _sets(cfg, targets, strings):
    """{prefix: legal set} read back from table targets."""
    out = {}
    for r, s in enumerate(strings):
        for t in range(len(s) + 1):
            assert targets[r, t, 0] == 1
            out[s[:t]] = {v for o, v in enumerate(cfg.output_vocab) if targets[r, t, 1 + o]}
        assert not targets[r, len(s) + 1:, 0].any()
    return out


def test_targets_are_the_automatons_legal_sets():
    dfa, language = DFAS["tomita4"], TASKS["tomita4"].language
    cfg = lm_model_config(_cfg(dfa.alphabet, 6), language)
    strings = language.members(6)
    _, targets = legal_rows(cfg, language, strings, 6)
    tails = [()] + [e for n in range(1, len(dfa.states) + 1) for e in itertools.product(dfa.alphabet, repeat=n)]
    for prefix, legal in _sets(cfg, targets, strings).items():
        want = {a for a in dfa.alphabet if any(dfa.accepts(prefix + (a,) + e) for e in tails)}
        assert legal == want | ({"END"} if prefix and dfa.accepts(prefix) else set()) | (
            {"END"} if not prefix and dfa.start in dfa.accepting else set()), prefix


def test_miu_targets_are_the_bounded_support():
    language, max_len = lang.MIU_THEOREMS, 5
    cfg = lm_model_config(_cfg(language.alphabet, max_len), language)
    strings = language.members(max_len)
    _, targets = legal_rows(cfg, language, strings, max_len)
    members = set(strings)
    for prefix, legal in _sets(cfg, targets, strings).items():
        want = {a for a in language.alphabet if any(m[:len(prefix) + 1] == prefix + (a,) for m in members)}
        assert legal == want | ({"END"} if miu.is_theorem("".join(prefix)) and prefix else set()), prefix


def test_a_run_writes_the_readout_compare_reads(tmp_path):
    from compare.outputs import readout_for

    compiled = ModelConfig(n_layers=3, n_heads=2, d_model=64, d_head=12, d_mlp=121, n_ctx=5, d_vocab=5,
                           d_vocab_out=2, vocab=("BOS", "I", "M", "PAD", "U"), output_vocab=("False", "True"),
                           bos_token="BOS", pad_token="PAD", causal=True)
    cfg = TrainConfig(program="miu", max_len=4, seed=0, steps=40, batch_size=64, log_every=10, check_every=10,
                      lr=1e-2, objective="legal-next", checkpoints=3, pool_size=512)
    r = train(cfg, compiled, CPU, tmp_path / "run", progress=False)
    model, meta = load_artifact(tmp_path / "run")
    assert meta["readout"]["objective"] == "legal-next" and model.cfg.output_vocab == ("I", "M", "U", "END")
    readout = readout_for(model.cfg, meta, compiled.output_vocab, "model.json")
    assert readout.kind == "legal-next"
    objective = make_objective(cfg, compiled, None)
    es = objective.es
    with torch.inference_mode():
        theirs = readout.predict(model(es.ids), es.ids)
    assert torch.equal(theirs, objective.predict(model, torch.arange(len(es.inputs))))
    assert 0 <= r.metrics["train_sets_exact"] <= 1 and r.metrics["evaluation"]["inputs"] == len(es.inputs)


def test_the_verdict_rejects_a_prefix_at_its_first_illegal_token():
    """A model trained on members only never sees a dead prefix, so its END there is noise. Give the readout the
    automaton's own legal sets on live prefixes and END legal on every dead one: the verdict must still be
    membership on every prefix of every string, because the killing token was predicted illegal. (Reading END
    alone, as the readout once did, accepts every dead prefix here.)"""
    from compare.outputs import LegalNextReadout
    from learned.lm import LegalNext

    dfa, language = DFAS["tomita4"], TASKS["tomita4"].language
    cfg = lm_model_config(_cfg(dfa.alphabet, 6), language)
    strings = [s for n in range(1, 7) for s in itertools.product(dfa.alphabet, repeat=n)]
    ids, targets = legal_rows(cfg, language, strings, 6)  # [N, T], [N, T, 1 + O]; dead prefixes: empty sets
    legal = targets[..., 1:].bool()  # [N, T, O]
    end = cfg.output_vocab.index("END")
    dead = targets[..., 0].bool() & ~legal.any(-1)  # [N, T]
    assert dead.any()
    legal[..., end] |= dead
    logits = torch.where(legal, 5.0, -5.0)
    readout = LegalNext("END")
    got = readout.verdicts(cfg, logits, ids)
    want = torch.zeros_like(got)
    for r, s in enumerate(strings):
        for t in range(1, len(s) + 1):
            want[r, t] = dfa.accepts(s[:t])
    assert torch.equal(got, want)
    compared = LegalNextReadout(cfg, ("False", "True"), readout).predict(logits, ids)
    assert torch.equal(compared.bool(), want)


def test_training_prefixes_of_the_longest_length_are_every_live_prefix():
    """Members run past the context by the completion tail and are cut to it, so the training prefixes of the
    longest length are exactly the live ones, non-members included (checked by brute force on the automaton).
    With members cut at the context length, every such prefix was a member and END was always legal there."""
    dfa, cut = DFAS["tomita5"], 6

    def completion(s):  # the shortest extension to a member, by brute force
        return next(n for n in range(len(dfa.states) + 1)
                    if any(dfa.accepts(s + e) for e in itertools.product(dfa.alphabet, repeat=n)))

    live = {s for s in itertools.product(dfa.alphabet, repeat=cut)
            if any(dfa.accepts(s + e) for n in range(len(dfa.states) + 1)
                   for e in itertools.product(dfa.alphabet, repeat=n))}
    compiled = _cfg(dfa.alphabet, cut)
    cfg = TrainConfig(program="tomita5", max_len=cut, seed=0, objective="legal-next")
    objective = make_objective(cfg, compiled, None)
    assert objective.tail == lang.completion_tail(TASKS["tomita5"].language, cut) == max(map(completion, live)) == 2
    longest = {s for s in objective.train if len(s) == cut}
    assert longest == live and any(not dfa.accepts(s) for s in longest)
    assert all(dfa.accepts(s) for s in objective.train if len(s) < cut)
