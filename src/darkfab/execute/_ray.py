"""The Ray executor: a warm pool of Ray actors, on this machine or across a cluster.

Ray is an optional extra: this module imports it only when an executor starts, so ``import darkfab.execute``
never pays for it. The training data is put in Ray's object store once (``ray.put``) and every actor,
replacements included, reads it from there and calls ``train.prepare`` on it once; then it runs job after
job, like a worker of the local pool.

Each actor runs its jobs on its main thread (trial code may install signal handlers). Intermediate reports
therefore travel through a small mailbox actor, kept on the driver's node: the trial's ``report`` call
hands its predictions to the mailbox and waits there for :meth:`RayExecutor.answer`, while the executor
long-polls the mailbox from :meth:`RayExecutor.poll`.

Failures, and what the pool does about them (as the local pool does):

- the job raises: ``exception`` (``MemoryError``: ``memory``), never retried; the actor stays;
- the job runs past ``limits.timeout_s``: ``timeout``; the actor is killed (``ray.kill``) and replaced;
- the actor's private resident memory, plus its children's, passes ``limits.memory_mb``: ``memory``. A
  watchdog thread inside the actor measures it (so it works on any node), leaves its verdict with the
  mailbox and kills its own process; Ray's own memory monitor killing the actor also counts as ``memory``;
- the actor dies unasked (segfault, ``os._exit``, its node lost): an infrastructure fault; the actor is
  replaced and the job retried ``limits.retries`` times, then ``crash``. An actor found dead only when a
  job is handed to it also costs that job an attempt (Ray does not tell an idle death apart);
- :meth:`RayExecutor.cancel`: ``cancelled``; a running job's actor is killed and replaced.

What the local pool does and this one does not: no address-space backstop (each Ray worker maps the object
store, so its address space says nothing about its memory), so an allocation faster than the watchdog's
period (``memory_check_s``) can overshoot the limit before the kill. Memory shared with the object store
(the payload) is not counted against the limit. The ``memory`` resource given to Ray is a reservation for
scheduling only; the limit is the watchdog's.

Each actor's stdout and stderr (file descriptors 1 and 2, so C code and subprocesses too) go to a log file
on its node, emptied at the start of every job; a finished job returns its tail, and the executor reads the
tail of a killed or dead actor's log itself, or through a small Ray task on that node.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import psutil

from ..errors import ExecutorError, SpecError
from ..train import TrialOutput, WorkerPayload
from ._base import FailureKind, Job, JobReport, TrainJob
from ._pooled import Attempt, Outcome, PooledExecutor
from ._ray_worker import ANSI, FATAL, GET_S, TAKE_S, Mailbox, RayWorker, import_ray, read_log, remove_dir
from ._worker import PREDICT, TRAIN

# -- the driver's side -------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class _Run(Attempt):
    """A job on an actor: its mailbox token and the reference of its result."""

    token: str
    ref: Any


@dataclass
class _Slot:
    """One actor, as the executor sees it."""

    name: str
    actor: Any
    spawned: float
    ready_ref: Any = None
    ready: bool = False
    pid: int = 0
    node_id: str = ""
    log_path: str = ""
    cpu_total: float = 0.0
    resting_mb: float = 0.0
    running: _Run | None = None


class _Session:
    """What must be released even if the executor is never closed: actors, the Ray session we started, logs."""

    def __init__(self, ray: Any, owned: bool, log_dir: str) -> None:
        self.ray = ray
        self.owned = owned
        self.log_dir = log_dir
        self.actors: list[Any] = []
        self.nodes: set[str] = set()  # nodes with actors of ours, whose log folder must go
        self.here = ""

    def shutdown(self) -> None:
        ray = self.ray
        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        self.actors.clear()
        shutil.rmtree(self.log_dir, ignore_errors=True)
        remote = [n for n in self.nodes if n != self.here]
        with contextlib.suppress(Exception):
            if remote and ray.is_initialized():
                refs = [_on_node(ray, remove_dir, node).remote(self.log_dir) for node in remote]
                ray.wait(refs, num_returns=len(refs), timeout=GET_S)
        if self.owned:
            with contextlib.suppress(Exception):
                ray.shutdown()


def _on_node(ray: Any, fn: Any, node_id: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return ray.remote(fn).options(
        num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
    )


class RayExecutor(PooledExecutor[_Slot]):
    """A warm pool of Ray actors with the local pool's limits, retries and log tails.

    Args:
        address: the Ray cluster: ``"auto"``, ``"ray://host:10001"`` or ``"host:port"``; None starts a Ray
            on this machine with as many CPUs as the trials need, or uses the Ray this process already joined.
        cpus_per_trial: CPUs Ray reserves for each actor.
        gpus_per_trial: GPUs Ray reserves for each actor (fractions share a GPU).
        memory_mb: memory Ray reserves for each actor when scheduling (the limit itself is ``limits.memory_mb``).
        runtime_env: passed to ``ray.init`` when this executor connects (code and packages for the nodes).
        start_timeout_s: how long the actors may take to start and load the payload.
        memory_check_s: how often each actor measures a running job's memory.
        log_tail_lines: the most lines of a job's output kept in :attr:`JobDone.log_tail`.
        log_tail_bytes: the most bytes of a job's output kept in :attr:`JobDone.log_tail`.
    """

    _TITLE = "Ray"
    _NOUN = "a Ray actor"
    _START_POLL_S = 1.0

    def __init__(
        self,
        *,
        address: str | None = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        memory_mb: int | None = None,
        runtime_env: dict[str, Any] | None = None,
        start_timeout_s: float = 120.0,
        memory_check_s: float = 0.15,
        log_tail_lines: int = 40,
        log_tail_bytes: int = 4096,
    ) -> None:
        if not cpus_per_trial > 0 or gpus_per_trial < 0 or (memory_mb is not None and memory_mb <= 0):
            raise SpecError(
                "execution: `cpus_per_trial` must be positive, `gpus_per_trial` 0 or more and `memory_mb` positive "
                f"or None, got {cpus_per_trial=}, {gpus_per_trial=}, {memory_mb=}"
            )
        super().__init__(
            start_timeout_s=start_timeout_s,
            memory_check_s=memory_check_s,
            log_tail_lines=log_tail_lines,
            log_tail_bytes=log_tail_bytes,
        )
        self._ray = import_ray()
        self._address = address
        self._cpus = float(cpus_per_trial)
        self._gpus = float(gpus_per_trial)
        self._memory_mb = memory_mb
        self._runtime_env = runtime_env
        self._session: _Session | None = None
        self._payload_ref: Any = None
        self._mailbox: Any = None
        self._take_ref: Any = None
        self._worker_cls: Any = None
        self._slots: dict[str, _Slot] = {}
        self._refs: dict[Any, _Slot] = {}  # a pending ready() or run() -> its actor
        self._tokens: dict[str, _Slot] = {}
        self._last_ready = 0.0

    # -- for tests and diagnostics ---------------------------------------------------------------------

    @property
    def actors(self) -> dict[str, tuple[str, int]]:
        """The ready actors: name -> (node id, process id)."""
        return {s.name: (s.node_id, s.pid) for s in self._slots.values() if s.ready}

    @property
    def running(self) -> dict[str, str]:
        """The running jobs: job id -> the name of its actor."""
        return {s.running.job.job_id: s.name for s in self._slots.values() if s.running is not None}

    # -- starting and stopping -------------------------------------------------------------------------

    def _open(self, payload: WorkerPayload) -> None:
        ray = self._ray
        owned = False
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "log_to_driver": False,
                "logging_level": logging.ERROR,
                "runtime_env": self._runtime_env,
            }
            if self._address is None:
                options.update(num_cpus=max(1, math.ceil(self._workers * self._cpus)), include_dashboard=False)
            try:
                ray.init(address=self._address, **options)
            except Exception as err:
                raise ExecutorError(f"cannot start or join Ray at {self._address or 'a new local Ray'}: {err}") from err
            owned = True
        self._session = _Session(ray, owned, os.path.join(tempfile.gettempdir(), f"darkfab-ray-{uuid.uuid4().hex}"))
        self._finalizer = weakref.finalize(self, self._session.shutdown)

    def _load(self, payload: WorkerPayload) -> None:
        assert self._session is not None
        self._session.here = "" if _client_mode() else self._ray.get_runtime_context().get_node_id()
        self._payload_ref = self._ray.put(payload)  # once: every actor and replacement reads this object
        self._mailbox = self._make_mailbox()
        self._worker_cls = self._worker_class()

    def _forget(self) -> None:
        self._payload_ref = self._mailbox = self._take_ref = None
        for table in (self._slots, self._refs, self._tokens):
            table.clear()

    def _slow_start_error(self, missing: int, workers: int) -> str:
        return (
            f"{missing} of {workers} Ray actors did not start and load the payload "
            f"within {self._start_timeout_s:g} s (start_timeout_s); {self._resources_note()}"
        )

    def _resting_mb(self, worker: _Slot) -> float:
        return worker.resting_mb

    def _resources_note(self) -> str:
        wanted = f"{self._cpus:g} CPU, {self._gpus:g} GPU" + (
            f", {self._memory_mb} MB memory" if self._memory_mb else ""
        )
        try:
            free = {k: round(v, 2) for k, v in self._ray.available_resources().items() if not k.startswith("node:")}
        except Exception:  # pragma: no cover - the cluster is gone
            free = {}
        return f"each actor needs {wanted}; the cluster has free {free}"

    # -- actors ----------------------------------------------------------------------------------------

    def _make_mailbox(self) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        assert self._session is not None
        options: dict[str, Any] = {"num_cpus": 0, "max_restarts": 0}
        if self._session.here:  # keep it beside the driver, where losing a node cannot take it
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=self._session.here, soft=True)
        mailbox = self._ray.remote(Mailbox).options(**options).remote()
        self._session.actors.append(mailbox)
        return mailbox

    def _worker_class(self) -> Any:
        options: dict[str, Any] = {
            "num_cpus": self._cpus,
            "num_gpus": self._gpus,
            "max_restarts": 0,
            "max_task_retries": 0,
        }
        if self._memory_mb is not None:
            options["memory"] = self._memory_mb * 2**20
        return self._ray.remote(RayWorker).options(**options)

    def _workers_now(self) -> list[_Slot]:
        return list(self._slots.values())

    def _spawn(self) -> None:
        assert self._session is not None
        self._serial += 1
        name = f"ray-{self._serial}"
        actor = self._worker_cls.remote(
            self._payload_ref,
            mailbox=self._mailbox,
            log_dir=self._session.log_dir,
            name=name,
            sys_path=list(sys.path),
            memory_mb=self._limits.memory_mb,
            memory_check_s=self._memory_check_s,
            tail_lines=self._tail["max_lines"],
            tail_bytes=self._tail["max_bytes"],
        )
        self._session.actors.append(actor)
        slot = _Slot(name=name, actor=actor, spawned=time.monotonic())
        slot.ready_ref = actor.ready.remote()
        self._refs[slot.ready_ref] = slot
        self._slots[name] = slot

    def _retire(self, worker: _Slot) -> None:
        assert self._session is not None
        with contextlib.suppress(Exception):  # it may be dead already
            self._ray.kill(worker.actor, no_restart=True)
        with contextlib.suppress(ValueError):
            self._session.actors.remove(worker.actor)
        self._slots.pop(worker.name, None)
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        for ref in [r for r, s in self._refs.items() if s is worker]:
            del self._refs[ref]
        if worker.running is not None:
            self._tokens.pop(worker.running.token, None)

    def _begin(self, worker: _Slot, job: Job, attempt: int) -> bool:
        token = f"{worker.name}/{job.job_id}/{attempt}"
        if isinstance(job, TrainJob):
            ref = worker.actor.run.remote(token, TRAIN, job.job_id, (job.request,))
        else:
            ref = worker.actor.run.remote(token, PREDICT, job.job_id, (job.artifact, job.split))
        worker.running = _Run(
            job=job, attempts=attempt, token=token, deadline=time.monotonic() + self._limits.timeout_s, ref=ref
        )
        self._refs[ref] = worker
        self._tokens[token] = worker
        return True

    def _send_answer(self, worker: _Slot, *, stop: bool) -> None:
        assert worker.running is not None
        self._mailbox.answer.remote(worker.running.token, stop)

    # -- the limits ------------------------------------------------------------------------------------

    def _check_starting(self, now: float) -> None:
        """Give up on a pool that has work, no actor and none starting within ``start_timeout_s``."""
        pending = [s for s in self._slots.values() if not s.ready]
        if self._queue and pending and not self._idle and not any(s.running for s in self._slots.values()):
            waited = now - max(self._last_ready, min(s.spawned for s in pending))
            if waited > self._start_timeout_s:
                raise ExecutorError(
                    f"no Ray actor is running and none started within {self._start_timeout_s:g} s "
                    f"(start_timeout_s); {self._resources_note()}"
                )

    def _kill(self, worker: _Slot, failure: FailureKind, error: str) -> None:
        running = worker.running
        assert running is not None
        cpu = self._cpu_seconds(worker)  # read before the kill, while /proc still has it
        self._ray.kill(worker.actor, no_restart=True)
        self._mailbox.end.remote(running.token)  # releases a trial that waits for an answer
        self._gone(worker)
        tail = self._dead_tail(worker)
        self._replace(worker)
        self._finish(running, worker.name, failure=failure, error=error, log_tail=tail, cpu_seconds=cpu)

    # -- what the actors say ---------------------------------------------------------------------------

    def _collect(self, wait_s: float, *, starting: bool = False) -> None:
        """Wait up to ``wait_s`` for actors that got ready, jobs that ended and reports; handle them all."""
        reporting = any(
            s.running is not None and isinstance(s.running.job, TrainJob) and s.running.job.request.report_every > 0
            for s in self._slots.values()
        )
        if reporting and self._take_ref is None:
            self._take_ref = self._mailbox.take.remote(TAKE_S)
        refs = list(self._refs)
        if self._take_ref is not None:
            refs.append(self._take_ref)
        if not refs:
            time.sleep(wait_s)
            return
        ready, _ = self._ray.wait(refs, num_returns=1, timeout=wait_s)
        if ready:
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            if ref is self._take_ref:
                self._take_ref = None
                self._on_reports(ref)
                continue
            slot = self._refs.pop(ref, None)
            if slot is None:
                continue
            if ref is slot.ready_ref:
                self._on_ready(slot, ref, starting=starting)
            elif slot.running is not None and ref is slot.running.ref:
                self._on_done(slot, ref)

    def _on_ready(self, slot: _Slot, ref: Any, *, starting: bool) -> None:
        ray = self._ray
        slot.ready_ref = None
        try:
            failed, slot.pid, slot.node_id, slot.log_path, resting, slot.cpu_total = ray.get(ref)
            cause: Exception | None = None
        except ray.exceptions.RayError as err:  # it died on the way: crashed, or its node was lost
            failed, cause = f"{_first_lines(err)}\n{self._dead_tail(slot)}".rstrip(), err
        if failed:
            self._retire(slot)
            if self._start_failed(starting=starting):
                raise ExecutorError(f"Ray actor {slot.name} could not load the payload: {failed}") from cause
            self._spawn()
            return
        slot.resting_mb = resting
        slot.ready = True
        self._last_ready = time.monotonic()
        assert self._session is not None
        self._session.nodes.add(slot.node_id)
        self._now_ready(slot)

    def _on_reports(self, ref: Any) -> None:
        try:
            reports = self._ray.get(ref)
        except self._ray.exceptions.RayError as err:
            raise ExecutorError(f"the executor's mailbox actor was lost: {_first_lines(err)}") from err
        for token, step, predictions in reports:
            slot = self._tokens.get(token)
            running = slot.running if slot is not None else None
            if running is None or running.token != token:
                self._mailbox.answer.remote(token, True)  # an attempt that has ended since
                continue
            running.awaiting_answer = True
            self._events.append(JobReport(job_id=running.job.job_id, step=step, predictions=_writable(predictions)))

    def _on_done(self, slot: _Slot, ref: Any) -> None:
        ray = self._ray
        running = slot.running
        assert running is not None
        try:
            ok, output, failure, error, cpu, peak, tail, cpu_total = ray.get(ref)
        except ray.exceptions.RayTaskError as err:  # the result could not be sent back; the actor stays
            ok, output, failure, error, cpu, peak, tail, cpu_total = (
                False,
                None,
                "exception",
                f"cannot send the result back: {_first_lines(err)}",
                0.0,
                0.0,
                "",
                slot.cpu_total,
            )
        except ray.exceptions.RayError as err:
            self._on_death(slot, err)
            return
        slot.running = None
        slot.cpu_total = cpu_total
        self._tokens.pop(running.token, None)
        self._idle.append(slot)
        outcome: Outcome = {
            "failure": failure,
            "error": error,
            "log_tail": tail,
            "cpu_seconds": cpu,
            "peak_rss_mb": peak,
        }
        self._finish(running, slot.name, ok=ok, output=_writable(output), **outcome)

    def _on_death(self, slot: _Slot, err: Exception) -> None:
        """An actor ended without being asked: replace it, and retry its job or report why it ended."""
        ray = self._ray
        running = slot.running
        assert running is not None
        verdict = None
        with contextlib.suppress(Exception):
            verdict = ray.get(self._mailbox.end.remote(running.token), timeout=GET_S)
        tail = self._dead_tail(slot)
        self._replace(slot)
        failure: FailureKind
        if verdict is not None:
            failure, (error, peak) = "memory", verdict
        elif isinstance(err, ray.exceptions.OutOfMemoryError):
            failure, error, peak = "memory", f"memory: Ray's memory monitor killed the worker: {_first_lines(err)}", 0.0
        elif self._retry(running):
            return
        else:
            failure, peak = "crash", 0.0
            error = self._crash_error(_death(slot.name, err, tail), running)
        self._finish(running, slot.name, failure=failure, error=error, log_tail=tail, peak_rss_mb=peak)

    # -- what can be learnt about an actor from outside --------------------------------------------------

    def _local(self, slot: _Slot) -> bool:
        assert self._session is not None
        return bool(slot.pid) and bool(self._session.here) and slot.node_id == self._session.here

    def _cpu_seconds(self, slot: _Slot) -> float:
        if not self._local(slot):
            return 0.0
        try:
            times = psutil.Process(slot.pid).cpu_times()
        except psutil.Error:
            return 0.0
        return max(0.0, times.user + times.system - slot.cpu_total)

    def _gone(self, slot: _Slot, within_s: float = 5.0) -> None:
        """Wait until a killed actor on this node has stopped writing its log."""
        if not self._local(slot):
            return
        with contextlib.suppress(psutil.Error):
            psutil.Process(slot.pid).wait(within_s)

    def _dead_tail(self, slot: _Slot) -> str:
        """The tail of the log of an actor that has ended, read here or on its node; '' when unreachable."""
        if not slot.log_path:
            return ""
        if os.path.exists(slot.log_path):  # this machine (the file name is unique to this executor)
            return read_log(slot.log_path, **self._tail)
        try:
            ref = _on_node(self._ray, read_log, slot.node_id).remote(slot.log_path, **self._tail)
            return str(self._ray.get(ref, timeout=GET_S))
        except Exception:  # the node is gone, or does not answer
            return ""


def _client_mode() -> bool:
    """Connected through Ray Client (``ray://``): this process is on no node of the cluster."""
    try:
        from ray.util.client import ray as client
    except ImportError:  # pragma: no cover
        return False
    return bool(client.is_connected())


def _first_lines(err: BaseException, lines: int = 2) -> str:
    text = [line.strip() for line in ANSI.sub("", str(err)).strip().splitlines() if line.strip()]
    return " ".join(text[:lines]) or type(err).__name__


def _death(name: str, err: Exception, tail: str) -> str:
    """Why an actor died, in words: the signal when its log shows one, else what Ray says."""
    for line in tail.splitlines():
        if line.startswith("Fatal Python error: "):
            what = line.removeprefix("Fatal Python error: ").strip()
            sig = FATAL.get(what)
            return f"worker {name} died with {sig} ({what})" if sig else f"worker {name} died: {what}"
    reason = next((line.strip() for line in str(err).splitlines() if "dead because" in line), "")
    return f"worker {name} died: {reason or _first_lines(err)}"


def _writable(value: Any) -> Any:
    """Arrays read from Ray's object store are read-only views; hand the caller its own, as the local pool does."""
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        return value.copy()
    if isinstance(value, TrialOutput) and not value.valid_predictions.flags.writeable:
        return dataclasses.replace(value, valid_predictions=value.valid_predictions.copy())
    return value
