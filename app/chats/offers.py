"""Offers and hand-overs: a queued chat offered to one counsellor, accepted, declined or
lapsed; transferred to another line or colleague; returned to the queue when its counsellor
does not come back.

Each is one compare-and-set transition in the broker, so two processes can never give one
chat to two counsellors or push a counsellor over capacity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.broker.base import Refusal, Transition
from app.broker.records import (
    PRIORITY_RETURNED,
    PRIORITY_TRANSFER,
    ChatRecord,
    ChatState,
    queue_score,
)
from app.chats.channels import Deadline, deadline_key, line_channel, staff_channel
from app.chats.core import ChatCore, ChatPart, err, withdrawn_offer
from app.chats.entries import Entry, EntryKind
from app.chats.protocol import ErrorCode, ProtocolError
from app.lines.service import LineConfig
from app.routing.policy import can_take
from app.routing.service import settled_event
from app.staff.service import StaffContext

if TYPE_CHECKING:
    from app.chats.interpreters import Interpreters


def answered_by(staff_id: str, alias: str, now: float, *, first: bool) -> dict[str, Any]:
    """The changes that make a waiting or offered chat this counsellor's (`first`: nobody has
    answered it before, so now is when it was answered)."""
    changes: dict[str, Any] = {
        "state": ChatState.active,
        "counsellor_id": staff_id,
        "counsellor_alias": alias,
        "offered_to": None,
        "offer_expires_at": None,
        "target_counsellor": None,
        "target_until": None,
        "passed": [],
        "transferred": False,
        "wrapup_by": staff_id,
        "counsellor_grace_until": None,
    }
    if first:
        changes["answered_at"] = now
    return changes


class Offers(ChatPart):
    def __init__(self, core: ChatCore, interpreters: Interpreters) -> None:
        super().__init__(core)
        # A chat that leaves its counsellor takes back their request for an interpreter, and
        # the interpreter in it leaves too.
        self.interpreters = interpreters

    async def accept(self, staff_id: str, alias: str, chat_id: str) -> ChatRecord | ProtocolError:
        now = self.broker.now()
        before = await self.broker.get_chat(chat_id)
        changes = answered_by(
            staff_id, alias, now, first=before is not None and before.answered_at is None
        )
        result = await self.broker.transition(
            chat_id,
            Transition(expect=frozenset({ChatState.offered}), offered_to=staff_id, changes=changes),
        )
        if isinstance(result, Refusal):
            if before is None or (before.offered_to != staff_id and staff_id not in before.passed):
                return err(ErrorCode.offer_not_found, "there is no such offer for you", "accept")
            return err(ErrorCode.offer_expired, "the offer has expired", "accept")
        await self.broker.cancel(deadline_key(Deadline.offer, chat_id, staff_id))
        await self.broker.update_presence(staff_id, {"missed_offers": 0})
        await self.joined(result, staff_id, alias, now, answered="answered_at" in changes)
        await self.broker.publish(line_channel(result.line), settled_event(chat_id))
        return result

    async def joined(
        self, record: ChatRecord, staff_id: str, alias: str, now: float, *, answered: bool
    ) -> None:
        """A counsellor has the chat now (accepted, or taken from the queue): the visitor is
        told who joined, the counsellor's consoles follow the chat."""
        if answered:
            self.counters.chat_answered(record.line)
        peer: bool | None = None
        if record.peer_requested:
            # The visitor asked for a peer: they are told whether this counsellor is one.
            presence = await self.broker.get_presence(staff_id)
            peer = bool(presence and presence.peer)
        await self.core.append(
            record, Entry(EntryKind.joined, now, name=alias, staff_id=staff_id, peer=peer)
        )
        await self.broker.publish(
            staff_channel(staff_id),
            {"type": "chat.assigned", "chat_id": record.id, "line": record.line},
        )

    async def auto_accept(self, record: ChatRecord, line: LineConfig) -> None:
        presence = await self.broker.get_presence(record.offered_to or "")
        if presence is not None:
            await self.accept(presence.staff_id, presence.alias, record.id)

    async def decline(self, staff: StaffContext, chat_id: str) -> ProtocolError | None:
        released = await self.release_offer(chat_id, staff.id, missed=False)
        if released is None:
            return err(ErrorCode.offer_not_found, "there is no such offer for you", "decline")
        return None

    async def release_offer(
        self, chat_id: str, staff_id: str, *, missed: bool
    ) -> ChatRecord | None:
        """Put an offered chat back in its queue, at its old place; the counsellor passed."""
        record = await self.broker.get_chat(chat_id)
        if record is None or record.state is not ChatState.offered or record.offered_to != staff_id:
            return None
        now = self.broker.now()
        passed = [*record.passed, staff_id] if staff_id not in record.passed else record.passed
        result = await self.broker.transition(
            chat_id,
            Transition(
                expect=frozenset({ChatState.offered}),
                offered_to=staff_id,
                changes={
                    "state": record.waiting_state,
                    "offered_to": None,
                    "offer_expires_at": now,
                    "passed": passed,
                    "target_counsellor": None,
                    "target_until": None,
                },
                # Back at its place if its visitor is here; out of the queue while away.
                dequeue=not record.visitor_connected,
                enqueue=queue_score(record.priority, record.queued_at)
                if record.visitor_connected
                else None,
                release=staff_id,
            ),
        )
        if isinstance(result, Refusal):
            return None
        await self.core.settle_queue(result, queued=record.visitor_connected)
        await self.broker.cancel(deadline_key(Deadline.offer, chat_id, staff_id))
        await self.broker.publish(
            staff_channel(staff_id),
            {
                "type": "offer.withdrawn",
                "chat_id": chat_id,
                "reason": "expired" if missed else "declined",
            },
        )
        if missed:
            await self.core.offer_missed(staff_id)
        await self.core.queue_changed(result.line, settled=chat_id)
        return result

    async def visitor_gone(self, record: ChatRecord, line: LineConfig) -> None:
        """The router claimed a chat whose visitor had just dropped: undo the offer before the
        counsellor hears of it (the chat waits out the visitor's grace out of the queue)."""
        staff_id = record.offered_to
        if staff_id is None:
            return
        result = await self.broker.transition(
            record.id,
            Transition(
                expect=frozenset({ChatState.offered}),
                offered_to=staff_id,
                changes=withdrawn_offer(record, self.broker.now()),
                dequeue=True,
                release=staff_id,
            ),
        )
        if isinstance(result, Refusal):
            return
        # Back meanwhile (their resume saw an offered chat, so it did not queue it): queue it.
        await self.core.settle_queue(result, queued=False)
        await self.core.queue_changed(result.line, settled=record.id)

    async def offer_gone(self, chat_id: str, staff_id: str) -> None:
        """The counsellor's offer was withdrawn because its visitor dropped."""
        await self.broker.cancel(deadline_key(Deadline.offer, chat_id, staff_id))
        await self.broker.publish(
            staff_channel(staff_id),
            {"type": "offer.withdrawn", "chat_id": chat_id, "reason": "visitor_away"},
        )

    async def transfer(
        self,
        staff: StaffContext,
        chat_id: str,
        *,
        to_line: str | None,
        to_staff: str | None,
        note: str,
    ) -> ChatRecord | ProtocolError:
        """Hand an active chat to another line's queue or to a named colleague, keeping its
        transcript; the note is for staff only."""
        if (to_line is None) == (to_staff is None):
            return err(ErrorCode.invalid_transfer, "name either a line or a colleague", "transfer")
        record = await self.broker.get_chat(chat_id)
        if (
            record is None
            or record.counsellor_id != staff.id
            or record.state is not ChatState.active
        ):
            return err(
                ErrorCode.not_in_chat, "you are not in an active chat with this id", "transfer"
            )
        now = self.broker.now()
        target_line = self.lines.get(to_line or record.line)
        if target_line is None:
            return err(ErrorCode.invalid_transfer, f"there is no line {to_line!r}", "transfer")
        target_until: float | None = None
        if to_staff is not None:
            if to_staff == staff.id:
                return err(
                    ErrorCode.invalid_transfer, "you cannot transfer a chat to yourself", "transfer"
                )
            candidates = {c.staff_id: c for c in await self.router.candidates(target_line.key)}
            colleague = candidates.get(to_staff)
            if colleague is None or not can_take(colleague, target_line, now):
                return err(
                    ErrorCode.staff_unavailable,
                    "that colleague is not on duty, available and free on this line",
                    "transfer",
                )
            target_until = now + target_line.offer_timeout_seconds
        else:
            is_open, _ = await self.router.line_status(target_line)
            if not is_open:
                return err(
                    ErrorCode.invalid_transfer,
                    f"nobody is on duty on {target_line.key!r}",
                    "transfer",
                )
        if note.strip():
            note_entry = Entry(EntryKind.note, now, name=staff.alias, text=note, staff_id=staff.id)
            await self.transcript.add_one(
                chat_id, note_entry, last_seq=record.last_seq, counsellor=staff.id
            )
        result = await self.broker.transition(
            chat_id,
            Transition(
                expect=frozenset({ChatState.active}),
                counsellor=staff.id,
                changes={
                    "state": ChatState.transferring,
                    "line": target_line.key,
                    "counsellor_id": None,
                    "counsellor_alias": None,
                    "priority": PRIORITY_TRANSFER,
                    "transferred": True,
                    "target_counsellor": to_staff,
                    "target_until": target_until,
                    "passed": [staff.id],
                    "offer_expires_at": now,
                },
                enqueue=queue_score(PRIORITY_TRANSFER, record.queued_at)
                if record.visitor_connected
                else None,
                release=staff.id,
            ),
        )
        if isinstance(result, Refusal):
            return err(ErrorCode.not_in_chat, "the chat changed meanwhile", "transfer")
        await self.core.settle_queue(result, queued=record.visitor_connected)
        await self.core.append(
            result, Entry(EntryKind.left, now, reason="transferred", staff_id=staff.id)
        )
        # Until someone answers it, nobody counsels: the interpreter leaves with the counsellor.
        await self.interpreters.counsellor_left(result)
        await self.broker.publish(
            staff_channel(staff.id),
            {"type": "chat.released", "chat_id": chat_id, "reason": "transferred"},
        )
        await self.core.queue_changed(target_line.key)
        return result

    async def transfer_options(
        self, staff: StaffContext, chat_id: str
    ) -> dict[str, Any] | ProtocolError:
        """Where an active chat of this counsellor could be transferred to right now."""
        record = await self.broker.get_chat(chat_id)
        if (
            record is None
            or record.counsellor_id != staff.id
            or record.state is not ChatState.active
        ):
            return err(
                ErrorCode.not_in_chat,
                "you are not in an active chat with this id",
                "transfer.options",
            )
        now = self.broker.now()
        lines = []
        for target in sorted(self.lines.all(), key=lambda c: c.key):
            is_open, _ = await self.router.line_status(target)
            lines.append({"key": target.key, "name": target.name, "open": is_open})
        colleagues = []
        line = self.lines.get(record.line)
        if line is not None:
            for candidate in await self.router.candidates(line.key):
                if candidate.staff_id != staff.id and can_take(candidate, line, now):
                    colleagues.append(
                        {
                            "id": candidate.staff_id,
                            "alias": candidate.presence.alias,
                            "load": candidate.load,
                            "capacity": candidate.presence.capacity,
                        }
                    )
        colleagues.sort(key=lambda c: (str(c["alias"]).casefold(), str(c["id"])))
        return {"chat_id": chat_id, "line": record.line, "lines": lines, "staff": colleagues}

    async def return_to_queue(self, chat_id: str, staff_id: str, *, force: bool = False) -> None:
        """A counsellor who dropped did not come back: the chat goes to the head of the queue."""
        connections = await self.broker.connection_counts([staff_id])
        if connections.get(staff_id, 0) > 0 and not force:
            return
        record = await self.broker.get_chat(chat_id)
        if (
            record is None
            or record.state is not ChatState.active
            or record.counsellor_id != staff_id
        ):
            return
        now = self.broker.now()
        result = await self.broker.transition(
            chat_id,
            Transition(
                expect=frozenset({ChatState.active}),
                counsellor=staff_id,
                changes={
                    "state": ChatState.queued,
                    "counsellor_id": None,
                    "counsellor_alias": None,
                    "counsellor_grace_until": None,
                    "priority": PRIORITY_RETURNED,
                    "passed": [staff_id],
                    "offer_expires_at": now,
                },
                enqueue=queue_score(PRIORITY_RETURNED, record.queued_at)
                if record.visitor_connected
                else None,
                release=staff_id,
            ),
        )
        if isinstance(result, Refusal):
            return
        await self.core.settle_queue(result, queued=record.visitor_connected)
        await self.core.append(
            result, Entry(EntryKind.left, now, reason="counsellor_disconnected", staff_id=staff_id)
        )
        await self.interpreters.counsellor_left(result)
        await self.broker.publish(
            staff_channel(staff_id),
            {"type": "chat.released", "chat_id": chat_id, "reason": "grace_expired"},
        )
        await self.core.queue_changed(result.line)
