"""A refactor of ``compare/`` keeps every status and number: the golden file was written by the code
before the redesign of issue 17 (compiled ``miu_mean`` compared as if learned against ``miu``, at the
TINY setting), and the comparison today must give the same JSON.

Statuses, hooks, subspace kinds and every string must be equal; numbers equal up to 1e-7 relative (the
golden numbers were made on another machine's BLAS). Regenerate only for an intended change of method, and
say so in the commit.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from compare import disk_cache
from compare.pipeline import compare_models, prepare
from compare.json_edge import to_json
from rasp_programs.registry import get_program
from test_compare import TINY, load

GOLDEN = Path(__file__).parent / "data" / "golden_compare.json"
PARTS = ("variables", "heads", "ablation", "summary", "task_accuracy")


def differences(a, b, path: str = "") -> list[str]:
    """Where two JSON values differ: numbers beyond 1e-7 relative, anything else at all."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: only in {'golden' if k in a else 'now'}" for k in sorted(set(a) ^ set(b))]
        return out + [d for k in sorted(set(a) & set(b)) for d in differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return [] if math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-9) else [f"{path}: {a} vs {b}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


@pytest.fixture(scope="module")
def golden(artifacts, tmp_path_factory):
    """The prepared ``miu`` side with a cold cache of untrained baselines, and ``miu_mean`` compared to it."""
    model, meta = load(artifacts, "miu")
    cache = tmp_path_factory.mktemp("untrained")
    prep = prepare(get_program("miu"), model, meta, TINY, cache=cache)
    other, _ = load(artifacts, "miu_mean")
    return prep, other, compare_models(prep, other), cache


def test_comparison_is_unchanged_on_the_same_seeds(golden):
    now = to_json(golden[2])
    golden_json = json.loads(GOLDEN.read_text())
    diff = differences(golden_json, {k: now[k] for k in PARTS})
    assert not diff, f"{len(diff)} differences, first: {diff[:10]}"


def test_untrained_baselines_come_back_from_disk_unchanged(golden, monkeypatch):
    """Warm: the same scores, no probe fitted; a corrupt file: computed again, the same, and rewritten."""
    import compare.context as context

    prep, other, _, cache = golden
    files = sorted(cache.glob("untrained-*.json"))
    assert len(files) == 2  # the compiled shape and miu_mean's
    for like in (prep.compiled.model, other):
        key = context.untrained_key(like)

        def fresh():
            return dataclasses.replace(prep, untrained={}, untrained_sides={}, subspace_untrained={})
        monkeypatch.setattr(context, "fork_map", lambda *a, **k: pytest.fail("probes fitted on a warm cache"))
        warm = fresh()
        assert context.untrained_baseline(warm, like) == prep.untrained[key]
        for a, b in zip(warm.untrained_sides[key], prep.untrained_sides[key]):
            assert all(np.array_equal(a.resid[h], b.resid[h]) for h in a.resid)
        monkeypatch.undo()
    files[0].write_text("{not json")
    again = dataclasses.replace(prep, untrained={}, untrained_sides={}, subspace_untrained={})
    likes = {context.untrained_key(m): m for m in (prep.compiled.model, other)}
    recomputed = {k: context.untrained_baseline(again, m) for k, m in likes.items()}
    assert recomputed == {k: prep.untrained[k] for k in likes}
    assert json.loads(files[0].read_text())["key"] == files[0].stem.removeprefix("untrained-")


def test_reference_comes_back_from_disk_unchanged(artifacts, golden, monkeypatch):
    """Warm: the compiled model is not compared with itself again, and the reference, the compiled side's
    readouts and a comparison made on them are the cold run's to the last bit. A corrupt record is not
    read; other weights or settings give another key."""
    import compare.pipeline as pipeline

    prep, other, cold, cache = golden
    (record,) = cache.glob("comparison-*.json")
    model, meta = load(artifacts, "miu")
    monkeypatch.setattr(pipeline, "compare_models", lambda *a, **k: pytest.fail("reference computed again"))
    warm = prepare(get_program("miu"), model, meta, TINY, cache=cache)
    monkeypatch.undo()
    assert to_json(warm.reference) == to_json(prep.reference)
    assert to_json(warm.compiled.readouts) == to_json(prep.compiled.readouts)
    assert to_json(compare_models(warm, other)) == to_json(cold)
    key = record.stem.removeprefix("comparison-")
    data = prep.data
    state, settings = model.tl_state_dict(), TINY.to_dict()
    assert disk_cache.comparison_key([state], meta, settings, data) == key
    assert disk_cache.comparison_key([state], meta, {**settings, "n_null": TINY.n_null + 1}, data) != key
    moved = {**state, "unembed.W_U": state["unembed.W_U"] + 1e-12}
    assert disk_cache.comparison_key([moved], meta, settings, data) != key
    record.write_text('{"key": "' + key + '", "value": [1]}')
    assert disk_cache.load_comparison(cache, key) is None


def test_a_control_comes_back_from_disk_unchanged(golden, monkeypatch):
    """A disguised copy of the compiled model is compared once; the second time it is read back, the same."""
    import compare.pipeline as pipeline
    from compare.controls import disguise

    prep = golden[0]
    copy, _ = disguise(prep.compiled.model, 0, invertible=True)
    cold = pipeline.compare_fixed(prep, copy)
    monkeypatch.setattr(pipeline, "compare_models", lambda *a, **k: pytest.fail("control computed again"))
    assert to_json(pipeline.compare_fixed(prep, copy)) == to_json(cold)
    other, _ = disguise(prep.compiled.model, 1, invertible=True)  # another copy is another record
    with pytest.raises(pytest.fail.Exception, match="control computed again"):
        pipeline.compare_fixed(prep, other)


def test_the_comparison_can_fail():
    """The check sees a changed status and a moved number."""
    golden = json.loads(GOLDEN.read_text())
    name = next(iter(golden["variables"]))
    changed = json.loads(json.dumps(golden))
    changed["variables"][name]["status"] = "undecided" if golden["variables"][name]["status"] != "undecided" else "computed"
    changed["heads"]["similarity"][0][0] += 1e-4
    diff = differences(golden, changed)
    assert len(diff) == 2, diff
