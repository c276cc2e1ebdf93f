"""The executor contract over Ray actors, and what only the Ray executor does.

One local Ray, started once for the module, serves every test; each test makes its own executor, which
joins that Ray and leaves it running when it closes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from darkfab.errors import ExecutorError, SpecError
from darkfab.execute import Executor, Limits, RayExecutor, TrainJob, make_executor
from darkfab.testing.executor_contract import ExecutorContract, digits_payload, drain, request
from darkfab.train import TrialOutput, load_model

ray = pytest.importorskip("ray", reason="Ray is not installed; pip install 'darkfab[ray]' to run the Ray tests")

pytestmark = pytest.mark.ray

FAULTY = "darkfab.testing.faulty"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
def ray_session() -> Iterator[None]:
    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    # more CPUs than the machine has: killed actors hand theirs back a moment late, replacements need them now
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


class TestRayExecutor(ExecutorContract):
    @pytest.fixture
    def executor_factory(self) -> Callable[[], Executor]:
        return RayExecutor


@pytest.fixture
def started() -> Iterator[Callable[..., RayExecutor]]:
    made: list[RayExecutor] = []

    def start(workers: int = 1, **limits: object) -> RayExecutor:
        limits.setdefault("timeout_s", 60.0)
        limits.setdefault("memory_mb", None)
        executor = RayExecutor()
        made.append(executor)
        executor.start(digits_payload(), workers=workers, limits=Limits(**limits))  # type: ignore[arg-type]
        return executor

    yield start
    for executor in made:
        executor.close()


def probe(trial_id: int, **params: object) -> TrainJob:
    return TrainJob(f"probe{trial_id}", request(trial_id, "probe", f"{FAULTY}:Probe", **params))


def test_make_executor_passes_the_ray_options() -> None:
    executor = make_executor("ray", address=None, cpus_per_trial=0.5, gpus_per_trial=0, memory_mb=256)
    assert isinstance(executor, RayExecutor)
    executor.close()


def test_make_executor_refuses_an_option_the_backend_does_not_take() -> None:
    with pytest.raises(SpecError, match=r"'local' takes no option 'address'.*fix"):
        make_executor("local", address="auto")
    with pytest.raises(SpecError, match="'cpus'"):
        make_executor("ray", cpus=2)


def test_resources_must_be_possible() -> None:
    with pytest.raises(SpecError, match="cpus_per_trial"):
        RayExecutor(cpus_per_trial=0)


def test_actors_get_the_resources_asked_for() -> None:
    executor = RayExecutor(cpus_per_trial=1.5, memory_mb=300)
    try:
        executor.start(digits_payload(), workers=1, limits=Limits(timeout_s=60, memory_mb=None))
        executor.submit(TrainJob("r", request(1, "resources", "tests.helpers.slow:Resources")))
        done = drain(executor)["r"]
        assert isinstance(done.output, TrialOutput), done.error
        resources = load_model(done.output.artifact).estimator.resources_
        assert resources["CPU"] == 1.5 and resources["memory"] == 300 * 2**20
    finally:
        executor.close()
    assert ray.is_initialized(), "an executor leaves running a Ray it did not start"


def test_an_actor_that_cannot_be_placed_fails_the_start_clearly() -> None:
    executor = RayExecutor(gpus_per_trial=1, start_timeout_s=3)
    with pytest.raises(ExecutorError, match=r"did not start .* within 3 s .*1 GPU"):
        executor.start(digits_payload(), workers=1, limits=Limits(memory_mb=None))
    executor.close()


def test_start_fails_clearly_when_actors_cannot_prepare_the_payload() -> None:
    payload = digits_payload(latency_rows=2)
    broken = type(payload)(**{**payload.__dict__, "X_valid": None})  # prepare() fails on it
    executor = RayExecutor()
    with pytest.raises(ExecutorError, match=r"could not load the payload: TypeError.*\n.*Traceback"):
        executor.start(broken, workers=1, limits=Limits())
    executor.close()


def test_start_refuses_a_memory_limit_below_a_resting_actor() -> None:
    executor = RayExecutor()
    with pytest.raises(SpecError, match=r"`memory_mb` is 64 MB, but a Ray actor .* already holds \d+ MB"):
        executor.start(digits_payload(), workers=1, limits=Limits(memory_mb=64))
    executor.close()


def test_the_memory_watchdog_names_the_peak_and_the_limit(started: Callable[..., RayExecutor]) -> None:
    executor = started(memory_mb=700)
    executor.submit(TrainJob("eat", request(1, "eat", f"{FAULTY}:EatMemory", megabytes=3000)))
    executor.submit(probe(2))
    done = drain(executor)
    eat = done["eat"]
    assert eat.failure == "memory" and eat.attempts == 1
    assert eat.peak_rss_mb > 700
    assert "limit of 700 MB" in (eat.error or "") and f"{eat.peak_rss_mb:.0f} MB" in (eat.error or "")
    assert "eat-memory: allocating" in eat.log_tail
    assert done["probe2"].ok and done["probe2"].worker != eat.worker


def test_cpu_seconds_and_peak_memory_are_measured(started: Callable[..., RayExecutor]) -> None:
    executor = started(memory_mb=4000)
    executor.submit(probe(1, spin_s=0.3))
    done = drain(executor)["probe1"]
    assert done.ok, done.error
    assert done.cpu_seconds >= 0.25 and done.peak_rss_mb > 50
    assert done.worker.startswith("ray-")
    assert isinstance(done.output, TrialOutput)
    done.output.valid_predictions[0, 0] = 0.5  # the caller owns what it gets (not a read-only object store view)


def test_a_killed_idle_actor_is_replaced_and_the_job_still_runs(started: Callable[..., RayExecutor]) -> None:
    executor = started(retries=1)
    ((_, pid),) = executor.actors.values()
    os.kill(pid, 9)
    executor.submit(probe(1))
    done = drain(executor)["probe1"]
    assert done.ok and done.attempts in (1, 2), done.error
    assert isinstance(done.output, TrialOutput)
    assert load_model(done.output.artifact).estimator.pid_ != pid


def test_a_log_on_another_node_is_read_by_a_task_there(tmp_path: Path) -> None:
    from darkfab.execute._ray import _on_node, read_log

    log = tmp_path / "ray-9.log"
    log.write_text("".join(f"line {i}\n" for i in range(10)))
    node = ray.get_runtime_context().get_node_id()
    tail = ray.get(_on_node(ray, read_log, node).remote(str(log), max_lines=2, max_bytes=4096), timeout=60)
    assert tail == "line 8\nline 9\n"
    assert not log.exists(), "the log of a dead actor is removed once read"


@pytest.mark.slow
def test_an_executor_that_started_ray_shuts_it_down(tmp_path: Path) -> None:
    script = tmp_path / "own.py"
    script.write_text(
        textwrap.dedent(
            """
            import ray
            from darkfab.execute import Limits, RayExecutor, TrainJob
            from darkfab.testing.executor_contract import digits_payload, drain, request

            if __name__ == "__main__":
                executor = RayExecutor()
                executor.start(digits_payload(), workers=1, limits=Limits(timeout_s=60))
                executor.submit(TrainJob("p", request(1, "probe", "darkfab.testing.faulty:Probe")))
                print("ok" if drain(executor)["p"].ok else "failed", ray.is_initialized())
                executor.close()
                print("after close", ray.is_initialized(), flush=True)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == ["ok True", "after close False"], out.stdout


def test_script_trials_run_sandboxed_on_ray_and_a_hostile_one_fails(
    started: Callable[..., RayExecutor], tmp_path: Path
) -> None:
    from darkfab.execute import PredictJob
    from darkfab.execute._sandbox import available_level, check_artifact
    from darkfab.spec import TrainerSpec
    from darkfab.train import TrialRequest
    from tests.helpers.scripts import prior_job

    secret = tmp_path / "darkfab.db"
    secret.write_text("the factory's store")
    hostile = tmp_path / "hostile.py"
    hostile.write_text(f"def train(X, y, X_valid, params, report):\n    open({str(secret)!r}).read()\n")
    executor = started()
    executor.submit(prior_job(tmp_path, 1))
    executor.submit(TrainJob("bad", TrialRequest(2, TrainerSpec(name="bad", script=str(hostile)), {})))
    done = drain(executor)
    assert done["good1"].ok, done["good1"].error
    assert done["good1"].output.info["sandbox"] == available_level()
    assert "+SHIFT = 0.5" in done["good1"].output.info["diff"]
    assert not done["bad"].ok and done["bad"].failure == "exception" and "Error" in (done["bad"].error or "")
    check_artifact(done["good1"].output.artifact)
    executor.submit(PredictJob("p", done["good1"].output.artifact, "valid"))  # loading it runs its code: sandboxed
    pred = drain(executor)["p"]
    assert pred.ok, pred.error
    assert np.asarray(pred.output).shape[1] == 10
