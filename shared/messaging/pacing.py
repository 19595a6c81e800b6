"""Short consumer fetch waits while messages flow, long ones while the topics are quiet.

A consumer asks the broker for records with a fetch that the broker may hold open for
``fetch_max_wait_ms``. Kafka answers such a fetch as soon as a record arrives, so a long
wait costs nothing there. The embedded broker (Tansu) answers after about half the wait
whether or not a record arrived: there a long wait delays every event by up to half of it,
and a short one makes every idle consumer ask about a hundred times a second, which kept
the idle stack at about half a core.

So a consumer starts with the idle wait; the first message it gets switches it to the busy
wait, and a quiet spell of ``quiet_after`` seconds switches it back. Events that follow one
another closely go at the busy wait's pace; only the first after a quiet spell can take up
to half the idle wait longer on Tansu.
"""

from __future__ import annotations

import asyncio
from typing import Any

# aiokafka reads the wait from its fetcher each time it builds a fetch request; the
# consumer offers no public way to change it once started.
_FETCHER = "_fetcher"
_WAIT = "_fetch_max_wait_ms"


class FetchPacing:
    def __init__(self, *, busy_wait_ms: int, idle_wait_ms: int, quiet_after: float) -> None:
        self.busy_wait_ms = busy_wait_ms
        self.idle_wait_ms = max(idle_wait_ms, busy_wait_ms)
        self.quiet_after = quiet_after
        self._last_message_at = 0.0
        self._quiet_check: asyncio.TimerHandle | None = None
        self._busy: dict[int, Any] = {}  # fetchers at the busy wait, by id

    def message_arrived(self, consumer: Any) -> None:
        """Note a message from ``consumer`` (an AIOKafkaConsumer): keep its fetches short."""
        loop = asyncio.get_running_loop()
        self._last_message_at = loop.time()
        fetcher = getattr(consumer, _FETCHER, None)
        if fetcher is None or self.idle_wait_ms == self.busy_wait_ms:
            return
        if id(fetcher) not in self._busy:
            setattr(fetcher, _WAIT, self.busy_wait_ms)
            self._busy[id(fetcher)] = fetcher
        if self._quiet_check is None:
            self._quiet_check = loop.call_later(self.quiet_after, self._check_quiet)

    def _check_quiet(self) -> None:
        loop = asyncio.get_running_loop()
        quiet_for = loop.time() - self._last_message_at
        if quiet_for < self.quiet_after:
            self._quiet_check = loop.call_later(self.quiet_after - quiet_for, self._check_quiet)
            return
        self._quiet_check = None
        for fetcher in self._busy.values():
            setattr(fetcher, _WAIT, self.idle_wait_ms)
        self._busy.clear()

    def current_wait_ms(self, consumer: Any) -> int | None:
        """The wait ``consumer``'s next fetch asks for (None: not an aiokafka consumer)."""
        fetcher = getattr(consumer, _FETCHER, None)
        wait = getattr(fetcher, _WAIT, None)
        return wait if isinstance(wait, int) else None
