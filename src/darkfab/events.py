"""The event kinds and stop reasons every package writes and reads: one enum each, so a kind is never a loose string.

``EventKind`` is a ``StrEnum``: a member compares equal to (and is stored as) its value, so the store, the audit
chain and ``--json`` output keep the same text they always had. A kind that is not listed here is refused by
nothing (the store accepts any well-formed name, and tests append their own ``note`` kinds); the enum is the
list darkfab itself writes.
"""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """Every kind of event darkfab appends to the audit chain."""

    # factories and the chain
    FACTORY_CREATED = "factory_created"
    FACTORY_UPDATED = "factory_updated"
    FACTORY_PAUSED = "factory_paused"
    FACTORY_RESUMED = "factory_resumed"
    CHAIN_KEYED = "chain_keyed"
    # campaigns
    CAMPAIGN_STARTED = "campaign_started"
    CAMPAIGN_RESUMED = "campaign_resumed"
    CAMPAIGN_PAUSED = "campaign_paused"
    CAMPAIGN_FINISHED = "campaign_finished"
    PROPOSED = "proposed"
    LEAKED_FEATURE = "leaked_feature"
    # trials (the terminal states are events too)
    TRIAL_STARTED = "started"
    TRIAL_REQUEUED = "requeued"
    TRIAL_COMPLETED = "completed"
    TRIAL_FAILED = "failed"
    TRIAL_PRUNED = "pruned"
    TRIAL_CANCELLED = "cancelled"
    RESULT_DROPPED = "result_dropped"
    # selection, the gate, the registry
    CANDIDATE_FLAGGED = "candidate_flagged"
    GATE_VERDICT = "gate_verdict"
    REGISTERED = "registered"
    ALIAS_SET = "alias_set"
    ALIAS_DELETED = "alias_deleted"
    APPROVAL_REQUESTED = "approval_requested"
    PROMOTION_APPROVED = "promotion_approved"
    PROMOTION_REJECTED = "promotion_rejected"
    SEALED_SET_WORN = "sealed_set_worn"
    SEALED_SET_ROTATED = "sealed_set_rotated"
    MLFLOW_EXPORTED = "mlflow_exported"
    MLFLOW_EXPORT_FAILED = "mlflow_export_failed"
    MLFLOW_ALIASES_SET = "mlflow_aliases_set"
    # the model server
    PREDICTION_FAILED = "prediction_failed"
    FEEDBACK_CONFLICT = "feedback_conflict"
    CHALLENGER_PROMOTED = "challenger_promoted"
    CHALLENGER_ROLLED_BACK = "challenger_rolled_back"
    SERVING_PAUSED = "serving_paused"
    SERVING_RESUMED = "serving_resumed"
    # monitoring and the lifecycle
    DRIFT_DETECTED = "drift_detected"
    QUALITY_DECAY = "quality_decay"
    LIFECYCLE_NOTE = "lifecycle_note"
    LIFECYCLE_SERVING_STARTED = "lifecycle_serving_started"
    LIFECYCLE_SERVING_STOPPED = "lifecycle_serving_stopped"
    LIFECYCLE_RETRAIN_STARTED = "lifecycle_retrain_started"
    LIFECYCLE_RETRAIN_FINISHED = "lifecycle_retrain_finished"
    LIFECYCLE_RETRAIN_FAILED = "lifecycle_retrain_failed"
    LIFECYCLE_TRIGGER_IGNORED = "lifecycle_trigger_ignored"
    # the learned reward
    PREFERENCE_RECORDED = "preference_recorded"
    REWARD_RESCORED = "reward_rescored"
    REWARD_JUDGED = "reward_judged"
    JUDGE_FINISHED = "judge_finished"


class StopReason(StrEnum):
    """Why a campaign stopped searching; its value is the short word stored and shown."""

    TRIAL_BUDGET = "trial_budget"
    TIME_BUDGET = "time_budget"
    CPU_BUDGET = "cpu_budget"
    LLM_BUDGET = "llm_budget"  # the LLM proposer's token or money budget is spent
    NOTHING_TO_PROPOSE = "nothing_to_propose"  # the proposer ran dry
    PAUSED = "paused"

    @property
    def is_spend_limit(self) -> bool:
        """A budget of time, CPU or money ran out (worth an alert), not a planned trial count or a person."""
        return self in (StopReason.TIME_BUDGET, StopReason.CPU_BUDGET, StopReason.LLM_BUDGET)


__all__ = ["EventKind", "StopReason"]
