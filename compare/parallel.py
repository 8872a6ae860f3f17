"""``fork_map``: independent pieces of a comparison in forked processes, results in order.

The controls and the candidates' preparation do not depend on each other, and every random choice in
them is seeded from the configuration, so running them in separate processes gives the same numbers
as running them one after another. ``fork`` lets each child inherit the prepared state instead of
pickling it; only the results travel back, pickled, through a pipe. Each child computes with one
thread, and so do the calls when they run in this process (``fork`` unavailable, or ``workers`` 1): a
QR decomposition, for one, rounds differently with more threads, and a disguised copy would differ in
its last bits.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import traceback
from typing import Any, Callable, Sequence

from learned.runtime import limit_threads
from rasp_programs.errors import ToolkitError


def default_workers() -> int:
    """The CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _child(call: Callable[[], Any], conn) -> None:
    try:
        with limit_threads(1):
            answer = ("ok", call())
    except BaseException as e:  # noqa: BLE001 - reported in the parent, which raises
        answer = ("error", f"{type(e).__name__}: {e}", traceback.format_exc())
    try:  # plain pickle: torch's own reducer would share tensors through fds that die with this process
        data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # noqa: BLE001
        data = pickle.dumps(("error", f"cannot send the result back: {type(e).__name__}: {e}", ""))
    try:
        conn.send_bytes(data)
    finally:
        conn.close()


def fork_map(calls: Sequence[Callable[[], Any]], workers: int | None = None) -> list[Any]:
    """``[call() for call in calls]``, up to ``workers`` at a time in forked children (default: every CPU).

    A call that raises re-raises here (a ``ToolkitError`` keeps its one-line message); a child that dies
    without answering is an error naming it.
    """
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(calls) <= 1 or "fork" not in mp.get_all_start_methods() or mp.current_process().daemon:
        # (a worker is a daemon process, which may not fork workers of its own: its pieces run in it)
        with limit_threads(1):  # as in a child: LAPACK's results (a QR in a disguise) depend on the thread count
            return [call() for call in calls]
    ctx = mp.get_context("fork")
    results: list[Any] = [None] * len(calls)
    running: list[tuple[int, Any, Any]] = []
    pending = list(enumerate(calls))

    def collect(i: int, proc, conn) -> None:
        try:
            msg = pickle.loads(conn.recv_bytes())
        except EOFError:
            msg = ("error", f"worker for task {i} died without an answer (exit code {proc.exitcode})", "")
        proc.join()
        if msg[0] == "error":
            if msg[1].startswith("ToolkitError: "):
                raise ToolkitError(msg[1].removeprefix("ToolkitError: "))
            raise RuntimeError(f"{msg[1]}\n{msg[2]}")
        results[i] = msg[1]

    try:
        while pending or running:
            while pending and len(running) < workers:
                i, call = pending.pop(0)
                parent, child = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_child, args=(call, child), daemon=True)
                proc.start()
                child.close()
                running.append((i, proc, parent))
            ready = mp.connection.wait([conn for _, _, conn in running])
            for entry in [r for r in running if r[2] in ready]:
                running.remove(entry)
                collect(*entry)
    finally:
        for _, proc, _ in running:
            proc.kill()
    return results
