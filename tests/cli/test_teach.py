"""Teaching the factory through the real command line: `darkfab compare` in a real terminal (tmux), then
`darkfab reward --learn`, then a campaign under `objective.reward: learned`.

The scripted person is an oracle that cares mostly about model size; the declared reward is accuracy only.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest
from scipy.stats import kendalltau

from .conftest import CLI, env_for

FACTORY = """\
name: teach
data: {source: sklearn:breast_cancer, target: target}
objective: {reward: learned}
trainers:
  - name: random_forest
    space: {n_estimators: {low: 150, high: 300}, max_depth: {low: 8, high: 16}}
  - name: tree
    estimator: sklearn.tree:DecisionTreeClassifier
    space: {max_depth: {low: 1, high: 3}}
search: {proposer: random}
budget: {trials: 12}
execution: {workers: 2, trial_timeout: 60s, latency_rows: 3}
deploy: {mode: direct}
gate: {bootstrap: 200}
"""


def oracle(metrics: dict[str, float]) -> float:
    return 0.15 * metrics["accuracy"] + 0.85 / (1 + metrics["model_size_mb"] / 0.05)


class Tmux:
    def __init__(self, name: str) -> None:
        self.name = name

    def send(self, keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, keys, "Enter"], check=True)

    def screen(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-J", "-S", "-200", "-t", self.name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def wait_for(self, pattern: str, since: str = "", timeout: float = 120) -> re.Match[str]:
        """The last match of ``pattern`` on the screen after the last ``since`` (which must be there)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            cut = screen.rfind(since) if since else 0
            found = list(re.finditer(pattern, screen[cut:])) if cut >= 0 else []
            if found:
                return found[-1]
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} did not appear after {since!r}:\n{self.screen()}")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_compare_in_a_terminal_teaches_a_reward_that_picks_the_oracles_champion(cli: CLI) -> None:
    (cli.cwd / "factory.yaml").write_text(FACTORY)
    first = cli.json("run", "factory.yaml")
    v1 = first["champion"]
    metrics = {t["id"]: t["metrics"] for t in cli.json("trials") if t["state"] == "completed"}

    session = f"darkfab-compare-{time.monotonic_ns()}"
    env = env_for(cli.cwd)
    command = " ".join(
        [f"cd {shlex.quote(str(cli.cwd))} &&"]
        + [f"{k}={shlex.quote(v)}" for k, v in env.items() if k in ("PYTHONPATH", "PATH", "COLUMNS", "HOME")]
        + [shlex.quote(sys.executable), "-m", "darkfab", "compare", "teach", "--as", "person:oracle", "--limit", "20"]
        + ["; sleep 600"]
    )
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "220", "-y", "60", command], check=True)
    tmux = Tmux(session)
    try:
        for k in range(20):
            since = f"recorded ({k})" if k else ""
            tmux.wait_for(r"which is better\?", since=since)
            m = tmux.wait_for(r"1: trial (\d+)\s+vs\s+2: trial (\d+)", since=since)
            a, b = int(m.group(1)), int(m.group(2))
            tmux.send("1" if oracle(metrics[a]) > oracle(metrics[b]) else "2")
        tmux.wait_for(r"20 preferences recorded")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)

    judged = cli.json("reward", "teach", "--learn")
    assert judged["n_preferences"] == 20 and judged["by_source"] == {"person": 20}
    assert judged["passed"], judged["reason"]
    assert judged["in_use"] == "learned"
    assert judged["weights_before"] == {"accuracy": 1.0}
    # the oracle's taste moved weight off accuracy onto what comes with small models (size, latency, speed)
    assert judged["weights_after"].get("accuracy", 0.0) < 0.8
    assert judged["learned_agreement"] >= judged["declared_agreement"] + 0.1
    events = cli("audit", "verify")
    assert events.returncode == 0
    # the stored trials were re-scored from their metrics: the leaderboard now follows the learned reward
    rescored = [t for t in cli.json("trials") if t["state"] == "completed"]
    truth = [oracle(t["metrics"]) for t in rescored]
    learned_tau = kendalltau([t["reward"] for t in rescored], truth).statistic
    declared_tau = kendalltau([t["metrics"]["accuracy"] for t in rescored], truth).statistic
    assert learned_tau >= 0.4 and learned_tau > declared_tau + 0.1, (learned_tau, declared_tau)

    second = cli.json("run", "factory.yaml", "--trials", "6")
    v2 = second["champion"]
    assert v2["version"] != v1["version"], second["gate"]
    champion_metrics = {m["version"]: m for m in cli.json("models")}
    assert oracle(champion_metrics[v2["version"]]["metrics"]["valid"]) > oracle(
        champion_metrics[v1["version"]]["metrics"]["valid"]
    )
    assert "learned reward" in second["gate"]["reason"]


@pytest.mark.slow
def test_prefer_refuses_bad_input_with_a_clear_error(ran) -> None:
    cli, _ = ran
    trials = [t["id"] for t in cli.json("trials")]
    bad = cli("prefer", str(trials[0]), str(trials[1]), "maybe", check=False)
    assert bad.returncode == 2 and "a, b or tie" in bad.stderr and "Traceback" not in bad.stderr
    missing = cli("prefer", str(trials[0]), "999999", "a", check=False)
    assert missing.returncode != 0 and "999999" in missing.stderr and "Traceback" not in missing.stderr
    ok = cli("prefer", str(trials[0]), str(trials[1]), "2", "--as", "judge:gpt", "--reason", "smaller")
    assert "judge:gpt prefers b" in ok.stdout
    person = cli("prefer", str(trials[0]), str(trials[1]), "1", "--as", "ann")
    assert "person:ann prefers a" in person.stdout
    shown = cli.json("reward")
    # a person's answer outranks the judge's on the same pair: one effective preference, from a person
    assert shown["n_preferences"] == 1 and shown["by_source"] == {"person": 1}
    assert shown["in_use"] == "declared" and not shown["passed"]
