"""``make dynamics``: watch the learned circuit form over training.

For every log-spaced checkpoint a training run kept
(``artifacts/<program>/learned/seed<k>/checkpoints/step<N>/``) this records

* exhaustive accuracy, overall and (for MIU) per deciding clause;
* the model's probability that a few named strings (``MU``, ``MI``, ...)
  are theorems, read at their last position;
* for every compiled variable, with the methods of ``compare.pipeline`` (the
  cheap ``CompareConfig.fast`` setting): its status, the hook where it is
  found, its held-out IIA with the CI's bounds, and its live-row readout
  there rescaled so that the untrained-network baseline is 0 and perfect is 1;
* the head-matching scores;
* with ``--hypotheses``, every candidate program's score and support
  (``compare.hypotheses``) and which candidate ranks first, so a run that
  passes through one algorithm on the way to another shows it.

Then it marks each variable's emergence steps: where it first *stays* causal
(IIA lower bound >= 0.9 and above the random-subspace null, the status rule)
and where its rescaled readout first stays at or above 0.9. It orders the
variables by the causal emergence, says which became causal before the
accuracy jump (a progress measure in the sense of Nanda et al.), flags those
readable from the first checkpoint (an untrained network already is), and
finds the first step at which the model rejected ``MU`` with probability
>= 0.99. Output: ``reports/<program>/dynamics/`` (``dynamics.json``,
``dynamics.png``, ``dynamics.md``), which ``make compare`` folds into the
report as "How the circuit formed".
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

from compare.outputs import readout_for
from learned.artifact import atomic_dir, check_comparable, encode, load_artifact, read_meta, write_json
from learned.evaluate import build_eval_set, evaluate
from learned.lm import string_probability
from rasp_programs.errors import ToolkitError, cli_main
from rasp_programs.registry import get_program
from rasp_programs.spec import ProgramSpec

MEASURES = ("causal", "readable")  # emergence: the status is causal / rescaled readout >= READABLE
READABLE = 0.9
REJECT = 0.99  # "rejects MU" = P(theorem) <= 1 - REJECT
LM_EPS = 1e-3  # a language model rules MU out when P(END | MU) < LM_EPS (MU-GPT's stop rule)


# ------------------------------------------------------------ curve analysis --

def emergence_step(steps: Sequence[int], values: Sequence[float], threshold: float) -> int | None:
    """The first step from which ``values`` stay >= ``threshold`` to the end (None if never).

    Example:
        >>> emergence_step([0, 10, 20, 30], [0.1, 0.95, 0.5, 0.96], 0.9)
        30
    """
    found = None
    for step, v in zip(steps, values):
        ok = v is not None and not np.isnan(v) and v >= threshold
        if ok and found is None:
            found = step
        elif not ok:
            found = None
    return found


def first_step(steps: Sequence[int], values: Sequence[float], threshold: float, below: bool = False) -> int | None:
    """The first step where ``values`` reaches ``threshold`` (or falls to it, with ``below``)."""
    for step, v in zip(steps, values):
        if v is not None and not np.isnan(v) and (v <= threshold if below else v >= threshold):
            return step
    return None


def normalised(score: float, baseline: float) -> float:
    """Readout score rescaled so the baseline is 0 and perfect is 1 (clipped to [0, 1]).

    A raw accuracy of 0.99 means nothing for a variable an untrained network
    of the same shape already reads at 0.99 (``count_I`` on live rows).
    """
    if score is None or baseline is None or np.isnan(score) or np.isnan(baseline) or baseline >= 1.0:
        return float("nan")  # nothing to gain over a baseline that is already perfect
    return float(np.clip((score - baseline) / (1.0 - baseline), 0.0, 1.0))


def emergence_order(emergence: dict[str, int | None]) -> list[list[str]]:
    """Variables grouped by emergence step, earliest first; never-emerged last are dropped."""
    steps = sorted({s for s in emergence.values() if s is not None})
    return [sorted(k for k, s in emergence.items() if s == step) for step in steps]


def order_sentence(order: list[list[str]], emergence: dict[str, int | None], first: int = 0,
                   what: str = "readable") -> str:
    """Plain words, e.g. ``count_I (step 120), then theorem (step 300); never: bad_M_at``.

    Variables readable from the first checkpoint on are marked: a random
    network already exposes any function of (token, position) linearly.
    """
    def when(step):
        return f"step {step}" + (", i.e. at initialisation, from the input alone" if step == first else "")
    parts = [" and ".join(group) + f" ({when(emergence[group[0]])})" for group in order]
    never = sorted(k for k, s in emergence.items() if s is None)
    text = ", then ".join(parts) if parts else f"no variable became {what}"
    return text + (f"; never {what}: {', '.join(never)}" if never else "")


def analyse_curves(run: dict[str, Any]) -> dict[str, Any]:
    """Emergence steps, order, progress measures and MU rejection for one run's curves."""
    steps = run["steps"]
    out: dict[str, Any] = {"emergence": {}, "order": {}, "sentence": {}}
    for measure in MEASURES:
        if measure == "causal":
            em = {v: emergence_step(steps, [1.0 if c else 0.0 for c in curves["causal"]], 0.5)
                  for v, curves in run["variables"].items()}
        else:
            em = {v: emergence_step(steps, curves["readout"], READABLE) for v, curves in run["variables"].items()}
        out["emergence"][measure] = em
        out["order"][measure] = emergence_order(em)
        out["sentence"][measure] = order_sentence(out["order"][measure], em, steps[0] if steps else 0, measure)
    jump = emergence_step(steps, run["accuracy"]["sequence"], 0.99)
    out["accuracy_jump_step"] = jump
    causal = out["emergence"]["causal"]
    # A progress measure *became causal* before the jump; causal already at the first checkpoint does not count.
    out["progress_measures"] = sorted(v for v, s in causal.items()
                                      if s is not None and s > steps[0] and (jump is None or s < jump))
    out["readable_at_init"] = sorted(v for v, s in out["emergence"]["readable"].items()
                                     if s is not None and s == steps[0])
    if "MU" in run.get("probes", {}):
        out["mu_rejected_step"] = first_step(steps, run["probes"]["MU"], 1 - REJECT, below=True)
    if "p_impossible" in run:  # a language model: P(END | MU) below the stop rule's epsilon
        out["end_after_impossible_below_step"] = first_step(steps, run["probes"].get("MU", []), LM_EPS, below=True)
    if run.get("candidates"):
        # a checkpoint counts only where one candidate's score CI is clear of every other's
        cands = run["candidates"]
        clear = [(steps[i], lead) for i in range(len(steps)) for lead in cands
                 if all(cands[lead]["lo"][i] > c["hi"][i] for n, c in cands.items() if n != lead)]
        out["clear_checkpoints"] = len(clear)
        out["leader_changes"] = leader_changes([s for s, _ in clear], [n for _, n in clear])
        out["supported_from"] = {n: emergence_step(steps, [1.0 if s == "supported" else 0.0 for s in c["support"]], 0.5)
                                 for n, c in run["candidates"].items()}
    return out


def leader_changes(steps: Sequence[int], leaders: Sequence[str]) -> list[list[Any]]:
    """``[[step, candidate], ...]``: the first-ranked candidate at the first checkpoint and wherever it changes.

    Example:
        >>> leader_changes([0, 10, 20], ["miu", "miu_mean", "miu_mean"])
        [[0, 'miu'], [10, 'miu_mean']]
    """
    out: list[list[Any]] = []
    for step, name in zip(steps, leaders):
        if not out or out[-1][1] != name:
            out.append([step, name])
    return out


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
    outs = []
    with torch.inference_mode():
        for i in range(0, len(ids), batch):
            chunk = ids[i:i + batch]
            outs.append(output.predict(model(chunk).float(), chunk))
    return torch.cat(outs)


def analyse_run(spec: ProgramSpec, prep, eval_set, run_folder: Path, log=print,
                preps: dict | None = None) -> dict[str, Any]:
    """Every checkpoint of one run: the curves of the module docstring.

    ``preps``: candidate programs (name -> ``Prepared``) to rank at every checkpoint as well.
    """
    from compare.hypotheses import rank
    from compare.pipeline import compare_models
    compiled_cfg = prep.compiled.model.cfg
    run: dict[str, Any] = {"folder": str(run_folder), "steps": [], "skipped": [],
                           "accuracy": {"sequence": [], "final": [], "per_clause": {}},
                           "probes": {}, "variables": {}, "heads": {}}
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
            run["skipped"].append({"step": step, "folder": str(folder), "error": str(e)})
            continue
        m = evaluate(model, eval_set, pred=predict_outputs(model, output, eval_set.ids))
        ranking = rank(preps, model, output) if preps else None
        res = (ranking.candidates[spec.name].comparison if ranking and spec.name in ranking.candidates
               else compare_models(prep, model, output))
        if ranking:
            run.setdefault("leader", []).append(ranking.order[0])
            for name, cand in ranking.candidates.items():
                c = run.setdefault("candidates", {}).setdefault(name, {"score": [], "lo": [], "hi": [], "support": []})
                c["score"].append(cand.score.value)
                c["lo"].append(cand.score.lo)
                c["hi"].append(cand.score.hi)
                c["support"].append(cand.support.value)
        run["steps"].append(step)
        run["accuracy"]["sequence"].append(m["sequence_accuracy"])
        run["accuracy"]["final"].append(m["final_accuracy"])
        for clause, r in m.get("per_clause", {}).get("deciding", {}).items():
            run["accuracy"]["per_clause"].setdefault(clause, []).append(r["final_accuracy"])
        probes = [s for s in spec.task.probes if len(s) < model.cfg.n_ctx]  # those that fit MAX_LEN
        for s, p in theorem_probability(model, spec, probes, output).items():
            run["probes"].setdefault(s, []).append(p)
        if output.kind == "lm":  # the string probability of what the language rules out (MU-GPT's P(MU))
            p_string, _ = string_probability(model, spec.language.impossible, output.readout.end_token)
            run.setdefault("p_impossible", []).append(p_string)
        for name, v in res.variables.items():
            c = run["variables"].setdefault(name, {"status": [], "causal": [], "hook": [], "iia": [], "iia_lo": [],
                                                    "iia_hi": [], "readout": [], "readout_raw": [], "untrained": []})
            r = v.readout
            c["status"].append(v.status.value)
            c["causal"].append(v.status.causal)
            c["hook"].append(v.found_hook)
            c["iia"].append(v.iia.value)
            c["iia_lo"].append(v.iia.lo)
            c["iia_hi"].append(v.iia.hi)
            base = r.untrained_live if r is not None and r.untrained_live is not None else float("nan")
            c["readout"].append(normalised(r.live.value, base) if r is not None else float("nan"))
            c["readout_raw"].append(r.live.value if r is not None else float("nan"))
            c["untrained"].append(base)
        for h in res.heads.matches:  # keyed by compiled head: its partner may change over training
            c = run["heads"].setdefault(h.compiled, {"score": [], "learned": []})
            c["score"].append(h.agreement.value)
            c["learned"].append(h.learned)
        log(f"  step {step:>6}: all-prefix acc {m['sequence_accuracy']:.4f}, "
            + ", ".join(f"{k} {c['status'][-1]} (IIA {c['iia'][-1]:.2f})" for k, c in run["variables"].items())
            + (f"; first: {ranking.order[0]}" if ranking else "") + f"  ({time.perf_counter() - t0:.1f} s)")
    if not run["steps"]:
        raise ToolkitError(f"no usable checkpoint in {run_folder / 'checkpoints'}")
    return run


def across_seeds(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Is the emergence order the same in every seed?"""
    orders = {seed: r["analysis"]["order"]["causal"] for seed, r in runs.items()}
    distinct = {repr(o) for o in orders.values()}
    return {"order_causal": orders, "same_order_in_every_seed": len(distinct) == 1,
            "mu_rejected_step": {seed: r["analysis"].get("mu_rejected_step") for seed, r in runs.items()}}


# ------------------------------------------------------------ outputs --------

def plot(runs: dict[str, dict[str, Any]], path: Path) -> None:
    """Everything against the training step, one row of panels per seed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 4 if any(r.get("candidates") for r in runs.values()) else 3
    fig, axes = plt.subplots(len(runs), panels, figsize=(5.3 * panels, 4 * len(runs)), squeeze=False)
    for row, (seed, run) in zip(axes, runs.items()):
        x = np.maximum(np.asarray(run["steps"]), 0.8)  # step 0 shown at the left edge of a log axis
        a = run["analysis"]
        ax = row[0]
        ax.plot(x, run["accuracy"]["sequence"], "k-", lw=2, label="all-prefix accuracy")
        for clause, ys in run["accuracy"]["per_clause"].items():
            ax.plot(x, ys, "--", label=f"final acc | {clause}")
        ax.set_title(f"seed {seed}: accuracy")
        ax = row[1]
        for name, c in run["variables"].items():
            line, = ax.plot(x, c["iia"], "-", label=f"{name} IIA")
            ax.fill_between(x, np.nan_to_num(np.array(c["iia_lo"], dtype=float)),
                            np.nan_to_num(np.array(c["iia_hi"], dtype=float)), color=line.get_color(), alpha=0.15)
            ax.plot(x, c["readout"], ":", color=line.get_color(), label=f"{name} readout vs untrained")
            s = a["emergence"]["causal"].get(name)
            if s is not None:
                ax.plot(max(s, 0.8), 0.9, "x", color=line.get_color(), ms=12, mew=2)
        if a["accuracy_jump_step"] is not None:
            for ax_ in row:
                ax_.axvline(max(a["accuracy_jump_step"], 0.8), color="grey", lw=1)
        ax.set_title("variables: test IIA, 95% CI (solid);\nreadout above untrained (dotted); x: causal", fontsize=9)
        ax = row[2]
        for s, ys in run["probes"].items():
            ax.plot(x, ys, "-", lw=2.5 if s == "MU" else 1,
                    label=f"P(END | {s})" if "p_impossible" in run else f"P({s} is a theorem)")
        if "p_impossible" in run:
            ax.plot(x, run["p_impossible"], "k--", lw=2, label="P(MU) (string probability)")
        for name, c in run["heads"].items():
            ax.plot(x, c["score"], ":", label=f"{name} match ({c['learned'][-1]} at the end)")
        ax.set_title("named strings and head-match scores", fontsize=9)
        if panels == 4:
            ax = row[3]
            for name, c in run.get("candidates", {}).items():
                line, = ax.plot(x, c["score"], "-", label=f"{name} score")
                ax.fill_between(x, np.nan_to_num(np.array(c["lo"], dtype=float)),
                                np.nan_to_num(np.array(c["hi"], dtype=float)), color=line.get_color(), alpha=0.15)
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


def markdown(program: str, runs: dict[str, dict[str, Any]], seeds: dict[str, Any]) -> str:
    lines = []
    for seed, run in runs.items():
        a = run["analysis"]
        lines.append(f"**Seed {seed}** ({len(run['steps'])} checkpoints, steps {run['steps'][0]}–{run['steps'][-1]}).")
        lines.append(f"Causal (IIA lower bound ≥ 0.9, above the null) from: {a['sentence']['causal']}.")
        lines.append(f"Readable beyond untrained networks (rescaled readout ≥ {READABLE}) from: "
                     f"{a['sentence']['readable']}.")
        jump = a["accuracy_jump_step"]
        lines.append(f"All-prefix accuracy stays ≥ 0.99 from step {jump}." if jump is not None
                     else "All-prefix accuracy never stays ≥ 0.99.")
        if a["progress_measures"]:
            lines.append(f"Causal before the accuracy jump (progress measures): {', '.join(a['progress_measures'])}.")
        else:
            lines.append("No variable became causal before the accuracy jump.")
        if "mu_rejected_step" in a and "end_after_impossible_below_step" not in a:
            s = a["mu_rejected_step"]
            lines.append(f"First rejected `MU` with probability ≥ {REJECT}: "
                         + (f"step {s}." if s is not None else "never."))
        if "end_after_impossible_below_step" in a:
            s = a["end_after_impossible_below_step"]
            lines.append(f"P(END | MU) first below {LM_EPS}: " + (f"step {s}." if s is not None else "never.")
                         + f" P(MU) at the last checkpoint: {run['p_impossible'][-1]:.2e}.")
        if "leader_changes" in a:
            n_clear = a["clear_checkpoints"]
            lines.append(f"Candidate programs: one candidate's score CI is clear of every other's at {n_clear} of "
                         f"{len(run['steps'])} checkpoints"
                         + (": " + ", then ".join(f"{n} from step {s}" for s, n in a["leader_changes"]) if n_clear
                            else "; elsewhere the ranking is within noise")
                         + ". Supported from: " + "; ".join(
                             f"{n} step {s}" if s is not None else f"{n} never" for n, s in a["supported_from"].items())
                         + ".")
        if run["skipped"]:
            lines.append("Skipped checkpoints: " + "; ".join(f"step {s['step']}: {s['error']}" for s in run["skipped"]))
        lines.append("")
    if len(runs) > 1:
        lines.append("The order in which variables became causal is " + ("the same in every seed." if seeds["same_order_in_every_seed"]
                                                        else "not the same in every seed."))
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
    from compare.__main__ import candidates_of, load_compiled, parse_seeds
    from compare.pipeline import CompareConfig, prepare

    spec = get_program(args.program)
    folder = args.reports / spec.name if args.runs == "learned" else args.reports / spec.name / args.runs
    target = folder / "dynamics"
    if args.from_json:
        return _rewrite(spec, folder, _load_json(target / "dynamics.json"))
    compiled_dir = args.artifacts / spec.name / "compiled"
    compiled, meta = load_artifact(compiled_dir, dtype=torch.float64, make_hint=f"make compile PROGRAM={spec.name}")
    seeds = parse_seeds(args.seeds)
    folders = args.run or [args.artifacts / spec.name / args.runs / f"seed{s}" for s in seeds]
    for f in folders:
        if not f.is_dir():
            raise ToolkitError(f"no training run at {f}; run `make {'mugpt' if args.runs == 'mugpt' else 'train'} "
                               f"PROGRAM={spec.name}`")
        checkpoint_folders(f)
    t0 = time.perf_counter()
    lm = "readout" in read_meta(checkpoint_folders(folders[0])[-1][1])
    config = dataclasses.replace(CompareConfig.fast(args.compare_seed), well_formed_only=lm)
    prep = prepare(spec, compiled, meta, config)
    cands = candidates_of(spec.name, [h for x in args.hypotheses or [] for h in x.split()])
    preps = {c: prep if c == spec.name else prepare(get_program(c), *load_compiled(c, args.artifacts), config)
             for c in cands}
    eval_set = build_eval_set(spec, compiled.cfg, int(meta["max_len"]))
    runs = {}
    for f in folders:
        print(f"dynamics of {f}:")
        runs[f.name.removeprefix("seed")] = analyse_run(spec, prep, eval_set, f, preps=preps or None)
    out = {"program": spec.name, "compare_settings": prep.config.to_dict(), "measures": list(MEASURES),
           "probes": list(spec.task.probes), "runs": runs,
           "seconds": round(time.perf_counter() - t0, 1)}
    return _rewrite(spec, folder, out)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ToolkitError(f"no {path}; run `make dynamics` first") from None
    except json.JSONDecodeError as e:
        raise ToolkitError(f"corrupt {path}: {e}") from None


def _rewrite(spec: ProgramSpec, folder: Path, out: dict[str, Any]) -> int:
    """Derives everything from the curves in ``out``, writes ``folder/dynamics/``, folds it into the report there."""
    runs = out["runs"]
    for run in runs.values():
        run["analysis"] = analyse_curves(run)
    out["across_seeds"] = seeds_summary = across_seeds(runs)
    target = folder / "dynamics"
    with atomic_dir(target) as tmp:
        write_json(tmp / "dynamics.json", out)
        plot(runs, tmp / "dynamics.png")
        (tmp / "dynamics.md").write_text(markdown(spec.name, runs, seeds_summary))
    for seed, run in runs.items():
        a = run["analysis"]
        print(f"seed {seed}: became causal: {a['sentence']['causal']}")
        if "mu_rejected_step" in a:
            print(f"seed {seed}: first rejected MU (p >= {REJECT}) at step {a['mu_rejected_step']}")
        if "end_after_impossible_below_step" in a:
            print(f"seed {seed}: P(END | MU) < {LM_EPS} first at step {a['end_after_impossible_below_step']}")
    print(f"wrote {target}/ (analysis took {out['seconds']} s)")
    compare_json = folder / "compare.json"
    if compare_json.is_file():  # fold the section into the existing report, rebuilt from its own JSON
        from compare.report import read_report, write_report
        report = write_report(folder, spec, read_report(compare_json))
        print(f"report: {report} (now with 'How the circuit formed')")
    else:
        print(f"run `make compare PROGRAM={spec.name}` to fold this into the report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
