"""The one device helper and the one seeding helper."""

from __future__ import annotations

import random

import numpy as np
import torch

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
