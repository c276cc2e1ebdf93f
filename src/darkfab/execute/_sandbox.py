"""The sandbox a worker puts around generated code: a forked child with the strongest isolation available.

Levels, strongest first (docs/SANDBOX.md states what each does and does not guarantee):

- ``kernel``: Linux namespaces and Landlock. The child unshares a user and a network namespace (no network
  interface but a loopback that is down), sets ``no_new_privs``, and restricts itself with Landlock: read
  only the Python installation, the system libraries, the script and its scratch folder; write only the
  scratch folder; no signals to, or abstract sockets of, processes outside. Enforced by the kernel.
- ``audit``: a Python audit hook in the child refuses sockets, subprocesses, forks, ``ctypes`` loading of
  system libraries, and file access outside the same allowlist. Best effort: native code bypasses it.
- ``none``: the child only runs in its scratch folder.

The audit hook is installed at every level but ``none``. The child never holds the worker's pipe to the
factory; it answers over its own pipe in a format that cannot execute code (JSON, ``.npy`` without pickles,
raw bytes), and the worker checks a returned artifact with an allowlist unpickler before passing it on.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import json
import os
import pickle
import shutil
import signal
import sys
import sysconfig
import tempfile
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, Pipe
from typing import Any, Literal

import numpy as np

from ..errors import TrialError, TrialPruned
from ..train import TrialOutput, TrialRequest, WorkerState, predict, run_trial, trust_script_code
from ..train._script import ScriptEstimator, source_hash

Level = Literal["kernel", "audit", "none"]
LEVELS: tuple[Level, ...] = ("kernel", "audit", "none")
LEVEL_ENV = "DARKFAB_SANDBOX"  # force a weaker level (tests, or a platform where probing misbehaves)
_SCRIPT_MARK = b"darkfab.train._script"

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_SYS_LANDLOCK = {"create": 444, "add": 445, "restrict": 446}  # the same on x86_64 and aarch64
_LL_EXECUTE, _LL_WRITE_FILE, _LL_READ_FILE, _LL_READ_DIR = 1, 2, 4, 8
_LL_ALL_V1 = (1 << 13) - 1  # every filesystem right of Landlock ABI 1
_LL_REFER, _LL_TRUNCATE, _LL_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_LL_READ = _LL_EXECUTE | _LL_READ_FILE | _LL_READ_DIR
_LL_FILE_RIGHTS = _LL_EXECUTE | _LL_WRITE_FILE | _LL_READ_FILE | _LL_TRUNCATE | _LL_IOCTL_DEV
_SYSTEM_READ = ("/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib", "/usr/share/zoneinfo")
_PROC_READ = ("/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/sys/devices/system/cpu")
_DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")


class SandboxError(TrialError):
    """The sandboxed child failed, or answered something the worker refuses."""


def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _errno_text() -> str:
    return os.strerror(ctypes.get_errno())


# --- the kernel level -------------------------------------------------------------------------------------


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _unshare(libc: Any) -> None:
    """A new user and network namespace; root keeps its uid inside but loses its capabilities outside."""
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
        return
    first = _errno_text()
    if libc.unshare(_CLONE_NEWNET) != 0:  # root in a container that forbids user namespaces
        raise OSError(f"unshare: {first}; without a user namespace: {_errno_text()}")


def _landlock_abi(libc: Any) -> int:
    return int(libc.syscall(_SYS_LANDLOCK["create"], None, ctypes.c_size_t(0), ctypes.c_uint32(1)))


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]


def _landlock(libc: Any, read: list[str], write: list[str]) -> int:
    """Restrict this process: read the ``read`` paths, read and write the ``write`` ones. Returns the ABI."""
    abi = _landlock_abi(libc)
    if abi < 1:
        raise OSError(f"Landlock is not available: {_errno_text()}")
    handled = _LL_ALL_V1 | (_LL_REFER if abi >= 2 else 0) | (_LL_TRUNCATE if abi >= 3 else 0)
    handled |= _LL_IOCTL_DEV if abi >= 5 else 0
    attr = _RulesetAttr(handled, 3 if abi >= 4 else 0, 3 if abi >= 6 else 0)  # TCP bind+connect; unix+signal
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
    fd = libc.syscall(_SYS_LANDLOCK["create"], ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        raise OSError(f"landlock_create_ruleset: {_errno_text()}")
    try:
        for paths, rights in ((read, _LL_READ), (write, handled)):
            for path in paths:
                try:
                    pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    allowed = rights & handled
                    if not os.path.isdir(path):
                        allowed &= _LL_FILE_RIGHTS
                    rule = _PathBeneath(allowed, pfd)
                    if libc.syscall(_SYS_LANDLOCK["add"], fd, 1, ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                        raise OSError(f"landlock_add_rule {path}: {_errno_text()}")
                finally:
                    os.close(pfd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(f"prctl(NO_NEW_PRIVS): {_errno_text()}")
        if libc.syscall(_SYS_LANDLOCK["restrict"], fd, ctypes.c_uint32(0)) != 0:
            raise OSError(f"landlock_restrict_self: {_errno_text()}")
    finally:
        os.close(fd)
    return abi


# --- the audit level --------------------------------------------------------------------------------------

_DENIED_EVENTS = (
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "subprocess.Popen",
    "pty.spawn",
    "socket.connect",
    "socket.bind",
    "socket.sendto",
    "socket.sendmsg",
    "os.kill",
    "os.killpg",
    "signal.pthread_kill",
    "os.setuid",
    "shutil.chown",
)
_PATH_EVENTS = {  # event -> (index of the path argument, writes?)
    "os.listdir": (0, False),
    "os.scandir": (0, False),
    "os.chdir": (0, False),
    "os.mkdir": (0, True),
    "os.remove": (0, True),
    "os.rmdir": (0, True),
    "os.rename": (1, True),
    "os.replace": (1, True),
    "os.symlink": (1, True),
    "os.link": (1, True),
    "os.truncate": (0, True),
    "os.chmod": (0, True),
    "os.chown": (0, True),
    "os.utime": (0, True),
    "shutil.rmtree": (0, True),
    "shutil.copyfile": (1, True),
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _audit_hook(read: tuple[str, ...], write: tuple[str, ...]) -> Callable[[str, tuple[Any, ...]], None]:
    readable = read + write
    realpath = os.path.realpath
    fspath = os.fsdecode

    def check(path: Any, writes: bool, event: str) -> None:
        if isinstance(path, int) or path is None:
            return
        try:
            full = realpath(fspath(path))
        except (TypeError, ValueError):
            return
        if not _under(full, write if writes else readable):
            raise PermissionError(f"darkfab sandbox: {event} of {full!r} is denied (outside the scratch folder)")

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writes = bool(isinstance(mode, str) and any(c in mode for c in "wax+"))
            writes |= bool(isinstance(flags, int) and flags & _WRITE_FLAGS)
            check(path, writes, "open")
        elif event in _PATH_EVENTS:
            index, writes = _PATH_EVENTS[event]
            if len(args) > index:
                check(args[index], writes, event)
        elif event in _DENIED_EVENTS:
            raise PermissionError(f"darkfab sandbox: {event} is denied")
        elif event == "ctypes.dlopen":
            name = args[0] if args else None
            libs = tuple(r for r in read if not _under(r, _SYSTEM_READ))
            if name is None or not (isinstance(name, (str, bytes)) and _under(realpath(fspath(name)), libs)):
                raise PermissionError(f"darkfab sandbox: ctypes may not load {name!r}")

    return hook


# --- choosing a level -------------------------------------------------------------------------------------


def _try_kernel(scratch: str) -> None:
    libc = _libc()
    _unshare(libc)
    _landlock(libc, [sys.prefix], [scratch])


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
                    _try_kernel(scratch)
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
    is left out.
    """
    cwd = os.path.realpath(os.getcwd())
    roots: list[str] = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(Exception):
            roots.append(sysconfig.get_path(key))
    for entry in sys.path:
        if entry and os.path.isdir(entry):
            full = os.path.realpath(entry)
            if not _under(cwd, (full,)):
                roots.append(full)
    roots += [*_SYSTEM_READ, *_PROC_READ, *_DEVICES, *extra]
    out: list[str] = []
    for r in roots:
        full = os.path.realpath(r) if r != "/proc/self" else r
        if full not in out and os.path.exists(full) and full != "/":
            out.append(full)
    return tuple(out)


def enter(level: Level, scratch: str, extra_read: tuple[str, ...] = ()) -> None:
    """Apply ``level`` to this (child) process. Irreversible; call only in a process made for it."""
    os.chdir(scratch)
    os.environ["DARKFAB_SCRATCH"] = scratch
    os.environ["TMPDIR"] = scratch
    tempfile.tempdir = scratch
    sys.dont_write_bytecode = True
    if level == "none":
        return
    libc = _libc()
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    read = read_roots(extra_read)
    write = (scratch, "/dev/null")
    if level == "kernel":
        _unshare(libc)
        _landlock(libc, list(read), list(write))
    sys.addaudithook(_audit_hook(read, write))


# --- the child's answers, in formats that cannot run code -------------------------------------------------


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def _from_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _send(conn: Connection, header: dict[str, Any], *blobs: bytes) -> None:
    conn.send_bytes(json.dumps(header).encode())
    for blob in blobs:
        conn.send_bytes(blob)


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
        if (module, name) == ("darkfab.train._script", "ScriptEstimator"):
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
    return _SCRIPT_MARK in data


def is_script_request(request: TrialRequest) -> bool:
    return bool(getattr(request.trainer, "script", None))


def _child(conn: Connection, level: Level, scratch: str, work: Callable[[Any], Any], extra: tuple[str, ...]) -> None:
    """Runs in the forked child: sandbox itself, do the work, send the answer, exit without returning."""
    code = 0
    try:
        enter(level, scratch, extra)
        trust_script_code()

        def report(step: int, predictions: np.ndarray) -> bool:
            _send(conn, {"t": "report", "step": int(step)}, _npy(predictions))
            return bool(json.loads(conn.recv_bytes()).get("stop"))

        result = work(report)
        if isinstance(result, TrialOutput):
            header = {
                "t": "train",
                "train_seconds": result.train_seconds,
                "train_cpu_seconds": result.train_cpu_seconds,
                "latency_ms": list(result.latency_ms),
                "batch_latency_ms": result.batch_latency_ms,
                "steps": result.steps,
                "info": {k: v for k, v in result.info.items() if isinstance(v, (str, int, float, bool))},
            }
            _send(conn, header, _npy(result.valid_predictions), result.artifact)
        else:
            _send(conn, {"t": "predict"}, _npy(np.asarray(result)))
    except TrialPruned as err:
        _send(conn, {"t": "error", "kind": "pruned", "error": str(err)})
    except MemoryError as err:
        traceback.print_exc()
        _send(conn, {"t": "error", "kind": "memory", "error": f"MemoryError: {err}"})
    except BaseException as err:
        traceback.print_exc()
        line = (str(err).strip().splitlines() or [""])[0]
        with contextlib.suppress(Exception):
            _send(conn, {"t": "error", "kind": "exception", "error": f"{type(err).__name__}: {line}"[:500]})
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def run_sandboxed(
    work: Callable[[Any], Any],
    *,
    report: Callable[[int, np.ndarray], bool],
    level: Level | None = None,
    extra_read: tuple[str, ...] = (),
    check: bool = True,
) -> TrialOutput | np.ndarray:
    """Run ``work(report)`` in a forked, sandboxed child and return its TrialOutput or predictions.

    Reports are relayed through ``report``. The child's exceptions come back as SandboxError (or MemoryError,
    TrialPruned) with its one-line message; its traceback is in the worker's log.
    """
    level = level or available_level()
    scratch = tempfile.mkdtemp(prefix="darkfab-trial-")
    ours, theirs = Pipe(duplex=True)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - measured through the worker
        ours.close()
        _child(theirs, level, scratch, work, extra_read)
    theirs.close()
    try:
        while True:
            try:
                header = json.loads(ours.recv_bytes())
            except (EOFError, OSError):
                _, status = os.waitpid(pid, 0)
                pid = 0
                sig = -os.waitstatus_to_exitcode(status)
                how = f"was killed by signal {signal.Signals(sig).name}" if sig > 0 else "ended without an answer"
                raise SandboxError(f"the sandboxed trial process {how}") from None
            kind = header.get("t")
            if kind == "report":
                stop = report(int(header["step"]), _from_npy(ours.recv_bytes()))
                ours.send_bytes(json.dumps({"stop": bool(stop)}).encode())
            elif kind == "error":
                message = str(header.get("error", ""))
                if header.get("kind") == "pruned":
                    raise TrialPruned(message)
                if header.get("kind") == "memory":
                    raise MemoryError(message)
                raise SandboxError(message)
            elif kind == "predict":
                return _from_npy(ours.recv_bytes())
            elif kind == "train":
                predictions, artifact = _from_npy(ours.recv_bytes()), ours.recv_bytes()
                if check:
                    check_artifact(artifact)
                info = dict(header.get("info") or {})
                info["sandbox"] = level
                return TrialOutput(
                    valid_predictions=predictions,
                    artifact=artifact,
                    train_seconds=float(header["train_seconds"]),
                    train_cpu_seconds=float(header["train_cpu_seconds"]),
                    latency_ms=tuple(float(x) for x in header["latency_ms"]),
                    batch_latency_ms=float(header["batch_latency_ms"]),
                    steps=header.get("steps"),
                    info=info,
                )
            else:
                raise SandboxError(f"the sandboxed trial sent an unknown message {kind!r}")
    finally:
        ours.close()
        if pid:
            with contextlib.suppress(Exception):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                os.waitpid(pid, 0)
        shutil.rmtree(scratch, ignore_errors=True)


def sandboxed_trial(
    state: WorkerState, request: TrialRequest, report: Callable[[int, np.ndarray], bool]
) -> TrialOutput:
    """A script trial in the sandbox. The patch is checked here first; the output's info holds the diff,
    the hash of the exact source that ran, and the sandbox level."""
    from ..train import ScriptTrainer

    script = str(getattr(request.trainer, "script", "") or "")
    _, source, diff = ScriptTrainer(request.trainer.name, script).patched(request.params)
    output = run_sandboxed(
        lambda child_report: run_trial(state, request, child_report), report=report, extra_read=(script,)
    )
    assert isinstance(output, TrialOutput), "run_trial returns a TrialOutput, so the child answers with one"
    output.info.update({"diff": diff, "script_sha256": source_hash(source)})
    return output


def sandboxed_predict(state: WorkerState, artifact: bytes, split: Any) -> np.ndarray:
    result = run_sandboxed(lambda _report: predict(state, artifact, split), report=lambda s, p: False, check=False)
    return np.asarray(result)


__all__ = [
    "LEVELS",
    "Level",
    "SandboxError",
    "ScriptEstimator",
    "available_level",
    "check_artifact",
    "enter",
    "is_script_artifact",
    "is_script_request",
    "read_roots",
    "run_sandboxed",
    "sandboxed_predict",
    "sandboxed_trial",
]
