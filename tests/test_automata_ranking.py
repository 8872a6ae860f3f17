"""Self-identification of derived candidates (slow): compiled, compared as if learned, each ranks itself first.

As ``tests/test_hypotheses.py`` does for the MIU programs: every derived
candidate of a language is compiled, and each compiled model is ranked against
all of them (plain and disguised); it must come first, told apart from every
rival. An untrained network supports none. The candidates are compiled here
at length 8 (``MAX_LEN`` >= 8 keeps every construction's depth).
"""

from __future__ import annotations

import pytest

from compare.controls import disguise, random_model
from compare.hypotheses import Support, rank
from compare.pipeline import prepare
from rasp_programs.registry import derived_candidates, get_program
from test_hypotheses import HYP, check_identifies

pytestmark = pytest.mark.slow
LANGUAGES = ("tomita5", "tomita4")
MAX_LEN = 8


@pytest.fixture(scope="module")
def preps():
    pytest.importorskip("jax")
    from compiled.compile import compile_program
    from compiled.export import to_torch

    out = {}
    for language in LANGUAGES:
        out[language] = {}
        for name in derived_candidates(language):
            model, meta = to_torch(compile_program(get_program(name), MAX_LEN))
            out[language][name] = prepare(get_program(name), model, meta, HYP)
    return out


CASES = [(lang, name) for lang in LANGUAGES for name in derived_candidates(lang)]


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
