from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from darkfab.data import load_dataset
from darkfab.errors import DataError
from darkfab.spec import spec_from_dict


def spec(source, **data):
    return spec_from_dict({"name": "t", "data": {"source": str(source), **data}})


def messy_frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue", None], size=n)
    df = pd.DataFrame({"x": x, "colour": colour, "n": rng.integers(0, 5, size=n).astype(float)})
    df.loc[rng.choice(n, n // 10, replace=False), "n"] = np.nan
    df["label"] = np.where(x + (df["colour"] == "red") > 0.3, "yes", "no")
    return df


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "wine", "iris", "diabetes"])
def test_sklearn_sets_load_and_split_without_leaking_rows(name):
    d = load_dataset(spec(f"sklearn:{name}"))
    assert d.task == ("regression" if name == "diabetes" else "classification")
    assert len(d.X_train) + len(d.X_valid) + len(d.X_test) == d.n_rows
    assert "target" not in d.features
    if d.task == "classification":
        assert set(np.unique(d.y_test)) == set(range(d.n_classes))  # stratified: every class in the sealed test


def test_csv_with_text_missing_values_and_string_labels(tmp_path):
    p = tmp_path / "rows.csv"
    messy_frame().to_csv(p, index=False)
    d = load_dataset(spec(p, target="label"))
    assert d.task == "classification"
    assert d.classes == ("no", "yes")
    assert d.feature_types == {"x": "numeric", "colour": "categorical", "n": "numeric"}


def test_parquet_and_sql_sources(tmp_path):
    df = messy_frame()
    df.to_parquet(tmp_path / "rows.parquet")
    assert load_dataset(spec(tmp_path / "rows.parquet", target="label")).n_rows == len(df)
    url = f"sqlite:///{tmp_path / 'rows.db'}"
    engine = sa.create_engine(url)
    df.to_sql("rows", engine, index=False)
    engine.dispose()
    d = load_dataset(spec(url, target="label", query="SELECT * FROM rows WHERE x > -10"))
    assert d.n_rows == len(df)


def test_time_column_makes_the_newest_rows_the_sealed_test(tmp_path):
    df = messy_frame()
    df["when"] = pd.date_range("2024-01-01", periods=len(df), freq="D")[::-1]
    p = tmp_path / "rows.csv"
    df.to_csv(p, index=False)
    d = load_dataset(spec(p, target="label", time="when"))
    assert "when" not in d.features
    newest = df.sort_values("when").tail(len(d.X_test))
    assert sorted(d.X_test["x"]) == sorted(newest["x"])


@pytest.mark.parametrize(
    ("frame", "data", "needles"),
    [
        (None, {"target": "label"}, ["no such data file"]),
        (pd.DataFrame({"a": [], "label": []}), {"target": "label"}, ["the file is empty"]),
        (messy_frame(), {"target": "lable"}, ["data.target", "did you mean 'label'"]),
        (messy_frame(), {"target": "label", "group": "sex"}, ["data.group", "no column 'sex'"]),
        (messy_frame().assign(label="same"), {"target": "label"}, ["single class", "'same'"]),
        (
            messy_frame(),
            {"target": "label", "task": "regression"},
            ["regression", "holds text", "task: classification"],
        ),
        (messy_frame().assign(label=[None] * 3 + ["a", "b"] * 98 + ["a"]), {"target": "label"}, ["3 missing"]),
        (messy_frame(10), {"target": "label"}, ["too few"]),
    ],
)
def test_data_problems_name_the_column_rule_and_fix(tmp_path, frame, data, needles):
    p = tmp_path / "rows.csv"
    if frame is not None:
        if len(frame.columns) and len(frame) == 0:
            p.write_text("")
        else:
            frame.to_csv(p, index=False)
    task = data.pop("task", None)
    s = spec_from_dict({"name": "t", "data": {"source": str(p), **data}, **({"task": task} if task else {})})
    with pytest.raises(DataError) as info:
        load_dataset(s)
    for needle in needles:
        assert needle in str(info.value), str(info.value)


def test_fingerprint_follows_the_content(tmp_path):
    p = tmp_path / "rows.csv"
    messy_frame().to_csv(p, index=False)
    a = load_dataset(spec(p, target="label")).fingerprint
    messy_frame(seed=1).to_csv(p, index=False)
    assert load_dataset(spec(p, target="label")).fingerprint != a


@pytest.mark.parametrize(
    ("values", "task", "needle"),
    [
        (np.repeat(np.arange(5), 40), "classification", "5 distinct values in 200 rows"),
        (np.repeat(np.arange(30), 60), "classification", "each held by at least 10"),  # codes, well represented
        (np.r_[np.repeat(np.arange(30), 60), 31], "regression", "value 31 occurs in 1 row"),  # a rare tail: counts
        (np.arange(100) * 1.5, "regression", "fractional"),
        (np.array(["a", "b"] * 20, dtype=object), "classification", "text labels"),
    ],
)
def test_task_inference_states_its_reason(values, task, needle):
    from darkfab.data import infer_task, infer_task_reason

    got, reason = infer_task_reason(pd.Series(values))
    assert got == task == infer_task(pd.Series(values)) and needle in reason and "`task:`" in reason
