"""The one device helper, the one seeding helper and the one thread-limiting helper."""

from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from rasp_programs.errors import ToolkitError


def get_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ToolkitError("DEVICE=cuda was requested but no CUDA GPU is available")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ToolkitError(f"unknown DEVICE {name!r} (use auto, cpu or cuda)")


def seed_everything(seed: int) -> torch.Generator:
    """Seeds python, numpy and torch; returns a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def limit_threads(n: int | None, blas: bool = False) -> Iterator[None]:
    """Runs the block with ``n`` torch intra-op threads (and, with ``blas``, ``n`` BLAS threads under
    numpy/scipy); restores the previous settings on exit. ``n`` of 0 or None leaves everything as it is.

    Every matrix in this project is tiny; on a small shared CPU extra threads
    spend more time synchronising than computing (one comparison: 14 s with
    default threads, 3 s with one; one training step: 327 ms with two spinning
    threads, 25 ms with one).

    Example:
        >>> with limit_threads(1, blas=True):
        ...     torch.get_num_threads()
        1
    """
    if not n:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n, user_api="blas") if blas else contextlib.nullcontext():
            yield
    finally:
        torch.set_num_threads(old)
