"""The shared inputs, per-position variable values and cached activations.

Both models run through the same ``learned.model.Transformer`` on the same
token ids. A *row* is one real (non-BOS, non-pad) position of one input; every
readout, CKA and pattern comparison works on rows, so both models are always
compared on exactly the same (input, position) pairs.

Positions: model position ``t`` (BOS is 0) holds RASP position ``t - 1``.

Shape glossary: B inputs, T positions (BOS included), N rows, D d_model,
H heads, K d_head.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import numpy as np
import torch

from learned.artifact import encode
from learned.model import ModelConfig, Transformer
from rasp_programs.errors import ToolkitError
from rasp_programs.spec import ProgramSpec, Tokens


@dataclasses.dataclass(frozen=True)
class VariableInfo:
    """One compiled variable: its values, its residual block and where it is written.

    Attributes:
        name: SOp name (``count_I``).
        encoding: ``"categorical"`` or ``"numerical"``.
        labels: the compiled residual labels of its block, in residual order.
        dims: residual indices of ``labels`` in the compiled model.
        classes: observed values (categorical), sorted by their string form.
        written_after: index into ``resid_hooks`` of the first residual hook
            that holds the variable in the compiled model.
        op: the RASP operation that computes it.
    """

    name: str
    encoding: str
    labels: tuple[str, ...]
    dims: tuple[int, ...]
    classes: tuple[Any, ...]
    written_after: int
    op: str


@dataclasses.dataclass
class Dataset:
    """Inputs, ids and per-row variable values (see module docstring).

    Attributes:
        inputs: the token tuples.
        exhaustive: whether ``inputs`` are every input up to ``max_len``.
        ids: ``[B, T]`` token ids (BOS first, pads last).
        row_input, row_pos: ``[N]`` input index and model position of each row.
        targets: ``{variable: [N]}`` class index (categorical) or float value.
        outputs: ``[N]`` reference output id of each row.
        variables: ``VariableInfo`` per compiled variable, program order.
        resid_hooks: residual hook names in order (embed, pre/mid, ..., post).
        output_vocab: the models' output values (strings) in id order.
        derived: coarsenings of integer variables (``count_I mod 3``, ``count_bad_M == 0``):
            read out too, so the report can say what a model keeps instead of the full value.
    """

    inputs: list[Tokens]
    exhaustive: bool
    ids: torch.Tensor
    row_input: np.ndarray
    row_pos: np.ndarray
    targets: dict[str, np.ndarray]
    outputs: np.ndarray
    variables: list[VariableInfo]
    resid_hooks: list[str]
    output_vocab: tuple[str, ...]
    derived: list[VariableInfo] = dataclasses.field(default_factory=list)

    @property
    def readout_variables(self) -> list[VariableInfo]:
        return self.variables + self.derived

    @property
    def n_rows(self) -> int:
        return len(self.row_input)

    def var(self, name: str) -> VariableInfo:
        return next(v for v in self.variables if v.name == name)


COARSENINGS = (("== 0", lambda x: (x == 0).astype(np.int64)), ("mod 2", lambda x: x % 2), ("mod 3", lambda x: x % 3))


def resid_hooks(cfg: ModelConfig) -> list[str]:
    """Residual hooks in order; index ``2l + 1`` follows layer ``l``'s attention, ``2l + 2`` its MLP."""
    names = []
    for l in range(cfg.n_layers):
        names += [f"blocks.{l}.hook_resid_pre", f"blocks.{l}.hook_resid_mid"]
    return names + [f"blocks.{cfg.n_layers - 1}.hook_resid_post"]


def output_id(cfg: ModelConfig, value: Any) -> int:
    """Index of a program output value in ``cfg.output_vocab`` (values are stored as strings)."""
    try:
        return cfg.output_vocab.index(str(value))
    except ValueError:
        raise ToolkitError(f"output value {value!r} is not in the model's output vocabulary") from None


def variable_infos(spec: ProgramSpec, meta: dict, values: dict[str, list]) -> list[VariableInfo]:
    """Reads each variable's residual block and writing layer from the compiled ``model.json``.

    Args:
        spec: the program.
        meta: compiled ``model.json`` (``residual_labels``, ``block_map``).
        values: ``{variable: all observed values}`` used for the class list.
    """
    labels = meta["residual_labels"]
    blocks = {b["sop"]: b for b in meta["block_map"]}
    out = []
    for var in spec.variables:
        if var.name not in blocks:
            raise ToolkitError(f"compiled model.json has no block for variable {var.name!r}; rerun `make compile`")
        entry = blocks[var.name]
        dims = tuple(i for i, lab in enumerate(labels) if lab == var.name or lab.startswith(var.name + ":"))
        own = {labels[i] for i in dims}
        written = [b for b in entry["blocks"] if own & set(b["writes"])]
        if not dims or not written:
            raise ToolkitError(f"compiled model.json names no residual block for {var.name!r}")
        last = max(written, key=lambda b: (b["layer"], b["kind"] == "mlp"))
        after = 2 * last["layer"] + (2 if last["kind"] == "mlp" else 1)
        classes = tuple(sorted(set(values[var.name]), key=str)) if entry["encoding"] == "categorical" else ()
        out.append(VariableInfo(var.name, entry["encoding"], tuple(labels[i] for i in dims), dims,
                                classes, after, entry.get("op", "")))
    return out


def build_dataset(spec: ProgramSpec, meta: dict, cfg: ModelConfig, n_inputs: int, seed: int) -> Dataset:
    """Every input up to the compiled ``max_len`` if there are at most ``n_inputs``, else a seeded sample."""
    max_len = int(meta.get("max_len", spec.default_max_len))
    inputs, exhaustive = spec.evaluation_inputs(max_len, n_inputs, seed)
    runs = [spec.run(x) for x in inputs]
    row_input = np.concatenate([np.full(len(x), i) for i, x in enumerate(inputs)])
    row_pos = np.concatenate([np.arange(1, len(x) + 1) for x in inputs])
    flat = {v.name: [val for r in runs for val in r[v.name]] for v in spec.variables}
    variables = variable_infos(spec, meta, flat)
    targets = {}
    for v in variables:
        if v.encoding == "categorical":
            index = {c: i for i, c in enumerate(v.classes)}
            targets[v.name] = np.array([index[x] for x in flat[v.name]], dtype=np.int64)
        else:
            targets[v.name] = np.array(flat[v.name], dtype=np.float64)
    derived = []
    for v in variables:
        if v.encoding != "categorical" or not all(isinstance(c, int) and not isinstance(c, bool) for c in v.classes):
            continue
        values = np.array(flat[v.name])
        for suffix, fn in COARSENINGS:
            coarse = fn(values)
            classes = tuple(sorted(set(coarse.tolist())))
            if 1 < len(classes) < len(v.classes):
                info = dataclasses.replace(v, name=f"{v.name} {suffix}", labels=(), dims=(), classes=classes,
                                           op=f"{v.name} {suffix}")
                derived.append(info)
                targets[info.name] = np.searchsorted(np.array(classes), coarse)
    outputs = np.array([output_id(cfg, y) for x in inputs for y in spec.reference(x)], dtype=np.int64)
    return Dataset(inputs, exhaustive, encode(cfg, inputs), row_input, row_pos, targets, outputs,
                   variables, resid_hooks(cfg), cfg.output_vocab, derived)


@torch.no_grad()
def run_cached(model: Transformer, ids: torch.Tensor, names: Iterable[str],
               hooks: dict | None = None, batch: int = 4096) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits ``[B, T, O]`` and the named activations, run in batches."""
    wanted = set(names)
    logits, caches = [], []
    for i in range(0, len(ids), batch):
        lg, c = model.run_with_cache(ids[i:i + batch], hooks=hooks, names=wanted.__contains__)
        logits.append(lg)
        caches.append(c)
    return torch.cat(logits), {n: torch.cat([c[n] for c in caches]) for n in wanted}


def at_rows(act: torch.Tensor, data: Dataset) -> np.ndarray:
    """``[B, T, ...]`` activation to ``[N, ...]`` float64 numpy at the dataset's rows."""
    return act[torch.from_numpy(data.row_input), torch.from_numpy(data.row_pos)].double().numpy()


def sample_rows(n_rows: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``k`` distinct row indices, sorted (all rows if there are fewer)."""
    if n_rows <= k:
        return np.arange(n_rows)
    return np.sort(rng.choice(n_rows, size=k, replace=False))


def subset(data: Dataset, keep: np.ndarray) -> Dataset:
    """The dataset restricted to the inputs ``keep`` (sorted indices), rows renumbered."""
    new_index = np.full(len(data.inputs), -1)
    new_index[keep] = np.arange(len(keep))
    mask = new_index[data.row_input] >= 0
    return Dataset([data.inputs[i] for i in keep], False, data.ids[torch.from_numpy(keep)],
                   new_index[data.row_input[mask]], data.row_pos[mask],
                   {k: v[mask] for k, v in data.targets.items()}, data.outputs[mask],
                   data.variables, data.resid_hooks, data.output_vocab, data.derived)


def embedding_basis(model: Transformer, max_len: int, tol: float = 1e-6) -> np.ndarray:
    """``[D, e]`` orthonormal basis of what the embeddings write: real token rows and positions 1..max_len.

    Interventions leave this span alone: swapping a variable must not swap the
    raw token or position it was computed from.
    """
    cfg = model.cfg
    real = [i for i, t in enumerate(cfg.vocab) if t not in (cfg.bos_token, cfg.pad_token)]
    w = torch.cat([model.param("embed.W_E")[real], model.param("pos_embed.W_pos")[1:max_len + 1]])
    u, s, _ = np.linalg.svd(w.detach().double().cpu().numpy().T, full_matrices=False)
    return u[:, s > tol * max(float(s.max()), 1e-300)]
