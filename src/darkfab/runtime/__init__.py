"""Orchestration, and no algorithm: the factory facade, campaigns, the lifecycle loop, retraining and the timeline.

The runtime drives the parts (spec, data, train, execute, propose, evaluate, registry, store, serve, monitor)
and is driven by the command line and the console; nothing below it imports it.
"""

from __future__ import annotations

from ..store import is_factory_file, resolve_factory, stored_spec
from ._factory import Factory, FactoryStatus, package_versions
from ._lifecycle import Lifecycle
from ._mirror import alias_mirror, mirror_aliases, mirror_run, mirror_version
from ._refs import build_monitor, reference_of
from ._retrain import retraining_frame
from ._teach import comparisons, declared_reward, learn, learned_weights, next_pair, prefer, report_card
from ._teach_judge import JudgeRun, ask_judge, judge_messages, parse_verdict
from ._timeline import Step, last_event_id, timeline

__all__ = [
    "Factory",
    "FactoryStatus",
    "JudgeRun",
    "Lifecycle",
    "Step",
    "alias_mirror",
    "ask_judge",
    "build_monitor",
    "comparisons",
    "declared_reward",
    "is_factory_file",
    "judge_messages",
    "last_event_id",
    "learn",
    "learned_weights",
    "mirror_aliases",
    "mirror_run",
    "mirror_version",
    "next_pair",
    "package_versions",
    "parse_verdict",
    "prefer",
    "reference_of",
    "report_card",
    "resolve_factory",
    "retraining_frame",
    "stored_spec",
    "timeline",
]
