"""A person's levers through the real `darkfab` command: approve or reject a pending gate winner
(gate.approval: required), pause and resume a factory; and the mistakes a person makes with them."""

from __future__ import annotations

import shutil
import time

import pytest

from darkfab.store import Store

from ..helpers.factories import small_factory
from .conftest import CLI, reap

APPROVAL = small_factory("gated", gate="{bootstrap: 100, approval: required}")

LONG = small_factory("long", budget="{time: 45s}")


def _store(cli: CLI) -> Store:
    return Store(f"sqlite:///{cli.cwd / '.darkfab' / 'darkfab.db'}")


def _events(cli: CLI, *kinds: str) -> list:
    with _store(cli) as s:
        return s.list_events(kinds=kinds)


def _aliases(cli: CLI) -> dict[int, list[str]]:
    return {m["version"]: m["aliases"] for m in cli.json("models")}


def _one_line_error(proc, code: int, *needles: str) -> str:
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    text = " ".join(proc.stderr.split())
    for needle in needles:
        assert needle in text, text
    return text


@pytest.fixture(scope="module")
def pending_store(tmp_path_factory):
    """The .darkfab folder after one campaign of a factory with gate.approval: required."""
    cwd = tmp_path_factory.mktemp("pending")
    (cwd / "factory.yaml").write_text(APPROVAL)
    result = CLI(cwd).json("run", "factory.yaml")
    return cwd / ".darkfab", result


@pytest.fixture
def pending(pending_store, tmp_path):
    """A CLI in a folder with its own copy of the store whose version 1 waits for approval."""
    shutil.copytree(pending_store[0], tmp_path / ".darkfab")
    return CLI(tmp_path)


@pytest.mark.slow
def test_gate_winner_waits_as_pending_with_its_reason(pending_store, pending):
    result = pending_store[1]
    assert result["champion"]["alias"] == "pending"
    assert result["champion"]["promoted_now"] is False
    assert _aliases(pending) == {1: ["pending"]}
    status = pending.json("status", "gated")
    assert status["pending"] == {"version": 1, "trainer": "logistic_regression"}
    assert status["champion"] is None
    asked = _events(pending, "approval_requested")
    assert [e.data["version"] for e in asked] == [1]
    assert asked[0].data["then"] == "champion"
    assert "gate.approval: required" in asked[0].reason


@pytest.mark.slow
def test_approve_makes_the_pending_version_champion_and_records_who_and_why(pending):
    proc = pending("approve", "1", "--reason", "checked the card", "--by", "alice")
    assert "is now champion" in proc.stderr
    assert _aliases(pending) == {1: ["champion"]}
    (event,) = _events(pending, "promotion_approved")
    assert event.data == {"version": 1, "alias": "champion", "person": "alice", "reason": "checked the card"}
    assert "approved by alice: checked the card" in event.reason
    assert pending.json("status", "gated")["pending"] is None
    again = pending("approve", "1", "--reason", "twice", check=False)
    _one_line_error(again, 1, "version 1 of 'gated' is not pending approval (no version is)", "fix:")
    assert pending.json("audit", "verify")["ok"] is True


def test_reject_leaves_no_champion_and_records_who_and_why(pending):
    pending("reject", "1", "--reason", "fairness gap", "--by", "bob")
    assert _aliases(pending) == {1: []}
    (event,) = _events(pending, "promotion_rejected")
    assert event.data == {"version": 1, "person": "bob", "reason": "fairness gap"}
    assert _events(pending, "promotion_approved") == []
    _one_line_error(pending("approve", "1", "--reason", "x", check=False), 1, "is not pending approval")


@pytest.mark.parametrize("verb", ["approve", "reject"])
@pytest.mark.slow
def test_approval_mistakes_name_the_value_the_rule_and_the_fix(pending, verb):
    _one_line_error(pending(verb, "1", check=False), 2, "--reason is required and was None", "fix: add --reason")
    _one_line_error(pending(verb, "1", "--reason", "  ", check=False), 2, "--reason is required and was ' '")
    _one_line_error(pending(verb, "7", "--reason", "x", check=False), 1, "'gated' has no version 7", "[1]", "fix:")
    _one_line_error(pending(verb, "v1", "--reason", "x", check=False), 2, "got 'v1'", "fix:")
    _one_line_error(pending(verb, "1", "--reason", "x", "--factory", "nope", check=False), 2, "no factory 'nope'")
    assert _aliases(pending) == {1: ["pending"]}  # nothing moved
    assert _events(pending, "promotion_approved", "promotion_rejected") == []


@pytest.mark.slow
def test_pause_blocks_run_until_resume(pending):
    _one_line_error(pending("pause-factory", "gated", check=False), 2, "--reason is required", "fix:")
    pending("pause-factory", "gated", "--reason", "labels look wrong", "--by", "carol")
    status = pending.json("status", "gated")
    assert status["paused"]["person"] == "carol"
    assert status["paused"]["reason"] == "labels look wrong"
    assert "paused: by carol" in pending("status", "gated").stdout
    _one_line_error(pending("pause-factory", "gated", "--reason", "again", check=False), 1, "already paused", "carol")
    campaigns = len(pending.json("status", "gated")["campaigns"])
    (pending.cwd / "factory.yaml").write_text(APPROVAL)
    blocked = pending("run", "factory.yaml", check=False)
    _one_line_error(blocked, 1, "factory 'gated' is paused", "labels look wrong", "fix: `darkfab resume-factory gated`")
    assert len(pending.json("status", "gated")["campaigns"]) == campaigns  # nothing started
    pending("resume-factory", "gated", "--by", "carol")
    assert pending.json("status", "gated")["paused"] is None
    _one_line_error(pending("resume-factory", "gated", check=False), 1, "'gated' is not paused")
    kinds = [e.kind for e in _events(pending, "factory_paused", "factory_resumed")]
    assert kinds == ["factory_paused", "factory_resumed"]
    _one_line_error(pending("pause-factory", "nope", "--reason", "x", check=False), 2, "no factory 'nope'")


@pytest.mark.slow
def test_pause_stops_a_running_campaign_after_its_trials_in_flight(cli):
    (cli.cwd / "factory.yaml").write_text(LONG)
    proc = cli.popen("run", "factory.yaml", "--json")
    try:
        deadline = time.monotonic() + 240
        done = 0
        while done < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            if (cli.cwd / ".darkfab" / "darkfab.db").exists():
                with _store(cli) as s:
                    done = sum(1 for t in s.list_trials() if t.state == "completed")
        assert done >= 2, "the campaign never got going"
        cli("pause-factory", "long", "--reason", "stop for the night")
        out, errors = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            reap(proc)
    assert proc.returncode == 0, errors
    assert '"stopped_because": "paused"' in out
    with _store(cli) as s:
        (campaign,) = s.list_campaigns(s.get_factory("long").id)
        trials = s.list_trials()
        paused = s.list_events(kinds=("campaign_paused",))
        gates = s.list_events(kinds=("gate_verdict",))
    assert campaign.status == "running"  # left open: `darkfab run` resumes it after `darkfab resume`
    assert [e.data["stopped_because"] for e in paused] == ["paused"]
    assert gates == []  # a paused campaign is not gated
    assert not [t for t in trials if t.state == "running"]  # the trials in flight were finished, not abandoned
    # the campaign is still open; a worker joining the paused factory takes none of its queued trials
    with _store(cli) as s:
        waiting = s.add_trial(
            campaign.id, proposer="test", trainer="logistic_regression", params={}, reason="queued by the test"
        )
    joined = cli("worker", "long", "--wait", "3s", timeout=120)
    assert "worker finished 0 trial(s)" in joined.stderr
    with _store(cli) as s:
        assert s.get_trial(waiting.id).state == "queued"
    # resumed, the next `darkfab run` resumes that campaign where it stopped, and gates it
    cli("resume-factory", "long", "--reason", "morning")
    result = cli.json("run", "factory.yaml", timeout=240)
    assert (result["campaign_number"], result["resumed"]) == (1, True)
    assert result["stopped_because"] != "paused" and result["gate"] is not None
    with _store(cli) as s:
        assert s.get_trial(waiting.id).state == "completed"
        assert s.get_campaign(campaign.id).status == "finished"
