"""``make dynamics``: watch the learned circuit form over training.

For every log-spaced checkpoint a training run kept
(``artifacts/<program>/learned/seed<k>/checkpoints/step<N>/``) this records,
into one ``compare.curves.Curves`` per run,

* exhaustive accuracy, overall and (for MIU) per deciding clause;
* the model's probability that the task's probe strings (MIU: ``MU``, ``MI``,
  ...) are members, read at their last position;
* for every compiled variable, with the methods of ``compare.pipeline`` (the
  cheap ``CompareConfig.fast`` setting): its status, the hook where it is
  found, its held-out IIA with the CI's bounds, and its live-row readout
  there rescaled so that the untrained-network baseline is 0 and perfect is 1;
* the head-matching scores;
* with ``--hypotheses``, every candidate program's score and support
  (``compare.hypotheses``) and which candidate ranks first, so a run that
  passes through one algorithm on the way to another shows it.

Then ``compare.curves.analyse_curves`` marks each variable's emergence steps:
where it first *stays* causal (IIA lower bound >= 0.9 and above the
random-subspace null, the status rule) and where its rescaled readout first
stays at or above 0.9. It orders the variables by the causal emergence, says
which became causal before the accuracy jump (a progress measure in the sense
of Nanda et al.), flags those readable from the first checkpoint (an untrained
network already is), and finds the first step at which the model rejected the
task's impossible string (MIU: ``MU``) with probability >= 0.99. Output:
``reports/<program>/dynamics/`` (``dynamics.json``, ``dynamics.png``,
``dynamics.md``), which ``make compare`` folds into the report as "How the
circuit formed".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from compare.config import CompareConfig
from compare.curves import (LM_EPS, MEASURES, READABLE, REJECT, Analysis, CandidateCurve, Curves, HeadCurve, Skipped,
                            VariableCurve, across_seeds, analyse_curves, normalised)
from compare.hypotheses import rank
from compare.loading import candidates_of, load_compiled, cache_folder
from compare.outputs import readout_for
from compare.pipeline import compare_models, prepare
from compare.report import read_report, write_report
from learned.artifact import atomic_dir, check_comparable, encode, load_artifact, read_meta, write_json
from learned.evaluate import build_eval_set, evaluate
from learned.inference import predict_batched
from learned.lm import string_probability
from rasp_programs.cli import parse_seeds
from rasp_programs.errors import ToolkitError, cli_main
from rasp_programs.registry import get_program
from rasp_programs.spec import ProgramSpec


# ------------------------------------------------------------ checkpoints ----

def checkpoint_folders(run_folder: Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` for every ``checkpoints/step<N>/``, by step.

    Raises:
        ToolkitError: the run has no checkpoints (says how to make them).
    """
    root = run_folder / "checkpoints"
    found = sorted((int(m.group(1)), p) for p in root.glob("step*")
                   if p.is_dir() and (m := re.fullmatch(r"step(\d+)", p.name)))
    if not found:
        raise ToolkitError(f"no checkpoints in {root}; run `make train` (it keeps ~20 log-spaced checkpoints)")
    return found


def theorem_probability(model, spec: ProgramSpec, strings: Sequence[str], output=None) -> dict[str, float]:
    """P(output == the task's ``probe_output``, e.g. ``True``) at the last position of each string; for a
    language model, P(end | string), the probability that it accepts the string as complete."""
    cfg = model.cfg
    lm = output is not None and output.kind == "lm"
    target = cfg.output_vocab.index(output.readout.end_token if lm else spec.task.probe_output)
    inputs = [tuple(s) for s in strings]
    with torch.inference_mode():
        probs = model(encode(cfg, inputs)).float().softmax(-1)  # [B, T, O]
    return {s: float(probs[b, len(x), target]) for b, (s, x) in enumerate(zip(strings, inputs))}


def predict_outputs(model, output, ids: torch.Tensor, batch: int = 8192) -> torch.Tensor:
    """The program's output ids ``[N, T]`` read from the model through ``output`` (argmax or LM verdict)."""
    return predict_batched(model, ids, output.predict, batch)


def impossible_of(spec: ProgramSpec) -> str | None:
    """The task's impossible string as its probes spell it (``"MU"``), or None where the task has no language."""
    return "".join(spec.language.impossible) if spec.language is not None else None


def analyse_run(spec: ProgramSpec, prep, eval_set, run_folder: Path, log=print,
                preps: dict | None = None) -> Curves:
    """Every checkpoint of one run: the curves of the module docstring.

    ``preps``: candidate programs (name -> ``Prepared``) to rank at every checkpoint as well.
    """
    compiled_cfg = prep.compiled.model.cfg
    run = Curves(folder=str(run_folder), impossible=impossible_of(spec))
    for step, folder in checkpoint_folders(run_folder):
        t0 = time.perf_counter()
        try:
            model, model_meta = load_artifact(folder)
            output = readout_for(model.cfg, model_meta, compiled_cfg.output_vocab, str(folder / "model.json"))
            like = model.cfg if output.kind == "argmax" else dataclasses.replace(
                model.cfg, d_vocab_out=compiled_cfg.d_vocab_out, output_vocab=compiled_cfg.output_vocab)
            check_comparable(compiled_cfg, like, f"checkpoint {folder}")
        except ToolkitError as e:
            print(f"error: {e} (skipped)", file=sys.stderr)
            run.skipped.append(Skipped(step, str(folder), str(e)))
            continue
        m = evaluate(model, eval_set, pred=predict_outputs(model, output, eval_set.ids))
        ranking = rank(preps, model, output) if preps else None
        res = (ranking.candidates[spec.name].comparison if ranking and spec.name in ranking.candidates
               else compare_models(prep, model, output))
        if ranking:
            run.leader.append(ranking.order[0])
            for name, cand in ranking.candidates.items():
                c = run.candidates.setdefault(name, CandidateCurve())
                c.score.append(cand.score.value)
                c.lo.append(cand.score.lo)
                c.hi.append(cand.score.hi)
                c.support.append(cand.support.value)
        run.steps.append(step)
        run.accuracy.sequence.append(m["sequence_accuracy"])
        run.accuracy.final.append(m["final_accuracy"])
        for clause, r in m.get("per_clause", {}).get("deciding", {}).items():
            run.accuracy.per_clause.setdefault(clause, []).append(r["final_accuracy"])
        probes = [s for s in spec.task.probes if len(s) < model.cfg.n_ctx]  # those that fit MAX_LEN
        for s, p in theorem_probability(model, spec, probes, output).items():
            run.probes.setdefault(s, []).append(p)
        if output.kind == "lm":  # the string probability of what the language rules out (MU-GPT's P(MU))
            p_string, _ = string_probability(model, spec.language.impossible, output.readout.end_token)
            run.p_impossible = (run.p_impossible or []) + [p_string]
        for name, v in res.variables.items():
            c = run.variables.setdefault(name, VariableCurve())
            r = v.readout
            c.status.append(v.status.value)
            c.causal.append(v.status.causal)
            c.hook.append(v.found_hook)
            c.iia.append(v.iia.value)
            c.iia_lo.append(v.iia.lo)
            c.iia_hi.append(v.iia.hi)
            base = r.untrained_live if r is not None and r.untrained_live is not None else float("nan")
            c.readout.append(normalised(r.live.value, base) if r is not None else float("nan"))
            c.readout_raw.append(r.live.value if r is not None else float("nan"))
            c.untrained.append(base)
        for h in res.heads.matches:  # keyed by compiled head: its partner may change over training
            c = run.heads.setdefault(str(h.compiled), HeadCurve())
            c.score.append(h.agreement.value)
            c.learned.append(str(h.learned))
        log(f"  step {step:>6}: all-prefix acc {m['sequence_accuracy']:.4f}, "
            + ", ".join(f"{k} {c.status[-1]} (IIA {c.iia[-1]:.2f})" for k, c in run.variables.items())
            + (f"; first: {ranking.order[0]}" if ranking else "") + f"  ({time.perf_counter() - t0:.1f} s)")
    if not run.steps:
        raise ToolkitError(f"no usable checkpoint in {run_folder / 'checkpoints'}")
    return run


# ------------------------------------------------------------ outputs --------

def plot(runs: dict[str, Curves], analyses: dict[str, Analysis], path: Path) -> None:
    """Everything against the training step, one row of panels per seed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 4 if any(r.candidates for r in runs.values()) else 3
    fig, axes = plt.subplots(len(runs), panels, figsize=(5.3 * panels, 4 * len(runs)), squeeze=False)
    for row, (seed, run) in zip(axes, runs.items()):
        x = np.maximum(np.asarray(run.steps), 0.8)  # step 0 shown at the left edge of a log axis
        a = analyses[seed]
        ax = row[0]
        ax.plot(x, run.accuracy.sequence, "k-", lw=2, label="all-prefix accuracy")
        for clause, ys in run.accuracy.per_clause.items():
            ax.plot(x, ys, "--", label=f"final acc | {clause}")
        ax.set_title(f"seed {seed}: accuracy")
        ax = row[1]
        for name, c in run.variables.items():
            line, = ax.plot(x, c.iia, "-", label=f"{name} IIA")
            ax.fill_between(x, np.nan_to_num(np.array(c.iia_lo, dtype=float)),
                            np.nan_to_num(np.array(c.iia_hi, dtype=float)), color=line.get_color(), alpha=0.15)
            ax.plot(x, c.readout, ":", color=line.get_color(), label=f"{name} readout vs untrained")
            s = a.emergence["causal"].get(name)
            if s is not None:
                ax.plot(max(s, 0.8), 0.9, "x", color=line.get_color(), ms=12, mew=2)
        if a.accuracy_jump_step is not None:
            for ax_ in row:
                ax_.axvline(max(a.accuracy_jump_step, 0.8), color="grey", lw=1)
        ax.set_title("variables: test IIA, 95% CI (solid);\nreadout above untrained (dotted); x: causal", fontsize=9)
        ax = row[2]
        for s, ys in run.probes.items():
            ax.plot(x, ys, "-", lw=2.5 if s == run.impossible else 1,
                    label=f"P(END | {s})" if run.lm else f"P({s} is a member)")
        if run.lm:
            ax.plot(x, run.p_impossible, "k--", lw=2, label=f"P({run.impossible}) (string probability)")
        for name, c in run.heads.items():
            ax.plot(x, c.score, ":", label=f"{name} match ({c.learned[-1]} at the end)")
        ax.set_title("named strings and head-match scores", fontsize=9)
        if panels == 4:
            ax = row[3]
            for name, c in run.candidates.items():
                line, = ax.plot(x, c.score, "-", label=f"{name} score")
                ax.fill_between(x, np.nan_to_num(np.array(c.lo, dtype=float)),
                                np.nan_to_num(np.array(c.hi, dtype=float)), color=line.get_color(), alpha=0.15)
            ax.axhline(0.9, ls=":", c="grey")
            ax.set_title("candidate programs: score, 95% CI\n(dotted: supported threshold)", fontsize=9)
        for ax in row:
            ax.set_xscale("log")
            ax.set_xlabel("training step")
            ax.set_ylim(-0.02, 1.02)
            ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def markdown(runs: dict[str, Curves], analyses: dict[str, Analysis], same_order: bool) -> str:
    """``dynamics.md``: what each seed's curves say, in words."""
    lines = []
    for seed, run in runs.items():
        a = analyses[seed]
        lines.append(f"**Seed {seed}** ({len(run.steps)} checkpoints, steps {run.steps[0]}–{run.steps[-1]}).")
        lines.append(f"Causal (IIA lower bound ≥ 0.9, above the null) from: {a.sentence['causal']}.")
        lines.append(f"Readable beyond untrained networks (rescaled readout ≥ {READABLE}) from: "
                     f"{a.sentence['readable']}.")
        jump = a.accuracy_jump_step
        lines.append(f"All-prefix accuracy stays ≥ 0.99 from step {jump}." if jump is not None
                     else "All-prefix accuracy never stays ≥ 0.99.")
        if a.progress_measures:
            lines.append(f"Causal before the accuracy jump (progress measures): {', '.join(a.progress_measures)}.")
        else:
            lines.append("No variable became causal before the accuracy jump.")
        if a.impossible_probed and not a.lm:
            s = a.impossible_rejected_step
            lines.append(f"First rejected `{a.impossible}` with probability ≥ {REJECT}: "
                         + (f"step {s}." if s is not None else "never."))
        if a.lm:
            s = a.end_below_step
            lines.append(f"P(END | {a.impossible}) first below {LM_EPS}: " + (f"step {s}." if s is not None else "never.")
                         + f" P({a.impossible}) at the last checkpoint: {run.p_impossible[-1]:.2e}.")
        if a.leader_changes is not None:
            n_clear = a.clear_checkpoints
            lines.append(f"Candidate programs: one candidate's score CI is clear of every other's at {n_clear} of "
                         f"{len(run.steps)} checkpoints"
                         + (": " + ", then ".join(f"{n} from step {s}" for s, n in a.leader_changes) if n_clear
                            else "; elsewhere the ranking is within noise")
                         + ". Supported from: " + "; ".join(
                             f"{n} step {s}" if s is not None else f"{n} never" for n, s in a.supported_from.items())
                         + ".")
        if run.skipped:
            lines.append("Skipped checkpoints: " + "; ".join(f"step {s.step}: {s.error}" for s in run.skipped))
        lines.append("")
    if len(runs) > 1:
        lines.append("The order in which variables became causal is "
                     + ("the same in every seed." if same_order else "not the same in every seed."))
    lines += ["", "![training dynamics](dynamics.png)", ""]
    return "\n".join(lines)


@cli_main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m compare.dynamics", description=__doc__.splitlines()[0])
    ap.add_argument("--program", default="miu")
    ap.add_argument("--artifacts", default="artifacts", type=Path)
    ap.add_argument("--reports", default="reports", type=Path)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--run", nargs="*", type=Path, default=None, help="run folders (default: the seeds')")
    ap.add_argument("--runs", default="learned", help="runs folder under <artifacts>/<program>/ (learned, mugpt)")
    ap.add_argument("--compare-seed", type=int, default=0)
    ap.add_argument("--hypotheses", nargs="*", default=None, metavar="PROGRAM",
                    help="candidate programs of the same task to rank at every checkpoint")
    ap.add_argument("--from-json", action="store_true",
                    help="re-derive emergence, plots and text from the saved dynamics.json (no model is run)")
    args = ap.parse_args(argv)
    spec = get_program(args.program)
    folder = args.reports / spec.name if args.runs == "learned" else args.reports / spec.name / args.runs
    target = folder / "dynamics"
    if args.from_json:
        out = _load_json(target / "dynamics.json")
        try:
            runs = {seed: Curves.from_json(r) for seed, r in out["runs"].items()}
        except (KeyError, TypeError, AttributeError) as e:
            raise ToolkitError(f"corrupt {target / 'dynamics.json'}: {e!r}") from None
        for run in runs.values():  # written before the field existed
            run.impossible = run.impossible or impossible_of(spec)
        return _rewrite(spec, folder, out, runs)
    seeds = parse_seeds(args.seeds)
    compiled, meta = load_compiled(spec.name, args.artifacts)
    folders = args.run or [args.artifacts / spec.name / args.runs / f"seed{s}" for s in seeds]
    for f in folders:
        if not f.is_dir():
            raise ToolkitError(f"no training run at {f}; run `make {'mugpt' if args.runs == 'mugpt' else 'train'} "
                               f"PROGRAM={spec.name}`")
        checkpoint_folders(f)
    t0 = time.perf_counter()
    lm = "readout" in read_meta(checkpoint_folders(folders[0])[-1][1])
    config = dataclasses.replace(CompareConfig.fast(args.compare_seed), well_formed_only=lm)
    prep = prepare(spec, compiled, meta, config, cache=cache_folder(spec.name, args.artifacts))
    cands = candidates_of(spec.name, [h for x in args.hypotheses or [] for h in x.split()])
    preps = {c: prep if c == spec.name else prepare(get_program(c), *load_compiled(c, args.artifacts), config,
                                                    cache=cache_folder(c, args.artifacts))
             for c in cands}
    eval_set = build_eval_set(spec, compiled.cfg, int(meta["max_len"]))
    runs = {}
    for f in folders:
        print(f"dynamics of {f}:")
        runs[f.name.removeprefix("seed")] = analyse_run(spec, prep, eval_set, f, preps=preps or None)
    out = {"program": spec.name, "compare_settings": prep.config.to_dict(), "measures": list(MEASURES),
           "probes": list(spec.task.probes), "seconds": round(time.perf_counter() - t0, 1)}
    return _rewrite(spec, folder, out, runs)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ToolkitError(f"no {path}; run `make dynamics` first") from None
    except json.JSONDecodeError as e:
        raise ToolkitError(f"corrupt {path}: {e}") from None


def _rewrite(spec: ProgramSpec, folder: Path, out: dict[str, Any], runs: dict[str, Curves]) -> int:
    """Analyses ``runs``, writes ``folder/dynamics/`` (``out`` holds the run's settings) and folds it into the
    report there."""
    analyses = {seed: analyse_curves(run) for seed, run in runs.items()}
    seeds_summary = across_seeds(analyses)
    doc = {**out, "runs": {seed: {**run.to_json(), "analysis": analyses[seed].to_json()} for seed, run in runs.items()},
           "across_seeds": seeds_summary}
    target = folder / "dynamics"
    with atomic_dir(target) as tmp:
        write_json(tmp / "dynamics.json", doc)
        plot(runs, analyses, tmp / "dynamics.png")
        (tmp / "dynamics.md").write_text(markdown(runs, analyses, seeds_summary["same_order_in_every_seed"]))
    for seed, a in analyses.items():
        print(f"seed {seed}: became causal: {a.sentence['causal']}")
        if a.impossible_probed and not a.lm:
            print(f"seed {seed}: first rejected {a.impossible} (p >= {REJECT}) at step {a.impossible_rejected_step}")
        if a.lm:
            print(f"seed {seed}: P(END | {a.impossible}) < {LM_EPS} first at step {a.end_below_step}")
    print(f"wrote {target}/ (analysis took {out['seconds']} s)")
    compare_json = folder / "compare.json"
    if compare_json.is_file():  # fold the section into the existing report, rebuilt from its own JSON
        report = write_report(folder, spec, read_report(compare_json))
        print(f"report: {report} (now with 'How the circuit formed')")
    else:
        print(f"run `make compare PROGRAM={spec.name}` to fold this into the report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
