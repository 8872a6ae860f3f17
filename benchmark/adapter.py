"""The one place the benchmark calls into the four stages; re-point it here when their interfaces change.

Languages are the registered automata plus ``miu``; a job's candidates are
every program of its task (``HYPOTHESES=auto``: the derived constructions of an
automaton task, the hand-written programs of ``miu``). Compiling runs
``python -m compiled`` in a subprocess, so JAX is never imported here.
Training builds the ``TrainConfig`` that ``python -m learned`` would build for
the objective and architecture. Comparing is ``make compare HYPOTHESES=...``
at ``CompareConfig.fast`` without the controls, written as the usual report.

Every job of a task is compared on the same inputs and pairs (``COMPARE_SEED``), so the seeds of a task
differ only by their models, and the compiled candidates' preparation (each compared with itself, the
untrained baselines) is kept on disk by the first job and read back by the others (``compare.disk_cache``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from compare.hypotheses import rank
from compare.outputs import readout_for
from compare.config import CompareConfig
from compare.context import check_finite
from compare.loading import cache_folder
from compare.pipeline import prepare
from compare.report import HypothesisRun, ReportData, Run, write_report
from learned.artifact import load_artifact, read_meta
from learned.lm_data import LMConfig
from learned.model import ModelConfig
from learned.runtime import get_device
from learned.train import ARCH_LR, OBJECTIVES as TRAINED_OBJECTIVES, TrainConfig, mugpt_preset, train
from rasp_programs.automata import DFAS
from rasp_programs.errors import ToolkitError
from rasp_programs.registry import get_program, task_programs

from benchmark.jobs import Shape

COMPARE_SEED = 0  # the comparison's sampling seed, the same for every job (the training seed is the job's)

LANGUAGES: tuple[str, ...] = (*DFAS, "miu")
CONSTRUCTIONS = {"counts": "counts", "window": "window", "prefix": "parallel prefix", "reset": "last reset",
                 "fractions": "fractions"}


def task_of(language: str, objective: str) -> str:
    """The task a job's model is compared on: membership (every objective's verdict is read as one)."""
    return language


def candidates(task: str) -> list[str]:
    """``HYPOTHESES=auto``: every candidate program of the task, in registration order."""
    return [p.name for p in task_programs(task)]


def construction(program: str) -> str:
    """The construction a candidate implements: ``tomita5.counts`` -> ``counts``; hand-written programs
    (``miu_mean``) are named by their program."""
    part = program.partition(".")[2]
    return CONSTRUCTIONS.get(part, part) if part else program


def default_max_len(task: str) -> int:
    return get_program(candidates(task)[0]).default_max_len


def compiled_meta(program: str, artifacts: Path) -> dict | None:
    path = artifacts / program / "compiled"
    return read_meta(path) if (path / "model.json").is_file() else None


def compile_missing(programs: list[str], max_len: int, artifacts: Path) -> None:
    """Compiles every program without a compiled artifact at ``max_len`` (``python -m compiled``).

    Raises:
        ToolkitError: a compile failed (its last error line), or an artifact exists at another length.
    """
    root = Path(importlib.util.find_spec("compiled").origin).parents[1]  # where workers import the stages from
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "PYTHONPATH": path}
    for p in programs:
        meta = compiled_meta(p, artifacts)
        if meta is not None and int(meta.get("max_len", -1)) == max_len:
            continue
        if meta is not None:
            raise ToolkitError(f"{artifacts / p / 'compiled'} was compiled at MAX_LEN={meta.get('max_len')}, "
                               f"the benchmark needs {max_len}")
        done = subprocess.run([sys.executable, "-m", "compiled", "--program", p, "--max-len", str(max_len),
                               "--artifacts", str(artifacts)], capture_output=True, text=True, env=env)
        if done.returncode:
            lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit {done.returncode}"]
            raise ToolkitError(f"compiling {p} failed: {lines[-1].removeprefix('error: ')}")


def _size(meta: dict) -> tuple[int, ...]:
    c = meta["config"]
    params = c["n_layers"] * (4 * c["n_heads"] * c["d_head"] * c["d_model"] + 2 * c["d_model"] * c["d_mlp"])
    return params, c["n_layers"], c["d_model"]


def smallest(programs: list[str], artifacts: Path) -> str:
    """The candidate with the fewest weights (then layers, then width): the default training shape."""
    return min(programs, key=lambda p: (_size(compiled_meta(p, artifacts)), p))


def model_config(program: str, artifacts: Path, shape: Shape) -> ModelConfig:
    """The compiled model's config (vocabularies, ``n_ctx``), at ``shape``."""
    cfg = ModelConfig.from_dict(compiled_meta(program, artifacts)["config"])
    if shape.kind == "compiled":
        return cfg
    return dataclasses.replace(cfg, n_layers=shape.n_layers, n_heads=shape.n_heads, d_model=shape.d_model,
                               d_head=shape.d_model // shape.n_heads, d_mlp=4 * shape.d_model)


def train_config(program: str, objective: str, shape: Shape, seed: int, steps: int, max_len: int,
                 lr: float = 0.0) -> TrainConfig:
    """What ``python -m learned --objective O --arch A --steps N [--lr LR]`` trains (``lr`` 0: the default).

    Raises:
        ToolkitError: an objective ``learned`` does not provide.
    """
    if objective not in TRAINED_OBJECTIVES:
        raise ToolkitError(f"learned does not provide the objective {objective!r} yet "
                           f"(it trains {', '.join(TRAINED_OBJECTIVES)})")
    arch = "tracr" if shape.kind == "compiled" else "gpt2"
    cfg = TrainConfig(program=program, max_len=max_len, seed=seed, arch=arch, steps=steps, objective=objective,
                      **({"lr": ARCH_LR[arch]} if arch in ARCH_LR else {}))
    if objective == "lm":  # a new objective with a preset of its own (legal-next) needs its line here
        cfg = dataclasses.replace(mugpt_preset(cfg, LMConfig().check(max_len)), steps=steps)
    return dataclasses.replace(cfg, lr=lr) if lr else cfg


def train_run(cfg: TrainConfig, mcfg: ModelConfig, folder: Path, device: str = "auto") -> dict:
    """Trains one model into ``folder`` (the usual run folder); returns its ``metrics.json``."""
    r = train(cfg, mcfg, get_device(device), folder, progress=False)
    if r.interrupted:
        raise ToolkitError(f"training was interrupted at step {r.step}")
    return r.metrics


def finished_training(cfg: TrainConfig, folder: Path) -> dict | None:
    """The ``metrics.json`` of a training that finished in ``folder`` with exactly ``cfg``, else ``None``.

    A job whose report is missing or stale (a record of an older ``VERSION``: the method changed) compares
    the model it already trained instead of training it again.
    """
    want = json.loads(json.dumps(cfg.to_dict()))  # as saved: tuples are lists
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
        meta = read_meta(folder)
    except (OSError, ValueError, ToolkitError):
        return None
    if not isinstance(metrics, dict) or metrics.get("interrupted") or metrics.get("training") != want:
        return None
    return metrics if meta.get("training") == want else None


def compare_run(task: str, program: str, run: Path, artifacts: Path, out: Path) -> ReportData:
    """Ranks every candidate of ``task`` against the model in ``run`` and writes the report into ``out``.

    ``program`` is the candidate whose comparison the report shows first (the training shape's).
    The model keeps its own shape; its vocabularies and ``n_ctx`` must be the compiled ones.
    """
    cands = candidates(task)
    compiled = {}
    for c in cands:
        model, meta = load_artifact(artifacts / c / "compiled", dtype=torch.float64)
        check_finite(model, f"compiled artifact of {c}")
        compiled[c] = (model, meta)
    ref = compiled[program][0].cfg
    model, meta = load_artifact(run, dtype=torch.float32)
    check_finite(model, f"model {run}")
    output = readout_for(model.cfg, meta, ref.output_vocab, str(run / "model.json"))
    if (model.cfg.vocab, model.cfg.n_ctx) != (ref.vocab, ref.n_ctx):
        raise ToolkitError(f"{run}: vocabulary {list(model.cfg.vocab)} / n_ctx {model.cfg.n_ctx} do not match "
                           f"{program}'s {list(ref.vocab)} / {ref.n_ctx}")
    config = dataclasses.replace(CompareConfig.fast(COMPARE_SEED), well_formed_only=output.members_only)
    preps = {c: prepare(get_program(c), m, meta_c, config, cache=cache_folder(c, artifacts), workers=1)
             for c, (m, meta_c) in compiled.items()}
    ranking = rank(preps, model, output, log=lambda s: None, workers=1)  # Ray gives each job one CPU
    data = ReportData(program, str(artifacts / program / "compiled"),
                      [Run(run.name, str(run), ranking.candidates[program].comparison)], [],
                      hypotheses=[HypothesisRun(run.name, str(run), ranking)])
    write_report(out, get_program(program), data)
    return data


def model_max_len(run: Path) -> int:
    """The longest input an (external) model takes."""
    return int(read_meta(run)["config"]["n_ctx"]) - 1


def candidate_dynamics(task: str, program: str, run: Path, artifacts: Path) -> dict:
    """Every candidate's score at every checkpoint of ``run`` (``make dynamics HYPOTHESES=...`` at the fast
    setting): ``{"steps": [...], "scores": {candidate: [...]}}``."""
    from compare.dynamics import analyse_run, checkpoint_folders
    from learned.evaluate import build_eval_set

    compiled = {c: load_artifact(artifacts / c / "compiled", dtype=torch.float64) for c in candidates(task)}
    lm = "readout" in read_meta(checkpoint_folders(run)[-1][1])
    config = dataclasses.replace(CompareConfig.fast(COMPARE_SEED), well_formed_only=lm)
    preps = {c: prepare(get_program(c), m, meta, config, cache=cache_folder(c, artifacts), workers=1)
             for c, (m, meta) in compiled.items()}
    spec = get_program(program)
    eval_set = build_eval_set(spec, compiled[program][0].cfg, int(compiled[program][1]["max_len"]))
    out = analyse_run(spec, preps[program], eval_set, run, log=lambda s: None, preps=preps)
    return {"steps": out.steps, "scores": {c: v.score for c, v in out.candidates.items()}}
