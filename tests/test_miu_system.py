"""The MIU rewrite system and the decision criterion agree."""

import itertools

import pytest

from rasp_programs import miu

# Smallest intermediate-length bound with which the breadth-first search finds
# every theorem of length <= 6 (found by increasing the bound from 6: at 12 it
# still misses MIUUUI, MUUUII and MUUUUI, which need a 13-letter detour).
COMPLETE_BOUND_FOR_LEN_6 = 13


def all_strings(max_len):
    for n in range(1, max_len + 1):
        for p in itertools.product(miu.ALPHABET, repeat=n):
            yield "".join(p)


@pytest.mark.parametrize("before, rule, after", [
    ("MI", 1, "MIU"), ("MIU", 2, "MIUIU"), ("MIIII", 3, "MUI"), ("MIIII", 3, "MIU"),
    ("MUUU", 4, "MU"), ("MIUUI", 4, "MII"),
])
def test_each_rule_rewrites_as_hofstadter_states(before, rule, after):
    assert miu.Step(rule, before, after) in set(miu.successors(before))


def test_rules_do_not_fire_where_they_should_not():
    assert {s.rule for s in miu.successors("MU")} == {2}  # no trailing I, no III, no UU
    assert list(miu.successors("UI")) == [miu.Step(1, "UI", "UIU")]  # rule II needs a leading M


def test_every_derived_string_passes_the_criterion_and_its_derivation_replays():
    derived = miu.derive(10, search_bound=16)
    assert len(derived) > 300
    for theorem, steps in derived.items():
        assert miu.is_theorem(theorem), theorem
        s = miu.AXIOM
        for step in steps:
            assert step.before == s and step in set(miu.successors(s))
            s = step.after
        assert s == theorem


def test_search_with_documented_bound_finds_every_theorem_up_to_length_6():
    expected = {s for s in all_strings(6) if miu.is_theorem(s)}
    assert set(miu.derive(6, search_bound=COMPLETE_BOUND_FOR_LEN_6)) == expected
    # The bound is tight: one less misses some theorems, so the test can fail.
    assert set(miu.derive(6, search_bound=COMPLETE_BOUND_FOR_LEN_6 - 1)) < expected


def test_mu_is_not_a_theorem_and_is_never_derived():
    assert not miu.is_theorem("MU")
    assert "MU" not in miu.derive(10, search_bound=20)


def test_prefix_verdicts():
    assert miu.prefix_verdicts("MIIIU") == [False, True, True, False, False]
    assert miu.prefix_verdicts("IMI") == [False, False, False]
