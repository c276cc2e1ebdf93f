"""`darkfab run` with search.proposer llm and portfolio, pointed at a fake LLM on loopback, then `darkfab proposals`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/propose is not a package: reach tests.helpers
from tests.helpers.fake_llm import FakeLLM, Reply, asked_for, drop, ok, proposals_text, slow, status  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
KEY_ENV = "DARKFAB_E2E_LLM_KEY"

FACTORY = """\
name: {name}
data: {{source: "sklearn:breast_cancer", target: target}}
objective: {{description: "find a small accurate model; the fake LLM reads this"}}
trainers:
  - name: logistic_regression
    space: {{C: {{low: 0.001, high: 100.0, log: true}}}}
  - name: lightgbm
    space:
      n_estimators: {{low: 20, high: 40}}
      num_leaves: {{low: 4, high: 8}}
      learning_rate: {{low: 0.05, high: 0.3, log: true}}
search:
  proposer: {proposer}
  pruner: none
  startup_trials: 2
  llm: {{base_url: "{url}", model: fake-model, api_key_env: {key}, timeout: 1s, retries: 3, max_repairs: 2,
        {budget}prices: {{input_per_1k: 0.001, output_per_1k: 0.002}}}}
budget: {{trials: {trials}}}
execution: {{workers: 2, trial_timeout: 60s, memory_mb: 2048, latency_rows: 3}}
gate: {{bootstrap: 200}}
"""

GOOD = object()  # a marker in a script: answer with fresh, valid proposals


class Scripted:
    """Answers a script of replies (GOOD: valid proposals), then valid proposals forever."""

    def __init__(self, *script: Any) -> None:
        self.script = deque(script)
        self.i = 0
        self.first: dict[str, Any] | None = None

    def __call__(self, body: dict[str, Any]) -> Reply:
        item = self.script.popleft() if self.script else GOOD
        if item is not GOOD:
            return item(self) if callable(item) else item
        out = []
        for _ in range(asked_for(body)):
            self.i += 1
            if self.i % 2:
                p = {"trainer": "logistic_regression", "params": {"C": round(0.001 * 1.7**self.i, 6)}}
            else:
                p = {"trainer": "lightgbm", "params": {"n_estimators": 20 + self.i % 21, "num_leaves": 4 + self.i % 5,
                                                        "learning_rate": 0.1}}  # fmt: skip
            out.append({**p, "reason": f"fake idea {self.i}"})
        self.first = self.first or out[0]
        return ok(proposals_text(out, notes=f"tried {self.i}"))


def duplicate_of_first(s: Scripted) -> Reply:
    assert s.first is not None
    return ok(proposals_text([{**s.first, "reason": "again"}]))


OUTSIDE = ok(proposals_text([{"trainer": "lightgbm", "params": {"n_estimators": 500, "num_leaves": 4}}]))


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def darkfab(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("DARKFAB_STORE", None)
    env[KEY_ENV] = "e2e-secret"
    proc = subprocess.run(
        [sys.executable, "-m", "darkfab", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"darkfab {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def write(tmp_path: Path, fake: FakeLLM, *, name: str, proposer: str, trials: int, budget: str = "") -> None:
    text = FACTORY.format(name=name, proposer=proposer, url=fake.base_url, key=KEY_ENV, trials=trials, budget=budget)
    (tmp_path / "factory.yaml").write_text(text)


@pytest.mark.slow
def test_an_llm_campaign_survives_every_kind_of_bad_answer(tmp_path: Path, fake: FakeLLM) -> None:
    fake.responder = Scripted(
        ok("Certainly! Here are some thoughts about gradient boosting."),  # garbage -> repair
        ok('{"proposals": [{"trainer": "lightgbm", "params": {'),  # malformed JSON -> repair
        status(429, retry_after=1),  # retried after 1 s
        drop(),  # retried
        slow(3.0),  # past the 1 s timeout: retried
        GOOD,
        OUTSIDE,  # out of the space -> repair
        GOOD,
        duplicate_of_first,  # a duplicate -> repair
        GOOD,
    )
    write(tmp_path, fake, name="llm-e2e", proposer="llm", trials=8)
    result = json.loads(darkfab(tmp_path, "run", "factory.yaml", "--json").stdout)
    assert result["budget"]["spent"]["trials"] == 8 and result["champion"] is not None
    assert all(r["headers"].get("Authorization") == "Bearer e2e-secret" for r in fake.requests)

    doc = json.loads(darkfab(tmp_path, "proposals", "--json").stdout)
    proposals, calls = doc["proposals"], doc["llm_calls"]
    assert len(proposals) == 8 and all(p["proposer"] == "llm" for p in proposals)
    assert len(calls) == len(fake.requests)  # every request is recorded, nothing lost
    statuses = [c["status"] for c in calls]
    assert statuses[:6] == ["invalid", "invalid", "429", "error", "timeout", "ok"], statuses
    assert "invalid" in statuses[6:] and statuses.count("invalid") >= 4
    errors = " ".join(c["error"] for c in calls)
    for needle in ("not valid JSON", "n_estimators=500 is not int in [20, 40]", "duplicate", "rate limited"):
        assert needle in errors, needle
    linked = [p for p in proposals if p["llm"] is not None]
    assert len(linked) == 8  # each proposal names the call that produced it, with its tokens and cost
    for p in linked:
        assert p["llm"]["status"] == "ok" and p["llm"]["prompt_tokens"] > 0 and p["llm"]["cost"] > 0
        assert p["reason"].startswith("fake idea") and p["state"] == "completed"
    keys = {k for c in calls for k in c["proposal_keys"]}
    assert keys == {p["key"] for p in proposals}
    assert doc["llm_totals"]["calls"] == len(calls) and doc["llm_totals"]["cost"] > 0
    table = darkfab(tmp_path, "proposals").stdout
    assert "LLM calls" in table and "timeout" in table


@pytest.mark.slow
def test_a_portfolio_stops_asking_the_llm_at_its_token_budget_and_finishes(tmp_path: Path, fake: FakeLLM) -> None:
    fake.responder = Scripted()
    write(tmp_path, fake, name="portfolio-e2e", proposer="portfolio", trials=12, budget="max_tokens_total: 1000, ")
    result = json.loads(darkfab(tmp_path, "run", "factory.yaml", "--json").stdout)
    assert result["budget"]["spent"]["trials"] == 12

    doc = json.loads(darkfab(tmp_path, "proposals", "portfolio-e2e", "--json").stdout)
    proposals, calls = doc["proposals"], doc["llm_calls"]
    assert len(proposals) == 12 and all(p["proposer"] == "portfolio" for p in proposals)
    assert {p["member"] for p in proposals} == {"tpe", "random", "llm"}
    assert all(p["reason"].startswith("portfolio chose ") for p in proposals)
    assert calls and len(calls) == len(fake.requests)
    assert doc["llm_totals"]["prompt_tokens"] + doc["llm_totals"]["completion_tokens"] <= 1000
    retired = [i for i, p in enumerate(proposals) if "llm retired (LLM token budget reached" in p["reason"]]
    assert retired, "the portfolio records that it retired the LLM"
    after = proposals[retired[0] :]
    assert all(p["member"] != "llm" for p in after)
    for p in proposals:
        assert (p["llm"] is not None) == (p["member"] == "llm")
