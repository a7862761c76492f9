"""Chats lost with the broker's data, and what a process tells its clients about them.

A Redis that restarts without persistence comes back empty: every live chat, every
counsellor's presence (their status) and every owed wrap-up is gone. The broker notices
(app/broker/redis.py: a marker it keeps there is gone or replaced), and each process writes
back what its own clients had when Redis went away (`Held`, taken as it closes their
connections), before it takes clients again: each counsellor's status, and which chats were
lost, so that a visitor resuming one hears `chat.ended` with the reason `lost`, and a
counsellor's `hello` lists them under `lost`. Nothing of a chat's content was ever in this
process's keeping but its key, which goes too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.broker.base import Broker
from app.broker.records import Presence
from app.chats.channels import staff_channel
from app.chats.staffing import presence_of
from app.kit import jsonutil

if TYPE_CHECKING:
    from app.chats.background import Connections
    from app.chats.transcript import Transcript

# How long clients coming back are told: as long as an ended chat's record stays for a
# returning visitor (app/chats/lifecycle.py, ENDED_RECORD_SECONDS).
LOST_SECONDS = 300.0


def lost_key(chat_id: str) -> str:
    return f"lost:{chat_id}"


def lost_for_key(staff_id: str) -> str:
    return f"lost-for:{staff_id}"


@dataclass(frozen=True, slots=True)
class LostChat:
    """A chat whose data the broker lost (the answer to resuming it)."""

    chat_id: str
    line: str
    at: float

    def frame(self) -> dict[str, Any]:
        # No `seq`: nothing of the chat is left to number it after.
        return {
            "type": "chat.ended",
            "chat_id": self.chat_id,
            "by": "system",
            "reason": "lost",
            "at": self.at,
        }


@dataclass(slots=True)
class Held:
    """What this process's clients had when the broker went away: the chats they were in
    (chat id -> line), and each counsellor's presence with the chats they answered."""

    chats: dict[str, str] = field(default_factory=dict)
    staff: dict[str, tuple[Presence, dict[str, str]]] = field(default_factory=dict)

    @classmethod
    def of(cls, connections: Connections) -> Held:
        held = cls()
        for visitor in connections.visitors.values():
            if visitor.chat_id is not None and visitor.line is not None:
                held.chats[visitor.chat_id] = visitor.line
        for socket in connections.staff.values():
            presence = presence_of(socket.staff, socket.duty, socket.status)
            _, chats = held.staff.setdefault(socket.staff.id, (presence, {}))
            chats.update(socket.chats)
            held.chats.update(socket.chats)
        return held


async def write_back(broker: Broker, transcript: Transcript, held: Held) -> None:
    """After the broker lost its data: what this process's clients had, for them to be told
    when they come back. Counsellors keep their status (a presence someone already rebuilt,
    a reconnect through another process, gets it too)."""
    at = broker.now()
    writes = [
        broker.set_value(lost_key(chat_id), jsonutil.dumps([line, at]), LOST_SECONDS)
        for chat_id, line in held.chats.items()
    ]
    for staff_id, (_, chats) in held.staff.items():
        lost = [{"chat_id": c, "line": line} for c, line in chats.items()]
        writes.append(broker.set_value(lost_for_key(staff_id), jsonutil.dumps(lost), LOST_SECONDS))
    await asyncio.gather(*writes)
    for presence, _ in held.staff.values():
        status = {"status": presence.status}
        if await broker.update_presence(presence.staff_id, status) is None:
            await broker.put_presence(presence)
    for chat_id in held.chats:
        # Its key, unwrapped in this process's memory, goes with it.
        await transcript.forget(chat_id)


async def announce(broker: Broker, held: Held) -> None:
    """Once clients are taken again: a counsellor who reconnected before `write_back` (through
    a process that did not hold them) learns the status they kept."""
    for presence, _ in held.staff.values():
        await broker.publish(
            staff_channel(presence.staff_id), {"type": "status", "status": presence.status.value}
        )


async def lost_chat(broker: Broker, chat_id: str) -> LostChat | None:
    """The chat, if it was lost with the broker's data lately."""
    raw = await broker.get_value(lost_key(chat_id))
    if raw is None:
        return None
    line, at = jsonutil.loads(raw)
    return LostChat(chat_id, str(line), float(at))


async def lost_chats(broker: Broker, staff_id: str) -> list[dict[str, str]]:
    """The chats a counsellor answered that were lost with the broker's data lately."""
    raw = await broker.get_value(lost_for_key(staff_id))
    return [] if raw is None else list(jsonutil.loads(raw))
