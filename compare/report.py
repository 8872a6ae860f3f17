"""Writes ``reports/<program>/``: report.html (self-contained), report.md, compare.json, PNGs.

The report is built from the JSON-ready result only, so every number in it
can be recomputed from ``compare.json``. The folder is written atomically: an
interrupted run leaves the previous report in place.
"""

from __future__ import annotations

import base64
import html
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from compare import figures
from learned.artifact import atomic_dir, write_json
from rasp_programs.spec import ProgramSpec


def clean_json(x: Any) -> Any:
    """numpy scalars to Python, NaN/inf to None, tuples to lists (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean_json(v) for v in x]
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.ndarray):
        return clean_json(x.tolist())
    return x


def _f(x: Any, nd: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{nd}f}"


def _best_iia(v: dict) -> float | None:
    vals = [x for x in (v["iia_readout"], v["iia_das"]) if x is not None and math.isfinite(x)]
    return max(vals) if vals else None


def verdict_sentences(spec: ProgramSpec, res: dict) -> list[str]:
    """Plain-words findings, one per compiled variable, most specific first."""
    docs = {v.name: v.doc for v in spec.variables}
    by_sop = {m["sop"]: m for m in res["heads"]["matches"] if m.get("sop")}
    out = []
    for name, v in res["variables"].items():
        hook = v["aligned_hook"]
        head = by_sop.get(name)
        where = f"{hook}"
        if head and head["is_match"]:
            where += (f", attention in learned head {head['learned']} (matches compiled {head['compiled']}, "
                      f"pattern agreement {_f(head['score'])})")
        elif head:
            where += (f"; no learned head attends like compiled {head['compiled']} "
                      f"(best {head['learned']}, agreement {_f(head['score'])} vs uniform {_f(head['uniform_baseline'])})")
        if v["status"] == "computed":
            out.append(f"The learned model computes {name} ({docs.get(name, '')}) at {where}: readout "
                       f"{_f(v['aligned_score'])} vs baseline {_f(v['baseline'])}, interchange accuracy "
                       f"{_f(_best_iia(v))}.")
        elif v["status"] == "correlational only":
            out.append(f"{name} can be read linearly ({_f(v['aligned_score'])} at {hook}) but swapping that "
                       f"subspace does not act like {name} (IIA {_f(_best_iia(v))}): correlational only.")
        elif v["status"] == "input-level":
            out.append(f"It does not represent {name} separately from its input: {name} is linearly readable "
                       f"from the token and position embeddings alone ({_f(v['readable_from_embeddings'])}), and swapping "
                       f"the subspaces found at {hook} does not act like it (IIA {_f(_best_iia(v))}).")
        elif v["status"] == "coarsened":
            kept = v["readable_coarsenings"]
            what = (f"{kept[0]} (readout {_f(v['coarsenings'][kept[0]]['score'])} at {v['coarsenings'][kept[0]]['hook']})"
                    if kept else "a coarser version")
            out.append(f"It does not represent {name} in full (readout {_f(v['aligned_score'])}, baseline "
                       f"{_f(v['baseline'])}) but keeps {what}; swapping a {v['das_dim']}-dim subspace at {hook} "
                       f"acts like setting {name} on every pair where the output changes (IIA {_f(_best_iia(v))}).")
        elif v["status"] == "readable, not testable":
            out.append(f"{name} can be read linearly ({_f(v['aligned_score'])} at {hook}); no interchange "
                       f"intervention on it has a defined outcome in the program, so it is not tested causally.")
        else:
            kept = v["readable_coarsenings"]
            also = (f"; {kept[0]} is readable ({_f(v['coarsenings'][kept[0]]['score'])}), but no swap reaches "
                    f"IIA 0.9, so that is not shown to be causal" if kept else "")
            out.append(f"It does not represent {name} as a separate variable (best readout "
                       f"{_f(v['best_score'])} at {v['best_hook']}, baseline {_f(v['baseline'])}, "
                       f"IIA {_f(_best_iia(v))}{also}).")
    return out


class Doc:
    """A tiny document model rendered to both Markdown and HTML."""

    def __init__(self) -> None:
        self.blocks: list[tuple] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def items(self, items: list[str]) -> None:
        self.blocks.append(("ul", items))

    def table(self, head: list[str], rows: list[list[Any]]) -> None:
        self.blocks.append(("table", head, [[str(c) for c in r] for r in rows]))

    def img(self, name: str, caption: str) -> None:
        self.blocks.append(("img", name, caption))

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "ul":
                out.append("\n".join(f"- {x}" for x in b[1]))
            elif b[0] == "table":
                out.append("\n".join(["| " + " | ".join(b[1]) + " |", "|" + "---|" * len(b[1])]
                                     + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in b[2]]))
            elif b[0] == "img":
                out.append(f"![{b[2]}]({b[1]})\n\n*{b[2]}*")
        return "\n\n".join(out) + "\n"

    def html(self, folder: Path, title: str) -> str:
        e = html.escape
        out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>"
               "body{font-family:sans-serif;max-width:1150px;margin:2em auto;line-height:1.4}"
               "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
               "td,th{border:1px solid #bbb;padding:3px 6px}th{background:#eee}"
               "img{max-width:100%}figcaption{font-style:italic;font-size:0.9em}</style></head><body>"]
        for b in self.blocks:
            if b[0] == "h":
                out.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                out.append(f"<p>{e(b[1])}</p>")
            elif b[0] == "ul":
                out.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in b[1]) + "</ul>")
            elif b[0] == "table":
                out.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in b[1]) + "</tr>"
                           + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in b[2])
                           + "</table>")
            elif b[0] == "img":
                data = base64.b64encode((folder / b[1]).read_bytes()).decode()
                out.append(f"<figure><img alt='{e(b[2])}' src='data:image/png;base64,{data}'>"
                           f"<figcaption>{e(b[2])}</figcaption></figure>")
        return "\n".join(out) + "</body></html>\n"


def _section_main(doc: Doc, res: dict, figs: dict[str, str]) -> None:
    v = res["variables"]
    doc.h(2, "1. Residual subspaces")
    doc.p("Cross-validated ridge readouts of each compiled variable from every learned residual hook "
          "(accuracy against the majority class; R² against the mean for numerical variables). "
          "'aligned hook' is the earliest hook at or after the compiled writing hook (and, for an upstream "
          "variable, before the learned model's output is readable there, so a swap cannot act through the output "
          "itself) whose readout is within 0.01 of the best there; interventions act there. Dimensions: readout "
          "row space / intervention subspace / compiled block.")
    doc.table(["variable", "compiled op", "compiled writes at", "best learned hook (score)", "at/after compiled?",
               "aligned hook", "readout", "baseline", "dims", "IIA readout subspace", "IIA DAS", "status"],
              [[k, x["op"], x["compiled_written_at"], f"{x['best_hook']} ({_f(x['best_score'])})",
                "yes" if x["best_at_or_after_compiled"] else "no", x["aligned_hook"], _f(x["aligned_score"]),
                _f(x["baseline"]), f"{x['readout_dim']} / {x['intervention_dim']} / {x['compiled_dim']}",
                _f(x["iia_readout"]), _f(x["iia_das"]),
                x["status"] + (" (flag: correlational only)" if x["correlational_only"] else "")]
               for k, x in v.items()])
    crows = [[k, c, x["hook"], _f(x["score"]), _f(x["baseline"]), _f(x["compiled_score"])]
             for k, v_ in v.items() for c, x in v_["coarsenings"].items()]
    if crows:
        doc.p("Coarsenings of integer variables, read out at or after the compiled writing hook: what a model "
              "may keep instead of the full value.")
        doc.table(["variable", "coarsening", "hook", "learned readout", "baseline", "compiled readout"], crows)
    doc.img(figs["readouts"], "Readout score per variable and residual hook (left: compiled, right: learned).")
    doc.img(figs["cka"], "Linear CKA between every compiled and learned residual hook.")
    last = res["cka"]["hooks"][-1]
    doc.p(f"Linear maps learned -> compiled residual, read with the compiled labels (held-out rows). "
          f"Fraction of compiled variables decodable (>= 0.95) through one map at {last}: least squares "
          f"{_f(res['fraction_decodable_one_map']['lstsq'])}, Procrustes {_f(res['fraction_decodable_one_map']['procrustes'])}.")
    hooks = res["cka"]["hooks"]
    doc.table(["hook", "CKA (same hook)", "lstsq R²", "lstsq decodable", "Procrustes R²", "Procrustes decodable"],
              [[h, _f(res["cka"]["matched_positions"][i]), _f(res["maps"]["lstsq"][h]["r2"]),
                _f(res["maps"]["lstsq"][h]["fraction_decodable"]), _f(res["maps"]["procrustes"][h]["r2"]),
                _f(res["maps"]["procrustes"][h]["fraction_decodable"])] for i, h in enumerate(hooks)])

    hd = res["heads"]
    doc.h(2, "2. Heads")
    doc.p("Pattern agreement = mean over query rows of 1 - total variation distance, BOS column dropped and "
          "rows renormalised. Matching: scipy linear_sum_assignment over the non-empty compiled heads. "
          "'writes' = variables whose readout at the end of the head's layer drops by >= 0.1 when the head is "
          "mean-ablated.")
    doc.table(["compiled head", "SOp", "RASP op", "learned head", "agreement", "uniform baseline", "match?",
               "compiled head writes", "learned head writes"],
              [[m["compiled"], m["sop"], m["op"], m["learned"], _f(m["score"]), _f(m["uniform_baseline"]),
                "yes" if m["is_match"] else "no",
                ", ".join(f"{k} ({_f(x)})" for k, x in m["compiled_writes"].items()) or "-",
                ", ".join(f"{k} ({_f(x)})" for k, x in m["learned_writes"].items()) or "-"]
               for m in hd["matches"]])
    doc.p("Empty compiled heads (all-zero OV, Tracr padding; not matched): " + (", ".join(hd["empty_compiled"]) or "none"))
    doc.table(["unmatched learned head", "closest compiled head", "agreement", "writes"],
              [[u["learned"], u["best_compiled"], _f(u["best_score"]),
                ", ".join(f"{k} ({_f(x)})" for k, x in u["writes"].items()) or "-"] for u in hd["unmatched_learned"]])
    doc.img(figs["heads"], "Head similarity (compiled rows x learned columns) with the optimal matching boxed.")
    if "attention" in figs:
        doc.img(figs["attention"], "Attention patterns: each compiled head beside its matched learned head.")

    doc.h(2, "3. Causal checks")
    doc.p("Interchange interventions on effective pairs only (the RASP counterfactual output differs from the "
          "base output); a pair counts when every output position equals the counterfactual.")
    doc.table(["variable", "hook", "pairs (train/test)", "subspace", "IIA readout subspace", "IIA DAS (dim)"],
              [[k, x["aligned_hook"], f"{x['n_pairs_train']}/{x['n_pairs_test']}", x["intervention_subspace"],
                _f(x["iia_readout"]), f"{_f(x['iia_das'])} ({x['das_dim']})"] for k, x in v.items()])
    doc.img(figs["iia"], "Readout score and interchange-intervention accuracy per variable.")
    ab = res["ablation"]
    doc.table(["ablation", "matched heads", "drop", "unmatched heads", "drop"],
              [[mode, " ".join(ab[mode]["matched"]["heads"]) or "-", _f(ab[mode]["matched"]["drop"], 3),
                " ".join(ab[mode]["unmatched"]["heads"]) or "-", _f(ab[mode]["unmatched"]["drop"], 3)]
               for mode in ("mean", "zero")])
    doc.img(figs["ablation"], "Task-accuracy drop when each learned head is ablated.")


def _section_controls(doc: Doc, controls: dict) -> None:
    doc.h(2, "Controls")
    rows = []
    for name in ("self", "disguised", "random"):
        c = controls.get(name)
        if not c:
            continue
        ch = c["checks"]
        rows.append([name, {True: "pass", False: "FAIL"}[c["passed"]], ch["verdict"],
                     _f(ch["min_readout_at_compiled_layer"]), _f(ch["min_iia_readout"]), _f(ch["min_iia_das"]),
                     "; ".join(f"{k}->{x[0]} ({_f(x[1])})" for k, x in ch["head_matches"].items()),
                     {True: "yes", False: "no", None: "-"}[ch.get("permutation_recovered")]])
    doc.table(["control", "result", "verdict", "min readout at compiled hook", "min IIA readout", "min IIA DAS",
               "head matches", "heads recovered"], rows)
    doc.p("self: the compiled model against itself (must be perfect). disguised: residual stream rotated by a "
          "random orthogonal matrix and heads permuted within each layer (must recover the permutation, "
          "readouts and IIA >= 0.99). random: an untrained model (must be 'no match').")
    ss = controls.get("seed_vs_seed", {})
    if ss.get("pairs"):
        doc.p("Learned seed vs learned seed: the ceiling of agreement between two trained models.")
        doc.table(["seeds", "mean CKA (same hook)", "mean head agreement (matched)", "output agreement"],
                  [[f"{p['a']} vs {p['b']}", _f(p["cka_mean"]), _f(p["head_score_mean"]), _f(p["output_agreement"], 4)]
                   for p in ss["pairs"]])
    else:
        doc.p("Learned seed vs learned seed: " + ss.get("note", "not run") + ".")


def build_doc(spec: ProgramSpec, payload: dict, figs: dict[str, str], folder: Path | None = None) -> Doc:
    doc = Doc()
    runs = payload["runs"]
    main = runs[0]["result"]
    summ = main["summary"]
    doc.h(1, f"Compiled vs learned: {spec.name}")
    doc.p(f"Verdict ({runs[0]['label']}): {summ['verdict']}. "
          f"{summ['heads_matched']}/{summ['heads_compared']} non-empty compiled heads matched; "
          f"variables computed: {', '.join(summ['computed']) or 'none'}.")
    doc.items(verdict_sentences(spec, main))
    d = main["data"]
    doc.p(f"Program: {spec.description}. Inputs: {d['n_inputs']} ({'every input' if d['exhaustive'] else 'seeded sample'}"
          f" up to length {d['max_len']}), {d['n_rows']} positions; readouts on {d['readout_rows']} positions; "
          f"ablations on {d['ablation_inputs']} inputs. Task accuracy: compiled {_f(main['task_accuracy']['compiled'], 4)}, "
          f"learned {_f(main['task_accuracy']['learned'], 4)}. Compiled artifact: {payload['compiled']}; "
          f"learned: {runs[0]['path']}. Settings: {main['settings']}.")
    _section_main(doc, main, figs)
    if len(runs) > 1:
        doc.h(2, "Stability across seeds")
        names = list(main["variables"])
        doc.table(["learned model", "verdict", *names, "head matches"],
                  [[r["label"], r["result"]["summary"]["verdict"],
                    *(f"{r['result']['variables'][n]['status']} (read {_f(r['result']['variables'][n]['aligned_score'])}, "
                      f"IIA {_f(_best_iia(r['result']['variables'][n]))})" for n in names),
                    "; ".join(f"{m['compiled']}->{m['learned']} ({_f(m['score'])})" for m in r["result"]["heads"]["matches"])]
                   for r in runs])
        for n in names:
            st = [r["result"]["variables"][n]["status"] for r in runs]
            doc.p(f"{n}: '{max(set(st), key=st.count)}' in {max(st.count(s) for s in set(st))}/{len(st)} seeds.")
    if folder is not None:
        _dynamics(doc, folder)
    if payload.get("controls"):
        _section_controls(doc, payload["controls"])
    return doc


def _dynamics(doc: Doc, folder: Path) -> None:
    """Folds ``make dynamics``' output (kept in ``dynamics/``) into the report."""
    md = folder / "dynamics" / "dynamics.md"
    if not md.is_file():
        return
    doc.h(2, "How the circuit formed")
    for line in md.read_text().splitlines():
        if line.startswith("![") or not line.strip():
            continue
        if line.startswith("#"):
            doc.h(3, line.lstrip("#").strip())
        else:
            doc.p(line)
    if (folder / "dynamics" / "dynamics.png").is_file():
        doc.img("dynamics/dynamics.png", "Training dynamics: accuracy, readouts and IIA per checkpoint.")


def write_report(target: Path, spec: ProgramSpec, payload: dict) -> Path:
    """Writes the whole report folder atomically; returns the path of report.html.

    A ``dynamics/`` subfolder left by ``make dynamics`` is carried over and folded in.
    """
    payload = clean_json(payload)
    target = Path(target)
    with atomic_dir(target) as tmp:
        if (target / "dynamics").is_dir():
            shutil.copytree(target / "dynamics", tmp / "dynamics")
        figs = figures.draw_all(payload["runs"][0]["result"], tmp)
        doc = build_doc(spec, payload, figs, tmp)
        (tmp / "report.md").write_text(doc.markdown())
        (tmp / "report.html").write_text(doc.html(tmp, f"Compiled vs learned: {spec.name}"))
        payload["figures"] = sorted(p.name for p in tmp.glob("*.png"))
        write_json(tmp / "compare.json", payload)
        for f in tmp.iterdir():
            f.chmod(0o755 if f.is_dir() else 0o644)
        tmp.chmod(0o755)
    return Path(target) / "report.html"
