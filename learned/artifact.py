"""The artifact folder: the only interface between stages.

    <dir>/model.safetensors   parameters under TransformerLens names
    <dir>/model.json          {"format", "config": ModelConfig, ...metadata}

Compiled artifacts add ``residual_labels`` (one per residual dimension, in
order) and ``block_map`` (which head/MLP computes which SOp). Learned ones add
their training config. Loading never uses pickle, and every problem (missing
file, truncated file, wrong shape, wrong vocabulary) becomes a one-line
``ToolkitError``. Folders are written to a temporary sibling and renamed into
place, so an interrupted write leaves the previous artifact intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from learned.model import ModelConfig, Transformer
from rasp_programs.errors import ToolkitError

FORMAT = "rasp-compare-artifact/1"
WEIGHTS, META = "model.safetensors", "model.json"


@contextlib.contextmanager
def atomic_dir(target: Path | str) -> Iterator[Path]:
    """Yields a temporary folder that replaces ``target`` only if the block succeeds."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as e:
        raise ToolkitError(f"cannot write to {target.parent}: {e.strerror}") from None
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: Path, obj: Any) -> None:
    """Writes JSON atomically (temp file + rename)."""
    path = Path(path)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(f.name, path)


def save_model(folder: Path, model: Transformer, meta: dict[str, Any]) -> None:
    """Writes ``model.safetensors`` and ``model.json`` into an existing folder."""
    folder = Path(folder)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.tl_state_dict().items()}
    save_file(tensors, str(folder / WEIGHTS))
    write_json(folder / META, {"format": FORMAT, "config": model.cfg.to_dict(), **meta})


def save_artifact(target: Path, model: Transformer, meta: dict[str, Any]) -> None:
    """Writes a whole artifact folder atomically."""
    with atomic_dir(target) as tmp:
        save_model(tmp, model, meta)


def read_meta(folder: Path | str, make_hint: str = "") -> dict[str, Any]:
    folder = Path(folder)
    hint = f" (run `{make_hint}`)" if make_hint else ""
    path = folder / META
    if not path.is_file():
        raise ToolkitError(f"no artifact at {folder}: {META} is missing{hint}")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ToolkitError(f"corrupt {path}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "config" not in meta:
        raise ToolkitError(f"{path} is not a {FORMAT} artifact")
    return meta


def compiled_config(artifacts: Path, program: str) -> tuple[ModelConfig, dict]:
    """The compiled artifact's config (shape and vocabularies); nothing else is read."""
    folder = artifacts / program / "compiled"
    if not (folder / "model.json").is_file():
        raise ToolkitError(f"no compiled artifact at {folder}; run `make compile PROGRAM={program}` first")
    meta = read_meta(folder, make_hint=f"make compile PROGRAM={program}")
    try:
        return ModelConfig.from_dict(meta["config"]), meta
    except (TypeError, ValueError, KeyError) as e:
        raise ToolkitError(f"bad config in {folder / 'model.json'}: {e}; run `make compile`") from None


def load_artifact(folder: Path | str, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                  make_hint: str = "") -> tuple[Transformer, dict[str, Any]]:
    """Loads an artifact folder into a ``Transformer``.

    Raises:
        ToolkitError: missing/corrupt files, or weights that do not fit the config.
    """
    folder = Path(folder)
    meta = read_meta(folder, make_hint)
    try:
        cfg = ModelConfig.from_dict(meta["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise ToolkitError(f"bad config in {folder / META}: {e}") from None
    path = folder / WEIGHTS
    if not path.is_file():
        raise ToolkitError(f"no weights at {path}")
    try:
        sd = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ToolkitError(f"corrupt weights file {path}: {e}") from None
    model = Transformer(cfg)
    try:
        model.load_tl_state_dict(sd)
    except ValueError as e:
        raise ToolkitError(f"weights in {path} do not match model.json: {e}") from None
    return model.to(dtype=dtype, device=device).eval(), meta


def check_compatible(reference: ModelConfig, other: ModelConfig, what: str) -> None:
    """Raises ``ToolkitError`` naming the first field where two configs differ."""
    for field, a in reference.to_dict().items():
        b = other.to_dict()[field]
        if a != b:
            raise ToolkitError(f"{what} does not match the compiled model: {field} is {b!r}, expected {a!r}")


# Each model's own architecture, which a compared model need not share with the compiled one: layer norm,
# activation and GPT-2's details (the inputs, outputs and shapes still must be the same).
OWN_FIELDS = ("act_fn", "normalization_type", "eps", "tied_unembed", "scale_attn_by_inverse_layer_idx")


def check_comparable(reference: ModelConfig, other: ModelConfig, what: str) -> None:
    """``check_compatible`` without ``OWN_FIELDS``: a GPT-2-block model is compared with the compiled one."""
    ours, theirs = reference.to_dict(), other.to_dict()
    for field, a in ours.items():
        if field not in OWN_FIELDS and theirs[field] != a:
            raise ToolkitError(f"{what} does not match the compiled model: {field} is {theirs[field]!r}, expected {a!r}")


def encode(cfg: ModelConfig, inputs: Sequence[Sequence[str]], device: str | torch.device = "cpu") -> torch.Tensor:
    """Token strings to ids ``[B, 1 + max len]``: BOS first, padded at the end.

    Raises:
        ToolkitError: a token outside the vocabulary, or an input longer than ``n_ctx - 1``.
    """
    index = {t: i for i, t in enumerate(cfg.vocab) if t not in (cfg.bos_token, cfg.pad_token)}
    width = 1 + max((len(x) for x in inputs), default=0)
    if width > cfg.n_ctx:
        raise ToolkitError(f"input of length {width - 1} is longer than the model's maximum {cfg.n_ctx - 1}")
    bos, pad = cfg.vocab.index(cfg.bos_token), cfg.vocab.index(cfg.pad_token)
    try:
        rows = [[bos, *(index[t] for t in x), *([pad] * (width - 1 - len(x)))] for x in inputs]
    except KeyError as e:
        raise ToolkitError(f"token {e.args[0]!r} is not in the model's vocabulary {list(index)}") from None
    ids = torch.tensor(rows, dtype=torch.long).reshape(len(inputs), width)
    return ids.to(device)


def decode(cfg: ModelConfig, logits: torch.Tensor) -> list[list[str]]:
    """Logits ``[B, T, O]`` to output strings per position, BOS position dropped."""
    return [[cfg.output_vocab[i] for i in row[1:]] for row in logits.argmax(-1).tolist()]
