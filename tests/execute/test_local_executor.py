"""The executor contract over the local pool, and what only the local pool does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from darkfab.errors import ExecutorError, SpecError
from darkfab.execute import EXECUTORS, Executor, Limits, LocalExecutor, TrainJob, make_executor
from darkfab.execute._process import read_tail
from darkfab.testing.executor_contract import ExecutorContract, digits_payload, drain, request
from darkfab.train import TrialOutput, load_model

FAULTY = "darkfab.testing.faulty"
ROOT = Path(__file__).resolve().parents[2]


class TestLocalExecutor(ExecutorContract):
    @pytest.fixture
    def executor_factory(self) -> Callable[[], Executor]:
        return LocalExecutor


def _gone(pids: list[int], within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.05)
    return False


def probe(trial_id: int, **params: object) -> TrainJob:
    return TrainJob(f"probe{trial_id}", request(trial_id, "probe", f"{FAULTY}:Probe", **params))


@pytest.fixture
def local() -> Iterator[Callable[..., LocalExecutor]]:
    made: list[LocalExecutor] = []

    def start(workers: int = 1, threads: int = 1, backstop: bool = True, **limits: object) -> LocalExecutor:
        limits.setdefault("timeout_s", 60.0)
        limits.setdefault("memory_mb", None)
        executor = LocalExecutor(address_space_backstop=backstop)
        made.append(executor)
        executor.start(digits_payload(threads=threads), workers=workers, limits=Limits(**limits))  # type: ignore[arg-type]
        return executor

    yield start
    for executor in made:
        executor.close()


def test_make_executor_by_name() -> None:
    executor = make_executor("local")
    assert isinstance(executor, LocalExecutor)
    executor.close()
    assert "local" in EXECUTORS


def test_make_executor_lists_the_valid_backends() -> None:
    with pytest.raises(SpecError, match=r"'nope'.*\['local', 'ray'\]"):
        make_executor("nope")


def test_close_kills_every_worker_and_removes_the_logs(local: Callable[..., LocalExecutor]) -> None:
    executor = local(workers=2)
    pids = list(executor.worker_pids.values())
    log_dir = executor.log_dir
    assert len(pids) == 2 and log_dir is not None and os.path.isdir(log_dir)
    executor.submit(TrainJob("hang", request(1, "hang", f"{FAULTY}:Hang")))
    executor.poll(0.2)
    executor.close()
    assert _gone(pids, within_s=0.0 + 5.0)
    assert not os.path.exists(log_dir)
    assert executor.capacity == 0


def _parent_script(tmp_path: Path, then: str) -> tuple[Path, dict[str, str]]:
    """A parent process that starts two workers, one of them on a job that hangs, then runs the lines of
    ``then``; with the env that runs it."""
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, sys, time
            from darkfab.execute import Limits, LocalExecutor, TrainJob
            from darkfab.testing.executor_contract import digits_payload, request

            if __name__ == "__main__":
                executor = LocalExecutor()
                executor.start(digits_payload(), workers=2, limits=Limits(timeout_s=600))
                executor.submit(TrainJob("hang", request(1, "hang", "darkfab.testing.faulty:Hang")))
                executor.poll(0.3)
            """
        )
        + textwrap.indent(textwrap.dedent(then).strip("\n"), "    ")
        + "\n"
    )
    return script, {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def test_workers_die_when_the_parent_is_killed(tmp_path: Path) -> None:
    script, env = _parent_script(
        tmp_path,
        """
        print(json.dumps(list(executor.worker_pids.values())), flush=True)
        time.sleep(600)
        """,
    )
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    ) as parent:
        try:
            assert parent.stdout is not None
            pids = json.loads(parent.stdout.readline())
            log_dir = os.path.dirname(psutil.Process(pids[0]).open_files()[0].path)
            assert len(pids) == 2 and all(psutil.pid_exists(pid) for pid in pids)
            parent.send_signal(signal.SIGKILL)
            parent.wait(10)
            assert _gone(pids), "workers outlived their parent"
            assert not os.path.exists(log_dir), "the workers did not delete their logs"
        finally:
            if parent.poll() is None:
                parent.kill()


def test_an_exception_in_the_factory_leaves_no_worker_behind(tmp_path: Path) -> None:
    script, env = _parent_script(
        tmp_path,
        """
        print(json.dumps([list(executor.worker_pids.values()), executor.log_dir]), flush=True)
        raise RuntimeError("the factory broke")
        """,
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert out.returncode == 1 and "the factory broke" in out.stderr
    pids, log_dir = json.loads(out.stdout)
    assert len(pids) == 2 and _gone(pids)
    assert not os.path.exists(log_dir)


def test_a_worker_killed_while_idle_is_replaced(local: Callable[..., LocalExecutor]) -> None:
    executor = local(workers=1)
    (old,) = executor.worker_pids.values()
    os.kill(old, signal.SIGKILL)
    assert _gone([old])
    executor.submit(probe(1))
    done = drain(executor)["probe1"]
    # the death may be noticed only when the job is handed over; then the job is retried on the replacement
    assert done.ok and done.attempts in (1, 2), done.error
    assert isinstance(done.output, TrialOutput)
    assert load_model(done.output.artifact).estimator.pid_ != old


def test_cpu_seconds_and_peak_memory_are_measured(local: Callable[..., LocalExecutor]) -> None:
    executor = local(workers=1, memory_mb=4000)
    executor.submit(probe(1, spin_s=0.3))
    done = drain(executor)["probe1"]
    assert done.ok, done.error
    assert done.cpu_seconds >= 0.25
    assert done.peak_rss_mb > 50
    assert done.worker == "local-1"


def test_a_memory_kill_names_the_peak_and_the_limit(local: Callable[..., LocalExecutor]) -> None:
    executor = local(workers=1, memory_mb=700, backstop=False)  # the watchdog alone
    executor.submit(TrainJob("eat", request(1, "eat", f"{FAULTY}:EatMemory", megabytes=3000)))
    done = drain(executor)["eat"]
    assert done.failure == "memory"
    assert done.peak_rss_mb > 700
    assert "limit of 700 MB" in (done.error or "") and f"{done.peak_rss_mb:.0f} MB" in (done.error or "")
    assert "eat-memory: allocating" in done.log_tail


def test_the_address_space_backstop_turns_a_huge_allocation_into_memory_error(
    local: Callable[..., LocalExecutor],
) -> None:
    executor = local(workers=1, memory_mb=500, retries=1)
    executor.submit(TrainJob("huge", request(1, "eat", f"{FAULTY}:EatMemory", megabytes=50_000, step_mb=50_000)))
    executor.submit(probe(2))
    done = drain(executor)
    assert done["huge"].failure == "memory" and done["huge"].attempts == 1
    assert "MemoryError" in (done["huge"].error or "")
    assert done["huge"].worker == done["probe2"].worker, "a MemoryError does not cost the worker"


def test_workers_use_the_payload_thread_count(local: Callable[..., LocalExecutor]) -> None:
    executor = local(workers=1, threads=2)
    executor.submit(probe(1))
    done = drain(executor)["probe1"]
    assert isinstance(done.output, TrialOutput)
    assert load_model(done.output.artifact).estimator.omp_threads_ == "2"


def test_a_large_log_is_emptied_between_jobs(local: Callable[..., LocalExecutor]) -> None:
    executor = local(workers=1)
    executor.submit(TrainJob("loud", request(1, "chatty", f"{FAULTY}:Chatty", lines=30_000)))
    loud = drain(executor)["loud"]
    assert loud.ok and "chatty: subprocess" in loud.log_tail
    assert len(loud.log_tail.encode()) <= 4096 and len(loud.log_tail.splitlines()) <= 40
    executor.submit(probe(2))
    drain(executor)
    assert executor.log_dir is not None
    assert os.path.getsize(os.path.join(executor.log_dir, "local-1.log")) < 1 << 20


def test_start_fails_clearly_when_workers_cannot_prepare_the_payload() -> None:
    payload = digits_payload(latency_rows=2)
    broken = type(payload)(**{**payload.__dict__, "X_valid": None})  # prepare() fails on it
    executor = LocalExecutor()
    with pytest.raises(ExecutorError, match="could not load the payload: TypeError"):
        executor.start(broken, workers=1, limits=Limits())
    assert executor.log_dir is not None and not os.path.exists(executor.log_dir)
    executor.close()


def test_start_refuses_a_memory_limit_below_a_resting_worker() -> None:
    executor = LocalExecutor()
    with pytest.raises(SpecError, match=r"`memory_mb` is 64 MB, but a worker .* already holds \d+ MB"):
        executor.start(digits_payload(), workers=1, limits=Limits(memory_mb=64))
    assert executor.log_dir is not None and not os.path.exists(executor.log_dir)


def test_start_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="workers"):
        LocalExecutor().start(digits_payload(), workers=0, limits=Limits())
    executor = LocalExecutor()
    executor.start(digits_payload(), workers=1, limits=Limits())
    try:
        with pytest.raises(ExecutorError, match="already started"):
            executor.start(digits_payload(), workers=1, limits=Limits())
    finally:
        executor.close()


def test_read_tail_keeps_the_last_lines_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"before\n" + b"".join(f"line {i}\n".encode() for i in range(100)))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert read_tail(fd, 7, max_lines=3, max_bytes=4096) == "line 97\nline 98\nline 99\n"
        assert read_tail(fd, 7, max_lines=1000, max_bytes=20) == "line 98\nline 99\n"
        assert read_tail(fd, os.fstat(fd).st_size, max_lines=3, max_bytes=4096) == ""
        assert "before" not in read_tail(fd, 7, max_lines=1000, max_bytes=1 << 20)
    finally:
        os.close(fd)
