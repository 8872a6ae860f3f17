"""Self-identification of derived candidates (slow): compiled, compared as if learned, each ranks itself first.

As ``tests/test_hypotheses.py`` does for the MIU programs: every derived
candidate of a language is compiled, and each compiled model is ranked against
all of them (plain and disguised); it must come first, told apart from every
rival. An untrained network supports none. The candidates are compiled here
at the tasks' default length (10).

Measured 2026-12-02 at length 10, plain copies, with the ranking as it stands
(``/tmp`` script, the ``HYP`` setting of ``test_hypotheses``): compiled
``tomita5.prefix`` ranks itself first, supported (0.99 [0.98, 1.00]).
Compiled ``tomita5.counts`` scores 1.00 [1.00, 1.00] but loses head to head
to ``tomita5.fractions`` (287 pairs), so fractions ranks first; compiled
``tomita5.fractions`` has ``tomita5.counts`` ranked first (0.99, supported).
Count and fraction are in one-to-one correspondence at each position, the
same defect as compiled ``miu`` vs ``miu_mean`` (strict xfail in
``test_hypotheses``), so those two are expected failures here. Tomita 4:
compiled ``tomita4.window`` ranks itself first, supported (1.00 [0.98,
1.00]); compiled ``tomita4.reset`` scores 0.76 [0.65, 0.85], not supported,
and loses head to head to ``tomita4.window`` (expected failure).

Run in full 2026-12-03 (this file, 16 min 25 s on one core of a busy 2-core
machine): 11 passed, 6 expected failures. ``tomita5.prefix``,
``tomita4.window``, ``tomita4.prefix`` and ``dyck2.prefix`` identify
themselves plain and disguised; the count/fraction pair and
``tomita4.reset`` fail in the same way plain and disguised, so those
expected failures are strict: a fix makes them pass and must update them.
The untrained network supports no candidate of the three languages.
"""

from __future__ import annotations

import pytest

from compare.controls import disguise, random_model
from compare.hypotheses import Support, rank
from compare.pipeline import prepare
from rasp_programs.registry import derived_candidates, get_program
from test_hypotheses import HYP, check_identifies

pytestmark = pytest.mark.slow
LANGUAGES = ("tomita5", "tomita4", "dyck2")
COUNT_VS_FRACTION = pytest.mark.xfail(strict=True, reason=(
    "measured 2026-12-02 at length 10: compiled tomita5.counts loses head to head to tomita5.fractions, and "
    "compiled tomita5.fractions has tomita5.counts ranked first (supported): count and fraction are one-to-one at "
    "each position (see test_hypotheses' miu xfail)"))


@pytest.fixture(scope="module")
def preps():
    pytest.importorskip("jax")
    from compiled.compile import compile_program
    from compiled.export import to_torch

    out = {}
    for language in LANGUAGES:
        out[language] = {}
        for name in derived_candidates(language):
            spec = get_program(name)
            model, meta = to_torch(compile_program(spec, spec.default_max_len))
            out[language][name] = prepare(spec, model, meta, HYP)
    return out


RESET_SCORE = pytest.mark.xfail(strict=True, reason=(
    "measured 2026-12-02 at length 10: compiled tomita4.reset scores 0.76 [0.65, 0.85] on its own variables (not "
    "supported) and loses head to head to tomita4.window on 25 pairs (prev_1, prev_2 ~ prev_state)"))
MARKS = {"tomita5.counts": COUNT_VS_FRACTION, "tomita5.fractions": COUNT_VS_FRACTION, "tomita4.reset": RESET_SCORE}
CASES = [pytest.param(lang, name, marks=MARKS[name]) if name in MARKS else (lang, name)
         for lang in LANGUAGES for name in derived_candidates(lang)]


@pytest.mark.parametrize("disguised", [False, True], ids=["plain", "disguised"])
@pytest.mark.parametrize("language, name", CASES)
def test_each_derived_candidate_identifies_itself(preps, language, name, disguised):
    model = preps[language][name].compiled.model
    if disguised:
        model, _ = disguise(model, 11, invertible=True)
    check_identifies(rank(preps[language], model), name)


@pytest.mark.parametrize("language", LANGUAGES)
def test_untrained_network_supports_no_derived_candidate(preps, language):
    first = next(iter(preps[language].values()))
    ranking = rank(preps[language], random_model(first.compiled.model, 3))
    assert not any(c.support is Support.SUPPORTED for c in ranking.candidates.values())
