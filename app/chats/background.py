"""Background work of every process: deadlines, heartbeats, and closing empty lines.

Deadlines live in the broker, so whichever process is alive handles them; heartbeats keep
this process's counsellor connections counted as live.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

from app.chats.channels import Deadline, deadline_key
from app.chats.protocol import Phase
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.staff.service import staff_service

if TYPE_CHECKING:
    from app.chats.staff_ws import StaffSocket
    from app.chats.visitor_ws import VisitorSocket
    from app.runtime import Runtime
    from app.settings import Settings

logger = logging.getLogger(__name__)

DUTY_REFRESH_SECONDS = 60.0


class Connections:
    """This process's client connections."""

    def __init__(self) -> None:
        self.visitors: dict[str, VisitorSocket] = {}
        self.staff: dict[str, StaffSocket] = {}


async def run_deadlines(runtime: Runtime) -> None:
    broker = runtime.broker
    while True:
        await asyncio.sleep(runtime.settings.tick_seconds)
        try:
            now = await broker.now()
            for key in await broker.pop_due(now):
                try:
                    await runtime.chats.handle_deadline(key)
                except Exception:
                    logger.exception("deadline failed", extra={"deadline": key.split("|", 1)[0]})
        except Exception:
            logger.exception("deadline pass failed")


def lease_seconds(settings: Settings) -> float:
    """How long a connection counts as live without a heartbeat from its process."""
    return settings.heartbeat_seconds * 3


async def run_heartbeats(runtime: Runtime) -> None:
    settings = runtime.settings
    loop = asyncio.get_running_loop()
    next_duty = loop.time() + DUTY_REFRESH_SECONDS
    while True:
        await asyncio.sleep(settings.heartbeat_seconds)
        try:
            await renew_leases(runtime)
            if loop.time() >= next_duty:
                next_duty = loop.time() + DUTY_REFRESH_SECONDS
                await refresh_duty(runtime)
        except Exception:
            logger.exception("heartbeat failed")


async def renew_leases(runtime: Runtime) -> None:
    """Push forward the leases of this process's clients (all at once: one batch on Redis).

    If this process dies, its leases fall due and whichever process is alive starts the
    grace periods its disconnect handlers would have started.
    """
    broker = runtime.broker
    ttl = lease_seconds(runtime.settings)
    until = await broker.now() + ttl
    held = [
        socket.chat_id
        for socket in list(runtime.connections.visitors.values())
        if socket.chat_id is not None and socket.protocol.phase is Phase.in_chat
    ]
    renewals = [
        broker.schedule(deadline_key(Deadline.visitor_lease, chat_id), until) for chat_id in held
    ]
    for socket in list(runtime.connections.staff.values()):
        renewals.append(broker.connect(socket.staff.id, socket.id, ttl))
        renewals.append(
            broker.schedule(deadline_key(Deadline.counsellor_lease, socket.staff.id), until)
        )
    await asyncio.gather(*renewals)
    await runtime.chats.visitors_present(held)


async def refresh_duty(runtime: Runtime) -> None:
    """Re-read who is on duty where (it changes with the roster) for local counsellors."""
    sockets = list(runtime.connections.staff.values())
    if not sockets:
        return
    async with unit_of_work(runtime.sessionmaker) as session:
        now = utcnow()
        duties = {
            s.staff.id: await staff_service.duty(session, uuid.UUID(s.staff.id), now)
            for s in sockets
        }
    for socket in sockets:
        await socket.refresh_duty(duties[socket.staff.id])


async def run_closed_lines(runtime: Runtime) -> None:
    """Visitors waiting on a line that nobody staffs any more are told, not left waiting."""
    unstaffed_since: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(1.0)
        try:
            for line in runtime.lines.all():
                if await runtime.broker.queue_length(line.key) == 0 or await runtime.router.staffed(
                    line.key
                ):
                    unstaffed_since.pop(line.key, None)
                    continue
                since = unstaffed_since.setdefault(line.key, loop.time())
                if loop.time() - since >= line.counsellor_grace_seconds:
                    await runtime.chats.end_waiting_on_closed_line(line.key)
                    unstaffed_since.pop(line.key, None)
        except Exception:
            logger.exception("closed-line sweep failed")
