"""The MIU task: what every MIU program shares, as data.

Every registered MIU program (``miu``, ``miu_mean``, ``miu_first``, ...)
points to ``MIU_TASK``: the alphabet, the per-prefix verdict of
``rasp_programs.miu`` as the reference, and everything downstream stages need
that is specific to MIU rather than to one program:

  * ``MIU_MIX``: the training data. Uniform random strings are a poor teacher
    (two thirds start with the wrong letter, so "reject" is almost always
    right and the counting circuit is never needed), so it draws from four
    pools, reweighted so the final verdict is True for half of the draws:

    ``well_formed``    ``M`` then only ``I``/``U``, uniform over lengths; the
                       ``I`` count takes every residue mod 3 (0 -> reject,
                       1, 2 -> accept), so this pool teaches the counting clause.
    ``derived``        theorems produced by the rewrite rules (a breadth-first
                       search from ``MI``, ``rasp_programs.miu.derive``).
    ``hard_negative``  one edit away from a theorem: an ``M`` moved late (or a
                       letter replaced by ``M``), the leading ``M`` dropped, one
                       ``I`` too many or too few.
    ``uniform``        uniform random strings of uniform random length, so no
                       input is out of distribution.

  * ``REWRITE_SYSTEM``: every theorem the rewrite rules derive must be accepted;
  * ``clauses``: the clauses of the criterion, for per-clause accuracy;
  * ``PROBES``: strings whose P(theorem) training dynamics tracks.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from rasp_programs import miu
from rasp_programs.language import MIU_THEOREMS
from rasp_programs.spec import Check, DataMix, Task, Tokens, uniform_inputs

DERIVE_MAX_LEN = 16  # longest derived theorem in the training pool (10,612 of them; 0.2 s)
# The rewrite-system check searches intermediate strings up to this length.
# With 22 it derives all 682 theorems of length <= 10 (0.3 s); with 13 it
# already finds every theorem of length <= 6 (tests/test_miu_system.py).
SEARCH_BOUND = 22
PROBES = ("MI", "MU", "MIU", "MII", "MIII", "MIIII", "MUI", "IMI", "MIM")


# -- training pools -------------------------------------------------------------


def well_formed(rng: np.random.Generator, n: int, max_len: int) -> list[Tokens]:
    """``M`` + ``I``/``U`` tail; the I count's residue mod 3 is drawn uniformly, then placed at random."""
    out = []
    for _ in range(n):
        length = int(rng.integers(1, max_len + 1))
        tail = length - 1
        want = int(rng.integers(0, 3))
        counts = [c for c in range(tail + 1) if c % 3 == want] or list(range(tail + 1))
        count = int(rng.choice(counts))
        body = ["U"] * tail
        for i in rng.choice(tail, size=count, replace=False):
            body[int(i)] = "I"
        out.append(("M", *body))
    return out


def hard_negative(rng: np.random.Generator, theorem: str, max_len: int) -> Tokens:
    """One edit away from ``theorem`` (which starts with M and has no other M)."""
    kind = int(rng.integers(0, 5))
    s = theorem
    if kind == 0:  # an M moved late: insert one after the start
        i = int(rng.integers(1, len(s) + 1))
        s = s[:i] + "M" + s[i:]
    elif kind == 1 and len(s) > 1:  # a later letter replaced by M
        i = int(rng.integers(1, len(s)))
        s = s[:i] + "M" + s[i + 1:]
    elif kind == 2 and len(s) > 1:  # the leading M dropped
        s = s[1:]
    elif kind == 3:  # one I too many
        i = int(rng.integers(1, len(s) + 1))
        s = s[:i] + "I" + s[i:]
    else:  # one I too few (or one too many if there is none to drop)
        spots = [i for i, c in enumerate(s) if c == "I"]
        if spots:
            i = int(rng.choice(spots))
            s = s[:i] + s[i + 1:]
        else:
            s = s + "I"
    return tuple((s or "I")[:max_len])


def pools(rng: np.random.Generator, vocab: Sequence[str], max_len: int, size: int) -> dict[str, list[Tokens]]:
    """The four pools of the module docstring, ``size`` strings each (derived: all found)."""
    short = min(max_len, DERIVE_MAX_LEN)  # the search grows about 3x per 2 letters
    derived = [tuple(s) for s in miu.derive(short, search_bound=short + 4)]
    well = well_formed(rng, size, max_len)
    theorems = [("".join(x)) for x in well if miu.is_theorem("".join(x))] + ["".join(x) for x in derived]
    negatives = [hard_negative(rng, theorems[int(rng.integers(0, len(theorems)))], max_len) for _ in range(size)]
    return {"well_formed": well, "derived": derived, "hard_negative": negatives,
            "uniform": uniform_inputs(rng, vocab, size, max_len)}


MIU_MIX = DataMix(
    pools=pools,
    shares=(("well_formed", 0.35), ("derived", 0.15), ("hard_negative", 0.35), ("uniform", 0.15)),
    balance_final=True,
    held_out=("well_formed", "hard_negative", "derived"),
)


# -- evaluation and checks ------------------------------------------------------


def clauses(x: Tokens) -> dict[str, Any]:
    """The three clauses of the MIU criterion for one string, and the first that fails."""
    starts = len(x) > 0 and x[0] == "M"
    no_later = "M" not in x[1:]
    mod3 = x.count("I") % 3
    deciding = ("starts_with_M" if not starts else "later_M" if not no_later
                else "I_count_mod_3" if mod3 == 0 else "theorem")
    return {"starts_with_M": starts, "no_later_M": no_later, "I_count_mod_3": mod3, "deciding": deciding}


def against_rewrite_system(outputs: Mapping[Tokens, Sequence[str]], max_len: int) -> dict[str, Any]:
    """Every theorem the bounded search derives, where it was checked, must be accepted."""
    bound = max(SEARCH_BOUND, max_len)
    derived = miu.derive(max_len, search_bound=bound)
    accepted = {"".join(x): bool(p) and p[-1] == "True" for x, p in outputs.items()}
    missed = sorted(s for s in derived if s in accepted and not accepted[s])
    checked = sum(s in accepted for s in derived)
    return {"search_bound": bound, "derived": len(derived), "checked": checked,
            "derived_and_rejected": missed[:10], "passed": not missed,
            "summary": f"rewrite system (search bound {bound}): {len(derived)} theorems derived, "
                       f"{checked} checked, all accepted: {not missed}"}


REWRITE_SYSTEM = Check("rewrite_system", against_rewrite_system,
                       "every theorem the rewrite rules derive (bounded search) is accepted")

MIU_TASK = Task(
    name="miu",
    description="MIU theorem recogniser: verdict for every prefix (MU puzzle)",
    vocab=miu.ALPHABET,
    default_max_len=10,
    causal=True,
    output="theorem",
    reference=lambda tokens: miu.prefix_verdicts("".join(tokens)),
    data=MIU_MIX,
    checks=(REWRITE_SYSTEM,),
    clauses=clauses,
    probes=PROBES,
    probe_output="True",
    exact_within_s=90.0,
    language=MIU_THEOREMS,
)
