"""Jobs as Ray tasks: connect (a local Ray, or ``RAY_ADDRESS``), submit, follow with a progress bar.

Each job is one Ray task declaring its resources (one CPU; one GPU for
training jobs when the cluster has GPUs), so a GPU node takes the training.
The candidates of each task are compiled first, one Ray task per task, and
the jobs of that task wait for it (its result is their argument). Workers
import this code shipped with the job (``runtime_env.py_modules``), so a
cluster needs the same Python environment, not this checkout. Results go to
the shared folders; a task returns only its status.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import os
import socket
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from tqdm import tqdm

from benchmark import runner
from benchmark.jobs import Folders, JobSpec
from rasp_programs.errors import ToolkitError

PACKAGES = ("benchmark", "rasp_programs", "compiled", "learned", "compare")


@dataclasses.dataclass(frozen=True)
class Progress:
    total: int
    skipped: int = 0
    finished: int = 0
    failed: int = 0


def package_dirs() -> list[str]:
    return [str(Path(importlib.util.find_spec(p).origin).parent) for p in PACKAGES]


def _check_reachable(address: str) -> None:
    """A TCP connection to ``host:port`` (``ray://`` too) within 5 s, so a wrong address fails in one line."""
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if not parsed.hostname or not parsed.port:
        return  # "auto" and the like: ray.init says what it tried
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=5):
            pass
    except OSError as e:
        raise ToolkitError(f"cannot reach the Ray cluster at RAY_ADDRESS={address}: tried a TCP connection to "
                           f"{parsed.hostname}:{parsed.port} ({e.strerror or e})") from None


@contextlib.contextmanager
def connect(address: str | None, workers: int | None) -> Iterator[None]:
    """A local Ray with ``workers`` CPUs (default all cores) when ``address`` is empty, else the cluster at it.

    Raises:
        ToolkitError: an unreachable address (saying what was tried).
    """
    import ray

    env = {"py_modules": package_dirs(), "env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}}
    kw = dict(runtime_env=env, logging_level=logging.ERROR, log_to_driver=False, include_dashboard=False)
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, **kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ToolkitError(f"cannot connect to the Ray cluster at RAY_ADDRESS={address}: "
                               f"{' '.join(str(e).split())[:300]}") from None
    else:
        ray.init(address="local", num_cpus=workers or os.cpu_count(), **kw)
    try:
        yield
    finally:
        ray.shutdown()


def gpus_per_job() -> float:
    """One GPU per training job when the cluster has any."""
    import ray

    return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def execute(jobs: list[JobSpec], folders: Folders, device: str = "auto", progress: bool = True) -> Progress:
    """Runs every job not yet done (``runner.is_done``), in an already connected Ray; returns the counts."""
    import ray

    # seed-major: the first seed of every task runs first and keeps its compiled sides on disk for the others
    todo = sorted((j for j in jobs if not runner.is_done(j, folders)), key=lambda j: j.seed)
    state = Progress(len(jobs), skipped=len(jobs) - len(todo))
    compile_remote = ray.remote(num_cpus=1)(runner.compile_task)
    job_remote = ray.remote(runner.run_job)
    gpus = gpus_per_job()
    compiles, refs = {}, {}
    crashed = 0
    needs = {}
    for j in todo:
        try:
            needs[j] = (runner.adapter.task_of(j.language, j.objective), runner.max_len_of(j))
        except Exception as e:  # e.g. an external model.json without a config: recorded, the sweep goes on
            crashed += 1
            _record_crash(j, folders, e)
            continue
        if needs[j] not in compiles:
            compiles[needs[j]] = compile_remote.remote(*needs[j], folders.artifacts)
    # every compile first: a job passed a compile's ref would start whenever that compile ends, not in order
    errors = dict(zip(compiles, ray.get(list(compiles.values()))))
    for j, need in needs.items():
        options = job_remote.options(num_cpus=1, num_gpus=0 if j.external else gpus, max_retries=0)
        refs[options.remote(j, folders, errors[need], device)] = j
    state = dataclasses.replace(state, finished=crashed, failed=crashed)
    bar = tqdm(total=len(jobs), initial=state.skipped + crashed, desc="benchmark jobs", unit="job",
               disable=not progress)
    cpus = ray.cluster_resources().get("CPU", 1)
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
            for ref in ready:
                job = refs.pop(ref)
                try:
                    status = ray.get(ref)
                except ray.exceptions.RayError as e:  # the worker died: the job never wrote its record
                    status = _record_crash(job, folders, e)
                state = dataclasses.replace(state, finished=state.finished + 1,
                                            failed=state.failed + (status != "ok"))
                bar.update(1)
            busy = cpus - ray.available_resources().get("CPU", 0)
            bar.set_postfix(finished=state.finished + state.skipped, running=int(min(busy, len(refs))),
                            failed=state.failed, skipped=state.skipped)
    finally:
        bar.close()
    return state


def _record_crash(job: JobSpec, folders: Folders, e: Exception) -> str:
    from benchmark.record import JobRecord, JobStatus
    from learned.artifact import write_json

    path = folders.record(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, JobRecord(job, JobStatus.FAILED, error=runner.one_line(e)).to_json())
    return "failed"


def dynamics(job: JobSpec, folders: Folders) -> str | None:
    """The candidates' scores over training for one job (a Ray task); the error line, or ``None``."""
    import ray

    return ray.get(ray.remote(num_cpus=1)(runner.dynamics_task).remote(job, folders))


def empty() -> None:
    return None


def overhead(n: int = 20) -> float:
    """Seconds per empty job, one at a time (Ray's own cost of scheduling and returning a task)."""
    import ray

    task = ray.remote(num_cpus=1)(empty)
    ray.get(task.remote())  # a warm worker
    t0 = time.perf_counter()
    for _ in range(n):
        ray.get(task.remote())
    return (time.perf_counter() - t0) / n
