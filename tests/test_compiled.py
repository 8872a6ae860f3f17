"""Tracr's model, the torch port, the reference and the artifact format agree."""

import dataclasses
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("jax")

from compiled import verify  # noqa: E402
from compiled.__main__ import main as compile_main  # noqa: E402
from compiled.compile import compile_program  # noqa: E402
from compiled.export import to_torch  # noqa: E402
from learned.artifact import atomic_dir, encode, load_artifact, save_artifact  # noqa: E402
from compiled.value_sets import mean_values  # noqa: E402
from rasp_programs import miu  # noqa: E402
from rasp_programs.errors import ToolkitError  # noqa: E402
from rasp_programs.registry import PROGRAMS, get_program, get_task  # noqa: E402
from rasp_programs.spec import Variable  # noqa: E402

MIU_TASK = get_task("miu")


@pytest.fixture(scope="module")
def compiled_programs(tracr_compiled):
    """Every program compiled at its default length on first use (shared with the artifacts fixture)."""
    return tracr_compiled


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_torch_port_matches_tracr_forward(compiled_programs, name):
    cp = compiled_programs[name]
    model, _ = to_torch(cp)
    sample = cp.spec.sample_inputs(np.random.default_rng(1), 128, cp.max_len)
    r = verify.against_tracr(cp, model, sample)
    assert r["decoded_identical"]
    assert r["max_resid_abs_diff"] < 1e-5 and r["max_pattern_abs_diff"] < 1e-5


def test_tracr_check_catches_a_broken_port(compiled_programs):
    """Negative control: perturb one MLP weight and the check must fail."""
    cp = compiled_programs["miu"]
    model, _ = to_torch(cp)
    with torch.no_grad():
        model.param("blocks.1.mlp.W_in")[0, 0] += 1e-3
    r = verify.against_tracr(cp, model, [tuple("MIIU"), tuple("MIUIUI")])  # two lengths: one padded batch
    assert not r["passed"]


def test_one_padded_batch_is_each_length_alone(compiled_programs):
    """A causal model runs as one batch padded at the end: it must measure what each length alone measures."""
    cp = compiled_programs["miu"]
    model, _ = to_torch(cp)
    with torch.no_grad():
        model.param("blocks.1.mlp.W_in")[0, 0] += 1e-3  # a difference to measure
    inputs = [tuple("MIIU"), tuple("MU"), tuple("MIUIUIIUI")]
    whole = verify.against_tracr(cp, model, inputs)
    alone = [verify.against_tracr(cp, model, [x]) for x in inputs]
    for key in ("max_resid_abs_diff", "max_pattern_abs_diff"):
        assert whole[key] == max(r[key] for r in alone), key
    assert whole["max_resid_abs_diff"] > 1e-5


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_exhaustive_correctness(compiled_programs, name):
    cp = compiled_programs[name]
    model, _ = to_torch(cp)
    r = verify.exhaustive(cp.spec, model.float(), cp.max_len)
    assert r["exhaustive"] and r["passed"], r
    assert r["inputs"] == cp.spec.num_inputs(cp.max_len)
    if cp.spec.task is MIU_TASK:  # every MIU program, against the criterion and the rewrite system
        assert r["inputs"] == 88_572
        assert r["rewrite_system"]["checked"] == r["rewrite_system"]["derived"] == 682


def test_exhaustive_check_catches_a_wrong_model(compiled_programs):
    """Negative control: with too small an mlp_exactness (30) SelectorWidth miscounts long prefixes."""
    spec = get_program("miu")
    cp = compile_program(spec, 10, mlp_exactness=30)
    model, _ = to_torch(cp)
    r = verify.exhaustive(spec, model.float(), 10)
    assert not r["passed"] and r["failures"]


def test_mean_value_set():
    assert mean_values(3) == {0, 1 / 3, 1 / 2, 2 / 3, 1}
    assert len(mean_values(10)) == 33  # the Farey sequence of order 10


def test_tracr_miscompiles_a_mean_that_the_correction_fixes():
    """Tracr as shipped gives a mean of a 0/1 SOp the values {0} u {1/n}: miu_mean then reads
    3/5 as another fraction and accepts MIUII (three I's). With the value sets corrected it is exact."""
    spec = get_program("miu_mean")
    shipped = compile_program(spec, 5, correct_means=False)
    fixed = compile_program(spec, 5)
    assert shipped.corrected_value_sets == [] and fixed.corrected_value_sets == ["frac_I", "frac_I_exact", "frac_bad_M"]
    assert "frac_I_exact:3/5" in fixed.residual_labels and "frac_I_exact:3/5" not in shipped.residual_labels
    # Tracr's own forward pass, no port involved.
    assert shipped.model.apply(["BOS", *"MIUII"]).decoded[-1] is True
    assert fixed.model.apply(["BOS", *"MIUII"]).decoded[1:] == miu.prefix_verdicts("MIUII")
    assert not miu.is_theorem("MIUII")
    wrong = verify.exhaustive(spec, to_torch(shipped)[0].float(), 5)
    right = verify.exhaustive(spec, to_torch(fixed)[0].float(), 5)
    assert not wrong["passed"] and "MIUII" in wrong["failures"]
    assert wrong["inputs"] - wrong["passed_inputs"] == 7  # MIII, MIIII, MIUII, ... (3/4, 3/5 misread)
    assert right["passed"] and right["exhaustive"] and right["rewrite_system"]["passed"]


def test_variable_encodings_match_the_compiled_model(compiled_programs):
    """A numerical variable is one residual direction named after it; the block map agrees on encodings."""
    for cp in compiled_programs.all():
        _, meta = to_torch(cp)
        encodings = {e["sop"]: e["encoding"] for e in meta["block_map"]}
        for var in cp.spec.variables:
            assert encodings[var.name] == var.encoding, (cp.spec.name, var.name)
            own = [l for l in meta["residual_labels"] if l.split(":")[0] == var.name]
            if var.encoding == "numerical":
                assert own == [var.name], (cp.spec.name, own)
    where = lambda name: {e["sop"]: [b["hook"] for b in e["blocks"]]  # noqa: E731
                          for e in to_torch(compiled_programs[name])[1]["block_map"]}
    assert where("miu_mean")["frac_I"] == ["blocks.1.attn"] and where("miu_mean")["frac_bad_M"] == ["blocks.2.attn"]
    assert where("miu_first")["first"] == ["blocks.0.attn"]
    assert where("miu_first")["count_M"] == ["blocks.1.attn", "blocks.1.mlp"]


def test_miu_block_map_and_clean_labels(compiled_programs):
    cp = compiled_programs["miu"]
    model, meta = to_torch(cp)
    names = {v.name for v in cp.spec.variables} | {"tokens", "indices", "one"}
    for label in meta["residual_labels"]:
        base = label.split(":")[0].removesuffix("_selector_width_attn_output")
        assert base in names, label
        assert not re.search(r"_\d+(:|$)", label.split(":")[0]), f"Tracr suffix left in {label}"
    where = {e["sop"]: [(b["hook"], b.get("head")) for b in e["blocks"]] for e in meta["block_map"]}
    assert where == {
        "I_at": [("blocks.0.mlp", None)], "bad_M_at": [("blocks.0.mlp", None)],
        "count_I": [("blocks.1.attn", 0), ("blocks.1.mlp", None)],
        "count_bad_M": [("blocks.1.attn", 1), ("blocks.1.mlp", None)],
        "theorem": [("blocks.2.mlp", None)],
    }
    count_i = next(e for e in meta["block_map"] if e["sop"] == "count_I")
    attn = count_i["blocks"][0]
    assert attn["reads"]["key"] == [f"I_at:{v}" for v in range(-1, 10)] + ["tokens:BOS"]  # BOS: default key
    assert set(attn["reads"]["query"]) == {f"indices:{i}" for i in range(10)} | {"one", "tokens:BOS"}
    assert attn["writes"] == ["count_I_selector_width_attn_output"]
    # The SelectorWidth MLP writes the count and also cleans up the attention's scratch direction.
    assert set(count_i["blocks"][1]["writes"]) == {f"count_I:{v}" for v in range(11)} | {attn["writes"][0]}


def test_miu_mod3_layout_holds_residues_only(compiled_programs):
    """The negative control: one scan step per layer, and no residual direction for an I count."""
    cp = compiled_programs["miu_mod3"]
    model, meta = to_torch(cp)
    where = {e["sop"]: [b["hook"] for b in e["blocks"]] for e in meta["block_map"]}
    assert where["prev_token"] == ["blocks.0.attn"] and where["count_bad_M"] == ["blocks.1.attn", "blocks.1.mlp"]
    for layer, (read, state) in enumerate([("back_2", "scan_2"), ("back_4", "scan_4"), ("back_8", "I_mod_3")], 2):
        assert where[read] == [f"blocks.{layer}.attn"] and where[state] == [f"blocks.{layer}.mlp"]
    assert where["theorem"] == ["blocks.5.mlp"] and model.cfg.n_layers == 6 and model.cfg.n_heads == 1
    residue_sops = ("I_mod3_at", "scan_", "last_", "back_", "I_mod_3")
    for label in meta["residual_labels"]:
        name, _, value = label.partition(":")
        assert "count_I" not in name, label
        if name.startswith(residue_sops):
            assert value[:2] in ("0", "1", "2", "(0", "(1", "(2"), label


def test_block_map_agrees_with_weights(compiled_programs):
    """Each block writes exactly the residual directions the block map says (by label)."""
    for cp in compiled_programs.all():
        model, meta = to_torch(cp)
        labels = meta["residual_labels"]
        for layer in range(model.cfg.n_layers):
            w_out = model.param(f"blocks.{layer}.mlp.W_out").abs().sum(0)  # [D]
            written = {labels[i] for i in torch.nonzero(w_out > 1e-9).flatten().tolist()}
            claimed = {w for e in meta["block_map"] for b in e["blocks"]
                       if b["hook"] == f"blocks.{layer}.mlp" for w in b["writes"]}
            assert written <= claimed, (cp.spec.name, layer, written - claimed)
            for head in range(model.cfg.n_heads):
                w_o = model.param(f"blocks.{layer}.attn.W_O")[head].abs().sum(0)  # [D]
                written = {labels[i] for i in torch.nonzero(w_o > 1e-9).flatten().tolist()}
                claimed = {w for e in meta["block_map"] for b in e["blocks"]
                           if b["hook"] == f"blocks.{layer}.attn" and b.get("head") == head for w in b["writes"]}
                assert written == claimed, (cp.spec.name, layer, head)


def test_unembedding_is_built_by_label(compiled_programs):
    cp = compiled_programs["miu"]
    model, meta = to_torch(cp)
    W_U = model.param("unembed.W_U")
    for j, value in enumerate(model.cfg.output_vocab):
        assert meta["residual_labels"][int(W_U[:, j].argmax())] == f"theorem:{value}"
    assert model.cfg.vocab == ("BOS", "I", "M", "PAD", "U")  # Tracr's sorted ids, not vocab order


def test_head_results_sum_to_attention_output(compiled_programs):
    model, _ = to_torch(compiled_programs["miu"])
    ids = encode(model.cfg, [tuple("MIIUI"), tuple("MUI")])
    _, cache = model.run_with_cache(ids)
    for l in range(model.cfg.n_layers):
        total = cache[f"blocks.{l}.attn.hook_result"].sum(2) + model.param(f"blocks.{l}.attn.b_O")
        torch.testing.assert_close(total, cache[f"blocks.{l}.hook_attn_out"])
        torch.testing.assert_close(cache[f"blocks.{l}.hook_resid_mid"],
                                   cache[f"blocks.{l}.hook_resid_pre"] + cache[f"blocks.{l}.hook_attn_out"])


def test_padding_does_not_change_outputs(compiled_programs):
    for name in ("miu", "sort"):
        model, _ = to_torch(compiled_programs[name])
        token = next(t for t in model.cfg.vocab if t not in ("BOS", "PAD"))
        short, longer = (token,) * 2, (token,) * 4
        alone = model(encode(model.cfg, [short]))[0]
        padded = model(encode(model.cfg, [short, longer]))[0, : len(short) + 1]
        torch.testing.assert_close(alone, padded)
        # The fused attention kernel (no hooks) and the explicit one (caching patterns) agree.
        ids = encode(model.cfg, [short, longer])
        torch.testing.assert_close(model(ids), model.run_with_cache(ids)[0])


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_inference_fast_paths_agree_with_the_training_path(compiled_programs, name):
    # Without autograd, in float32, the model takes oneDNN matmuls, is_causal attention when no
    # key is a pad, and skips sublayers whose output weights are zero. With autograd on it takes
    # F.linear and every sublayer; the explicit attention path (caching patterns) builds masks.
    cp = compiled_programs[name]
    model = to_torch(cp)[0].float()
    rng = np.random.default_rng(0)
    full = encode(model.cfg, [tuple(rng.choice(cp.spec.vocab, size=cp.max_len)) for _ in range(64)])
    mixed = encode(model.cfg, cp.spec.sample_inputs(rng, 64, cp.max_len))
    for ids in (full, mixed):
        with torch.enable_grad():
            reference = model(ids, skip_empty=False)
            explicit = model.run_with_cache(ids)[0]
        with torch.inference_mode():
            fast, dense = model(ids), model(ids, skip_empty=False)
        assert torch.equal(fast, dense)  # skipping a zero sublayer is exact, not approximate
        torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-5)
        assert torch.equal(fast.argmax(-1), reference.argmax(-1))


def test_miu_has_empty_sublayers_to_skip(compiled_programs):
    # Layers 0 and 2 only use their MLP: their attention is all zeros, which the fast path skips.
    model, _ = to_torch(compiled_programs["miu"])
    empty = [l for l in range(model.cfg.n_layers) if not model.param(f"blocks.{l}.attn.W_O").any()]
    assert empty == [0, 2]
    # A skipped sublayer still adds its bias; an all-zero MLP is skipped too.
    model = model.float()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.param("blocks.1.mlp.W_out").zero_()
        for l in range(model.cfg.n_layers):
            for name in ("attn.b_O", "mlp.b_out"):
                model.param(f"blocks.{l}.{name}").add_(torch.randn(model.cfg.d_model, generator=gen))
    ids = encode(model.cfg, [tuple("MIUIUIIUMI"), tuple("MUIIIIUIUI")])
    with torch.inference_mode():
        fast, dense = model(ids), model(ids, skip_empty=False)
    assert torch.equal(fast, dense)
    with torch.enable_grad():
        torch.testing.assert_close(fast, model(ids))
    # Under autograd nothing is skipped: a zeroed W_O in front of live heads still gets a gradient.
    model = model.float()
    with torch.no_grad():
        model.param("blocks.1.attn.W_O").zero_()
    model(encode(model.cfg, [tuple("MIUI")])).sum().backward()
    assert model.param("blocks.1.attn.W_O").grad.abs().sum() > 0



def test_empty_sublayers_are_skipped_beside_hooks_but_not_under_one(compiled_programs):
    """A residual hook or cache around an empty sublayer still skips it, exactly; a hook inside it runs it."""
    model = to_torch(compiled_programs["miu"])[0]  # float64; attention of layers 0 and 2 is empty
    ids = encode(model.cfg, [tuple("MIUIUIIUMI"), tuple("MUIIIIUIUI"), tuple("MI")])
    seen = []

    def double(x, name):
        seen.append(name)
        return 2 * x
    resid = {"blocks.1.hook_resid_pre": double}
    with torch.inference_mode():
        cache_fast, cache_dense = {}, {}
        fast = model(ids, hooks=resid, cache=cache_fast, cache_names=lambda n: "resid" in n)
        dense = model(ids, hooks=resid, cache=cache_dense, cache_names=lambda n: "resid" in n, skip_empty=False)
        assert torch.equal(fast, dense) and cache_fast.keys() == cache_dense.keys()
        assert all(torch.equal(cache_fast[n], cache_dense[n]) for n in cache_fast)
        inside = {"blocks.2.attn.hook_z": double}  # the empty attention of layer 2 must run for its hook
        assert torch.equal(model(ids, hooks=inside), model(ids, hooks=inside, skip_empty=False))
    assert seen == ["blocks.1.hook_resid_pre", "blocks.1.hook_resid_pre", "blocks.2.attn.hook_z",
                    "blocks.2.attn.hook_z"]

# ---------------------------------------------------------------- artifacts --

def run_cli(capsys, argv):
    code = compile_main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def test_compile_cli_writes_a_loadable_artifact(tmp_path, capsys):
    code, _ = run_cli(capsys, ["--program", "hist", "--artifacts", str(tmp_path)])
    assert code == 0
    folder = tmp_path / "hist" / "compiled"
    meta = json.loads((folder / "model.json").read_text())
    assert meta["config"]["n_layers"] == 1 and meta["residual_labels"] and meta["block_map"]
    assert json.loads((folder / "verify.json").read_text())["exhaustive"]["passed"]
    model, _ = load_artifact(folder)
    assert model.cfg.d_model == len(meta["residual_labels"])


@pytest.mark.parametrize("argv, message", [
    (["--program", "nope"], "unknown program 'nope'"),
    (["--program", "miu", "--max-len", "0"], "MAX_LEN=0 is out of range"),
    (["--program", "miu", "--max-len", "-2"], "MAX_LEN=-2 is out of range"),
    (["--program", "miu", "--max-len", "99"], "MAX_LEN=99 is out of range"),
    (["--program", "miu", "--max-len", "x"], "MAX_LEN must be an integer"),
])
def test_compile_cli_bad_input(capsys, tmp_path, argv, message):
    code, err = run_cli(capsys, argv + ["--artifacts", str(tmp_path)])
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir()), "nothing written"


def build_unsupported():
    from tracr.rasp import rasp
    sel = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ) & rasp.Select(
        rasp.indices, rasp.indices, rasp.Comparison.LEQ)
    return rasp.numerical(rasp.Aggregate(sel.named("both"), rasp.numerical(rasp.Map(lambda x: 1, rasp.tokens))))


def build_tracr_crash():
    """Tracr's known broadcast crash: the aggregated value has more categories than the selector's spaces."""
    from tracr.rasp import rasp
    wide = rasp.categorical(rasp.SequenceMap(lambda t, i: f"{t}{i}", rasp.tokens, rasp.indices)).named("wide")
    first = rasp.Select(rasp.indices, rasp.indices, lambda k, q: k == 0).named("first")
    return rasp.categorical(rasp.Aggregate(first, wide)).named("first_wide")


@pytest.mark.parametrize("builder, message", [
    (build_unsupported, "Tracr cannot compile 'bad'"),
])
def test_uncompilable_program_names_the_operation(builder, message):
    spec = dataclasses.replace(get_program("hist"), name="bad", build=builder,
                               variables=(Variable("x", ("tokens",), list, ""),))
    with pytest.raises(ToolkitError, match=message):
        compile_program(spec, 5)


def test_tracr_value_width_crash_is_worked_around():
    """A head whose value is wider than its query/key spaces gets zero-weight key padding: it compiles,
    Tracr's own forward pass is right, and the block map still reports the head's real key space."""
    from tracr.rasp import rasp
    spec = dataclasses.replace(get_program("hist"), name="wide", build=build_tracr_crash,
                               variables=(Variable("x", ("tokens",), list, ""),))
    cp = compile_program(spec, 5)
    for tokens in ("abcd", "dcba", "aab"):
        assert cp.model.apply(["BOS", *tokens]).decoded[1:] == rasp.evaluate(build_tracr_crash(), list(tokens))
    head = next(b for e in cp.block_map if e["sop"] == "first_wide" for b in e["blocks"] if b["kind"] == "attn")
    assert set(head["reads"]["key"]) == {f"indices:{i}" for i in range(5)} | {"tokens:BOS"}  # not the padding


@pytest.fixture(scope="module")
def hist_artifact(tmp_path_factory, compiled_programs):
    folder = tmp_path_factory.mktemp("art") / "hist" / "compiled"
    model, meta = to_torch(compiled_programs["hist"])
    save_artifact(folder, model, meta)
    return folder


def test_artifact_round_trip_is_exact(hist_artifact, compiled_programs):
    model, _ = to_torch(compiled_programs["hist"])
    loaded, _ = load_artifact(hist_artifact, dtype=torch.float64)
    ids = encode(model.cfg, [tuple("abca"), tuple("dd")])
    assert torch.equal(model(ids), loaded(ids))


def test_corrupt_artifacts_give_one_line_errors(hist_artifact, tmp_path):
    import shutil
    cases = {}
    missing = tmp_path / "missing"
    cases["missing"] = (missing, "model.json is missing")
    trunc = tmp_path / "trunc"
    shutil.copytree(hist_artifact, trunc)
    data = (trunc / "model.safetensors").read_bytes()
    (trunc / "model.safetensors").write_bytes(data[: len(data) // 2])
    cases["truncated"] = (trunc, "corrupt weights file")
    badjson = tmp_path / "badjson"
    shutil.copytree(hist_artifact, badjson)
    (badjson / "model.json").write_text("{not json")
    cases["json"] = (badjson, "corrupt")
    shape = tmp_path / "shape"
    shutil.copytree(hist_artifact, shape)
    meta = json.loads((shape / "model.json").read_text())
    meta["config"]["d_model"] += 1
    (shape / "model.json").write_text(json.dumps(meta))
    cases["shape"] = (shape, "do not match model.json: parameter embed.W_E has shape")
    for what, (folder, message) in cases.items():
        with pytest.raises(ToolkitError, match=message) as e:
            load_artifact(folder)
        assert "\n" not in str(e.value), what


def test_interrupted_write_keeps_the_previous_artifact(hist_artifact, compiled_programs):
    before = (hist_artifact / "model.safetensors").read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(hist_artifact) as tmp:
            (tmp / "model.safetensors").write_bytes(b"half")
            raise KeyboardInterrupt
    assert (hist_artifact / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in hist_artifact.parent.iterdir()) == ["compiled"], "no temp folders left"


def test_predict_cli_bad_input(hist_artifact):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "learned.predict", str(hist_artifact), *args],
                              capture_output=True, text=True)
    ok = run("abca")
    assert ok.returncode == 0 and "a:2 b:1 c:1 a:2" in ok.stdout
    for args, message in [(("abx",), "token 'x' is not in the model's vocabulary"),
                          (("abcabc",), "longer than the model's maximum 5")]:
        r = run(*args)
        assert r.returncode == 2 and r.stderr.strip() == f"error: {r.stderr.strip()[7:]}" and message in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_training_and_comparing_never_import_jax_or_tracr():
    code = ("import pkgutil, importlib, sys, learned, compare, rasp_programs.registry\n"
            "for pkg in (learned, compare):\n"
            "    for m in pkgutil.iter_modules(pkg.__path__):\n"
            "        importlib.import_module(f'{pkg.__name__}.{m.name}')\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'tracr', 'haiku'))\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
