"""A campaign's charts kept between requests, computed again only when the campaign has changed.

Every change to a trial appends an event that names its campaign, so the newest event of the campaign is a
change token: while it has not moved, the charts (history, parameter importance, parallel coordinates and
the Pareto front, one JSON document) are served as computed; when it has, they are computed again from a
light read of the campaign's trials (the columns the charts draw, never the full records). The campaign
page itself reads one page of trials and per-proposer figures from the store, so it never waits for this.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ..store import Store
from ..store._console_reads import trial_points
from . import _views as v

KEEP = 16  # campaigns kept; the least recently viewed goes first


class ChartCache:
    """The charts' JSON per campaign, for one console process, up to the campaign's newest event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._compute = threading.Lock()  # one computation at a time: two viewers must not double the work
        self._entries: OrderedDict[int, tuple[int, str]] = OrderedDict()

    def charts(self, store: Store, campaign_id: int, spec: dict[str, Any]) -> str:
        newest = store.list_events(campaign_id=campaign_id, limit=1)
        head = newest[-1].id if newest else 0
        with self._lock:
            entry = self._entries.get(campaign_id)
        if entry is not None and entry[0] == head:
            return entry[1]
        with self._compute:
            with self._lock:
                entry = self._entries.get(campaign_id)
            if entry is not None and entry[0] == head:
                return entry[1]
            # ``head`` was read before the trials: a change landing meanwhile is seen again next time, never lost
            body = v.campaign_charts(trial_points(store, campaign_id), spec)
        with self._lock:
            current = self._entries.get(campaign_id)
            if current is None or current[0] <= head:
                self._entries[campaign_id] = (head, body)
            self._entries.move_to_end(campaign_id)
            while len(self._entries) > KEEP:
                self._entries.popitem(last=False)
        return body
