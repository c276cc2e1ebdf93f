"""Reading the AI judge's answer: only the JSON asked for, of the right types, with every principle critiqued."""

from __future__ import annotations

import json

import pytest

from darkfab.runtime import judge_messages, parse_verdict

PRINCIPLES = ["prefer the smaller model", "never trade fairness for accuracy"]


def answer(winner: object = "1", critique: object = None, reason: object = "smaller") -> str:
    if critique is None:
        critique = [
            {"principle": 1, "candidate_1": "0.2 MB", "candidate_2": "9 MB"},
            {"principle": 2, "candidate_1": "gap 0.01", "candidate_2": "gap 0.01"},
        ]
    return json.dumps({"critique": critique, "winner": winner, "reason": reason})


@pytest.mark.parametrize(
    ("text", "winner"),
    [
        (answer("1"), "a"),
        (answer(2), "b"),
        (answer("tie"), "tie"),
        (answer(" TIE "), "tie"),
        ("```json\n" + answer("2") + "\n```", "b"),
        ("Here is my answer: " + answer("1") + " I hope it helps.", "a"),
    ],
)
def test_a_well_formed_answer_becomes_a_verdict_with_the_critique_as_rationale(text: str, winner: str) -> None:
    verdict, problems = parse_verdict(text, PRINCIPLES)
    assert problems == [] and verdict is not None
    assert verdict.winner == winner
    lines = verdict.rationale.splitlines()
    assert lines[0] == "principle 1 (prefer the smaller model): 1: 0.2 MB | 2: 9 MB"
    assert lines[1].startswith("principle 2 (never trade fairness for accuracy): 1: gap 0.01")
    assert lines[2].endswith(": smaller")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("I prefer the first one.", "no JSON object"),
        ("[1, 2]", "JSON but not an object: list"),
        ('{"winner": "1",, "critique": []}', "not valid JSON"),
        (answer(True), "`winner` must be"),
        (answer("3"), "`winner` must be"),
        (answer(["1"]), "`winner` must be"),
        (answer(critique="both fine"), "`critique` must be a list"),
        (answer(critique=[]), "`critique` is empty"),
        (answer(critique=[{"principle": 1, "candidate_1": "a", "candidate_2": "b"}]), "leaves out principle(s) 2"),
        (answer(critique=[{"principle": 7, "candidate_1": "a", "candidate_2": "b"}]), "from 1 to 2"),
        (answer(critique=[{"principle": 1, "candidate_1": 3, "candidate_2": "b"}]), "non-empty text"),
        (answer(critique=["fine", "fine"]), "must be an object"),
        (answer(reason=5), "`reason` must be text"),
    ],
)
def test_garbage_and_wrong_types_are_refused_with_the_reason(text: str, needle: str) -> None:
    verdict, problems = parse_verdict(text, PRINCIPLES)
    assert verdict is None
    assert any(needle in p for p in problems), problems


def test_the_request_holds_the_constitution_both_cards_and_the_answer_shape() -> None:
    card_1 = {"trial": 11, "metrics": {"accuracy": 0.9}}
    card_2 = {"trial": 12, "metrics": {"accuracy": 0.8}}
    system, user = judge_messages(PRINCIPLES, card_1, card_2, about="spam filter")
    assert system["role"] == "system" and "1. prefer the smaller model" in system["content"]
    assert "2. never trade fairness for accuracy" in system["content"] and '"winner"' in system["content"]
    first, second = user["content"].split("Candidate 2:")
    assert '"trial": 11' in first and '"trial": 12' in second and "spam filter" in first
