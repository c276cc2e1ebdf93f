"""`darkfab monitor`: the window table, `--json`, and `--check` rebuilding the training reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import typer
from typer.testing import CliRunner

from darkfab.cli.monitor import commands
from darkfab.spec import spec_from_dict
from darkfab.store import Store


def _app() -> typer.Typer:
    app = typer.Typer()
    commands.register(app)

    @app.command()
    def other() -> None:  # a second command, so `monitor` is a subcommand as in `darkfab`
        pass

    return app


def _factory(tmp_path: Path) -> tuple[str, int]:
    rng = np.random.default_rng(0)
    n = 1500
    df = pd.DataFrame({"x": rng.normal(size=n), "colour": rng.choice(["red", "blue"], size=n)})
    df["label"] = np.where(df["x"] > 0, "good", "bad")
    source = tmp_path / "rows.csv"
    df.to_csv(source, index=False)
    spec = spec_from_dict(
        {"name": "shop", "data": {"source": str(source), "target": "label"}, "monitor": {"window": 200}}
    )
    url = str(tmp_path / "cli.db")
    with Store(url) as st:
        fid = st.ensure_factory("shop", spec.model_dump(mode="json")).id
        live = pd.DataFrame({"x": rng.normal(2.5, 1, size=450), "colour": rng.choice(["red", "blue"], size=450)})
        st.log_predictions(
            [
                {
                    "factory_id": fid,
                    "version": 1,
                    "request_id": f"r{i}",
                    "features": rec,
                    "output": {"prediction": "good"},
                }
                for i, rec in enumerate(live.to_dict("records"))
            ]
        )
    return url, fid


def test_monitor_check_then_json_and_table(tmp_path: Path) -> None:
    url, _ = _factory(tmp_path)
    runner = CliRunner()
    empty = runner.invoke(_app(), ["monitor", "shop", "--store", url, "--json"])
    assert empty.exit_code == 0, empty.output
    assert json.loads(empty.stdout) == []

    checked = runner.invoke(_app(), ["monitor", "--store", url, "--check", "--json"])
    assert checked.exit_code == 0, checked.output
    windows = json.loads(checked.stdout)
    assert [w["window"] for w in windows] == [1, 2]
    first = windows[0]
    assert first["rows"] == 200 and first["dataset_drift"] and first["triggered"]
    assert "x" in first["drifted_columns"]
    assert "x (p " in first["reason"]
    # 900 training rows (60% of 1500) are a small reference: KS and chi-square
    assert {c["column"]: c["method"] for c in first["drift"]["columns"]} == {"x": "ks", "colour": "chi2"}

    table = runner.invoke(_app(), ["monitor", "shop", "--store", url])
    assert table.exit_code == 0, table.output
    assert "monitor windows of shop" in table.stdout and "yes:" in table.stdout  # narrow terminal: folded


def test_monitor_names_an_unknown_factory(tmp_path: Path) -> None:
    url, _ = _factory(tmp_path)
    result = CliRunner().invoke(_app(), ["monitor", "nope", "--store", url])
    assert result.exit_code == 2
    assert "no factory 'nope'" in result.output
