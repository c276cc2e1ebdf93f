"""A first champion on a sealed set too small for the gate's confidence: passed on the search's evidence,
refused when that evidence is missing or the sealed rows show it worse, and never on a large sealed set."""

from __future__ import annotations

import numpy as np

from darkfab.evaluate import (
    ONE_SD_LEVEL,
    WEAK_SEALED_ROWS,
    HeldOutEvidence,
    SearchEvidence,
    baseline_predictions,
    first_champion,
    gate,
    held_out_evidence,
)


def _verdict(n: int, shift: float, seed: int = 0):
    """Regression on ``n`` sealed rows: a candidate whose error is ``shift`` times the baseline's spread."""
    rng = np.random.default_rng(seed)
    y = rng.normal(10.0, 3.0, n)
    candidate = y + rng.normal(0.0, shift, n)
    baseline = baseline_predictions("regression", y + rng.normal(0.0, 0.5, n), n)
    return gate(
        task="regression",
        metric="rmse",
        direction="minimize",
        y_true=y,
        candidate=candidate,
        champion=baseline,
        min_improvement=0.0,
        confidence=0.9,
        n_boot=500,
        seed=0,
    )


GOOD_SEARCH = SearchEvidence(metric="rmse", score=1.5, baseline=3.0, rows=40, where="the training folds")


def test_a_first_champion_on_a_tiny_sealed_set_passes_on_the_search_evidence_and_says_so():
    strict = _verdict(8, shift=3.0, seed=1)
    assert not strict.passed and strict.delta > 0  # 8 rows cannot show a gain with 0.9 confidence
    v = first_champion(strict, sealed_rows=8, evidence=GOOD_SEARCH, direction="minimize")
    assert v.passed and v.weak_evidence
    assert v.reason.startswith("first champion on weak evidence: the sealed test holds 8 rows")
    assert "beat the baseline's 3" in v.reason and "the next campaign must beat it" in v.reason


def test_no_search_evidence_means_no_first_champion_and_the_reason_says_why():
    strict = _verdict(8, shift=3.0, seed=1)
    worse = SearchEvidence(metric="rmse", score=3.2, baseline=3.0, rows=40, where="the training folds")
    v = first_champion(strict, sealed_rows=8, evidence=worse, direction="minimize")
    assert not v.passed and not v.weak_evidence
    assert v.reason.startswith(strict.reason) and "does not beat the baseline's 3 on the training folds" in v.reason


def test_a_candidate_the_sealed_rows_show_worse_is_refused():
    strict = _verdict(60, shift=12.0)
    assert strict.delta_high < 0  # clearly worse than the training mean
    v = first_champion(strict, sealed_rows=60, evidence=GOOD_SEARCH, direction="minimize")
    assert not v.passed and "the sealed rows show it worse" in v.reason


def test_a_large_sealed_set_keeps_the_strict_gate():
    strict = _verdict(WEAK_SEALED_ROWS, shift=2.95)
    assert not strict.passed
    assert first_champion(strict, sealed_rows=WEAK_SEALED_ROWS, evidence=GOOD_SEARCH, direction="minimize") is strict


# -- a large sealed set that cannot show a real but small gain: the validation rows' evidence, corrected for
# -- the number of candidates the search picked from (a weak-signal data set once got no model at all)


def _held_out(n: int, shift: float, searched: int, seed: int = 3) -> HeldOutEvidence:
    return held_out_evidence(_verdict_at_one_sd(n, shift, seed), rows=n, searched=searched)


def _verdict_at_one_sd(n: int, shift: float, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.normal(10.0, 3.0, n)
    return gate(
        task="regression",
        metric="rmse",
        direction="minimize",
        y_true=y,
        candidate=y + rng.normal(0.0, shift, n),
        champion=baseline_predictions("regression", y + rng.normal(0.0, 0.5, n), n),
        min_improvement=0.0,
        confidence=0.9,
        n_boot=1000,
        seed=0,
        level=ONE_SD_LEVEL,
    )


def _sealed_small_gain():
    strict = _verdict(WEAK_SEALED_ROWS * 3, shift=2.9, seed=4)
    assert not strict.passed and strict.delta > 0  # a gain, too small to show with 0.9 confidence
    return strict


def test_a_first_champion_passes_on_clear_validation_evidence_corrected_for_the_search_size():
    strict = _sealed_small_gain()
    clear = _held_out(1000, shift=1.5, searched=600)
    v = first_champion(strict, sealed_rows=300, evidence=GOOD_SEARCH, direction="minimize", held_out=clear)
    assert v.passed and v.weak_evidence
    assert v.reason.startswith("first champion on the validation rows' evidence: the sealed rows show a gain of")
    assert "1000 validation rows" in v.reason and "the best of 600 candidates" in v.reason


def test_validation_evidence_that_the_search_size_explains_is_not_enough():
    strict = _sealed_small_gain()
    # the same gain on the validation rows, picked from a million candidates: best-of-many luck explains it
    many = _held_out(150, shift=2.7, searched=1_000_000)
    v = first_champion(strict, sealed_rows=300, evidence=GOOD_SEARCH, direction="minimize", held_out=many)
    assert not v.passed and not v.weak_evidence
    assert v.reason.startswith(strict.reason)
    assert "the best of 1000000 candidates" in v.reason and "could be the luck of the search" in v.reason


def test_clear_validation_evidence_does_not_pass_a_candidate_the_sealed_rows_show_no_gain_for():
    worse = _verdict(WEAK_SEALED_ROWS * 3, shift=3.2, seed=4)
    assert worse.delta <= 0
    clear = _held_out(1000, shift=1.5, searched=600)
    v = first_champion(worse, sealed_rows=300, evidence=GOOD_SEARCH, direction="minimize", held_out=clear)
    assert not v.passed and "the sealed rows show no gain" in v.reason


def test_the_validation_rows_are_asked_for_the_gain_the_gate_asks_for():
    clear = HeldOutEvidence(delta=0.1, sd=0.02, rows=1000, searched=10, metric="rmse")
    assert clear.p_value * clear.searched < 0.1
    asked = HeldOutEvidence(delta=0.1, sd=0.02, rows=1000, searched=10, metric="rmse", min_improvement=0.1)
    assert asked.p_value == 0.5  # a gain of exactly the minimum asked: a coin's toss
    strict = _sealed_small_gain()
    v = first_champion(strict, sealed_rows=300, evidence=GOOD_SEARCH, direction="minimize", held_out=asked)
    assert not v.passed and "could be the luck of the search" in v.reason
