"""One compute thread for the duration of a comparison (torch and the BLAS under numpy/scipy).

The helper itself is ``learned.runtime.limit_threads``, which training and
``compiled.bench`` use too; this is the setting every comparison runs under.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from learned.runtime import limit_threads


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Runs the block with one torch thread and one BLAS thread; both are restored on exit."""
    with limit_threads(1, blas=True):
        yield
