"""select_candidate: the first candidate, best first, that raises no suspicion on the sealed rows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from darkfab.evaluate import Answers, Flagged, Screening, select_candidate

RNG = np.random.default_rng(7)
Y_VALID = RNG.normal(size=200)
Y_TEST = RNG.normal(size=200)


def _screening(reference: float | None = 0.9) -> Screening:
    return Screening(
        task="regression",
        metric="r2",
        direction="maximize",
        y_valid=Y_VALID,
        y_test=Y_TEST,
        n_classes=0,
        baseline_test=np.full(len(Y_TEST), float(np.mean(Y_VALID))),
        reference_score=reference,
        jitter=0.05,
        n_boot=200,
        seed=0,
    )


def _noisy(y: np.ndarray, scale: float, seed: int) -> np.ndarray:
    return y + np.random.default_rng(seed).normal(scale=scale, size=len(y))


HONEST = Answers(valid=_noisy(Y_VALID, 0.3, 1), test=_noisy(Y_TEST, 0.3, 2), perturbed=_noisy(Y_TEST, 0.32, 3))
# perfect on the validation rows, no better than noise on the sealed rows: fits validation, not the task
OVERFIT = Answers(valid=Y_VALID.copy(), test=_noisy(Y_TEST, 1.5, 4), perturbed=_noisy(Y_TEST, 1.5, 5))
# good on the sealed rows, lost on jittered copies of them: it looks rows up
LOOKUP = Answers(valid=_noisy(Y_VALID, 0.3, 6), test=_noisy(Y_TEST, 0.3, 7), perturbed=np.zeros(len(Y_TEST)))
BROKEN = Answers(valid=HONEST.valid, test=HONEST.test, perturbed=None, perturbed_error="prediction failed: boom")


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    return float(1 - np.sum((y - p) ** 2) / np.sum((y - np.mean(y)) ** 2))


@pytest.mark.parametrize("bad", [OVERFIT, LOOKUP, BROKEN], ids=["overfit", "lookup", "cannot-score-copies"])
def test_a_suspicious_leader_is_flagged_and_the_next_is_picked(bad: Answers) -> None:
    answers = {"bad": bad, "honest": HONEST}
    heard: list[Flagged[str]] = []
    chosen = select_candidate(
        ["bad", "honest"],
        answers.__getitem__,
        value_of=lambda c: _r2(Y_VALID, answers[c].valid),
        screening=_screening(),
        on_flagged=heard.append,
    )
    assert chosen.picked == "honest"
    assert chosen.test_predictions is HONEST.test
    assert [f.candidate for f in chosen.flagged] == ["bad"] and heard == list(chosen.flagged)
    assert chosen.flagged[0].suspicions, "a flag always carries its evidence"


def test_the_kinds_of_suspicion_name_what_was_seen() -> None:
    kinds = {}
    for name, bad in (("overfit", OVERFIT), ("lookup", LOOKUP), ("broken", BROKEN)):
        got = select_candidate([bad], lambda a: a, value_of=lambda a: _r2(Y_VALID, a.valid), screening=_screening())
        assert got.picked is None and got.test_predictions is None
        kinds[name] = {s.kind for s in got.flagged[0].suspicions}
    assert "validation_far_above_test" in kinds["overfit"]
    assert kinds["lookup"] == {"memorization"} and kinds["broken"] == {"memorization"}


def test_an_honest_leader_is_picked_with_its_probe_figures() -> None:
    got = select_candidate([HONEST, OVERFIT], lambda a: a, value_of=lambda a: 0.9, screening=_screening(None))
    assert got.picked is HONEST and not got.flagged
    assert got.probe["flagged"] is False
    assert got.probe["perturbed_score"] < got.probe["sealed_score"]


def test_candidates_without_a_score_are_skipped_unasked() -> None:
    asked: list[str] = []

    def predict(c: str) -> Answers:
        asked.append(c)
        return HONEST

    got = select_candidate(
        ["unscored", "scored"], predict, value_of=lambda c: None if c == "unscored" else 0.9, screening=_screening()
    )
    assert got.picked == "scored" and asked == ["scored"]


def test_nothing_to_pick_from() -> None:
    got = select_candidate([], lambda c: HONEST, value_of=lambda c: 1.0, screening=_screening())
    assert got.picked is None and got.flagged == () and got.probe == {}


def test_a_sealed_split_harder_for_every_model_does_not_flag_the_honest_candidate() -> None:
    """The sealed rows spread twice as wide as the validation rows: every model's error doubles there, the
    trivial baseline's too. The honest candidate's gap is the split's, not its own; one fitted to the
    validation rows still stands out beyond it."""
    rng = np.random.default_rng(11)
    y_valid, y_test = rng.normal(size=300), rng.normal(scale=2.0, size=300)
    honest = Answers(
        valid=y_valid + rng.normal(scale=0.5, size=300),
        test=y_test + rng.normal(scale=1.0, size=300),
        perturbed=y_test + rng.normal(scale=1.05, size=300),
    )
    fitted = Answers(valid=y_valid.copy(), test=y_test + rng.normal(scale=2.5, size=300), perturbed=y_test)
    rmse = {id(honest): 0.5, id(fitted): 0.0}

    def screening(baseline_valid: np.ndarray | None) -> Screening:
        rmse_rows = {"metric": "rmse", "direction": "minimize", "y_valid": y_valid, "y_test": y_test}
        return replace(_screening(None), **rmse_rows, baseline_test=np.zeros(300), baseline_valid=baseline_valid)

    got = select_candidate(
        [fitted, honest], lambda a: a, value_of=lambda a: rmse[id(a)], screening=screening(np.zeros(300))
    )
    assert got.picked is honest
    assert [s.kind for s in got.flagged[0].suspicions] == ["validation_far_above_test"]
    figures = got.flagged[0].suspicions[0].detail
    assert figures["shared_gap"] > 0.5 and figures["gap"] > figures["allowed"]
    # without the baseline's answers on the validation rows (the old check) the honest candidate is flagged too
    blind = select_candidate([fitted, honest], lambda a: a, value_of=lambda a: rmse[id(a)], screening=screening(None))
    assert blind.picked is None and len(blind.flagged) == 2
