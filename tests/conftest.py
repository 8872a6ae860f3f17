"""Fixtures shared by the test modules."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import pytest

from learned.artifact import save_artifact
from rasp_programs.registry import PROGRAMS, get_program

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` between the processes of one test run (xdist workers)."""
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """An artifacts folder with every program's compiled model: the repo's, else compiled here once per test
    run. The xdist workers share one folder (each program under its own lock) and start at opposite ends of
    the list, so on a fresh clone two workers compile half the programs each instead of all of them twice."""
    if all((ROOT / "artifacts" / p / "compiled" / "model.json").is_file() for p in PROGRAMS):
        return ROOT / "artifacts"
    pytest.importorskip("jax")
    from compiled.compile import compile_program
    from compiled.export import to_torch

    worker_id = os.environ.get("PYTEST_XDIST_WORKER", "master")
    base = tmp_path_factory.getbasetemp()
    root = (base if worker_id == "master" else base.parent) / "compiled-artifacts"
    root.mkdir(parents=True, exist_ok=True)
    order = list(PROGRAMS)
    if worker_id != "master" and int(worker_id.removeprefix("gw")) % 2:
        order.reverse()
    for name in order:
        with _locked(root / f".{name}.lock"):
            if not (root / name / "compiled" / "model.json").is_file():
                spec = get_program(name)
                model, meta = to_torch(compile_program(spec, spec.default_max_len))
                save_artifact(root / name / "compiled", model, meta)
    return root
