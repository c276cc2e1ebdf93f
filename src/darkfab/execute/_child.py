"""The processes that run generated code: forks of a clean template, each confined before it runs anything.

A worker starts ``python -B _child.py --zygote FD`` once (darkfab.execute._sandbox): a template that imports
the libraries and never receives data. Every sandboxed process is a fork of it, never of a process that
holds data, so walking its own memory finds only what it was sent. A fork is single-threaded (``unshare``
of a user namespace needs that, and Landlock confines only the threads that exist after it, and their
children). Until the sandbox is on, a fork runs only what the template imported and this module, which
uses the standard library only.

Levels, strongest first (docs/SANDBOX.md states what each does and does not guarantee):

- ``kernel``: a new user and network namespace (no network interface but a loopback that is down),
  ``no_new_privs``, and Landlock: read only the allowlist (Python, its packages, system libraries, the
  script) minus the denied paths (bundled data sets, the factory's data source); write only the scratch
  folder; no signals to, or abstract sockets of, processes outside. Enforced by the kernel.
- ``audit``: a Python audit hook refuses sockets, subprocesses, forks, ``ctypes`` loading of system
  libraries, and file access outside the same allowlist. Best effort: native code bypasses it.
- ``none``: the process only runs in its scratch folder.

The protocol over a child's socket, one message per ``send_bytes``. Worker to child: the setup as JSON
(``level``, ``scratch``, ``read``, ``deny``, ``sys_path``, ``threads``), then one pickled job, from the
worker (trusted): ``("train", payload, request)`` or ``("judge", artifact)``; a judge then receives pickled
frames to predict, one per message. Child to worker, JSON headers followed by raw blobs (``.npy`` without
pickles, artifact bytes), never a pickle: ``{"t": "ready"}`` once confined; ``{"t": "report", "step"}`` +
predictions, answered with ``{"stop": bool}``; ``{"t": "train"}`` + artifact;
``{"t": "loaded"}``; ``{"t": "predict"}`` + predictions; ``{"t": "error", "kind", "error"}``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Literal

Level = Literal["kernel", "audit", "none"]
LEVELS: tuple[Level, ...] = ("kernel", "audit", "none")
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_SYS_LANDLOCK = {"create": 444, "add": 445, "restrict": 446}  # the same on x86_64 and aarch64
_LL_EXECUTE, _LL_WRITE_FILE, _LL_READ_FILE, _LL_READ_DIR = 1, 2, 4, 8
_LL_ALL_V1 = (1 << 13) - 1  # every filesystem right of Landlock ABI 1
_LL_REFER, _LL_TRUNCATE, _LL_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
LL_READ = _LL_EXECUTE | _LL_READ_FILE | _LL_READ_DIR
_LL_FILE_RIGHTS = _LL_EXECUTE | _LL_WRITE_FILE | _LL_READ_FILE | _LL_TRUNCATE | _LL_IOCTL_DEV
SYSTEM_READ = ("/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib", "/usr/share/zoneinfo")


def _libc() -> Any:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _errno_text() -> str:
    return os.strerror(ctypes.get_errno())


def under(path: str, roots: tuple[str, ...] | list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


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


def read_rules(roots: tuple[str, ...] | list[str], deny: tuple[str, ...] | list[str]) -> list[tuple[str, int]]:
    """Landlock read rules for ``roots`` that leave every ``deny`` path out.

    Landlock only allows, and a rule covers everything beneath its folder. So a root that holds a denied
    path is not allowed whole: it may be listed (``READ_DIR``), and each of its entries is allowed in turn,
    down to the denied one, which gets no rule. A listed folder's names are visible; its files are not.
    """
    rules: list[tuple[str, int]] = []

    def add(path: str) -> None:
        if under(path, deny):
            return
        inside = [d for d in deny if under(d, (path,))]
        if not inside or not os.path.isdir(path):
            rules.append((path, LL_READ))
            return
        rules.append((path, _LL_READ_DIR))
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return
        for name in names:
            full = os.path.join(path, name)
            if not under(os.path.realpath(full), deny):
                add(full)

    for root in roots:
        add(root)
    return rules


def landlock(libc: Any, read: list[tuple[str, int]], write: list[str]) -> int:
    """Restrict this process to the ``read`` rules and read-write ``write`` paths. Returns the ABI."""
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
        for path, rights in [*read, *((w, handled) for w in write)]:
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                allowed = rights & handled
                if not os.path.isdir(path):
                    allowed &= _LL_FILE_RIGHTS
                if not allowed:
                    continue
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


def try_kernel(scratch: str) -> None:
    """The kernel level's steps in a throwaway process (the probe)."""
    libc = _libc()
    _unshare(libc)
    landlock(libc, [(sys.prefix, LL_READ)], [scratch])


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


def audit_hook(
    read: tuple[str, ...], write: tuple[str, ...], deny: tuple[str, ...] = ()
) -> Callable[[str, tuple[Any, ...]], None]:
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
        if under(full, deny):
            raise PermissionError(f"darkfab sandbox: {event} of {full!r} is denied (it may hold labels)")
        if not under(full, write if writes else readable):
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
            libs = tuple(r for r in read if not under(r, SYSTEM_READ))
            if name is None or not (isinstance(name, (str, bytes)) and under(realpath(fspath(name)), libs)):
                raise PermissionError(f"darkfab sandbox: ctypes may not load {name!r}")

    return hook


# --- the child ----------------------------------------------------------------------------------------------


def confine(setup: dict[str, Any]) -> Callable[[str, tuple[Any, ...]], None] | None:
    """Apply the setup's level to this process (irreversible); returns the audit hook to add, if any."""
    scratch = str(setup["scratch"])
    os.chdir(scratch)
    os.environ.update(HOME=scratch, TMPDIR=scratch, DARKFAB_SCRATCH=scratch)
    os.environ.update({v: str(setup["threads"]) for v in THREAD_VARS})
    tempfile.tempdir = scratch
    if setup["level"] == "none":
        return None
    read, deny = tuple(setup["read"]), tuple(setup["deny"])
    write = (scratch, "/dev/null")
    if setup["level"] == "kernel":
        libc = _libc()
        _unshare(libc)
        landlock(libc, read_rules(read, deny), list(write))
    return audit_hook((*read, f"/proc/{os.getpid()}"), write, deny)  # what /proc/self resolves to


def send(conn: Connection, header: dict[str, Any], *blobs: bytes) -> None:
    conn.send_bytes(json.dumps(header).encode())
    for blob in blobs:
        conn.send_bytes(blob)


def _npy(array: Any) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def _train(conn: Connection, payload: Any, request: Any) -> None:
    from darkfab.train import fit_model, prepare

    state = prepare(payload)

    def report(step: int, predictions: Any) -> bool:
        send(conn, {"t": "report", "step": int(step)}, _npy(predictions))
        return bool(json.loads(conn.recv_bytes()).get("stop"))

    model, _, _ = fit_model(state, request, report)
    send(conn, {"t": "train"}, model.to_bytes())


def _judge(conn: Connection, artifact: bytes) -> None:
    import pickle

    from darkfab.train import load_model

    model = load_model(artifact)
    send(conn, {"t": "loaded"})
    while True:
        frame = pickle.loads(conn.recv_bytes())  # from the worker: trusted
        if frame is None:
            return
        send(conn, {"t": "predict"}, _npy(model.predict_raw(frame)))


def main(fd: int) -> None:
    """The child's whole life: confine, import, run one job, answer, exit without returning."""
    code = 0
    conn = Connection(fd)
    try:
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        setup = json.loads(conn.recv_bytes())
        hook = confine(setup)
        sys.path[:] = list(setup["sys_path"])
        import pickle

        from darkfab.errors import TrialPruned
        from darkfab.train import trust_script_code

        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(int(setup["threads"]))
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            pass
        send(conn, {"t": "ready"})
        job = pickle.loads(conn.recv_bytes())  # from the worker: trusted
        if hook is not None:
            sys.addaudithook(hook)  # from here on, candidate code runs
        trust_script_code()
        try:
            if job[0] == "train":
                _train(conn, job[1], job[2])
            else:
                _judge(conn, job[1])
        except TrialPruned as err:
            send(conn, {"t": "error", "kind": "pruned", "error": str(err)})
    except MemoryError as err:
        traceback.print_exc()
        send(conn, {"t": "error", "kind": "memory", "error": f"MemoryError: {err}"})
    except BaseException as err:
        traceback.print_exc()
        line = (str(err).strip().splitlines() or [""])[0]
        try:
            send(conn, {"t": "error", "kind": "exception", "error": f"{type(err).__name__}: {line}"[:500]})
        except Exception:
            pass
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def zygote(fd: int) -> None:
    """A clean template for children: it imports the heavy modules once and never receives any data.

    It reads ``sys.path`` as JSON, imports, answers ``ready``, then serves requests, one line each: ``f``
    with a socket passed along (SCM_RIGHTS) forks a child that runs :func:`main` on that socket and answers
    the child's pid; ``wPID`` answers the wait status of that child once it has ended (``-`` if unknown). A
    fork of this process holds the libraries and nothing else; it is single-threaded, so it can still enter
    a user namespace.
    """
    import socket

    _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    control = socket.socket(fileno=fd)
    setup = json.loads(control.recv(1 << 20))
    sys.path[:] = list(setup["sys_path"])
    import numpy  # noqa: F401
    import pandas  # noqa: F401

    import darkfab.errors  # noqa: F401
    import darkfab.train  # noqa: F401

    try:
        import threadpoolctl  # noqa: F401
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    control.sendall(b"ready\n")
    ended: dict[int, int] = {}
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, 64, 1)
        except OSError:
            os._exit(0)
        if not data:  # the worker closed the control socket
            os._exit(0)
        _reap(ended)
        if data.startswith(b"w"):
            status = ended.pop(int(data[1:]), None)
            control.sendall(f"{'-' if status is None else status}\n".encode())
            continue
        if not fds:
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            control.close()
            main(fds[0])
        os.close(fds[0])
        control.sendall(f"{pid}\n".encode())


def _reap(ended: dict[int, int]) -> None:
    """Collect the children that have ended (the worker kills them; it may ask how one ended)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        ended[pid] = status
        while len(ended) > 256:
            del ended[next(iter(ended))]


if __name__ == "__main__":  # pragma: no cover - measured through the worker
    sys.path.pop(0)  # this file's folder: its private modules must not shadow anything
    zygote(int(sys.argv[2]))  # python -B _child.py --zygote FD
