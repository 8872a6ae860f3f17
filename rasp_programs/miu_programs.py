"""Several RASP programs for one task: is the prefix ending here an MIU theorem?

A string is a theorem exactly when it starts with ``M``, has no other ``M``,
and its number of ``I`` is not a multiple of 3. Each program below computes
that verdict for every prefix (``MIU_TASK``), with different intermediate
variables, so a learned model can be compared with each candidate algorithm:

  ``miu``        marks I's and misplaced M's position-wise, then counts them
                 with ``SelectorWidth`` (3 layers).
  ``miu_mean``   averages "is I" and "breaks the M rule" indicators over the
                 prefix with mean attention (numerical ``Aggregate``, as in
                 Tracr's ``make_frac_prevs``); MLPs turn the fraction and the
                 position into the verdict (5 layers; needs the value-set
                 correction in ``compiled.compile``).
  ``miu_first``  reads the first token with a categorical ``Aggregate`` from
                 position 0 and counts I's and M's separately (4 layers).
  ``miu_u``      counts U's instead of I's: after a leading M, the I count is
                 the position minus the U count (4 layers).

Each program is written twice, on purpose: ``build_*`` in Tracr's RASP
(imported lazily) and the ``Variable`` list in plain Python. Every selector
only looks at keys ``k <= q``, so each program is causal *as RASP*:
``rasp.evaluate`` on a whole string gives every prefix's verdict, exactly what
the causally masked compiled model computes.
"""

from __future__ import annotations

import fractions

from rasp_programs.miu_task import MIU_TASK
from rasp_programs.spec import ProgramSpec, Variable

# Denominators of a prefix mean are lengths, at most the longest supported one.
MAX_DENOMINATOR = 24


def _in_prefix(k, q) -> bool:
    return 0 <= k <= q


def _count_marked_prefix(marked, indices):
    return [sum(1 for k in marked if 0 <= k <= q) for q in indices]


def _mark(letter: str):
    """Plain Python: position of each ``letter``, else -1."""
    return lambda tokens, indices: [i if t == letter else -1 for t, i in zip(tokens, indices)]


def _bad_m_at(tokens, indices):
    # An M is required at position 0 and forbidden everywhere else.
    return [i if (t == "M") != (i == 0) else -1 for t, i in zip(tokens, indices)]


# --------------------------------------------------------------------------
# miu: position-wise marks, then SelectorWidth counts.
#   layer 0 MLP : I_at, bad_M_at    (position-wise: token x index)
#   layer 1 attn: count_I, count_bad_M  (SelectorWidth over the prefix; 2 heads)
#   layer 1 MLP : SelectorWidth read-out
#   layer 2 MLP : theorem = count_bad_M == 0 and count_I % 3 != 0
# --------------------------------------------------------------------------


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
    description="MIU theorem recogniser: marks, then SelectorWidth counts of I's and misplaced M's",
    task=MIU_TASK,
    max_supported_len=24,  # mlp_exactness=1000 is exact up to 24 (checked by `make compile`)
    build=build_miu,
    variables=(
        Variable("I_at", ("tokens", "indices"), _mark("I"), "position of this token if it is I, else -1"),
        Variable("bad_M_at", ("tokens", "indices"), _bad_m_at,
                 "position of this token if it breaks the M rule (M late, or no M first), else -1"),
        Variable("count_I", ("I_at", "indices"), _count_marked_prefix, "number of I in the prefix"),
        Variable("count_bad_M", ("bad_M_at", "indices"), _count_marked_prefix,
                 "number of M-rule violations in the prefix"),
        Variable("theorem", ("count_I", "count_bad_M"), _miu_verdict, "the prefix is an MIU theorem"),
    ),
)

# --------------------------------------------------------------------------
# miu_mean: mean attention over the prefix, then MLPs on fraction x position.
#   layer 0 MLP : is_I (numerical), bad_M (0/1)
#   layer 1 attn: frac_I      = mean of is_I over k <= q       (numerical)
#   layer 1 MLP : is_bad_M    = bad_M as a number
#   layer 2 attn: frac_bad_M  = mean of is_bad_M over k <= q   (numerical)
#   layer 2 MLP : frac_I_exact = the fraction as a category ("3/5")
#   layer 3 MLP : I_mod_3 = round(frac_I * (q + 1)) mod 3;  M_ok = frac_bad_M == 0
#   layer 4 MLP : theorem = M_ok and I_mod_3 != 0
# Tracr's basis inference gives a mean of a 0/1 SOp the values {0} u {1/n}
# only; compiled.compile corrects that to {k/n}, else "3/5" is never decoded.
# --------------------------------------------------------------------------


def exact_fraction(x: float) -> str:
    """A prefix mean as an exact fraction, ``0.6 -> "3/5"`` (denominators are lengths)."""
    return str(fractions.Fraction(x).limit_denominator(MAX_DENOMINATOR))


def _is(letter: str):
    return lambda tokens: [1 if t == letter else 0 for t in tokens]


def _bad_m(tokens, indices):
    return [1 if (t == "M") != (i == 0) else 0 for t, i in zip(tokens, indices)]


def _prefix_mean(values, indices):
    return [sum(values[: q + 1]) / (q + 1) for q in indices]


def _mod_3_of_fraction(frac, indices):
    return [round(fractions.Fraction(f) * (q + 1)) % 3 for f, q in zip(frac, indices)]


def build_miu_mean():
    from tracr.rasp import rasp

    is_i = rasp.numerical(rasp.Map(lambda t: 1 if t == "I" else 0, rasp.tokens)).named("is_I")
    bad_m = rasp.categorical(rasp.SequenceMap(
        lambda t, i: 1 if (t == "M") != (i == 0) else 0, rasp.tokens, rasp.indices)).named("bad_M")
    is_bad_m = rasp.numerical(rasp.Map(lambda b: b, bad_m)).named("is_bad_M")
    prefix = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ).named("prefix")
    frac_i = rasp.numerical(rasp.Aggregate(prefix, is_i, default=0)).named("frac_I")
    frac_bad = rasp.numerical(rasp.Aggregate(prefix, is_bad_m, default=0)).named("frac_bad_M")
    frac_i_exact = rasp.categorical(rasp.Map(exact_fraction, frac_i)).named("frac_I_exact")
    i_mod_3 = rasp.categorical(rasp.SequenceMap(
        lambda f, q: round(fractions.Fraction(f) * (q + 1)) % 3, frac_i_exact, rasp.indices)).named("I_mod_3")
    m_ok = rasp.categorical(rasp.Map(lambda f: f == 0, frac_bad)).named("M_ok")
    return rasp.categorical(rasp.SequenceMap(lambda c, ok: ok and c != 0, i_mod_3, m_ok)).named("theorem")


MIU_MEAN = ProgramSpec(
    name="miu_mean",
    description="MIU theorem recogniser: mean attention gives the fractions of I's and misplaced M's",
    task=MIU_TASK,
    # Exhaustive at 10; at 12 every well-formed string and a 300,000 sample are right. Compiling
    # and checking at 16 took over 15 GB here (fraction x position MLP), so 12 is the limit.
    max_supported_len=12,
    build=build_miu_mean,
    variables=(
        Variable("is_I", ("tokens",), _is("I"), "1 if this token is I, else 0", "numerical"),
        Variable("bad_M", ("tokens", "indices"), _bad_m,
                 "1 if this token breaks the M rule (M late, or no M first), else 0"),
        Variable("is_bad_M", ("bad_M",), lambda bad: list(bad), "bad_M as a number, for mean attention",
                 "numerical"),
        Variable("frac_I", ("is_I", "indices"), _prefix_mean, "fraction of I in the prefix", "numerical"),
        Variable("frac_bad_M", ("is_bad_M", "indices"), _prefix_mean,
                 "fraction of M-rule violations in the prefix", "numerical"),
        Variable("frac_I_exact", ("frac_I",), lambda frac: [exact_fraction(f) for f in frac],
                 "the fraction of I as an exact category ('3/5')"),
        Variable("I_mod_3", ("frac_I_exact", "indices"), _mod_3_of_fraction,
                 "number of I in the prefix mod 3, from the fraction and the position"),
        Variable("M_ok", ("frac_bad_M",), lambda frac: [f == 0 for f in frac], "no M-rule violation in the prefix"),
        Variable("theorem", ("I_mod_3", "M_ok"), lambda mod, ok: [o and m != 0 for m, o in zip(mod, ok)],
                 "the prefix is an MIU theorem"),
    ),
)

# --------------------------------------------------------------------------
# miu_first: the first token read by attention, separate I and M counts.
#   layer 0 attn: first = token at position 0 (categorical Aggregate)
#   layer 0 MLP : I_at, M_at
#   layer 1     : count_I, count_M (SelectorWidth over the prefix; 2 heads)
#   layer 2 MLP : M_ok = first is M and count_M == 1
#   layer 3 MLP : theorem = M_ok and count_I % 3 != 0
# --------------------------------------------------------------------------


def build_miu_first():
    from tracr.rasp import rasp

    at_start = rasp.Select(rasp.indices, rasp.indices, lambda k, q: k == 0).named("at_start")
    first = rasp.categorical(rasp.Aggregate(at_start, rasp.tokens)).named("first")
    i_at = rasp.categorical(rasp.SequenceMap(
        lambda t, i: i if t == "I" else -1, rasp.tokens, rasp.indices)).named("I_at")
    m_at = rasp.categorical(rasp.SequenceMap(
        lambda t, i: i if t == "M" else -1, rasp.tokens, rasp.indices)).named("M_at")
    count_i = rasp.categorical(rasp.SelectorWidth(
        rasp.Select(i_at, rasp.indices, lambda k, q: 0 <= k <= q).named("prefix_I"))).named("count_I")
    count_m = rasp.categorical(rasp.SelectorWidth(
        rasp.Select(m_at, rasp.indices, lambda k, q: 0 <= k <= q).named("prefix_M"))).named("count_M")
    m_ok = rasp.categorical(rasp.SequenceMap(lambda f, m: f == "M" and m == 1, first, count_m)).named("M_ok")
    return rasp.categorical(rasp.SequenceMap(lambda c, ok: ok and c % 3 != 0, count_i, m_ok)).named("theorem")


MIU_FIRST = ProgramSpec(
    name="miu_first",
    description="MIU theorem recogniser: attention reads the first token; I's and M's counted separately",
    task=MIU_TASK,
    max_supported_len=24,
    build=build_miu_first,
    variables=(
        Variable("first", ("tokens",), lambda tokens: [tokens[0]] * len(tokens), "the first token of the input"),
        Variable("I_at", ("tokens", "indices"), _mark("I"), "position of this token if it is I, else -1"),
        Variable("M_at", ("tokens", "indices"), _mark("M"), "position of this token if it is M, else -1"),
        Variable("count_I", ("I_at", "indices"), _count_marked_prefix, "number of I in the prefix"),
        Variable("count_M", ("M_at", "indices"), _count_marked_prefix, "number of M in the prefix"),
        Variable("M_ok", ("first", "count_M"), lambda first, count: [f == "M" and m == 1 for f, m in zip(first, count)],
                 "the input starts with M and the prefix has no other M"),
        Variable("theorem", ("count_I", "M_ok"), lambda count, ok: [o and c % 3 != 0 for c, o in zip(count, ok)],
                 "the prefix is an MIU theorem"),
    ),
)

# --------------------------------------------------------------------------
# miu_u: count the U's; after a leading M the rest are I's.
#   layer 0 MLP : U_at, bad_M_at
#   layer 1     : count_U, count_bad_M (SelectorWidth over the prefix; 2 heads)
#   layer 2 MLP : non_U_mod_3 = (q - count_U) mod 3  (the I count when M_ok)
#   layer 3 MLP : theorem = count_bad_M == 0 and non_U_mod_3 != 0
# --------------------------------------------------------------------------


def build_miu_u():
    from tracr.rasp import rasp

    u_at = rasp.categorical(rasp.SequenceMap(
        lambda t, i: i if t == "U" else -1, rasp.tokens, rasp.indices)).named("U_at")
    bad_m_at = rasp.categorical(rasp.SequenceMap(
        lambda t, i: i if (t == "M") != (i == 0) else -1, rasp.tokens, rasp.indices)).named("bad_M_at")
    count_u = rasp.categorical(rasp.SelectorWidth(
        rasp.Select(u_at, rasp.indices, lambda k, q: 0 <= k <= q).named("prefix_U"))).named("count_U")
    count_bad = rasp.categorical(rasp.SelectorWidth(
        rasp.Select(bad_m_at, rasp.indices, lambda k, q: 0 <= k <= q).named("prefix_bad_M"))).named("count_bad_M")
    non_u = rasp.categorical(rasp.SequenceMap(lambda u, q: (q - u) % 3, count_u, rasp.indices)).named("non_U_mod_3")
    return rasp.categorical(rasp.SequenceMap(lambda n, b: b == 0 and n != 0, non_u, count_bad)).named("theorem")


MIU_U = ProgramSpec(
    name="miu_u",
    description="MIU theorem recogniser: counts U's; after a leading M the other letters are I's",
    task=MIU_TASK,
    max_supported_len=24,
    build=build_miu_u,
    variables=(
        Variable("U_at", ("tokens", "indices"), _mark("U"), "position of this token if it is U, else -1"),
        Variable("bad_M_at", ("tokens", "indices"), _bad_m_at,
                 "position of this token if it breaks the M rule (M late, or no M first), else -1"),
        Variable("count_U", ("U_at", "indices"), _count_marked_prefix, "number of U in the prefix"),
        Variable("count_bad_M", ("bad_M_at", "indices"), _count_marked_prefix,
                 "number of M-rule violations in the prefix"),
        Variable("non_U_mod_3", ("count_U", "indices"), lambda u, idx: [(q - c) % 3 for c, q in zip(u, idx)],
                 "letters after the first that are not U, mod 3 (the I count mod 3 when the M rule holds)"),
        Variable("theorem", ("non_U_mod_3", "count_bad_M"), lambda n, bad: [b == 0 and m != 0 for m, b in zip(n, bad)],
                 "the prefix is an MIU theorem"),
    ),
)

PROGRAMS = (MIU, MIU_MEAN, MIU_FIRST, MIU_U)
