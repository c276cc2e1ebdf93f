"""`darkfab judge` against a fake judge on loopback (a real HTTP server): critiques go on record as the
preferences' rationale, bad answers are retried then dropped and recorded, the token budget stops the judge,
and a person's answer outranks the judge's on the same pair."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ..helpers.fake_llm import FakeLLM, Reply, ok, slow, status
from ..helpers.sqlite import sqlite_db
from .conftest import CLI, factory_text

PRINCIPLES = [
    "prefer the simpler model when the accuracy difference is within its confidence interval",
    "never accept a larger fairness gap for accuracy",
]
SECRET = "sk-judge-secret-4711"

JUDGE = """\
reward:
  judge: {{base_url: "{url}", model: fake-judge, api_key_env: JUDGE_API_KEY, timeout: {timeout}s, retries: {retries},
          max_repairs: {repairs}, max_tokens: {max_tokens}{limits}}}
  constitution:
    - {p1}
    - {p2}
"""


def verdict(winner: Any = "1", quote: str = "") -> str:
    critique = [
        {"principle": 1, "candidate_1": f"simpler, as accurate {quote}".strip(), "candidate_2": "more complex"},
        {"principle": 2, "candidate_1": "no fairness figures", "candidate_2": "no fairness figures either"},
    ]
    return json.dumps({"critique": critique, "winner": winner, "reason": "the simpler model is as good"})


def _answer(body: dict[str, Any]) -> Reply:
    return ok(verdict())


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run, copied by each test (the judge writes to the store)."""
    cwd = tmp_path_factory.mktemp("judged")
    (cwd / "factory.yaml").write_text(factory_text(name="judged", trials=6))
    CLI(cwd)("run", "factory.yaml")
    return cwd


@pytest.fixture
def judged(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CLI:
    monkeypatch.setenv("JUDGE_API_KEY", SECRET)
    cwd = tmp_path / "factory"
    shutil.copytree(base, cwd)
    return CLI(cwd)


def with_judge(
    cli: CLI,
    url: str,
    *,
    retries: int = 1,
    repairs: int = 1,
    max_tokens: int = 400,
    limits: str = "",
    timeout: float = 30,
) -> None:
    text = factory_text(name="judged", trials=6) + JUDGE.format(
        url=url,
        retries=retries,
        repairs=repairs,
        max_tokens=max_tokens,
        limits=limits,
        timeout=timeout,
        p1=PRINCIPLES[0],
        p2=PRINCIPLES[1],
    )
    (cli.cwd / "factory.yaml").write_text(text)


def rows(cli: CLI, sql: str) -> list[tuple[Any, ...]]:
    with sqlite_db(cli.cwd / ".darkfab" / "darkfab.db") as con:
        return con.execute(sql).fetchall()


@pytest.mark.slow
def test_the_judge_critiques_both_candidates_by_each_principle_and_the_critique_is_the_rationale(
    judged: CLI,
) -> None:
    with FakeLLM(responder=lambda body: ok(verdict(quote=f"(key {SECRET})"))) as llm:
        with_judge(judged, llm.base_url)
        run = judged.json("judge", "factory.yaml", "--pairs", "2")
        sent = llm.requests
    assert run["stopped_because"].startswith("2 pair(s) asked"), run
    assert [p["source"] for p in run["recorded"]] == ["judge:fake-judge"] * 2 and run["dropped"] == []
    pairs = {(p["trial_a"], p["trial_b"]) for p in run["recorded"]}
    assert len(pairs) == 2 and all(p["winner"] == "a" for p in run["recorded"])
    for sent_one, pref in zip(sent, run["recorded"], strict=True):
        assert sent_one["headers"]["Authorization"] == f"Bearer {SECRET}"
        system, user = (m["content"] for m in sent_one["body"]["messages"])
        assert PRINCIPLES[0] in system and PRINCIPLES[1] in system
        assert f'"trial": {pref["trial_a"]}' in user.split("Candidate 2:")[0]
        assert f'"trial": {pref["trial_b"]}' in user.split("Candidate 2:")[1]
    stored = rows(judged, "SELECT source, winner, rationale FROM preferences ORDER BY id")
    assert len(stored) == 2
    for source, winner, rationale in stored:
        assert (source, winner) == ("judge:fake-judge", "a")
        assert f"principle 1 ({PRINCIPLES[0]}): 1: simpler, as accurate (key ***) | 2: more complex" in rationale
        assert f"principle 2 ({PRINCIPLES[1]}): 1: no fairness figures" in rationale
        assert "chose 1: the simpler model is as good" in rationale
        assert SECRET not in rationale
    calls = rows(judged, "SELECT proposer, model, status, response FROM llm_calls ORDER BY id")
    assert [c[:3] for c in calls] == [("judge", "fake-judge", "ok")] * 2
    assert all(SECRET not in c[3] for c in calls)
    shown = judged.json("reward", "factory.yaml")
    assert shown["by_source"] == {"judge": 2}
    finished = rows(judged, "SELECT reason FROM events WHERE kind = 'judge_finished'")
    assert len(finished) == 1 and "2 preference(s) recorded, 0 dropped" in finished[0][0]
    assert judged("audit", "verify").returncode == 0


@pytest.mark.slow
def test_garbage_429s_and_timeouts_are_retried_then_dropped_and_recorded(judged: CLI) -> None:
    with FakeLLM() as llm:
        llm.script(
            ok("candidate 1 looks nicer to me"), ok(verdict("2")),  # garbage, repaired: recorded
            ok('{"winner": true, "critique": "fine"}'), ok("[1, 2]"),  # wrong types twice: dropped
            status(429, retry_after=0), ok(verdict("tie")),  # a 429 retried: recorded
            status(429, retry_after=0), status(429, retry_after=0),  # 429 after every retry: dropped
            slow(30), ok(verdict("1")),  # a timeout retried: recorded
            slow(30), slow(30),  # timed out after every retry: dropped
        )  # fmt: skip
        with_judge(judged, llm.base_url, retries=1, repairs=1, timeout=2)  # slow(30) answers time out
        run = judged.json("judge", "factory.yaml", "--pairs", "6")
        repair = llm.requests[1]["body"]["messages"]
        assert llm.count == 12 and llm.scripted_left == 0
    assert [p["winner"] for p in run["recorded"]] == ["b", "tie", "a"]
    reasons = [d["reason"] for d in run["dropped"]]
    assert len(reasons) == 3, run
    assert reasons[0].startswith("no usable answer in 2 tries") and "JSON but not an object: list" in reasons[0]
    assert reasons[1].startswith("no answer (429)") and "after 2 attempts" in reasons[1]
    assert reasons[2].startswith("no answer (timeout)") and "after 2 attempts" in reasons[2]
    # the garbage answer went back to the judge with what was wrong
    assert repair[-2] == {"role": "assistant", "content": "candidate 1 looks nicer to me"}
    assert "cannot be used" in repair[-1]["content"] and "no JSON object" in repair[-1]["content"]
    calls = rows(judged, "SELECT status, error FROM llm_calls ORDER BY id")
    statuses = [s for s, _ in calls]
    # in the order they happened: each retried attempt its own row, each outcome after it
    assert (
        statuses
        == ["invalid", "ok"] + ["invalid"] * 2 + ["429", "ok"] + ["429"] * 2 + ["timeout", "ok"] + ["timeout"] * 2
    )
    invalid = [e for s, e in calls if s == "invalid"]
    assert any("`winner` must be" in e for e in invalid) and any("no JSON object" in e for e in invalid)
    assert "reserved" not in statuses
    stored = rows(judged, "SELECT COUNT(*) FROM preferences")[0][0]
    assert stored == 3
    finished = rows(judged, "SELECT reason, data FROM events WHERE kind = 'judge_finished'")
    assert len(finished) == 1 and "3 preference(s) recorded, 3 dropped" in finished[0][0]
    assert [d["reason"] for d in json.loads(finished[0][1])["dropped"]] == reasons


@pytest.mark.parametrize(
    ("limits", "stop", "spent_sql"),
    [
        (", max_tokens_total: 2500", "LLM token budget reached", "SUM(prompt_tokens + completion_tokens) <= 2500"),
        (
            ", max_cost: 2.5, prices: {input_per_1k: 1.0, output_per_1k: 1.0}",
            "LLM money budget reached",
            "SUM(cost) <= 2.5",
        ),
    ],
    ids=["tokens", "money"],
)
def test_the_budget_stops_the_judge_and_stays_spent(judged: CLI, limits: str, stop: str, spent_sql: str) -> None:
    with FakeLLM(responder=_answer) as llm:
        with_judge(judged, llm.base_url, max_tokens=100, limits=limits)
        run = judged.json("judge", "factory.yaml", "--pairs", "10")
        sent = llm.count
        assert run["stopped_because"].startswith(stop), run
        assert "fix: raise reward.judge.max_tokens_total or max_cost" in run["stopped_because"]
        assert 1 <= sent < 10 and len(run["recorded"]) == sent == run["asked"] == run["calls"]
        assert rows(judged, f"SELECT {spent_sql} FROM llm_calls") == [(1,)]
        tokens = rows(judged, "SELECT SUM(prompt_tokens + completion_tokens) FROM llm_calls")[0][0]
        assert run["tokens_used"] == tokens
        again = judged("judge", "factory.yaml", "--pairs", "10")
        assert stop in again.stdout and "0 preferences recorded" in again.stdout
        assert llm.count == sent  # the budget counts the judge's earlier runs: nothing more was sent


@pytest.mark.slow
def test_a_persons_answer_outranks_the_judges_on_the_same_pair(judged: CLI) -> None:
    from darkfab.runtime import Factory, comparisons, prefer

    with FakeLLM(responder=lambda body: ok(verdict("2"))) as llm:
        with_judge(judged, llm.base_url)
        first = judged.json("judge", "factory.yaml", "--pairs", "1")["recorded"][0]
        a, b = first["trial_a"], first["trial_b"]
        judged("prefer", str(a), str(b), "1", "--as", "ann", "--factory", "factory.yaml")
        with Factory.from_file(judged.cwd / "factory.yaml", store=str(judged.cwd / ".darkfab" / "darkfab.db")) as fac:
            fid = fac.store.get_factory("judged").id
            # a judge's answer arriving after the person's does not displace it
            prefer(fac, b, a, "a", source="judge:fake-judge", rationale="later")
            learned, by_source = comparisons(fac.store, fid)
            assert by_source == {"person": 1} and [c.winner for c in learned] == ["a"]
        # the judge is never asked about a pair a person (or it) already answered
        second = judged.json("judge", "factory.yaml", "--pairs", "3")["recorded"]
    assert len(second) == 3 and {(p["trial_a"], p["trial_b"]) for p in second}.isdisjoint({(a, b), (b, a)})
    shown = judged.json("reward", "factory.yaml")
    assert shown["n_preferences"] == 4 and shown["by_source"] == {"person": 1, "judge": 3}


def test_judge_without_a_judge_in_the_file_says_how_to_add_one(judged: CLI) -> None:
    bad = judged("judge", "factory.yaml", check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "reward.judge" in bad.stderr and "reward.constitution" in bad.stderr


def test_an_endpoint_that_never_answers_stops_the_judge_after_three_pairs(judged: CLI) -> None:
    with FakeLLM() as llm:  # nothing scripted: every request gets HTTP 500
        with_judge(judged, llm.base_url, retries=0)
        run = judged.json("judge", "factory.yaml", "--pairs", "10")
        assert llm.count == 3
        plain = judged("judge", "factory.yaml", "--pairs", "1")
        assert llm.count == 4 and "dropped trials" in plain.stdout and "no answer (error): HTTP 500" in plain.stdout
        assert "0 preferences recorded, 1 pairs dropped" in plain.stdout
    assert run["recorded"] == [] and len(run["dropped"]) == 3
    assert run["stopped_because"].startswith("the judge's endpoint gave no answer for 3 pairs in a row"), run
    assert all(d["reason"].startswith("no answer (error): HTTP 500") for d in run["dropped"]), run["dropped"]
    assert [r[0] for r in rows(judged, "SELECT status FROM llm_calls")] == ["error"] * 4


def test_a_judge_whose_key_is_not_set_is_refused_before_any_request(
    judged: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUDGE_API_KEY")
    with FakeLLM(responder=_answer) as llm:
        with_judge(judged, llm.base_url)
        bad = judged("judge", "factory.yaml", check=False)
        assert llm.count == 0
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "JUDGE_API_KEY (reward.judge.api_key_env) is not set" in bad.stderr and "fix: export" in bad.stderr
