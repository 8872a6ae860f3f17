"""The benchmark sweep on Ray: tables from the records on disk, resume, failures, determinism, a cluster.

The sweeps (compile, train, compare on local Ray) are slow on the 2-core
machine (minutes each) and marked so; bad input, the resume rule and the
tables from records on disk are quick.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark import tables
from benchmark.__main__ import default_or_positive, main
from benchmark.jobs import Budget, Folders, JobSpec, Shape, expand, parse_shapes
from benchmark.record import CandidateScore, JobRecord, JobStatus, Score, Training, read_record
from benchmark.runner import is_done
from learned.artifact import FORMAT, write_json
from rasp_programs.errors import ToolkitError

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).parent / "ray")  # the venv's ray CLI
TINY = ["--languages", "parity aa", "--objectives", "classifier", "--seeds", "0 1", "--steps", "200",
        "--max-len", "4", "--dynamics", "none", "--no-progress"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line_exit_2(capsys, argv: list[str], *words: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for w in words:
        assert w in err, err


def test_any_spelling_of_zero_means_the_default_learning_rate():
    assert [default_or_positive(t, "--lr") for t in ("", " ", "0", "0.0", "0e0", "3e-3")] == [0, 0, 0, 0, 0, 0.003]
    for bad in ("-0.1", "nan", "x"):
        with pytest.raises(ToolkitError, match="must be a positive number"):
            default_or_positive(bad, "--lr")


# -- bad input: one line, exit 2, before any Ray is started ---------------------------------------------

def test_bad_input(capsys, tmp_path):
    base = ["--artifacts", str(tmp_path / "a"), "--reports", str(tmp_path / "r")]
    _one_line_exit_2(capsys, [*base, "--languages", "parity klingon"], "unknown language 'klingon'")
    _one_line_exit_2(capsys, [*base, "--objectives", "classifier poetry"], "unknown objective 'poetry'")
    for bad in ("gpt2:2x2", "gpt2:2x3x64", "gpt3:1x1x8", "gpt2:0x1x8"):
        _one_line_exit_2(capsys, [*base, "--shapes", bad], "malformed shape")
    for bad in ("-1e-3", "fast", "inf"):
        _one_line_exit_2(capsys, [*base, f"--lr={bad}"], "--lr (LR) must be a positive number")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps([{"folder": "no/such/model", "language": "parity"}]))
    _one_line_exit_2(capsys, [*base, "--external", str(manifest)], "folder", "does not exist")
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_unreachable_ray_address(capsys, tmp_path, monkeypatch):
    port = _free_port()  # nothing listens there
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    t0 = time.perf_counter()
    _one_line_exit_2(capsys, ["--languages", "parity", "--reports", str(tmp_path)], f"RAY_ADDRESS=127.0.0.1:{port}",
                     f"tried a TCP connection to 127.0.0.1:{port}")
    assert time.perf_counter() - t0 < 30


def test_shapes_and_specs_round_trip():
    shapes = parse_shapes("gpt2:2x2x64 gpt2:2x2x64")
    assert [s.tag for s in shapes] == ["compiled", "gpt2-2x2x64"]
    jobs = expand(["parity"], ["classifier", "lm"], shapes, [0, 3], Budget(50, 4))
    assert len({j.key for j in jobs}) == len(jobs) == 8
    assert all(JobSpec.from_dict(json.loads(json.dumps(j.to_dict()))) == j for j in jobs)
    with pytest.raises(ToolkitError):
        parse_shapes("2x2x64")
    # a record written before Budget had a learning rate reads back as the default rate (resume keeps it)
    old = {**jobs[0].to_dict(), "budget": {"steps": 50, "max_len": 4}}
    assert JobSpec.from_dict(old) == jobs[0]


def test_the_learning_rate_reaches_the_training_config():
    from benchmark.adapter import train_config

    base = train_config("parity.counts", "classifier", Shape(), 0, 100, 10)
    assert train_config("parity.counts", "classifier", Shape(), 0, 100, 10, 3e-3).lr == 3e-3 != base.lr
    lm = train_config("parity.counts", "lm", Shape(), 0, 100, 10, 3e-3)
    assert lm.lr == 3e-3 and lm.objective == "lm"


# -- the resume rule and the tables, from records on disk (no Ray) ----------------------------------------

def _fake_job(folders: Folders, job: JobSpec, top: str, support: str, exact: bool,
              score: Score = Score(0.95, 0.91, 0.99)) -> None:
    """A finished job's files: an artifact and a report folder, and its record."""
    for f, name in ((folders.run(job), "model.json"), (folders.report(job), "compare.json")):
        f.mkdir(parents=True, exist_ok=True)
        (f / name).write_text("{}")
    other = "parity.counts" if top == "parity.prefix" else "parity.prefix"
    cons = {"parity.prefix": "parallel prefix", "parity.counts": "counts"}
    rec = JobRecord(job, JobStatus.OK, program="parity.counts", run=str(folders.run(job)),
                    report=str(folders.report(job)), trained=True,
                    training=Training(100, 75 if exact else None, 1.0 if exact else 0.9, 1.0),
                    candidates=(CandidateScore(top, cons[top], score, support),
                                CandidateScore(other, cons[other], Score(0.3, 0.2, 0.4), "not supported")),
                    told_apart=1, pairs=1)
    folders.record(job).parent.mkdir(parents=True, exist_ok=True)
    write_json(folders.record(job), rec.to_json())


def test_resume_rule_and_tables_from_disk(tmp_path):
    folders = Folders(tmp_path / "a", tmp_path / "r")
    jobs = expand(["parity"], ["classifier"], [Shape()], [0, 1, 2], Budget(100, 4))
    plan = [("parity.prefix", "supported", True), ("parity.counts", "undecided", True),
            ("parity.prefix", "not supported", False, Score(0.0, 0.0, 0.02))]  # first, but not above 0
    for j, p in zip(jobs, plan):
        _fake_job(folders, j, *p)
    assert all(is_done(j, folders) for j in jobs)
    other_budget = JobSpec(**{**jobs[0].__dict__, "budget": Budget(101, 4)})
    assert not is_done(other_budget, folders)  # a record of another config is not reused
    shutil.rmtree(folders.report(jobs[1]))
    assert not is_done(jobs[1], folders) and is_done(jobs[0], folders)

    b = tables.build(jobs + [other_budget], folders)
    assert b.missing == (other_budget.key,)
    (w,) = b.wins
    # counted independently from the plan
    assert w.wins == {"parallel prefix": 1, "none": 2} and w.first == {"parallel prefix": 1, "counts": 1, "none": 1}
    (g,) = b.groups
    assert g.share_exact == pytest.approx(2 / 3) and g.median_stop_step == 75 and g.supported == 1
    assert b.heatmap["parity"]["parallel prefix"] == pytest.approx((0.95 + 0.3 + 0.0) / 3)
    out = tables.write(b, folders)
    md = (out / "benchmark.md").read_text()
    assert "| 2 | no | - | parity.prefix | 0.00 [0.00, 0.02] | not supported | 1/1 |" in md
    assert "| classifier | compiled | 3 | 0 (1) | 1 (1) | 2 (67%) | 1 |" in md  # counts, prefix, none, no lead
    back = json.loads((out / "benchmark.json").read_text())
    assert [JobRecord.from_json(j) for j in back["jobs"]] == list(b.jobs)
    assert (out / "benchmark.html").is_file() and (out / "heatmap.png").is_file()


# -- sweeps on Ray (slow) -------------------------------------------------------------------------------

def _env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **extra}
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


def _sweep(art: Path, rep: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "benchmark", *TINY, "--artifacts", str(art), "--reports", str(rep),
                           *args], capture_output=True, text=True, env=env or _env(), cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _fingerprints(*roots: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of every file the jobs wrote: training and comparison rewrite them (atomic renames)."""
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for r in roots for p in sorted(r.glob("*/bench/**/*"))
            if p.is_file()}


def _results(rep: Path) -> tuple[str, list]:
    """The tables, and what must not depend on where or when the jobs ran: every job's record but its times
    and paths."""
    b = json.loads((rep / "benchmark" / "benchmark.json").read_text())
    return (rep / "benchmark" / "benchmark.md").read_text(), [
        {k: v for k, v in j.items() if k not in ("seconds", "run", "report", "training")} | {
            "training": j["training"] and {k: v for k, v in j["training"].items() if k != "seconds"}}
        for j in b["jobs"]]


def _weights(art: Path) -> dict[str, bytes]:
    return {str(p.relative_to(art)): p.read_bytes() for p in sorted(art.glob("*/bench/*/model.safetensors"))}


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """The tiny benchmark on a local Ray with 2 CPUs, plus an external model that cannot load."""
    tmp = tmp_path_factory.mktemp("bench")
    art, rep = tmp / "artifacts", tmp / "reports"
    broken = tmp / "broken_model"
    broken.mkdir()
    manifest = tmp / "manifest.json"
    manifest.write_text(json.dumps([{"folder": "broken_model", "language": "parity"}]))
    # a length-4 model whose config is incomplete: the job raises in its worker when it loads the model
    (broken / "model.json").write_text(json.dumps({"format": FORMAT, "config": {"n_ctx": 5}}))
    done = _sweep(art, rep, "--workers", "2", "--external", str(manifest))
    return tmp, art, rep, manifest, done


@pytest.mark.slow
def test_tiny_benchmark_writes_every_table(first):
    tmp, art, rep, manifest, done = first
    out = rep / "benchmark"
    for name in ("benchmark.json", "benchmark.md", "benchmark.html", "heatmap.png"):
        assert (out / name).is_file(), name
    b = json.loads((out / "benchmark.json").read_text())
    recs = [JobRecord.from_json(j) for j in b["jobs"]]
    ok = [r for r in recs if r.status is JobStatus.OK]
    assert len(ok) == 4 and {r.spec.language for r in ok} == {"parity", "aa"}
    md = (out / "benchmark.md").read_text()
    for lang in ("parity", "aa"):
        assert f"## {lang}, classifier, compiled" in md
    assert "## Which construction wins, across languages" in md
    # every seed of a task is compared on the same inputs and pairs: one record of each compiled candidate
    # compared with itself, shared by both seeds (per seed, there were two)
    cands = {c.program for r in ok for c in r.candidates}
    assert {c: len(list((art / c / "cache").glob("comparison-*.json"))) for c in cands} == {c: 1 for c in cands}
    for r in ok:  # the usual folders, and the table's top candidate is the report's
        assert (Path(r.run) / "model.safetensors").is_file() and (Path(r.report) / "report.html").is_file()
        ranking = json.loads((Path(r.report) / "compare.json").read_text())["hypotheses"][0]["ranking"]
        assert ranking["order"][0] == r.top.program


@pytest.mark.slow
def test_failed_job_is_recorded_and_the_others_finish(first):
    tmp, art, rep, manifest, done = first
    b = json.loads((rep / "benchmark" / "benchmark.json").read_text())
    failed = [JobRecord.from_json(j) for j in b["jobs"] if j["status"] == "failed"]
    assert len(failed) == 1 and failed[0].spec.external is not None
    assert "\n" not in failed[0].error and failed[0].error.startswith("ToolkitError: bad config in ")
    assert failed[0].seconds > 0  # written by the job in its worker, not by the driver
    assert failed[0].error in (rep / "benchmark" / "benchmark.md").read_text()
    assert "4 finished, 1 failed" in (rep / "benchmark" / "benchmark.md").read_text()


@pytest.mark.slow
def test_second_run_skips_every_job_and_a_deleted_job_reruns_alone(first):
    tmp, art, rep, manifest, done = first
    before, results = _fingerprints(art, rep), _results(rep)
    again = _sweep(art, rep, "--workers", "2")
    assert "4 already done, 0 run" in again.stderr
    assert _fingerprints(art, rep) == before  # nothing trained or compared again
    trained_jobs = [j for j in results[1] if j["spec"]["external"] is None]
    assert _results(rep)[1] == trained_jobs
    job = JobSpec("aa", "classifier", Shape(), 1, Budget(200, 4))
    folders = Folders(art, rep)
    shutil.rmtree(folders.run(job))
    shutil.rmtree(folders.report(job))
    third = _sweep(art, rep, "--workers", "2")
    assert "3 already done, 1 run" in third.stderr
    after = _fingerprints(art, rep)
    changed = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    assert changed and all(f"/aa/bench/{job.name}/" in p for p in changed)
    assert read_record(folders.record(job)).trained
    assert _results(rep)[1] == trained_jobs  # the rerun job gives the same result
    # a job whose report is gone but whose training finished with its config is compared again, not retrained
    shutil.rmtree(folders.report(job))
    trained = _fingerprints(art)
    fourth = _sweep(art, rep, "--workers", "2")
    assert "3 already done, 1 run" in fourth.stderr
    assert _fingerprints(art) == trained and (folders.report(job) / "compare.json").is_file()
    assert _results(rep)[1] == trained_jobs


@pytest.mark.slow
def test_one_worker_and_two_give_identical_results(first, tmp_path):
    tmp, art, rep, manifest, done = first
    one_art, one_rep = tmp_path / "artifacts", tmp_path / "reports"
    for c in art.glob("*/compiled"):  # the same compiled candidates; every job from scratch
        shutil.copytree(c, one_art / c.parent.name / "compiled")
    _sweep(one_art, one_rep, "--workers", "1")
    assert _weights(one_art) == _weights(art) and len(_weights(art)) == 4
    ref_jobs = _results(rep)[1]
    assert _results(one_rep)[1] == [j for j in ref_jobs if j["spec"]["external"] is None]


@pytest.mark.slow
def test_two_node_cluster_through_ray_address(first, tmp_path):
    tmp, art, rep, manifest, done = first
    port = _free_port()
    # Ray 2.60 starts clusters with token authentication: every node and the driver share this token
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex()}
    env = _env(**auth)
    procs = []
    try:
        procs.append(subprocess.Popen([RAY, "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
                                       "--include-dashboard=false", "--disable-usage-stats"],
                                      env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        _wait_port(port)
        procs.append(subprocess.Popen([RAY, "start", "--block", f"--address=127.0.0.1:{port}", "--num-cpus=1",
                                       "--disable-usage-stats"], env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(5)
        c_art, c_rep = tmp_path / "artifacts", tmp_path / "reports"
        for c in art.glob("*/compiled"):
            shutil.copytree(c, c_art / c.parent.name / "compiled")
        _sweep(c_art, c_rep, env=_env(RAY_ADDRESS=f"127.0.0.1:{port}", **auth))
    finally:
        for p in reversed(procs):  # only the processes this test started (their own sessions)
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=60)
    assert _weights(c_art) == _weights(art)
    ref_jobs = _results(rep)[1]
    assert _results(c_rep)[1] == [j for j in ref_jobs if j["spec"]["external"] is None]


def _wait_port(port: int, timeout: float = 60) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"ray head did not listen on {port}")


def test_benchmark_imports_no_jax():
    code = ("import pkgutil, importlib, sys, benchmark\n"
            "for m in pkgutil.iter_modules(benchmark.__path__):\n"
            "    importlib.import_module('benchmark.' + m.name)\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('jax', 'haiku', 'tracr', 'ray')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"  # ray too is imported only when a sweep connects
