"""Local fan-out of events to the connections of this process."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

Event = dict[str, Any]
# The one event field that never leaves this process: an entry itself, with its plain text
# (other processes get the entry sealed).
LOCAL_ENTRY = "_entry"
Listener = Callable[[Event], None]

logger = logging.getLogger(__name__)


class Hub:
    """Channel → listeners of this process. Listeners are synchronous and must not block:
    they put the event on their connection's bounded queue and return."""

    def __init__(self) -> None:
        # Tuples, replaced on change: an event is dispatched far more often than a listener
        # comes or goes, and a listener may come or go while an event is dispatched.
        self._listeners: dict[str, tuple[Listener, ...]] = {}

    def add(self, channel: str, listener: Listener) -> bool:
        """Register; True when this is the channel's first local listener."""
        listeners = self._listeners.get(channel, ())
        if listener not in listeners:
            self._listeners[channel] = (*listeners, listener)
        return not listeners

    def remove(self, channel: str, listener: Listener) -> bool:
        """Unregister; True when the channel has no local listener left."""
        listeners = self._listeners.get(channel)
        if listeners is None:
            return False
        left = tuple(known for known in listeners if known != listener)
        if left:
            self._listeners[channel] = left
            return False
        del self._listeners[channel]
        return True

    def has(self, channel: str) -> bool:
        return channel in self._listeners

    def channels(self) -> list[str]:
        return list(self._listeners)

    def dispatch(self, channel: str, event: Event) -> None:
        for listener in self._listeners.get(channel, ()):
            try:
                listener(event)
            except Exception:
                # One broken listener must not stop delivery to the others; no event content
                # is logged because events carry message text.
                logger.exception("event listener failed", extra={"channel_kind": _kind(channel)})


def _kind(channel: str) -> str:
    return channel.split(":", 1)[0]
