"""Background work of every process: deadlines, heartbeats, duty, and closing empty lines.

Deadlines live in the broker, so whichever process is alive handles them; heartbeats keep
this process's counsellor connections counted as live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from app.bookings.service import booking_service
from app.broker.base import Lease, log_failure
from app.broker.hub import Event
from app.chats.channels import Deadline, deadline_key, visitor_lease
from app.chats.protocol import CLOSE_UNAUTHORISED, Close, Phase
from app.continuity.service import continuity_service
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.roster.live import ROSTER_CHANNEL, current_duties
from app.staff.service import staff_service

if TYPE_CHECKING:
    from app.chats.staff_ws import StaffSocket
    from app.chats.visitor_ws import VisitorSocket
    from app.runtime import Runtime
    from app.settings import Settings

logger = logging.getLogger(__name__)

DUTY_REFRESH_SECONDS = 60.0
# Clients whose leases are renewed in one round trip (see renew_leases).
RENEWAL_BATCH = 100
# Counsellors whose duty is re-read together (refresh_duty).
DUTY_BATCH = 100
SESSION_ENDED = Close(CLOSE_UNAUTHORISED, "signed out")


class Connections:
    """This process's client connections."""

    def __init__(self) -> None:
        self.visitors: dict[str, VisitorSocket] = {}
        self.staff: dict[str, StaffSocket] = {}


async def run_deadlines(runtime: Runtime) -> None:
    """Handle due deadlines (at once on start-up: what fell due while no process was alive,
    e.g. shredding after a retention), and this process's monotonic shred watch."""
    broker = runtime.broker
    while True:
        try:
            now = broker.now()
            for key in await broker.pop_due(now):
                try:
                    await runtime.chats.deadlines.handle(key)
                except Exception:
                    log_failure(logger, "deadline failed", deadline=key.split("|", 1)[0])
            await runtime.chats.deadlines.shred_overdue()
        except Exception:
            log_failure(logger, "deadline pass failed")
        await asyncio.sleep(runtime.settings.tick_seconds)


async def run_sweeps(runtime: Runtime) -> None:
    """At start-up and then now and then: chats abandoned by a process that died."""
    while True:
        try:
            found = await runtime.chats.deadlines.sweep()
            if found:
                logger.info("abandoned chats found", extra={"count": found})
            await purge_codes_and_bookings(runtime)
            # Mailbox threads past their line's retention are shredded.
            await runtime.mailbox.sweep()
        except Exception:
            log_failure(logger, "sweep failed")
        await asyncio.sleep(runtime.settings.sweep_seconds)


async def purge_codes_and_bookings(runtime: Runtime) -> None:
    """Expired continuity codes go (each is also refused when presented); so do booked chats
    whose time and wait have passed, and lapsed offers of times."""
    async with unit_of_work(runtime.sessionmaker) as session:
        codes = await continuity_service.purge_expired(session, utcnow())
        wait = timedelta(seconds=runtime.settings.continuity_wait_seconds)
        if await booking_service.purge(session, utcnow(), wait) or codes:
            # Their rows held a code's digest: out of the database's files too, by the vacuum
            # that follows a mailbox shred.
            runtime.mailbox.shredded(session)


def lease_seconds(settings: Settings) -> float:
    """How long a connection counts as live without a heartbeat from its process."""
    return settings.heartbeat_seconds * 3


async def run_heartbeats(runtime: Runtime) -> None:
    settings = runtime.settings
    while True:
        await asyncio.sleep(settings.heartbeat_seconds)
        try:
            await renew_leases(runtime)
        except Exception:
            log_failure(logger, "heartbeat failed")


async def renew_leases(runtime: Runtime) -> None:
    """Push forward the leases of this process's clients (all at once: one batch on Redis).

    If this process dies, its leases fall due and whichever process is alive starts the
    grace periods its disconnect handlers would have started.
    """
    broker = runtime.broker
    ttl = lease_seconds(runtime.settings)
    until = broker.now() + ttl
    visitor_seconds = runtime.chats.core.visitor_lease_seconds
    leases: list[Lease] = []
    for visitor in list(runtime.connections.visitors.values()):
        chat_id = visitor.chat_id
        if chat_id is not None and visitor.protocol.phase is Phase.in_chat:
            deadline = deadline_key(Deadline.visitor_lease, chat_id)
            leases.append(
                Lease(visitor_lease(chat_id), visitor.id, visitor_seconds, deadline, until)
            )
    for socket in list(runtime.connections.staff.values()):
        staff_id = socket.staff.id
        deadline = deadline_key(Deadline.counsellor_lease, staff_id)
        leases.append(Lease(staff_id, socket.id, ttl, deadline, until))
    # A batch at a time (one round trip each on Redis): thousands of clients renewed in one
    # go would hold up every message for that long (leases last three heartbeats; a few
    # batches' delay is nothing to them).
    for start in range(0, len(leases), RENEWAL_BATCH):
        await broker.renew(leases[start : start + RENEWAL_BATCH])


async def run_duty(runtime: Runtime) -> None:
    """Keep local counsellors' duty current: when the roster changes, when a shift starts or
    ends, and every minute. A presence's duty already ends when the shift ends, so routing
    stops on time even before this catches up; this brings shifts that start, and the
    counsellor's own view, up to date.
    """
    changed = asyncio.Event()

    def on_roster_change(_event: Event) -> None:
        runtime.openings.invalidate()
        changed.set()

    await runtime.broker.subscribe(ROSTER_CHANNEL, on_roster_change)
    loop = asyncio.get_running_loop()
    next_full = loop.time() + DUTY_REFRESH_SECONDS
    try:
        while True:
            sockets = list(runtime.connections.staff.values())
            now = time.time()
            upcoming = [s.duty_next_change for s in sockets if s.duty_next_change is not None]
            wait = min([runtime.settings.heartbeat_seconds, *(t - now for t in upcoming)])
            # asyncio.timeout, not wait_for (see Router.run: shutdown must not hang).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.05, wait)):
                    await changed.wait()
            everyone = changed.is_set() or loop.time() >= next_full
            changed.clear()
            if loop.time() >= next_full:
                next_full = loop.time() + DUTY_REFRESH_SECONDS
            now = time.time()
            due = [
                s
                for s in runtime.connections.staff.values()
                if everyone or (s.duty_next_change is not None and s.duty_next_change <= now)
            ]
            try:
                await refresh_duty(runtime, due)
            except Exception:
                log_failure(logger, "duty refresh failed")
                await asyncio.sleep(1.0)
    finally:
        await runtime.broker.unsubscribe(ROSTER_CHANNEL, on_roster_change)


async def refresh_duty(runtime: Runtime, sockets: list[StaffSocket] | None = None) -> None:
    """Re-read from the roster who is on duty where, for local counsellors, and close
    connections whose session has ended (expired, signed out, account deactivated)."""
    if sockets is None:
        sockets = list(runtime.connections.staff.values())
    if not sockets:
        return
    idle = timedelta(minutes=runtime.settings.session_idle_minutes)
    # A few queries for a whole slice of counsellors, not a few per counsellor: with 500
    # signed in to one process, one query after another took a second of CPU every minute.
    # Slices keep each stretch between two awaits short for the messages meanwhile.
    for start in range(0, len(sockets), DUTY_BATCH):
        chunk = sockets[start : start + DUTY_BATCH]
        async with unit_of_work(runtime.sessionmaker) as session:
            duties = await current_duties(
                session, runtime.settings, {uuid.UUID(s.staff.id) for s in chunk}
            )
            # An open console counts as activity: it keeps its session from going idle.
            alive = await staff_service.sessions_alive(
                session, {s.session_digest for s in chunk}, idle=idle
            )
        for socket in chunk:
            if not alive[socket.session_digest]:
                socket.out.close(SESSION_ENDED)
                continue
            await socket.refresh_duty(duties[uuid.UUID(socket.staff.id)])


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
                    await runtime.chats.lifecycle.end_waiting_on_closed_line(line.key)
                    unstaffed_since.pop(line.key, None)
        except Exception:
            log_failure(logger, "closed-line sweep failed")
