"""A new factory starts from what did well on factories of the same store with similar data (issue 12, warm start).

Factory ``first`` searches breast-cancer rows; ``second`` (other rows of the same data, another file) must ask
``first``'s best configurations of the trainers both search before anything else, saying where they come from;
a regression factory and a factory on very different data (digits: 64 columns, 10 classes) borrow nothing; a
configuration outside the new factory's own space is not asked.
"""

from __future__ import annotations

import pytest
from sklearn.datasets import load_breast_cancer, load_digits

from .conftest import factory_text

RF_SPACE = "    space: {n_estimators: {low: 20, high: 60}, max_depth: {low: 2, high: 6}}\n"


def _factory(name: str, source: str, trials: int, trainers: str) -> str:
    return (
        f"name: {name}\ndata: {{source: {source}, target: target}}\ntrainers:\n{trainers}"
        f"search: {{proposer: tpe, startup_trials: 3}}\nbudget: {{trials: {trials}}}\n"
        "execution: {workers: 2, trial_timeout: 60s, latency_rows: 2}\ngate: {bootstrap: 200}\n"
    )


def _write_halves(tmp_path) -> None:
    frame = load_breast_cancer(as_frame=True).frame.sample(frac=1.0, random_state=0)
    frame.iloc[:300].to_csv(tmp_path / "first.csv", index=False)
    frame.iloc[300:].to_csv(tmp_path / "second.csv", index=False)


def _trials(cli, name: str) -> list[dict]:
    return sorted(cli.json("trials", name), key=lambda t: t["id"])


@pytest.mark.slow
def test_a_new_factory_asks_the_best_configurations_of_a_similar_one_first(cli, tmp_path):
    _write_halves(tmp_path)
    rf = "  - name: random_forest\n" + RF_SPACE
    (tmp_path / "first.yaml").write_text(_factory("first", "first.csv", 6, rf + "  - name: logistic_regression\n"))
    first = cli.json("run", "first.yaml")
    assert first["data_profile"]["rows"] > 0 and first["data_profile"]["classes"] == 2
    done = [t for t in _trials(cli, "first") if t["state"] == "completed" and t["feasible"]]
    best_rf = max((t for t in done if t["trainer"] == "random_forest"), key=lambda t: t["reward"])

    # second searches random_forest (shared) and lightgbm (first never did): only random forests are borrowed
    (tmp_path / "second.yaml").write_text(_factory("second", "second.csv", 3, rf + "  - name: lightgbm\n"))
    second = cli.json("run", "second.yaml")
    trials = _trials(cli, "second")
    borrowed = [t for t in trials if t["reason"].startswith("warm start from factory 'first'")]
    assert borrowed, [t["reason"] for t in trials]
    assert trials[0]["id"] == borrowed[0]["id"]  # asked before the built-in portfolio and the search
    assert {t["trainer"] for t in borrowed} == {"random_forest"}
    assert best_rf["params"] in [t["params"] for t in borrowed]
    assert f"its trial {best_rf['id']} " in next(t for t in borrowed if t["params"] == best_rf["params"])["reason"]
    assert "similar data, distance" in borrowed[0]["reason"] and "classification, 240 rows" in borrowed[0]["reason"]
    assert second["warm_started_from"] == 0  # its own history is empty: nothing of its own was replayed

    # a second campaign of `second` has history of its own: it borrows nothing more
    again = cli.json("run", "second.yaml", "--trials", "2")
    later = [t for t in _trials(cli, "second") if t["campaign"] == again["campaign"]]
    assert later and not any(t["reason"].startswith("warm start from factory") for t in later)


@pytest.mark.slow
def test_other_tasks_far_data_and_configurations_outside_the_space_are_not_borrowed(cli, tmp_path):
    _write_halves(tmp_path)
    rf = "  - name: random_forest\n" + RF_SPACE
    (tmp_path / "first.yaml").write_text(_factory("first", "first.csv", 4, rf))
    cli.json("run", "first.yaml")

    # regression on a numeric target: another task
    (tmp_path / "reg.yaml").write_text(
        factory_text(name="reg", source="sklearn:diabetes", trials=2).replace(
            "  - name: logistic_regression\n", "  - name: linear_regression\n  - name: random_forest\n"
        )
    )
    cli.json("run", "reg.yaml")
    assert not any(t["reason"].startswith("warm start from") for t in _trials(cli, "reg"))

    # digits: the same task, far data (64 columns, 10 classes, 1,797 rows)
    digits = load_digits(as_frame=True).frame
    digits.to_csv(tmp_path / "digits.csv", index=False)
    (tmp_path / "digits.yaml").write_text(_factory("digits", "digits.csv", 2, rf))
    cli.json("run", "digits.yaml")
    assert not any(t["reason"].startswith("warm start from") for t in _trials(cli, "digits"))

    # the same data, but a space that excludes every forest `first` tried (more trees than its 60)
    (tmp_path / "narrow.yaml").write_text(
        _factory(
            "narrow",
            "second.csv",
            2,
            "  - name: random_forest\n    space: {n_estimators: {low: 200, high: 300}, max_depth: {low: 2, high: 6}}\n",
        )
    )
    cli.json("run", "narrow.yaml")
    narrow = _trials(cli, "narrow")
    assert not any(t["reason"].startswith("warm start from") for t in narrow), [t["reason"] for t in narrow]
    assert narrow and all(200 <= t["params"]["n_estimators"] <= 300 for t in narrow if t["trainer"] != "ensemble")
