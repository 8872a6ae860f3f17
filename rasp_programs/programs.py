"""The registered RASP programs.

Each program is written twice, on purpose:
  * ``build_*`` writes it in Tracr's RASP (imported lazily, inside the
    function, so that importing this module never imports Tracr);
  * the ``Variable`` list writes every named SOp again in plain Python.
The tests check the two against each other and against the program's
independent reference on every input.

Every SOp is named with ``.named(...)``; ``compiled/`` strips Tracr's numeric
suffix (``count_I_4`` -> ``count_I``) so residual labels read ``count_I:2``.
"""

from __future__ import annotations

from rasp_programs import miu
from rasp_programs.language import MIU_THEOREMS
from rasp_programs.spec import ProgramSpec, Tokens, Variable

# --------------------------------------------------------------------------
# MIU: is the prefix ending here a theorem of Hofstadter's MIU system?
#
# Layout after compilation (3 layers; attention in layer 1 only):
#   layer 0 MLP : I_at, bad_M_at    (position-wise: token x index)
#   layer 1 attn: count_I, count_bad_M  (SelectorWidth over the prefix; 2 heads)
#   layer 1 MLP : SelectorWidth read-out
#   layer 2 MLP : theorem = count_bad_M == 0 and count_I % 3 != 0
# The selectors only look at keys k <= q, so the program is causal *as RASP*:
# rasp.evaluate gives the verdict of every prefix, and the causally masked
# compiled model computes exactly the same thing.
# --------------------------------------------------------------------------


def _i_at(tokens, indices):
    return [i if t == "I" else -1 for t, i in zip(tokens, indices)]


def _bad_m_at(tokens, indices):
    # An M is required at position 0 and forbidden everywhere else.
    return [i if (t == "M") != (i == 0) else -1 for t, i in zip(tokens, indices)]


def _count_marked_prefix(marked, indices):
    return [sum(1 for k in marked if 0 <= k <= q) for q in indices]


def _miu_verdict(count_i, count_bad):
    return [b == 0 and c % 3 != 0 for c, b in zip(count_i, count_bad)]


def build_miu():
    from tracr.rasp import rasp  # Tracr stays out of import time.

    i_at = rasp.categorical(rasp.SequenceMap(
        lambda t, i: i if t == "I" else -1, rasp.tokens, rasp.indices)).named("I_at")
    bad_m_at = rasp.categorical(rasp.SequenceMap(
        lambda t, i: i if (t == "M") != (i == 0) else -1, rasp.tokens, rasp.indices)).named("bad_M_at")
    prefix_i = rasp.Select(i_at, rasp.indices, lambda k, q: 0 <= k <= q).named("prefix_I")
    prefix_bad = rasp.Select(bad_m_at, rasp.indices, lambda k, q: 0 <= k <= q).named("prefix_bad_M")
    count_i = rasp.categorical(rasp.SelectorWidth(prefix_i)).named("count_I")
    count_bad = rasp.categorical(rasp.SelectorWidth(prefix_bad)).named("count_bad_M")
    return rasp.categorical(rasp.SequenceMap(
        lambda c, b: b == 0 and c % 3 != 0, count_i, count_bad)).named("theorem")


MIU = ProgramSpec(
    name="miu",
    description="MIU theorem recogniser: verdict for every prefix (MU puzzle)",
    vocab=miu.ALPHABET,
    default_max_len=10,
    max_supported_len=24,  # mlp_exactness=1000 is exact up to 24 (checked by `make compile`)
    causal=True,
    build=build_miu,
    variables=(
        Variable("I_at", ("tokens", "indices"), _i_at, "position of this token if it is I, else -1"),
        Variable("bad_M_at", ("tokens", "indices"), _bad_m_at,
                 "position of this token if it breaks the M rule (M late, or no M first), else -1"),
        Variable("count_I", ("I_at", "indices"), _count_marked_prefix, "number of I in the prefix"),
        Variable("count_bad_M", ("bad_M_at", "indices"), _count_marked_prefix,
                 "number of M-rule violations in the prefix"),
        Variable("theorem", ("count_I", "count_bad_M"), _miu_verdict, "the prefix is an MIU theorem"),
    ),
    reference=lambda tokens: miu.prefix_verdicts("".join(tokens)),
    language=MIU_THEOREMS,
)

# --------------------------------------------------------------------------
# hist: for each token, how many times it occurs in the whole input.
# (Weiss et al.'s histogram; one attention head and its SelectorWidth MLP.)
# --------------------------------------------------------------------------


def _hist(tokens):
    return [tokens.count(t) for t in tokens]


def build_hist():
    from tracr.rasp import rasp

    same = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ).named("same_token")
    return rasp.categorical(rasp.SelectorWidth(same)).named("hist")


HIST = ProgramSpec(
    name="hist",
    description="histogram: occurrences of each token in the input",
    vocab=("a", "b", "c", "d"),
    default_max_len=5,
    max_supported_len=12,
    causal=False,
    build=build_hist,
    variables=(Variable("hist", ("tokens",), _hist, "occurrences of this token in the input"),),
    reference=lambda tokens: [sum(1 for u in tokens if u == t) for t in tokens],
)

# --------------------------------------------------------------------------
# sort: stable sort of the tokens (ties broken by position).
#   layer 0 MLP : sort_key = (token, index), unique per position
#   layer 1     : target_pos = number of keys smaller than mine (SelectorWidth)
#   layer 2 attn: sorted = the token whose target_pos is my index
# --------------------------------------------------------------------------


def _sort_key(tokens, indices):
    return list(zip(tokens, indices))


def _target_pos(keys):
    return [sum(1 for k in keys if k < q) for q in keys]


def _sorted(tokens, target_pos, indices):
    return [tokens[target_pos.index(i)] for i in indices]


def build_sort():
    from tracr.rasp import rasp

    key = rasp.categorical(rasp.SequenceMap(lambda t, i: (t, i), rasp.tokens, rasp.indices)).named("sort_key")
    smaller = rasp.Select(key, key, rasp.Comparison.LT).named("smaller")
    target = rasp.categorical(rasp.SelectorWidth(smaller)).named("target_pos")
    gather = rasp.Select(target, rasp.indices, rasp.Comparison.EQ).named("gather")
    return rasp.categorical(rasp.Aggregate(gather, rasp.tokens)).named("sorted")


SORT = ProgramSpec(
    name="sort",
    description="stable sort of the input tokens",
    vocab=("a", "b", "c", "d"),
    default_max_len=5,
    max_supported_len=8,
    causal=False,
    build=build_sort,
    variables=(
        Variable("sort_key", ("tokens", "indices"), _sort_key, "(token, position), unique per position"),
        Variable("target_pos", ("sort_key",), _target_pos, "where this token goes in the sorted output"),
        Variable("sorted", ("tokens", "target_pos", "indices"), _sorted, "the sorted token at this position"),
    ),
    reference=lambda tokens: sorted(tokens),
)
