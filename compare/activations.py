"""The shared inputs, rows, splits, live masks and cached activations.

Both models run through the same ``learned.model.Transformer`` on the same
token ids. A *row* is one real position of one input, and every readout,
intervention and pattern comparison works on rows.

* **Distinct rows.** In a causal model the residual at position p depends
  only on the prefix up to p, so rows that share a prefix are copies. For a
  causal program the inputs are therefore the *distinct prefixes* of the
  sampled strings, each with one row (its last position); otherwise the
  inputs are the distinct strings with one row per position.
* **Groups and folds.** Every row belongs to the sampled string it came from
  (a prefix to the first string it was seen in); folds are
  ``sklearn.model_selection.GroupKFold`` over those groups, so no string is
  on both sides of a split. Fold 0 is the *test* split of the interventions,
  fold 1 their *validation* split and the rest their *fit* split.
* **Live rows.** A variable is live at a row when some other value of it
  there changes the program's output (``spec.run`` with an intervention).
  The values tried are those the variable takes at the same position in the
  data (what a same-position swap can set). Statuses are decided on live rows.
* **Inputs.** Every input up to ``max_len`` when there are few; otherwise a
  seeded sample from the program's training mix (``learned.data``), which for
  MIU is rich in well-formed strings, so ``count_I`` is live often.

Positions: model position ``t`` (BOS is 0) holds RASP position ``t - 1``.
Shape glossary: B inputs, T positions (BOS included), N rows, D d_model.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

import numpy as np
import torch
from sklearn.model_selection import GroupKFold

from learned.artifact import encode
from learned.data import build_table
from learned.inference import map_batches
from learned.model import ModelConfig, Transformer
from rasp_programs.errors import ToolkitError
from rasp_programs.spec import ProgramSpec, Tokens

TEST, VAL = 0, 1   # folds: test, validation; every other fold is the fit split
MAX_ALTERNATIVES = 12  # values tried per row when deciding liveness: those seen at its position (a sample if more)


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
        parent: for a coarsening (``count_I mod 3``), the variable it coarsens.
        first_written: index into ``resid_hooks`` after the first block that computes it (a SelectorWidth's
            attention comes before the MLP that writes its own labels).
    """

    name: str
    encoding: str
    labels: tuple[str, ...]
    dims: tuple[int, ...]
    classes: tuple[Any, ...]
    written_after: int
    op: str
    parent: str | None = None
    first_written: int = -1


@dataclasses.dataclass
class Dataset:
    """Inputs, ids and per-row values (see module docstring).

    Attributes:
        inputs: the token tuples run through the models.
        exhaustive: whether the sample was every input up to ``max_len``.
        ids: ``[B, T]`` token ids (BOS first, pads last).
        row_input, row_pos: ``[N]`` input index and model position of each row.
        group: ``[N]`` the sampled string each row came from.
        fold: ``[N]`` the GroupKFold fold of each row.
        values: ``{variable: [N]}`` the program's value (Python objects).
        targets: ``{variable: [N]}`` class index (categorical) or float value.
        live: ``{variable: [N]}`` whether the variable is live at the row.
        control: ``{variable: [N]}`` control-task labels (a random fixed class per (token, position) type).
        outputs: ``[N]`` reference output id of each row.
        variables: ``VariableInfo`` per compiled variable, program order.
        derived: coarsenings of count-like variables (``count_I mod 3``), read out too.
        resid_hooks: residual hook names in order (embed, pre/mid, ..., post).
        output_vocab: the models' output values (strings) in id order.
        causal: the program (and so every row) is causal.
    """

    inputs: list[Tokens]
    exhaustive: bool
    ids: torch.Tensor
    row_input: np.ndarray
    row_pos: np.ndarray
    group: np.ndarray
    fold: np.ndarray
    values: dict[str, list]
    targets: dict[str, np.ndarray]
    live: dict[str, np.ndarray]
    control: dict[str, np.ndarray]
    outputs: np.ndarray
    variables: list[VariableInfo]
    derived: list[VariableInfo]
    resid_hooks: list[str]
    output_vocab: tuple[str, ...]
    causal: bool

    @property
    def readout_variables(self) -> list[VariableInfo]:
        return self.variables + self.derived

    @property
    def n_rows(self) -> int:
        return len(self.row_input)

    def var(self, name: str) -> VariableInfo:
        return next(v for v in self.readout_variables if v.name == name)

    def split(self, name: str) -> np.ndarray:
        """Boolean ``[N]`` mask of the ``"test"``, ``"val"``, ``"fit"`` or ``"train"`` (fit + val) rows."""
        return {"test": self.fold == TEST, "val": self.fold == VAL, "fit": self.fold > VAL,
                "train": self.fold != TEST}[name]


COARSENINGS = (("== 0", lambda x: (x == 0).astype(np.int64)), ("mod 2", lambda x: x % 2), ("mod 3", lambda x: x % 3))


def resid_hooks(cfg: ModelConfig) -> list[str]:
    """Residual hooks in order; index ``2l + 1`` follows layer ``l``'s attention, ``2l + 2`` its MLP."""
    names = []
    for l in range(cfg.n_layers):
        names += [f"blocks.{l}.hook_resid_pre", f"blocks.{l}.hook_resid_mid"]
    return names + [f"blocks.{cfg.n_layers - 1}.hook_resid_post"]


def after_attn(cfg: ModelConfig, layer: int) -> str:
    """The residual hook right after ``layer``'s attention (``resid_hooks`` index ``2 * layer + 1``)."""
    _check_layer(cfg, layer)
    return f"blocks.{layer}.hook_resid_mid"


def after_mlp(cfg: ModelConfig, layer: int) -> str:
    """The residual hook right after ``layer``'s MLP: the next block's ``hook_resid_pre``, or the last block's
    ``hook_resid_post`` (``resid_hooks`` index ``2 * layer + 2``)."""
    _check_layer(cfg, layer)
    return f"blocks.{layer + 1}.hook_resid_pre" if layer + 1 < cfg.n_layers else f"blocks.{layer}.hook_resid_post"


def _check_layer(cfg: ModelConfig, layer: int) -> None:
    if not 0 <= layer < cfg.n_layers:
        raise IndexError(f"layer {layer} out of range for a {cfg.n_layers}-layer model")


def output_id(cfg: ModelConfig, value: Any) -> int:
    """Index of a program output value in ``cfg.output_vocab`` (values are stored as strings)."""
    try:
        return cfg.output_vocab.index(str(value))
    except ValueError:
        raise ToolkitError(f"output value {value!r} is not in the model's output vocabulary") from None


def variable_infos(spec: ProgramSpec, meta: dict, values: dict[str, list]) -> list[VariableInfo]:
    """Reads each variable's residual block and writing layer from the compiled ``model.json``."""
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
        first = min(2 * b["layer"] + (2 if b["kind"] == "mlp" else 1) for b in entry["blocks"])
        classes = tuple(sorted(set(values[var.name]), key=str)) if entry["encoding"] == "categorical" else ()
        out.append(VariableInfo(var.name, entry["encoding"], tuple(labels[i] for i in dims), dims,
                                classes, after, entry.get("op", ""), first_written=first))
    return out


def sample_strings(spec: ProgramSpec, cfg: ModelConfig, max_len: int, n: int, seed: int) -> tuple[list[Tokens], bool]:
    """Every input up to ``max_len`` if there are at most ``n``; else ``n`` distinct draws from the training mix."""
    if spec.num_inputs(max_len) <= n:
        return list(spec.enumerate_inputs(max_len)), True
    table = build_table(spec, cfg, max_len, seed, pool_size=max(2048, n))
    gen = torch.Generator().manual_seed(seed)
    draws = torch.multinomial(table.weights, 4 * n, replacement=True, generator=gen).tolist()
    real = {i: t for i, t in enumerate(cfg.vocab) if t not in (cfg.bos_token, cfg.pad_token)}
    seen: dict[Tokens, None] = {}
    for r in draws:
        seen.setdefault(tuple(real[i] for i in table.ids[r, 1:].tolist() if i in real), None)
        if len(seen) >= n:
            break
    return list(seen), False


def _live(spec: ProgramSpec, tokens: Tokens, pos: int, var: str, current: Any, outputs: list,
          alternatives: list) -> bool:
    """Whether setting ``var`` at RASP position ``pos`` to another value changes the program's output."""
    for alt in alternatives:
        if alt == current:
            continue
        try:
            changed = spec.run(tokens, {var: {pos: alt}})[spec.output] != outputs
        except Exception:  # noqa: BLE001 - an undefined counterfactual (sort) is not a change
            continue
        if changed:
            return True
    return False


def build_dataset(spec: ProgramSpec, meta: dict, cfg: ModelConfig, n_inputs: int, seed: int,
                  n_folds: int = 3, keep: Callable[[Tokens], bool] | None = None) -> Dataset:
    """Samples inputs, builds distinct rows, groups, folds, values, live masks and control labels.

    ``keep``: if given, only inputs (for a causal program, prefixes) it accepts are kept: a language
    model's verdict on a prefix its language cannot produce is read from earlier positions' token
    probabilities, which a swap at the last position cannot change.
    """
    max_len = int(meta.get("max_len", spec.default_max_len))
    strings, exhaustive = sample_strings(spec, cfg, max_len, n_inputs, seed)
    if keep is not None:
        strings = [s[:next((p for p in range(len(s)) if not keep(s[:p + 1])), len(s))] for s in strings]
        strings = list(dict.fromkeys(s for s in strings if s))  # the longest kept prefix of each string
    if spec.causal:  # one input per distinct prefix, grouped with the string it was first seen in
        first: dict[Tokens, int] = {}
        for g, s in enumerate(strings):
            for p in range(1, len(s) + 1):
                first.setdefault(s[:p], g)
        inputs = list(first)
        row_input = np.arange(len(inputs))
        row_pos = np.array([len(x) for x in inputs])
        group = np.array([first[x] for x in inputs])
    else:
        inputs = strings
        row_input = np.concatenate([np.full(len(x), i) for i, x in enumerate(inputs)])
        row_pos = np.concatenate([np.arange(1, len(x) + 1) for x in inputs])
        group = row_input.copy()
    runs = [spec.run(x) for x in inputs]
    values = {v.name: [runs[i][v.name][p - 1] for i, p in zip(row_input, row_pos)] for v in spec.variables}
    variables = variable_infos(spec, meta, values)
    rng = np.random.default_rng(seed)
    targets, live, control = {}, {}, {}
    kinds = [(inputs[i][p - 1], p) for i, p in zip(row_input, row_pos)]  # (token, position) type of each row
    type_ids = np.unique(np.array([f"{t}@{p}" for t, p in kinds]), return_inverse=True)[1]
    for v in variables:
        vals = values[v.name]
        if v.encoding == "categorical":
            index = {c: i for i, c in enumerate(v.classes)}
            targets[v.name] = np.array([index[x] for x in vals], dtype=np.int64)
        else:
            targets[v.name] = np.array(vals, dtype=np.float64)
        # The values tried at a row are those seen at its position (what a same-position swap can set): a
        # sample of all values could miss the one that matters (a fraction's 0 among 33 fractions).
        by_pos: dict[int, list] = {}
        for x, p in zip(vals, row_pos.tolist()):
            by_pos.setdefault(p, []).append(x)
        alts = {}
        for p, xs in by_pos.items():
            seen = sorted(set(xs), key=str)
            alts[p] = (seen if len(seen) <= MAX_ALTERNATIVES else
                       [seen[i] for i in sorted(rng.choice(len(seen), MAX_ALTERNATIVES, replace=False))])
        live[v.name] = np.array([_live(spec, inputs[i], p - 1, v.name, vals[r], runs[i][spec.output], alts[p])
                                 for r, (i, p) in enumerate(zip(row_input, row_pos))])
        # Hewitt & Liang control task: each (token, position) type gets a fixed label drawn from the
        # variable's own distribution.
        per_type = rng.choice(targets[v.name], size=type_ids.max() + 1)
        control[v.name] = per_type[type_ids]
    derived = []
    for v in variables:
        if v.encoding != "categorical" or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0
                                                  for c in v.classes):
            continue  # only counts: -1 % 3 == 2 would merge "none" with "at 2, 5, 8"
        raw = np.array(values[v.name])
        for suffix, fn in COARSENINGS:
            coarse = fn(raw)
            classes = tuple(sorted(set(coarse.tolist())))
            if 1 < len(classes) < len(v.classes):
                info = dataclasses.replace(v, name=f"{v.name} {suffix}", labels=(), dims=(), classes=classes,
                                           op=f"{v.name} {suffix}", parent=v.name)
                derived.append(info)
                targets[info.name] = np.searchsorted(np.array(classes), coarse)
                live[info.name] = live[v.name]
    outputs = np.array([output_id(cfg, runs[i][spec.output][p - 1]) for i, p in zip(row_input, row_pos)])
    n_groups = len(np.unique(group))
    if n_groups < n_folds:
        raise ToolkitError(f"only {n_groups} distinct inputs; the comparison needs at least {n_folds}")
    fold = np.empty(len(row_input), dtype=np.int64)
    for k, (_, test) in enumerate(GroupKFold(n_folds, shuffle=True, random_state=seed).split(row_input, groups=group)):
        fold[test] = k
    return Dataset(inputs, exhaustive, encode(cfg, inputs), row_input, row_pos, group, fold, values, targets,
                   live, control, outputs, variables, derived, resid_hooks(cfg), cfg.output_vocab, spec.causal)


def run_cached(model: Transformer, ids: torch.Tensor, names: Iterable[str], hooks: dict | None = None,
               batch: int = 4096, start: tuple[str, torch.Tensor] | None = None, stop_at: str | None = None
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits ``[B, T, O]`` and the named activations, run in batches (``start``: from that residual
    ``[B, T, D]`` at that hook; ``stop_at``: up to that residual hook, returned instead of the logits;
    ``Transformer.forward``)."""
    wanted = set(names)
    done = [0]  # inputs already run: the start residual's rows are cut like the ids

    def step(chunk: torch.Tensor):
        at = None
        if start is not None:
            at = (start[0], start[1][done[0]:done[0] + len(chunk)].to(chunk.device))
        done[0] += len(chunk)
        return model.run_with_cache(chunk, hooks=hooks, names=wanted.__contains__, start=at, stop_at=stop_at)
    parts = map_batches(model, ids, step, batch)
    return torch.cat([lg for lg, _ in parts]), {n: torch.cat([c[n] for _, c in parts]) for n in wanted}


def at_rows(act: torch.Tensor, data: Dataset) -> np.ndarray:
    """``[B, T, ...]`` activation to ``[N, ...]`` float64 numpy at the dataset's rows."""
    return act[torch.from_numpy(data.row_input), torch.from_numpy(data.row_pos)].double().cpu().numpy()


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
