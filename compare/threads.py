"""One compute thread for the duration of a comparison (torch and the BLAS under numpy/scipy).

Every matrix here is tiny (64 x 64 residuals, a few thousand rows). On a
small shared CPU, multithreaded BLAS and torch intra-op threads spend far more
time synchronising than computing: measured on the 2-core dev machine, one
comparison took 14 s with default threads and 3 s with one. BLAS threads are
limited with ``threadpoolctl``; everything is restored on exit.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from threadpoolctl import threadpool_limits


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Runs the block with one torch thread and one BLAS thread."""
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(torch_threads)
