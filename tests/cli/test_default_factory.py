"""The front door: `darkfab run` with no file, as the README shows it."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from .conftest import env_for


@pytest.mark.slow
def test_default_factory_reaches_098_sealed_test_accuracy_on_digits(cli):
    result = cli.json("run", timeout=600)
    assert result["factory"] == "digits" and result["task"] == "classification"
    sealed = result["champion"]["metrics"]["sealed_test"]
    assert sealed["metric"] == "accuracy" and sealed["score"] >= 0.98, sealed
    assert result["budget"]["limits"]["trials"] == 100
    assert result["trials"]["completed"] + result["trials"]["failed"] + result["trials"]["pruned"] == 100


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script` for a terminal")
def test_live_progress_and_summary_in_a_terminal(cli, tmp_path):
    from .conftest import factory_text

    (tmp_path / "factory.yaml").write_text(factory_text(name="tty", trials=4))
    cmd = f"{sys.executable} -m darkfab run factory.yaml"
    proc = subprocess.run(
        ["script", "-qec", cmd, "/dev/null"],
        cwd=tmp_path,
        env={**env_for(tmp_path), "TERM": "xterm"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    screen = proc.stdout
    for needle in (
        "leaderboard",
        "trial",
        "proposer",
        "trainer",
        "reward",
        "trials",
        "darkfab run",
        "sealed-test accuracy",
        "95% CI",
        "it beat",
        "budget spent",
        "records:",
    ):
        assert needle in screen, needle
