"""What the chat services share: their dependencies and the steps every one of them takes.

State lives in the broker and changes only through atomic transitions, so the services may
run in several processes at once. Events go out on channels (see channels.py); the WebSocket
adapters turn them into frames. Nothing here logs or stores message text outside the
transcript, and nothing here sees a network address.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from app.abuse.blocks import Blocks
from app.broker.base import Broker, Refusal, Transition
from app.broker.records import (
    WAITING_STATES,
    ChatRecord,
    ChatState,
    StaffStatus,
    queue_score,
)
from app.chats.channels import (
    Deadline,
    chat_channel,
    deadline_key,
    line_channel,
    staff_channel,
)
from app.chats.entries import Entry
from app.chats.plan import entry_event
from app.chats.protocol import ErrorCode, ProtocolError
from app.chats.transcript import Transcript
from app.held.service import HeldRows
from app.lines.directory import LineDirectory
from app.routing.service import Router, settled_event
from app.settings import Settings
from app.stats.counters import ChatCounters

# How often a step that depends on a chat's state is tried again when another process changed
# the state in between (each retry needs yet another change at that very moment).
STATE_RETRIES = 5
# Offers (a chat's, or an interpreter's request) a staff member may let lapse in a row before
# they are set to away.
MISSED_OFFERS_BEFORE_AWAY = 2
# A visitor connection's lease in the broker lapses this long after its process stopped
# refreshing it (the heartbeat refreshes it); then the chat waits out the visitor's grace.
VISITOR_LEASE_MIN_SECONDS = 15.0


def err(code: ErrorCode, message: str, ref: str | None = None) -> ProtocolError:
    return ProtocolError(code, message, ref)


@dataclass
class ChatCore:
    """The chat services' dependencies, and what this process watches for them."""

    broker: Broker
    lines: LineDirectory
    transcript: Transcript
    router: Router
    held_rows: HeldRows
    settings: Settings
    counters: ChatCounters
    blocks: Blocks
    # Transcripts this process saw end with a retention: chat id -> monotonic due time. A
    # jump of the wall clock (which deadlines use) cannot delay these.
    shred_watch: dict[str, float] = field(default_factory=dict)

    @property
    def visitor_lease_seconds(self) -> float:
        return max(self.settings.heartbeat_seconds * 3, VISITOR_LEASE_MIN_SECONDS)

    def message_limit(self, line_key: str | None) -> int:
        line = self.lines.get(line_key) if line_key else None
        return line.max_message_length if line else 4000

    async def append(self, record: ChatRecord, entry: Entry) -> None:
        """Append a system entry after the record's last one (announced on the chat)."""
        await self.transcript.add_one(record.id, entry, last_seq=record.last_seq)

    async def publish_end(self, record: ChatRecord, entry: Entry) -> None:
        """The `ended` entry: the chat is ended already, so the broker refuses appends; it is
        delivered as an event only, numbered after the last stored entry (the transcript is
        shredded right after, or kept as it was for the line's retention)."""
        seq = record.last_seq + 1
        event = entry_event(record.id, seq, entry, None, b"")
        await self.broker.publish(chat_channel(record.id), event)

    async def queue_changed(self, line: str, *, settled: str | None = None) -> None:
        """Route the line, and tell every process's queue cards and positions; `settled`: the
        chat whose offer just ended."""
        self.router.kick(line)
        event = {"type": "queue.changed"} if settled is None else settled_event(settled)
        await self.broker.publish(line_channel(line), event)

    async def offer_missed(self, staff_id: str) -> None:
        """An offer to them lapsed: after a few in a row they are set to away, and told, so
        that nothing more goes to someone who walked away from their desk."""
        presence = await self.broker.get_presence(staff_id)
        if presence is None:
            return
        missed = presence.missed_offers + 1
        changes: dict[str, Any] = {"missed_offers": missed}
        if missed >= MISSED_OFFERS_BEFORE_AWAY:
            changes["status"] = StaffStatus.away
            changes["missed_offers"] = 0
        await self.broker.update_presence(staff_id, changes)
        if "status" in changes:
            await self.broker.publish(
                staff_channel(staff_id),
                {"type": "status", "status": "away", "reason": "missed_offers"},
            )

    async def settle_queue(self, record: ChatRecord, *, queued: bool) -> None:
        """A waiting chat is in its line's queue exactly while its visitor is here.

        Whoever changes `visitor_connected` moves the chat in the same atomic step (the
        visitor's drop and return); a step that makes a chat wait again decides from the
        record it read (`queued`: whether it queued the chat), and this puts right what a
        drop or a return at that very moment changed, from the record the step left
        (`record`). Whoever leaves it last leaves it right."""
        for _ in range(STATE_RETRIES):
            here = record.visitor_connected
            if not record.waiting or here == queued:
                return
            result = await self.broker.transition(
                record.id,
                Transition(
                    expect=WAITING_STATES,
                    dequeue=not here,
                    enqueue=queue_score(record.priority, record.queued_at) if here else None,
                ),
            )
            if isinstance(result, Refusal):
                return
            record, queued = result, here

    async def keep_transcript(self, chat_id: str, now: float, retention: int) -> None:
        """Three ways to shred when the retention runs out, so that no crash, restart or clock
        jump keeps a transcript longer: a deadline in the broker (any live process), expiry
        of the key and entries in the broker itself (no process alive), and this process's
        monotonic watch (the wall clock jumped back)."""
        await self.transcript.retain(chat_id, retention)
        await self.broker.schedule(deadline_key(Deadline.shred, chat_id), now + retention)
        self.shred_watch[chat_id] = time.monotonic() + retention

    async def shred(self, chat_id: str) -> None:
        """The transcript goes now (its key first); the record, which holds no content, stays
        until it is forgotten."""
        self.shred_watch.pop(chat_id, None)
        await self.broker.cancel(deadline_key(Deadline.shred, chat_id))
        await self.transcript.forget(chat_id)
        record = await self.broker.get_chat(chat_id)
        if record is not None and record.state is ChatState.ended and record.shred_at is not None:
            await self.broker.transition(
                chat_id,
                Transition(expect=frozenset({ChatState.ended}), changes={"shred_at": None}),
            )

    async def line_of(self, chat_id: str) -> str | None:
        record = await self.broker.get_chat(chat_id)
        return record.line if record else None


def withdrawn_offer(record: ChatRecord, now: float) -> dict[str, Any]:
    """The changes that take back an offer that was not the counsellor's doing: the chat waits
    again, nobody has passed on it."""
    return {"state": record.waiting_state, "offered_to": None, "offer_expires_at": now}


class ChatPart:
    """One of the chat services: a responsibility of its own, on the shared core."""

    def __init__(self, core: ChatCore) -> None:
        self.core = core
        self.broker = core.broker
        self.lines = core.lines
        self.transcript = core.transcript
        self.router = core.router
        self.held_rows = core.held_rows
        self.settings = core.settings
        self.counters = core.counters
