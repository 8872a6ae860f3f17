"""``python -m compare``: compare the compiled model with learned checkpoints and write the report.

    python -m compare --program miu --artifacts artifacts --reports reports --seeds "0 1"
    python -m compare --program miu --learned path/to/checkpoint [path/to/other ...]
    python -m compare --program miu --hypotheses miu miu_mean miu_first   # which algorithm?

``--learned`` takes any folder in the artifact format (``model.safetensors`` +
``model.json``) whose shape and vocabularies equal the compiled model's.
``--hypotheses`` ranks candidate programs of the same task against each
learned model (``compare.hypotheses``); each needs its compiled artifact
(``make compile PROGRAM=<candidate>``; ``make compare HYPOTHESES=...`` compiles
missing ones).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

from compare.controls import run_controls
from compare.hypotheses import rank
from compare.outputs import OutputReadout, readout_for
from compare.pipeline import CompareConfig, check_finite, compare_models, prepare
from compare.report import HypothesisRun, ReportData, Run, write_report
from learned.artifact import check_compatible, load_artifact
from learned.model import Transformer
from rasp_programs.errors import ToolkitError, cli_main
from rasp_programs.registry import expand_hypotheses, get_program


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.replace(",", " ").split()]
    except ValueError:
        raise ToolkitError(f"SEEDS must be integers separated by spaces, got {text!r}") from None
    if not seeds:
        raise ToolkitError("SEEDS is empty")
    return seeds


def check_writable(folder: Path) -> None:
    """Fails early (before minutes of work) if the report folder cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ToolkitError(f"cannot write reports to {folder}: {e.strerror or e}") from None


@dataclasses.dataclass
class Learned:
    """One model to compare: where it came from, the model, and how its output is read."""

    label: str
    path: str
    model: Transformer
    output: OutputReadout


def load_compiled(program: str, artifacts: Path) -> tuple[Transformer, dict]:
    """A program's compiled model (float64: Tracr's weights are large, and a disguised copy must give the
    same verdicts) and its ``model.json``, checked."""
    folder = artifacts / program / "compiled"
    compiled, meta = load_artifact(folder, dtype=torch.float64, make_hint=f"make compile PROGRAM={program}")
    if meta.get("kind") != "compiled" or "residual_labels" not in meta or "block_map" not in meta:
        raise ToolkitError(f"{folder} is not a compiled artifact (run `make compile PROGRAM={program}`)")
    if len(meta["residual_labels"]) != compiled.cfg.d_model:
        raise ToolkitError(f"{folder}: residual_labels do not match d_model (run `make compile PROGRAM={program}`)")
    check_finite(compiled, f"compiled artifact {folder / 'model.safetensors'}")
    return compiled, meta


def load_models(program: str, artifacts: Path, seeds: list[int], learned: list[str] | None,
                runs: str = "learned") -> tuple[Transformer, dict, list[Learned]]:
    """The compiled model and every model to compare with it, checked for compatibility.

    Args:
        runs: the folder under ``<artifacts>/<program>/`` holding ``seed<k>/`` runs (``learned``, ``mugpt``).
    """
    root = artifacts / program
    if not root.is_dir():
        raise ToolkitError(f"no artifacts for program '{program}' in {artifacts} "
                           f"(run `make compile PROGRAM={program}` then `make train PROGRAM={program}`)")
    compiled, meta = load_compiled(program, artifacts)
    if learned:
        folders = [(Path(p).name, Path(p)) for p in learned]
    else:
        folders = [(f"seed{s}", root / runs / f"seed{s}") for s in seeds]
    models = []
    for label, folder in folders:
        make = "make mugpt" if runs == "mugpt" else "make train"
        hint = "" if learned else f"{make} PROGRAM={program} SEEDS=\"{' '.join(map(str, seeds))}\""
        model, model_meta = load_artifact(folder, dtype=torch.float32, make_hint=hint)
        output = readout_for(model.cfg, model_meta, compiled.cfg.output_vocab, str(folder / "model.json"))
        if output.kind == "argmax":
            check_compatible(compiled.cfg, model.cfg, f"learned checkpoint {folder}")
        else:  # a language model: its outputs are next tokens, read through the declared readout
            check_compatible(compiled.cfg, dataclasses.replace(model.cfg, d_vocab_out=compiled.cfg.d_vocab_out,
                                                               output_vocab=compiled.cfg.output_vocab),
                             f"learned checkpoint {folder}")
        check_finite(model, f"learned checkpoint {folder / 'model.safetensors'}")
        models.append(Learned(label, str(folder), model, output))
    return compiled, meta, models


def candidates_of(program: str, hypotheses: list[str]) -> list[str]:
    """The candidate programs, checked: registered, and solving the same task as ``program``."""
    task = get_program(program).task
    out = list(dict.fromkeys(hypotheses))
    for name in out:
        spec = get_program(name)
        if spec.task is not task:
            raise ToolkitError(f"candidate '{name}' solves task '{spec.task.name}', not '{task.name}' "
                               f"(the task of '{program}')")
    return out


def run(program: str, artifacts: Path, reports: Path, seeds: list[int], learned: list[str] | None,
        config: CompareConfig, controls: bool = True, log=print, runs: str = "learned",
        out: Path | None = None, hypotheses: list[str] | None = None) -> Path:
    """The whole ``make compare``; returns the path of report.html (in ``out``, default ``reports/<program>``).

    ``hypotheses``: candidate programs of the same task, ranked against every learned model.
    """
    spec = get_program(program)
    hypotheses = expand_hypotheses(program, hypotheses or [])  # "auto": derived from the automaton
    target = out or reports / program
    check_writable(target.parent)
    cands = candidates_of(program, hypotheses)
    compiled, meta, models = load_models(program, artifacts, seeds, learned, runs)
    others = {c: load_compiled(c, artifacts) for c in cands if c != program}
    for c, (_, other) in others.items():  # every candidate must see the inputs the learned model is compared on
        if other.get("max_len") != meta.get("max_len"):
            raise ToolkitError(f"candidate '{c}' was compiled at MAX_LEN={other.get('max_len')}, '{program}' at "
                               f"{meta.get('max_len')} (run `make compile PROGRAM={c} MAX_LEN={meta.get('max_len')}`)")
    if any(m.output.kind == "lm" for m in models):  # compare language models where their language is well formed
        config = dataclasses.replace(config, well_formed_only=True)
    t0 = time.perf_counter()
    log("preparing: inputs, live rows, pairs, untrained baselines, the compiled model against itself ...")
    prep = prepare(spec, compiled, meta, config)
    preps = {}
    for c in cands:
        if c == program:
            preps[c] = prep
        else:
            log(f"preparing candidate {c} ...")
            preps[c] = prepare(get_program(c), *others[c], config)
    done, ranked = [], []
    for m in models:
        log(f"comparing {m.label} ({m.path}) ...")
        if cands:
            ranking = rank(preps, m.model, m.output, log)
            ranked.append(HypothesisRun(m.label, m.path, ranking))
            own = ranking.candidates[program].comparison if program in ranking.candidates else None
            done.append(Run(m.label, m.path, own or compare_models(prep, m.model, m.output)))
        else:
            done.append(Run(m.label, m.path, compare_models(prep, m.model, m.output)))
    checks = []
    if controls:
        log("controls: self, disguised copies, untrained, knockout, seed vs seed ...")
        checks = run_controls(prep, config.seed, [m.model for m in models], outputs=[m.output for m in models])
    data = ReportData(program, str(artifacts / program / "compiled"), done, checks, time.perf_counter() - t0,
                      hypotheses=ranked)
    return write_report(target, spec, data)


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compare", description=__doc__.splitlines()[0])
    ap.add_argument("--program", required=True)
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--reports", default="reports")
    ap.add_argument("--seeds", default="0", help='learned seeds, e.g. "0 1 2" (ignored with --learned)')
    ap.add_argument("--learned", nargs="+", default=None, metavar="DIR", help="learned checkpoint folder(s)")
    ap.add_argument("--fast", action="store_true", help="smaller samples (CompareConfig.fast)")
    ap.add_argument("--seed", type=int, default=0, help="seed of every random choice in the comparison")
    ap.add_argument("--no-controls", action="store_true", help="skip the control comparisons")
    ap.add_argument("--runs", default="learned", help="runs folder under <artifacts>/<program>/ (learned, mugpt)")
    ap.add_argument("--out", default=None, type=Path, help="report folder (default <reports>/<program>)")
    ap.add_argument("--hypotheses", nargs="*", default=None, metavar="PROGRAM",
                    help="candidate programs of the same task to rank against each learned model "
                         "(auto: every candidate derived from the task's automaton)")
    args = ap.parse_args(argv)
    seeds = parse_seeds(args.seeds)
    config = CompareConfig.fast(args.seed) if args.fast else CompareConfig(seed=args.seed)
    learned = [x for x in args.learned if x] if args.learned else None
    path = run(args.program, Path(args.artifacts), Path(args.reports), seeds, learned or None, config,
               controls=not args.no_controls, log=lambda s: print(s, file=sys.stderr), runs=args.runs, out=args.out,
               hypotheses=[h for x in (args.hypotheses or []) for h in x.split()])
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
