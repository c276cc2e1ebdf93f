"""A small, well-behaved script trainer (a class-prior model with one editable block) and a job that runs it."""

from __future__ import annotations

from pathlib import Path

from darkfab.execute import TrainJob
from darkfab.patch import CodePatch
from darkfab.spec import TrainerSpec
from darkfab.train import TrialRequest


def prior_script(shift: str = "0.0", smoothing: str = "1.0 + SHIFT") -> str:
    """The script's source: the class counts plus ``smoothing``; the ``prior`` block holds ``SHIFT = shift``."""
    return f"""\
import numpy as np

# darkfab: editable prior
SHIFT = {shift}
# darkfab: end prior


class Prior:
    def __init__(self, p):
        self.p = p

    def predict_proba(self, X):
        return np.tile(self.p, (len(X), 1))


def train(X, y, X_valid, params, report):
    p = np.bincount(y, minlength=params["n_classes"]) + {smoothing}
    return Prior(p / p.sum())
"""


def prior_job(folder: Path, trial_id: int = 99) -> TrainJob:
    """A trial of the prior script at ``folder/good.py`` with one edit (SHIFT 0.0 -> 0.5); job id good{trial_id}."""
    path = folder / "good.py"
    path.write_text(prior_script())
    spec = TrainerSpec(name="good", script=str(path))
    patch = CodePatch(({"block": "prior", "search": "0.0", "replace": "0.5"},))
    return TrainJob(f"good{trial_id}", TrialRequest(trial_id, spec, {}, patch=patch))
