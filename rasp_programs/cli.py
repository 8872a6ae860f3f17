"""Parsing the values every command line shares, with one-line ``ToolkitError`` messages.

The CLIs (``python -m learned``, ``python -m compare``, ``python -m compare.dynamics``
and the benches) take seeds the same way, so they parse them here.
"""

from __future__ import annotations

import math

from rasp_programs.errors import ToolkitError


def non_negative_int(text: str, what: str) -> int:
    """Parses ``text`` as an integer >= 0, or raises a one-line ``ToolkitError``.

    Example:
        >>> non_negative_int(" 7 ", "--steps")
        7
    """
    try:
        value = int(text.strip())
    except (ValueError, AttributeError):
        raise ToolkitError(f"{what} must be a non-negative integer, got {text!r}") from None
    if value < 0 or text.strip().startswith("+"):
        raise ToolkitError(f"{what} must be a non-negative integer, got {text!r}")
    return value


def positive_float(text: str, what: str) -> float:
    """Parses ``text`` as a finite number > 0, or raises a one-line ``ToolkitError``.

    Example:
        >>> positive_float("3e-3", "--lr")
        0.003
    """
    try:
        value = float(text)
    except (ValueError, TypeError):
        raise ToolkitError(f"{what} must be a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ToolkitError(f"{what} must be a positive number, got {text!r}")
    return value


def parse_seeds(text: str) -> list[int]:
    """``"0 1 2"`` (spaces or commas) -> ``[0, 1, 2]``.

    Raises:
        ToolkitError: empty, not a non-negative integer, or a seed given twice.

    Example:
        >>> parse_seeds("0,1 2")
        [0, 1, 2]
    """
    parts = text.replace(",", " ").split()
    if not parts:
        raise ToolkitError("SEEDS is empty; give at least one non-negative integer, e.g. SEEDS=\"0 1 2\"")
    seeds = [non_negative_int(p, "each seed") for p in parts]
    if len(set(seeds)) != len(seeds):
        raise ToolkitError(f"SEEDS has duplicates: {text!r}")
    return seeds
