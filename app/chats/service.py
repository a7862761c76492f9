"""The chat service: every state change of a chat, from start to wrap-up.

State lives in the broker and changes only through atomic transitions, so this code may run
in several processes at once. Events go out on channels (see channels.py); the WebSocket
adapters turn them into frames. Nothing here logs or stores message text outside the
transcript, and nothing here sees a network address.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.abuse.blocks import Blocks
from app.abuse.ratelimit import ClientTag
from app.broker.base import Broker, Quota, Refusal, Transition
from app.broker.hub import LOCAL_ENTRY
from app.broker.records import (
    LIVE_STATES,
    PRIORITY_CONTINUITY,
    PRIORITY_NORMAL,
    PRIORITY_RETURNED,
    PRIORITY_TRANSFER,
    WAITING_STATES,
    ChatRecord,
    ChatState,
    StaffStatus,
    queue_score,
)
from app.chats.channels import (
    VISITOR_LEASE_PREFIX,
    Deadline,
    chat_channel,
    deadline_key,
    line_channel,
    parse_deadline,
    staff_channel,
    visitor_lease,
)
from app.chats.protocol import ErrorCode, ProtocolError, check_text
from app.chats.transcript import Added, Adding, Announce, Entry, EntryKind, Transcript
from app.kit.clock import hour_bucket
from app.kit.ids import new_chat_id, new_token, token_digest, tokens_match
from app.lines.directory import LineDirectory
from app.lines.service import LineConfig
from app.models import Wrapup
from app.models.enums import ChatOutcome
from app.routing.policy import Staffing, can_take
from app.routing.service import Router, duration_key, settled_event
from app.settings import Settings
from app.staff.service import StaffContext
from app.stats.counters import ChatCounters
from app.stats.recorder import ChatFacts, StatsRecorder

logger = logging.getLogger(__name__)

# Offers a counsellor may let lapse in a row before they are set to away.
MISSED_OFFERS_BEFORE_AWAY = 2
# How long an ended chat's record (no content) stays so a returning visitor hears "ended".
ENDED_RECORD_SECONDS = 300
RECENT_DURATIONS = 50
RECENT_DURATIONS_TTL = 7 * 24 * 3600
# A visitor connection's lease in the broker lapses this long after its process stopped
# refreshing it (the heartbeat refreshes it); then the chat waits out the visitor's grace.
VISITOR_LEASE_MIN_SECONDS = 15.0
# An ended chat's record disappears from the broker by itself this long after it is due to be
# forgotten, even if no process is alive to forget it.
RECORD_BACKSTOP_SECONDS = 60.0
# Chats read at a time when sweeping a line for abandoned ones.
SWEEP_PAGE = 100
# How often a step that depends on a chat's state is tried again when another process changed
# the state in between (each retry needs yet another change at that very moment).
STATE_RETRIES = 5


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


def _entry_event(
    chat_id: str, seq: int, entry: Entry, origin: str | None, sealed: bytes | None = None
) -> dict[str, Any]:
    # Listeners in this process get the entry itself ("_" fields stay in the process);
    # what someone wrote crosses to other processes only sealed, as it is stored.
    event: dict[str, Any] = {
        "type": "entry",
        "chat_id": chat_id,
        "seq": seq,
        "origin": origin,
        LOCAL_ENTRY: entry,
    }
    if entry.content and sealed is not None:
        event["sealed"] = sealed
    else:
        event["entry"] = entry.to_dict()
    return event


def _visitor_dedupe(client_id: str | None) -> str | None:
    """The key a visitor's message is known by in the chat (a resend is not stored twice)."""
    return f"v:{client_id}" if client_id else None


def _visitor_added(added: Added) -> tuple[int, bool] | ProtocolError:
    """What a visitor's message came to: (seq, whether it was a duplicate), or why not."""
    seq, status = added
    if status == "ended":
        return MESSAGE_AFTER_END
    if status == "limited":
        return _err(ErrorCode.rate_limited, "too many messages; slow down", "message")
    return seq, status == "duplicate"


def _err(code: ErrorCode, message: str, ref: str | None = None) -> ProtocolError:
    return ProtocolError(code, message, ref)


def _offer_withdrawn(record: ChatRecord, now: float) -> dict[str, Any]:
    """The changes that take back an offer that was not the counsellor's doing: the chat waits
    again, nobody has passed on it."""
    return {"state": record.waiting_state, "offered_to": None, "offer_expires_at": now}


# The answer to a visitor's message once the chat has ended.
MESSAGE_AFTER_END = _err(ErrorCode.chat_ended, "the chat has ended", "message")


class ChatService:
    def __init__(
        self,
        *,
        broker: Broker,
        lines: LineDirectory,
        transcript: Transcript,
        router: Router,
        recorder: StatsRecorder,
        settings: Settings,
        counters: ChatCounters | None = None,
        blocks: Blocks,
    ) -> None:
        self.broker = broker
        self.lines = lines
        self.transcript = transcript
        self.router = router
        self.recorder = recorder
        self.settings = settings
        self.counters = counters or ChatCounters()
        self.blocks = blocks
        self.visitor_lease_seconds = max(settings.heartbeat_seconds * 3, VISITOR_LEASE_MIN_SECONDS)
        # Transcripts this process saw end with a retention: chat id -> monotonic due time. A
        # jump of the wall clock (which deadlines use) cannot delay these.
        self._shred_watch: dict[str, float] = {}
        router.auto_accept = self._auto_accept
        router.visitor_gone = self._visitor_gone

    # Visitor side ---------------------------------------------------------------------------

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
            return _err(ErrorCode.unknown_line, f"there is no line {line_key[:32]!r}", "start")
        self.counters.chat_requested(line.key)
        fallback = language not in line.languages
        if fallback:
            language = line.languages[0]
        if tag is not None and await self.blocks.is_blocked(tag):
            # Neutral on purpose: the visitor is not told they were blocked.
            return LineUnavailable(line, language, "unavailable")
        now = self.broker.now()
        staffing = await self.router.staffing(line)
        if not staffing.open:
            self.recorder.record(ChatFacts(line.key, now, None, None, ChatOutcome.closed))
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
        # The key and the lease exist before the chat does, so no other process ever sees
        # the chat without them.
        await self.transcript.begin(record.id)
        if connection is not None:
            await self.broker.connect(
                visitor_lease(record.id), connection, self.visitor_lease_seconds
            )
        position = await self.broker.create_chat(
            record, queue_limit=line.max_queue_length, score=queue_score(priority, now)
        )
        if position is None:
            await self.transcript.forget(record.id)
            if connection is not None:
                await self.broker.disconnect(visitor_lease(record.id), connection)
            self.recorder.record(ChatFacts(line.key, now, None, None, ChatOutcome.full))
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
            await self.transcript.add(
                record.id, handover, last_seq=0, announce=self.announce(record.id, None)
            )
        await self._queue_changed(line.key)
        return Started(record, token, position, fallback, staffing)

    async def resume(
        self, chat_id: str, token: str, *, connection: str | None = None
    ) -> ChatRecord | ProtocolError:
        record = await self.broker.get_chat(chat_id)
        if record is None or not tokens_match(token, record.resume_digest):
            return _err(ErrorCode.invalid_resume, "no chat matches this resume token", "resume")
        if record.state is ChatState.ended:
            return _err(ErrorCode.chat_ended, "the chat has ended", "resume")
        if connection is not None:
            await self.broker.connect(
                visitor_lease(chat_id), connection, self.visitor_lease_seconds
            )
        result = await self._visitor_back(record)
        if result is None:
            return _err(ErrorCode.chat_ended, "the chat has ended", "resume")
        await self.broker.cancel(deadline_key(Deadline.visitor_grace, chat_id))
        await self.broker.publish(
            chat_channel(chat_id), {"type": "visitor.back", "chat_id": chat_id}
        )
        if result.waiting:
            await self._queue_changed(result.line)
        return result

    async def _visitor_back(self, record: ChatRecord) -> ChatRecord | None:
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

    async def visitor_messages(
        self,
        chat_id: str,
        line_key: str,
        burst: list[tuple[str, str | None]],
        *,
        last_seq: int,
        origin: str,
        quota: Quota | None = None,
    ) -> list[tuple[int, bool] | ProtocolError]:
        """Store and deliver a visitor's messages (text, client id), read together, in one
        trip to the broker: for each (seq, whether it was a duplicate), or why not. `quota` is
        the client's message limit, counted with the append."""
        # Per message, why it is refused (None: it goes to the broker).
        refused: list[ProtocolError | None] = []
        adding: list[Adding] = []
        announce = self.announce(chat_id, origin)
        for text, client_id in burst:
            entry = self._visitor_entry(line_key, text, client_id)
            if isinstance(entry, ProtocolError):
                refused.append(entry)
                continue
            refused.append(None)
            adding.append((entry, _visitor_dedupe(client_id), announce))
        added = iter(
            await self.transcript.add_burst(chat_id, adding, last_seq=last_seq, quota=quota)
            if adding
            else []
        )
        return [_visitor_added(next(added)) if why is None else why for why in refused]

    def visitor_message_now(
        self,
        chat_id: str,
        line_key: str,
        text: str,
        client_id: str | None,
        *,
        last_seq: int,
        origin: str,
        quota: Quota | None = None,
    ) -> tuple[int, bool] | ProtocolError | None:
        """One message without waiting, when nothing needs it (Transcript.add_now); None when
        `visitor_messages` must do it, and nothing was stored."""
        entry = self._visitor_entry(line_key, text, client_id)
        if isinstance(entry, ProtocolError):
            return entry
        added = self.transcript.add_now(
            chat_id,
            entry,
            last_seq=last_seq,
            dedupe=_visitor_dedupe(client_id),
            announce=self.announce(chat_id, origin),
            quota=quota,
        )
        return None if added is None else _visitor_added(added)

    def _visitor_entry(
        self, line_key: str, text: str, client_id: str | None
    ) -> Entry | ProtocolError:
        line = self.lines.get(line_key)
        problem = check_text(text, line.max_message_length if line else 4000)
        if problem is not None:
            return problem
        return Entry(
            EntryKind.message, self.broker.now(), sender="visitor", text=text, client_id=client_id
        )

    async def typing(self, chat_id: str, sender: str, typing: bool, origin: str) -> None:
        await self.broker.publish(
            chat_channel(chat_id),
            {
                "type": "typing",
                "chat_id": chat_id,
                "sender": sender,
                "typing": typing,
                "origin": origin,
            },
        )

    async def visitor_end(self, chat_id: str) -> ProtocolError | None:
        ended = await self._end(chat_id, by="visitor", reason="visitor_ended")
        return None if ended else _err(ErrorCode.chat_ended, "the chat has ended", "end")

    async def visitor_exit(self, chat_id: str) -> None:
        """Quick exit: the chat ends if it has not, and its transcript is shredded now,
        whatever the line's retention. The content-free record stays for the wrap-up."""
        record = await self.broker.get_chat(chat_id)
        if record is None:
            return
        if record.state is not ChatState.ended:
            await self._end(chat_id, by="visitor", reason="visitor_exit", shred_now=True)
            return
        await self._shred(chat_id)

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
            await self._offer_gone(record.id, record.offered_to)
            await self._queue_changed(record.line, settled=chat_id)
        elif record.waiting:
            await self._queue_changed(record.line)

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
                    changes={**away, **_offer_withdrawn(record, now)},
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

    # Staff side -----------------------------------------------------------------------------

    async def counsellor_chats(self, staff_id: str) -> list[ChatRecord]:
        """Chats offered to or active with the counsellor, and those awaiting their wrap-up."""
        return await self.broker.get_chats(await self.broker.staff_chat_ids(staff_id))

    async def accept(self, staff_id: str, alias: str, chat_id: str) -> ChatRecord | ProtocolError:
        now = self.broker.now()
        before = await self.broker.get_chat(chat_id)
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
        if before is not None and before.answered_at is None:
            changes["answered_at"] = now
        result = await self.broker.transition(
            chat_id,
            Transition(expect=frozenset({ChatState.offered}), offered_to=staff_id, changes=changes),
        )
        if isinstance(result, Refusal):
            if before is None or (before.offered_to != staff_id and staff_id not in before.passed):
                return _err(ErrorCode.offer_not_found, "there is no such offer for you", "accept")
            return _err(ErrorCode.offer_expired, "the offer has expired", "accept")
        await self.broker.cancel(deadline_key(Deadline.offer, chat_id, staff_id))
        if "answered_at" in changes:
            self.counters.chat_answered(result.line)
        await self.broker.update_presence(staff_id, {"missed_offers": 0})
        peer: bool | None = None
        if result.peer_requested:
            # The visitor asked for a peer: they are told whether this counsellor is one.
            presence = await self.broker.get_presence(staff_id)
            peer = bool(presence and presence.peer)
        await self._append(
            result, Entry(EntryKind.joined, now, name=alias, staff_id=staff_id, peer=peer)
        )
        await self.broker.publish(
            staff_channel(staff_id),
            {"type": "chat.assigned", "chat_id": chat_id, "line": result.line},
        )
        await self.broker.publish(line_channel(result.line), settled_event(chat_id))
        return result

    async def _auto_accept(self, record: ChatRecord, line: LineConfig) -> None:
        presence = await self.broker.get_presence(record.offered_to or "")
        if presence is not None:
            await self.accept(presence.staff_id, presence.alias, record.id)

    async def decline(self, staff: StaffContext, chat_id: str) -> ProtocolError | None:
        released = await self._release_offer(chat_id, staff.id, missed=False)
        if released is None:
            return _err(ErrorCode.offer_not_found, "there is no such offer for you", "decline")
        return None

    async def _release_offer(
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
        await self._settle_queue(result, queued=record.visitor_connected)
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
            presence = await self.broker.get_presence(staff_id)
            if presence is not None:
                missed_count = presence.missed_offers + 1
                changes: dict[str, Any] = {"missed_offers": missed_count}
                if missed_count >= MISSED_OFFERS_BEFORE_AWAY:
                    changes["status"] = StaffStatus.away
                    changes["missed_offers"] = 0
                await self.broker.update_presence(staff_id, changes)
                if "status" in changes:
                    await self.broker.publish(
                        staff_channel(staff_id),
                        {"type": "status", "status": "away", "reason": "missed_offers"},
                    )
        await self._queue_changed(result.line, settled=chat_id)
        return result

    async def _visitor_gone(self, record: ChatRecord, line: LineConfig) -> None:
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
                changes=_offer_withdrawn(record, self.broker.now()),
                dequeue=True,
                release=staff_id,
            ),
        )
        if isinstance(result, Refusal):
            return
        # Back meanwhile (their resume saw an offered chat, so it did not queue it): queue it.
        await self._settle_queue(result, queued=False)
        await self._queue_changed(result.line, settled=record.id)

    async def _offer_gone(self, chat_id: str, staff_id: str) -> None:
        """The counsellor's offer was withdrawn because its visitor dropped."""
        await self.broker.cancel(deadline_key(Deadline.offer, chat_id, staff_id))
        await self.broker.publish(
            staff_channel(staff_id),
            {"type": "offer.withdrawn", "chat_id": chat_id, "reason": "visitor_away"},
        )

    async def _settle_queue(self, record: ChatRecord, *, queued: bool) -> None:
        """A waiting chat is in its line's queue exactly while its visitor is here.

        Whoever changes `visitor_connected` moves the chat in the same atomic step
        (`visitor_disconnected`, `_visitor_back`); a step that makes a chat wait again decides
        from the record it read (`queued`: whether it queued the chat), and this
        puts right what a drop or a return at that very moment changed, from the record the
        step left (`record`). Whoever leaves it last leaves it right."""
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

    async def staff_message(
        self,
        staff: StaffContext,
        chat_id: str,
        text: str,
        client_id: str | None,
        *,
        last_seq: int,
        origin: str,
        line_key: str | None = None,
    ) -> tuple[int, bool] | ProtocolError:
        """`line_key`: the chat's line when the connection follows the chat. Without it the
        chat's record is read first, a broker round trip before the append."""
        exists = line_key is not None
        if line_key is None:
            record = await self.broker.get_chat(chat_id)
            exists = record is not None
            line_key = record.line if record else None
        line = self.lines.get(line_key) if line_key else None
        problem = check_text(text, line.max_message_length if line else 4000)
        if problem is not None:
            return problem
        now = self.broker.now()
        entry = Entry(
            EntryKind.message,
            now,
            sender="counsellor",
            name=staff.alias,
            text=text,
            client_id=client_id,
            staff_id=staff.id,
        )
        seq, status = await self.transcript.add(
            chat_id,
            entry,
            last_seq=last_seq,
            dedupe=f"s:{staff.id}:{client_id}" if client_id else None,
            counsellor=staff.id,
            announce=self.announce(chat_id, origin),
        )
        if status == "forbidden" or (status == "ended" and not exists):
            return _err(ErrorCode.not_in_chat, "you are not in this chat", "message")
        if status == "ended":
            return _err(ErrorCode.chat_ended, "the chat has ended", "message")
        return seq, status == "duplicate"

    async def own_active_chat(
        self, staff: StaffContext, chat_id: str, ref: str
    ) -> ChatRecord | ProtocolError:
        """The chat, if it is this counsellor's and active; else the error answering `ref`."""
        record = await self.broker.get_chat(chat_id)
        if record is None or record.counsellor_id != staff.id:
            return _err(ErrorCode.not_in_chat, "you are not in this chat", ref)
        if record.state is not ChatState.active:
            return _err(ErrorCode.invalid_state, f"the chat is {record.state.value}", ref)
        return record

    async def add_staff_entry(
        self, staff: StaffContext, chat_id: str, entry: Entry, last_seq: int
    ) -> tuple[int, str]:
        """Append a counsellor's entry (compare-and-set on `last_seq`) and announce it:
        (its number, the transcript's status)."""
        seq, status = await self.transcript.add(
            chat_id,
            entry,
            last_seq=last_seq,
            counsellor=staff.id,
            announce=self.announce(chat_id, None),
        )
        return seq, status

    async def note(self, staff: StaffContext, chat_id: str, text: str) -> int | ProtocolError:
        """A note for colleagues (a handover); never shown to the visitor."""
        problem = check_text(text, 4000)
        if problem is not None:
            return ProtocolError(problem.code, problem.message, "note")
        record = await self.broker.get_chat(chat_id)
        if record is None:
            return _err(ErrorCode.not_in_chat, "you are not in this chat", "note")
        now = self.broker.now()
        entry = Entry(EntryKind.note, now, name=staff.alias, text=text, staff_id=staff.id)
        seq, status = await self.add_staff_entry(staff, chat_id, entry, record.last_seq)
        if status != "ok":
            code = ErrorCode.chat_ended if status == "ended" else ErrorCode.not_in_chat
            return _err(code, "you cannot add a note to this chat", "note")
        return seq

    async def staff_end(self, staff: StaffContext, chat_id: str) -> ProtocolError | None:
        record = await self.broker.get_chat(chat_id)
        if record is None or record.counsellor_id != staff.id:
            return _err(ErrorCode.not_in_chat, "you are not in this chat", "end")
        if record.state is not ChatState.active:
            return _err(ErrorCode.invalid_state, f"the chat is {record.state.value}", "end")
        ended = await self._end(
            chat_id, by="counsellor", reason="counsellor_ended", counsellor=staff.id
        )
        return None if ended else _err(ErrorCode.chat_ended, "the chat has ended", "end")

    async def block(self, staff: StaffContext, chat_id: str) -> float | ProtocolError:
        """The counsellor blocks the chat's visitor: the chat ends (the visitor sees an ordinary
        end) and new chats from the same keyed hash are refused until the returned time."""
        record = await self.broker.get_chat(chat_id)
        if record is None or record.counsellor_id != staff.id:
            return _err(ErrorCode.not_in_chat, "you are not in this chat", "block")
        if record.state not in (ChatState.active, ChatState.ended):
            return _err(ErrorCode.invalid_state, f"the chat is {record.state.value}", "block")
        if record.visitor_tag is None:
            return _err(ErrorCode.invalid_state, "this chat's visitor cannot be blocked", "block")
        seconds = self.settings.block_seconds
        await self.blocks.block(record.visitor_tag, seconds)
        if record.state is ChatState.active:
            await self._end(
                chat_id, by="counsellor", reason="counsellor_ended", counsellor=staff.id
            )
        return self.broker.now() + seconds

    async def can_review(self, staff: StaffContext, chat_id: str) -> bool:
        """An ended chat of this counsellor whose transcript is still kept (line retention)."""
        record = await self.broker.get_chat(chat_id)
        return (
            record is not None
            and record.state is ChatState.ended
            and record.counsellor_id == staff.id
            and record.shred_at is not None
            and record.shred_at > self.broker.now()
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
            return _err(ErrorCode.invalid_transfer, "name either a line or a colleague", "transfer")
        record = await self.broker.get_chat(chat_id)
        if (
            record is None
            or record.counsellor_id != staff.id
            or record.state is not ChatState.active
        ):
            return _err(
                ErrorCode.not_in_chat, "you are not in an active chat with this id", "transfer"
            )
        now = self.broker.now()
        target_line = self.lines.get(to_line or record.line)
        if target_line is None:
            return _err(ErrorCode.invalid_transfer, f"there is no line {to_line!r}", "transfer")
        target_until: float | None = None
        if to_staff is not None:
            if to_staff == staff.id:
                return _err(
                    ErrorCode.invalid_transfer, "you cannot transfer a chat to yourself", "transfer"
                )
            candidates = {c.staff_id: c for c in await self.router.candidates(target_line.key)}
            colleague = candidates.get(to_staff)
            if colleague is None or not can_take(colleague, target_line, now):
                return _err(
                    ErrorCode.staff_unavailable,
                    "that colleague is not on duty, available and free on this line",
                    "transfer",
                )
            target_until = now + target_line.offer_timeout_seconds
        else:
            is_open, _ = await self.router.line_status(target_line)
            if not is_open:
                return _err(
                    ErrorCode.invalid_transfer,
                    f"nobody is on duty on {target_line.key!r}",
                    "transfer",
                )
        if note.strip():
            note_entry = Entry(EntryKind.note, now, name=staff.alias, text=note, staff_id=staff.id)
            await self.transcript.add(
                chat_id,
                note_entry,
                last_seq=record.last_seq,
                counsellor=staff.id,
                announce=self.announce(chat_id, None),
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
            return _err(ErrorCode.not_in_chat, "the chat changed meanwhile", "transfer")
        await self._settle_queue(result, queued=record.visitor_connected)
        await self._append(
            result, Entry(EntryKind.left, now, reason="transferred", staff_id=staff.id)
        )
        await self.broker.publish(
            staff_channel(staff.id),
            {"type": "chat.released", "chat_id": chat_id, "reason": "transferred"},
        )
        await self._queue_changed(target_line.key)
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
            return _err(
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

    async def wrapup(
        self,
        session: AsyncSession,
        staff: StaffContext,
        chat_id: str,
        topics: list[str],
        outcome: str,
    ) -> ProtocolError | None:
        """Record the counsellor's anonymous categorisation; the caller commits the session."""
        record = await self.broker.get_chat(chat_id)
        if record is None or record.wrapup_by != staff.id:
            return _err(ErrorCode.not_in_chat, "no wrap-up is due from you for this chat", "wrapup")
        if record.state is not ChatState.ended:
            return _err(ErrorCode.invalid_state, "end the chat before its wrap-up", "wrapup")
        line = self.lines.get(record.line)
        if line is None:
            return _err(ErrorCode.invalid_wrapup, "the chat's line no longer exists", "wrapup")
        unknown = sorted(set(topics) - set(line.wrapup_topics))
        if unknown:
            return _err(ErrorCode.invalid_wrapup, f"unknown topics: {', '.join(unknown)}", "wrapup")
        if line.wrapup_outcomes and outcome not in line.wrapup_outcomes:
            return _err(ErrorCode.invalid_wrapup, f"unknown outcome {outcome!r}", "wrapup")
        result = await self.broker.transition(
            chat_id, Transition(expect=frozenset({ChatState.ended}), changes={"wrapup_by": None})
        )
        if isinstance(result, Refusal) or record.wrapup_by is None:
            return _err(ErrorCode.not_in_chat, "no wrap-up is due from you for this chat", "wrapup")
        await self.broker.settle_wrapup(staff.id, chat_id)
        session.add(
            Wrapup(
                line_key=record.line,
                hour=hour_bucket(record.created_at),
                topics=sorted(set(topics)),
                outcome=outcome,
            )
        )
        await session.flush()
        if result.shred_at is None or result.shred_at <= self.broker.now():
            await self.transcript.forget(chat_id)
            await self.broker.delete_chat(chat_id)
            await self.broker.cancel(deadline_key(Deadline.forget, chat_id))
            await self.broker.cancel(deadline_key(Deadline.shred, chat_id))
        else:
            # The transcript is still kept: the record goes with it when the retention ends.
            await self.broker.schedule(deadline_key(Deadline.forget, chat_id), result.shred_at)
        await self.broker.publish(
            staff_channel(staff.id), {"type": "wrapup.saved", "chat_id": chat_id}
        )
        return None

    async def set_status(self, staff: StaffContext, status: StaffStatus) -> None:
        presence = await self.broker.update_presence(
            staff.id, {"status": status, "missed_offers": 0}
        )
        await self.broker.publish(
            staff_channel(staff.id), {"type": "status", "status": status.value}
        )
        for line in presence.duty if presence else ():
            await self._queue_changed(line)

    async def signed_in(self, staff_id: str) -> None:
        """A new sign-in (a new session) starts away: the counsellor says when they are ready.

        A second tab or a reconnect of a session opens no new session, so it keeps the status.
        Tabs of the counsellor's other sessions that are still open are told why it changed.
        """
        presence = await self.broker.get_presence(staff_id)
        if presence is None or presence.status is StaffStatus.away:
            return
        await self.broker.update_presence(
            staff_id, {"status": StaffStatus.away, "missed_offers": 0}
        )
        await self.broker.publish(
            staff_channel(staff_id), {"type": "status", "status": "away", "reason": "signed_in"}
        )
        for line in presence.duty:
            await self._queue_changed(line)

    async def counsellor_connected(self, staff: StaffContext) -> None:
        """A counsellor (re)connected: their chats are theirs again."""
        for record in await self.broker.get_chats(await self.broker.staff_chat_ids(staff.id)):
            if record.state is ChatState.active and record.counsellor_id == staff.id:
                await self.broker.cancel(
                    deadline_key(Deadline.counsellor_grace, record.id, staff.id)
                )
                if record.counsellor_grace_until is not None:
                    await self.broker.transition(
                        record.id,
                        Transition(
                            expect=frozenset({ChatState.active}),
                            counsellor=staff.id,
                            changes={"counsellor_grace_until": None},
                        ),
                    )

    async def counsellor_disconnected(self, staff_id: str) -> None:
        """The counsellor's last connection dropped: offers go on, chats wait out the grace."""
        now = self.broker.now()
        for record in await self.broker.get_chats(await self.broker.staff_chat_ids(staff_id)):
            if record.state is ChatState.offered and record.offered_to == staff_id:
                await self._release_offer(record.id, staff_id, missed=False)
            elif (
                record.state is ChatState.active
                and record.counsellor_id == staff_id
                # Already waiting out a grace period (a lease lapsing after the disconnect).
                and (record.counsellor_grace_until or 0) <= now
            ):
                line = self.lines.get(record.line)
                until = now + (line.counsellor_grace_seconds if line else 60)
                await self.broker.transition(
                    record.id,
                    Transition(
                        expect=frozenset({ChatState.active}),
                        counsellor=staff_id,
                        changes={"counsellor_grace_until": until},
                    ),
                )
                await self.broker.schedule(
                    deadline_key(Deadline.counsellor_grace, record.id, staff_id), until
                )

    # Staff accounts -------------------------------------------------------------------------

    async def end_sessions(self, staff_id: str, session_digest: str | None) -> None:
        """Close the staff member's WebSockets in every process (one session's, or all)."""
        await self.broker.publish(
            staff_channel(staff_id), {"type": "session.ended", "session": session_digest}
        )

    async def staff_changed(self, staff_id: str) -> None:
        """Their profile changed: open WebSockets reload it."""
        await self.broker.publish(staff_channel(staff_id), {"type": "staff.changed"})

    async def remove_counsellor(self, staff_id: str) -> None:
        """Deactivated: connections close, offers move on and chats go back to the queue now."""
        await self.end_sessions(staff_id, None)
        await self.broker.remove_presence(staff_id)
        for record in await self.broker.get_chats(await self.broker.staff_chat_ids(staff_id)):
            if record.state is ChatState.offered and record.offered_to == staff_id:
                await self._release_offer(record.id, staff_id, missed=False)
            elif record.state is ChatState.active and record.counsellor_id == staff_id:
                await self._return_to_queue(record.id, staff_id, force=True)

    # Deadlines ------------------------------------------------------------------------------

    async def handle_deadline(self, key: str) -> None:
        parsed = parse_deadline(key)
        if parsed is None:
            return
        kind, parts = parsed
        if kind is Deadline.offer and len(parts) == 2:
            if await self._release_offer(parts[0], parts[1], missed=True) is not None:
                self.router.kick((await self._line_of(parts[0])) or "")
        elif kind is Deadline.visitor_grace and len(parts) == 1:
            await self._visitor_grace_over(parts[0])
        elif kind is Deadline.counsellor_grace and len(parts) == 2:
            await self._return_to_queue(parts[0], parts[1])
        elif kind is Deadline.forget and len(parts) == 1:
            await self._forget(parts[0])
        elif kind is Deadline.shred and len(parts) == 1:
            await self._shred(parts[0])
        elif kind is Deadline.visitor_lease and len(parts) == 1:
            # The process holding the visitor died: the grace period starts now (unless the
            # visitor holds a connection elsewhere already).
            record = await self.broker.get_chat(parts[0])
            lease = visitor_lease(parts[0])
            if (
                record is not None
                and record.visitor_connected
                and (await self.broker.connection_counts([lease])).get(lease, 0) == 0
            ):
                await self.visitor_disconnected(parts[0])
        elif kind is Deadline.counsellor_lease and len(parts) == 1:
            # The process holding the counsellor died: their chats wait out the grace.
            connections = await self.broker.connection_counts([parts[0]])
            if connections.get(parts[0], 0) == 0:
                await self.counsellor_disconnected(parts[0])

    async def _visitor_grace_over(self, chat_id: str) -> None:
        record = await self.broker.get_chat(chat_id)
        if record is None or record.visitor_connected or record.state is ChatState.ended:
            return
        lease = visitor_lease(chat_id)
        if (await self.broker.connection_counts([lease])).get(lease, 0) > 0:
            # The visitor is back on a connection whose resume raced this deadline.
            result = await self._visitor_back(record)
            if result is not None:
                await self.broker.publish(
                    chat_channel(chat_id), {"type": "visitor.back", "chat_id": chat_id}
                )
                if result.waiting:
                    await self._queue_changed(result.line)
            return
        await self._end(chat_id, by="system", reason="visitor_left")

    async def sweep(self) -> int:
        """Find live chats whose visitor's process died (no lease, yet marked connected) and
        start their grace period, so an abandoned chat ends and is shredded in any state.
        Runs at start-up and now and then; returns how many it found."""
        found = 0
        for line in self.lines.all():
            lost = await self.broker.unleased_chats(line.key, VISITOR_LEASE_PREFIX, SWEEP_PAGE)
            for chat_id in lost:
                await self.visitor_disconnected(chat_id)
                found += 1
        return found

    async def shred_overdue(self) -> None:
        """Shred what this process saw end whose retention ran out by the monotonic clock."""
        now = time.monotonic()
        for chat_id in [c for c, due in self._shred_watch.items() if due <= now]:
            await self._shred(chat_id)

    async def _line_of(self, chat_id: str) -> str | None:
        record = await self.broker.get_chat(chat_id)
        return record.line if record else None

    async def _return_to_queue(self, chat_id: str, staff_id: str, *, force: bool = False) -> None:
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
        await self._settle_queue(result, queued=record.visitor_connected)
        await self._append(
            result, Entry(EntryKind.left, now, reason="counsellor_disconnected", staff_id=staff_id)
        )
        await self.broker.publish(
            staff_channel(staff_id),
            {"type": "chat.released", "chat_id": chat_id, "reason": "grace_expired"},
        )
        await self._queue_changed(result.line)

    async def end_waiting_on_closed_line(self, line: str) -> int:
        """Nobody is on duty any more: waiting visitors are told at once, not left waiting."""
        ended = 0
        for chat_id, _ in await self.broker.queue(line):
            if await self._end(chat_id, by="system", reason="line_closed", expect=WAITING_STATES):
                ended += 1
        return ended

    # Ending ---------------------------------------------------------------------------------

    async def _end(
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
        await self._append(
            result, Entry(EntryKind.ended, now, sender=by, reason=reason), force=True
        )
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
        self._record_facts(result, reason)
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
            await self._keep_transcript(chat_id, now, retention)
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
                staff_channel(result.wrapup_by), self._wrapup_required(result)
            )
        if record.state is ChatState.offered:
            await self._queue_changed(result.line, settled=chat_id)
        elif record.state in WAITING_STATES:
            await self._queue_changed(result.line)
        else:
            self.router.kick(result.line)
        return True

    def _wrapup_required(self, record: ChatRecord) -> dict[str, Any]:
        """What the console's wrap-up form needs (the `wrapup.required` frame)."""
        line = self.lines.get(record.line)
        return {
            "type": "wrapup.required",
            "chat_id": record.id,
            "line": record.line,
            "language": record.language,
            "topics": list(line.wrapup_topics) if line else [],
            "outcomes": list(line.wrapup_outcomes) if line else [],
        }

    async def owed_wrapups(self, staff_id: str) -> list[dict[str, Any]]:
        """`wrapup.required` frames for every wrap-up the counsellor still owes, oldest first.

        The index may be a step behind (a save on another process, a chat forgotten): each
        entry is checked against the chat's record, which decides.
        """
        owed = await self.broker.owed_wrapups(staff_id)
        if not owed:
            return []
        frames = []
        for record in await self.broker.get_chats(owed):
            if record.state is ChatState.ended and record.wrapup_by == staff_id:
                frames.append(self._wrapup_required(record))
        return frames

    def _record_facts(self, record: ChatRecord, reason: str) -> None:
        ended_at = record.ended_at or record.created_at
        if record.answered_at is not None:
            facts = ChatFacts(
                record.line,
                record.created_at,
                round(record.answered_at - record.created_at),
                round(ended_at - record.answered_at),
                ChatOutcome.answered,
            )
        else:
            outcome = ChatOutcome.closed if reason == "line_closed" else ChatOutcome.abandoned
            if outcome is ChatOutcome.abandoned:
                self.counters.chat_abandoned(record.line)
            facts = ChatFacts(
                record.line, record.created_at, round(ended_at - record.created_at), None, outcome
            )
        self.recorder.record(facts)

    async def _keep_transcript(self, chat_id: str, now: float, retention: int) -> None:
        """Three ways to shred when the retention runs out, so that no crash, restart or clock
        jump keeps a transcript longer: a deadline in the broker (any live process), expiry
        of the key and entries in the broker itself (no process alive), and this process's
        monotonic watch (the wall clock jumped back)."""
        await self.transcript.retain(chat_id, retention)
        await self.broker.schedule(deadline_key(Deadline.shred, chat_id), now + retention)
        self._shred_watch[chat_id] = time.monotonic() + retention

    async def _shred(self, chat_id: str) -> None:
        self._shred_watch.pop(chat_id, None)
        await self.broker.cancel(deadline_key(Deadline.shred, chat_id))
        await self.transcript.forget(chat_id)
        record = await self.broker.get_chat(chat_id)
        if record is not None and record.state is ChatState.ended and record.shred_at is not None:
            await self.broker.transition(
                chat_id,
                Transition(expect=frozenset({ChatState.ended}), changes={"shred_at": None}),
            )

    async def _forget(self, chat_id: str) -> None:
        record = await self.broker.get_chat(chat_id)
        if record is not None and record.state is not ChatState.ended:
            return
        self._shred_watch.pop(chat_id, None)
        await self.broker.cancel(deadline_key(Deadline.shred, chat_id))
        await self.transcript.forget(chat_id)
        await self.broker.delete_chat(chat_id)
        if record is not None and record.wrapup_by:
            # The window lapsed without a wrap-up: it is no longer owed.
            await self.broker.settle_wrapup(record.wrapup_by, chat_id)

    # Helpers --------------------------------------------------------------------------------

    async def _append(self, record: ChatRecord, entry: Entry, *, force: bool = False) -> None:
        """Append a system entry; after the chat ended only the `ended` entry itself is allowed."""
        if force:
            # The chat is already `ended`, so the broker refuses appends; the ended entry is
            # delivered as an event only (the transcript is shredded right after).
            await self._publish_entry(record.id, record.last_seq + 1, entry)
            return
        await self.transcript.add(
            record.id,
            entry,
            last_seq=record.last_seq,
            announce=self.announce(record.id, None),
        )

    async def _publish_entry(self, chat_id: str, seq: int, entry: Entry) -> None:
        """An entry that is not stored (the end of a chat, whose transcript goes at once)."""
        await self.broker.publish(chat_channel(chat_id), _entry_event(chat_id, seq, entry, None))

    def announce(self, chat_id: str, origin: str | None) -> Announce:
        """How the event that goes out with an entry of the chat from `origin` is built, once
        the entry's number and seal are known (one for all the entries of a burst)."""
        channel = chat_channel(chat_id)

        def build(entry: Entry, seq: int, sealed: bytes) -> tuple[str, dict[str, Any]]:
            return channel, _entry_event(chat_id, seq, entry, origin, sealed)

        return build

    async def _queue_changed(self, line: str, *, settled: str | None = None) -> None:
        """Route the line, and tell every process's queue cards and positions; `settled`: the
        chat whose offer just ended."""
        self.router.kick(line)
        event = {"type": "queue.changed"} if settled is None else settled_event(settled)
        await self.broker.publish(line_channel(line), event)
