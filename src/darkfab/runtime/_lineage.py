"""What a registered version records about where it came from: proposal, trial, data, packages, gate."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from ..data import Dataset
from ..results import GateOutcome
from ..spec import FactorySpec
from ..store import CampaignRecord, ModelVersionRecord, TrialRecord

_DISTRIBUTION_ALIASES = {"xgboost": ("xgboost-cpu",)}
"""Other distributions of the same import package; the lineage records the one installed, by its own name."""
PACKAGES = ("darkfab", "numpy", "pandas", "scikit-learn", "lightgbm", "xgboost", "optuna", "scipy")


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Python and the installed versions of the packages a model depends on (for lineage and benchmarks)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES + extra:
        for dist in (name, *_DISTRIBUTION_ALIASES.get(name, ())):
            try:
                out[dist] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                pass
    return out


def lineage_of(
    spec: FactorySpec,
    campaign: CampaignRecord,
    data: Dataset,
    cand: TrialRecord,
    parent: ModelVersionRecord | None,
    verdict: GateOutcome,
) -> dict[str, Any]:
    """The lineage of a gate winner (the refit and the approval are added by the caller)."""
    code = {} if cand.patch is None else {"patch": cand.patch.to_json()}  # the code it ran, when edited
    return {
        "proposal": {
            "proposer": cand.proposer,
            "reason": cand.reason,
            "key": cand.key,
            "parents": list(cand.parents),
        },
        "trial_id": cand.id,
        "campaign": campaign.number,
        "factory": spec.name,
        "parents": [parent.version] if parent is not None else [],
        "trainer": cand.trainer,
        "params": cand.params,
        **code,
        "data_fingerprint": data.fingerprint,
        "features": list(data.features),
        "target": data.target,
        "task": data.task,
        "packages": package_versions(),
        "gate": {
            "reason": verdict.reason,
            "delta": verdict.delta,
            "p_better": verdict.p_better,
            "sealed_uses": verdict.sealed_uses,
            "sealed_set": verdict.sealed_set.to_dict(),
        },
    }
