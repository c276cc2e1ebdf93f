"""Generated code in the sandbox: hostile scripts end as failed trials with their reason; the pool goes on.

Each hostile script runs through the real LocalExecutor (forkserver workers, hard timeout, memory watchdog)
at the strongest level this machine allows; ``test_each_level_blocks`` repeats the blocking checks at every
level the machine offers, in a forked child of the test process.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

from darkfab.execute import Limits, LocalExecutor, PredictJob, TrainJob
from darkfab.execute._sandbox import (
    LEVELS,
    SandboxError,
    available_level,
    check_artifact,
    sandboxed_trial,
)
from darkfab.spec import TrainerSpec
from darkfab.testing.executor_contract import digits_payload, drain
from darkfab.train import TrialRequest, prepare
from tests.helpers.scripts import prior_job

HOSTILE = {
    "socket": "import socket\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)",
    "read_store": "open({store!r}).read()",
    "read_passwd": "open('/etc/passwd').read()",
    "read_bundled_data": "open({bundled!r}).read()",  # scikit-learn's copy of breast_cancer, labels included
    "write_outside": "open({outside!r}, 'w').write('escaped')",
    "subprocess": "import subprocess\n    subprocess.run(['cat', '/etc/passwd'], check=True)",
}


def _script(tmp_path: Path, name: str, body: str) -> TrainerSpec:
    path = tmp_path / f"{name}.py"
    path.write_text(f"def train(X, y, X_valid, params, report):\n    {body}\n    return None\n")
    return TrainerSpec(name=name, script=str(path))


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.setblocking(False)
    yield server
    server.close()


@pytest.fixture
def targets(tmp_path: Path, listener: socket.socket) -> dict[str, str]:
    store = tmp_path / "darkfab.db"
    store.write_text("the factory's store")
    import sklearn

    bundled = Path(sklearn.__file__).parent / "datasets" / "data" / "breast_cancer.csv"
    assert bundled.is_file()
    return {
        "port": str(listener.getsockname()[1]),
        "store": str(store),
        "outside": str(tmp_path / "escaped.txt"),
        "bundled": str(bundled),
    }


@pytest.fixture
def pool() -> Iterator[Callable[..., LocalExecutor]]:
    made: list[LocalExecutor] = []

    def start(**limits: object) -> LocalExecutor:
        limits.setdefault("timeout_s", 60.0)
        limits.setdefault("memory_mb", None)
        ex = LocalExecutor()
        ex.start(digits_payload(rows=300), workers=1, limits=Limits(**limits))  # type: ignore[arg-type]
        made.append(ex)
        return ex

    yield start
    for ex in made:
        ex.close()


def test_a_script_trial_runs_sandboxed_and_records_its_diff(pool: Callable[..., LocalExecutor], tmp_path: Path) -> None:
    ex = pool()
    done = drain(ex)
    ex.submit(prior_job(tmp_path))
    done = drain(ex)["good99"]
    assert done.ok, done.error
    assert done.output.info["sandbox"] == available_level()
    assert "+SHIFT = 0.5" in done.output.info["diff"]
    check_artifact(done.output.artifact)  # a script model, loadable only where code is trusted
    ex.submit(PredictJob("p", done.output.artifact, "test"))
    pred = drain(ex)["p"]
    assert pred.ok, pred.error
    assert np.asarray(pred.output).shape == (75, 10)


def test_hostile_scripts_fail_with_their_reason_and_the_pool_goes_on(
    pool: Callable[..., LocalExecutor], tmp_path: Path, targets: dict[str, str], listener: socket.socket
) -> None:
    ex = pool()
    for i, (name, body) in enumerate(HOSTILE.items()):
        ex.submit(TrainJob(name, TrialRequest(i, _script(tmp_path, name, body.format(**targets)), {})))
    ex.submit(prior_job(tmp_path))
    done = drain(ex)
    for name in HOSTILE:
        assert not done[name].ok and done[name].failure == "exception", (name, done[name])
        assert "Error" in (done[name].error or ""), (name, done[name].error)
    assert done["good99"].ok, done["good99"].error
    with pytest.raises(BlockingIOError):
        listener.accept()  # nothing ever connected
    assert not Path(targets["outside"]).exists()


@pytest.mark.slow
def test_a_script_that_loops_forever_is_killed_by_the_timeout(
    pool: Callable[..., LocalExecutor], tmp_path: Path
) -> None:
    ex = pool(timeout_s=8.0)  # above the two fresh processes of the good trial on a loaded machine
    ex.submit(TrainJob("loop", TrialRequest(1, _script(tmp_path, "loop", "while True:\n        pass"), {})))
    done = drain(ex)["loop"]
    assert done.failure == "timeout" and not done.ok
    workers = list(ex.worker_pids.values())
    ex.submit(prior_job(tmp_path))
    assert drain(ex)["good99"].ok
    for pid in workers:  # no sandboxed child outlived its worker
        assert all(
            p.status() == psutil.STATUS_ZOMBIE or "loop" not in " ".join(p.cmdline())
            for p in psutil.Process(pid).children(recursive=True)
        )


def test_a_script_that_eats_memory_is_stopped_by_the_memory_limit(
    pool: Callable[..., LocalExecutor], tmp_path: Path
) -> None:
    ex = pool(memory_mb=600)
    body = "blocks = []\n    while True:\n        blocks.append(np.ones(2**24))"  # 128 MB a step
    path = tmp_path / "hog.py"
    path.write_text(f"import numpy as np\n\n\ndef train(X, y, X_valid, params, report):\n    {body}\n")
    ex.submit(TrainJob("hog", TrialRequest(1, TrainerSpec(name="hog", script=str(path)), {})))
    done = drain(ex)["hog"]
    assert done.failure == "memory" and not done.ok, done
    ex.submit(prior_job(tmp_path))
    assert drain(ex)["good99"].ok


def _levels() -> list[str]:
    strongest = available_level()
    return list(LEVELS[LEVELS.index(strongest) : LEVELS.index("none")])


@pytest.mark.parametrize("level", _levels())
@pytest.mark.parametrize("action", list(HOSTILE))
def test_each_level_blocks(
    level: str, action: str, targets: dict[str, str], listener: socket.socket, tmp_path: Path
) -> None:
    request = TrialRequest(1, _script(tmp_path, action, HOSTILE[action].format(**targets)), {})
    with pytest.raises(SandboxError, match="Error"):
        sandboxed_trial(prepare(digits_payload(rows=100)), request, lambda s, p: False, level=level)  # type: ignore[arg-type]
    with pytest.raises(BlockingIOError):
        listener.accept()
    assert not Path(targets["outside"]).exists()


def test_the_kernel_level_holds_against_native_code(targets: dict[str, str], tmp_path: Path) -> None:
    """ctypes.pythonapi reaches libc's open() directly, past the audit hook: only the kernel level stops it."""
    if available_level() != "kernel":
        pytest.skip("namespaces or Landlock are not available here")
    body = (
        "import ctypes\n"
        f"    fd = ctypes.pythonapi.open({targets['store'].encode()!r}, 0)  # loaded before the hook: not audited\n"
        "    if fd >= 0:\n"
        "        raise AssertionError('read the store')\n"
        "    raise PermissionError('libc open() refused')"
    )
    request = TrialRequest(1, _script(tmp_path, "native", body), {})
    with pytest.raises(SandboxError, match="PermissionError: libc open"):
        sandboxed_trial(prepare(digits_payload(rows=100)), request, lambda s, p: False, level="kernel")


def test_a_script_that_crashes_in_native_code_fails_with_the_signal(tmp_path: Path) -> None:
    request = TrialRequest(1, _script(tmp_path, "crash", "import ctypes\n    ctypes.string_at(0)"), {})
    with pytest.raises(SandboxError, match="killed by signal SIGSEGV"):
        sandboxed_trial(prepare(digits_payload(rows=100)), request, lambda s, p: False)


def test_a_forged_artifact_is_refused() -> None:
    import os
    import pickle

    class Evil:
        def __reduce__(self) -> tuple[object, ...]:
            return (os.system, ("true",))

    with pytest.raises(SandboxError, match="never holds"):
        check_artifact(pickle.dumps(Evil()))
