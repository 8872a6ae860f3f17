"""Self-identification of derived candidates (slow): compiled, compared as if learned, each ranks itself first.

As ``tests/test_hypotheses.py`` does for the MIU programs: every derived
candidate of a language is compiled, and each compiled model is ranked against
all of them (plain and disguised); it must come first, told apart from every
rival. An untrained network supports none. The candidates are compiled here
at the tasks' default length (10).

Run in full 2026-12-03 after the head-to-head's effectiveness gate (this
file, 25 min 32 s on one core of a busy 2-core machine): ``tomita5.counts``
now identifies itself plain and disguised, as ``tomita5.prefix``,
``tomita4.window``, ``tomita4.prefix`` and ``dyck2.prefix`` do (before the
gate it lost head to head to ``tomita5.fractions``). Two expected failures
remain, strict, each plain and disguised (reasons below): compiled
``tomita5.fractions``, whose own fraction variables do not carry across
positions in the located subspaces, and compiled ``tomita4.reset``, which
scores 0.76 on its own variables and loses head to head to the window. The
untrained network supports no candidate of the three languages.
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
FRACTIONS_CROSS = pytest.mark.xfail(strict=True, reason=(
    "measured 2026-12-03 at length 10: compiled tomita5.fractions has tomita5.counts ranked first (0.99 [0.95, "
    "1.00], supported); its own frac variables are located at block 3 and cross positions at IIA 0.12-0.28 in "
    "their own compiled model (0.90-0.98 on same-position pairs), so fractions scores 0.84 [0.79, 0.90]; neither "
    "wins head to head (287 pairs, 0.18 vs 0.21)"))


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
    "measured 2026-12-02 and again 2026-12-03 at length 10: compiled tomita4.reset scores 0.76 [0.65, 0.85] on "
    "its own variables (not supported) and loses head to head to tomita4.window on 25 pairs (prev_1, prev_2 ~ "
    "prev_state)"))
MARKS = {"tomita5.fractions": FRACTIONS_CROSS, "tomita4.reset": RESET_SCORE}
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
