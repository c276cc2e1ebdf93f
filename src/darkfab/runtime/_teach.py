"""Teaching the factory what you want: preferences in, a learned reward out (if it earns its place).

The parts (orchestration only; the algorithm is :mod:`darkfab.evaluate`'s learned reward):

- :func:`prefer` stores one answer (``person:NAME`` or ``judge:MODEL``) about two trials of a factory;
- :func:`next_pair` picks the two candidates whose order the reward is least sure of, to ask next;
- :func:`learn` fits the learned reward on every effective preference, gates it against the declared
  weights on held-out preferences, records the decision (event ``reward_judged``) and, when it passes and
  the factory asks for it (``objective.reward: learned``), re-scores every stored trial from its metrics;
- :func:`learned_weights` is what a campaign reads: the weights of the last passed judgement, or None.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from ..evaluate import (
    Comparison,
    RewardJudgement,
    RewardModel,
    choose_pair,
    features_for,
    fit_preferences,
    judge_learned,
)
from ..store import ModelVersionRecord, PreferenceRecord, Store, TrialRecord

if TYPE_CHECKING:
    from ..data import Dataset
    from ..evaluate import GateVerdict
    from ..spec import FactorySpec
    from ._factory import Factory

DEFAULT_MARGIN = 0.1
"""How much better (agreement with held-out preferences) a learned reward must be to replace the declared one."""


def _candidates(store: Store, factory_id: int) -> list[TrialRecord]:
    return [t for t in store.list_trials(factory_id=factory_id) if t.state == "completed" and t.metrics]


def declared_reward(factory: Factory) -> RewardModel:
    """The reward the factory file declares (the learned reward's prior)."""
    from ..data import load_dataset
    from ._parts import reward_model

    return reward_model(factory.spec, load_dataset(factory.spec))


def prefer(
    factory: Factory, trial_a: int, trial_b: int, winner: str, *, source: str, rationale: str = ""
) -> PreferenceRecord:
    """Record that ``winner`` (``a``, ``b`` or ``tie``) of two of the factory's trials is the better model."""
    store = factory.store
    return store.add_preference(
        store.get_factory(factory.name).id,
        trial_a=trial_a,
        trial_b=trial_b,
        winner=winner,
        source=source,
        rationale=rationale,
    )


def comparisons(store: Store, factory_id: int) -> tuple[list[Comparison], dict[str, int]]:
    """The factory's effective preferences (a person's over a judge's) as comparisons of stored metrics."""
    prefs = store.list_preferences(factory_id, effective=True)
    metrics = {t.id: t.metrics or {} for t in store.list_trials(factory_id=factory_id)}
    out = [Comparison(metrics[p.trial_a], metrics[p.trial_b], p.winner) for p in prefs]
    by_source = Counter(p.source.partition(":")[0] for p in prefs)
    return out, dict(by_source)


def next_pair(
    factory: Factory, *, asked: set[tuple[int, int]] | None = None, reward: RewardModel | None = None
) -> tuple[TrialRecord, TrialRecord] | None:
    """The two completed, feasible trials whose answer would teach the reward most; None when none is left.

    ``reward``: the factory's :func:`declared_reward` when the caller has it (building it loads the data set).
    """
    store = factory.store
    fid = store.get_factory(factory.name).id
    reward = reward if reward is not None else declared_reward(factory)
    pool = _candidates(store, fid)
    done = {(p.trial_a, p.trial_b) for p in store.list_preferences(fid)} | set(asked or ())
    by_index = {(i, j) for i, a in enumerate(pool) for j, b in enumerate(pool) if (a.id, b.id) in done}
    comps, _ = comparisons(store, fid)
    metrics = [t.metrics or {} for t in pool]
    if len(pool) < 2:
        return None
    model = fit_preferences(reward, comps, features_for(reward, metrics))
    pair = choose_pair(reward, model, metrics, by_index)
    return None if pair is None else (pool[pair[0]], pool[pair[1]])


def learned_weights(store: Store, factory_id: int) -> dict[str, float] | None:
    """The weights of the factory's last passed reward judgement, or None (the declared weights hold)."""
    for event in reversed(store.list_events(factory_id=factory_id, kinds=("reward_judged",))):
        return dict(event.data["weights_after"]) if event.data.get("passed") else None
    return None


def learn(factory: Factory, *, margin: float = DEFAULT_MARGIN) -> RewardJudgement:
    """Fit, gate and record the learned reward; re-score the stored trials when it takes over."""
    store = factory.store
    fid = store.get_factory(factory.name).id
    declared = declared_reward(factory)
    comps, by_source = comparisons(store, fid)
    judgement, _ = judge_learned(declared, comps, margin=margin, by_source=by_source)
    data = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(judgement).items()}
    store.append_event(kind="reward_judged", reason=judgement.reason, factory_id=fid, data=data)
    if judgement.passed and factory.spec.objective.reward == "learned":
        rescore(factory, judgement.weights_after)
    return judgement


def with_weights(reward: RewardModel, weights: dict[str, float]) -> RewardModel:
    """The same reward model (task, primary metric, constraints, references) with other weights."""
    return RewardModel(
        task=reward.task,
        primary=reward.primary,
        direction=reward.direction,
        weights=weights,
        constraints=reward.constraints,
        references=reward.references,
    )


def rescore(factory: Factory, weights: dict[str, float]) -> int:
    """Re-score every evaluated trial of the factory from its stored metrics with these weights."""
    store = factory.store
    fid = store.get_factory(factory.name).id
    reward = with_weights(declared_reward(factory), weights)
    scores: dict[int, tuple[float, bool, dict[str, dict[str, float]]]] = {}
    for t in store.list_trials(factory_id=fid):
        if t.metrics is None or t.state != "completed":
            continue
        ev = reward.evaluate(t.metrics)
        scores[t.id] = (ev.reward, ev.feasible, ev.breakdown)
    shown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(weights.items()))
    return store.rescore_trials(fid, scores, reason=f"every stored trial re-scored with the learned reward ({shown})")


def report_card(trial: TrialRecord, reward: RewardModel) -> dict[str, Any]:
    """What a person sees of one candidate: trainer, params, every metric, the reward and its breakdown."""
    ev = reward.evaluate(trial.metrics or {})
    return {
        "trial": trial.id,
        "trainer": trial.trainer,
        "params": {k: v for k, v in trial.params.items() if not str(k).startswith("_")},
        "metrics": dict(trial.metrics or {}),
        "reward": ev.reward,
        "feasible": ev.feasible,
        "violations": list(ev.violations),
    }


def reward_verdict(
    spec: FactorySpec,
    store: Store,
    data: Dataset,
    verdict: GateVerdict,
    candidate: TrialRecord,
    candidate_pred: Any,
    champion: ModelVersionRecord,
    champion_pred: Any,
) -> GateVerdict:
    """The gate under a learned reward: the candidate passes when its reward on the sealed rows beats the champion's.

    The primary-metric verdict stands when it passed, when the factory does not ask for the learned reward, or
    when no learned reward has passed its own gate yet. Otherwise both models are scored on the sealed rows
    (every metric the predictions determine, plus each model's stored size and latency) and ranked by the
    learned reward; constraints stay hard (an infeasible candidate never passes this way).
    """
    if verdict.passed or spec.objective.reward != "learned":
        return verdict
    weights = learned_weights(store, store.get_factory(spec.name).id)
    if not weights:
        return verdict
    from ..evaluate import compute_metrics
    from ._parts import reward_model

    reward = reward_model(spec, data, store)

    def sealed(pred: Any, stored: dict[str, Any]) -> dict[str, float]:
        figures = {k: float(v) for k, v in stored.items() if isinstance(v, (int, float))}
        figures.update(compute_metrics(data.task, data.y_test, pred, n_classes=data.n_classes, custom=reward.custom))
        return figures

    cand = reward.evaluate(sealed(candidate_pred, candidate.metrics or {}))
    champ = reward.evaluate(sealed(champion_pred, dict(champion.metrics.get("valid", {}))))
    if not cand.feasible or cand.reward <= champ.reward:
        return replace(
            verdict,
            reason=f"{verdict.reason}; under the learned reward the candidate scores {cand.reward:.4f} on the sealed "
            f"rows against the champion's {champ.reward:.4f}, not better",
        )
    return replace(
        verdict,
        passed=True,
        reason=f"the learned reward prefers it: {cand.reward:.4f} on the sealed rows against champion "
        f"v{champion.version}'s {champ.reward:.4f} (the primary metric alone: {verdict.reason})",
    )
