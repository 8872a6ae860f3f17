"""``compare.parallel.fork_map``: forked children give what one process gives, in order, and errors come back."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from compare.parallel import fork_map
from rasp_programs.errors import ToolkitError


def _work(seed: int) -> tuple[int, np.ndarray, torch.Tensor]:
    """Seeded work of the kind a control does: a QR of a random matrix, in float64."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(64, 64, generator=g, dtype=torch.float64))
    return os.getpid(), np.random.default_rng(seed).standard_normal(5), q


def test_forked_results_equal_one_process_in_order():
    calls = [lambda s=s: _work(s) for s in range(5)]
    serial = fork_map(calls, workers=1)
    forked = fork_map(calls, workers=2)
    assert {pid for pid, _, _ in serial} == {os.getpid()}
    assert os.getpid() not in {pid for pid, _, _ in forked}  # the work really ran in children
    for (_, a, qa), (_, b, qb) in zip(serial, forked):
        assert np.array_equal(a, b) and torch.equal(qa, qb)


def test_errors_come_back():
    def toolkit():
        raise ToolkitError("one clear line")

    def other():
        raise ValueError("boom")
    with pytest.raises(ToolkitError, match="^one clear line$"):
        fork_map([lambda: 1, toolkit], workers=2)
    with pytest.raises(RuntimeError, match="ValueError: boom"):
        fork_map([lambda: 1, other], workers=2)


def test_a_child_that_dies_is_named():
    with pytest.raises(RuntimeError, match="died without an answer"):
        fork_map([lambda: 1, lambda: os._exit(3)], workers=2)
