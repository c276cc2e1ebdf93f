"""The numpy metrics agree with scikit-learn's (and with plain loops where scikit-learn has none)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from darkfab.errors import DataError
from darkfab.evaluate import GroupCodes, as_probabilities, compute_metrics, encode_groups, predicted_labels


def _probs(rng: np.random.Generator, n: int, k: int, ties: bool) -> np.ndarray:
    p = rng.dirichlet(np.ones(k), n)
    if ties:
        p = np.round(p, 1) + 1e-3  # many equal scores, rows still positive
        p /= p.sum(axis=1, keepdims=True)
    return p


def _ece_loop(y: np.ndarray, p: np.ndarray) -> float:
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    total = 0.0
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += abs(correct[inside].mean() - conf[inside].mean()) * inside.mean()
    return total


CASES = [
    # (n, k, ties, drop a class from y_true)
    (400, 2, False, False),
    (400, 2, True, False),
    (400, 10, False, True),
    (300, 5, True, True),
    (57, 3, False, False),
]


@pytest.mark.parametrize("n,k,ties,drop", CASES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_match_sklearn(n: int, k: int, ties: bool, drop: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    if drop:
        y[y == k - 1] = 0
    p = _probs(rng, n, k, ties)
    got = compute_metrics("classification", y, p, n_classes=k)
    pred = p.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        expected = {
            "accuracy": skm.accuracy_score(y, pred),
            "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
            "f1": skm.f1_score(y, pred, average="binary" if k == 2 else "macro"),
            "log_loss": skm.log_loss(y, p, labels=list(range(k))),
        }
    if k == 2:
        expected["roc_auc"] = skm.roc_auc_score(y, p[:, 1])
    else:
        expected["roc_auc"] = np.mean([skm.roc_auc_score(y == c, p[:, c]) for c in np.unique(y)])
        if not drop:
            expected_ovr = skm.roc_auc_score(y, p, multi_class="ovr", labels=list(range(k)))
            assert got["roc_auc"] == pytest.approx(expected_ovr, abs=1e-12)
    expected["ece"] = _ece_loop(y, p)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_roc_auc_is_nan_with_one_class() -> None:
    p = _probs(np.random.default_rng(0), 20, 3, False)
    assert math.isnan(compute_metrics("classification", np.zeros(20, int), p, n_classes=3)["roc_auc"])
    p2 = _probs(np.random.default_rng(0), 20, 2, False)
    assert math.isnan(compute_metrics("classification", np.ones(20, int), p2, n_classes=2)["roc_auc"])


def test_f1_without_positives_is_zero_like_sklearn() -> None:
    y = np.zeros(10, int)
    p = np.tile([0.9, 0.1], (10, 1))
    assert compute_metrics("classification", y, p, n_classes=2)["f1"] == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(3.0, 2.0, 400)
    pred = y + rng.normal(0.0, 1.0, 400)
    pred[:20] = np.round(pred[:20])
    got = compute_metrics("regression", y, pred, n_classes=0)
    assert got["rmse"] == pytest.approx(skm.root_mean_squared_error(y, pred), abs=1e-12)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred), abs=1e-12)
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred), abs=1e-12)


def test_r2_of_a_constant_target_follows_sklearn() -> None:
    y = np.full(5, 2.0)
    assert compute_metrics("regression", y, y, n_classes=0)["r2"] == skm.r2_score(y, y) == 1.0
    off = y + 1.0
    assert compute_metrics("regression", y, off, n_classes=0)["r2"] == skm.r2_score(y, off) == 0.0


def test_regression_nan_predictions_give_nan() -> None:
    got = compute_metrics("regression", np.ones(3), np.array([1.0, np.nan, 1.0]), n_classes=0)
    assert math.isnan(got["rmse"]) and math.isnan(got["mae"])


def _fairness_loop(y: np.ndarray, pred: np.ndarray, groups: list[object], k: int) -> tuple[float, float]:
    keys = ["missing" if g is None or (isinstance(g, float) and math.isnan(g)) else g for g in groups]
    labels = sorted(set(keys), key=str)
    dpd = eod = 0.0
    for c in range(k):
        rates, tprs, fprs = [], [], []
        for g in labels:
            rows = np.array([key == g for key in keys])
            rates.append(np.mean(pred[rows] == c))
            pos = rows & (y == c)
            neg = rows & (y != c)
            if pos.any():
                tprs.append(np.mean(pred[pos] == c))
            if neg.any():
                fprs.append(np.mean(pred[neg] == c))
        dpd = max(dpd, max(rates) - min(rates))
        for r in (tprs, fprs):
            if r:
                eod = max(eod, max(r) - min(r))
    return dpd, eod


@pytest.mark.parametrize("k", [2, 4])
def test_classification_fairness_matches_a_loop(k: int) -> None:
    rng = np.random.default_rng(k)
    n = 300
    y = rng.integers(0, k, n)
    p = _probs(rng, n, k, False)
    groups = list(rng.choice(np.array(["a", "b", "c", None, float("nan")], dtype=object), n))
    got = compute_metrics("classification", y, p, n_classes=k, groups=np.array(groups, dtype=object))
    dpd, eod = _fairness_loop(y, p.argmax(axis=1), groups, k)
    assert got["demographic_parity_diff"] == pytest.approx(dpd, abs=1e-12)
    assert got["equalized_odds_diff"] == pytest.approx(eod, abs=1e-12)
    assert got["fairness_gap"] == pytest.approx(max(dpd, eod), abs=1e-12)
    again = compute_metrics("classification", y, p, n_classes=k, groups=GroupCodes(groups))
    assert again == got


def test_binary_fairness_matches_the_positive_class_definition() -> None:
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    pred = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    p = np.column_stack([1 - pred, pred]).astype(float)
    g = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    got = compute_metrics("classification", y, p, n_classes=2, groups=g)
    # group 0: selection 1/4, TPR 1/2, FPR 0; group 1: selection 3/4, TPR 1, FPR 1/2
    assert got["demographic_parity_diff"] == pytest.approx(0.5)
    assert got["equalized_odds_diff"] == pytest.approx(0.5)


def test_regression_fairness_gap() -> None:
    y = np.zeros(6)
    pred = np.array([1.0, 1.0, 1.0, 3.0, 3.0, 3.0])
    got = compute_metrics("regression", y, pred, n_classes=0, groups=["x", "x", "x", None, None, None])
    assert got["fairness_gap"] == pytest.approx((3.0 - 1.0) / 2.0)
    perfect = compute_metrics("regression", y, y, n_classes=0, groups=["x", "y"] * 3)
    assert perfect["fairness_gap"] == 0.0


def test_encode_groups_joins_none_and_nan() -> None:
    codes, labels = encode_groups(np.array(["a", None, float("nan"), "a", 3], dtype=object))
    assert codes.tolist() == [0, 1, 1, 0, 2]
    assert labels == ("a", "missing", 3)
    codes, labels = encode_groups(np.array([2.0, np.nan, 1.0, 2.0]))
    assert codes.tolist() == [1, 2, 0, 1] and labels == (1.0, 2.0, "missing")


def test_probabilities_are_cleaned() -> None:
    p = as_probabilities(np.array([[2.0, 2.0], [np.nan, 1.0], [0.0, 0.0], [-1.0, 1.0]]), 2)
    assert np.allclose(p, [[0.5, 0.5], [0.0, 1.0], [0.5, 0.5], [0.0, 1.0]])
    assert np.allclose(as_probabilities(np.array([0.2, 0.9]), 2), [[0.8, 0.2], [0.1, 0.9]])


def test_predicted_labels() -> None:
    assert predicted_labels("classification", np.array([[0.2, 0.8], [0.5, 0.5]])).tolist() == [1, 0]
    assert predicted_labels("regression", np.array([[1.5], [2.0]])).tolist() == [1.5, 2.0]


def test_bad_shapes_are_data_errors() -> None:
    with pytest.raises(DataError, match="3 columns but the task has 2 classes"):
        compute_metrics("classification", np.zeros(4, int), np.ones((4, 3)) / 3, n_classes=2)
    with pytest.raises(DataError, match="must lie in 0..1"):
        compute_metrics("classification", np.array([0, 2]), np.ones((2, 2)) / 2, n_classes=2)
    with pytest.raises(DataError, match="one label per row"):
        compute_metrics("classification", np.zeros(3, int), np.ones((4, 2)) / 2, n_classes=2)
    with pytest.raises(DataError, match="one group per row"):
        compute_metrics("regression", np.zeros(3), np.zeros(3), n_classes=0, groups=["a"])
