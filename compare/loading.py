"""Loading what a comparison needs: the compiled model, the models to compare, the candidate programs.

Every check that can fail on the user's input (a missing or corrupt
artifact, an incompatible checkpoint, a candidate of another task, a report
folder that cannot be written) raises a one-line ``ToolkitError`` here, before
any measurement starts.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import torch

from compare import disk_cache
from compare.outputs import OutputReadout, readout_for
from compare.context import check_finite
from compare.vocab import align_inputs, check_inputs
from learned.artifact import load_artifact
from learned.model import Transformer
from rasp_programs.errors import ToolkitError
from rasp_programs.registry import get_program


def check_writable(folder: Path) -> None:
    """Fails early (before minutes of work) if the report folder cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ToolkitError(f"cannot write reports to {folder}: {e.strerror or e}") from None


@dataclasses.dataclass(frozen=True)
class Learned:
    """One model to compare: where it came from, the model, and how its output is read."""

    label: str
    path: str
    model: Transformer
    output: OutputReadout


def cache_folder(program: str, artifacts: Path) -> Path:
    """Where a program's comparison records are kept between runs (``compare.disk_cache``)."""
    return disk_cache.folder_of(program, artifacts)


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
        # its own width, depth, context and token names; inputs aligned to the program's ids by name
        check_inputs(compiled.cfg, model.cfg, int(meta.get("max_len", compiled.cfg.n_ctx - 1)),
                     f"learned checkpoint {folder}")
        model = align_inputs(model, compiled.cfg)
        output = readout_for(model.cfg, model_meta, compiled.cfg.output_vocab, str(folder / "model.json"))
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
