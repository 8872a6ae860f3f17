"""One compute thread for the duration of a comparison (torch and the BLAS under numpy/scipy).

Every matrix here is tiny (64 x 64 residuals, a few thousand rows). On a
small shared CPU, multithreaded BLAS and torch intra-op threads spend far more
time synchronising than computing: measured on the 2-core dev machine, one
comparison took 14 s with default threads and 3 s with one. The BLAS thread
count is set through the OpenBLAS libraries bundled with numpy and scipy
(found next to the packages, called through ctypes, as threadpoolctl does);
where none is found this is a no-op. Everything is restored on exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
from typing import Iterator

import torch

_PREFIXES = ("scipy_openblas", "openblas")
_SUFFIXES = ("64_", "_64_", "")


def _blas_controls() -> list[tuple]:
    """``(get, set)`` ctypes functions of every bundled OpenBLAS that exposes them."""
    import numpy
    import scipy

    out = []
    for pkg in (numpy, scipy):
        libs = os.path.join(os.path.dirname(os.path.dirname(pkg.__file__)), f"{pkg.__name__}.libs")
        for path in sorted(glob.glob(os.path.join(libs, "*openblas*.so*"))):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix in _PREFIXES:
                for suffix in _SUFFIXES:
                    get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                    put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    if get is not None and put is not None:
                        out.append((get, put))
                        break
                else:
                    continue
                break
    return out


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Runs the block with one torch thread and one BLAS thread."""
    torch_threads = torch.get_num_threads()
    blas = [(get, put, int(get())) for get, put in _blas_controls()]
    torch.set_num_threads(1)
    for _, put, _n in blas:
        put(ctypes.c_int(1))
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        for _, put, n in blas:
            put(ctypes.c_int(n))
