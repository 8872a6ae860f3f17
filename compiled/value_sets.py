"""Corrects the value sets Tracr's basis inference gives numerical means.

Tracr's ``basis_inference.infer_bases`` says a numerical ``Aggregate`` (a mean
of a 0/1 SOp over the selected positions) takes the values ``{0} u {1/n}``
only (its ``TODO(b/255936408)``). Reading such a mean straight out is fine,
but every MLP built from it afterwards trusts that set: a numerical ->
categorical ``Map`` of the mean discretises between the listed values only, so
a fraction such as 3/5 is decoded as a neighbouring listed value. The MIU
program ``miu_mean`` then accepts ``MIUII``.

A mean over w selected positions of 0/1 values is k/w for some
``0 <= k <= w <= max_len``; ``correct_numerical_means`` sets exactly that
set on every numerical ``Aggregate`` and recomputes the value sets (and the
categorical bases) of everything downstream, so the MLPs built afterwards
cover every fraction. It runs between basis inference and the craft stage.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
from tracr.compiler import nodes
from tracr.craft import bases
from tracr.rasp import rasp


def mean_values(max_len: int) -> set[float]:
    """Every mean of 1..max_len values in {0, 1}: ``{k / w : 0 <= k <= w <= max_len}``."""
    return {k / w for w in range(1, max_len + 1) for k in range(w + 1)}


def _apply(f, *args) -> Any:
    """``f(*args)``, or ``None`` where it raises an arithmetic error (the input cannot occur)."""
    try:
        return f(*args)
    except ArithmeticError:
        return None


def _image(expr: rasp.SOp, values_of) -> set:
    """The value set of a Map / SequenceMap / categorical Aggregate from its inputs' value sets."""
    if isinstance(expr, rasp.SequenceMap):
        out = {_apply(expr.f, a, b) for a in values_of(expr.fst) for b in values_of(expr.snd)}
    elif isinstance(expr, rasp.Map):
        out = {_apply(expr.f, a) for a in values_of(expr.inner)}
    elif isinstance(expr, rasp.Aggregate):  # categorical: passes its SOp's values on
        out = set(values_of(expr.sop))
    else:
        raise NotImplementedError(f"cannot recompute the value set of {type(expr).__name__}")
    out.discard(None)
    return out


def _inputs(expr: rasp.SOp) -> tuple[rasp.SOp, ...]:
    """The SOps whose value sets determine ``expr``'s (none for tokens, indices, SelectorWidth)."""
    if isinstance(expr, rasp.SequenceMap):
        return (expr.fst, expr.snd)
    if isinstance(expr, rasp.Map):
        return (expr.inner,)
    if isinstance(expr, rasp.Aggregate):
        return (expr.sop,)
    return ()


def correct_numerical_means(graph: nx.DiGraph, max_len: int) -> list[str]:
    """Fixes the value sets of numerical means and of everything computed from them, in place.

    Args:
        graph: the RASP graph after ``basis_inference.infer_bases``.
        max_len: the compiled maximum length (the largest possible selection).

    Returns:
        Labels of the SOps whose value set changed, in graph order.
    """
    changed: list[str] = []

    def values_of(sop: rasp.SOp) -> set:
        return graph.nodes[sop.label][nodes.VALUE_SET]

    for node_id in nx.topological_sort(graph):
        node = graph.nodes[node_id]
        expr = node[nodes.EXPR]
        if not isinstance(expr, rasp.SOp):
            continue
        if isinstance(expr, rasp.Aggregate) and rasp.is_numerical(expr):
            values = mean_values(max_len)
        elif any(sop.label in changed for sop in _inputs(expr)):
            values = _image(expr, values_of)
        else:
            continue
        if values == node[nodes.VALUE_SET]:
            continue
        node[nodes.VALUE_SET] = values
        if rasp.is_categorical(expr):
            node[nodes.OUTPUT_BASIS] = bases.VectorSpaceWithBasis.from_values(expr.label, values).basis
        changed.append(node_id)
    return changed
