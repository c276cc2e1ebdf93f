"""A real Ray cluster of two nodes on this machine: losing the worker node mid-trial loses no trial.

The head (1 CPU) and a worker node (2 CPUs) are started with ``ray start``, each in its own session and
temporary folder, so that the test can kill the worker node alone, raylet and actors at once, as a
machine that dies would. The factory's side (the driver) runs in a subprocess of its own: Ray keeps one
cluster and one authentication token per process, and this test must not disturb a Ray that another test
module of this process has joined.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from ..helpers.loopback import free_port

ray = pytest.importorskip("ray", reason="Ray is not installed; pip install 'darkfab[ray]' to run the Ray tests")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
RAY = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
JOBS = 4
SLEEP_S = 2.0


class Cluster:
    """Nodes started with ``ray start``, each in a session of its own that holds all of the node's processes."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "RAY_AUTH_MODE": "token",  # the head enables it by default; every node and the driver must agree
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            # notice a lost node in about a second rather than half a minute
            "RAY_health_check_initial_delay_ms": "0",
            "RAY_health_check_period_ms": "300",
            "RAY_health_check_timeout_ms": "300",
            "RAY_health_check_failure_threshold": "3",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        self.sessions: dict[str, int] = {}

    def start(self, name: str, *args: str) -> None:
        temp = self.tmp / name
        temp.mkdir()
        command = [
            str(RAY),
            "start",
            *args,
            "--disable-usage-stats",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={temp}",
        ]
        proc = subprocess.Popen(
            command,
            env=self.env,
            cwd=ROOT,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.sessions[name] = proc.pid
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"`{' '.join(command)}` failed:\n{out[-3000:]}")

    def processes(self, name: str) -> list[psutil.Process]:
        """The node's processes: its workers have process groups of their own, but stay in its session."""
        session = self.sessions[name]
        found = []
        for proc in psutil.process_iter():
            with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
                if os.getsid(proc.pid) == session:
                    found.append(proc)
        return found

    def kill(self, name: str) -> None:
        for _ in range(3):  # the raylet may start a worker while its siblings die
            procs = self.processes(name)
            if not procs:
                return
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(procs, timeout=5)

    def stop(self) -> None:
        for name in reversed(list(self.sessions)):
            self.kill(name)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if RAY is None:
        pytest.skip("the `ray` command is not on the PATH")
    tmp = Path(tempfile.mkdtemp(prefix="dfray-"))  # short: Ray's socket paths must fit in 107 bytes
    made = Cluster(tmp)
    try:
        made.start("head", "--head", f"--port={made.port}", "--num-cpus=1", "--include-dashboard=false")
        made.start("worker", f"--address={made.address}", "--num-cpus=2")
        yield made
    finally:
        made.stop()
        shutil.rmtree(tmp, ignore_errors=True)


DRIVER = textwrap.dedent(
    """
    import json, sys, time
    from darkfab.execute import JobDone, JobReport, Limits, RayExecutor, TrainJob
    from darkfab.testing.executor_contract import digits_payload, request

    address, jobs, seconds, markers = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]

    def say(**what):
        print(json.dumps(what), flush=True)

    if __name__ == "__main__":
        executor = RayExecutor(address=address, cpus_per_trial=1)
        executor.start(digits_payload(), workers=3, limits=Limits(timeout_s=120, memory_mb=None, retries=1))
        say(actors=executor.actors)
        for i in range(jobs):
            params = {"seconds": seconds, "marker_dir": markers, "trial": f"t{i}"}
            executor.submit(TrainJob(f"t{i}", request(i, "sleep", "tests.helpers.slow:Sleep", **params)))
        done, told = {}, False
        deadline = time.monotonic() + 300
        while executor.in_flight and time.monotonic() < deadline:
            for event in executor.poll(0.2):
                assert isinstance(event, JobDone), event
                assert event.job_id not in done, f"{event.job_id} ended twice"
                done[event.job_id] = {"ok": event.ok, "attempts": event.attempts, "worker": event.worker,
                                      "error": event.error, "failure": event.failure}
            if not told and len(executor.running) == 3:
                told = True
                say(running=executor.running, actors=executor.actors)
        say(done=done, in_flight=executor.in_flight)
        executor.close()
    """
)


def _read(driver: subprocess.Popen[str], key: str) -> dict[str, Any]:
    assert driver.stdout is not None
    for line in driver.stdout:
        if line.startswith("{"):
            message = json.loads(line)
            if key in message:
                return message
    raise AssertionError(f"the driver ended before saying {key!r}; exit code {driver.wait(10)}")


def test_losing_a_node_mid_trial_retries_its_trials_and_loses_nothing(cluster: Cluster, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    command = [sys.executable, str(script), cluster.address, str(JOBS), str(SLEEP_S), str(markers)]
    with subprocess.Popen(command, env=cluster.env, cwd=ROOT, stdout=subprocess.PIPE, text=True) as driver:
        try:
            actors = _read(driver, "actors")["actors"]
            nodes = {node for node, _ in actors.values()}
            assert len(actors) == 3 and len(nodes) == 2, actors  # one actor on the head, two on the worker node
            running = _read(driver, "running")
            worker_pids = {pid for _, pid in actors.values()} & {p.pid for p in cluster.processes("worker")}
            assert len(worker_pids) == 2, (actors, worker_pids)
            on_worker = sorted(job for job, name in running["running"].items() if actors[name][1] in worker_pids)
            assert len(on_worker) == 2
            deadline = time.monotonic() + 60
            while not all(list(markers.glob(f"{job}-*.started")) for job in on_worker):  # mid-trial: started...
                assert time.monotonic() < deadline, "the trials on the worker node never started"
                time.sleep(0.05)
            cluster.kill("worker")
            assert not any(list(markers.glob(f"{job}-*.done")) for job in on_worker), "...and not finished"
            end = _read(driver, "done")
            assert driver.wait(60) == 0
        finally:
            if driver.poll() is None:
                driver.kill()
    done = end["done"]
    assert end["in_flight"] == 0
    assert sorted(done) == sorted(f"t{i}" for i in range(JOBS)), "a trial was lost"
    assert all(d["ok"] for d in done.values()), done
    for job in on_worker:
        assert done[job]["attempts"] == 2, (job, done[job])
        assert done[job]["worker"] not in {name for name, (_, pid) in actors.items() if pid in worker_pids}
    assert all(d["attempts"] == 1 for job, d in done.items() if job not in on_worker), done
    # every trial finished exactly once; the killed ones had started once more, on the lost node
    finished = [p.name.split("-")[0] for p in markers.glob("*.done")]
    assert sorted(finished) == sorted(done)
    started = [p.name.split("-")[0] for p in markers.glob("*.started")]
    assert sorted(started) == sorted([*done, *on_worker])


FACTORY = """\
name: onray
data: {{source: sklearn:digits}}
trainers:
  - name: sleep
    estimator: tests.helpers.slow:Sleep
    params: {{seconds: {seconds}, marker_dir: "{markers}"}}
    space: {{trial: {{choices: [t0, t1, t2, t3, t4, t5]}}}}
search: {{proposer: random, pruner: none}}
budget: {{trials: {trials}}}
execution: {{backend: ray, address: "{address}", workers: 3, memory_mb: 512, retries: 1, latency_rows: 1}}
gate: {{bootstrap: 200}}
"""


def test_a_factory_on_the_cluster_survives_losing_a_node(cluster: Cluster, tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    (tmp_path / "factory.yaml").write_text(
        FACTORY.format(seconds=3, markers=markers, trials=JOBS, address=cluster.address)
    )
    env = {**cluster.env, "DARKFAB_STORE": f"sqlite:///{tmp_path / 'store.db'}"}
    command = [sys.executable, "-m", "darkfab", "run", "factory.yaml", "--json"]
    with subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as run:
        try:
            deadline = time.monotonic() + 120
            on_node: set[str] = set()
            while not on_node:  # mid-trial on the worker node: started there, not finished
                assert time.monotonic() < deadline and run.poll() is None, "no trial started on the worker node"
                node_pids = {p.pid for p in cluster.processes("worker")}
                on_node = {
                    m.name.split("-")[0]
                    for m in markers.glob("*.started")
                    if int(m.name.split("-")[1].split(".")[0]) in node_pids
                }
                time.sleep(0.05)
            cluster.kill("worker")
            out, err = run.communicate(timeout=300)
        finally:
            if run.poll() is None:
                run.kill()
    assert run.returncode == 0, err[-3000:]
    result = json.loads(out)
    assert result["trials"]["completed"] == JOBS and result["gate"]["reason"]  # priors: the gate keeps none
    listed = subprocess.run(
        [sys.executable, "-m", "darkfab", "trials", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    trials = {t["params"]["trial"]: t for t in json.loads(listed.stdout)}
    assert len(trials) == JOBS and all(t["state"] == "completed" for t in trials.values())
    retried = [name for name in on_node if trials[name]["resources"]["attempts"] == 2]
    assert retried, (on_node, trials)  # the trial running on the lost node ran again elsewhere, once
    done = [p.name.split("-")[0] for p in markers.glob("*.done")]
    assert sorted(done) == sorted(trials), "every trial finished exactly once"
