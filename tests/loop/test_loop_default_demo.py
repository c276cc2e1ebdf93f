"""`darkfab run` with no file: the first champion, then the whole loop on loopback, and its timeline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_default_run_shows_drift_retrain_and_promotion(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": str(REPO / "src")}
    env.pop("DARKFAB_STORE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "darkfab", "run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=580
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shown = proc.stdout
    for step in (
        "lifecycle_serving_started",
        "lifecycle_note",
        "drift_detected",
        "lifecycle_retrain_started",
        "campaign_started",
        "lifecycle_retrain_finished",
        "challenger_promoted",
    ):
        assert step in shown, f"{step} missing from the timeline:\n{shown}\n{proc.stderr[-3000:]}"
    order = [shown.index(k) for k in ("drift_detected", "lifecycle_retrain_started", "challenger_promoted")]
    assert order == sorted(order)
    assert "champion now: version 2" in shown
    assert "in the console: darkfab ui" in shown  # the demo ends by naming the console
    assert list((tmp_path / ".darkfab" / "data").glob("digits-campaign-2.parquet"))
