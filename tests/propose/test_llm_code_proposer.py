"""The LLM code proposer against a fake OpenAI-compatible server on loopback, and the torch example end to end."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from darkfab.errors import SpecError
from darkfab.execute import Limits, LocalExecutor, TrainJob
from darkfab.propose import CodePatch, SearchContext, TrialView, make_proposer
from darkfab.propose._llm_code import LLMCodeProposer, parse_answer
from darkfab.spec import LLMSpec, ParamSpec, TrainerSpec, load_spec
from darkfab.testing.executor_contract import digits_payload, drain
from darkfab.train import ScriptError, TrialRequest, apply_edits

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/propose is not a package: reach tests.helpers
from tests.helpers.fake_llm import CallLog, FakeLLM, ok, status  # noqa: E402
from tests.helpers.scripts import prior_script  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "torch_digits"
SCRIPT = prior_script(shift="1.0", smoothing='SHIFT * params["scale"]')


def answer(edits: list[dict[str, str]], reason: str = "try it", **params: object) -> str:
    return "```json\n" + json.dumps({"edits": edits, "params": params, "reason": reason}) + "\n```"


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def context(llm: FakeLLM, script: Path, **llm_fields: object) -> SearchContext:
    trainer = TrainerSpec(name="prior", script=str(script))
    fields = {"base_url": llm.base_url, "model": "fake", "retries": 0, "timeout": 5.0, **llm_fields}
    return SearchContext(
        trainers=[trainer],
        spaces={"prior": {"scale": ParamSpec(low=0.5, high=2.0)}},
        directions=("maximize",),
        objective_names=("accuracy",),
        llm=LLMSpec.model_validate(fields),
        description="digits",
    )


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    return path


def view(proposal: object, trial_id: int, value: float | None, state: str = "completed") -> TrialView:
    return TrialView(trial_id, "llm_code", proposal.trainer, proposal.params, state, value, patch=proposal.patch)  # type: ignore[attr-defined]


def test_the_unedited_script_comes_first_then_edits_with_diff_and_parent(llm: FakeLLM, script: Path) -> None:
    calls: list[object] = CallLog()
    proposer = make_proposer("llm_code", context(llm, script), on_llm_call=calls.record)
    assert isinstance(proposer, LLMCodeProposer)
    (first,) = proposer.propose(1)
    assert first.patch == CodePatch((), "") and first.params == {"scale": 1.25}
    assert llm.count == 0
    proposer.observe(first, view(first, 1, 0.5))
    llm.script(ok(answer([{"block": "prior", "search": "1.0", "replace": "0.25"}], "less smoothing", scale=2.0)))
    (second,) = proposer.propose(1)
    assert second.patch is not None and second.patch.edit_list() == [
        {"block": "prior", "search": "1.0", "replace": "0.25"}
    ]
    assert "+SHIFT = 0.25" in second.patch.diff and second.params == {"scale": 2.0}
    assert second.reason == "less smoothing" and second.parents == (1,)
    assert len(calls) == 1
    prompt = llm.requests[0]["body"]["messages"][1]["content"]
    assert "--- block prior ---\nSHIFT = 1.0\n--- end prior ---" in prompt and "trial 1" in prompt


def test_a_bad_answer_is_sent_back_with_its_error(llm: FakeLLM, script: Path) -> None:
    proposer = LLMCodeProposer(context(llm, script, max_repairs=2))
    proposer.observe(proposer.propose(1)[0], TrialView(1, "llm_code", "prior", {}, "completed", 0.5, patch=CodePatch()))
    llm.script(
        ok("no json here"),
        ok(answer([{"block": "prior", "search": "class Prior", "replace": "x"}])),
        ok(answer([{"block": "prior", "search": "SHIFT = 1.0", "replace": "SHIFT = 3.0"}])),
    )
    (proposal,) = proposer.propose(1)
    assert "SHIFT = 3.0" in apply_edits(SCRIPT, proposal.patch.edit_list())
    followups = [r["body"]["messages"][-1]["content"] for r in llm.requests[1:]]
    assert "no JSON object" in followups[0] and "occurs outside the block" in followups[1]
    assert [c.status for c in proposer.records] == ["invalid", "invalid", "ok"]
    assert proposer.records[-1].proposal_keys == (proposal.key,)


def test_it_falls_back_like_llm_when_repairs_or_the_endpoint_fail(llm: FakeLLM, script: Path) -> None:
    # one failed exchange no longer ends the campaign: the best code so far with random valid params, saying why
    proposer = LLMCodeProposer(context(llm, script, max_repairs=1))
    proposer.observe(proposer.propose(1)[0], TrialView(1, "llm_code", "prior", {}, "completed", 0.5, patch=CodePatch()))
    llm.script(ok("{}"), ok(answer([{"block": "nope", "search": "a", "replace": "b"}])))
    (fallback,) = proposer.propose(1)
    assert "no editable block 'nope'" in proposer.last_error
    assert fallback.reason.startswith("llm unavailable:") and "no editable block 'nope'" in fallback.reason
    assert fallback.patch == CodePatch() and 0.5 <= fallback.params["scale"] <= 2.0 and fallback.parents == (1,)
    (again,) = proposer.propose(1)  # nothing scripted: HTTP 500
    assert "endpoint failed" in proposer.last_error and again.reason.startswith("llm unavailable:")
    assert again.params["scale"] != fallback.params["scale"]


def test_a_repeat_of_tried_code_is_refused(llm: FakeLLM, script: Path) -> None:
    proposer = LLMCodeProposer(context(llm, script, max_repairs=1))
    first = proposer.propose(1)[0]
    proposer.observe(first, view(first, 1, 0.5))
    llm.script(ok(answer([])), ok(answer([], scale=1.25)))
    (fallback,) = proposer.propose(1)
    assert "tried already" in proposer.last_error and fallback.reason.startswith("llm unavailable:")
    assert "changes nothing" in llm.requests[1]["body"]["messages"][-1]["content"]


def test_it_needs_an_endpoint_and_a_script_trainer(llm: FakeLLM, script: Path) -> None:
    ctx = context(llm, script)
    with pytest.raises(SpecError, match="needs `search.llm`"):
        LLMCodeProposer(SearchContext(ctx.trainers, ctx.spaces, ctx.directions, ctx.objective_names))
    with pytest.raises(SpecError, match="no trainer has `script`"):
        LLMCodeProposer(SearchContext([TrainerSpec(name="lightgbm")], {}, ("maximize",), ("accuracy",), llm=ctx.llm))


def test_parse_answer_names_what_is_wrong() -> None:
    with pytest.raises(ScriptError, match="not valid JSON"):
        parse_answer("{edits: }")
    with pytest.raises(ScriptError, match="`edits` list"):
        parse_answer('{"reason": "x"}')


def _torch() -> bool:
    return importlib.util.find_spec("torch") is not None


@pytest.mark.slow
@pytest.mark.skipif(not _torch(), reason="torch is not installed (the torch extra)")
def test_the_torch_example_runs_end_to_end_against_the_fake_llm(llm: FakeLLM, tmp_path: Path) -> None:
    raw = yaml.safe_load((EXAMPLE / "factory.yaml").read_text())
    raw.pop("search")  # the spec's proposer list is the factory's; here the proposer is driven directly
    (tmp_path / "factory.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "train.py").write_text((EXAMPLE / "train.py").read_text())
    spec = load_spec(tmp_path / "factory.yaml")
    trainer = spec.trainers[0]
    space = {k: v for k, v in (trainer.space or {}).items()}
    ctx = SearchContext(
        trainers=[trainer],
        spaces={trainer.name: space},
        directions=("maximize",),
        objective_names=("accuracy",),
        llm=LLMSpec(base_url=llm.base_url, model="fake", retries=0, timeout=5.0),
    )
    proposer = LLMCodeProposer(ctx)
    llm.script(
        ok(answer([{"block": "model", "search": "nn.ReLU()", "replace": "nn.Tanh()"}], "smoother activation")),
        ok(answer([{"block": "loss", "search": "target)", "replace": "target, label_smoothing=0.1)"}], "smooth")),
    )
    ex = LocalExecutor()
    ex.start(digits_payload(rows=600), workers=2, limits=Limits(timeout_s=120.0, memory_mb=None))
    try:
        seen = []
        for round_ in range(3):
            (proposal,) = proposer.propose(1)
            request = TrialRequest(round_, trainer, {**proposal.params, "epochs": 10}, seed=0, patch=proposal.patch)
            ex.submit(TrainJob(f"t{round_}", request))
            done = drain(ex, within_s=120.0)[f"t{round_}"]
            assert done.ok, (done.error, done.log_tail)
            assert proposal.patch is not None and done.output.info["diff"] == proposal.patch.diff
            y = digits_payload(rows=600).y_train  # the factory scores; here a stand-in score keeps the loop going
            value = float(done.output.valid_predictions.argmax(1).mean() >= 0) * (0.5 + round_ / 10)
            proposer.observe(proposal, view(proposal, round_ + 1, value))
            seen.append(proposal)
            assert len(y)
        assert all(p.patch is not None for p in seen) and seen[0].patch.edits == ()
        assert "+        nn.Tanh()," in seen[1].patch.diff
        assert seen[2].patch.edits[0]["replace"] == "nn.Tanh()"  # built on the best trial so far
        assert "label_smoothing=0.1" in seen[2].patch.diff
    finally:
        ex.close()


def test_wrongly_typed_edits_are_recorded_and_repaired(llm: FakeLLM, script: Path) -> None:
    calls: list[object] = CallLog()
    proposer = LLMCodeProposer(context(llm, script), on_llm_call=calls.record)
    proposer.observe(proposer.propose(1)[0], TrialView(1, "llm_code", "prior", {}, "completed", 0.5, patch=CodePatch()))
    llm.script(
        ok(json.dumps({"edits": ["text"], "reason": "strings, not edits"})),
        ok(json.dumps({"edits": [], "params": ["scale", 1.5]})),
        ok(answer([{"block": "prior", "search": "SHIFT = 1.0", "replace": "SHIFT = 2.0"}])),
    )
    (proposal,) = proposer.propose(1)
    assert "SHIFT = 2.0" in apply_edits(SCRIPT, proposal.patch.edit_list())
    assert [c.status for c in calls] == ["invalid", "invalid", "ok"]  # type: ignore[attr-defined]
    repairs = [r["body"]["messages"][-1]["content"] for r in llm.requests[1:]]
    assert "edits[0] must be an object" in repairs[0] and "`params` must be an object" in repairs[1]
    assert all(c.prompt_tokens > 0 for c in calls)  # type: ignore[attr-defined]


def test_every_attempt_is_a_row_and_the_token_budget_holds(llm: FakeLLM, script: Path) -> None:
    calls: list[object] = CallLog()
    usage = {"prompt_tokens": 400, "completion_tokens": 100}
    proposer = LLMCodeProposer(
        context(llm, script, retries=2, max_tokens=200, max_tokens_total=1500, max_repairs=3), on_llm_call=calls.record
    )
    proposer.observe(proposer.propose(1)[0], TrialView(1, "llm_code", "prior", {}, "completed", 0.5, patch=CodePatch()))
    llm.script(
        status(429, retry_after=0.01),
        status(429, retry_after=0.01),
        ok(answer([{"block": "nope", "search": "a", "replace": "b"}]), usage=usage),
        ok(answer([{"block": "nope", "search": "a", "replace": "b"}]), usage=usage),
        ok(answer([{"block": "nope", "search": "a", "replace": "b"}]), usage=usage),
        ok(answer([{"block": "nope", "search": "a", "replace": "b"}]), usage=usage),
    )
    proposer.propose(1)
    assert [c.status for c in calls][:3] == ["429", "429", "invalid"]  # type: ignore[attr-defined]
    # each request reserved its max_tokens first: the repairs stop before the budget could be overshot
    assert proposer.tokens <= 1500 and proposer.exhausted.startswith("LLM token budget reached")
    assert all(r["body"]["max_tokens"] <= 200 for r in llm.requests)
    sent = llm.count
    assert proposer.propose(2) == [] and llm.count == sent
