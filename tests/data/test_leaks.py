"""Leak detection rules: planted leaks are found with their evidence; honest bundled features are not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from darkfab.data import SKLEARN_SETS, find_leaks, load_dataset
from darkfab.spec import spec_from_dict

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("name", SKLEARN_SETS)
def test_no_feature_of_the_bundled_sets_is_flagged(name):
    for seed in (0, 1, 2):
        spec = spec_from_dict({"name": "t", "data": {"source": f"sklearn:{name}", "split": {"seed": seed}}}, "test")
        data = load_dataset(spec)
        assert data.leaks == ()
        assert data.split_seed == seed


def test_a_threshold_column_separates_two_classes():
    y = RNG.integers(0, 2, 300)
    X = pd.DataFrame(
        {
            "after": y * 10 + RNG.normal(0, 1.0, 300),  # known only once the outcome is
            "honest": y + RNG.normal(0, 0.6, 300),
        }
    )
    found = find_leaks(X, y, task="classification")
    assert [(f.feature, f.rule) for f in found] == [("after", "separates_classes")]
    assert found[0].figure >= 0.999 and "threshold" in found[0].reason


def test_separation_needs_every_pair_of_classes_apart():
    y = np.repeat([0, 1, 2], 100)
    one_apart = np.where(y == 0, -5.0, 0.0) + RNG.normal(0, 1.0, 300)  # like iris: one class apart, two mixed
    all_apart = y * 10.0 + RNG.normal(0, 1.0, 300)
    found = find_leaks(pd.DataFrame({"one": one_apart, "all": all_apart}), y, task="classification")
    assert [f.feature for f in found] == ["all"]


def test_a_linear_copy_of_a_numeric_target_is_flagged():
    t = RNG.normal(size=400)
    X = pd.DataFrame({"scaled": 3 * t + RNG.normal(0, 0.01, 400) + 1, "honest": t + RNG.normal(0, 0.5, 400)})
    found = find_leaks(X, t, task="regression")
    assert [f.feature for f in found] == ["scaled"] and found[0].rule in ("monotone_in_target", "linear_in_target")


def test_a_feature_the_label_is_defined_by_is_not_a_leak_but_a_gap_is():
    x = RNG.normal(size=400)
    y = (x > 0).astype(int)  # the rule that makes the label: the classes touch at the threshold
    assert find_leaks(pd.DataFrame({"x": x}), y, task="classification") == []
    after = y + RNG.uniform(0, 0.9, 400)  # recorded after the outcome: apart, with empty space between
    found = find_leaks(pd.DataFrame({"x": x, "after": after}), y, task="classification")
    assert [f.feature for f in found] == ["after"]
