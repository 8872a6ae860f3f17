"""``miu_mod3``: the MIU task solved by a prefix scan over Z3, never counting the I's.

A negative control for the comparison. Like ``miu`` it decides the M rule with
``bad_M_at`` marks and a ``SelectorWidth`` count, but it only ever knows the
number of I's *mod 3*: a Hillis–Steele scan adds residues over windows that
double at every step (attend 1, 2, 4, 8 positions back), so no position holds
the full count. Interchange interventions on the verdict cannot tell the two
apart; a count probe inside the causal subspace can.

Each step needs every query to select exactly one key (a categorical
``Aggregate`` that selects nothing compiles to a zero vector while RASP gives
``None``). A query ``q < off`` has no key ``off`` back, so it reads itself, and
the combining MLP ignores that read: it sees ``q`` because the running state is
packed with the position, ``scan_w = (I's in the last 2w positions mod 3, q)``.
The read itself is of the plain residue ``last_w`` (3 values): a head's value
may have no more categories than its query/key spaces are wide (Tracr's known
``key_size`` crash), so the 30-valued packed state is not aggregated.

  layer 0 attn: prev_token  = token one back (own token at q = 0)
  layer 0 MLP : I_mod3_at   = (1 if I else 0, q);  bad_M_at
  layer 1     : count_bad_M (SelectorWidth);  MLP: scan_1, last_2
  layer 2     : back_2 = last_2 from 2 back;  MLP: scan_2, last_4
  layer 3     : back_4 = last_4 from 4 back;  MLP: scan_4, last_8
  layer 4     : back_8 = last_8 from 8 back;  MLP: I_mod_3 (window 16)
  layer 5 MLP : theorem = count_bad_M == 0 and I_mod_3 != 0

The first step reads the token itself, so that its head runs in layer 0
beside the marks. (Reading a layer-0 MLP output would put it at the depth of
``count_bad_M``'s head, and Tracr's layer allocation would then spend a layer.)
Windows reach 16 positions, so the program is exact up to length 16.
"""

from __future__ import annotations

from rasp_programs.miu_programs import _bad_m_at, _count_marked_prefix
from rasp_programs.miu_task import MIU_TASK
from rasp_programs.spec import ProgramSpec, Variable

OFFSETS = (1, 2, 4, 8)  # step k reads 2**k back; the window after the last step is 16 long
MAX_LEN = 2 * OFFSETS[-1]


def _read_back(off: int):
    """Select predicate: the key ``off`` positions back, or the query itself when there is none."""
    return lambda k, q: k == (q - off if q >= off else q)


def _is_i(value) -> int:
    # The first step reads a token, later steps a residue.
    return (1 if value == "I" else 0) if isinstance(value, str) else value


def _add(off: int):
    """Combining MLP: own residue plus the one read ``off`` back, unless that read was the query itself."""
    return lambda own, back: (own[0] + _is_i(back)) % 3 if own[1] >= off else own[0]


def _pack(off: int):
    return lambda own, back: (_add(off)(own, back), own[1])


def build_miu_mod3():
    from tracr.rasp import rasp  # Tracr stays out of import time.

    bad_m_at = rasp.categorical(rasp.SequenceMap(
        lambda t, i: i if (t == "M") != (i == 0) else -1, rasp.tokens, rasp.indices)).named("bad_M_at")
    count_bad = rasp.categorical(rasp.SelectorWidth(
        rasp.Select(bad_m_at, rasp.indices, lambda k, q: 0 <= k <= q).named("prefix_bad_M"))).named("count_bad_M")
    state = rasp.categorical(rasp.SequenceMap(
        lambda t, i: (1 if t == "I" else 0, i), rasp.tokens, rasp.indices)).named("I_mod3_at")
    plain = rasp.tokens
    for off in OFFSETS:
        back = rasp.categorical(rasp.Aggregate(
            rasp.Select(rasp.indices, rasp.indices, _read_back(off)).named(f"read_{off}"), plain))
        back = back.named("prev_token" if off == 1 else f"back_{off}")
        if off == OFFSETS[-1]:
            i_mod_3 = rasp.categorical(rasp.SequenceMap(_add(off), state, back)).named("I_mod_3")
            break
        plain = rasp.categorical(rasp.SequenceMap(_add(off), state, back)).named(f"last_{2 * off}")
        state = rasp.categorical(rasp.SequenceMap(_pack(off), state, back)).named(f"scan_{off}")
    return rasp.categorical(rasp.SequenceMap(
        lambda c, b: b == 0 and c != 0, i_mod_3, count_bad)).named("theorem")


# -- the same program in plain Python (independent of Tracr) --------------------


def _i_mod3_at(tokens, indices):
    return [(1 if t == "I" else 0, q) for t, q in zip(tokens, indices)]


def _shift(off: int):
    """The value ``off`` positions back, the own value where there is none."""
    return lambda values, indices: [values[q - off] if q >= off else values[q] for q in indices]


def _residue(off: int):
    def fn(state, back):
        out = []
        for (own, q), b in zip(state, back):
            read = (b == "I") if off == 1 else b
            out.append((own + read) % 3 if q >= off else own)
        return out
    return fn


def _packed(off: int):
    return lambda state, back: [(r, q) for r, (_, q) in zip(_residue(off)(state, back), state)]


def _scan_variables() -> tuple[Variable, ...]:
    out = [Variable("prev_token", ("tokens", "indices"), _shift(1), "the token one position back (own at 0)"),
           Variable("I_mod3_at", ("tokens", "indices"), _i_mod3_at,
                    "(1 if this token is I else 0, position): the scan's start, packed with the position")]
    state, back = "I_mod3_at", "prev_token"
    for off in OFFSETS:
        if off > 1:
            back = f"back_{off}"
            out.append(Variable(back, (f"last_{off}", "indices"), _shift(off),
                                f"last_{off} read {off} positions back (own where there is none)"))
        if off == OFFSETS[-1]:
            out.append(Variable("I_mod_3", (state, back), _residue(off),
                                "number of I in the prefix mod 3 (the last 16 positions)"))
            break
        width = 2 * off
        out.append(Variable(f"last_{width}", (state, back), _residue(off),
                            f"number of I in the last {width} positions mod 3"))
        out.append(Variable(f"scan_{off}", (state, back), _packed(off),
                            f"(number of I in the last {width} positions mod 3, position)"))
        state = f"scan_{off}"
    return tuple(out)


MIU_MOD3 = ProgramSpec(
    name="miu_mod3",
    description="MIU theorem recogniser that only knows the I count mod 3: a prefix scan over Z3 "
                "(negative control)",
    task=MIU_TASK,
    max_supported_len=MAX_LEN,  # the scan's last window; SelectorWidth is exact to 24
    build=build_miu_mod3,
    variables=(
        Variable("bad_M_at", ("tokens", "indices"), _bad_m_at,
                 "position of this token if it breaks the M rule (M late, or no M first), else -1"),
        Variable("count_bad_M", ("bad_M_at", "indices"), _count_marked_prefix,
                 "number of M-rule violations in the prefix"),
        *_scan_variables(),
        Variable("theorem", ("I_mod_3", "count_bad_M"), lambda mod, bad: [b == 0 and m != 0 for m, b in zip(mod, bad)],
                 "the prefix is an MIU theorem"),
    ),
)
