"""The whole ``make compare``: load, prepare, compare every model (and rank candidates), controls, report.

``python -m compare`` parses its arguments and calls ``run``; ``compare.bench``
times the same call.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from compare.config import CompareConfig
from compare.controls import run_controls
from compare.hypotheses import rank
from compare.parallel import fork_map
from compare.loading import candidates_of, check_writable, load_compiled, load_models, cache_folder
from compare.pipeline import compare_models, prepare
from compare.report import HypothesisRun, ReportData, Run, write_report
from rasp_programs.errors import ToolkitError
from rasp_programs.registry import expand_hypotheses, get_program


def run(program: str, artifacts: Path, reports: Path, seeds: list[int], learned: list[str] | None,
        config: CompareConfig, controls: bool = True, log=print, runs: str = "learned",
        out: Path | None = None, hypotheses: list[str] | None = None, workers: int | None = None,
        cache_root: Path | None = None) -> Path:
    """The whole ``make compare``; returns the path of report.html (in ``out``, default ``reports/<program>``).

    ``hypotheses``: candidate programs of the same task, ranked against every learned model.
    ``workers``: processes for the independent parts (candidates, controls; ``compare.parallel``); the
    results do not depend on it. ``cache_root``: where each program's records are kept between runs
    (``compare.disk_cache``; default ``<artifacts>/<program>/cache``); they never change a number.
    """
    hypotheses = expand_hypotheses(program, hypotheses or [])  # "auto": derived from the task's automaton
    spec = get_program(program)
    target = out or reports / program
    check_writable(target.parent)
    cands = candidates_of(program, hypotheses or [])
    compiled, meta, models = load_models(program, artifacts, seeds, learned, runs)
    others = {c: load_compiled(c, artifacts) for c in cands if c != program}
    for c, (_, other) in others.items():  # every candidate must see the inputs the learned model is compared on
        if other.get("max_len") != meta.get("max_len"):
            raise ToolkitError(f"candidate '{c}' was compiled at MAX_LEN={other.get('max_len')}, '{program}' at "
                               f"{meta.get('max_len')} (run `make compile PROGRAM={c} MAX_LEN={meta.get('max_len')}`)")
    if any(m.output.members_only for m in models):  # models trained on members (MU-GPT, legal-next): compared
        # where their language is well formed, as make dynamics does
        config = dataclasses.replace(config, well_formed_only=True)
    t0 = time.perf_counter()
    log("preparing: inputs, live rows, pairs, untrained baselines, each compiled model against itself "
        f"({', '.join([program] + list(others))}) ...")
    sources = {program: (compiled, meta), **others}

    def prepared(name: str):  # a ProgramSpec holds functions that do not pickle: it travels by name
        cache = cache_folder(name, artifacts) if cache_root is None else cache_root / name
        return lambda: dataclasses.replace(prepare(get_program(name), *sources[name], config, cache=cache,
                                                   workers=workers), spec=None)
    done_preps = fork_map([prepared(n) for n in sources], workers)
    preps = {n: dataclasses.replace(p, spec=get_program(n)) for n, p in zip(sources, done_preps)}
    prep = preps[program]
    preps = {c: preps[c] for c in cands}
    done, ranked = [], []
    for m in models:
        log(f"comparing {m.label} ({m.path}) ...")
        if cands:
            ranking = rank(preps, m.model, m.output, log, workers)
            ranked.append(HypothesisRun(m.label, m.path, ranking))
            own = ranking.candidates[program].comparison if program in ranking.candidates else None
            done.append(Run(m.label, m.path, own or compare_models(prep, m.model, m.output)))
        else:
            done.append(Run(m.label, m.path, compare_models(prep, m.model, m.output)))
    checks = []
    if controls:
        log("controls: self, disguised copies, untrained, knockout, seed vs seed ...")
        checks = run_controls(prep, config.seed, [m.model for m in models], outputs=[m.output for m in models],
                              workers=workers)
    data = ReportData(program, str(artifacts / program / "compiled"), done, checks, time.perf_counter() - t0,
                      hypotheses=ranked)
    return write_report(target, spec, data)
