"""The untrained-network readout baselines, kept on disk next to the compiled artifact.

Every comparison reads each variable at each hook of ``n_untrained`` random
networks shaped like the compared model (``compare.context.untrained_baseline``):
about a hundred cross-validated probes per shape, a third of a default run's
time. Those scores depend only on the network shape, the inputs and their
labels, and the probe settings, so they are computed once and kept as JSON in
``artifacts/<program>/untrained/<key>.json``, where ``key`` is a SHA-256 of
all of them (``baseline_key``). A file that is missing, unreadable or for
another key is recomputed and rewritten atomically; it never changes a number,
only whether it is computed again (``tests/test_compare_unchanged.py`` runs
with a cold and a warm cache).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from learned.artifact import write_json

VERSION = 1  # bump when the probes or their scores change meaning: old files are then never read

Scores = dict[str, dict[str, tuple[float, float]]]  # variable -> hook -> (mean, sd) over the untrained networks


def baseline_key(shape_key: str, dtype: str, settings: dict, data) -> str:
    """SHA-256 over what the scores depend on: shape, dtype, probe settings and the dataset's rows and labels."""
    h = hashlib.sha256()
    h.update(json.dumps({"version": VERSION, "shape": shape_key, "dtype": dtype, "settings": settings},
                        sort_keys=True).encode())
    for array in (data.ids.cpu().numpy(), data.row_input, data.row_pos, data.group, data.fold):
        h.update(np.ascontiguousarray(array).tobytes())
    for v in data.variables:
        h.update(f"{v.name}:{v.encoding}".encode())
        h.update(np.ascontiguousarray(data.targets[v.name]).tobytes())
        h.update(np.ascontiguousarray(data.live[v.name]).tobytes())
    return h.hexdigest()


def load(folder: Path | None, key: str) -> Scores | None:
    """The scores stored under ``key``, or None (no folder, no file, or a file that does not read back)."""
    if folder is None:
        return None
    try:
        record = json.loads((folder / f"{key}.json").read_text())
        if record.get("key") != key:
            return None
        return {v: {h: (float(m), float(s)) for h, (m, s) in hooks.items()} for v, hooks in record["scores"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def save(folder: Path | None, key: str, scores: Scores) -> None:
    """Writes the scores atomically; a folder that cannot be written only costs the next run the time."""
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / f"{key}.json", {"key": key, "scores": {v: {h: list(ms) for h, ms in hooks.items()}
                                                                   for v, hooks in scores.items()}})
    except OSError:
        pass
