"""Drift tests against scipy's reference values, Evidently's selection rule, and the alarm rates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon as scipy_js

from darkfab.monitor import DEFAULT_THRESHOLDS, Reference, detect_drift, select_method
from darkfab.monitor._drift import chi2_pvalue, jensenshannon, ks_pvalue, psi, wasserstein


def _samples(n: int, m: int, seed: int, discrete: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(0.2, 1.3, size=m)
    return (np.round(a * 2), np.round(b * 2)) if discrete else (a, b)


# -- scipy's reference values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "m", "discrete"),
    [(100_000, 10_000, False), (300, 200, True), (50, 7, False), (1000, 1, False), (5, 5000, True), (20_000, 30, True)],
)
def test_wasserstein_matches_scipy(n: int, m: int, discrete: bool) -> None:
    a, b = _samples(n, m, seed=n + m, discrete=discrete)
    assert wasserstein(np.sort(a), b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("n", "m", "discrete"),
    [(800, 500, False), (300, 200, True), (50, 7, False), (100_000, 10_000, False), (20_000, 20_000, True)],
)
def test_ks_matches_scipy(n: int, m: int, discrete: bool) -> None:
    a, b = _samples(n, m, seed=n * 3 + m, discrete=discrete)
    assert ks_pvalue(np.sort(a), b) == pytest.approx(stats.ks_2samp(a, b).pvalue, rel=1e-9, abs=1e-300)


def test_chi_square_matches_scipy_including_unseen_categories() -> None:
    ref, cur = np.array([30, 40, 50, 0]), np.array([10, 20, 30, 9])  # the last category is new in the window
    expected = stats.chi2_contingency(np.vstack([ref, cur]), correction=False).pvalue
    assert chi2_pvalue(ref, cur) == pytest.approx(expected, rel=1e-12)
    # with the reference shares as exact, it is scipy's goodness-of-fit test when the reference is huge
    big = ref[:3] * 100_000
    fit = stats.chisquare(cur[:3], f_exp=big / big.sum() * cur[:3].sum()).pvalue
    assert chi2_pvalue(big, cur[:3]) == pytest.approx(fit, rel=1e-3)


def test_jensen_shannon_matches_scipy() -> None:
    ref, cur = np.array([3, 4, 5, 0]), np.array([1, 2, 3, 9])
    assert jensenshannon(ref, cur) == pytest.approx(scipy_js(ref, cur), rel=1e-12)
    assert jensenshannon(ref, ref * 7) == pytest.approx(0.0, abs=1e-9)


def test_psi_follows_its_formula_with_empty_bins_floored() -> None:
    ref, cur = np.array([50, 30, 20, 0]), np.array([20, 30, 40, 10])
    p = np.maximum(ref / ref.sum(), 1e-4)
    q = np.maximum(cur / cur.sum(), 1e-4)
    assert psi(ref, cur) == pytest.approx(float(np.sum((q - p) * np.log(q / p))))


def test_detect_drift_reports_the_scipy_values_per_column() -> None:
    rng = np.random.default_rng(3)
    big = pd.DataFrame({"x": rng.normal(size=5000), "c": rng.choice(list("abc"), size=5000)})
    cur = pd.DataFrame({"x": rng.normal(0.5, 1, size=400), "c": rng.choice(list("abcd"), size=400)})
    report = detect_drift(big, cur, feature_types={"x": "numeric", "c": "categorical"}, method="auto")
    x, c = report.columns
    assert x.method == "wasserstein"
    assert x.statistic == pytest.approx(stats.wasserstein_distance(big.x, cur.x) / np.std(big.x), rel=1e-9)
    cats = ["a", "b", "c", "d"]
    ref_counts = big.c.value_counts().reindex(cats, fill_value=0).to_numpy()
    cur_counts = cur.c.value_counts().reindex(cats, fill_value=0).to_numpy()
    assert c.method == "jensenshannon"
    assert c.statistic == pytest.approx(scipy_js(ref_counts, cur_counts), rel=1e-9)

    small = big.iloc[:600]
    x, c = detect_drift(small, cur, feature_types={"x": "numeric", "c": "categorical"}).columns
    assert (x.method, c.method) == ("ks", "chi2")
    assert x.statistic == pytest.approx(stats.ks_2samp(small.x, cur.x).pvalue, rel=1e-9)
    table = np.vstack([small.c.value_counts().reindex(cats, fill_value=0).to_numpy(), cur_counts])
    assert c.statistic == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue, rel=1e-9)


# -- the selection rule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "n_unique", "n_ref", "expected"),
    [
        ("numeric", 6, 1000, "ks"),
        ("numeric", 6, 1001, "wasserstein"),
        ("numeric", 5, 1000, "chi2"),
        ("numeric", 5, 1001, "jensenshannon"),
        ("categorical", 50, 10, "chi2"),
        ("categorical", 50, 100_000, "jensenshannon"),
    ],
)
def test_auto_picks_as_evidently_does(kind: str, n_unique: int, n_ref: int, expected: str) -> None:
    assert select_method(kind, n_unique, n_ref) == expected


def test_a_forced_method_applies_where_it_can_and_numeric_tests_skip_text() -> None:
    assert select_method("numeric", 100, 50, "psi") == "psi"
    assert select_method("numeric", 3, 50_000, "ks") == "ks"
    assert select_method("categorical", 3, 50_000, "ks") == "jensenshannon"
    assert select_method("categorical", 3, 50, "wasserstein") == "chi2"
    assert select_method("categorical", 3, 50, "psi") == "psi"


def test_reference_chooses_per_column_by_type_and_size() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"num": rng.normal(size=2000), "few": rng.integers(0, 3, 2000), "cat": rng.choice(["u", "v"], 2000)}
    )
    assert Reference(frame).methods() == {"num": "wasserstein", "few": "jensenshannon", "cat": "jensenshannon"}
    assert Reference(frame.iloc[:1000]).methods() == {"num": "ks", "few": "chi2", "cat": "chi2"}
    assert set(Reference(frame).methods("psi").values()) == {"psi"}
    with pytest.raises(ValueError, match="must be one of"):
        Reference(frame).methods("kl")


def test_thresholds_default_per_method_and_can_be_overridden() -> None:
    rng = np.random.default_rng(1)
    ref = pd.DataFrame({"x": rng.normal(size=3000)})
    cur = pd.DataFrame({"x": rng.normal(0.15, 1, size=500)})
    default = detect_drift(ref, cur, feature_types={"x": "numeric"}).columns[0]
    assert default.threshold == DEFAULT_THRESHOLDS["wasserstein"] == 0.1
    assert default.drifted == (default.statistic >= 0.1)
    strict = detect_drift(ref, cur, feature_types={"x": "numeric"}, threshold=0.5).columns[0]
    assert strict.threshold == 0.5 and not strict.drifted
    ks = detect_drift(ref, cur, feature_types={"x": "numeric"}, method="ks").columns[0]
    assert ks.method == "ks" and ks.threshold == 0.05 and ks.drifted == (ks.statistic < 0.05)


# -- drift found, and no false alarms -------------------------------------------------------------


def _world(n: int, rng: np.random.Generator, shift: bool = False) -> pd.DataFrame:
    frame = pd.DataFrame({f"n{i}": rng.normal(size=n) * (1 + i) for i in range(6)})
    frame["count"] = rng.integers(0, 4, size=n)
    frame["colour"] = rng.choice(["red", "green", "blue"], size=n, p=[0.5, 0.3, 0.2])
    if shift:
        frame["n0"] = frame["n0"] + 1.0
        frame["n3"] = frame["n3"] * 1.8
        frame["n4"] = rng.normal(size=n) * 5 + 3
        frame["colour"] = rng.choice(["red", "green", "blue", "violet"], size=n, p=[0.1, 0.2, 0.3, 0.4])
        frame["count"] = rng.integers(2, 6, size=n)
    return frame


TYPES = {**{f"n{i}": "numeric" for i in range(6)}, "count": "numeric", "colour": "categorical"}
SHIFTED = {"n0", "n3", "n4", "colour", "count"}


@pytest.mark.parametrize("reference_rows", [800, 20_000])  # statistical tests, then distances
def test_a_shifted_feature_set_is_found_and_named(reference_rows: int) -> None:
    rng = np.random.default_rng(11)
    reference = Reference(_world(reference_rows, rng), TYPES)
    report = detect_drift(reference, _world(500, rng, shift=True), drift_share=0.5)
    assert report.dataset_drift
    assert set(report.drifted_columns) == SHIFTED
    assert report.share_drifted == pytest.approx(len(SHIFTED) / len(TYPES))
    for name in SHIFTED:
        assert name in report.describe()


@pytest.mark.parametrize("reference_rows", [1000, 20_000])
def test_a_stationary_stream_raises_no_alarm_at_the_declared_rate(reference_rows: int) -> None:
    rng = np.random.default_rng(2024)
    reference = Reference(_world(reference_rows, rng), TYPES)
    alarms, column_alarms = 0, 0
    for _ in range(50):
        report = detect_drift(reference, _world(500, rng), drift_share=0.5)
        alarms += report.dataset_drift
        column_alarms += sum(c.drifted for c in report.columns)
    assert alarms / 50 <= 0.05
    assert column_alarms / (50 * len(TYPES)) <= 0.10  # p < 0.05 per column, with room for chance


def test_prediction_drift_is_tested_like_a_column() -> None:
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": rng.normal(size=3000)})
    cur = pd.DataFrame({"x": rng.normal(size=300)})
    ref_pred = rng.choice(["yes", "no"], size=3000, p=[0.3, 0.7])
    same = detect_drift(
        ref,
        cur,
        feature_types={"x": "numeric"},
        reference_predictions=ref_pred,
        current_predictions=rng.choice(["yes", "no"], size=300, p=[0.3, 0.7]),
    )
    assert same.prediction_drift is not None and not same.prediction_drift.drifted
    moved = detect_drift(
        ref,
        cur,
        feature_types={"x": "numeric"},
        reference_predictions=ref_pred,
        current_predictions=rng.choice(["yes", "no"], size=300, p=[0.8, 0.2]),
    )
    assert moved.prediction_drift is not None and moved.prediction_drift.drifted
    assert moved.prediction_drift.method == "jensenshannon"
    assert not moved.dataset_drift  # prediction drift is reported, not counted among the features
    assert detect_drift(ref, cur, feature_types={"x": "numeric"}).prediction_drift is None


def test_missing_values_and_absent_columns_do_not_break_the_tests() -> None:
    rng = np.random.default_rng(6)
    ref = pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", None], size=2000)})
    cur = pd.DataFrame({"x": [np.nan] * 50})
    report = detect_drift(ref, cur, feature_types={"x": "numeric", "c": "categorical"})
    assert [c.drifted for c in report.columns] == [False, False]
    assert all(np.isnan(c.statistic) for c in report.columns)
    assert report.to_dict()["columns"][0]["statistic"] is None


def test_bad_arguments_name_the_rule() -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="drift_share"):
        detect_drift(ref, ref, drift_share=0)
    with pytest.raises(ValueError, match="method"):
        detect_drift(ref, ref, method="kl")
    with pytest.raises(ValueError, match="no column"):
        Reference(ref, {"y": "numeric"})
