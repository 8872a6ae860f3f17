"""``python -m learned.hf``: import a Hugging Face GPT-2 checkpoint as an artifact.

    python -m learned.hf FOLDER --out DIR [--vocab "t1 t2 ..."] [--bos T] [--end T] [--pad T]
        [--unused T ...] [--readout argmax|lm|legal-next] [--program NAME] [--tau-token P --tau-end P]

``FOLDER`` is what ``GPT2LMHeadModel.save_pretrained`` writes: ``config.json``
and ``model.safetensors`` (Conv1D weights stored ``[in, out]``; ``lm_head``
or tied to ``wte``). Only safetensors and JSON are read: no ``transformers``,
never pickle. ``DIR`` gets an artifact in the project's format
(TransformerLens names; ``model.json`` with the config, the vocabulary, the
declared readout and the sha256 of every source file).

Vocabulary: ``tokenizer.json`` or ``vocab.json`` when the folder has one,
else ``--vocab`` (the tokens in id order). Roles are declared, never
guessed: ``--bos`` and ``--pad`` (the pad may be the END token) are
required, ``--end`` for the ``lm`` and ``legal-next`` readouts. With
``--program``, every token must be a token of the program's task, a
declared role, or declared ``--unused``.

Bad input is one line on stderr, exit 2, and nothing written.

    python -m learned.hf --export DIR OUT

writes a GPT-2-block artifact back as a ``GPT2LMHeadModel`` folder
(``config.json``, ``model.safetensors``, ``vocab.json``, and a word-level
``tokenizer.json`` with its ``tokenizer_config.json``) that ``transformers``
and TransformerLens 4's ``TransformerBridge.boot_transformers`` load. An architecture GPT-2 cannot express (no layer
norm, an unembedding bias, bidirectional attention, ...) is refused in one
line that says why.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from learned.artifact import atomic_dir, load_artifact, save_model
from learned.lm import LegalNext, Readout
from learned.model import ModelConfig, Transformer
from rasp_programs.errors import ToolkitError, cli_main

CONFIG, WEIGHTS, PICKLE = "config.json", "model.safetensors", "pytorch_model.bin"
# Hugging Face activation_function -> our act_fn ("gelu_pytorch_tanh" is the same tanh approximation).
ACTIVATIONS = {"gelu_new": "gelu_new", "gelu_pytorch_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}
READOUTS = ("argmax", "lm", "legal-next")
BUFFERS = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers older versions saved; not weights


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` of a GPT-2 folder, checked for what our model can express."""
    path = folder / CONFIG
    if not folder.is_dir():
        raise ToolkitError(f"no such folder: {folder}")
    if not path.is_file():
        raise ToolkitError(f"{folder} has no {CONFIG}; expected a GPT2LMHeadModel folder (save_pretrained)")
    try:
        hf = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ToolkitError(f"corrupt {path}: {e}") from None
    if not isinstance(hf, dict) or hf.get("model_type") != "gpt2":
        kind = hf.get("model_type") if isinstance(hf, dict) else None
        raise ToolkitError(f"{path} has model_type {kind!r}; only GPT-2 (model_type 'gpt2') checkpoints can be imported")
    if hf.get("activation_function", "gelu_new") not in ACTIVATIONS:
        raise ToolkitError(f"{path}: activation_function {hf['activation_function']!r} is not one of {sorted(ACTIVATIONS)}")
    if hf.get("add_cross_attention") or not hf.get("scale_attn_weights", True):
        raise ToolkitError(f"{path}: cross-attention and unscaled attention (scale_attn_weights false) are not supported")
    for key in ("n_embd", "n_head", "n_layer", "n_positions", "vocab_size"):
        if not isinstance(hf.get(key), int) or hf[key] <= 0:
            raise ToolkitError(f"{path}: {key} must be a positive integer, got {hf.get(key)!r}")
    if hf["n_embd"] % hf["n_head"]:
        raise ToolkitError(f"{path}: n_embd {hf['n_embd']} is not a multiple of n_head {hf['n_head']}")
    return hf


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """``model.safetensors`` as float32 tensors, ``transformer.`` prefix removed; never unpickles."""
    path = folder / WEIGHTS
    if not path.is_file():
        if (folder / PICKLE).is_file():
            raise ToolkitError(f"{folder} has only {PICKLE}, a pickle file, which this toolkit never loads; convert "
                               f"it where you trust it: GPT2LMHeadModel.from_pretrained(folder)"
                               f".save_pretrained(folder, safe_serialization=True)")
        if (folder / f"{WEIGHTS}.index.json").is_file():
            raise ToolkitError(f"{folder} holds sharded safetensors; save it as one {WEIGHTS} (max_shard_size large)")
        raise ToolkitError(f"{folder} has no {WEIGHTS}")
    try:
        raw = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ToolkitError(f"corrupt weights file {path}: {e}") from None
    out = {}
    for name, w in raw.items():
        if name.endswith(BUFFERS):
            continue
        if not torch.is_floating_point(w):
            raise ToolkitError(f"{path}: {name} is not a floating-point tensor ({w.dtype})")
        w = w.float()
        if not torch.isfinite(w).all():
            raise ToolkitError(f"{path}: {name} holds NaN or infinite values")
        out[name.removeprefix("transformer.")] = w
    return out


def expected_shapes(hf: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every GPT-2 weight (``transformer.`` prefix removed, ``lm_head`` excluded) with its shape."""
    D, M, V = hf["n_embd"], hf.get("n_inner") or 4 * hf["n_embd"], hf["vocab_size"]
    shapes = {"wte.weight": (V, D), "wpe.weight": (hf["n_positions"], D), "ln_f.weight": (D,), "ln_f.bias": (D,)}
    for l in range(hf["n_layer"]):
        p = f"h.{l}."
        shapes.update({p + "ln_1.weight": (D,), p + "ln_1.bias": (D,), p + "ln_2.weight": (D,), p + "ln_2.bias": (D,),
                       p + "attn.c_attn.weight": (D, 3 * D), p + "attn.c_attn.bias": (3 * D,),
                       p + "attn.c_proj.weight": (D, D), p + "attn.c_proj.bias": (D,),
                       p + "mlp.c_fc.weight": (D, M), p + "mlp.c_fc.bias": (M,),
                       p + "mlp.c_proj.weight": (M, D), p + "mlp.c_proj.bias": (D,)})
    return shapes


def is_tied(hf: Mapping[str, Any], weights: Mapping[str, torch.Tensor]) -> bool:
    """Tied as ``transformers`` decides it: ``tie_word_embeddings`` (default true), else ``lm_head`` is used."""
    return bool(hf.get("tie_word_embeddings", True)) or "lm_head.weight" not in weights


def check_shapes(hf: Mapping[str, Any], weights: Mapping[str, torch.Tensor], where: Path) -> None:
    shapes = expected_shapes(hf)
    if not is_tied(hf, weights):
        shapes["lm_head.weight"] = (hf["vocab_size"], hf["n_embd"])
    for name, shape in shapes.items():
        if name not in weights:
            raise ToolkitError(f"{where}: weight {name} is missing (config.json says {hf['n_layer']} layers)")
        if tuple(weights[name].shape) != shape:
            raise ToolkitError(f"config.json and weights disagree: {name} has shape {tuple(weights[name].shape)}, "
                               f"config.json implies {shape}")
    extra = sorted(set(weights) - set(shapes) - {"lm_head.weight"})
    if extra:
        raise ToolkitError(f"{where}: unexpected weights {extra[:3]} (config.json says {hf['n_layer']} layers)")


def to_tl(hf: Mapping[str, Any], weights: Mapping[str, torch.Tensor], tied: bool) -> dict[str, torch.Tensor]:
    """GPT-2 weights -> TransformerLens names and shapes (``[n_heads, d_model, d_head]`` etc.)."""
    D, H = hf["n_embd"], hf["n_head"]
    K = D // H
    out = {"embed.W_E": weights["wte.weight"], "pos_embed.W_pos": weights["wpe.weight"],
           "ln_final.w": weights["ln_f.weight"], "ln_final.b": weights["ln_f.bias"],
           "unembed.b_U": torch.zeros(hf["vocab_size"])}  # GPT-2's lm_head has no bias
    if not tied:
        out["unembed.W_U"] = weights["lm_head.weight"].T  # [D, V]
    for l in range(hf["n_layer"]):
        p, q = f"h.{l}.", f"blocks.{l}."
        w_qkv = weights[p + "attn.c_attn.weight"].reshape(D, 3, H, K)  # Conv1D: [in, out]
        b_qkv = weights[p + "attn.c_attn.bias"].reshape(3, H, K)
        for i, n in enumerate("QKV"):
            out[q + f"attn.W_{n}"] = w_qkv[:, i].permute(1, 0, 2)  # [H, D, K]
            out[q + f"attn.b_{n}"] = b_qkv[i]  # [H, K]
        out[q + "attn.W_O"] = weights[p + "attn.c_proj.weight"].reshape(H, K, D)
        out[q + "attn.b_O"] = weights[p + "attn.c_proj.bias"]
        for ln, hln in (("ln1", "ln_1"), ("ln2", "ln_2")):
            out[q + f"{ln}.w"], out[q + f"{ln}.b"] = weights[p + f"{hln}.weight"], weights[p + f"{hln}.bias"]
        out[q + "mlp.W_in"], out[q + "mlp.b_in"] = weights[p + "mlp.c_fc.weight"], weights[p + "mlp.c_fc.bias"]
        out[q + "mlp.W_out"], out[q + "mlp.b_out"] = weights[p + "mlp.c_proj.weight"], weights[p + "mlp.c_proj.bias"]
    return {k: v.contiguous() for k, v in out.items()}


def read_vocab(folder: Path, given: Sequence[str] | None, size: int) -> tuple[str, ...]:
    """The tokens in id order: from ``tokenizer.json`` / ``vocab.json``, else ``--vocab``; they must agree."""
    found, source = None, None
    for name in ("tokenizer.json", "vocab.json"):
        path = folder / name
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ToolkitError(f"corrupt {path}: {e}") from None
            ids = dict(data.get("model", {}).get("vocab", {})) if name == "tokenizer.json" else dict(data)
            if name == "tokenizer.json":
                ids.update({t["content"]: t["id"] for t in data.get("added_tokens", [])})
            if sorted(ids.values()) != list(range(len(ids))):
                raise ToolkitError(f"{path}: token ids are not 0..{len(ids) - 1} (merges-based BPE vocabularies "
                                   f"are not supported; give --vocab)")
            found, source = tuple(sorted(ids, key=ids.get)), path
            break
    if given is not None:
        given = tuple(given)
        if found is not None and given != found:
            raise ToolkitError(f"--vocab disagrees with {source}: {list(given)[:6]} vs {list(found)[:6]}")
        found, source = given, "--vocab"
    if found is None:
        raise ToolkitError(f"{folder} has no tokenizer.json or vocab.json; give the tokens in id order with --vocab")
    if len(found) != size:
        raise ToolkitError(f"{source} has {len(found)} tokens, the model has vocab_size {size}")
    if len(set(found)) != len(found):
        raise ToolkitError(f"{source} names a token twice")
    return found


def check_tokens(vocab: Sequence[str], roles: Mapping[str, str | None], unused: Sequence[str],
                 task_vocab: Sequence[str] | None, task: str | None) -> None:
    """Roles name tokens of the vocabulary; with a task, every token is the task's, a role, or ``--unused``."""
    for role, token in roles.items():
        if token is not None and token not in vocab:
            raise ToolkitError(f"--{role} {token!r} is not in the vocabulary {list(vocab)}")
    for token in unused:
        if token not in vocab:
            raise ToolkitError(f"--unused {token!r} is not in the vocabulary {list(vocab)}")
    if task_vocab is None:
        return
    known = set(task_vocab) | {t for t in roles.values() if t is not None} | set(unused)
    for token in vocab:
        if token not in known:
            raise ToolkitError(f"token {token!r} is not a token of task {task!r} ({list(task_vocab)}) nor a declared "
                               f"role; declare it with --unused if the model never needs it")
    missing = [t for t in task_vocab if t not in vocab]
    if missing:
        raise ToolkitError(f"the model's vocabulary lacks task {task!r}'s tokens {missing}")


def provenance(folder: Path) -> dict[str, Any]:
    """The source folder and the sha256 of each of its files."""
    hashes = {}
    for path in sorted(folder.iterdir()):
        if path.is_file():
            h = hashlib.sha256()
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            hashes[path.name] = h.hexdigest()
    return {"source": str(folder.resolve()), "importer": "learned.hf", "sha256": hashes}


def import_checkpoint(folder: Path | str, out: Path | str, *, vocab: Sequence[str] | None = None, bos: str | None = None,
                      end: str | None = None, pad: str | None = None, unused: Sequence[str] = (),
                      readout: str = "legal-next", program: str | None = None, tau_token: float | None = None,
                      tau_end: float | None = None) -> Transformer:
    """Imports a ``GPT2LMHeadModel`` folder into an artifact at ``out``; returns the model.

    Everything is checked before anything is written (module docstring).

    Raises:
        ToolkitError: any bad input, in one line.
    """
    folder = Path(folder)
    hf = read_config(folder)
    weights = read_weights(folder)
    check_shapes(hf, weights, folder / WEIGHTS)
    tokens = read_vocab(folder, vocab, hf["vocab_size"])
    if readout not in READOUTS:
        raise ToolkitError(f"--readout must be one of {list(READOUTS)}, got {readout!r}")
    if bos is None or pad is None:
        raise ToolkitError("declare the roles: --bos TOKEN and --pad TOKEN (the pad may be the END token)")
    if readout != "argmax" and end is None:
        raise ToolkitError(f"--readout {readout} needs --end TOKEN")
    task_vocab = task_name = None
    if program is not None:
        from rasp_programs.registry import get_program  # only when asked: the registry is not needed otherwise
        task = get_program(program).task
        task_vocab, task_name = task.vocab, task.name
    check_tokens(tokens, {"bos": bos, "end": end, "pad": pad}, unused, task_vocab, task_name)
    tied = is_tied(hf, weights)
    cfg = ModelConfig(n_layers=hf["n_layer"], n_heads=hf["n_head"], d_model=hf["n_embd"],
                      d_head=hf["n_embd"] // hf["n_head"], d_mlp=hf.get("n_inner") or 4 * hf["n_embd"],
                      n_ctx=hf["n_positions"], d_vocab=len(tokens), d_vocab_out=len(tokens), vocab=tokens,
                      output_vocab=tokens, bos_token=bos, pad_token=pad, causal=True,
                      act_fn=ACTIVATIONS[hf.get("activation_function", "gelu_new")], normalization_type="LN",
                      eps=float(hf.get("layer_norm_epsilon", 1e-5)), tied_unembed=tied,
                      scale_attn_by_inverse_layer_idx=bool(hf.get("scale_attn_by_inverse_layer_idx", False)))
    model = Transformer(cfg)
    model.load_tl_state_dict(to_tl(hf, weights, tied))
    meta: dict[str, Any] = {"kind": "imported", "objective": readout, "program": program,
                            "roles": {"bos": bos, "end": end, "pad": pad, "unused": list(unused)},
                            "provenance": provenance(folder)}
    if readout == "legal-next":
        meta["readout"] = LegalNext(end).to_json()
    elif readout == "lm":
        if tau_token is None or tau_end is None:
            raise ToolkitError("--readout lm needs its thresholds: --tau-token P --tau-end P")
        block = Readout(end, tau_token, tau_end).to_json()
        Readout.from_meta({"readout": block, "config": cfg.to_dict()}, "--tau-token/--tau-end")  # range checks
        meta["readout"] = block
    else:
        meta["readout"] = {"objective": "argmax", "rule": "the program's output is the argmax over the output "
                                                          "tokens that name its values"}
    with atomic_dir(out) as tmp:
        save_model(tmp, model, meta)
    return model.eval()


def from_tl(model: Transformer) -> dict[str, torch.Tensor]:
    """TransformerLens names -> GPT-2's (``transformer.`` prefix, Conv1D ``[in, out]``); inverse of ``to_tl``."""
    cfg = model.cfg
    H, D, K = cfg.n_heads, cfg.d_model, cfg.d_head
    w = {name: model.param(name).detach().float() for name in model.cfg.param_shapes()}
    out = {"transformer.wte.weight": w["embed.W_E"], "transformer.wpe.weight": w["pos_embed.W_pos"],
           "transformer.ln_f.weight": w["ln_final.w"], "transformer.ln_f.bias": w["ln_final.b"]}
    if not cfg.tied_unembed:
        out["lm_head.weight"] = w["unembed.W_U"].T  # [V, D]
    for l in range(cfg.n_layers):
        p, q = f"transformer.h.{l}.", f"blocks.{l}."
        qkv = torch.stack([w[q + f"attn.W_{n}"].permute(1, 0, 2) for n in "QKV"], 1)  # [D, 3, H, K]
        out[p + "attn.c_attn.weight"] = qkv.reshape(D, 3 * H * K)
        out[p + "attn.c_attn.bias"] = torch.stack([w[q + f"attn.b_{n}"] for n in "QKV"]).reshape(3 * H * K)
        out[p + "attn.c_proj.weight"], out[p + "attn.c_proj.bias"] = w[q + "attn.W_O"].reshape(H * K, D), w[q + "attn.b_O"]
        for ln, hln in (("ln1", "ln_1"), ("ln2", "ln_2")):
            out[p + f"{hln}.weight"], out[p + f"{hln}.bias"] = w[q + f"{ln}.w"], w[q + f"{ln}.b"]
        out[p + "mlp.c_fc.weight"], out[p + "mlp.c_fc.bias"] = w[q + "mlp.W_in"], w[q + "mlp.b_in"]
        out[p + "mlp.c_proj.weight"], out[p + "mlp.c_proj.bias"] = w[q + "mlp.W_out"], w[q + "mlp.b_out"]
    return {k: v.contiguous() for k, v in out.items()}


def why_not_gpt2(model: Transformer) -> list[str]:
    """What keeps an artifact from being a GPT-2 (empty when it is one)."""
    cfg, why = model.cfg, []
    if not cfg.layer_norm:
        why.append("it has no layer norm (GPT-2 normalises before every sublayer and the unembedding)")
    if not cfg.causal:
        why.append("its attention is not causal")
    if cfg.n_heads * cfg.d_head != cfg.d_model:
        why.append(f"n_heads * d_head = {cfg.n_heads * cfg.d_head} is not d_model {cfg.d_model}")
    if cfg.d_vocab_out != cfg.d_vocab or cfg.output_vocab != cfg.vocab:
        why.append("its output vocabulary is not its input vocabulary (GPT-2's lm_head predicts input tokens)")
    if model.param("unembed.b_U").any():
        why.append("its unembedding has a bias (GPT-2's lm_head has none)")
    return why


def tokenizer_files(cfg: ModelConfig) -> dict[str, Any]:
    """``tokenizer.json`` (a whitespace-split word-level tokenizer: one token per word, ids in order) and
    ``tokenizer_config.json``, so ``AutoTokenizer`` (and ``TransformerBridge.boot_transformers``) load the
    vocabulary without GPT-2's BPE merges. Written as JSON: no ``tokenizers`` at run time."""
    ids = {t: i for i, t in enumerate(cfg.vocab)}
    specials = [cfg.bos_token, cfg.pad_token]
    tokenizer = {"version": "1.0", "truncation": None, "padding": None,
                 "added_tokens": [{"id": ids[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                                   "normalized": False, "special": True} for t in dict.fromkeys(specials)],
                 "normalizer": None, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None,
                 "decoder": None, "model": {"type": "WordLevel", "vocab": ids, "unk_token": cfg.pad_token}}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": cfg.bos_token, "pad_token": cfg.pad_token,
              "unk_token": cfg.pad_token, "model_max_length": cfg.n_ctx, "add_bos_token": False}
    return {"tokenizer.json": tokenizer, "tokenizer_config.json": config}


def export_checkpoint(artifact: Path | str, out: Path | str) -> None:
    """Writes a GPT-2-block artifact as a ``GPT2LMHeadModel`` folder (module docstring).

    Raises:
        ToolkitError: the artifact is missing or corrupt, or GPT-2 cannot express it (one line saying why).
    """
    model, _ = load_artifact(artifact)
    why = why_not_gpt2(model)
    if why:
        raise ToolkitError(f"{artifact} cannot be written as a GPT-2: {'; '.join(why)}")
    cfg = model.cfg
    hf_act = {"gelu_new": "gelu_new", "gelu": "gelu", "relu": "relu"}[cfg.act_fn]
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": cfg.d_vocab,
              "n_positions": cfg.n_ctx, "n_embd": cfg.d_model, "n_layer": cfg.n_layers, "n_head": cfg.n_heads,
              "n_inner": cfg.d_mlp, "activation_function": hf_act, "layer_norm_epsilon": cfg.eps,
              "tie_word_embeddings": cfg.tied_unembed,
              "scale_attn_by_inverse_layer_idx": cfg.scale_attn_by_inverse_layer_idx,
              "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
              "bos_token_id": cfg.vocab.index(cfg.bos_token), "pad_token_id": cfg.vocab.index(cfg.pad_token)}
    with atomic_dir(out) as tmp:
        save_file(from_tl(model), str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / CONFIG).write_text(json.dumps(config, indent=1) + "\n")
        (tmp / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(cfg.vocab)}, indent=1) + "\n")
        for name, data in tokenizer_files(cfg).items():
            (tmp / name).write_text(json.dumps(data, indent=1) + "\n")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m learned.hf", description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, nargs="?", help="a GPT2LMHeadModel folder (config.json + model.safetensors)")
    ap.add_argument("--out", type=Path, default=None, help="artifact folder to write")
    ap.add_argument("--export", nargs=2, type=Path, metavar=("DIR", "OUT"), default=None,
                    help="instead: write artifact DIR as a GPT2LMHeadModel folder OUT")
    ap.add_argument("--vocab", default=None, help='tokens in id order, space-separated: "0 1 <bos> <eos> <pad>"')
    ap.add_argument("--bos", default=None)
    ap.add_argument("--end", default=None)
    ap.add_argument("--pad", default=None)
    ap.add_argument("--unused", nargs="*", default=[], help="tokens the task does not know and the model never needs")
    ap.add_argument("--readout", default="legal-next", help="argmax, lm or legal-next (default)")
    ap.add_argument("--program", default=None, help="check the vocabulary against this program's task")
    ap.add_argument("--tau-token", type=float, default=None, help="--readout lm: least token probability")
    ap.add_argument("--tau-end", type=float, default=None, help="--readout lm: least P(END)")
    return ap


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.export is not None:
        if args.folder is not None or args.out is not None:
            raise ToolkitError("--export DIR OUT takes no FOLDER or --out")
        export_checkpoint(*args.export)
        print(f"exported {args.export[0]} -> {args.export[1]}/ (GPT2LMHeadModel: config.json, model.safetensors)")
        return 0
    if args.folder is None or args.out is None:
        raise ToolkitError("give a GPT-2 FOLDER and --out DIR (or --export DIR OUT)")
    model = import_checkpoint(args.folder, args.out, vocab=None if args.vocab is None else args.vocab.split(),
                              bos=args.bos, end=args.end, pad=args.pad, unused=args.unused, readout=args.readout,
                              program=args.program, tau_token=args.tau_token, tau_end=args.tau_end)
    c = model.cfg
    print(f"imported {args.folder} -> {args.out}/ ({c.n_layers} layers, {c.n_heads} heads, d_model {c.d_model}, "
          f"{c.act_fn}, {'tied' if c.tied_unembed else 'untied'} unembedding, readout {args.readout})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
