"""Deadlines and shredding: whatever falls due is handled by whichever process is alive.

Deadlines (offer timeouts, grace periods, leases of connections whose process died, shredding
and forgetting ended chats) are stored in the broker (app/chats/channels.py names them); a
sweep finds live chats that a dead process left behind.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from app.broker.base import Refusal, Transition
from app.broker.records import WAITING_STATES, ChatState
from app.chats.channels import (
    VISITOR_LEASE_PREFIX,
    Deadline,
    chat_channel,
    deadline_key,
    parse_deadline,
    visitor_lease,
)
from app.chats.core import ChatCore, ChatPart
from app.chats.entries import Entry, EntryKind
from app.chats.interpreters import Interpreters

if TYPE_CHECKING:
    from app.chats.care import Care
    from app.chats.lifecycle import Lifecycle
    from app.chats.offers import Offers
    from app.chats.staffing import Staffing

# Chats read at a time when sweeping a line for abandoned ones.
SWEEP_PAGE = 100
# A lease's deadline came due while its connection still counts: look again this much later.
# The deadline is set from this process's reading of the broker's clock before a round trip,
# the connection's expiry by the broker's own clock after it, so the deadline can come first.
LEASE_RECHECK_SECONDS = 1.0


class Deadlines(ChatPart):
    def __init__(
        self,
        core: ChatCore,
        lifecycle: Lifecycle,
        offers: Offers,
        staffing: Staffing,
        interpreters: Interpreters,
        care: Care,
    ) -> None:
        super().__init__(core)
        self.interpreters = interpreters
        self.lifecycle = lifecycle
        self.offers = offers
        self.staffing = staffing
        self.care = care

    async def handle(self, key: str) -> None:
        parsed = parse_deadline(key)
        if parsed is None:
            return
        kind, parts = parsed
        if kind is Deadline.offer and len(parts) == 2:
            if await self.offers.release_offer(parts[0], parts[1], missed=True) is not None:
                self.router.kick((await self.core.line_of(parts[0])) or "")
        elif kind is Deadline.interpreter_offer and len(parts) == 2:
            await self.interpreters.decline(parts[1], parts[0], missed=True)
        elif kind is Deadline.visitor_grace and len(parts) == 1:
            await self._visitor_grace_over(parts[0])
        elif kind is Deadline.counsellor_grace and len(parts) == 2:
            await self.offers.return_to_queue(parts[0], parts[1])
        elif kind is Deadline.care_pause and len(parts) == 1:
            await self.care.pause_over(parts[0])
        elif kind is Deadline.forget and len(parts) == 1:
            await self.forget(parts[0])
        elif kind is Deadline.shred and len(parts) == 1:
            await self.core.shred(parts[0])
        elif kind is Deadline.booking_wait and len(parts) == 1:
            await self._booking_wait_over(parts[0])
        elif kind is Deadline.visitor_lease and len(parts) == 1:
            # The process holding the visitor died: the grace period starts now (unless the
            # visitor holds a connection elsewhere already).
            record = await self.broker.get_chat(parts[0])
            lease = visitor_lease(parts[0])
            if record is None or not record.visitor_connected:
                return
            if (await self.broker.connection_counts([lease])).get(lease, 0) == 0:
                await self.lifecycle.visitor_disconnected(parts[0])
            else:
                await self._recheck(key)
        elif kind is Deadline.counsellor_lease and len(parts) == 1:
            # The process holding the counsellor died: their chats wait out the grace.
            connections = await self.broker.connection_counts([parts[0]])
            if connections.get(parts[0], 0) == 0:
                await self.staffing.counsellor_disconnected(parts[0])
            else:
                await self._recheck(key)

    async def _booking_wait_over(self, chat_id: str) -> None:
        """A booked chat's counsellor did not come within the wait: the visitor is told,
        and the chat waits for anyone, at its place (a transition, so whichever process
        pops this deadline tells the visitor once)."""
        record = await self.broker.get_chat(chat_id)
        if record is None or not record.booked or record.state not in WAITING_STATES:
            return
        result = await self.broker.transition(
            chat_id,
            Transition(
                expect=WAITING_STATES,
                changes={"target_counsellor": None, "target_until": None, "booked": False},
            ),
        )
        if isinstance(result, Refusal):
            return
        await self.transcript.add_one(
            chat_id, Entry(EntryKind.booking_missed, self.broker.now()), last_seq=result.last_seq
        )
        await self.core.queue_changed(result.line)

    async def _recheck(self, key: str) -> None:
        """A lease still counts: if its process lives, its next renewal moves this deadline
        on; if not, the lease lapses and the next look starts the grace period."""
        await self.broker.schedule(key, self.broker.now() + LEASE_RECHECK_SECONDS)

    async def _visitor_grace_over(self, chat_id: str) -> None:
        record = await self.broker.get_chat(chat_id)
        if record is None or record.visitor_connected or record.state is ChatState.ended:
            return
        lease = visitor_lease(chat_id)
        if (await self.broker.connection_counts([lease])).get(lease, 0) > 0:
            # The visitor is back on a connection whose resume raced this deadline.
            result = await self.lifecycle.visitor_back(record)
            if result is not None:
                await self.broker.publish(
                    chat_channel(chat_id), {"type": "visitor.back", "chat_id": chat_id}
                )
                if result.waiting:
                    await self.core.queue_changed(result.line)
            return
        await self.lifecycle.end(chat_id, by="system", reason="visitor_left")

    async def sweep(self) -> int:
        """Find live chats whose visitor's process died (no lease, yet marked connected) and
        start their grace period, so an abandoned chat ends and is shredded in any state.
        Runs at start-up and now and then; returns how many it found."""
        found = 0
        for line in self.lines.all():
            lost = await self.broker.unleased_chats(line.key, VISITOR_LEASE_PREFIX, SWEEP_PAGE)
            for chat_id in lost:
                await self.lifecycle.visitor_disconnected(chat_id)
                found += 1
        return found

    async def shred_overdue(self) -> None:
        """Shred what this process saw end whose retention ran out by the monotonic clock."""
        now = time.monotonic()
        for chat_id in [c for c, due in self.core.shred_watch.items() if due <= now]:
            await self.core.shred(chat_id)

    async def forget(self, chat_id: str) -> None:
        record = await self.broker.get_chat(chat_id)
        if record is not None and record.state is not ChatState.ended:
            return
        self.core.shred_watch.pop(chat_id, None)
        await self.broker.cancel(deadline_key(Deadline.shred, chat_id))
        await self.transcript.forget(chat_id)
        await self.broker.delete_chat(chat_id)
        if record is not None and record.wrapup_by:
            # The window lapsed without a wrap-up: it is no longer owed.
            await self.broker.settle_wrapup(record.wrapup_by, chat_id)
