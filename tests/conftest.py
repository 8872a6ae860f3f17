"""Fixtures shared by the test modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from learned.artifact import save_artifact
from rasp_programs.registry import PROGRAMS, get_program

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """An artifacts folder with every program's compiled model (the repo's, else compiled here, once per session)."""
    if all((ROOT / "artifacts" / p / "compiled" / "model.json").is_file() for p in PROGRAMS):
        return ROOT / "artifacts"
    pytest.importorskip("jax")
    from compiled.compile import compile_program
    from compiled.export import to_torch

    root = tmp_path_factory.mktemp("artifacts")
    for name in PROGRAMS:
        spec = get_program(name)
        model, meta = to_torch(compile_program(spec, spec.default_max_len))
        save_artifact(root / name / "compiled", model, meta)
    return root
