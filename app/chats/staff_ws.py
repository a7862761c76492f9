"""The staff WebSocket: a signed-in counsellor's offers, chats and queue cards."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket

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
    Close,
    DeclineOffer,
    ErrorCode,
    Ping,
    ProtocolError,
    SetStatus,
    StaffConnection,
    StaffEnd,
    StaffMessage,
    StaffNote,
    StaffTyping,
    SyncChat,
    TransferChat,
    Wrapup,
)
from app.chats.transcript import Audience, EntryKind
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.kit.ids import new_token
from app.models.enums import StaffRole
from app.routing.service import offer_event
from app.staff.service import StaffContext, staff_service
from app.staff.sessions import staff_from_request

if TYPE_CHECKING:
    from app.runtime import Runtime

router = APIRouter()


@router.websocket("/ws/staff")
async def staff_socket(ws: WebSocket) -> None:
    runtime: Runtime = ws.app.state.runtime
    if await refuse_while_unavailable(ws, runtime.broker.available):
        return
    await ws.accept()
    if not origin_allowed(ws.headers.get("origin"), runtime.settings.public_url):
        await ws.close(CLOSE_FORBIDDEN, "origin not allowed")
        return
    async with unit_of_work(runtime.sessionmaker) as session:
        staff = await staff_from_request(ws, session)
        duty = (
            await staff_service.duty(session, staff.id, utcnow())
            if staff is not None and staff.role is StaffRole.counsellor
            else {}
        )
    if staff is None:
        await ws.close(CLOSE_UNAUTHORISED, "sign in first")
        return
    if staff.role is not StaffRole.counsellor:
        await ws.close(CLOSE_FORBIDDEN, "only counsellors take chats")
        return
    await StaffSocket(ws, runtime, StaffContext.from_model(staff), duty).serve()


def origin_allowed(origin: str | None, public_url: str) -> bool:
    """Browsers always send Origin; a cross-site page must not ride a counsellor's cookie."""
    if origin is None:
        return True
    ours = urlsplit(public_url)
    theirs = urlsplit(origin)
    return (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc)


class StaffSocket(ClientSocket):
    def __init__(
        self, ws: WebSocket, runtime: Runtime, staff: StaffContext, duty: dict[str, float]
    ) -> None:
        settings = runtime.settings
        super().__init__(
            ws,
            Outbound(
                ws,
                size=settings.send_queue_size,
                render=self._render,
                transcript=runtime.transcript,
                audience=Audience.staff,
            ),
        )
        self.rt = runtime
        self.staff = staff
        self.duty = duty
        self.id = new_token()[:16]
        self.protocol = StaffConnection(
            rate=settings.staff_frame_rate,
            burst=settings.staff_frame_burst,
            tolerance=settings.flood_tolerance,
            clock=time.monotonic,
        )
        # Chats this connection follows: active with this counsellor.
        self.chats: dict[str, str] = {}
        self.last_seq: dict[str, int] = {}

    async def leave(self) -> None:
        broker = self.rt.broker
        self.rt.connections.staff.pop(self.id, None)
        await broker.unsubscribe(staff_channel(self.staff.id), self.out.event)
        for chat_id in list(self.chats):
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
            deadline_key(Deadline.counsellor_lease, staff.id), await broker.now() + lease
        )
        self.rt.connections.staff[self.id] = self
        await broker.subscribe(staff_channel(staff.id), self.out.event)
        await self.rt.chats.counsellor_connected(staff)
        records = await self.rt.chats.counsellor_chats(staff.id)
        open_chats = [
            r for r in records if r.state is ChatState.active and r.counsellor_id == staff.id
        ]
        for record in open_chats:
            await self._follow(record.id, record.line)
        now = await broker.now()
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
        self.out.frame(
            {
                "type": "hello",
                "protocol": PROTOCOL_VERSION,
                "role": "counsellor",
                "staff": {
                    "id": staff.id,
                    "alias": staff.alias,
                    "qualification": staff.qualification.value if staff.qualification else None,
                    "capacity": staff.capacity,
                    "languages": list(staff.languages),
                    "peer": staff.peer,
                    "supervisor": staff.supervisor,
                },
                "status": presence.status.value if presence else "away",
                "lines": [
                    self._line_info(key, until, now) for key, until in sorted(self.duty.items())
                ],
                "chats": [chat_summary(r, now) for r in open_chats],
                "offers": offers,
            }
        )
        for key in self.duty:
            await self.rt.queue_watch.add_watcher(key, self.out.frame)
        if presence is not None and presence.status is StaffStatus.available:
            for key in self.duty:
                self.rt.router.kick(key)

    def _line_info(self, key: str, until: float, now: float) -> dict[str, Any]:
        line = self.rt.lines.get(key)
        return {
            "key": key,
            "name": line.name if line else key,
            "on_duty": until > now,
            "on_duty_until": until if until > now else None,
        }

    async def _follow(self, chat_id: str, line: str) -> None:
        if chat_id in self.chats:
            return
        self.chats[chat_id] = line
        await self.rt.broker.subscribe(chat_channel(chat_id), self.out.event)

    async def _unfollow(self, chat_id: str) -> None:
        if self.chats.pop(chat_id, None) is not None:
            await self.rt.broker.unsubscribe(chat_channel(chat_id), self.out.event)
        self.last_seq.pop(chat_id, None)
        self.out.delivered.pop(chat_id, None)

    async def refresh_duty(self, duty: dict[str, float]) -> None:
        """Called by the heartbeat with fresh duty from SQL."""
        added = set(duty) - set(self.duty)
        removed = set(self.duty) - set(duty)
        self.duty = duty
        await self.rt.broker.update_presence(self.staff.id, {"duty": duty})
        for line in removed:
            await self.rt.queue_watch.remove_watcher(line, self.out.frame)
        for line in added:
            await self.rt.queue_watch.add_watcher(line, self.out.frame)

    # Incoming frames ------------------------------------------------------------------------

    async def on_bytes(self, data: bytes) -> bool:
        return self.answer(self.protocol.receive_bytes(data))

    def _not_in_chat(self, chat_id: str, ref: str) -> bool:
        if chat_id in self.chats:
            return False
        self.out.frame(
            ProtocolError(ErrorCode.not_in_chat, "you are not in this chat", ref).frame()
        )
        return True

    async def on_text(self, text: str) -> bool:
        frame = self.protocol.receive_text(text)
        if isinstance(frame, ProtocolError | Close):
            return self.answer(frame)
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
        elif isinstance(frame, DeclineOffer):
            problem = await chats.decline(staff, frame.chat_id)
        elif isinstance(frame, StaffNote):
            noted = await chats.note(staff, frame.chat_id, frame.text)
            if isinstance(noted, ProtocolError):
                problem = noted
        elif isinstance(frame, SyncChat):
            if not self._not_in_chat(frame.chat_id, "sync"):
                self.out.sync(frame.chat_id, frame.last_seq)
                self.out.frame({"type": "synced", "chat_id": frame.chat_id})
        elif isinstance(frame, TransferChat):
            moved = await chats.transfer(
                staff, frame.chat_id, to_line=frame.line, to_staff=frame.staff_id, note=frame.note
            )
            if isinstance(moved, ProtocolError):
                problem = moved
        elif isinstance(frame, StaffEnd):
            problem = await chats.staff_end(staff, frame.chat_id)
        elif isinstance(frame, Wrapup):
            async with unit_of_work(self.rt.sessionmaker) as session:
                problem = await chats.wrapup(
                    session, staff, frame.chat_id, list(frame.topics), frame.outcome
                )
        if problem is not None:
            self.out.frame(problem.frame())
        return True

    # Rendering events (runs in the writer task) ---------------------------------------------

    async def _render(self, event: Event) -> list[Frame]:
        kind = event.get("type")
        chat_id = event.get("chat_id")
        if kind == "entry" and isinstance(chat_id, str):
            if chat_id not in self.chats:
                return []
            seq = int(event["seq"])
            entry = await self.rt.transcript.event_entry(event)
            if entry is None:
                # Unreadable here (shredded meanwhile, or refused): the transcript decides.
                return await self.out.fill(chat_id, seq + 1)
            self.last_seq[chat_id] = max(self.last_seq.get(chat_id, 0), seq)
            delivered = await self.out.entry(
                chat_id, seq, entry, skip=event.get("origin") == self.id
            )
            if entry.kind is EntryKind.ended or (
                entry.kind is EntryKind.left and entry.staff_id == self.staff.id
            ):
                await self._unfollow(chat_id)
            return delivered
        if kind == "typing":
            if chat_id in self.chats and event.get("sender") == "visitor":
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
            return [dict(event)] if chat_id in self.chats else []
        if kind == "chat.assigned" and isinstance(chat_id, str):
            record = await self.rt.broker.get_chat(chat_id)
            if record is None or record.counsellor_id != self.staff.id:
                return []
            await self._follow(chat_id, record.line)
            frames: list[Frame] = [
                {"type": "chat.opened", **chat_summary(record, await self.rt.broker.now())}
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
        if kind in ("offer", "offer.withdrawn", "status", "wrapup.required", "wrapup.saved"):
            return [dict(event)]
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
        "peer_requested": record.peer_requested,
    }
