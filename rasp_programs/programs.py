"""Single-program tasks: ``hist`` and ``sort`` (the MIU programs are in ``miu_programs``).

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

from rasp_programs.spec import ProgramSpec, Task, Variable

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


HIST_TASK = Task(
    name="hist",
    description="histogram: occurrences of each token in the input",
    vocab=("a", "b", "c", "d"),
    default_max_len=5,
    causal=False,
    output="hist",
    reference=lambda tokens: [sum(1 for u in tokens if u == t) for t in tokens],
)

HIST = ProgramSpec(
    name="hist",
    description="histogram: one SelectorWidth head over equal tokens",
    task=HIST_TASK,
    max_supported_len=12,
    build=build_hist,
    variables=(Variable("hist", ("tokens",), _hist, "occurrences of this token in the input"),),
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


SORT_TASK = Task(
    name="sort",
    description="stable sort of the input tokens",
    vocab=("a", "b", "c", "d"),
    default_max_len=5,
    causal=False,
    output="sorted",
    reference=lambda tokens: sorted(tokens),
)

SORT = ProgramSpec(
    name="sort",
    description="stable sort: each token's target position by SelectorWidth, then a gather",
    task=SORT_TASK,
    max_supported_len=8,
    build=build_sort,
    variables=(
        Variable("sort_key", ("tokens", "indices"), _sort_key, "(token, position), unique per position"),
        Variable("target_pos", ("sort_key",), _target_pos, "where this token goes in the sorted output"),
        Variable("sorted", ("tokens", "target_pos", "indices"), _sorted, "the sorted token at this position"),
    ),
)
