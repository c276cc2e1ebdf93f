"""Fixtures of the loop tests: a small factory whose world drifts, traffic for it, and a webhook on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from ..helpers.webhook import Hook, webhook_server

FEATURES = ("x1", "x2", "x3", "x4")


def world(n: int, *, drifted: bool, seed: int) -> pd.DataFrame:
    """Rows of the small world. Before the drift y = x1 > 0; after it every feature moves up by 4 and
    y = x1 < 4, so the first champion answers most drifted rows wrongly."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, size=(n, len(FEATURES))) + (4.0 if drifted else 0.0)
    y = (x[:, 0] < 4.0) if drifted else (x[:, 0] > 0.0)
    frame = pd.DataFrame(x.round(4), columns=list(FEATURES))
    frame["y"] = y.astype(int)
    return frame


FACTORY_YAML = """\
name: shifting
data: {{source: world.csv, target: y, split: {{valid: 0.2, test: 0.25, seed: 0}}}}
objective: {{metric: accuracy}}
trainers:
  - name: tree
    estimator: sklearn.tree:DecisionTreeClassifier
    space: {{max_depth: {{low: 2, high: 6}}, min_samples_leaf: {{low: 1, high: 10}}}}
search: {{proposer: tpe, pruner: none, startup_trials: 3, seed: 0}}
budget: {{trials: 6, time: 60s}}
execution: {{workers: 2, trial_timeout: 30s}}
gate: {{min_improvement: 0.0, confidence: 0.8, bootstrap: 500}}
deploy: {{mode: canary, share: 0.5, min_requests: 40, max_latency_ratio: 5.0}}
monitor: {{window: 40, drift_share: 0.5, webhook: {webhook}}}
"""


@pytest.fixture
def factory_file(tmp_path: Path, webhook: Hook) -> Path:
    world(400, drifted=False, seed=1).to_csv(tmp_path / "world.csv", index=False)
    path = tmp_path / "factory.yaml"
    path.write_text(FACTORY_YAML.format(webhook=webhook.url))
    return path


class Traffic:
    """Sends rows one request each to a model server, and feedback labels for them."""

    def __init__(self, url: str, model: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=30.0)
        self.model = model
        self.sent = 0

    def send(self, frame: pd.DataFrame, target: str = "y") -> list[dict[str, Any]]:
        answers = []
        for row in frame.to_dict(orient="records"):
            label = row.pop(target)
            got = self.client.post(f"/v1/models/{self.model}/predict", json=[row])
            got.raise_for_status()
            body = got.json()
            answers.append(body)
            self.client.post("/v1/feedback", json={"request_id": body["request_id"], "label": label}).raise_for_status()
            self.sent += 1
        return answers

    def routing(self) -> dict[str, Any]:
        return self.client.get("/v1/routing").json()

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def webhook() -> Iterator[Hook]:
    """A real HTTP server on loopback that records the alerts POSTed to it."""
    with webhook_server() as hook:
        yield hook
