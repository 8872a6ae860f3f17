"""What interventions on the output can establish about a variable: its output-relevant partition.

An interchange intervention is scored by the program's output. Two values of
a variable that lead to the same output on every live base cannot be told
apart by any such intervention: swapping one for the other is invisible. On
MIU, ``count_I`` reaches the verdict only through "count mod 3 != 0", so the
partition of its values is {0 mod 3} against {1, 2 mod 3}, and causal
evidence identifies ``count_I`` only up to that partition. A claim about the
full count needs more: the full value readable inside the causal subspace
(``compare.pipeline``).

The partition is computed from the causal model alone (``spec.run`` with an
intervention), on a seeded sample of the variable's live rows: two values are
equivalent when, on every sampled row, setting the variable to either gives
the same output (an undefined counterfactual counts as an output of its own).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compare.activations import Dataset
from rasp_programs.spec import ProgramSpec

MAX_ROWS = 200   # live rows sampled per variable
MAX_MOD = 6      # integer partitions are described as residues modulo up to this


def output_partition(spec: ProgramSpec, data: Dataset, name: str, seed: int,
                     max_rows: int = MAX_ROWS) -> list[list[str]]:
    """The classes of ``name``'s values that the program's output tells apart on live rows.

    Returns:
        Lists of values (as strings, sorted within a class, classes by their first value); one class per
        value when the output sees them all, an empty list when the variable is never live.
    """
    live = np.flatnonzero(data.live[name])
    if not len(live):
        return []
    rows = np.sort(np.random.default_rng(seed).choice(live, size=min(max_rows, len(live)), replace=False))
    values = sorted(set(data.values[name]), key=_order)
    signatures: dict[tuple, list[Any]] = {}
    for x in values:
        sig = []
        for r in rows:
            tokens, pos = data.inputs[data.row_input[r]], int(data.row_pos[r]) - 1
            try:
                sig.append(tuple(spec.run(tokens, {name: {pos: x}})[spec.output]))
            except Exception:  # noqa: BLE001 - an undefined counterfactual is an outcome of its own
                sig.append(None)
        signatures.setdefault(tuple(sig), []).append(x)
    classes = [sorted(c, key=_order) for c in signatures.values()]
    return [[str(x) for x in c] for c in sorted(classes, key=lambda c: _order(c[0]))]


def is_coarser(partition: list[list[str]]) -> bool:
    """Whether the output leaves some values of the variable indistinguishable."""
    return any(len(c) > 1 for c in partition)


def describe(partition: list[list[str]]) -> str:
    """``{0 mod 3} vs {1, 2 mod 3}`` for residues, else ``{0} vs {1, 2, 3}``; ``full`` when nothing merges."""
    if not partition:
        return "not live"
    if not is_coarser(partition):
        return "full (the output tells every value apart)"
    if len(partition) == 1:
        return "none (the output never depends on it)"
    ints = _as_ints(partition)
    if ints is not None:
        for k in range(2, MAX_MOD + 1):
            residues = [{x % k for x in c} for c in ints]
            if all(not (a & b) for i, a in enumerate(residues) for b in residues[i + 1:]):
                if len({frozenset(r) for r in residues}) == len(residues) and sum(map(len, residues)) <= k:
                    return " vs ".join("{" + ", ".join(str(r) for r in sorted(rs)) + f" mod {k}" + "}"
                                       for rs in sorted(residues, key=min))
    return " vs ".join("{" + ", ".join(c if len(c) <= 6 else c[:5] + ["..."]) + "}" for c in partition)


def _as_ints(partition: list[list[str]]) -> list[list[int]] | None:
    try:
        return [[int(x) for x in c] for c in partition]
    except ValueError:
        return None


def _order(x: Any) -> tuple:
    """Numbers in numeric order, everything else by its string."""
    try:
        return (0, float(x), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(x))
