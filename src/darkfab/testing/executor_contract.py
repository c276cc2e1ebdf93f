"""The contract every :class:`~darkfab.execute.Executor` passes.

Subclass :class:`ExecutorContract` in a test module and give it an ``executor_factory`` fixture that returns
a callable making a fresh, un-started executor::

    class TestLocalExecutor(ExecutorContract):
        @pytest.fixture
        def executor_factory(self):
            return LocalExecutor

The misbehaving estimators the suite runs live in :mod:`darkfab.testing.faulty`, installed with darkfab, so
the suite runs outside this repository (set :attr:`ExecutorContract.faulty_module` to use other ones).
No test asserts a duration: the deadlines below only turn a hang into a failure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ..errors import ExecutorError
from ..execute import Executor, JobDone, JobReport, Limits, PredictJob, TrainJob
from ..spec import TrainerSpec
from ..train import TrialOutput, TrialRequest, WorkerPayload, load_model

ExecutorFactory = Callable[[], Executor]

_DRAIN_S = 60.0  # a job still unfinished after this long is a failure of the executor


def digits_payload(*, rows: int = 900, threads: int = 1, latency_rows: int = 0) -> WorkerPayload:
    """A small classification payload: scikit-learn's digits, split train / valid / test as 2:1:1."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True, as_frame=True)
    X, y = X.iloc[:rows].reset_index(drop=True), y.iloc[:rows].to_numpy()
    a, b = rows // 2, rows * 3 // 4
    return WorkerPayload(
        task="classification",
        feature_types={str(c): "numeric" for c in X.columns},
        n_classes=10,
        X_train=X.iloc[:a],
        y_train=y[:a],
        X_valid=X.iloc[a:b],
        X_test=X.iloc[b:],
        threads=threads,
        latency_rows=latency_rows,
        classes=tuple(range(10)),
    )


def request(trial_id: int, trainer: str, estimator: str | None = None, **params: Any) -> TrialRequest:
    return TrialRequest(trial_id=trial_id, trainer=TrainerSpec(name=trainer, estimator=estimator), params=params)


def drain(
    executor: Executor,
    *,
    on_report: Callable[[JobReport], bool] | None = None,
    within_s: float = _DRAIN_S,
) -> dict[str, JobDone]:
    """Poll until nothing is in flight; every job must end exactly once. ``on_report`` answers reports."""
    done: dict[str, JobDone] = {}
    deadline = time.monotonic() + within_s
    while executor.in_flight:
        if time.monotonic() > deadline:
            raise AssertionError(f"{executor.in_flight} jobs still in flight after {within_s:g} s")
        for event in executor.poll(0.5):
            if isinstance(event, JobReport):
                stop = on_report(event) if on_report is not None else False
                executor.answer(event.job_id, stop=stop)
            else:
                assert event.job_id not in done, f"job {event.job_id} reported done twice"
                done[event.job_id] = event
    return done


def keep_busy(executor: Executor, n: int, make: Callable[[int], TrialRequest]) -> list[JobDone]:
    """The factory's pattern over ``n`` jobs ``make(0)``, ``make(1)``...: keep every worker busy, poll for what
    ended, submit the next. Every job must succeed; returns what each job reported, in the order they ended."""
    done: list[JobDone] = []
    submitted = 0
    while len(done) < n:
        while submitted < n and executor.in_flight < executor.capacity:
            executor.submit(TrainJob(f"j{submitted}", make(submitted)))
            submitted += 1
        for event in executor.poll(0.2):
            assert isinstance(event, JobDone) and event.ok, event
            done.append(event)
    return done


class ExecutorContract:
    """Behaviour every executor shares: isolation, limits, retries, reports, logs, cancel, close."""

    faulty_module = "darkfab.testing.faulty"
    memory_limit_mb = 800  # well above a worker's resting size (about 250 MB with every library loaded)

    @pytest.fixture
    def payload(self) -> WorkerPayload:
        return digits_payload()

    @pytest.fixture
    def started(self, executor_factory: ExecutorFactory, payload: WorkerPayload) -> Iterator[Callable[..., Executor]]:
        """``started(workers=2, **limits)``: a started executor, closed after the test."""
        made: list[Executor] = []

        def start(workers: int = 2, **limits: Any) -> Executor:
            limits.setdefault("timeout_s", 60.0)
            limits.setdefault("memory_mb", None)
            executor = executor_factory()
            made.append(executor)
            executor.start(payload, workers=workers, limits=Limits(**limits))
            return executor

        yield start
        for executor in made:
            executor.close()

    def faulty(self, trial_id: int, name: str, **params: Any) -> TrialRequest:
        return request(trial_id, name.lower(), f"{self.faulty_module}:{name}", **params)

    # -- running trials --------------------------------------------------------------------------------

    def test_runs_a_real_trial(self, started: Callable[..., Executor], payload: WorkerPayload) -> None:
        executor = started(workers=1)
        executor.submit(TrainJob("lr", request(1, "logistic_regression")))
        assert executor.in_flight == 1
        done = drain(executor)["lr"]
        assert done.ok, done.error
        assert done.failure is None and done.error is None and done.attempts == 1 and done.worker
        output = done.output
        assert isinstance(output, TrialOutput)
        assert output.valid_predictions.shape == (len(payload.X_valid), 10)
        np.testing.assert_allclose(output.valid_predictions.sum(axis=1), 1.0)
        model = load_model(output.artifact)
        np.testing.assert_allclose(model.predict_raw(payload.X_valid), output.valid_predictions)
        assert executor.in_flight == 0

    def test_predict_job_scores_an_artifact(self, started: Callable[..., Executor], payload: WorkerPayload) -> None:
        executor = started(workers=1)
        executor.submit(TrainJob("lr", request(1, "logistic_regression")))
        trained = drain(executor)["lr"].output
        assert isinstance(trained, TrialOutput)
        executor.submit(PredictJob("test", trained.artifact))
        executor.submit(PredictJob("valid", trained.artifact, split="valid"))
        done = drain(executor)
        assert done["test"].ok and done["valid"].ok, (done["test"].error, done["valid"].error)
        expected = load_model(trained.artifact).predict_raw(payload.X_test)
        assert isinstance(done["test"].output, np.ndarray) and done["test"].output.shape == (len(payload.X_test), 10)
        np.testing.assert_allclose(done["test"].output, expected)
        assert isinstance(done["valid"].output, np.ndarray)
        np.testing.assert_allclose(done["valid"].output, trained.valid_predictions)

    def test_payload_is_sent_once_and_workers_are_reused(self, started: Callable[..., Executor]) -> None:
        executor = started(workers=2)
        for i in range(8):
            executor.submit(TrainJob(f"p{i}", self.faulty(i, "Probe")))
        done = drain(executor)
        by_pid: dict[int, list[Any]] = {}
        for event in done.values():
            assert event.ok, event.error
            assert isinstance(event.output, TrialOutput)
            probe = load_model(event.output.artifact).estimator
            by_pid.setdefault(probe.pid_, []).append(probe)
        assert len(by_pid) <= 2
        for probes in by_pid.values():
            # one process ran these jobs one after another, on the data it prepared once
            assert sorted(p.fit_number_ for p in probes) == list(range(1, len(probes) + 1))
            assert len({p.x_id_ for p in probes}) == 1

    def test_many_jobs_in_parallel_each_end_once(self, started: Callable[..., Executor]) -> None:
        executor = started(workers=2)
        assert executor.capacity == 2
        ids = [f"d{i}" for i in range(60)]
        for i, job_id in enumerate(ids):
            executor.submit(TrainJob(job_id, request(i, "dummy", "sklearn.dummy:DummyClassifier")))
        assert executor.in_flight == len(ids)
        done = drain(executor)
        assert sorted(done) == sorted(ids)
        assert all(event.ok for event in done.values())
        assert executor.in_flight == 0

    def test_duplicate_job_id_is_refused(self, started: Callable[..., Executor]) -> None:
        executor = started(workers=1)
        executor.submit(TrainJob("same", request(1, "dummy", "sklearn.dummy:DummyClassifier")))
        with pytest.raises(ValueError, match="same"):
            executor.submit(TrainJob("same", request(2, "dummy", "sklearn.dummy:DummyClassifier")))
        drain(executor)

    def test_submit_before_start_is_refused(self, executor_factory: ExecutorFactory) -> None:
        executor = executor_factory()
        try:
            with pytest.raises(ExecutorError, match="start"):
                executor.submit(TrainJob("early", request(1, "dummy", "sklearn.dummy:DummyClassifier")))
        finally:
            executor.close()

    # -- intermediate reports --------------------------------------------------------------------------

    def test_reports_then_stop_prunes(self, started: Callable[..., Executor], payload: WorkerPayload) -> None:
        executor = started(workers=1)
        job = request(1, "lightgbm", n_estimators=40, num_leaves=8)
        executor.submit(TrainJob("gbm", TrialRequest(**{**job.__dict__, "report_every": 5})))
        reports: list[JobReport] = []

        def stop_at_ten(report: JobReport) -> bool:
            reports.append(report)
            return report.step >= 10

        done = drain(executor, on_report=stop_at_ten)["gbm"]
        assert [r.step for r in reports] == [5, 10]
        assert reports[0].predictions.shape == (len(payload.X_valid), 10)
        assert not done.ok and done.failure == "pruned" and done.output is None
        assert done.attempts == 1

    def test_reports_then_continue_finishes(self, started: Callable[..., Executor]) -> None:
        executor = started(workers=1)
        job = request(1, "lightgbm", n_estimators=20, num_leaves=8)
        executor.submit(TrainJob("gbm", TrialRequest(**{**job.__dict__, "report_every": 5})))
        steps: list[int] = []

        def record(report: JobReport) -> bool:
            steps.append(report.step)
            return False

        done = drain(executor, on_report=record)["gbm"]
        assert done.ok, done.error
        assert steps == [5, 10, 15]

    # -- limits ----------------------------------------------------------------------------------------

    def test_timeout_kills_a_hanging_job_and_the_pool_goes_on(self, started: Callable[..., Executor]) -> None:
        executor = started(workers=1, timeout_s=2.0, retries=2)
        executor.submit(TrainJob("hang", self.faulty(1, "Hang")))
        executor.submit(TrainJob("after", self.faulty(2, "Probe")))
        done = drain(executor)
        hang = done["hang"]
        assert not hang.ok and hang.failure == "timeout"
        assert "2 s" in (hang.error or "") and "timeout" in (hang.error or "")
        assert hang.attempts == 1, "a timeout is not retried"
        assert "hang: started" in hang.log_tail
        assert done["after"].ok, done["after"].error

    def test_memory_limit_kills_a_job_that_allocates_past_it(self, started: Callable[..., Executor]) -> None:
        limit = self.memory_limit_mb
        executor = started(workers=1, memory_mb=limit, retries=2)
        executor.submit(TrainJob("eat", self.faulty(1, "EatMemory", megabytes=limit * 4)))
        executor.submit(TrainJob("after", self.faulty(2, "Probe")))
        done = drain(executor)
        eat = done["eat"]
        assert not eat.ok and eat.failure == "memory", eat.error
        assert str(limit) in (eat.error or "")
        assert eat.attempts == 1, "a memory failure is not retried"
        assert done["after"].ok, done["after"].error

    def test_memory_error_raised_by_the_job_is_a_memory_failure(self, started: Callable[..., Executor]) -> None:
        executor = started(workers=1, retries=2)
        executor.submit(TrainJob("oom", self.faulty(1, "OutOfMemory")))
        done = drain(executor)["oom"]
        assert not done.ok and done.failure == "memory" and done.attempts == 1
        assert "MemoryError" in (done.error or "")

    # -- faults ----------------------------------------------------------------------------------------

    def test_segfault_is_retried_then_reported_as_a_crash(self, started: Callable[..., Executor]) -> None:
        executor = started(workers=1, retries=1)
        executor.submit(TrainJob("segv", self.faulty(1, "Segfault")))
        executor.submit(TrainJob("after", self.faulty(2, "Probe")))
        done = drain(executor)
        segv = done["segv"]
        assert not segv.ok and segv.failure == "crash"
        assert segv.attempts == 2
        assert "SIGSEGV" in (segv.error or "")
        assert "segfault: about to crash" in segv.log_tail
        assert done["after"].ok, done["after"].error

    def test_a_retry_after_a_crash_can_succeed(self, started: Callable[..., Executor], tmp_path: Path) -> None:
        executor = started(workers=1, retries=1)
        executor.submit(TrainJob("once", self.faulty(1, "CrashOnce", marker=str(tmp_path / "crashed"))))
        done = drain(executor)["once"]
        assert done.ok, done.error
        assert done.attempts == 2

    def test_exception_is_reported_not_retried_and_the_worker_stays(self, started: Callable[..., Executor]) -> None:
        executor = started(workers=1, retries=2)
        executor.submit(TrainJob("raise", self.faulty(1, "Raise")))
        executor.submit(TrainJob("after", self.faulty(2, "Probe")))
        done = drain(executor)
        raised = done["raise"]
        assert not raised.ok and raised.failure == "exception"
        assert raised.error == "ValueError: deliberate"
        assert raised.attempts == 1
        assert "Traceback" in raised.log_tail and "ValueError: deliberate" in raised.log_tail
        assert done["after"].ok and done["after"].worker == raised.worker

    def test_printed_output_is_in_the_log_tail_of_its_own_job(self, started: Callable[..., Executor]) -> None:
        executor = started(workers=1)
        executor.submit(TrainJob("chatty", self.faulty(1, "Chatty")))
        executor.submit(TrainJob("quiet", self.faulty(2, "Probe")))
        done = drain(executor)
        tail = done["chatty"].log_tail
        assert done["chatty"].ok, done["chatty"].error
        for marker in ("python stdout", "python stderr", "fd 1", "fd 2", "C printf", "subprocess"):
            assert f"chatty: {marker}" in tail, f"{marker!r} missing from the log tail:\n{tail}"
        assert "chatty" not in done["quiet"].log_tail

    # -- cancel and close ------------------------------------------------------------------------------

    def test_cancel_a_running_and_a_queued_job(self, started: Callable[..., Executor]) -> None:
        executor = started(workers=1)
        executor.submit(TrainJob("running", self.faulty(1, "Hang")))
        executor.submit(TrainJob("queued", self.faulty(2, "Probe")))
        assert executor.poll(0.5) == []
        executor.cancel("queued", "not needed")
        executor.cancel("running", "budget spent")
        executor.cancel("never-submitted", "ignored")
        done = drain(executor)
        assert set(done) == {"running", "queued"}
        assert done["running"].failure == "cancelled" and done["running"].error == "budget spent"
        assert done["queued"].failure == "cancelled" and done["queued"].error == "not needed"
        executor.submit(TrainJob("after", self.faulty(3, "Probe")))
        assert drain(executor)["after"].ok

    def test_close_twice_and_close_unstarted(self, executor_factory: ExecutorFactory, payload: WorkerPayload) -> None:
        executor_factory().close()
        executor = executor_factory()
        executor.start(payload, workers=1, limits=Limits(timeout_s=60.0, memory_mb=None))
        executor.submit(TrainJob("left", self.faulty(1, "Hang")))
        executor.close()
        executor.close()
        assert executor.in_flight == 0
        with pytest.raises(ExecutorError):
            executor.submit(TrainJob("late", request(1, "dummy", "sklearn.dummy:DummyClassifier")))
