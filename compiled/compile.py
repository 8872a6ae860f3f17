"""Compile a registered RASP program with Tracr and recover where each SOp lives.

Tracr's public ``compile_rasp_to_model`` drops the craft graph, so this runs
its stages one by one and keeps the graph. From it we read, for every named
SOp, which layer/head or MLP computes it and which residual labels that block
reads and writes. Tracr appends a global counter to every label
(``count_I_4``); we map each label back to the name given with
``.named(...)`` so exported labels read ``count_I:2``. Between basis
inference and the craft stage, ``compiled.value_sets`` corrects the values
Tracr assumes a numerical mean takes (see there).

Everything JAX/Tracr lives in this package.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np

from tracr.compiler import (basis_inference, craft_graph_to_model, craft_model_to_transformer,
                            expr_to_craft_graph, nodes, rasp_to_graph, validating)
from tracr.compiler.assemble import AssembledTransformerModel
from tracr.craft import bases, transformers, vectorspace_fns
from tracr.rasp import rasp

from compiled.value_sets import correct_numerical_means
from rasp_programs.errors import ToolkitError
from rasp_programs.spec import ProgramSpec

BOS, PAD = "BOS", "PAD"


def default_mlp_exactness(max_len: int) -> int:
    """Tracr's default (100) miscounts SelectorWidth from length 10 on.

    1000 was exact up to length 24 and 10,000 up to 40 in our checks; every
    compile is verified exhaustively (or on a large sample) anyway.
    """
    return 1000 if max_len <= 24 else 10_000


@dataclasses.dataclass
class CompiledProgram:
    """Tracr's assembled model plus what we recovered from the craft graph."""

    spec: ProgramSpec
    max_len: int
    mlp_exactness: int
    model: AssembledTransformerModel
    residual_labels: list[str]  # clean names, in residual order
    block_map: list[dict[str, Any]]  # one entry per SOp computed by a block
    n_heads_used: dict[int, int]  # layer -> heads that compute something
    corrected_value_sets: list[str] = dataclasses.field(default_factory=list)  # SOps whose values we fixed


def _label_to_name(graph) -> dict[str, str]:
    """Tracr label (``count_I_4``) -> the name we gave (``count_I``)."""
    mapping = {}
    for label, node in graph.nodes.items():
        expr = node[nodes.EXPR]
        if label in (rasp.tokens.label, rasp.indices.label):
            continue
        mapping[label] = expr.name
    names = [n for lab, n in mapping.items() if isinstance(graph.nodes[lab][nodes.EXPR], rasp.SOp)]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ToolkitError(f"SOp names must be unique; repeated: {sorted(dup)}")
    return mapping


def clean_label(direction: str, mapping: dict[str, str]) -> str:
    """``count_I_4:2`` -> ``count_I:2``; ``count_I_4_selector_width_attn_output`` likewise."""
    name, sep, value = direction.partition(":")
    for label in sorted(mapping, key=len, reverse=True):
        if name == label or name.startswith(label + "_"):
            name = mapping[label] + name[len(label):]
            break
    return name + sep + value


def _describe(expr, names: dict[str, str]) -> str:
    """A short RASP expression for the report, e.g. ``SelectorWidth(Select(I_at, indices, λ))``."""
    n = lambda e: names.get(e.label, e.label)  # noqa: E731

    def sel(s):
        pred = s.predicate.name if isinstance(s.predicate, rasp.Comparison) else "λ"
        return f"Select({n(s.keys)}, {n(s.queries)}, {pred})"

    if isinstance(expr, rasp.SelectorWidth):
        return f"SelectorWidth({sel(expr.selector)})"
    if isinstance(expr, rasp.Aggregate):
        return f"Aggregate({sel(expr.selector)}, {n(expr.sop)})"
    if isinstance(expr, rasp.SequenceMap):
        return f"SequenceMap({n(expr.fst)}, {n(expr.snd)})"
    if isinstance(expr, rasp.Map):
        return f"Map({n(expr.inner)})"
    return type(expr).__name__


def _labels(space: bases.VectorSpaceWithBasis, mapping) -> list[str]:
    return [clean_label(str(d), mapping) for d in space.basis]


def _locate_blocks(craft_model) -> list[tuple[int, str]]:
    """(layer, "attn"|"mlp") of each craft block, as Tracr's assembler assigns them."""
    slots = iter((l, kind) for l in range(2 * len(craft_model.blocks)) for kind in ("attn", "mlp"))
    out = []
    for block in craft_model.blocks:
        kind = "mlp" if isinstance(block, transformers.MLP) else "attn"
        slot = next(slots)
        while slot[1] != kind:
            slot = next(slots)
        out.append(slot)
    return out


def _block_entries(node_block, craft_model, where, mapping) -> list[dict[str, Any]]:
    parts = node_block.blocks if isinstance(node_block, transformers.SeriesWithResiduals) else [node_block]
    entries = []
    for part in parts:
        if isinstance(part, transformers.MLP):
            out_dirs = set(part.snd.output_space.basis)
            idx = [i for i, b in enumerate(craft_model.blocks)
                   if isinstance(b, transformers.MLP) and out_dirs <= set(b.snd.output_space.basis)]
            layer = where[idx[0]][0]
            entries.append({"hook": f"blocks.{layer}.mlp", "layer": layer, "kind": "mlp",
                            "reads": _labels(part.fst.input_space, mapping),
                            "writes": _labels(part.snd.output_space, mapping)})
            continue
        for head in part.as_multi().heads():
            for i, b in enumerate(craft_model.blocks):
                if isinstance(b, transformers.MLP):
                    continue
                heads = list(b.as_multi().heads())
                hit = [h for h, cand in enumerate(heads) if cand is head]
                if hit:
                    layer = where[i][0]
                    entries.append({
                        "hook": f"blocks.{layer}.attn", "layer": layer, "kind": "attn", "head": hit[0],
                        "reads": {"query": _labels(head.w_qk.left_space, mapping),
                                  "key": _labels(head.w_qk.right_space, mapping),
                                  "value": _labels(head.w_ov.input_space, mapping)},
                        "writes": _labels(head.w_ov.output_space, mapping)})
    return entries


def _failing_node(graph) -> str:
    """The first SOp (in Tracr's processing order) that did not get a craft block."""
    for label, node in graph.nodes.items():
        expr = node[nodes.EXPR]
        if isinstance(expr, rasp.SOp) and label not in (rasp.tokens.label, rasp.indices.label) \
                and nodes.MODEL_BLOCK not in node:
            return f"{expr.name} = {_describe(expr, {})}"
    return "unknown operation"


def _widen_narrow_heads(craft_model) -> list[tuple[Any, Any]]:
    """Works around Tracr's known assembly crash, in place; returns ``(head, original w_qk)`` pairs.

    Tracr sizes every head by its query/key spaces only (``key_size``); a head
    whose value has more dimensions cannot be written into the weights and
    raises a bare broadcast ``ValueError`` (open upstream PR #10). Such a head's
    key space is padded with residual directions it already reads or writes, at
    zero weight: the attention scores do not change, but ``key_size`` becomes
    large enough. The caller restores the original ``w_qk`` after assembly, so
    the block map reports what the head really reads.
    """
    heads = [h for b in craft_model.blocks if not isinstance(b, transformers.MLP) for h in b.as_multi().heads()]
    if not heads:
        return []
    key_size = max(max(h.w_qk.matrix.shape) for h in heads)
    changed = []
    for head in heads:
        if head.w_ov.matrix.shape[1] <= key_size:
            continue
        qk = head.w_qk
        right = bases.join_vector_spaces(qk.right_space, head.w_ov.input_space, head.w_ov.output_space)
        matrix = np.zeros((qk.left_space.num_dims, right.num_dims))
        for j, direction in enumerate(qk.right_space.basis):
            matrix[:, right.basis.index(direction)] = qk.matrix[:, j]
        changed.append((head, qk))
        head.w_qk = vectorspace_fns.ScalarBilinear(qk.left_space, right, matrix)
    return changed


def compile_program(spec: ProgramSpec, max_len: int, mlp_exactness: int | None = None,
                    correct_means: bool = True) -> CompiledProgram:
    """Compiles ``spec`` at ``max_len`` and recovers the block map.

    Args:
        spec: the program.
        max_len: longest input.
        mlp_exactness: Tracr's ``mlp_exactness`` (default: ``default_mlp_exactness``).
        correct_means: correct the value sets of numerical means (``compiled.value_sets``);
            ``False`` compiles exactly as Tracr ships, for tests that show the difference.

    Raises:
        ToolkitError: Tracr cannot compile the program (names the operation).
    """
    spec.check_max_len(max_len)
    exactness = mlp_exactness or default_mlp_exactness(max_len)
    program = spec.build()
    unsupported = validating.static_validate(program)
    if unsupported:
        first = unsupported[0]
        raise ToolkitError(f"Tracr cannot compile '{spec.name}': {first.expr.name}: {first.reason}")
    extracted = rasp_to_graph.extract_rasp_graph(program)
    graph, sources, sink = extracted.graph, extracted.sources, extracted.sink
    mapping = _label_to_name(graph)
    try:
        basis_inference.infer_bases(graph, sink, set(spec.vocab), max_len)
        corrected = correct_numerical_means(graph, max_len) if correct_means else []
        expr_to_craft_graph.add_craft_components_to_rasp_graph(
            graph, bos_dir=bases.BasisDirection(rasp.tokens.label, BOS), mlp_exactness=exactness)
        craft_model = craft_graph_to_model.craft_graph_to_model(graph, sources)
        widened = _widen_narrow_heads(craft_model)
        model = craft_model_to_transformer.craft_model_to_transformer(
            craft_model=craft_model, graph=graph, sink=sink, max_seq_len=max_len,
            compiler_bos=BOS, compiler_pad=PAD, causal=spec.causal)
        for head, w_qk in widened:
            head.w_qk = w_qk
    except (NotImplementedError, ValueError, AssertionError, KeyError) as e:
        msg = re.sub(r"\s+", " ", str(e))[:200]
        raise ToolkitError(f"Tracr cannot compile '{spec.name}' at {_failing_node(graph)}: "
                           f"{type(e).__name__}: {msg}") from None
    if not rasp.is_categorical(sink[nodes.EXPR]):
        raise ToolkitError(f"program '{spec.name}' has a numerical output; only categorical outputs are supported")

    where = _locate_blocks(craft_model)
    block_map, used = [], {}
    for label, node in graph.nodes.items():
        block = node.get(nodes.MODEL_BLOCK)
        if block is None:
            continue
        expr = node[nodes.EXPR]
        entries = _block_entries(block, craft_model, where, mapping)
        for e in entries:
            if e["kind"] == "attn":
                used[e["layer"]] = used.get(e["layer"], 0) + 1
        block_map.append({"sop": mapping[label], "op": _describe(expr, mapping),
                          "encoding": "categorical" if rasp.is_categorical(expr) else "numerical",
                          "blocks": entries})
    block_map.sort(key=lambda e: (e["blocks"][0]["layer"], e["blocks"][0]["kind"] == "mlp",
                                  e["blocks"][0].get("head", 0)))
    return CompiledProgram(spec=spec, max_len=max_len, mlp_exactness=exactness, model=model,
                           residual_labels=[clean_label(l, mapping) for l in model.residual_labels],
                           block_map=block_map, n_heads_used=used,
                           corrected_value_sets=[mapping[label] for label in corrected])
