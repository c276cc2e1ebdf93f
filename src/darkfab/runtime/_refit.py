"""After the gate: the winning configuration refit on more rows (``gate.refit``), never losing the winner."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..data import Dataset
from ..results import RefitRecord
from ..spec import FactorySpec
from ..store import Store, TrialRecord
from ..train import EnsembleModel, can_refit, load_model, refit


def refit_winner(
    spec: FactorySpec, store: Store, data: Dataset, cand: TrialRecord, gated: bytes
) -> tuple[bytes, RefitRecord]:
    """The gated configuration refit on the rows `gate.refit` names, and the record of what it was fit on.

    Returns the gated artifact itself (with the reason) when the option is off, the trainer is code the
    factory did not write, or the refit fails: a winner is never lost to its refit.
    """
    mode = spec.gate.refit
    n_train = len(data.y_train)
    gated_artifact = cand.artifact_path or ""

    def kept(why: str) -> tuple[bytes, RefitRecord]:
        return gated, RefitRecord(trained_on="train", rows=n_train, gated_artifact=gated_artifact, why=why)

    if mode == "none":
        return kept("gate.refit is none: the registered model is the gated one")
    # an ensemble is refit member by member, with the weights the selection gave them
    ensemble = cand.trainer == "ensemble" and cand.proposer == "ensemble"
    jobs = [store.get_trial(int(i)) for i in cand.params.get("members", [])] if ensemble else [cand]
    trainers = [next((t for t in spec.trainers if t.name == j.trainer), None) for j in jobs]
    for job, trainer in zip(jobs, trainers, strict=True):
        if trainer is None or not can_refit(trainer):
            why = f"trainer {job.trainer!r} is code the factory did not write; it never trains on held-out labels"
            return kept(why)
    parts = ["train", "valid", "test"] if mode == "train+valid+test" else ["train", "valid"]
    X = pd.concat([getattr(data, f"X_{p}") for p in parts], ignore_index=True)
    y = np.concatenate([getattr(data, f"y_{p}") for p in parts])
    threads = spec.execution.threads  # as the trials ran: OpenMP boosters crawl when threads outnumber free cores
    started = time.perf_counter()
    try:
        blobs = [
            refit(
                task=data.task,
                feature_types=dict(data.feature_types),
                classes=data.classes,
                X=X,
                y=y,
                trainer=trainer,
                params=dict(job.params),
                seed=job.seed,
                threads=threads,
            )
            for job, trainer in zip(jobs, trainers, strict=True)
            if trainer is not None
        ]
        weights = [float(w) for w in cand.params.get("weights", [])]
        blob = EnsembleModel([load_model(b) for b in blobs], weights).to_bytes() if ensemble else blobs[0]
    except Exception as err:  # noqa: BLE001 - any failure of the estimator keeps the gated model instead
        return kept(f"the refit failed ({type(err).__name__}: {err})")
    evidence = (
        "the gate's figures are evidence about this configuration trained on the training rows; the "
        f"registered model is the same configuration refit on {len(y)} rows ({mode})"
        + (
            ", sealed test included after the gate used it, so it has no held-out score of its own"
            if "test" in parts
            else ""
        )
    )
    return blob, RefitRecord(
        trained_on=mode,
        rows=int(len(y)),
        gated_rows=n_train,
        params=dict(cand.params),
        rounds="as searched: the boosting rounds are a searched parameter, not set by early stopping",
        seconds=round(time.perf_counter() - started, 3),
        gated_artifact=gated_artifact,
        evidence=evidence,
    )
