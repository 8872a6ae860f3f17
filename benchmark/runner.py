"""One job, start to end, as a worker runs it: train (or take the external model), compare, record.

A model whose training already finished with the job's config is not trained again (a job rerun for its
comparison alone, after a method change or a deleted report).

``run_job`` never raises: a failure becomes a ``JobRecord`` with the
exception's message on one line, so the sweep goes on. ``is_done`` is the
resume rule: a job is skipped when its record says it finished with this
spec and version and its artifact and report are still there.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from benchmark import adapter
from benchmark.jobs import Folders, JobSpec
from benchmark.record import VERSION, CandidateScore, JobRecord, JobStatus, Score, Training, read_record
from learned.artifact import write_json


def max_len_of(job: JobSpec) -> int:
    """The input length the job's candidates are compiled at (an external model's own)."""
    if job.external is not None:
        return adapter.model_max_len(Path(job.external))
    return job.budget.max_len or adapter.default_max_len(adapter.task_of(job.language, job.objective))


def is_done(job: JobSpec, folders: Folders) -> bool:
    rec = read_record(folders.record(job))
    return (rec is not None and rec.status is JobStatus.OK and rec.spec == job and rec.version == VERSION
            and (folders.run(job) / "model.json").is_file() and (folders.report(job) / "compare.json").is_file())


def compile_task(task: str, max_len: int, artifacts: Path) -> str | None:
    """Compiles the task's candidates that are missing; the error line, or ``None``."""
    try:
        adapter.compile_missing(adapter.candidates(task), max_len, artifacts)
        return None
    except Exception as e:  # recorded by every job of the task
        return one_line(e)


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or "(no message)"
    return f"{type(e).__name__}: {text}"


def run_job(job: JobSpec, folders: Folders, compiled_error: str | None = None, device: str = "auto") -> str:
    """Runs ``job`` and writes its record; returns the status (``ok`` or ``failed``)."""
    t0 = time.perf_counter()
    task = adapter.task_of(job.language, job.objective)
    try:
        if compiled_error:
            raise RuntimeError(f"candidates of {task} did not compile: {compiled_error}")
        cands = adapter.candidates(task)
        program = adapter.smallest(cands, folders.artifacts)
        run, training = folders.run(job), None
        if job.external is None:
            cfg = adapter.train_config(program, job.objective, job.shape, job.seed, job.budget.steps, max_len_of(job),
                                       job.budget.lr)
            mcfg = adapter.model_config(program, folders.artifacts, job.shape)
            metrics = adapter.finished_training(cfg, run) or adapter.train_run(cfg, mcfg, run, device)
            reached = metrics.get("reached_100") or (metrics.get("moments") or {}).get("stop")
            training = Training(int(metrics["step"]), reached and int(reached["step"]),
                                float(metrics["evaluation"]["sequence_accuracy"]),
                                float(metrics.get("train_seconds", 0.0)))
        data = adapter.compare_run(task, program, run, folders.artifacts, folders.report(job))
        ranking = data.hypotheses[0].ranking
        scores = tuple(CandidateScore(c, adapter.construction(c), Score(ranking.candidates[c].score.value,
                                                                        ranking.candidates[c].score.lo,
                                                                        ranking.candidates[c].score.hi),
                                      ranking.candidates[c].support.value) for c in ranking.order)
        pairs = list(itertools.combinations(ranking.order, 2))
        record = JobRecord(job, JobStatus.OK, program=program, run=str(run), report=str(folders.report(job)),
                           trained=job.external is None, training=training, candidates=scores,
                           told_apart=sum(ranking.told_apart(a, b) for a, b in pairs), pairs=len(pairs))
    except Exception as e:  # any failure is this job's: recorded in one line, the sweep goes on
        record = JobRecord(job, JobStatus.FAILED, error=one_line(e))
    record = JobRecord(**{**record.__dict__, "seconds": round(time.perf_counter() - t0, 3)})
    path = folders.record(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record.to_json())
    return record.status.value


def dynamics_task(job: JobSpec, folders: Folders) -> str | None:
    """Every candidate's score over ``job``'s checkpoints, into ``<benchmark>/dynamics/<key>.json``."""
    try:
        rec = read_record(folders.record(job))
        if rec is None or rec.status is not JobStatus.OK:
            return f"job {job.key} has no result"
        task = adapter.task_of(job.language, job.objective)
        out = adapter.candidate_dynamics(task, rec.program, folders.run(job), folders.artifacts)
        path = folders.benchmark / "dynamics" / f"{job.key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"spec": job.to_dict(), "version": VERSION, **out})
        return None
    except Exception as e:
        return one_line(e)
