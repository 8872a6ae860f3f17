"""What a comparison keeps on disk between runs, next to the compiled artifact: ``artifacts/<program>/cache/``.

Three kinds of record, each a JSON file named by a SHA-256 of everything its numbers depend on:

* ``untrained-<key>.json``: the readout scores of ``n_untrained`` random networks shaped like a compared
  model (``compare.context.untrained_baseline``), about a hundred cross-validated probes per shape. The key
  covers the shape, dtype, probe settings and the dataset's rows and labels (``baseline_key``).
* ``comparison-<key>.json``: the comparison of a model fixed by the compiled artifact: the compiled model
  against itself (``Prepared.reference``, a third to a half of a run's time) and the controls' disguised,
  untrained and knocked-out copies (``compare.pipeline.compare_fixed``). Never a learned model's.
* ``readouts-<key>.json``: the compiled side's readouts at every hook.

  The key of these two covers the weights of the compiled and compared models, ``model.json``, the
  ``CompareConfig``, the dataset, the versions of the numerical libraries and the source of the packages
  that compute them (``compare``, ``learned``, ``rasp_programs``), so any change of code recomputes them.

A file that is missing, unreadable or for another key is recomputed and rewritten atomically; a record never
changes a number, only whether it is computed again (``tests/test_compare_unchanged.py`` runs cold and
warm). Delete the folder to start afresh.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from learned.artifact import write_json

VERSION = 2  # bump when a record's meaning changes: old files are then never read

Scores = dict[str, dict[str, tuple[float, float]]]  # variable -> hook -> (mean, sd) over the untrained networks


def folder_of(program: str, artifacts: Path) -> Path:
    """Where a program's records are kept."""
    return Path(artifacts) / program / "cache"


def _dataset(h: "hashlib._Hash", data) -> None:
    """Feeds ``h`` the dataset's rows, folds, variables, labels and live masks."""
    for array in (data.ids.cpu().numpy(), data.row_input, data.row_pos, data.group, data.fold):
        h.update(np.ascontiguousarray(array).tobytes())
    for v in data.variables:
        h.update(f"{v.name}:{v.encoding}".encode())
        h.update(np.ascontiguousarray(data.targets[v.name]).tobytes())
        h.update(np.ascontiguousarray(data.live[v.name]).tobytes())


def baseline_key(shape_key: str, dtype: str, settings: dict, data) -> str:
    """SHA-256 over what the untrained scores depend on: shape, dtype, probe settings, the dataset."""
    h = hashlib.sha256()
    h.update(json.dumps({"version": VERSION, "shape": shape_key, "dtype": dtype, "settings": settings},
                        sort_keys=True).encode())
    _dataset(h, data)
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 of the sources that compute a reference, and of the numerical libraries' versions."""
    import compare
    import learned
    import rasp_programs
    import scipy
    import sklearn
    import torch

    h = hashlib.sha256(json.dumps([np.__version__, torch.__version__, sklearn.__version__,
                                   scipy.__version__]).encode())
    for package in (compare, learned, rasp_programs):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def comparison_key(states: list[dict], meta: dict, settings: dict, data) -> str:
    """SHA-256 over what a comparison of a model fixed by the compiled artifact depends on: the weights of
    the compiled model and of the compared one (``states``), and everything in the module's docstring."""
    h = hashlib.sha256(json.dumps({"version": VERSION, "code": code_digest(), "settings": settings,
                                   "meta": meta}, sort_keys=True, default=str).encode())
    for state in states:
        for name in sorted(state):
            h.update(name.encode())
            h.update(str(state[name].dtype).encode())
            h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    _dataset(h, data)
    return h.hexdigest()


def _load(folder: Path | None, kind: str, key: str) -> Any:
    if folder is None:
        return None
    try:
        record = json.loads((folder / f"{kind}-{key}.json").read_text())
        return record["value"] if record.get("key") == key else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _save(folder: Path | None, kind: str, key: str, value: Any) -> None:
    """Writes atomically; a folder that cannot be written only costs the next run the time."""
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / f"{kind}-{key}.json", {"key": key, "value": value})
    except OSError:
        pass


def load_baseline(folder: Path | None, key: str) -> Scores | None:
    """The untrained scores stored under ``key``, or None (no folder, no file, or one that does not read back)."""
    value = _load(folder, "untrained", key)
    try:
        return None if value is None else {v: {h: (float(m), float(s)) for h, (m, s) in hooks.items()}
                                           for v, hooks in value.items()}
    except (ValueError, TypeError, AttributeError):
        return None


def save_baseline(folder: Path | None, key: str, scores: Scores) -> None:
    _save(folder, "untrained", key, {v: {h: list(ms) for h, ms in hooks.items()} for v, hooks in scores.items()})


def load_comparison(folder: Path | None, key: str) -> Any:
    """A stored comparison (JSON, from ``compare.json_edge.to_json``), or None."""
    value = _load(folder, "comparison", key)
    return value if isinstance(value, dict) else None


def save_comparison(folder: Path | None, key: str, comparison: Any) -> None:
    _save(folder, "comparison", key, comparison)


def load_readouts(folder: Path | None, key: str) -> Any:
    """A model side's stored readouts (JSON: variable -> hook -> ``HookReadout``), or None."""
    value = _load(folder, "readouts", key)
    return value if isinstance(value, dict) else None


def save_readouts(folder: Path | None, key: str, readouts: Any) -> None:
    _save(folder, "readouts", key, readouts)
