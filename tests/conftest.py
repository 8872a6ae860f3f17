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


class TracrCompiled(dict):
    """Each program compiled with Tracr at its default length on first use, once per test process, so that
    ``-k name`` compiles only that one and the artifacts fixture and tests/test_compiled.py share a compile."""

    def __missing__(self, name):
        from compiled.compile import compile_program

        spec = get_program(name)
        self[name] = compile_program(spec, spec.default_max_len)
        return self[name]

    def all(self) -> list:
        return [self[name] for name in PROGRAMS]


@pytest.fixture(scope="session", autouse=True)
def one_thread_per_process():
    """One torch and one BLAS thread in each test process, as every comparison and training run already
    uses: the xdist workers share two cores, and extra threads there only wait for one another."""
    from learned.runtime import limit_threads

    with limit_threads(1, blas=True):
        yield


@pytest.fixture(scope="session")
def tracr_compiled() -> TracrCompiled:
    pytest.importorskip("jax")
    return TracrCompiled()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory, request) -> Path:
    """An artifacts folder with every program's compiled model: the repo's, else compiled here once per test
    run. The xdist workers share one folder (each program under its own lock) and start at opposite ends of
    the list, so on a fresh clone two workers compile half the programs each instead of all of them twice."""
    if all((ROOT / "artifacts" / p / "compiled" / "model.json").is_file() for p in PROGRAMS):
        return ROOT / "artifacts"
    compiled = request.getfixturevalue("tracr_compiled")  # skips where JAX is not installed
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
                model, meta = to_torch(compiled[name])
                save_artifact(root / name / "compiled", model, meta)
    return root
