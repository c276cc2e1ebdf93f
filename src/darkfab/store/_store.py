"""The store: every record darkfab keeps, each concern a repository, composed behind one :class:`Store`."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from ._aliases import Aliases
from ._base import Clock, StoreBase, utc_now
from ._blobs import Blobs
from ._campaigns import Campaigns
from ._events import EventLog
from ._leases import Leases
from ._llm_calls import LLMCalls
from ._monitoring import Monitoring
from ._predictions import Predictions
from ._preferences import Preferences
from ._trials import Trials
from ._versions import ModelVersions
from ._workers import Workers

_Repo = TypeVar("_Repo")
_P = ParamSpec("_P")
_T = TypeVar("_T")


class _Via(Generic[_Repo, _P, _T]):
    """``Store.name`` is the repository's method of that name, bound to this store's repository.

    One definition (the repository's), its signature and docstring kept for type checkers and ``help()``:
    ``store.add_trial(...)`` calls ``store._trials.add_trial(...)``, as one unit of work (``_Outages.rerun`` in ``_base``): a
    connection cut in its middle rolls its transaction back and runs the whole call again from the start.
    """

    def __init__(self, repository: str, method: Callable[Concatenate[_Repo, _P], _T]) -> None:
        self._repository = repository
        self._method = method
        self.__doc__ = method.__doc__
        self.__wrapped__ = method

    def __set_name__(self, owner: type[Any], name: str) -> None:
        if name != self._method.__name__:  # pragma: no cover - a slip in the table below
            raise TypeError(f"Store.{name} would call {self._method.__qualname__}; give both the same name")

    def __call__(self, store: StoreBase, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``Store.name(store, ...)``, as an unbound method is called."""
        return store._outages.rerun(types.MethodType(self._method, getattr(store, self._repository)), *args, **kwargs)

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> _Via[_Repo, _P, _T]: ...

    @overload
    def __get__(self, obj: StoreBase, owner: type[Any]) -> Callable[_P, _T]: ...

    def __get__(self, obj: StoreBase | None, owner: type[Any]) -> _Via[_Repo, _P, _T] | Callable[_P, _T]:
        if obj is None:
            return self
        return obj._outages.unit(types.MethodType(self._method, getattr(obj, self._repository)))


class Store(StoreBase):
    """darkfab's records on SQLite (the default) or PostgreSQL.

    Opening a store resolves its URL (:func:`resolve_store_url`), creates the folder of a SQLite file and
    migrates the schema to the newest revision. Every method that changes something runs as ONE
    transaction and appends its audit event to the hash-chained event log inside that transaction; data
    that is not a decision (predictions, LLM calls, workers, heartbeats, artifact bytes) appends none.
    A store may be shared between threads; several processes may open the same database.

    Outages are waited out: a store down, restarting or locked is waited for before a transaction starts, and a
    connection cut in the middle of a method's work (the server restarted, the backend terminated) rolls it back
    and runs the whole method again from the start, with backoff; on PostgreSQL a COMMIT whose answer was lost is
    looked up (``txid_status``) rather than run twice. Past :data:`~darkfab.store._base.OUTAGE_WAIT_S` (300 s), or
    ``outage_wait_s`` when given (the console's pages wait a few seconds, not minutes), a method raises
    :class:`~darkfab.errors.StoreUnavailable`.

    ``clock`` (default :func:`utc_now`) gives every time the store stamps; tests pass their own to move time.
    Each concern is a repository over the same engine and event log (``_campaigns``, ``_trials`` ...); the
    methods below are theirs.
    """

    def __init__(self, url: str | None = None, *, clock: Clock = utc_now, outage_wait_s: float | None = None) -> None:
        super().__init__(url, clock=clock, outage_wait_s=outage_wait_s)
        self._events = EventLog(self)
        self._campaigns = Campaigns(self)
        self._trials = Trials(self)
        self._leases = Leases(self, self._trials)
        self._aliases = Aliases(self)
        self._versions = ModelVersions(self, self._aliases)
        self._predictions = Predictions(self)
        self._monitoring = Monitoring(self)
        self._preferences = Preferences(self)
        self._llm_calls = LLMCalls(self)
        self._workers = Workers(self)
        self._blobs = Blobs(self)

    # -- the event log -----------------------------------------------------------------------------
    append_event = _Via("_events", EventLog.append_event)
    list_events = _Via("_events", EventLog.list_events)
    check_registration = _Via("_events", EventLog.check_registration)
    audit_head = _Via("_events", EventLog.audit_head)
    verify_chain = _Via("_events", EventLog.verify_chain)

    # -- factories and campaigns -------------------------------------------------------------------
    ensure_factory = _Via("_campaigns", Campaigns.ensure_factory)
    get_factory = _Via("_campaigns", Campaigns.get_factory)
    list_factories = _Via("_campaigns", Campaigns.list_factories)
    create_campaign = _Via("_campaigns", Campaigns.create_campaign)
    latest_campaign = _Via("_campaigns", Campaigns.latest_campaign)
    get_campaign = _Via("_campaigns", Campaigns.get_campaign)
    list_campaigns = _Via("_campaigns", Campaigns.list_campaigns)
    update_campaign = _Via("_campaigns", Campaigns.update_campaign)
    finish_campaign = _Via("_campaigns", Campaigns.finish_campaign)

    # -- proposals and trials, and their leases ----------------------------------------------------
    add_trial = _Via("_trials", Trials.add_trial)
    start_trial = _Via("_trials", Trials.start_trial)
    heartbeat = _Via("_trials", Trials.heartbeat)
    finish_trial = _Via("_trials", Trials.finish_trial)
    requeue_interrupted = _Via("_trials", Trials.requeue_interrupted)
    get_trial = _Via("_trials", Trials.get_trial)
    list_trials = _Via("_trials", Trials.list_trials)
    count_trials = _Via("_trials", Trials.count_trials)
    claim_trial = _Via("_leases", Leases.claim_trial)
    reclaim_expired = _Via("_leases", Leases.reclaim_expired)

    # -- model versions and aliases ----------------------------------------------------------------
    add_model_version = _Via("_versions", ModelVersions.add_model_version)
    get_model_version = _Via("_versions", ModelVersions.get_model_version)
    list_model_versions = _Via("_versions", ModelVersions.list_model_versions)
    aliases = _Via("_aliases", Aliases.aliases)
    set_alias = _Via("_aliases", Aliases.set_alias)
    delete_alias = _Via("_aliases", Aliases.delete_alias)
    change_aliases = _Via("_aliases", Aliases.change_aliases)

    # -- predictions and monitor windows -----------------------------------------------------------
    log_predictions = _Via("_predictions", Predictions.log_predictions)
    add_feedback = _Via("_predictions", Predictions.add_feedback)
    record_feedback = _Via("_predictions", Predictions.record_feedback)
    logged_keys = _Via("_predictions", Predictions.logged_keys)
    list_predictions = _Via("_predictions", Predictions.list_predictions)
    add_monitor_window = _Via("_monitoring", Monitoring.add_monitor_window)
    list_monitor_windows = _Via("_monitoring", Monitoring.list_monitor_windows)
    last_monitor_window = _Via("_monitoring", Monitoring.last_monitor_window)
    list_predictions_after = _Via("_monitoring", Monitoring.list_predictions_after)

    # -- preferences, LLM calls, workers, artifact bytes -------------------------------------------
    add_preference = _Via("_preferences", Preferences.add_preference)
    list_preferences = _Via("_preferences", Preferences.list_preferences)
    rescore_trials = _Via("_preferences", Preferences.rescore_trials)
    add_llm_call = _Via("_llm_calls", LLMCalls.add_llm_call)
    list_llm_calls = _Via("_llm_calls", LLMCalls.list_llm_calls)
    llm_usage = _Via("_llm_calls", LLMCalls.llm_usage)
    announce_worker = _Via("_workers", Workers.announce_worker)
    retire_worker = _Via("_workers", Workers.retire_worker)
    list_workers = _Via("_workers", Workers.list_workers)
    worker_slots = _Via("_workers", Workers.worker_slots)
    put_artifact_blob = _Via("_blobs", Blobs.put_artifact_blob)
    get_artifact_blob = _Via("_blobs", Blobs.get_artifact_blob)

    @property
    def keeps_artifacts(self) -> bool:
        """Whether artifacts are kept in this database too (a shared, non-SQLite store, unless turned off)."""
        return self._blobs.keeps_artifacts
