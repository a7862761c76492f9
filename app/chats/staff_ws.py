"""The staff WebSocket: a signed-in counsellor's offers, chats and queue cards."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, WebSocket

from app.audit.service import AuditAction, audit_service
from app.broker.hub import Event
from app.broker.records import ChatRecord, ChatState, Presence, StaffStatus
from app.chats.background import lease_seconds
from app.chats.channels import Deadline, chat_channel, deadline_key, staff_channel
from app.chats.connection import ClientSocket, Frame, Outbound, refuse_while_unavailable
from app.chats.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHORISED,
    PROTOCOL_VERSION,
    AcceptOffer,
    AskSupervisor,
    BlockVisitor,
    Close,
    DeclineOffer,
    ErrorCode,
    ListLive,
    ListTeam,
    Observe,
    OfferContinuity,
    Ping,
    ProtocolError,
    SendReferral,
    SetStatus,
    StaffConnection,
    StaffEnd,
    StaffMessage,
    StaffNote,
    StaffTyping,
    SyncChat,
    TakeOver,
    TransferChat,
    TransferOptions,
    Unobserve,
    Whisper,
    Wrapup,
)
from app.chats.supervision import Supervision
from app.chats.transcript import Audience, Entry, EntryKind
from app.directory.chats import send_referral
from app.kit.db import unit_of_work
from app.kit.ids import new_token, token_digest
from app.roster.live import current_duty
from app.roster.service import Duty
from app.routing.service import offer_event
from app.staff.permissions import (
    FRAME_RULES,
    WEBSOCKET_RULES,
    Permission,
    same_origin,
    staff_grants,
)
from app.staff.service import StaffContext, staff_service
from app.staff.sessions import current_session

if TYPE_CHECKING:
    from app.runtime import Runtime

router = APIRouter()

DENIALS_AUDITED_PER_MINUTE = 10


@router.websocket("/ws/staff")
async def staff_socket(ws: WebSocket) -> None:
    runtime: Runtime = ws.app.state.runtime
    if await refuse_while_unavailable(ws, runtime.broker.available):
        return
    await ws.accept()
    if not origin_allowed(ws.headers.get("origin"), runtime.settings.public_url):
        await ws.close(CLOSE_FORBIDDEN, "origin not allowed")
        return
    needed = WEBSOCKET_RULES["/ws/staff"]
    async with unit_of_work(runtime.sessionmaker) as session:
        found = await current_session(ws, session)
        staff = found[0] if found is not None else None
        grants = staff_grants(staff) if staff is not None else frozenset()
        duty = (
            await current_duty(session, runtime.settings, staff.id)
            if staff is not None and needed in grants
            else Duty({}, None)
        )
        if staff is not None and needed not in grants:
            await _audit(
                runtime,
                AuditAction.access_denied,
                str(staff.id),
                detail={"permission": str(needed), "endpoint": "WEBSOCKET /ws/staff"},
            )
    if found is None or staff is None:
        await ws.close(CLOSE_UNAUTHORISED, "sign in first")
        return
    if needed not in grants:
        await ws.close(CLOSE_FORBIDDEN, "only counsellors take chats")
        return
    context = StaffContext.from_model(staff)
    await StaffSocket(ws, runtime, context, duty, grants, token_digest(found[1])).serve()


def origin_allowed(origin: str | None, public_url: str) -> bool:
    """Browsers always send Origin; a cross-site page must not ride a counsellor's cookie."""
    return same_origin(origin, public_url)


async def _audit(
    runtime: Runtime,
    action: AuditAction,
    actor_id: str,
    *,
    chat_id: str | None = None,
    line: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    async with unit_of_work(runtime.sessionmaker) as session:
        await audit_service.record(
            session, action, actor_id=actor_id, chat_id=chat_id, line_key=line, detail=detail
        )


class StaffSocket(ClientSocket):
    def __init__(
        self,
        ws: WebSocket,
        runtime: Runtime,
        staff: StaffContext,
        duty: Duty,
        grants: frozenset[Permission],
        session_digest: str,
    ) -> None:
        settings = runtime.settings
        super().__init__(
            ws,
            Outbound(
                ws,
                size=settings.send_queue_size,
                render=self._render,
                render_now=self._render_now,
                transcript=runtime.transcript,
                audience=Audience.staff,
                viewer=staff.id,
                on_entry=self._after_ended,
                watch=frozenset({EntryKind.ended}),
            ),
        )
        self.rt = runtime
        self.staff = staff
        # Line → until when on duty (epoch seconds, 0 = not now), as in the presence.
        self.duty = duty.until
        # Line → when the current stretch of duty began (lines on duty now only).
        self.duty_since = duty.since
        # When duty changes next by the clock alone (a shift starts or ends), if ever.
        self.duty_next_change = duty.next_change
        # What the client was last told about its lines (hello or duty frames).
        self.duty_shown: list[dict[str, Any]] = []
        self.grants = grants
        # The session this connection was opened with: signing out of it closes it.
        self.session_digest = session_digest
        self.supervision = Supervision(runtime.chats)
        self.id = new_token()[:16]
        self.out.origin = self.id
        self.protocol = StaffConnection(
            rate=settings.staff_frame_rate,
            burst=settings.staff_frame_burst,
            tolerance=settings.flood_tolerance,
            clock=time.monotonic,
        )
        # Chats this connection follows: active with this counsellor.
        self.chats: dict[str, str] = {}
        # Chats a supervisor observes (silently: nobody in the chat is told).
        self.observing: dict[str, str] = {}
        # Refusals to audit after the frame is handled, and how many were this minute.
        self._refused: list[tuple[str | None, dict[str, Any]]] = []
        self._denials = 0
        self._denials_window = time.monotonic()
        self.last_seq: dict[str, int] = {}

    async def leave(self) -> None:
        broker = self.rt.broker
        self.rt.connections.staff.pop(self.id, None)
        self.rt.lines.off_reload(self._lines_reloaded)
        await broker.unsubscribe(staff_channel(self.staff.id), self.out.event)
        for chat_id in {*self.chats, *self.observing}:
            await broker.unsubscribe(chat_channel(chat_id), self.out.event)
        for line in self.duty:
            await self.rt.queue_watch.remove_watcher(line, self.out.frame)
        remaining = await broker.disconnect(self.staff.id, self.id)
        if remaining == 0:
            await broker.cancel(deadline_key(Deadline.counsellor_lease, self.staff.id))
            await self.rt.chats.counsellor_disconnected(self.staff.id)

    async def join(self) -> None:
        """Presence, subscriptions and the opening `hello` with every open chat and offer."""
        broker = self.rt.broker
        existing = await broker.get_presence(self.staff.id)
        staff = self.staff
        await broker.put_presence(
            Presence(
                staff_id=staff.id,
                alias=staff.alias,
                # A counsellor opening the console is away until they say otherwise; a second
                # tab or a reconnect keeps what they chose.
                status=existing.status if existing else StaffStatus.away,
                capacity=staff.capacity,
                qualification=staff.qualification.value if staff.qualification else None,
                languages=list(staff.languages),
                peer=staff.peer,
                supervisor=staff.supervisor,
                duty=self.duty,
                last_offer_at=existing.last_offer_at if existing else 0.0,
                missed_offers=existing.missed_offers if existing else 0,
            )
        )
        lease = lease_seconds(self.rt.settings)
        await broker.connect(staff.id, self.id, lease)
        await broker.schedule(
            deadline_key(Deadline.counsellor_lease, staff.id), broker.now() + lease
        )
        self.rt.connections.staff[self.id] = self
        self.rt.lines.on_reload(self._lines_reloaded)
        await broker.subscribe(staff_channel(staff.id), self.out.event)
        await self.rt.chats.counsellor_connected(staff)
        records = await self.rt.chats.counsellor_chats(staff.id)
        open_chats = [
            r for r in records if r.state is ChatState.active and r.counsellor_id == staff.id
        ]
        for record in open_chats:
            await self._follow(record.id, record.line)
        now = broker.now()
        offers = []
        for record in records:
            line = self.rt.lines.get(record.line)
            if (
                record.state is ChatState.offered
                and record.offered_to == staff.id
                and line is not None
            ):
                offers.append(offer_event(record, line, now))
        presence = await broker.get_presence(staff.id)
        # Wrap-ups still owed (also for chats that ended while no console was connected).
        wrapups = [
            {k: v for k, v in frame.items() if k != "type"}
            for frame in await self.rt.chats.owed_wrapups(staff.id)
        ]
        self.out.frame(
            {
                "type": "hello",
                "protocol": PROTOCOL_VERSION,
                "role": "counsellor",
                "staff": self._profile(),
                "permissions": sorted(p.value for p in self.grants),
                "status": presence.status.value if presence else "away",
                "lines": self._lines_info(now),
                "chats": [chat_summary(r, now) for r in open_chats],
                "offers": offers,
                "wrapups": wrapups,
            }
        )
        for key in self.duty:
            await self.rt.queue_watch.add_watcher(key, self.out.frame)
        if presence is not None and presence.status is StaffStatus.available:
            for key in self.duty:
                self.rt.router.kick(key)

    def _profile(self) -> dict[str, Any]:
        staff = self.staff
        return {
            "id": staff.id,
            "alias": staff.alias,
            "qualification": staff.qualification.value if staff.qualification else None,
            "capacity": staff.capacity,
            "languages": list(staff.languages),
            "peer": staff.peer,
            "supervisor": staff.supervisor,
        }

    def _lines_info(self, now: float) -> list[dict[str, Any]]:
        self.duty_shown = [
            self._line_info(key, until, now) for key, until in sorted(self.duty.items())
        ]
        return self.duty_shown

    def _line_info(self, key: str, until: float, now: float) -> dict[str, Any]:
        line = self.rt.lines.get(key)
        on_duty = until > now
        return {
            "key": key,
            "name": line.name if line else key,
            "on_duty": on_duty,
            "on_duty_until": until if on_duty else None,
            # The shift now (joined with any back-to-back one), as the roster has it.
            "on_duty_since": self.duty_since.get(key) if on_duty else None,
            # The roster's times are wall-clock times here (the console shows it when the
            # browser's zone differs).
            "time_zone": line.time_zone if line else None,
            # What the console needs to answer on this line.
            "languages": list(line.languages) if line else [],
            "max_message_length": line.max_message_length if line else 4000,
            "canned_responses": [dict(c) for c in line.canned_responses] if line else [],
            "wrapup_topics": list(line.wrapup_topics) if line else [],
            "wrapup_outcomes": list(line.wrapup_outcomes) if line else [],
        }

    async def _follow(self, chat_id: str, line: str) -> None:
        if chat_id in self.chats:
            return
        self.chats[chat_id] = line
        # Observing it already means being subscribed: now it is simply ours.
        if self.observing.pop(chat_id, None) is None:
            await self.rt.broker.subscribe(chat_channel(chat_id), self.out.event)

    async def _unfollow(self, chat_id: str) -> None:
        if self.chats.pop(chat_id, None) is not None:
            await self.rt.broker.unsubscribe(chat_channel(chat_id), self.out.event)
        self.last_seq.pop(chat_id, None)
        self.out.delivered.pop(chat_id, None)

    async def _unobserve(self, chat_id: str) -> bool:
        if self.observing.pop(chat_id, None) is None:
            return False
        if chat_id not in self.chats:
            await self.rt.broker.unsubscribe(chat_channel(chat_id), self.out.event)
            self.out.delivered.pop(chat_id, None)
        return True

    async def _after_ended(self, chat_id: str, entry: Entry) -> list[Frame]:
        """An ended chat is followed no more, however its end arrived: live, or in a gap
        fill, catch-up or sync (a chat that ended while this console was away)."""
        await self._unfollow(chat_id)
        await self._unobserve(chat_id)
        return []

    def _sees(self, chat_id: object) -> bool:
        return chat_id in self.chats or chat_id in self.observing

    def _lines_reloaded(self) -> None:
        """A coordinator changed line settings: send the lines again if what we show changed
        (canned responses, wrap-up lists, names)."""
        shown = self.duty_shown
        if self._lines_info(time.time()) != shown:
            self.out.frame({"type": "duty", "lines": self.duty_shown})

    async def refresh_duty(self, duty: Duty) -> None:
        """Called in the background with fresh duty from the roster."""
        now = time.time()
        before = self.duty
        after = duty.until
        added = set(after) - set(before)
        removed = set(before) - set(after)
        self.duty = after
        self.duty_since = duty.since
        self.duty_next_change = duty.next_change
        await self.rt.broker.update_presence(self.staff.id, {"duty": after})
        for line in removed:
            await self.rt.queue_watch.remove_watcher(line, self.out.frame)
        for line in added:
            await self.rt.queue_watch.add_watcher(line, self.out.frame)
        shown = self.duty_shown
        if self._lines_info(now) != shown:
            self.out.frame({"type": "duty", "lines": self.duty_shown})
            for line in after:
                # Someone came on or went off duty: route and update queue estimates now.
                self.rt.router.kick(line)
                self.rt.queue_watch.changed(line)

    # Incoming frames ------------------------------------------------------------------------

    async def on_bytes(self, data: bytes) -> bool:
        return self.answer(self.protocol.receive_bytes(data))

    def _not_in_chat(self, chat_id: str, ref: str, *, observed: bool = False) -> bool:
        if chat_id in self.chats or (observed and chat_id in self.observing):
            return False
        self.out.frame(
            ProtocolError(ErrorCode.not_in_chat, "you are not in this chat", ref).frame()
        )
        self._refuse(ref, chat_id, ErrorCode.not_in_chat)
        return True

    def _refuse(self, kind: str, chat_id: str | None, code: ErrorCode) -> None:
        detail: dict[str, Any] = {"frame": kind, "code": code.value}
        if code is ErrorCode.forbidden and chat_id is None:
            detail["permission"] = FRAME_RULES[kind].value
        self._refused.append((chat_id, detail))

    async def _audit_refusals(self) -> None:
        """Naming a chat that is not yours is audited, a few times a minute per connection
        (a flood of probes must not flood the log)."""
        refused, self._refused = self._refused, []
        now = time.monotonic()
        if now - self._denials_window > 60:
            self._denials_window, self._denials = now, 0
        for chat_id, detail in refused:
            if self._denials >= DENIALS_AUDITED_PER_MINUTE:
                return
            self._denials += 1
            await _audit(
                self.rt,
                AuditAction.access_denied,
                self.staff.id,
                chat_id=chat_id,
                detail=detail,
            )

    async def on_text(self, text: str) -> bool:
        frame = self.protocol.receive_text(text)
        if isinstance(frame, ProtocolError | Close):
            return self.answer(frame)
        kind = str(getattr(frame, "type", ""))
        if FRAME_RULES[kind] not in self.grants:
            self.out.frame(
                ProtocolError(ErrorCode.forbidden, "your role does not allow this", kind).frame()
            )
            self._refuse(kind, None, ErrorCode.forbidden)
            await self._audit_refusals()
            return True
        if isinstance(frame, ListLive | Observe | Unobserve | Whisper | TakeOver | ListTeam):
            await self._supervise(frame)
            await self._audit_refusals()
            return True
        chats = self.rt.chats
        staff = self.staff
        problem: ProtocolError | None = None
        if isinstance(frame, StaffMessage):
            result = await chats.staff_message(
                staff,
                frame.chat_id,
                frame.text,
                frame.client_id,
                last_seq=self.last_seq.get(frame.chat_id, 0),
                origin=self.id,
                # Known for a chat it follows: no round trip to read the chat's record.
                line_key=self.chats.get(frame.chat_id),
            )
            if isinstance(result, ProtocolError):
                problem = result
            else:
                seq, duplicate = result
                self.last_seq[frame.chat_id] = max(self.last_seq.get(frame.chat_id, 0), seq)
                ack: Frame = {
                    "type": "message.ack",
                    "chat_id": frame.chat_id,
                    "seq": seq,
                    "duplicate": duplicate,
                }
                if frame.client_id is not None:
                    ack["client_id"] = frame.client_id
                self.out.frame(ack)
        elif isinstance(frame, StaffTyping):
            if not self._not_in_chat(frame.chat_id, "typing"):
                await chats.typing(frame.chat_id, "counsellor", frame.typing, self.id)
        elif isinstance(frame, Ping):
            self.out.frame({"type": "pong"})
        elif isinstance(frame, SetStatus):
            await chats.set_status(staff, StaffStatus(frame.status))
        elif isinstance(frame, AcceptOffer):
            accepted = await chats.accept(staff.id, staff.alias, frame.chat_id)
            if isinstance(accepted, ProtocolError):
                problem = accepted
            else:
                await _audit(
                    self.rt,
                    AuditAction.offer_accepted,
                    staff.id,
                    chat_id=frame.chat_id,
                    line=accepted.line,
                )
        elif isinstance(frame, DeclineOffer):
            problem = await chats.decline(staff, frame.chat_id)
        elif isinstance(frame, StaffNote):
            noted = await chats.note(staff, frame.chat_id, frame.text)
            if isinstance(noted, ProtocolError):
                problem = noted
        elif isinstance(frame, SyncChat):
            # An ended chat of theirs can be read again while its line keeps transcripts.
            if (
                frame.chat_id in self.chats
                or frame.chat_id in self.observing
                or await chats.can_review(staff, frame.chat_id)
            ):
                self.out.sync(frame.chat_id, frame.last_seq)
                self.out.frame({"type": "synced", "chat_id": frame.chat_id})
            else:
                self._not_in_chat(frame.chat_id, "sync")
        elif isinstance(frame, TransferChat):
            moved = await chats.transfer(
                staff, frame.chat_id, to_line=frame.line, to_staff=frame.staff_id, note=frame.note
            )
            if isinstance(moved, ProtocolError):
                problem = moved
            else:
                await _audit(
                    self.rt,
                    AuditAction.chat_transferred,
                    staff.id,
                    chat_id=frame.chat_id,
                    line=moved.line,
                    detail={"to_line": frame.line} if frame.line else {"to_staff": frame.staff_id},
                )
        elif isinstance(frame, StaffEnd):
            problem = await chats.staff_end(staff, frame.chat_id)
        elif isinstance(frame, BlockVisitor):
            until = await chats.block(staff, frame.chat_id)
            if isinstance(until, ProtocolError):
                problem = until
            else:
                self.out.frame({"type": "blocked", "chat_id": frame.chat_id, "until": until})
                # Who blocked which chat, never whom: the visitor's keyed hash stays out.
                await _audit(self.rt, AuditAction.chat_blocked, staff.id, chat_id=frame.chat_id)
        elif isinstance(frame, OfferContinuity):
            offered = await self.rt.continuity.offer(staff, frame.chat_id, frame.note)
            if isinstance(offered, ProtocolError):
                problem = offered
        elif isinstance(frame, SendReferral):
            sent = await send_referral(
                chats, self.rt.sessionmaker, staff, frame.chat_id, frame.service_id
            )
            if isinstance(sent, ProtocolError):
                problem = sent
        elif isinstance(frame, AskSupervisor):
            asked = await self.supervision.ask_for_help(staff, frame.chat_id, frame.text)
            if isinstance(asked, ProtocolError):
                problem = asked
            else:
                record, told = asked
                self.out.frame({"type": "help.sent", "chat_id": frame.chat_id, "supervisors": told})
                # Who asked about which chat; what they wrote stays out of the log.
                await _audit(
                    self.rt,
                    AuditAction.help_requested,
                    staff.id,
                    chat_id=frame.chat_id,
                    line=record.line,
                    detail={"supervisors": told},
                )
        elif isinstance(frame, TransferOptions):
            options = await chats.transfer_options(staff, frame.chat_id)
            if isinstance(options, ProtocolError):
                problem = options
            else:
                self.out.frame({"type": "transfer.options", **options})
        elif isinstance(frame, Wrapup):
            async with unit_of_work(self.rt.sessionmaker) as session:
                problem = await chats.wrapup(
                    session, staff, frame.chat_id, list(frame.topics), frame.outcome
                )
        if problem is not None:
            self.out.frame(problem.frame())
            if problem.code is ErrorCode.not_in_chat:
                self._refuse(kind, getattr(frame, "chat_id", None), problem.code)
        await self._audit_refusals()
        return True

    async def _supervise(
        self, frame: ListLive | Observe | Unobserve | Whisper | TakeOver | ListTeam
    ) -> None:
        """Supervisor frames; the chat must be live and on one of the supervisor's lines."""
        lines = set(self.duty)
        staff = self.staff
        supervision = self.supervision
        if isinstance(frame, ListTeam):
            self.out.frame({"type": "team", "staff": await supervision.team(lines)})
            return
        if isinstance(frame, ListLive):
            now = self.rt.broker.now()
            records = await supervision.live(lines)
            self.out.frame(
                {
                    "type": "live.chats",
                    "chats": [live_summary(r, now, r.id in self.observing) for r in records],
                }
            )
            return
        if isinstance(frame, Unobserve):
            if await self._unobserve(frame.chat_id):
                self.out.frame({"type": "chat.unobserved", "chat_id": frame.chat_id})
            else:
                self.out.frame(
                    ProtocolError(
                        ErrorCode.not_in_chat, "you are not observing this chat", "unobserve"
                    ).frame()
                )
            return
        problem: ProtocolError | None = None
        if isinstance(frame, Observe):
            record = await supervision.observable(lines, frame.chat_id, "observe")
            if isinstance(record, ProtocolError):
                problem = record
            elif record.counsellor_id == staff.id or frame.chat_id in self.chats:
                problem = ProtocolError(
                    ErrorCode.invalid_state, "you are answering this chat", "observe"
                )
            elif frame.chat_id not in self.observing:
                self.out.frame(
                    {
                        "type": "chat.observing",
                        **live_summary(record, self.rt.broker.now(), True),
                    }
                )
                # The whole transcript, from the first entry: what arrives live meanwhile
                # fills from here, and the catch-up after subscribing (so that nothing
                # stored before the subscription took effect is missed) sends the rest.
                self.out.delivered[frame.chat_id] = 0
                self.observing[frame.chat_id] = record.line
                await self.rt.broker.subscribe(chat_channel(frame.chat_id), self.out.event)
                self.out.catch_up(frame.chat_id)
                await _audit(
                    self.rt,
                    AuditAction.chat_observed,
                    staff.id,
                    chat_id=frame.chat_id,
                    line=record.line,
                )
        elif isinstance(frame, Whisper):
            whispered = await supervision.whisper(staff, lines, frame.chat_id, frame.text)
            if isinstance(whispered, ProtocolError):
                problem = whispered
            else:
                self.out.frame(
                    {"type": "whisper.ack", "chat_id": frame.chat_id, "seq": whispered.last_seq}
                )
                await _audit(
                    self.rt,
                    AuditAction.chat_whispered,
                    staff.id,
                    chat_id=frame.chat_id,
                    line=whispered.line,
                )
        else:
            taken = await supervision.take_over(staff, lines, frame.chat_id)
            if isinstance(taken, ProtocolError):
                problem = taken
            else:
                await _audit(
                    self.rt,
                    AuditAction.chat_taken_over,
                    staff.id,
                    chat_id=frame.chat_id,
                    line=taken.line,
                )
        if problem is not None:
            self.out.frame(problem.frame())
            if problem.code is ErrorCode.forbidden:
                self._refuse(frame.type, frame.chat_id, problem.code)

    async def _reload(self) -> list[Frame]:
        """The account changed: take the new profile, or close if it no longer allows this."""
        async with unit_of_work(self.rt.sessionmaker) as session:
            staff = await staff_service.get(session, uuid.UUID(self.staff.id))
            duty = (
                await current_duty(session, self.rt.settings, staff.id)
                if staff is not None
                else Duty({}, None)
            )
        if staff is None or not staff.is_active:
            self.out.close(Close(CLOSE_UNAUTHORISED, "signed out"))
            return []
        grants = staff_grants(staff)
        if WEBSOCKET_RULES["/ws/staff"] not in grants:
            self.out.close(Close(CLOSE_FORBIDDEN, "only counsellors take chats"))
            return []
        self.staff = StaffContext.from_model(staff)
        self.grants = grants
        lines = set(duty.until)
        for chat_id, line in list(self.observing.items()):
            if Permission.supervise not in grants or line not in lines:
                await self._unobserve(chat_id)
        context = self.staff
        await self.rt.broker.update_presence(
            context.id,
            {
                "alias": context.alias,
                "capacity": context.capacity,
                "qualification": context.qualification.value if context.qualification else None,
                "languages": list(context.languages),
                "peer": context.peer,
                "supervisor": context.supervisor,
            },
        )
        await self.refresh_duty(duty)
        now = self.rt.broker.now()
        return [
            {
                "type": "profile",
                "staff": self._profile(),
                "permissions": sorted(p.value for p in grants),
                "lines": self._lines_info(now),
            }
        ]

    # Rendering events -------------------------------------------------------------------------

    def _render_now(self, event: Event) -> list[Frame] | None:
        """The frames for an event that needs nothing waited for (most entries, typing, offers),
        or None: `_render` then runs in the writer task."""
        kind = event.get("type")
        chat_id = event.get("chat_id")
        if kind == "entry" and isinstance(chat_id, str):
            if not self._sees(chat_id):
                return []
            entry = self.rt.transcript.event_entry_now(event)
            if entry is None or entry.kind in (EntryKind.ended, EntryKind.left):
                return None
            seq = int(event["seq"])
            frames = self.out.entry_now(chat_id, seq, entry, skip=event.get("origin") == self.id)
            if frames is not None and seq > self.last_seq.get(chat_id, 0):
                self.last_seq[chat_id] = seq
            return frames
        if kind == "typing":
            if self._sees(chat_id) and event.get("sender") == "visitor":
                return [
                    {
                        "type": "typing",
                        "chat_id": chat_id,
                        "sender": "visitor",
                        "typing": bool(event["typing"]),
                    }
                ]
            return []
        if kind in ("visitor.away", "visitor.back"):
            return [dict(event)] if self._sees(chat_id) else []
        if kind in ("offer", "offer.withdrawn", "status", "wrapup.required", "wrapup.saved"):
            return [dict(event)]
        return None

    async def _render(self, event: Event) -> list[Frame]:
        """Runs in the writer task."""
        now = self._render_now(event)
        if now is not None:
            return now
        kind = event.get("type")
        chat_id = event.get("chat_id")
        if kind == "entry" and isinstance(chat_id, str):
            seq = int(event["seq"])
            entry = await self.rt.transcript.event_entry(event)
            if entry is None:
                # Unreadable here (shredded meanwhile, or refused): the transcript decides.
                return await self.out.fill(chat_id, seq + 1)
            self.last_seq[chat_id] = max(self.last_seq.get(chat_id, 0), seq)
            delivered = await self.out.entry(
                chat_id, seq, entry, skip=event.get("origin") == self.id
            )
            if entry.kind is EntryKind.left and entry.staff_id == self.staff.id:
                await self._unfollow(chat_id)
            return delivered
        if kind == "session.ended":
            if event.get("session") in (None, self.session_digest):
                self.out.close(Close(CLOSE_UNAUTHORISED, "signed out"))
            return []
        if kind == "staff.changed":
            return await self._reload()
        if kind == "chat.assigned" and isinstance(chat_id, str):
            record = await self.rt.broker.get_chat(chat_id)
            if record is None or record.counsellor_id != self.staff.id:
                return []
            await self._follow(chat_id, record.line)
            frames: list[Frame] = [
                {"type": "chat.opened", **chat_summary(record, self.rt.broker.now())}
            ]
            self.out.delivered[chat_id] = 0
            frames.extend(await self.out.fill(chat_id, None))
            self.last_seq[chat_id] = max(
                self.last_seq.get(chat_id, 0), self.out.delivered.get(chat_id, 0)
            )
            return frames
        if kind == "chat.released" and isinstance(chat_id, str):
            await self._unfollow(chat_id)
            return [dict(event)]
        if kind == "help.requested" and isinstance(chat_id, str):
            sealed = event.get("sealed_text")
            text = await self.rt.transcript.open_aside(chat_id, sealed) if sealed else ""
            frame = {k: v for k, v in event.items() if k != "sealed_text"}
            return [{**frame, "text": text or ""}]
        return []


def chat_summary(record: ChatRecord, now: float) -> dict[str, Any]:
    return {
        "chat_id": record.id,
        "line": record.line,
        "language": record.language,
        "state": record.state.value,
        "last_seq": record.last_seq,
        "visitor_connected": record.visitor_connected,
        "visitor_grace_until": record.visitor_grace_until,
        "waited_seconds": max(0, round((record.answered_at or now) - record.created_at)),
        # How long it has been answered (null while waiting).
        "active_seconds": max(0, round(now - record.answered_at)) if record.answered_at else None,
        "peer_requested": record.peer_requested,
    }


def live_summary(record: ChatRecord, now: float, observing: bool) -> dict[str, Any]:
    """What a supervisor sees of a live chat: its state and who answers it, no content."""
    counsellor = (
        {"id": record.counsellor_id, "alias": record.counsellor_alias}
        if record.counsellor_id
        else None
    )
    return {
        **chat_summary(record, now),
        "counsellor": counsellor,
        "observing": observing,
        "help_requested_at": record.help_requested_at,
    }
