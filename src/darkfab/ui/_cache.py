"""A campaign's trials kept between requests, brought up to date from the event log.

Every change to a trial appends an event that names the trial, so the newest event of the campaign is a
change token: when it has not moved the cached list is current; when it has, only the trials those newer
events name are read again. A campaign of thousands of trials is read from the store once, not per page.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import cached_property

from markupsafe import Markup, escape

from ..store import Store, TrialRecord
from . import _views as v

KEEP = 16  # campaigns kept; the least recently viewed goes first
REREAD_ALL = 2000  # beyond this many changed trials, read the whole campaign again


class CampaignTrials:
    """A snapshot of one campaign's trials up to event ``head``, with what the pages derive from them."""

    def __init__(self, head: int, trials: list[TrialRecord]) -> None:
        self.head = head
        self.trials = trials
        self._orders: dict[tuple[str, bool], list[TrialRecord]] = {}
        self._lock = threading.Lock()

    def ordered(self, key: str, descending: bool) -> list[TrialRecord]:
        with self._lock:
            found = self._orders.get((key, descending))
            if found is None:
                found = self._orders[(key, descending)] = v.sort_trials(self.trials, key, descending)
            return found

    @cached_property
    def chart(self) -> Markup:
        """The history chart's JSON, escaped once for its HTML attribute (it is large: every trial)."""
        return escape(v.history_chart(self.trials))

    @cached_property
    def by_proposer(self) -> dict[str, v.ProposerTrials]:
        return v.proposer_trials(self.trials)


class CampaignCache:
    """Up-to-date :class:`CampaignTrials` per campaign, for the pages of one console process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, CampaignTrials] = OrderedDict()

    def trials(self, store: Store, campaign_id: int) -> CampaignTrials:
        newest = store.list_events(campaign_id=campaign_id, limit=1)
        head = newest[-1].id if newest else 0
        with self._lock:
            entry = self._entries.get(campaign_id)
            if entry is not None:
                self._entries.move_to_end(campaign_id)
        if entry is not None and entry.head == head:
            return entry
        fresh = self._refresh(store, campaign_id, entry, head)
        with self._lock:
            current = self._entries.get(campaign_id)
            if current is None or current.head <= fresh.head:
                self._entries[campaign_id] = fresh
                self._entries.move_to_end(campaign_id)
            while len(self._entries) > KEEP:
                self._entries.popitem(last=False)
        return fresh

    @staticmethod
    def _refresh(store: Store, campaign_id: int, entry: CampaignTrials | None, head: int) -> CampaignTrials:
        # ``head`` was read before the trials: a change landing meanwhile is seen again next time, never lost
        if entry is not None and head > entry.head:
            changed = {
                e.trial_id
                for e in store.list_events(campaign_id=campaign_id, after_id=entry.head)
                if e.trial_id is not None and e.id <= head
            }
            if len(changed) <= REREAD_ALL:
                by_id = {t.id: t for t in entry.trials}
                for trial_id in changed:
                    by_id[trial_id] = store.get_trial(trial_id)
                return CampaignTrials(head, [by_id[k] for k in sorted(by_id)])
        return CampaignTrials(head, store.list_trials(campaign_id=campaign_id))
