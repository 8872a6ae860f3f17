"""The benchmark's tables, from the job records on disk: typed, then ``benchmark.json``, ``.md`` and ``.html``.

Per language, objective and shape: the share of seeds whose model is right on
every input, the median early-stop step, the top-ranked candidate per seed
with its score CI and support, and how many candidate pairs the data told
apart. Across languages: which construction wins how often (the top-ranked
candidate when it is supported, else "none"), and which leads: ranks first with
a score whose CI lies above 0 ("none" when no candidate does).
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmark import figures
from benchmark.jobs import Folders, JobSpec
from benchmark.record import JobRecord, JobStatus, read_record
from compare.document import Doc
from learned.artifact import write_json

NONE = "none"
# The derived constructions, in table order.
CONSTRUCTIONS = ("counts", "window", "parallel prefix", "last reset", "fractions")


@dataclasses.dataclass(frozen=True)
class SeedRow:
    seed: int
    exact: bool | None            # right on every input (None: an external model, not trained here)
    stop_step: int | None
    top: str
    top_score: str
    top_support: str
    told_apart: str


@dataclasses.dataclass(frozen=True)
class GroupTable:
    """One language x objective x shape."""

    language: str
    objective: str
    shape: str
    seeds: tuple[SeedRow, ...]
    share_exact: float
    median_stop_step: float | None
    supported: int
    undecided: int
    failed: int


@dataclasses.dataclass(frozen=True)
class WinTable:
    """Across languages, for one objective and shape: construction -> how many jobs it won (supported) / led
    (ranked first with a score whose CI lies above 0; ``none``: no candidate did)."""

    objective: str
    shape: str
    jobs: int
    wins: dict[str, int]
    first: dict[str, int]


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """The complete typed record of a sweep (``benchmark.json``)."""

    jobs: tuple[JobRecord, ...]
    groups: tuple[GroupTable, ...]
    wins: tuple[WinTable, ...]
    heatmap: dict[str, dict[str, float]]       # row (language, objective) -> construction -> mean score
    supported_cells: dict[str, dict[str, int]]  # row -> construction -> seeds where it is supported
    missing: tuple[str, ...]                   # jobs of the sweep without a record

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["jobs"] = [j.to_json() for j in self.jobs]
        return d

    @property
    def failures(self) -> list[JobRecord]:
        return [j for j in self.jobs if j.status is JobStatus.FAILED]


def _group(recs: list[JobRecord]) -> GroupTable:
    s = recs[0].spec
    ok = sorted((r for r in recs if r.status is JobStatus.OK), key=lambda r: r.spec.seed)
    rows = tuple(SeedRow(r.spec.seed, None if r.training is None else r.training.sequence_accuracy == 1.0,
                         None if r.training is None else r.training.reached_100_step,
                         r.top.program, r.top.score.fmt(), r.top.support, f"{r.told_apart}/{r.pairs}") for r in ok)
    trained = [r for r in rows if r.exact is not None]
    stops = [r.stop_step for r in trained if r.stop_step is not None]
    return GroupTable(s.language, s.objective, s.shape.tag if s.external is None else "external", rows,
                      sum(bool(r.exact) for r in trained) / len(trained) if trained else math.nan,
                      float(statistics.median(stops)) if stops else None,
                      sum(r.top_support == "supported" for r in rows), sum(r.top_support == "undecided" for r in rows),
                      len(recs) - len(ok))


def _row_name(spec: JobSpec, several: bool) -> str:
    return f"{spec.language} ({spec.objective})" if several else spec.language


def build(jobs: list[JobSpec], folders: Folders) -> Benchmark:
    """Reads every job's record (never an object in memory) and builds the tables."""
    recs, missing = [], []
    for j in jobs:
        r = read_record(folders.record(j))
        if r is None or r.spec != j:
            missing.append(j.key)
        else:
            recs.append(r)
    groups: dict[tuple, list[JobRecord]] = {}
    for r in recs:
        groups.setdefault((r.spec.language, r.spec.objective, r.spec.shape, r.spec.external is None), []).append(r)
    ok = [r for r in recs if r.status is JobStatus.OK]
    wins: dict[tuple, WinTable] = {}
    for r in ok:
        key = (r.spec.objective, r.spec.shape.tag if r.spec.external is None else "external")
        w = wins.setdefault(key, WinTable(*key, 0, {}, {}))
        winner = r.top.construction if r.top.support == "supported" else NONE
        w.wins[winner] = w.wins.get(winner, 0) + 1
        lead = r.top.construction if r.top.score.lo > 0 else NONE  # first on a tie at 0 is no lead (nan: none)
        w.first[lead] = w.first.get(lead, 0) + 1
        wins[key] = dataclasses.replace(w, jobs=w.jobs + 1)
    several = len({r.spec.objective for r in ok}) > 1
    scores: dict[str, dict[str, list[float]]] = {}
    supported: dict[str, dict[str, int]] = {}
    for r in ok:
        row = _row_name(r.spec, several)
        for c in r.candidates:
            scores.setdefault(row, {}).setdefault(c.construction, []).append(c.score.value)
            supported.setdefault(row, {}).setdefault(c.construction, 0)
            supported[row][c.construction] += c.support == "supported"
    heat = {row: {c: _mean(v) for c, v in cols.items()} for row, cols in scores.items()}
    return Benchmark(tuple(recs), tuple(_group(g) for g in groups.values()), tuple(wins.values()), heat, supported,
                     tuple(missing))


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{100 * x:.0f}%"


def document(b: Benchmark, figs: dict[str, str]) -> Doc:
    doc = Doc()
    doc.h(1, "Benchmark: which algorithm does gradient descent find?")
    n_ok = sum(j.status is JobStatus.OK for j in b.jobs)
    doc.p(f"{len(b.jobs)} jobs with a record ({n_ok} finished, {len(b.failures)} failed); "
          f"{len(b.missing)} without one. Each job trains one model with early stopping (or takes an external one), "
          f"evaluates it exhaustively and ranks every candidate program of its task at the fast comparison setting. "
          f"Score: null-corrected IIA on distinguishing pairs, 95% CI; a candidate is supported when its lower bound "
          f"is at least 0.9 and no rival beats it head to head.")
    doc.h(2, "Which construction wins, across languages")
    seen = {c for cols in b.heatmap.values() for c in cols} | {c for w in b.wins for c in (*w.wins, *w.first)}
    cons = [c for c in CONSTRUCTIONS if c in seen] + sorted(seen - set(CONSTRUCTIONS) - {NONE})
    doc.p("Each cell: the jobs where the construction is supported, and in brackets those where it ranks first "
          "with a score whose 95% CI lies above 0 (a first place in a tie at 0 is no lead).")
    doc.table(["objective", "shape", "jobs", *[f"{c}: supported (first)" for c in cons], "none supported",
               "no lead above 0"],
              [[w.objective, w.shape, w.jobs, *[f"{w.wins.get(c, 0)} ({w.first.get(c, 0)})" for c in cons],
                f"{w.wins.get(NONE, 0)} ({_pct(w.wins.get(NONE, 0) / w.jobs)})", w.first.get(NONE, 0)]
               for w in b.wins])
    for g in b.groups:
        doc.h(2, f"{g.language}, {g.objective}, {g.shape}")
        doc.p(f"Seeds at 100%: {_pct(g.share_exact)}; median early-stop step: "
              f"{'n/a' if g.median_stop_step is None else f'{g.median_stop_step:g}'}; top candidate supported in "
              f"{g.supported}, undecided in {g.undecided} of {len(g.seeds)}; failed jobs: {g.failed}.")
        doc.table(["seed", "100%", "early stop at", "top-ranked", "score [95% CI]", "support", "told apart"],
                  [[r.seed, {True: "yes", False: "no", None: "-"}[r.exact],
                    "-" if r.stop_step is None else r.stop_step, r.top, r.top_score, r.top_support, r.told_apart]
                   for r in g.seeds])
    for name, caption in figs.items():
        doc.img(name, caption)
    doc.h(2, "Failures")
    if b.failures:
        doc.items([f"{j.spec.key}: {j.error}" for j in b.failures])
    else:
        doc.p("None.")
    if b.missing:
        doc.h(2, "Jobs without a record")
        doc.items(list(b.missing))
    return doc


def write(b: Benchmark, folders: Folders, dynamics: dict | None = None) -> Path:
    """``<REPORTS>/benchmark/{benchmark.json, benchmark.md, benchmark.html, *.png}``, each file replaced
    atomically (the ``jobs/`` and ``dynamics/`` records stay)."""
    target = folders.benchmark
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=".tables-") as name:
        tmp = Path(name)
        figs = figures.heatmap(b.heatmap, b.supported_cells, tmp / "heatmap.png")
        if dynamics:
            figs.update(figures.over_training(dynamics, tmp / "dynamics.png"))
        doc = document(b, figs)
        (tmp / "benchmark.md").write_text(doc.markdown())
        (tmp / "benchmark.html").write_text(doc.html(tmp, "Benchmark"))
        write_json(tmp / "benchmark.json", b.to_json())
        for f in sorted(tmp.iterdir()):
            f.chmod(0o644)
            os.replace(f, target / f.name)  # each file atomically
    return target
