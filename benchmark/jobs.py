"""What a job is: frozen specs, parsed from the command line, and where a job writes.

A job is one model: trained here (``language``, ``objective``, ``shape``,
``seed``, ``budget``) or imported (``external``), then compared with every
candidate program of its task. Its randomness comes from its own spec only
(the training seed is ``seed``; the comparison's is ``adapter.COMPARE_SEED``,
the same for every job), so a result never depends on which worker ran it or
in what order.

Folders (the usual artifact and report formats):
    <ARTIFACTS>/<language>/bench/<name>/              the trained run (model.safetensors, model.json, ...)
    <REPORTS>/<language>/bench/<name>/                the comparison report (report.html, compare.json, ...)
    <REPORTS>/benchmark/jobs/<language>__<name>.json  the job's record (``benchmark.record.JobRecord``)
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from rasp_programs.errors import ToolkitError

OBJECTIVES = ("classifier", "lm", "legal-next")
_SHAPE = re.compile(r"gpt2:(\d+)x(\d+)x(\d+)")


@dataclasses.dataclass(frozen=True)
class Shape:
    """``compiled``: the compiled shape of the task's smallest candidate (Tracr architecture);
    ``gpt2``: GPT-2 blocks (layer norm, gelu_new) of ``n_layers`` x ``n_heads`` x ``d_model``."""

    kind: str = "compiled"
    n_layers: int = 0
    n_heads: int = 0
    d_model: int = 0

    @property
    def tag(self) -> str:
        return "compiled" if self.kind == "compiled" else f"gpt2-{self.n_layers}x{self.n_heads}x{self.d_model}"

    @classmethod
    def parse(cls, text: str) -> "Shape":
        """``compiled`` or ``gpt2:LxHxD`` (``D`` divisible by ``H``); a one-line error otherwise."""
        if text == "compiled":
            return cls()
        m = _SHAPE.fullmatch(text)
        if not m:
            raise ToolkitError(f"malformed shape {text!r} in SHAPES; use 'compiled' or gpt2:LAYERSxHEADSxD_MODEL, "
                               f"e.g. gpt2:2x2x64")
        n_layers, n_heads, d_model = (int(g) for g in m.groups())
        if min(n_layers, n_heads, d_model) < 1 or d_model % n_heads:
            raise ToolkitError(f"malformed shape {text!r} in SHAPES: layers, heads and d_model must be positive "
                               f"and d_model divisible by the heads")
        return cls("gpt2", n_layers, n_heads, d_model)


@dataclasses.dataclass(frozen=True)
class Budget:
    """How much each job may spend: training steps (early stopping ends sooner), the input length
    (``max_len``; 0: the task's default) and the peak learning rate (``lr``; 0: the architecture's default)."""

    steps: int = 2000
    max_len: int = 0
    lr: float = 0.0


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """One job. ``external`` (a model folder) replaces training: such a job only compares."""

    language: str
    objective: str
    shape: Shape
    seed: int
    budget: Budget
    external: str | None = None

    @property
    def name(self) -> str:
        if self.external is not None:
            return f"external_{Path(self.external).name}"
        return f"{self.objective}_{self.shape.tag}_seed{self.seed}"

    @property
    def key(self) -> str:
        return f"{self.language}__{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "JobSpec":
        return cls(d["language"], d["objective"], Shape(**d["shape"]), int(d["seed"]), Budget(**d["budget"]),
                   d.get("external"))


@dataclasses.dataclass(frozen=True)
class Folders:
    """Where the stages read and write (shared folders on a cluster)."""

    artifacts: Path
    reports: Path

    def run(self, job: JobSpec) -> Path:
        return Path(job.external) if job.external is not None else self.artifacts / job.language / "bench" / job.name

    def report(self, job: JobSpec) -> Path:
        return self.reports / job.language / "bench" / job.name

    def record(self, job: JobSpec) -> Path:
        return self.benchmark / "jobs" / f"{job.key}.json"

    @property
    def benchmark(self) -> Path:
        return self.reports / "benchmark"


def words(text: str) -> list[str]:
    return text.replace(",", " ").split()


def parse_choice(text: str, known: tuple[str, ...], what: str) -> list[str]:
    """Names from ``text`` (empty: all of ``known``); an unknown one is a one-line error listing ``known``."""
    chosen = list(dict.fromkeys(words(text))) or list(known)
    for c in chosen:
        if c not in known:
            raise ToolkitError(f"unknown {what} {c!r}; known: {', '.join(known)}")
    return chosen


def parse_shapes(text: str) -> list[Shape]:
    """``compiled`` always comes first; ``text`` adds GPT-2 shapes."""
    return list(dict.fromkeys([Shape(), *(Shape.parse(w) for w in text.split())]))


@dataclasses.dataclass(frozen=True)
class External:
    """A model trained elsewhere: its folder (artifact format) and the language whose candidates it is ranked
    against. Its readout is the one its ``model.json`` declares."""

    name: str
    folder: str
    language: str


def read_manifest(path: Path, languages: tuple[str, ...]) -> list[External]:
    """``EXTERNAL=manifest.json``: ``[{"folder": ..., "language": ..., "name": ...?}, ...]`` (relative folders
    are relative to the manifest). One-line errors for a missing folder, an unknown language, bad JSON."""
    try:
        entries = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ToolkitError(f"EXTERNAL manifest {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise ToolkitError(f"EXTERNAL manifest {path} is not JSON: {e}") from None
    if not isinstance(entries, list):
        raise ToolkitError(f"EXTERNAL manifest {path} must be a JSON list of {{folder, language}} entries")
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("folder"), str) or not isinstance(e.get("language"), str):
            raise ToolkitError(f"EXTERNAL manifest {path}, entry {i}: needs \"folder\" and \"language\" strings")
        folder = (Path(path).parent / e["folder"]).resolve()
        if not folder.is_dir():
            raise ToolkitError(f"EXTERNAL manifest {path}, entry {i}: folder {folder} does not exist")
        if e["language"] not in languages:
            raise ToolkitError(f"EXTERNAL manifest {path}, entry {i}: unknown language {e['language']!r}")
        out.append(External(str(e.get("name") or folder.name), str(folder), e["language"]))
    return out


def expand(languages: list[str], objectives: list[str], shapes: list[Shape], seeds: list[int], budget: Budget,
           externals: list[External] = ()) -> list[JobSpec]:
    """Every job of the sweep, in a fixed order (language, objective, shape, seed; then the external models)."""
    jobs = [JobSpec(lang, obj, shape, seed, budget)
            for lang in languages for obj in objectives for shape in shapes for seed in seeds]
    jobs += [JobSpec(e.language, "external", Shape(), 0, budget, e.folder) for e in externals]
    return jobs
