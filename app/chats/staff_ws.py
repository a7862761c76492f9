"""The staff WebSocket: a signed-in counsellor's offers, chats and queue cards."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, WebSocket

from app.audit.service import AuditAction, audit_service
from app.broker.base import CHAT_MAX_LIFETIME
from app.broker.hub import Event
from app.broker.records import ChatRecord, ChatState, StaffStatus
from app.chats.background import lease_seconds
from app.chats.channels import Deadline, chat_channel, deadline_key, staff_channel
from app.chats.connection import ClientSocket, Outbound, refuse_while_unavailable
from app.chats.entries import Audience, Entry, EntryKind
from app.chats.frames import PROTOCOL_VERSION
from app.chats.interpreters import offer_frame
from app.chats.lost import lost_chats
from app.chats.plan import Delivery, Frame, typing_frames
from app.chats.protocol import (
    CLOSE_FORBIDDEN,
    CLOSE_UNAUTHORISED,
    Close,
    ErrorCode,
    ProtocolError,
    StaffConnection,
)
from app.chats.staff_frames import HANDLERS, SUPERVISING, Refusals
from app.chats.staffing import presence_of
from app.chats.summaries import chat_summary, line_info, profile
from app.chats.supervision import Supervision
from app.kit import jsonutil
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


@router.websocket("/ws/staff")
async def staff_socket(ws: WebSocket) -> None:
    runtime: Runtime = ws.app.state.runtime
    if await refuse_while_unavailable(ws, runtime.broker.available):
        return
    await ws.accept()
    # Browsers always send Origin; a cross-site page must not ride a counsellor's cookie.
    if not same_origin(ws.headers.get("origin"), runtime.settings.public_url):
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


async def _audit(
    runtime: Runtime,
    action: AuditAction,
    actor_id: str,
    *,
    chat_id: str | None = None,
    line: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    entry = audit_service.entry(
        action, actor_id=actor_id, chat_id=chat_id, line_key=line, detail=detail
    )
    if chat_id is not None:
        # About a chat: held until its hour is over, then written with the hour's batch.
        await runtime.held_rows.hold(entry)
        return
    async with unit_of_work(runtime.sessionmaker) as session:
        await audit_service.add(session, entry)


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
                transcript=runtime.transcript,
                delivery=Delivery(Audience.staff, staff.id),
                sees=self._sees,
            ),
        )
        self.out.render.update(
            {
                "typing": lambda e: typing_frames(e, self._sees(e.get("chat_id")), "visitor"),
                "visitor.away": self._about_a_chat,
                "visitor.back": self._about_a_chat,
                "offer": _as_it_is,
                "offer.withdrawn": _as_it_is,
                "interpreter.offer": _as_it_is,
                "interpreter.offer.withdrawn": _as_it_is,
                "error": _as_it_is,
                "status": self._status,
                "wrapup.required": _as_it_is,
                "wrapup.saved": _as_it_is,
                # Risk and care (docs/risk.md).
                "chat.risk": _as_it_is,
                "chat.in_danger": _as_it_is,
                "risk.alert": _as_it_is,
                "care.paused": _as_it_is,
                "care.ready": _as_it_is,
            }
        )
        self.out.handle.update(
            {
                "session.ended": self._session_ended,
                "staff.changed": self._staff_changed,
                "chat.assigned": self._chat_assigned,
                "chat.released": self._chat_released,
                "help.requested": self._help_requested,
            }
        )
        self.out.watch = _CHANGES_FOLLOWING
        self.out.on_entry = self._after_entry
        self.rt = runtime
        self.staff = staff
        # Line → until when on duty (epoch seconds, 0 = not now), as in the presence.
        self.duty = duty.until
        # Line → when the current stretch of duty began (lines on duty now only), and what
        # began it ("shift" or "ad_hoc").
        self.duty_since = duty.since
        self.duty_began_by = duty.began_by
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
        # Chats this interpreter is in (chat -> line), and the number of their joined entry:
        # they read from there on, as the visitor sees it.
        self.interpreting: dict[str, str] = {}
        self.interpreting_since: dict[str, int] = {}
        # Refusals to audit after the frame is handled.
        self.refusals = Refusals()
        # Per chat: the highest number of this counsellor's own messages acknowledged.
        self.acked: dict[str, int] = {}
        # The counsellor's status as this connection was last told (app/chats/lost.py).
        self.status = StaffStatus.away

    async def leave(self) -> None:
        broker = self.rt.broker
        self.rt.connections.staff.pop(self.id, None)
        self.rt.lines.off_reload(self._lines_reloaded)
        await broker.unsubscribe(staff_channel(self.staff.id), self.out.event)
        for chat_id in {*self.chats, *self.observing, *self.interpreting}:
            await broker.unsubscribe(chat_channel(chat_id), self.out.event)
        for line in self.duty:
            await self.rt.queue_watch.remove_watcher(line, self.out.frame)
        remaining = await broker.disconnect(self.staff.id, self.id)
        if remaining == 0:
            await broker.cancel(deadline_key(Deadline.counsellor_lease, self.staff.id))
            await self.rt.chats.staffing.counsellor_disconnected(self.staff.id)

    async def join(self) -> None:
        """Presence, subscriptions and the opening `hello` with every open chat and offer."""
        broker = self.rt.broker
        existing = await broker.get_presence(self.staff.id)
        staff = self.staff
        # A counsellor opening the console is away until they say otherwise; a second tab or
        # a reconnect keeps what they chose.
        status = existing.status if existing else StaffStatus.away
        await broker.put_presence(presence_of(staff, self.duty, status, existing))
        lease = lease_seconds(self.rt.settings)
        await broker.connect(staff.id, self.id, lease)
        await broker.schedule(
            deadline_key(Deadline.counsellor_lease, staff.id), broker.now() + lease
        )
        self.rt.connections.staff[self.id] = self
        self.rt.lines.on_reload(self._lines_reloaded)
        await broker.subscribe(staff_channel(staff.id), self.out.event)
        await self.rt.chats.staffing.counsellor_connected(staff)
        records = await self.rt.chats.staffing.counsellor_chats(staff.id)
        open_chats = [
            r for r in records if r.state is ChatState.active and r.counsellor_id == staff.id
        ]
        for record in open_chats:
            # Live from what `hello` shows; the client's `sync` brings what it lacks before
            # that, and nothing twice however late it comes.
            self.out.delivery.from_hello(record.id, record.last_seq)
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
        # Requests offered to this interpreter (they count against their places, so they are
        # among the chats read above): a reload keeps them, as it keeps chat offers.
        interpreter_offers = [
            {k: v for k, v in offer_frame(r, self.rt.lines.get(r.line)).items() if k != "type"}
            for r in records
            if r.state is ChatState.active and r.interpreter_asked == staff.id
        ]
        interpreting = []
        for record, since in await self._interpreting_now():
            self.out.delivery.from_hello(record.id, record.last_seq)
            await self.interpret(record, since, tell=False)
            interpreting.append(interpreting_summary(record, since))
        presence = await broker.get_presence(staff.id)
        self.status = presence.status if presence else StaffStatus.away
        # Wrap-ups still owed (also for chats that ended while no console was connected).
        wrapups = [
            {k: v for k, v in frame.items() if k != "type"}
            for frame in await self.rt.chats.wrapups.owed_wrapups(staff.id)
        ]
        self.out.frame(
            {
                "type": "hello",
                "protocol": PROTOCOL_VERSION,
                "role": "counsellor",
                "staff": profile(self.staff),
                "permissions": sorted(p.value for p in self.grants),
                "status": self.status.value,
                "lines": self._lines_info(now),
                "chats": [chat_summary(r, now) for r in open_chats],
                "interpreting": interpreting,
                "offers": offers,
                "interpreter_offers": interpreter_offers,
                "wrapups": wrapups,
                "lost": await lost_chats(broker, staff.id),
                # Pausing after an acute chat until then (docs/risk.md), or null.
                "paused_until": await self.rt.chats.care.paused_until(staff.id),
            }
        )
        for key in self.duty:
            await self.rt.queue_watch.add_watcher(key, self.out.frame)
        if presence is not None and presence.status is StaffStatus.available:
            for key in self.duty:
                self.rt.router.kick(key)

    def _lines_info(self, now: float) -> list[dict[str, Any]]:
        self.duty_shown = [
            line_info(key, self.rt.lines.get(key), until, self.duty_since.get(key), now)
            for key, until in sorted(self.duty.items())
        ]
        return self.duty_shown

    async def _follow(self, chat_id: str, line: str) -> None:
        if chat_id in self.chats:
            return
        self.chats[chat_id] = line
        # Observing it already means being subscribed: now it is simply ours.
        if self.observing.pop(chat_id, None) is None:
            await self.rt.broker.subscribe(chat_channel(chat_id), self.out.event)

    async def interpret(self, record: ChatRecord, since: int, *, tell: bool = True) -> None:
        """Follow a chat this interpreter joined (their joined entry is number `since`)."""
        chat_id = record.id
        self.interpreting[chat_id] = record.line
        self.interpreting_since[chat_id] = since
        self.out.delivery.interpreting.add(chat_id)
        await self._remember_interpreting()
        if tell:
            self.out.frame({"type": "interpreting", **interpreting_summary(record, since)})
            self.out.delivery.start(chat_id, since - 1)
        await self.rt.broker.subscribe(chat_channel(chat_id), self.out.event)
        if tell:
            self.out.catch_up(chat_id)

    async def _stop_interpreting(self, chat_id: str) -> None:
        if self.interpreting.pop(chat_id, None) is None:
            return
        self.interpreting_since.pop(chat_id, None)
        await self.rt.broker.unsubscribe(chat_channel(chat_id), self.out.event)
        self.out.delivery.forget(chat_id)
        await self._remember_interpreting()

    async def _remember_interpreting(self) -> None:
        """Which chats this interpreter is in, for the `hello` after a reload (ids and
        numbers only; the chat's record says whether they are still in it)."""
        key = f"interpreting:{self.staff.id}"
        if self.interpreting_since:
            value = jsonutil.dumps(self.interpreting_since)
            await self.rt.broker.set_value(key, value, CHAT_MAX_LIFETIME)
        else:
            await self.rt.broker.delete_value(key)

    async def _interpreting_now(self) -> list[tuple[ChatRecord, int]]:
        raw = await self.rt.broker.get_value(f"interpreting:{self.staff.id}")
        if not raw:
            return []
        since: dict[str, int] = {str(k): int(v) for k, v in jsonutil.loads(raw).items()}
        records = await self.rt.broker.get_chats(sorted(since))
        return [
            (r, since[r.id])
            for r in records
            if r.state is ChatState.active and r.interpreter_id == self.staff.id
        ]

    async def _unfollow(self, chat_id: str) -> None:
        if self.chats.pop(chat_id, None) is not None:
            await self.rt.broker.unsubscribe(chat_channel(chat_id), self.out.event)
        self.acked.pop(chat_id, None)
        self.out.delivery.forget(chat_id)

    async def unobserve(self, chat_id: str) -> bool:
        if self.observing.pop(chat_id, None) is None:
            return False
        if chat_id not in self.chats:
            await self.rt.broker.unsubscribe(chat_channel(chat_id), self.out.event)
            self.out.delivery.forget(chat_id)
        return True

    async def _after_entry(self, chat_id: str, entry: Entry) -> list[Frame]:
        """An ended chat is followed no more, however its end arrived: live, or in a gap
        fill, catch-up or sync (a chat that ended while this console was away); nor one this
        counsellor left (a transfer, a drop that outlasted its grace)."""
        if entry.kind is EntryKind.ended:
            await self._unfollow(chat_id)
            await self.unobserve(chat_id)
            await self._stop_interpreting(chat_id)
        elif entry.kind is EntryKind.interpreter_left:
            if entry.staff_id == self.staff.id:
                await self._stop_interpreting(chat_id)
        elif entry.staff_id == self.staff.id:
            await self._unfollow(chat_id)
        return []

    def last_seq(self, chat_id: str) -> int:
        """The chat's last entry as far as this connection knows (a guess for appending)."""
        return max(self.acked.get(chat_id, 0), self.out.delivery.last(chat_id))

    def _sees(self, chat_id: object) -> bool:
        return chat_id in self.chats or chat_id in self.observing or chat_id in self.interpreting

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
        self.duty_began_by = duty.began_by
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

    def not_in_chat(self, chat_id: str, ref: str, *, observed: bool = False) -> bool:
        if chat_id in self.chats or (observed and chat_id in self.observing):
            return False
        self.out.frame(
            ProtocolError(ErrorCode.not_in_chat, "you are not in this chat", ref).frame()
        )
        self._refuse(ref, chat_id, ErrorCode.not_in_chat)
        return True

    def _refuse(self, kind: str, chat_id: str | None, code: ErrorCode) -> None:
        self.refusals.add(kind, chat_id, code)

    async def _audit_refusals(self) -> None:
        for chat_id, detail in self.refusals.take():
            await self.audit(AuditAction.access_denied, chat_id=chat_id, detail=detail)

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
        else:
            problem = await HANDLERS[type(frame)](self, frame)
            if problem is not None:
                self.out.frame(problem.frame())
                audited = (
                    ErrorCode.forbidden if type(frame) in SUPERVISING else ErrorCode.not_in_chat
                )
                if problem.code is audited:
                    self._refuse(kind, getattr(frame, "chat_id", None), problem.code)
        await self._audit_refusals()
        return True

    async def audit(
        self,
        action: AuditAction,
        *,
        chat_id: str | None = None,
        line: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """An audit entry with this staff member as its actor (no content, ever)."""
        await _audit(self.rt, action, self.staff.id, chat_id=chat_id, line=line, detail=detail)

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
                await self.unobserve(chat_id)
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
                "staff": profile(self.staff),
                "permissions": sorted(p.value for p in grants),
                "lines": self._lines_info(now),
            }
        ]

    # Events to frames ---------------------------------------------------------------------

    def _status(self, event: Event) -> list[Frame]:
        self.status = StaffStatus(str(event["status"]))
        return [dict(event)]

    def _about_a_chat(self, event: Event) -> list[Frame]:
        return [dict(event)] if self._sees(event.get("chat_id")) else []

    async def _session_ended(self, event: Event) -> list[Frame]:
        if event.get("session") in (None, self.session_digest):
            self.out.close(Close(CLOSE_UNAUTHORISED, "signed out"))
        return []

    async def _staff_changed(self, event: Event) -> list[Frame]:
        return await self._reload()

    async def _chat_assigned(self, event: Event) -> list[Frame]:
        chat_id = str(event.get("chat_id"))
        record = await self.rt.broker.get_chat(chat_id)
        if record is None or record.counsellor_id != self.staff.id:
            return []
        await self._follow(chat_id, record.line)
        frames: list[Frame] = [
            {"type": "chat.opened", **chat_summary(record, self.rt.broker.now())}
        ]
        self.out.delivery.start(chat_id, 0)
        return frames + await self.out.fill(chat_id, None)

    async def _chat_released(self, event: Event) -> list[Frame]:
        await self._unfollow(str(event.get("chat_id")))
        return [dict(event)]

    async def _help_requested(self, event: Event) -> list[Frame]:
        sealed = event.get("sealed_text")
        chat_id = str(event.get("chat_id"))
        text = await self.rt.transcript.open_aside(chat_id, sealed) if sealed else ""
        frame = {k: v for k, v in event.items() if k != "sealed_text"}
        return [{**frame, "text": text or ""}]


def _as_it_is(event: Event) -> list[Frame]:
    return [dict(event)]


def interpreting_summary(record: ChatRecord, since: int) -> dict[str, Any]:
    """A chat as its interpreter is shown it: no visitor, no notes, nothing from before."""
    return {
        "chat_id": record.id,
        "line": record.line,
        "language": record.interpreter_language,
        "counsellor": record.counsellor_alias,
        "since": since,
    }


# Entries after which this connection follows a chat no more (`_after_entry`).
_CHANGES_FOLLOWING = frozenset({EntryKind.ended, EntryKind.left, EntryKind.interpreter_left})
