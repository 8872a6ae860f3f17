"""Writes ``reports/<program>/``: report.html (self-contained), report.md, compare.json, PNGs.

The report is built from a ``ReportData`` record only, and ``compare.json`` is
that record as JSON, so the report can be rebuilt from the JSON alone (a test
checks that it is). The folder is written atomically: an interrupted run
leaves the previous report in place.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from compare import figures, layer_norm
from compare.document import Doc
from compare.controls import SEED_VS_SEED, ControlResult
from compare.hypotheses import Ranking
from compare.answer import answer
from compare.report_ranking import ranking_table, section_attention, section_which_algorithm
from compare.json_edge import from_json, to_json
from compare.results import (IIA_OK, MARGIN, MATCH_OK, MIN_DISTINGUISHING, READ_OK, Comparison, Status, VariableResult)
from learned.artifact import atomic_dir, write_json
from rasp_programs.errors import ToolkitError
from rasp_programs.spec import ProgramSpec


@dataclasses.dataclass
class Run:
    label: str
    path: str
    result: Comparison


@dataclasses.dataclass
class HypothesisRun:
    """Candidate programs ranked against one model (``--hypotheses``)."""

    label: str
    path: str
    ranking: Ranking


@dataclasses.dataclass
class ReportData:
    """Everything a report shows; ``compare.json`` is this record."""

    program: str
    compiled: str
    runs: list[Run]
    controls: list[ControlResult]
    seconds: float = 0.0
    figures: list[str] = dataclasses.field(default_factory=list)
    hypotheses: list[HypothesisRun] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict:
        return to_json(self)

    @classmethod
    def from_json(cls, data: dict) -> "ReportData":
        try:
            return from_json(cls, data)
        except (KeyError, TypeError, ValueError) as e:
            raise ToolkitError(f"compare.json does not match this version's schema ({e}); rerun `make compare`") from None


def _f(x: Any, nd: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def _baselines(v: VariableResult) -> str:
    r = v.readout
    if r is None:
        return "n/a"
    untrained = f"{_f(r.untrained_live)} ± {_f(r.untrained_sd)}" if r.untrained_live is not None else "n/a"
    control = _f(v.control_task.value) if v.control_task else "n/a"
    return f"majority {_f(r.majority_live)}, untrained {untrained}, control task {control}"


def swap_evidence(v: VariableResult) -> str:
    """The causal test in words: deciding pairs, both chance levels, copying, the null."""
    iv = v.intervention
    null = (f"random {iv.dim}-dim subspaces: mean {_f(iv.null_mean)}, 95th pct {_f(iv.null_p95)}"
            if math.isfinite(iv.null_p95) else "no null: the subspace is all the layers wrote there")
    head = f"swapping a {iv.dim}-dim {iv.subspace} subspace at {v.found_hook} gives IIA "
    chance = f"copy source {_f(iv.chance_copy)}, no change {_f(iv.chance_no_change)}"
    if iv.decides_on != "distinguishing":
        return f"{head}{iv.test.fmt()} on {iv.n_test} held-out pairs (chance: {chance}; {null})"
    return (f"{head}{iv.distinguishing.fmt()} on the {iv.n_distinguishing} held-out pairs that tell it from the "
            f"output it feeds (chance 0 on those by construction; the model copied the source's output on "
            f"{iv.follows_copy.fmt()}), and {iv.test.fmt()} on all {iv.n_test} (chance: {chance}; {null})")


def inside_evidence(v: VariableResult) -> str:
    iv = v.intervention
    return (f"inside its {iv.read_in or 'chosen'} subspace its full value is read at {iv.subspace_readout.fmt()} "
            f"on live rows (untrained networks, the same kind of subspace: {_f(iv.subspace_untrained)})")


def variable_sentence(v: VariableResult, doc: str) -> str:
    """One plain-words finding, the causal evidence first, every number with its CI."""
    r, iv = v.readout, v.intervention
    if v.status is Status.NOT_TESTABLE or r is None or iv is None:
        return f"{v.name} ({doc}) is not testable here: no live rows or no effective intervention pairs."
    live = f"on live rows ({100 * v.live_share:.0f}% of rows) it is read at {r.live.fmt()} ({_baselines(v)})"
    swap = swap_evidence(v)
    where = f"{v.found_hook}, {v.where}"
    partition = f"the output tells apart {v.partition_text}"
    if v.status is Status.NOT_IDENTIFIABLE:
        return (f"{v.name} ({doc}) is not identifiable from the output here: only {iv.n_distinguishing} of "
                f"{iv.n_test} test pairs tell it from copying the source's output (at least {MIN_DISTINGUISHING} "
                f"are needed); {swap}.")
    if v.status is Status.COMPUTED:
        return f"{v.name} ({doc}) is computed at {where}: {swap}; {inside_evidence(v)}; {partition}."
    if v.status is Status.COMPUTED_UP_TO:
        return (f"{v.name} ({doc}) is computed up to its output partition, {v.partition_text}, at {where}: {swap}; "
                f"but {inside_evidence(v)}, so the evidence establishes only the values the output tells apart.")
    if v.status is Status.CAUSAL_PARTIAL:
        return (f"{v.name} ({doc}) is causal at {where} but not readable inside its subspace: {swap}; "
                f"{inside_evidence(v)}; {partition}.")
    if v.status is Status.UNDECIDED:
        return (f"{v.name} ({doc}) is undecided at {where}: {swap}; {inside_evidence(v)}; {live}. A confidence "
                f"interval straddles a threshold (IIA {IIA_OK}, readout {READ_OK}); more data, not a verdict, "
                f"is needed.")
    if v.status is Status.CORRELATIONAL:
        return f"{v.name} ({doc}) is readable but not causal (correlational only): {live}; but {swap}."
    if v.status is Status.UNTRAINED_LEVEL:
        return (f"{v.name} ({doc}) is readable only as in an untrained network: {live}; {swap}. No evidence "
                f"that the model uses it.")
    return f"{v.name} ({doc}) is not represented: {live}; {swap}."


def _methods(doc: Doc, res: Comparison) -> None:
    d, s = res.data, res.settings
    doc.items([
        f"Rows: {d.n_rows} distinct rows from {d.n_strings} input strings "
        + ("(every input up to length " if d.exhaustive else "(a seeded sample of the training mix, lengths up to ")
        + f"{d.max_len}). "
        + ("The program is causal, so each distinct prefix is one row (rows sharing a prefix are copies)."
           if d.causal else "One row per (input, position)."),
        f"Splits: {d.folds} folds grouped by input string (scikit-learn GroupKFold); readouts are cross-validated "
        "over them; interventions fit DAS on one fold, choose hook, subspace and dimension on another, and are "
        "scored on the third, so test pairs share no base, source or position with training.",
        "Live rows: a variable is live at a row when some other value of it there changes the program's output "
        "(the causal model decides, with interventions). Statuses are decided on live rows; live shares: "
        + ", ".join(f"{k} {100 * x:.0f}%" for k, x in d.live_share.items()) + ".",
        "Probes: whitened residual, then multinomial logistic regression (categorical) or ridge (numerical); "
        "baselines: the majority class, the mean over "
        f"{s.n_untrained} untrained networks of the same shape, and a control task (Hewitt & Liang 2019: labels "
        "reassigned at random per (token, position) type).",
        "Interventions swap only what the layers wrote (the direct token and position embedding is left alone), "
        "in whitened coordinates, so they are invariant to any invertible map of the residual stream. Candidates: "
        "the pattern swap (a joint linear forward model of every variable: it moves the variable's patterns and "
        "leaves those of the variables computed beside it alone, and in a second version those of its ancestors "
        "too, fitted on every fit row as well as where the variable is live, since a source can differ from its "
        f"base in a variable constant there; the better on validation pairs is kept) and DAS, swept over dimensions {list(s.das_dims)} with "
        f"{s.das_restarts} starts each (pattern basis; probe direction, or the unembedding's "
        "logit-difference direction for the output; random), a scale-free loss and early stopping on a held-out "
        "fifth of the fit pairs; patterns are preferred, then the smallest dimension within 0.02 of the best "
        f"validation IIA. Null: {s.n_null} random subspaces of the same dimension (none when the subspace is "
        "all the layers wrote at that hook).",
        *([layer_norm.METHODS_NOTE] if res.layer_norm else []),
        "Pairs: bases from live rows, sources from all rows. Each pair is labelled with the variable's "
        "counterfactual, 'copy source' (the source's own output) and 'no change' (the base's); a pair is "
        "distinguishing when the counterfactual differs from both, so a subspace that carries only the output "
        "fails it. Choices and statuses use distinguishing pairs (for the output itself, all pairs). Fit and "
        "validation pairs take the source at the base's position; half the test pairs take it from another "
        "position (a count and a fraction of the prefix agree at one position and differ across positions). "
        "Validation and test pairs only move values that some fit pair moves: a subspace is not tested on a "
        "value it was never fitted to move.",
        "Where a variable lives: the earliest residual hook (every hook is searched) where it is readable on live "
        "rows (probes fitted and scored on the fit and validation folds only) and causal on distinguishing "
        "validation pairs; reported relative to the compiled block that writes it.",
        "Identifiability: interventions on the output establish a variable only up to the partition of its "
        "values that the output can see (two values are equivalent when setting either gives the same output on "
        "every sampled live base, by the causal model). 'Computed' also needs its full value readable inside the "
        "causal subspace, beyond untrained networks in a subspace of the same kind and size; otherwise a causal "
        "variable is 'computed up to' its partition: "
        + "; ".join(f"{k}: {v.partition_text}" for k, v in res.variables.items()) + ".",
        f"Uncertainty: 95% bootstrap intervals over input strings (for pairs, base and source strings resampled "
        f"together; the spread of DAS restarts that validation could not tell apart widens them; strata with "
        f"fewer than 5 pairs get no interval). Readable: the lower bound ≥ {READ_OK}; beyond an untrained "
        f"network: lower bound ≥ untrained mean + {MARGIN}; causal: IIA lower bound ≥ {IIA_OK} and above the "
        f"null's 95th percentile; a head matches at agreement lower bound ≥ {MATCH_OK}. An interval across a "
        "threshold gives 'undecided'.",
        f"Decisions: this comparison decides {len(res.variables)} variable statuses, each at 95% on its own; "
        "they are not corrected for multiplicity (Holm). A status is a description of one variable, read with "
        "its interval, not a test of one global claim; a claim resting on several statuses at once should use "
        "the intervals at the Bonferroni level.",
    ])
    settings = "; ".join(f"{k}={tuple(v) if isinstance(v, list) else v}" for k, v in res.settings.to_dict().items())
    doc.p(f"Settings (compare.config.CompareConfig): {settings}.")


def _section_variables(doc: Doc, res: Comparison, figs: dict[str, str]) -> None:
    doc.table(["variable", "status", "output partition", "found here", "IIA distinguishing (n)",
               "IIA all pairs", "chance: copy source / no change", "model copied source", "null mean / p95",
               "read inside subspace (untrained)", "subspace", "live readout", "baselines (live)"],
              [[k, v.status.value, v.partition_text, f"{v.found_hook} ({v.where})",
                (f"{iv.distinguishing.fmt()} ({iv.n_distinguishing})" if iv.decides_on == "distinguishing"
                 else "n/a (the output)") if iv else "n/a",
                iv.test.fmt() if iv else "n/a",
                f"{_f(iv.chance_copy)} / {_f(iv.chance_no_change)}" if iv else "n/a",
                iv.follows_copy.fmt() if iv else "n/a",
                f"{_f(iv.null_mean)} / {_f(iv.null_p95)}" if iv else "n/a",
                f"{iv.subspace_readout.fmt()} ({_f(iv.subspace_untrained)})" if iv else "n/a",
                f"{iv.subspace}, dim {iv.dim}" if iv else "n/a",
                v.readout.live.fmt() if v.readout else "n/a", _baselines(v)]
               for k, v in res.variables.items() for iv in [v.intervention]])
    doc.p("All rows vs live rows at the chosen hook, and the search: validation IIA at each hook tried "
          "(pattern / DAS at the pattern's dimension); the DAS dimension sweep; how much of the pattern subspace "
          "lies in the span of the token and position embeddings.")
    doc.table(["variable", "readout all rows", "readout live rows", "search (hook: readable, pattern, DAS)",
               "DAS sweep (dim: val IIA)", "embedding overlap"],
              [[k, v.readout.all.fmt() if v.readout else "n/a", v.readout.live.fmt() if v.readout else "n/a",
                "; ".join(f"{_short(t.hook)}: {'R' if t.readable else '-'} {_f(t.val_pattern)} {_f(t.val_das)}"
                          for t in v.search),
                ", ".join(f"{d}: {_f(x)}" for d, x in v.intervention.das_sweep.items()) if v.intervention else "n/a",
                _f(v.intervention.embed_overlap) if v.intervention else "n/a"] for k, v in res.variables.items()])
    doc.p("Test IIA on the deciding pairs (distinguishing, but for the output) per kind of pair (source at the "
          "base's position or another), per position and per value set (the source's), with 95% CIs (none below "
          "5 pairs): one average can hide where it fails.")
    doc.table(["variable", "per kind", "per position", "per value"],
              [[k, "; ".join(f"{p}: {_n(e)}" for p, e in v.intervention.per_kind.items()),
                "; ".join(f"{p}: {_n(e)}" for p, e in v.intervention.per_position.items()),
                "; ".join(f"{x}: {_n(e)}" for x, e in v.intervention.per_value.items())]
               for k, v in res.variables.items() if v.intervention])
    rows = [[k, c.name, c.live.fmt(), _f(c.majority_live)] for k, v in res.variables.items() for c in v.coarsenings]
    if rows:
        doc.p("Coarsenings of count variables, read out at the chosen hook on live rows: what a model may keep "
              "instead of the full value.")
        doc.table(["variable", "coarsening", "live readout", "majority"], rows)
    doc.img(figs["readouts"], "Live-row readout per variable and residual hook (left: compiled, right: this model); "
                              "red box: where the compiled block is written, white dot: where the variable is found.")
    doc.img(figs["iia"], "Test IIA at the chosen hook with its 95% CI; black tick: the random-subspace null's 95th "
                         "percentile; dotted line: the causal threshold.")


def _n(e) -> str:
    """``0.93 [0.90, 0.95] (n=40)``; below 5 units the count alone stands beside the value."""
    return e.fmt() if not e.has_ci else f"{e.fmt()} (n={e.n})"


def _short(hook: str) -> str:
    return hook.replace("blocks.", "").replace("hook_resid_", "")


def _section_legal(doc: Doc, res: Comparison) -> None:
    doc.p(f"This model is a language model; its verdict is read as: {res.task_accuracy.readout}. It is "
          "compared on the prefixes its language can produce (a swap at the last position cannot change a verdict "
          "that an earlier improbable token already decided). Beyond the compiled variables, it must know which "
          "next tokens are legal. Cross-validated readout of 'next token is legal', per hook (tokens always or "
          "never legal on these rows are left out).")
    hooks = figures.model_hooks(res)
    doc.table(["next token", *[_short(h) for h in hooks]],
              [[t, *(r.live.fmt() for r in rs)] for t, rs in res.legal_next.items()])


def _section_heads(doc: Doc, res: Comparison, figs: dict[str, str]) -> None:
    hd = res.heads
    doc.p("Pattern agreement = mean over query rows of 1 - total variation distance, BOS column dropped and rows "
          "renormalised, with a 95% CI over input strings; matching: scipy linear_sum_assignment over the non-empty "
          f"compiled heads; a match needs the lower bound ≥ {MATCH_OK}. 'writes' = variables whose held-out live "
          "readout at the end of the head's layer drops by ≥ 0.1 when the head is mean-ablated.")
    doc.table(["compiled head", "SOp", "RASP op", "learned head", "agreement", "uniform head", "match?",
               "compiled head writes", "learned head writes"],
              [[m.compiled, m.sop, m.op, m.learned, m.agreement.fmt(), _f(m.uniform), "yes" if m.is_match else "no",
                ", ".join(f"{k} ({_f(x)})" for k, x in m.compiled_writes.items()) or "-",
                ", ".join(f"{k} ({_f(x)})" for k, x in m.learned_writes.items()) or "-"] for m in hd.matches])
    doc.p("Empty compiled heads (all-zero OV, Tracr padding; not matched): " + (", ".join(map(str, hd.empty_compiled)) or "none")
          + ". Unmatched learned heads: " + (", ".join(
              f"{n} (writes {', '.join(k for k, x in hd.learned_writes[n].items() if x >= 0.1) or 'nothing'})"
              for n in hd.unmatched_learned) or "none") + ".")
    doc.img(figs["heads"], "Head similarity (compiled rows x learned columns) with the optimal matching boxed.")
    if "attention" in figs:
        doc.img(figs["attention"], "Attention patterns: each compiled head beside its matched learned head.")


def _section_ablations(doc: Doc, res: Comparison, figs: dict[str, str]) -> None:
    ab = res.ablation
    doc.p(f"Balanced accuracy (chance {_f(ab.chance)}) and the mean logit difference of the correct class, over the "
          f"comparison rows (95% CIs over input strings). Clean: balanced accuracy {ab.clean.balanced_accuracy.fmt(3)}, "
          f"logit difference {ab.clean.logit_diff.fmt()}, plain accuracy {_f(ab.clean.accuracy, 3)}. Means are "
          "taken over real (non-pad) positions; resample ablation uses another input's activation.")
    doc.table(["ablated", "mode", "balanced accuracy", "drop", "logit diff"],
              [[" ".join(map(str, a.heads)) or "-", a.mode, a.metrics.balanced_accuracy.fmt(3), _f(a.drop, 3),
                a.metrics.logit_diff.fmt()] for a in ab.groups + ab.per_head])
    doc.img(figs["ablation"], "Balanced-accuracy drop when each head is ablated (95% CI of the ablated model).")


def _section_similarity(doc: Doc, res: Comparison, figs: dict[str, str]) -> None:
    doc.img(figs["cka"], "Linear CKA between every compiled and learned residual hook.")
    hooks, maps = res.cka.hooks, res.maps.per_hook
    if not maps:
        doc.p("Linear maps need residual streams of the same width; not computed.")
        return
    doc.p("Linear maps learned -> compiled residual (fit on other folds, applied to held-out rows), read with the "
          "compiled labels: the fraction of the compiled variables present at the hook that decode at ≥ 0.95.")
    doc.table(["hook", "CKA (same hook)", "lstsq R²", "lstsq decodable", "Procrustes R²", "Procrustes decodable"],
              [[h, _f(res.cka.matched_positions[i]), _f(maps["lstsq"][h].r2),
                _f(maps["lstsq"][h].fraction_decodable), _f(maps["procrustes"][h].r2),
                _f(maps["procrustes"][h].fraction_decodable)] for i, h in enumerate(hooks)])


def _section_seeds(doc: Doc, runs: list[Run]) -> None:
    names = list(runs[0].result.variables)
    doc.table(["model", "verdict", *names],
              [[r.label, r.result.summary.verdict,
                *(f"{r.result.variables[n].status.value}; IIA {r.result.variables[n].iia.fmt()}; "
                  f"{r.result.variables[n].found_hook}" for n in names)] for r in runs])
    rows = []
    for n in names:
        vs = [r.result.variables[n] for r in runs]
        iia = [v.iia.value for v in vs if v.iia.defined]
        live = [v.readout.live.value for v in vs if v.readout and v.readout.live.defined]
        counts = {}
        for v in vs:
            counts[v.status.value] = counts.get(v.status.value, 0) + 1
        rows.append([n, f"{_f(np.mean(iia))} ± {_f(np.std(iia))}" if iia else "n/a",
                     f"{_f(np.mean(live))} ± {_f(np.std(live))}" if live else "n/a",
                     ", ".join(f"{k}: {c}/{len(vs)}" for k, c in sorted(counts.items(), key=lambda kv: -kv[1]))])
    doc.table(["variable", "IIA mean ± sd", "live readout mean ± sd", "status counts"], rows)


def _section_controls(doc: Doc, controls: list[ControlResult]) -> None:
    doc.p("Each control can fail. self: the compiled model against itself (every testable variable causal, every "
          "live head matched). disguised: the residual stream mapped by a random rotation, or by a random invertible "
          "non-orthogonal map, heads permuted (same statuses and hooks as self, permutation recovered). untrained: "
          "random weights ('no match', nothing causal). knockout: one compiled head's W_O zeroed (its variable and "
          "everything computed from it lose 'computed'; balanced accuracy drops).")
    doc.table(["control", "expected", "found", "pass"],
              [[c.name, c.expected, c.found, {True: "pass", False: "FAIL", None: "-"}[c.passed]]
               for c in controls if c.name != SEED_VS_SEED])
    ss = next((c for c in controls if c.name == SEED_VS_SEED), None)
    if ss and ss.checks.get("pairs"):
        doc.p("Learned seed vs learned seed: the ceiling of agreement between two trained models.")
        doc.table(["seeds", "mean CKA (same hook)", "mean head agreement (matched)", "output agreement"],
                  [[f"{p['a']} vs {p['b']}", _f(p["cka_mean"]), _f(p["head_score_mean"]), _f(p["output_agreement"], 4)]
                   for p in ss.checks["pairs"]])
    elif ss:
        doc.p("Learned seed vs learned seed: " + ss.checks.get("note", "not run") + ".")


def build_doc(spec: ProgramSpec, data: ReportData, figs: dict[str, str], folder: Path | None = None) -> Doc:
    """The report: the answer, the ranking and one figure on the first screen; every other section collapsed,
    in a fixed order, the Methods last."""
    doc = Doc()
    main = data.runs[0].result
    ranking = data.hypotheses[0].ranking if data.hypotheses else None
    doc.h(1, f"Compiled vs learned: {spec.name}")
    doc.answer(answer(data.runs[0].label, main, spec.name, ranking, data.controls))
    if ranking is not None:
        ranking_table(doc, ranking)
    if "status_graph" in figs:
        shown = ranking.order[0] if ranking is not None else spec.name
        doc.img(figs["status_graph"], f"{shown}'s computation graph, each variable coloured by its status in "
                                      f"{data.runs[0].label} and labelled with the hook where it lives.")

    def section(title: str, write, *args) -> None:
        doc.details(title)
        write(*args)
        doc.end()
    if data.hypotheses:
        section("Which algorithm? The ranking in full", section_which_algorithm, doc, data.hypotheses, figs)
    section(f"Each variable of {spec.name} in words", _section_words, doc, spec, data)
    if main.legal_next:
        section("What a language model needs: legal next tokens", _section_legal, doc, main)
    section("Where each variable lives", _section_variables, doc, main, figs)
    section("Heads", _section_heads, doc, main, figs)
    if main.attention:
        section("What each head looks at", section_attention, doc, main.attention, figs)
    section("Ablations", _section_ablations, doc, main, figs)
    section("Whole-residual similarity", _section_similarity, doc, main, figs)
    if len(data.runs) > 1:
        section("Stability across seeds", _section_seeds, doc, data.runs)
    if folder is not None and (folder / "dynamics" / "dynamics.md").is_file():
        section("How the circuit formed", _dynamics, doc, folder)
    if data.controls:
        section("Controls", _section_controls, doc, data.controls)
    section("Methods", _methods, doc, main)
    return doc


def _section_words(doc: Doc, spec: ProgramSpec, data: ReportData) -> None:
    main, summ = data.runs[0].result, data.runs[0].result.summary
    docs = {v.name: v.doc for v in spec.variables}
    doc.p(f"Verdict ({data.runs[0].label}): {summ.verdict}. {summ.heads_matched}/{summ.heads_compared} non-empty "
          f"compiled heads matched; computed: {', '.join(summ.computed) or 'none'}; computed up to the output "
          f"partition: {', '.join(summ.computed_up_to) or 'none'}; causal but not readable: "
          f"{', '.join(summ.causal_partial) or 'none'}; undecided: {', '.join(summ.undecided) or 'none'}.")
    doc.items([variable_sentence(v, docs.get(k, "")) for k, v in main.variables.items()])
    doc.p(f"Program: {spec.description}. Task accuracy on the comparison rows: compiled "
          f"{_f(main.task_accuracy.compiled, 4)}, this model {_f(main.task_accuracy.model, 4)}. Compiled "
          f"artifact: {data.compiled}; model: {data.runs[0].path}.")


def _dynamics(doc: Doc, folder: Path) -> None:
    """Folds ``make dynamics``' output (kept in ``dynamics/``) into the report."""
    md = folder / "dynamics" / "dynamics.md"
    if not md.is_file():
        return
    for line in md.read_text().splitlines():
        if line.startswith("![") or not line.strip():
            continue
        if line.startswith("#"):
            doc.h(3, line.lstrip("#").strip())
        else:
            doc.p(line)
    if (folder / "dynamics" / "dynamics.png").is_file():
        doc.img("dynamics/dynamics.png", "Training dynamics: accuracy, readouts and IIA per checkpoint.")


def write_report(target: Path, spec: ProgramSpec, data: ReportData) -> Path:
    """Writes the whole report folder atomically; returns the path of report.html.

    A ``dynamics/`` subfolder left by ``make dynamics`` is carried over and folded in.
    """
    target = Path(target)
    with atomic_dir(target) as tmp:
        if (target / "dynamics").is_dir():
            shutil.copytree(target / "dynamics", tmp / "dynamics")
        main = data.runs[0].result
        jobs = figures.comparison_jobs(main, tmp)
        if data.hypotheses:
            ranking = data.hypotheses[0].ranking
            jobs.update(figures.ranking_jobs(ranking, tmp))
            best = ranking.candidates[ranking.order[0]]
            graph = (best.edges, best.comparison, f"{best.program} in {data.runs[0].label}")
        else:
            graph = ([list(e) for e in spec.graph.edges], main, f"{spec.name} in {data.runs[0].label}")
        jobs["status_graph"] = functools.partial(figures.status_graph, *graph, tmp / "status_graph.png")
        figs = figures.draw_all(jobs)
        doc = build_doc(spec, data, figs, tmp)
        (tmp / "report.md").write_text(doc.markdown())
        (tmp / "report.html").write_text(doc.html(tmp, f"Compiled vs learned: {spec.name}"))
        data.figures = sorted(p.name for p in tmp.glob("*.png"))
        write_json(tmp / "compare.json", data.to_json())
        for f in tmp.iterdir():
            f.chmod(0o755 if f.is_dir() else 0o644)
        tmp.chmod(0o755)
    return target / "report.html"


def read_report(path: Path) -> ReportData:
    """``compare.json`` back into a ``ReportData``; one-line errors if it is missing or corrupt."""
    try:
        return ReportData.from_json(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise ToolkitError(f"no {path}; run `make compare` first") from None
    except json.JSONDecodeError as e:
        raise ToolkitError(f"corrupt {path}: {e}") from None
