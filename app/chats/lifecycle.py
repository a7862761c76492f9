"""A chat's life from the visitor's side: start, resume, drop, end and exit.

A chat starts queued (or is refused at once, with the line's alternatives), is resumed with
its token after a drop, waits out the visitor's grace when they go, and ends: by the visitor,
the counsellor, quick exit, or the system. Ending frees the counsellor, counts the chat in
the statistics, shreds its transcript now or after the line's retention, and asks the
counsellor for the wrap-up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.abuse.ratelimit import ClientTag
from app.broker.base import Refusal, Transition
from app.broker.records import (
    LIVE_STATES,
    PRIORITY_CONTINUITY,
    PRIORITY_NORMAL,
    WAITING_STATES,
    ChatRecord,
    ChatState,
    queue_score,
)
from app.chats.channels import Deadline, chat_channel, deadline_key, staff_channel, visitor_lease
from app.chats.core import STATE_RETRIES, ChatCore, ChatPart, err, withdrawn_offer
from app.chats.entries import Entry, EntryKind
from app.chats.lost import LostChat, lost_chat
from app.chats.protocol import ErrorCode, ProtocolError
from app.chats.wrapups import wrapup_required
from app.kit.ids import new_chat_id, new_token, token_digest, tokens_match
from app.lines.service import LineConfig
from app.models.enums import ChatOutcome
from app.routing.policy import Staffing
from app.routing.service import duration_key
from app.staff.service import StaffContext
from app.stats.recorder import ChatFacts

if TYPE_CHECKING:
    from app.chats.care import Care
    from app.chats.interpreters import Interpreters
    from app.chats.offers import Offers

# How long an ended chat's record (no content) stays so a returning visitor hears "ended".
ENDED_RECORD_SECONDS = 300
RECENT_DURATIONS = 50
RECENT_DURATIONS_TTL = 7 * 24 * 3600
# An ended chat's record disappears from the broker by itself this long after it is due to be
# forgotten, even if no process is alive to forget it.
RECORD_BACKSTOP_SECONDS = 60.0

# Whether the visitor on a connection may reach a line (by key): a practice line's chats are
# its players' alone (app/lines/public.py, `hidden`).
Admit = Callable[[str], Awaitable[bool]]


def unknown_line(line_key: str) -> ProtocolError:
    return err(ErrorCode.unknown_line, f"there is no line {line_key[:32]!r}", "start")


@dataclass(frozen=True, slots=True)
class Started:
    record: ChatRecord
    token: str
    position: int
    language_fallback: bool
    # Who answered the line when the chat started (for the first wait estimate).
    staffing: Staffing


@dataclass(frozen=True, slots=True)
class Returning:
    """A returning visitor's chat goes to their counsellor first (app/continuity)."""

    staff_id: str
    alias: str
    note: str
    wait_seconds: float
    # The code's keyed digest (for booking times in this chat).
    digest: str | None = None
    # A booked chat (app/bookings): waits for the counsellor even before they are here.
    booked: bool = False


@dataclass(frozen=True, slots=True)
class LineUnavailable:
    """The visitor is told at once that nobody can answer, with the line's alternatives."""

    line: LineConfig
    language: str
    reason: str  # "closed" or "full"

    def frame(self, next_open_at: float | None = None) -> dict[str, Any]:
        """The `line.closed` frame; `next_open_at` is when the roster next opens the line."""
        line = self.line
        return {
            "type": "line.closed",
            "line": line.key,
            "reason": self.reason,
            "message": line.text(line.closed_message, self.language),
            "alternatives": line.text(line.alternatives, self.language),
            "opening_hours": line.text(line.opening_hours, self.language),
            "next_open_at": next_open_at if self.reason == "closed" else None,
        }


class Lifecycle(ChatPart):
    def __init__(
        self, core: ChatCore, offers: Offers, care: Care, interpreters: Interpreters
    ) -> None:
        super().__init__(core)
        self.offers = offers
        self.care = care
        self.interpreters = interpreters

    async def start(
        self,
        line_key: str,
        language: str,
        *,
        peer: bool = False,
        tag: ClientTag | None = None,
        connection: str | None = None,
        returning: Returning | None = None,
    ) -> Started | LineUnavailable | ProtocolError:
        """Open a chat for a visitor; `tag` is their keyed address hash, `connection` their
        connection's id (its lease tells other processes the visitor is still there);
        `returning`: offered to that counsellor first, with priority."""
        line = self.lines.get(line_key)
        if line is None:
            return unknown_line(line_key)
        self.counters.chat_requested(line.key)
        fallback = language not in line.languages
        if fallback:
            language = line.languages[0]
        if tag is not None and await self.core.blocks.is_blocked(tag):
            # Neutral on purpose: the visitor is not told they were blocked.
            return LineUnavailable(line, language, "unavailable")
        now = self.broker.now()
        staffing = await self.router.staffing(line)
        if not staffing.open:
            await self.held_rows.hold(
                ChatFacts(line.key, now, None, None, ChatOutcome.closed).row()
            )
            self.counters.chat_turned_away(line.key, "closed")
            return LineUnavailable(line, language, "closed")
        token = new_token()
        priority = PRIORITY_NORMAL if returning is None else PRIORITY_CONTINUITY
        record = ChatRecord(
            id=new_chat_id(),
            line=line.key,
            language=language,
            state=ChatState.queued,
            resume_digest=token_digest(token),
            created_at=now,
            queued_at=now,
            priority=priority,
            peer_requested=peer,
            visitor_tag=tag.current if tag is not None else None,
        )
        if returning is not None:
            record.continuity_for = returning.staff_id
            record.target_counsellor = returning.staff_id
            record.target_until = now + returning.wait_seconds
            record.code_digest = returning.digest
            record.booked = returning.booked
        # The key and the lease exist before the chat does, so no other process ever sees
        # the chat without them.
        await self.transcript.begin(record.id)
        if connection is not None:
            await self.broker.connect(
                visitor_lease(record.id), connection, self.core.visitor_lease_seconds
            )
        # Queued at the broker's clock as it stores the chat, not at `now`: another process
        # may queue a later arrival meanwhile (see Broker.create_chat).
        queued = await self.broker.create_chat(record, queue_limit=line.max_queue_length)
        if queued is None:
            await self.transcript.forget(record.id)
            if connection is not None:
                await self.broker.disconnect(visitor_lease(record.id), connection)
            await self.held_rows.hold(ChatFacts(line.key, now, None, None, ChatOutcome.full).row())
            self.counters.chat_turned_away(line.key, "full")
            return LineUnavailable(line, language, "full")
        if returning is not None and returning.note:
            # Sealed in the transcript for its author alone: shredded with the chat.
            handover = Entry(
                EntryKind.handover,
                now,
                name=returning.alias,
                text=returning.note,
                staff_id=returning.staff_id,
            )
            await self.transcript.add_one(record.id, handover, last_seq=0)
        record.queued_at = queued.queued_at
        if returning is not None and returning.booked and record.target_until is not None:
            # If the counsellor has not come by then, the visitor is told and anyone answers.
            await self.broker.schedule(
                deadline_key(Deadline.booking_wait, record.id), record.target_until
            )
        await self.core.queue_changed(line.key)
        return Started(record, token, queued.position, fallback, staffing)

    async def resume(
        self,
        chat_id: str,
        token: str,
        *,
        connection: str | None = None,
        admit: Admit | None = None,
    ) -> ChatRecord | LostChat | ProtocolError:
        """Back in the chat; or it was lost with the broker's data (app/chats/lost.py). A chat
        on a line `admit` refuses is answered as one that does not exist."""
        record = await self.broker.get_chat(chat_id)
        if record is None:
            lost = await lost_chat(self.broker, chat_id)
            if lost is not None:
                return lost
        if (
            record is None
            or not tokens_match(token, record.resume_digest)
            or (admit is not None and not await admit(record.line))
        ):
            return err(ErrorCode.invalid_resume, "no chat matches this resume token", "resume")
        if record.state is ChatState.ended:
            return err(ErrorCode.chat_ended, "the chat has ended", "resume")
        if connection is not None:
            await self.broker.connect(
                visitor_lease(chat_id), connection, self.core.visitor_lease_seconds
            )
        result = await self.visitor_back(record)
        if result is None:
            return err(ErrorCode.chat_ended, "the chat has ended", "resume")
        await self.broker.cancel(deadline_key(Deadline.visitor_grace, chat_id))
        channel = chat_channel(chat_id)
        if record.visitor_connected:
            # Back on a new connection while still counted as here: the old one was lost
            # unnoticed (its process was killed, or the network dropped it without a close).
            # Counsellors hear that the visitor went before they hear that they are back.
            line = self.lines.get(record.line)
            until = self.broker.now() + (line.visitor_grace_seconds if line else 60)
            await self.broker.publish(
                channel, {"type": "visitor.away", "chat_id": chat_id, "grace_until": until}
            )
        await self.broker.publish(channel, {"type": "visitor.back", "chat_id": chat_id})
        if result.waiting:
            await self.core.queue_changed(result.line)
        return result

    async def visitor_back(self, record: ChatRecord) -> ChatRecord | None:
        """The visitor is here again: a waiting chat goes back into its queue, at the place its
        priority and time waited give it, in the same step (None: the chat has ended)."""
        for _ in range(STATE_RETRIES):
            back = {"visitor_connected": True, "visitor_grace_until": None}
            if record.waiting:
                change = Transition(
                    expect=WAITING_STATES,
                    changes=back,
                    enqueue=queue_score(record.priority, record.queued_at),
                )
            else:
                change = Transition(expect=LIVE_STATES - WAITING_STATES, changes=back)
            result = await self.broker.transition(record.id, change)
            if not isinstance(result, Refusal):
                return result
            if result is not Refusal.state:
                return None
            fresh = await self.broker.get_chat(record.id)
            if fresh is None or fresh.state is ChatState.ended:
                return None
            record = fresh
        return None

    async def visitor_end(self, chat_id: str) -> ProtocolError | None:
        ended = await self.end(chat_id, by="visitor", reason="visitor_ended")
        return None if ended else err(ErrorCode.chat_ended, "the chat has ended", "end")

    async def visitor_exit(self, chat_id: str) -> None:
        """Quick exit: the chat ends if it has not, and its transcript is shredded now,
        whatever the line's retention. The content-free record stays for the wrap-up."""
        record = await self.broker.get_chat(chat_id)
        if record is None:
            return
        if record.state is not ChatState.ended:
            await self.end(chat_id, by="visitor", reason="visitor_exit", shred_now=True)
            return
        await self.core.shred(chat_id)

    async def exit_with_token(self, chat_id: str, token: str) -> bool:
        """Quick exit for a caller that proves the chat is theirs with its resume token."""
        record = await self.broker.get_chat(chat_id)
        if record is None or not tokens_match(token, record.resume_digest):
            return False
        await self.visitor_exit(chat_id)
        return True

    async def visitor_disconnected(self, chat_id: str, connection: str | None = None) -> None:
        """A visitor connection dropped (or, `connection` None, its process is gone)."""
        if connection is not None:
            remaining = await self.broker.disconnect(visitor_lease(chat_id), connection)
            if remaining > 0:
                return  # the visitor is still here on another connection
        away = await self._visitor_away(chat_id)
        if away is None:
            return
        record, until = away
        await self.broker.schedule(deadline_key(Deadline.visitor_grace, chat_id), until)
        await self.broker.cancel(deadline_key(Deadline.visitor_lease, chat_id))
        await self.broker.publish(
            chat_channel(chat_id),
            {"type": "visitor.away", "chat_id": chat_id, "grace_until": until},
        )
        if record.state is ChatState.offered and record.offered_to:
            await self.offers.offer_gone(record.id, record.offered_to)
            await self.core.queue_changed(record.line, settled=chat_id)
        elif record.waiting:
            await self.core.queue_changed(record.line)

    async def _visitor_away(self, chat_id: str) -> tuple[ChatRecord, float] | None:
        """Mark the visitor away until the end of their grace period: (the record before, the
        end of the grace), or None if the chat has ended or they were marked away already.

        A waiting chat leaves its queue meanwhile (its place is kept: it is its priority and
        time waited), so nobody is told a place behind someone absent and offers go to those
        present; an offer made to them is withdrawn, as it would only hold a counsellor's place.
        """
        for _ in range(STATE_RETRIES):
            record = await self.broker.get_chat(chat_id)
            if record is None or record.state is ChatState.ended or not record.visitor_connected:
                return None
            line = self.lines.get(record.line)
            now = self.broker.now()
            until = now + (line.visitor_grace_seconds if line else 60)
            away: dict[str, Any] = {"visitor_connected": False, "visitor_grace_until": until}
            if record.state is ChatState.offered and record.offered_to:
                change = Transition(
                    expect=frozenset({ChatState.offered}),
                    offered_to=record.offered_to,
                    changes={**away, **withdrawn_offer(record, now)},
                    dequeue=True,
                    release=record.offered_to,
                )
            else:
                change = Transition(
                    expect=LIVE_STATES - {ChatState.offered}, changes=away, dequeue=True
                )
            result = await self.broker.transition(chat_id, change)
            if not isinstance(result, Refusal):
                return record, until
            if result is Refusal.missing:
                return None
        return None

    async def staff_end(self, staff: StaffContext, chat_id: str) -> ProtocolError | None:
        record = await self.broker.get_chat(chat_id)
        if record is None or record.counsellor_id != staff.id:
            return err(ErrorCode.not_in_chat, "you are not in this chat", "end")
        if record.state is not ChatState.active:
            return err(ErrorCode.invalid_state, f"the chat is {record.state.value}", "end")
        ended = await self.end(
            chat_id, by="counsellor", reason="counsellor_ended", counsellor=staff.id
        )
        return None if ended else err(ErrorCode.chat_ended, "the chat has ended", "end")

    async def block(self, staff: StaffContext, chat_id: str) -> float | ProtocolError:
        """The counsellor blocks the chat's visitor: the chat ends (the visitor sees an ordinary
        end) and new chats from the same keyed hash are refused until the returned time."""
        record = await self.broker.get_chat(chat_id)
        if record is None or record.counsellor_id != staff.id:
            return err(ErrorCode.not_in_chat, "you are not in this chat", "block")
        if record.state not in (ChatState.active, ChatState.ended):
            return err(ErrorCode.invalid_state, f"the chat is {record.state.value}", "block")
        if record.visitor_tag is None:
            return err(ErrorCode.invalid_state, "this chat's visitor cannot be blocked", "block")
        seconds = self.settings.block_seconds
        await self.core.blocks.block(record.visitor_tag, seconds)
        if record.state is ChatState.active:
            await self.end(chat_id, by="counsellor", reason="counsellor_ended", counsellor=staff.id)
        return self.broker.now() + seconds

    async def end_waiting_on_closed_line(self, line: str) -> int:
        """Nobody is on duty any more: waiting visitors are told at once, not left waiting."""
        ended = 0
        for chat_id, _ in await self.broker.queue(line):
            if await self.end(chat_id, by="system", reason="line_closed", expect=WAITING_STATES):
                ended += 1
        return ended

    async def end(
        self,
        chat_id: str,
        *,
        by: str,
        reason: str,
        counsellor: str | None = None,
        expect: frozenset[ChatState] = LIVE_STATES,
        shred_now: bool = False,
    ) -> bool:
        record = await self.broker.get_chat(chat_id)
        if record is None or record.state not in expect:
            return False
        now = self.broker.now()
        holder = record.offered_to or record.counsellor_id
        line = self.lines.get(record.line)
        retention = 0 if shred_now or line is None else line.transcript_retention_seconds
        # An active chat's counsellor owes its wrap-up: listed by the broker in the same step
        # as the end, so the form comes back after a reload whatever happens next.
        owes = record.wrapup_by if record.state is ChatState.active else None
        result = await self.broker.transition(
            chat_id,
            Transition(
                expect=expect,
                counsellor=counsellor,
                changes={
                    "state": ChatState.ended,
                    "ended_at": now,
                    "ended_by": by,
                    "end_reason": reason,
                    "offered_to": None,
                    "shred_at": now + retention if retention else None,
                },
                dequeue=True,
                release=holder,
                owe_wrapup=(owes, self.settings.wrapup_window_seconds) if owes else None,
            ),
        )
        if isinstance(result, Refusal):
            return False
        await self.core.publish_end(result, Entry(EntryKind.ended, now, sender=by, reason=reason))
        await self.interpreters.chat_ended(result)
        if record.state is ChatState.offered and record.offered_to:
            await self.broker.cancel(deadline_key(Deadline.offer, chat_id, record.offered_to))
            await self.broker.publish(
                staff_channel(record.offered_to),
                {"type": "offer.withdrawn", "chat_id": chat_id, "reason": "ended"},
            )
        await self.broker.cancel(deadline_key(Deadline.visitor_grace, chat_id))
        await self.broker.cancel(deadline_key(Deadline.visitor_lease, chat_id))
        if record.counsellor_id:
            await self.broker.cancel(
                deadline_key(Deadline.counsellor_grace, chat_id, record.counsellor_id)
            )
        await self._record_facts(result, reason)
        await self.care.chat_ended(record, result)
        if result.answered_at is not None:
            await self.broker.push_recent(
                duration_key(result.line),
                now - result.answered_at,
                RECENT_DURATIONS,
                RECENT_DURATIONS_TTL,
            )
        # The transcript goes now, or when the line's retention runs out; the record (no
        # content) stays for the wrap-up and so a returning visitor is told the chat ended.
        if retention:
            await self.core.keep_transcript(chat_id, now, retention)
        else:
            await self.transcript.forget(chat_id)
        wrapup_due = result.wrapup_by is not None and record.state in {ChatState.active}
        if not wrapup_due and result.wrapup_by is not None:
            await self.broker.transition(
                chat_id,
                Transition(expect=frozenset({ChatState.ended}), changes={"wrapup_by": None}),
            )
        keep = max(
            self.settings.wrapup_window_seconds if wrapup_due else ENDED_RECORD_SECONDS,
            retention,
        )
        await self.broker.schedule(deadline_key(Deadline.forget, chat_id), now + keep)
        await self.broker.expire_chat(chat_id, record=keep + RECORD_BACKSTOP_SECONDS)
        if wrapup_due and result.wrapup_by:
            await self.broker.publish(
                staff_channel(result.wrapup_by), wrapup_required(result, self.lines)
            )
        if record.state is ChatState.offered:
            await self.core.queue_changed(result.line, settled=chat_id)
        elif record.state in WAITING_STATES:
            await self.core.queue_changed(result.line)
        else:
            self.router.kick(result.line)
        return True

    async def _record_facts(self, record: ChatRecord, reason: str) -> None:
        ended_at = record.ended_at or record.created_at
        if record.answered_at is not None:
            facts = ChatFacts(
                record.line,
                record.created_at,
                round(record.answered_at - record.created_at),
                round(ended_at - record.answered_at),
                ChatOutcome.answered,
                risk=record.risk or "none",
                in_danger=record.in_danger,
            )
        else:
            outcome = ChatOutcome.closed if reason == "line_closed" else ChatOutcome.abandoned
            facts = ChatFacts(
                record.line,
                record.created_at,
                round(ended_at - record.created_at),
                None,
                outcome,
                risk=record.risk or "none",
                in_danger=record.in_danger,
            )
        await self.held_rows.hold(facts.row())
        if facts.outcome is ChatOutcome.abandoned:
            self.counters.chat_abandoned(record.line)
