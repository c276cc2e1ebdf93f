"""Notebook views: HTML tables for RunResult, model versions and the leaderboard; plotly figures."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import darkfab
from darkfab.errors import SpecError
from darkfab.results import Leaderboard, TrialRow
from darkfab.spec import spec_from_dict
from darkfab.store import Store


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("nb")
    spec = spec_from_dict(
        {
            "name": "nb",
            "data": {"source": "sklearn:breast_cancer"},
            "objective": {"metric": "roc_auc"},
            "trainers": ["logistic_regression", {"name": "random_forest", "params": {"n_estimators": 20}}],
            "search": {"proposer": "random", "pruner": "none"},
            "budget": {"trials": 4},
            "execution": {"workers": 1, "latency_rows": 2},
            "gate": {"bootstrap": 100},
        }
    )
    store = Store(f"sqlite:///{folder / 'darkfab.db'}")
    factory = darkfab.Factory(spec, store=store)
    result = factory.run()
    yield factory, result
    store.close()


def test_a_run_result_a_model_version_and_the_leaderboard_render_as_escaped_tables(ran):
    factory, result = ran
    page = result._repr_html_()
    assert page.count("<table>") == 2 and "factory nb, campaign 1" in page
    assert f"v{result.champion.version} {result.champion.trainer}" in page and "roc_auc" in page
    for row in result.leaderboard:
        assert f"<td>{row['number']}</td>" in page
    (version,) = factory.models()
    vpage = version._repr_html_()
    assert "model version 1" in vpage and version.artifact_hash in vpage and "champion" in vpage
    sealed = version.metrics["sealed_test"]
    assert f"roc_auc {sealed['score']:.4g} [{sealed['low']:.4g}, {sealed['high']:.4g}]" in vpage
    board = factory.leaderboard(limit=3)
    assert len(board) == 3 and [r.state for r in board.rows] == ["completed"] * 3
    rewards = [r.reward for r in board.rows]
    assert rewards == sorted(rewards, reverse=True)
    assert board._repr_html_().count("<tr>") == 4  # a header and three trials
    hostile = Leaderboard.of([TrialRow(1, 1, "random", "<script>x</script>", {"a": "&"}, "completed")])
    assert "&lt;script&gt;" in hostile._repr_html_() and "<script>" not in hostile._repr_html_()
    assert "<caption>champion" in result.champion._repr_html_()


def test_plots_show_the_history_the_front_and_drift(ran):
    go = pytest.importorskip("plotly.graph_objects", reason="plotly is not installed (the plots extra)")
    from darkfab import plots

    factory, _ = ran
    history = plots.optimization_history(factory)
    assert isinstance(history, go.Figure)
    points, best = history.data
    values = list(points.y)
    assert len(values) == 4 and list(best.y) == [max(values[: i + 1]) for i in range(4)]

    front = plots.pareto_front(factory, "roc_auc", "model_size_mb")
    dominated, line = front.data
    assert len(dominated.x) + len(line.x) == 4 and len(line.x) >= 1
    best_auc = max(values)
    assert best_auc in list(line.x)  # the most accurate trial is never dominated
    with pytest.raises(SpecError, match="no metric 'profit'"):
        plots.pareto_front(factory, "roc_auc", "profit")

    store = factory.store
    fid = store.get_factory(factory.name).id
    now = datetime.now(timezone.utc)
    for i, share in enumerate((0.1, 0.7)):
        store.add_monitor_window(
            fid,
            version=1,
            opened_at=now + timedelta(minutes=i),
            closed_at=now + timedelta(minutes=i, seconds=30),
            rows=100,
            first_prediction_id=1 + 100 * i,
            last_prediction_id=100 * (i + 1),
            drift={},
            share_drifted=share,
            dataset_drift=share >= 0.5,
            prediction_drift=False,
            quality={},
            triggered=False,
        )
    fig = plots.drift(factory)
    shares, flagged = fig.data
    assert list(shares.y) == [0.1, 0.7] and list(flagged.x) == [2]
