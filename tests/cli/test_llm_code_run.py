"""`darkfab run` with the llm_code proposer against a fake endpoint: each code edit travels as the trial's patch,
from the proposer through the store to the sandboxed training process, and back out of `darkfab trials --json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..helpers.fake_llm import FakeLLM, ok
from ..helpers.scripts import prior_script
from ..helpers.sqlite import sqlite_db

FACTORY = """\
name: coded
data: {{source: "sklearn:iris"}}
trainers:
  - name: prior
    script: prior.py
    space: {{scale: {{low: 0.5, high: 2.0}}}}
search:
  proposer: llm_code
  llm: {{base_url: "{url}", model: fake-model, timeout: 60s, retries: 0, max_repairs: 0}}
budget: {{trials: 3}}
execution: {{workers: 1, trial_timeout: 60s, latency_rows: 2}}
gate: {{bootstrap: 100}}
"""


def _answer(replace: str, scale: float) -> str:
    edit = {"block": "prior", "search": "SHIFT = ", "replace": replace}
    return json.dumps({"edits": [edit], "params": {"scale": scale}, "reason": "try it"})


@pytest.mark.slow
def test_code_edits_run_as_the_trials_patch_and_never_sit_in_params(cli, tmp_path: Path) -> None:
    (tmp_path / "prior.py").write_text(prior_script())
    with FakeLLM() as llm:
        # the second edit divides by zero when the module loads: the trial fails only if its patch ran
        llm.script(ok(_answer("SHIFT = 0.5 + ", 1.5)), ok(_answer("SHIFT = 1 / 0 + ", 0.75)))
        (tmp_path / "factory.yaml").write_text(FACTORY.format(url=llm.base_url))
        cli("run", "factory.yaml", check=False)
        assert llm.count == 2
    trials = sorted(cli.json("trials"), key=lambda t: t["id"])
    assert [t["proposer"] for t in trials] == ["llm_code"] * 3
    assert [t["params"] for t in trials] == [{"scale": 1.25}, {"scale": 1.5}, {"scale": 0.75}]
    reference, edited, broken = (t["patch"] for t in trials)
    assert reference == {"edits": [], "diff": ""}
    assert edited["edits"] == [{"block": "prior", "search": "SHIFT = ", "replace": "SHIFT = 0.5 + "}]
    assert "+SHIFT = 0.5 + 0.0" in edited["diff"] and "+SHIFT = 1 / 0 + 0.0" in broken["diff"]
    assert [t["state"] for t in trials] == ["completed", "completed", "failed"]
    assert "ZeroDivisionError" in (trials[2]["error"] or "")
    with sqlite_db(tmp_path / ".darkfab" / "darkfab.db") as con:
        stored = con.execute("SELECT params, patch IS NULL, diff FROM proposals ORDER BY id").fetchall()
    assert [json.loads(p) for p, _, _ in stored] == [t["params"] for t in trials]
    assert [(null, diff) for _, null, diff in stored] == [(0, t["patch"]["diff"]) for t in trials]
