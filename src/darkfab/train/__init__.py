"""Trainers: the `Trainer` ABC, built-in trainers, preprocessing, and the worker-side harness."""

from __future__ import annotations

import sys

from . import script
from ._ensemble import EnsembleModel, greedy_weights
from ._harness import WorkerState, fit_model, predict, prepare, run_here, run_trial
from ._model import DarkfabModel, load_model
from ._portfolio import PORTFOLIO, portfolio_configs
from ._prep import Flavour, Preprocessor
from ._records import Split, TrialOutput, TrialRequest, WorkerPayload
from ._refit import can_refit, refit
from ._trainers import (
    BUILTINS,
    EstimatorTrainer,
    FitContext,
    Report,
    Trainer,
    import_object,
    resolve_trainer,
    resolved_space,
)
from .script import (
    ScriptError,
    ScriptEstimator,
    ScriptTrainer,
    UntrustedCodeError,
    apply_edits,
    block_texts,
    code_trusted,
    editable_blocks,
    trust_script_code,
    unified_diff,
)

# models pickled before the script module became public name it darkfab.train._script; they still load
sys.modules.setdefault(f"{__name__}._script", script)

__all__ = [
    "BUILTINS",
    "PORTFOLIO",
    "DarkfabModel",
    "EnsembleModel",
    "EstimatorTrainer",
    "FitContext",
    "Flavour",
    "Preprocessor",
    "Report",
    "ScriptError",
    "ScriptEstimator",
    "ScriptTrainer",
    "Split",
    "Trainer",
    "TrialOutput",
    "TrialRequest",
    "UntrustedCodeError",
    "WorkerPayload",
    "WorkerState",
    "apply_edits",
    "block_texts",
    "can_refit",
    "code_trusted",
    "editable_blocks",
    "fit_model",
    "greedy_weights",
    "import_object",
    "load_model",
    "portfolio_configs",
    "predict",
    "prepare",
    "refit",
    "resolve_trainer",
    "resolved_space",
    "run_here",
    "run_trial",
    "trust_script_code",
    "unified_diff",
]
