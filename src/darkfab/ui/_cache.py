"""What the campaign page reads, kept between requests until the campaign changes.

Every change to a trial appends an event that names its campaign, so the newest event of the campaign is a
change token: while it has not moved, a page of the leaderboard, the per-proposer figures and the charts
(history, parameter importance, parallel coordinates and the Pareto front, one JSON document) are served
as read or computed; once it moves, each is read again when next asked for. Nothing here reads every full
trial record: the page reads one page of trials, and the charts the few columns they draw.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from ..store import Store

KEEP = 256  # results kept (pages, proposer figures, charts); the least recently used goes first

T = TypeVar("T")


class CampaignCache:
    """Results per campaign and question, for one console process, up to the campaign's newest event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[int, Hashable], tuple[int, Any]] = OrderedDict()

    @staticmethod
    def head(store: Store, campaign_id: int) -> int:
        """The campaign's change token: the id of its newest event (0 before the first)."""
        newest = store.list_events(campaign_id=campaign_id, limit=1)
        return newest[-1].id if newest else 0

    def get(self, campaign_id: int, head: int, question: Hashable, answer: Callable[[], T]) -> T:
        """``answer()`` as of ``head``, computed again only when the campaign has changed since."""
        key = (campaign_id, question)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is not None and entry[0] == head:
            value: T = entry[1]
            return value
        # ``head`` was read before the answer: a change landing meanwhile is seen again next time, never lost
        value = answer()
        with self._lock:
            current = self._entries.get(key)
            if current is None or current[0] <= head:
                self._entries[key] = (head, value)
                self._entries.move_to_end(key)
            while len(self._entries) > KEEP:
                self._entries.popitem(last=False)
        return value
