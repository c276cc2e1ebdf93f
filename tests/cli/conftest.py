from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FAST = """\
name: {name}
data: {{source: {source}, target: {target}{extra_data}}}
trainers:
  - name: logistic_regression
  - name: lightgbm
    space:
      n_estimators: {{low: 20, high: 60}}
      num_leaves: {{low: 4, high: 16}}
      learning_rate: {{low: 0.05, high: 0.3, log: true}}
search: {{proposer: {proposer}, pruner: median, startup_trials: 3}}
budget: {{trials: {trials}}}
execution: {{workers: 2, trial_timeout: 60s, memory_mb: 2048, latency_rows: 3}}
gate: {{bootstrap: 300}}
"""


def factory_text(
    name="fast", source="sklearn:breast_cancer", target="target", trials=6, proposer="tpe", extra_data="", body=None
):
    if body is not None:
        return body
    return FAST.format(name=name, source=source, target=target, trials=trials, proposer=proposer, extra_data=extra_data)


def env_for(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("DARKFAB_STORE", None)
    env["COLUMNS"] = "160"
    return env


def reap(proc: subprocess.Popen[str], timeout: float | None = 30) -> None:
    """Waits for a (killed) process and closes its pipes unread: its children may still hold them open, and
    a pipe left open leaks its file."""
    proc.wait(timeout=timeout)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


class CLI:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "darkfab", *args],
            cwd=self.cwd,
            env=env_for(self.cwd),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"darkfab {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def json(self, *args: str, timeout: float = 300):
        return json.loads(self(*args, "--json", timeout=timeout).stdout)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """``env``: variables set for this process on top of the usual ones."""
        return subprocess.Popen(
            [sys.executable, "-m", "darkfab", *args],
            cwd=self.cwd,
            env={**env_for(self.cwd), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


@pytest.fixture
def cli(tmp_path: Path) -> CLI:
    return CLI(tmp_path)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """One finished run of a small factory, shared by the read-only tests of a module."""
    cwd = tmp_path_factory.mktemp("ran")
    (cwd / "factory.yaml").write_text(factory_text())
    c = CLI(cwd)
    result = c.json("run", "factory.yaml")
    return c, result
