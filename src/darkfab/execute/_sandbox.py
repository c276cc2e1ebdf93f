"""The sandbox around generated code, seen from the worker: fresh confined processes to train and to judge.

Code the factory did not write (a user's ``script:`` trainer, an LLM's edit) runs in two processes, both
fresh interpreters started by the worker and confined before they import anything (darkfab.execute._child),
never forks of the worker, which holds the data:

- the training process gets the training rows with labels and the validation features (the script
  contract), and returns only the serialized model;
- a judge process gets the artifact and the unlabelled rows it must predict (validation rows for a trial,
  sealed-test rows for the gate), nothing else. Every figure the reward and the gate use comes from it:
  predictions, and latency timed here, in the worker, around each round trip. Training seconds are the
  training process's round trip; its CPU seconds come from the kernel (``wait4``).

Both get an allowlisted environment (no keys, no store URL) and a scratch folder, deleted afterwards.
Levels (``kernel``, ``audit``, ``none``) are described in darkfab.execute._child and docs/SANDBOX.md. A
returned artifact is checked with an allowlist unpickler before the worker passes it on.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import pickle
import select
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import pandas as pd

from ..errors import TrialError, TrialPruned
from ..train import TrialOutput, TrialRequest, WorkerState
from ..train.script import ScriptEstimator, source_hash
from ._child import LEVELS, SYSTEM_READ, THREAD_VARS, Level, try_kernel, under

LEVEL_ENV = "DARKFAB_SANDBOX"  # force a weaker level (tests, or a platform where probing misbehaves)
# the module a script model's pickle names: today's, and the one artifacts made before it became public name
_SCRIPT_MODULES = ("darkfab.train.script", "darkfab.train._script")
_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_child.py")
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # darkfab's own folder
_PROC_READ = ("/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/sys/devices/system/cpu")
_DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
_ENV_KEEP = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "TZ", "PYTHONHASHSEED")
_BUNDLED_DATA = ("sklearn", ("datasets/data", "datasets/descr", "datasets/images"))


class SandboxError(TrialError):
    """The sandboxed process failed, or answered something the worker refuses."""


# --- choosing a level and what may be read ----------------------------------------------------------------

_probed: Level | None = None


def available_level() -> Level:
    """The strongest level this machine allows, probed once per process in a throwaway child."""
    global _probed
    forced = os.environ.get(LEVEL_ENV, "")
    if forced in LEVELS:
        return forced
    if _probed is not None:
        return _probed
    level: Level = "audit"
    if sys.platform.startswith("linux"):
        scratch = tempfile.mkdtemp(prefix="darkfab-probe-")
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child's exit code is the answer
                try:
                    try_kernel(scratch)
                    os._exit(0)
                except BaseException:
                    os._exit(1)
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) == 0:
                level = "kernel"
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    _probed = level
    return level


def read_roots(extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """What generated code may read: Python, its packages, system libraries; never the factory's folder.

    A ``sys.path`` entry that is the worker's working folder or one above it (where the store usually lives)
    is left out. :func:`denied_paths` are cut out of these.
    """
    cwd = os.path.realpath(os.getcwd())
    roots: list[str] = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(Exception):
            roots.append(sysconfig.get_path(key))
    for entry in sys.path:
        if entry and os.path.isdir(entry):
            full = os.path.realpath(entry)
            if not under(cwd, (full,)):
                roots.append(full)
    roots += [*SYSTEM_READ, *_PROC_READ, *_DEVICES, *extra]
    out: list[str] = []
    for r in roots:
        full = os.path.realpath(r) if r != "/proc/self" else r
        if full not in out and os.path.exists(full) and full != "/":
            out.append(full)
    return tuple(out)


def denied_paths(private: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Paths that may hold the labels: the factory's data source and scikit-learn's bundled data sets."""
    out = [os.path.realpath(p) for p in private if p]
    package, folders = _BUNDLED_DATA
    with contextlib.suppress(Exception):
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            out += [os.path.realpath(os.path.join(location, f)) for f in folders]
    return tuple(dict.fromkeys(out))


def child_env(scratch: str, threads: int) -> dict[str, str]:
    """The sandboxed process's whole environment: an allowlist, so no key, token or store URL gets in."""
    env = {k: os.environ[k] for k in _ENV_KEEP if k in os.environ}
    env.update({v: str(threads) for v in THREAD_VARS})
    env.update(HOME=scratch, TMPDIR=scratch, DARKFAB_SCRATCH=scratch, PYTHONNOUSERSITE="1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


# --- artifacts --------------------------------------------------------------------------------------------


class _Allowlist(pickle.Unpickler):
    """Rebuilds a darkfab model without running code: script estimators stay inert state."""

    _ALLOWED = {
        ("darkfab.train._model", "DarkfabModel"),
        ("darkfab.train._prep", "Preprocessor"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "complex"),
        ("builtins", "slice"),
        ("builtins", "bytearray"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
    _NUMPY = {"_reconstruct", "scalar", "_frombuffer"}

    def find_class(self, module: str, name: str) -> Any:
        if module in _SCRIPT_MODULES and name == "ScriptEstimator":
            return _InertEstimator
        numpy_helper = module.startswith(("numpy.core.", "numpy._core.")) and name in self._NUMPY
        if (module, name) in self._ALLOWED or numpy_helper or (module == "numpy" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"the artifact names {module}.{name}, which a darkfab model never holds")


class _InertEstimator:
    def __setstate__(self, state: Any) -> None:
        self.state = state


def check_artifact(data: bytes) -> None:
    """Raise SandboxError unless ``data`` is a darkfab model pickle that runs no code when loaded.

    Loading a script estimator still runs its source; that is refused outside a trusting process.
    """
    from ..train import DarkfabModel

    try:
        model = _Allowlist(io.BytesIO(data)).load()
    except Exception as err:
        raise SandboxError(f"the trial returned an artifact darkfab refuses: {err}") from None
    if not isinstance(model, DarkfabModel) or not isinstance(model.estimator, _InertEstimator):
        raise SandboxError("the trial returned an artifact that is not a script model")


def is_script_artifact(data: bytes) -> bool:
    return any(module.encode() in data for module in _SCRIPT_MODULES)


def is_script_request(request: TrialRequest) -> bool:
    return bool(getattr(request.trainer, "script", None))


# --- the sandboxed process, from the worker's side --------------------------------------------------------


def _from_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


class _Zygote:
    """This worker's template process: a fresh interpreter that imported the libraries and holds no data.

    Started on the first script job with the allowlisted environment; each sandboxed process is a fork of it.
    It dies with the worker (``PR_SET_PDEATHSIG``, and the worker's process group on a timeout).
    """

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-B", _CHILD, "--zygote", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=child_env(tempfile.gettempdir(), 1),
                cwd="/",
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        self.control = ours
        self.replies = ours.makefile("rb")
        ours.sendall(json.dumps({"sys_path": [p for p in sys.path if p]}).encode())
        if self.replies.readline().strip() != b"ready":
            self.close()
            raise SandboxError("the sandbox's template process did not start; its error is in the worker's log")

    def fork(self) -> tuple[int, socket.socket]:
        """A new child of the template and the worker's end of its socket."""
        ours, theirs = socket.socketpair()
        try:
            socket.send_fds(self.control, [b"f"], [theirs.fileno()])
        finally:
            theirs.close()
        line = self.replies.readline()
        if not line.strip().isdigit():
            ours.close()
            raise OSError("the sandbox's template process is gone")
        return int(line), ours

    def status(self, pid: int) -> int | None:
        """The wait status of a child that has ended, if the template knows it."""
        try:
            self.control.sendall(f"w{pid}".encode())
            line = self.replies.readline().strip()
        except OSError:
            return None
        return int(line) if line.lstrip(b"-").isdigit() and line != b"-" else None

    def close(self) -> None:
        self.control.close()
        with contextlib.suppress(Exception):
            self.proc.kill()
            self.proc.wait(5)


_zygote: tuple[int, _Zygote] | None = None  # (the pid of the process that started it, it)


def _fork_child() -> tuple[_Zygote, int, socket.socket]:
    global _zygote
    for _ in range(2):
        if _zygote is None or _zygote[0] != os.getpid() or _zygote[1].proc.poll() is not None:
            _zygote = (os.getpid(), _Zygote())
        try:
            return (_zygote[1], *_zygote[1].fork())
        except OSError:
            _zygote[1].close()
            _zygote = None
    raise SandboxError("cannot start a sandboxed process: the sandbox's template process keeps failing")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process, from the kernel (Linux; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class Sandboxed:
    """One fresh, confined process; ``with Sandboxed(...) as box:`` kills it and deletes its scratch folder."""

    def __init__(
        self,
        level: Level | None = None,
        *,
        extra_read: tuple[str, ...] = (),
        private: tuple[str, ...] = (),
        threads: int = 1,
    ) -> None:
        self.level: Level = level or available_level()
        self.cpu_seconds = 0.0
        sys.stdout.flush()
        sys.stderr.flush()
        self.zygote, self.pid, sock = _fork_child()
        self.pidfd: int | None = None
        self.reaped = False
        with contextlib.suppress(OSError, AttributeError):
            self.pidfd = os.pidfd_open(self.pid)  # the child waits for its setup: it cannot be gone yet
        self.conn = Connection(sock.detach())
        self.scratch = tempfile.mkdtemp(prefix="darkfab-trial-")
        self.closed = False
        setup = {
            "level": self.level,
            "scratch": self.scratch,
            "read": list(read_roots((*extra_read, _PACKAGE))),
            "deny": list(denied_paths(private)),
            "sys_path": [p for p in sys.path if p],
            "threads": threads,
        }
        try:
            self.conn.send_bytes(json.dumps(setup).encode())
            self.answer()  # "ready": confined
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Sandboxed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, obj: Any) -> None:
        self.conn.send_bytes(pickle.dumps(obj, protocol=5))

    def answer(self, report: Callable[[int, np.ndarray], bool] | None = None) -> tuple[str, list[bytes]]:
        """The next answer, ``(kind, blobs)``, relaying reports; the child's failures raise here."""
        while True:
            try:
                header = json.loads(self.conn.recv_bytes())
            except (EOFError, OSError):
                raise SandboxError(f"the sandboxed trial process {self._ended()}") from None
            kind = str(header.get("t"))
            if kind == "report" and report is not None:
                stop = report(int(header["step"]), _from_npy(self.conn.recv_bytes()))
                self.conn.send_bytes(json.dumps({"stop": bool(stop)}).encode())
            elif kind == "error":
                message = str(header.get("error", ""))
                if header.get("kind") == "pruned":
                    raise TrialPruned(message)
                if header.get("kind") == "memory":
                    raise MemoryError(message)
                raise SandboxError(message)
            elif kind in ("ready", "loaded"):
                return kind, []
            elif kind in ("train", "predict"):
                return kind, [self.conn.recv_bytes()]
            else:
                raise SandboxError(f"the sandboxed trial sent an unknown message {kind!r}")

    def _ended(self) -> str:
        """How a process that closed its socket ended (it is killed if it has not ended within a moment)."""
        if self.pidfd is not None:
            select.select([self.pidfd], [], [], 2.0)
        self._reap()
        status = self.zygote.status(self.pid)
        sig = -os.waitstatus_to_exitcode(status) if status is not None else 0
        if sig > 0:
            return f"was killed by signal {signal.Signals(sig).name}"
        return "ended without an answer (its output is in the worker's log)"

    def _reap(self) -> None:
        """Kill the process (it has answered, or must stop) after reading its CPU time. Once only: the
        template reaps it afterwards, and its pid may then be another process's."""
        if self.reaped:
            return
        self.reaped = True
        self.cpu_seconds = max(self.cpu_seconds, _cpu_seconds(self.pid))
        if self.pidfd is None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
            return
        with contextlib.suppress(OSError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        select.select([self.pidfd], [], [], 5.0)  # readable once it has ended
        os.close(self.pidfd)
        self.pidfd = None

    def close(self) -> None:
        """Kill the process (it has answered, or must stop), record its CPU time, delete its scratch folder."""
        if self.closed:
            return
        self.closed = True
        self.conn.close()
        self._reap()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _predictions(box: Sandboxed, frame: pd.DataFrame) -> tuple[np.ndarray, float]:
    """One round trip to a judge: its predictions for ``frame`` and the seconds it took, timed from here."""
    message = pickle.dumps(frame, protocol=5)
    t0 = time.perf_counter()
    box.conn.send_bytes(message)
    _, (blob,) = box.answer()
    return _from_npy(blob), time.perf_counter() - t0


def judge(
    state: WorkerState, artifact: bytes, frame: pd.DataFrame, *, latency: bool = False, level: Level | None = None
) -> tuple[np.ndarray, float, tuple[float, ...]]:
    """Predict ``frame`` in a fresh judge process that holds only the artifact and these rows.

    Returns the predictions, the batch's milliseconds per 1,000 rows and, with ``latency``, the single-row
    milliseconds of the state's latency rows, each timed from this process around the round trip.
    """
    p = state.payload
    with Sandboxed(level, private=p.private_paths, threads=p.threads) as box:
        box.send(("judge", artifact))
        box.answer()
        predictions, seconds = _predictions(box, frame)
        single = tuple(_predictions(box, row)[1] * 1000.0 for row in state.latency_rows) if latency else ()
    return predictions, seconds * 1000.0 * 1000.0 / max(1, len(frame)), single


def sandboxed_trial(
    state: WorkerState,
    request: TrialRequest,
    report: Callable[[int, np.ndarray], bool],
    level: Level | None = None,
) -> TrialOutput:
    """A script trial: train in one fresh sandboxed process, judge in another. The patch is checked here
    first; the output's info holds the diff, the hash of the exact source that ran, and the sandbox level."""
    from ..train import ScriptTrainer

    script = str(getattr(request.trainer, "script", "") or "")
    _, source, diff = ScriptTrainer(request.trainer.name, script).patched(request.patch)
    p = state.payload
    # the training process holds training rows and validation features only: no sealed rows, nor their copies
    training = replace(p, X_test=p.X_test.iloc[:0], X_test_perturbed=None, latency_rows=0, private_paths=())
    with Sandboxed(level, extra_read=(script,), private=p.private_paths, threads=p.threads) as box:
        t0 = time.perf_counter()
        box.send(("train", training, request))
        _, (artifact,) = box.answer(report)
        train_seconds = time.perf_counter() - t0
    check_artifact(artifact)
    predictions, batch_ms, latency = judge(state, artifact, p.X_valid, latency=True, level=box.level)
    return TrialOutput(
        valid_predictions=predictions,
        artifact=artifact,
        train_seconds=train_seconds,
        train_cpu_seconds=box.cpu_seconds,
        latency_ms=latency,
        batch_latency_ms=batch_ms,
        info={"sandbox": box.level, "diff": diff, "script_sha256": source_hash(source)},
    )


def sandboxed_predict(state: WorkerState, artifact: bytes, split: str) -> np.ndarray:
    """The gate's predictions of a script model, from a fresh judge that holds only the split's rows."""
    p = state.payload
    frames = {"test": p.X_test, "valid": p.X_valid, "test_perturbed": p.X_test_perturbed}
    rows = frames.get(split)
    if rows is None:
        raise SandboxError(f"no {split!r} rows to predict in this worker; splits: valid, test, test_perturbed")
    return judge(state, artifact, rows)[0]


__all__ = [
    "LEVELS",
    "Level",
    "SandboxError",
    "Sandboxed",
    "ScriptEstimator",
    "available_level",
    "check_artifact",
    "child_env",
    "denied_paths",
    "is_script_artifact",
    "is_script_request",
    "judge",
    "read_roots",
    "sandboxed_predict",
    "sandboxed_trial",
]
