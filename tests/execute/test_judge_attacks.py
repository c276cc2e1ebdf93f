"""Attacks on the figures: generated code that hunts for labels, forges its latency, or behaves differently
when it thinks it is being scored, and secrets it tries to carry out in an error message.

Each attack is a training script as an LLM proposer could have written it, run through the real worker pool
(or the worker's own sandbox entry point, where the attacker's environment must be set) at the strongest
level this machine allows.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from darkfab.execute import Limits, LocalExecutor, PredictJob, TrainJob
from darkfab.execute._sandbox import SandboxError, sandboxed_trial
from darkfab.spec import TrainerSpec
from darkfab.testing.executor_contract import digits_payload, drain
from darkfab.train import TrialRequest, WorkerPayload, prepare

LATENCY_ROWS = 3


def _row_hashes(frame: object) -> set[str]:
    values = np.asarray(frame, dtype=float)
    return {hashlib.sha256(np.ascontiguousarray(row).tobytes()).hexdigest() for row in values}


def _trainer(tmp_path: Path, name: str, source: str) -> TrainerSpec:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return TrainerSpec(name=name, script=str(path))


GC_HUNTER = """\
import gc
import hashlib
import sys

import numpy as np

SEALED = set({sealed!r})


def _rows(obj):
    try:
        values = np.asarray(obj.to_numpy(dtype=float) if hasattr(obj, "to_numpy") else obj, dtype=float)
    except Exception:
        return []
    if values.ndim != 2 or values.shape[1] != 64:
        return []
    return [hashlib.sha256(np.ascontiguousarray(r).tobytes()).hexdigest() for r in values]


def _everything():
    seen = list(gc.get_objects())
    for frame in sys._current_frames().values():
        while frame is not None:
            seen += list(frame.f_locals.values()) + list(frame.f_globals.values())
            frame = frame.f_back
    for module in list(sys.modules.values()):
        seen += list(getattr(module, "__dict__", {{}}).values())
    return seen


class Lookup:
    def __init__(self, found, p):
        self.found, self.p = found, p

    def predict_proba(self, X):
        return np.tile(self.p, (len(X), 1))


def train(X, y, X_valid, params, report):
    found = set()
    for obj in _everything():
        if type(obj).__name__ in ("DataFrame", "ndarray"):
            found |= SEALED.intersection(_rows(obj))
    if found:
        raise RuntimeError(f"LEAK: the training process holds {{len(found)}} sealed-test rows")
    p = np.bincount(y, minlength=params["n_classes"]) + 1.0
    return Lookup(len(found), p / p.sum())
"""

CLOCK_FORGER = """\
import time

import numpy as np

_frozen = time.perf_counter()
for _name in ("perf_counter", "monotonic", "time", "process_time"):
    setattr(time, _name, lambda: _frozen)
for _name in ("perf_counter_ns", "monotonic_ns", "time_ns"):
    setattr(time, _name, lambda: 0)
_sleep = time.sleep


class Slow:
    def __init__(self, p):
        self.p = p

    def predict_proba(self, X):
        _sleep(0.06)  # 60 ms a call, whatever the clocks in this process say
        return np.tile(self.p, (len(X), 1))


def train(X, y, X_valid, params, report):
    p = np.bincount(y, minlength=params["n_classes"]) + 1.0
    return Slow(p / p.sum())
"""

TWO_FACED = """\
import numpy as np

TRAINING = False


class TwoFaced:
    def __init__(self, n):
        self.n = n

    def predict_proba(self, X):
        out = np.zeros((len(X), self.n))
        out[:, 0 if TRAINING else 1] = 1.0  # one answer where it was trained, another where it is judged
        return out


def train(X, y, X_valid, params, report):
    global TRAINING
    TRAINING = True
    return TwoFaced(params["n_classes"])
"""


@pytest.fixture
def pool() -> Iterator[Callable[[], LocalExecutor]]:
    made: list[LocalExecutor] = []

    def start() -> LocalExecutor:
        ex = LocalExecutor()
        payload = digits_payload(rows=300, latency_rows=LATENCY_ROWS)
        ex.start(payload, workers=1, limits=Limits(timeout_s=60.0, memory_mb=None))
        made.append(ex)
        return ex

    yield start
    for ex in made:
        ex.close()


def test_a_script_that_walks_its_memory_finds_no_sealed_rows_and_every_figure_comes_from_a_judge(
    pool: Callable[[], LocalExecutor], tmp_path: Path
) -> None:
    payload = digits_payload(rows=300, latency_rows=LATENCY_ROWS)
    sealed = _row_hashes(payload.X_test) - _row_hashes(payload.X_train) - _row_hashes(payload.X_valid)
    assert sealed  # the attacker knows what a sealed row looks like
    ex = pool()
    jobs = {
        "gc": GC_HUNTER.format(sealed=sorted(sealed)),
        "clock": CLOCK_FORGER,
        "two_faced": TWO_FACED,
    }
    for i, (name, source) in enumerate(jobs.items()):
        ex.submit(TrainJob(name, TrialRequest(i, _trainer(tmp_path, name, source), {})))
    done = drain(ex, within_s=240)

    assert done["gc"].ok, done["gc"].error  # it looked everywhere and found no sealed row

    clock = done["clock"]
    assert clock.ok, clock.error
    assert len(clock.output.latency_ms) == LATENCY_ROWS
    assert min(clock.output.latency_ms) >= 55.0, clock.output.latency_ms  # the sleep, timed from outside
    assert clock.output.batch_latency_ms > 0.0

    two = done["two_faced"]
    assert two.ok, two.error
    assert set(np.argmax(two.output.valid_predictions, axis=1)) == {1}  # as judged, not as in training
    ex.submit(PredictJob("sealed", two.output.artifact, "test"))
    sealed_predictions = drain(ex)["sealed"]
    assert sealed_predictions.ok, sealed_predictions.error
    assert set(np.argmax(np.asarray(sealed_predictions.output), axis=1)) == {1}


def _reader(tmp_path: Path, name: str, body: str) -> TrialRequest:
    source = f"def train(X, y, X_valid, params, report):\n    {body}\n    raise AssertionError('read the data')\n"
    return TrialRequest(1, _trainer(tmp_path, name, source), {})


def _bundled_csv() -> str:
    import sklearn

    return str(Path(sklearn.__file__).parent / "datasets" / "data" / "breast_cancer.csv")


@pytest.mark.parametrize(
    "body",
    [
        f"open({_bundled_csv()!r}).read()",
        "from sklearn.datasets import load_breast_cancer\n    load_breast_cancer()",
    ],
    ids=["by_path", "by_loader"],
)
def test_a_script_cannot_read_scikit_learns_bundled_data(tmp_path: Path, body: str) -> None:
    assert Path(_bundled_csv()).is_file()
    with pytest.raises(SandboxError, match="PermissionError|ImportError|denied"):
        sandboxed_trial(prepare(digits_payload(rows=100)), _reader(tmp_path, "bundled", body), lambda s, p: False)


def test_a_script_cannot_read_the_factorys_data_file_even_where_it_may_read(tmp_path: Path) -> None:
    """The data lies in a folder on sys.path, so it is under the read allowlist; it is cut out by name."""
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "helper.txt").write_text("readable")
    data = folder / "train.csv"
    data.write_text("a,target\n1,0\n2,1\n")
    sys.path.append(str(folder))
    try:
        base = digits_payload(rows=100)
        state = prepare(WorkerPayload(**{**base.__dict__, "private_paths": (str(data),)}))
        with pytest.raises(SandboxError, match="PermissionError"):
            sandboxed_trial(state, _reader(tmp_path, "csv", f"open({str(data)!r}).read()"), lambda s, p: False)
        with pytest.raises(SandboxError, match="AssertionError: read the data"):  # the folder itself is readable
            sandboxed_trial(
                state, _reader(tmp_path, "ok", f"open({str(folder / 'helper.txt')!r}).read()"), lambda s, p: False
            )
    finally:
        sys.path.remove(str(folder))


def test_a_script_that_raises_with_the_environment_carries_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-FAKEKEY0123456789")
    monkeypatch.setenv("DARKFAB_STORE", "postgresql://darkfab:hunter2pw@db.example:5432/factory")
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-abcdef987654")
    body = (
        "import os\n"
        "    loot = [f'{k}={v}' for k, v in os.environ.items() if any(w in k for w in ('KEY', 'STORE', 'TOKEN'))]\n"
        "    raise RuntimeError(' '.join(loot) + ' of ' + ','.join(sorted(os.environ)))"
    )
    request = TrialRequest(1, _trainer(tmp_path, "env", f"def train(X, y, X_valid, params, report):\n    {body}\n"), {})
    with pytest.raises(SandboxError) as caught:
        sandboxed_trial(prepare(digits_payload(rows=100)), request, lambda s, p: False)
    text = str(caught.value)
    assert "HOME" in text and "TMPDIR" in text  # the environment it got
    for secret in ("sk-test-FAKEKEY", "hunter2pw", "tok-abcdef", "DARKFAB_STORE", "OPENAI_API_KEY"):
        assert secret not in text
