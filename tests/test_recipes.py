"""Specification of chapter 6's rule (lenet_book.recipes.paired_test and keep_change) and of
``summarize``: accuracies of two recipes are paired by seed, and bad input is refused with a
message that says what is wrong."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from lenet_book import recipes

BEFORE = {0: 0.80, 1: 0.81, 2: 0.82, 3: 0.81}


def test_a_change_better_on_every_seed_is_kept():
    after = {0: 0.85, 1: 0.86, 2: 0.84, 3: 0.85}
    result = recipes.paired_test(BEFORE, after)
    assert result["wins"] == 4 and result["n"] == 4
    assert result["gain"] == pytest.approx(0.04)
    assert result["mean_before"] == pytest.approx(0.81)
    assert result["mean_after"] == pytest.approx(0.85)
    t_test = stats.ttest_rel(list(after.values()), list(BEFORE.values()), alternative="greater")
    assert result["p"] == pytest.approx(t_test.pvalue)
    assert result["sign_p"] == pytest.approx(1 / 16)  # 4 wins of 4, one-sided
    assert recipes.keep_change(BEFORE, after)


def test_a_change_within_the_noise_or_worse_is_dropped():
    assert not recipes.keep_change(BEFORE, {0: 0.81, 1: 0.80, 2: 0.83, 3: 0.80})
    assert not recipes.keep_change(BEFORE, {seed: acc - 0.05 for seed, acc in BEFORE.items()})


def test_pairs_follow_the_seeds_not_the_order():
    after = {3: 0.82, 2: 0.83, 1: 0.82, 0: 0.81}   # each seed 0.01 better, listed backwards
    assert recipes.paired_test(BEFORE, after)["wins"] == 4
    assert recipes.paired_test(BEFORE, after)["p"] < 1e-6   # about the same gain on every seed


def test_ties_count_for_neither_side_in_the_sign_test():
    result = recipes.paired_test(BEFORE, {0: 0.80, 1: 0.82, 2: 0.83, 3: 0.82})
    assert result["wins"] == 3 and result["sign_p"] == pytest.approx(1 / 8)


def test_the_threshold_is_five_percent():
    assert recipes.ALPHA == 0.05


@pytest.mark.parametrize("before, after, error, message", [
    ({}, BEFORE, ValueError, "before has no runs"),
    (BEFORE, [0.8, 0.9], TypeError, r"after must be a dict \{seed: accuracy\}"),
    (BEFORE, {0: 0.8, 1: 0.8, 2: 0.8}, ValueError, r"seeds must match: only before has \[3\]"),
    (BEFORE, {**BEFORE, 7: 0.9}, ValueError, r"only after has \[7\]"),
    ({0: 0.8}, {0: 0.9}, ValueError, "at least 2 seeds"),
    (BEFORE, {**BEFORE, 1: 81.0}, ValueError, "after's accuracy for seed 1"),
    (BEFORE, {**BEFORE, 1: -0.1}, ValueError, "after's accuracy for seed 1"),
    (BEFORE, {**BEFORE, 2: math.nan}, ValueError, "seed 2"),
    ({**BEFORE, 0: "0.8"}, BEFORE, TypeError, "before's accuracy for seed 0 must be a number"),
    ({**BEFORE, 0: None}, BEFORE, TypeError, "must be a number"),
    ({**BEFORE, 0: True}, BEFORE, TypeError, "must be a number"),
])
def test_bad_comparisons_are_refused(before, after, error, message):
    with pytest.raises(error, match=message):
        recipes.paired_test(before, after)
    with pytest.raises(error, match=message):
        recipes.keep_change(before, after)


def test_summarize():
    assert recipes.summarize([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(2 ** 0.5),
                                             "min": 1.0, "max": 3.0, "n": 2}
    assert recipes.summarize([0.5]) == {"mean": 0.5, "std": 0.0, "min": 0.5, "max": 0.5, "n": 1}


@pytest.mark.parametrize("values, error, message", [
    ([], ValueError, "at least one accuracy"),
    ([0.5, "0.6"], TypeError, "must be a number"),
    ([0.5, None], TypeError, "must be a number"),
    ([0.5, math.inf], ValueError, "accuracy"),
])
def test_summarize_refuses_bad_input(values, error, message):
    with pytest.raises(error, match=message):
        recipes.summarize(values)


def test_the_same_gain_on_every_seed_is_decided_without_a_spread():
    same = {0: 0.5, 1: 0.25, 2: 0.75}
    assert recipes.paired_test(same, {seed: acc + 0.125 for seed, acc in same.items()})["p"] == 0.0
    assert recipes.paired_test(same, same)["p"] == 1.0 and not recipes.keep_change(same, same)
