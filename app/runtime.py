"""Everything a running Lykta process holds, built from the settings in one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.abuse.blocks import Blocks
from app.abuse.ratelimit import ClientKeys, RateLimiter
from app.bookings.holds import BookingHolds
from app.broker.base import Broker
from app.broker.memory import MemoryBroker
from app.chats.background import (
    Connections,
    run_closed_lines,
    run_deadlines,
    run_duty,
    run_heartbeats,
    run_sweeps,
)
from app.chats.connection import UNAVAILABLE_CLOSE, ClientSocket
from app.chats.crypto import EncryptedCodec, KeyRing, parse_keks
from app.chats.lost import Held, announce, write_back
from app.chats.service import ChatService
from app.chats.transcript import Transcript
from app.continuity.chats import ContinuityChats
from app.held.service import HeldRows
from app.kit.db import create_engine, create_sessionmaker
from app.lines.directory import LineDirectory
from app.mailbox.live import Mailbox
from app.roster.live import Openings
from app.routing.positions import QueueWatch
from app.routing.service import Router
from app.settings import Settings
from app.stats.counters import ChatCounters
from app.stats.recorder import statistics_kept
from app.web.health import Readiness

logger = logging.getLogger(__name__)


def create_broker(settings: Settings) -> Broker:
    if settings.uses_redis:
        from app.broker.redis import RedisBroker

        return RedisBroker(
            settings.redis_url,
            settings.redis_prefix,
            sentinels=settings.sentinel_addresses(),
            service=settings.redis_sentinel_service,
            wait_replicas=settings.redis_wait_replicas,
        )
    return MemoryBroker()


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    broker: Broker
    lines: LineDirectory
    transcript: Transcript
    router: Router
    queue_watch: QueueWatch
    held_rows: HeldRows
    chats: ChatService
    rate_limiter: RateLimiter
    openings: Openings
    counters: ChatCounters
    continuity: ContinuityChats
    readiness: Readiness
    mailbox: Mailbox
    connections: Connections = field(default_factory=Connections)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # What this process's clients had when the broker went away (app/chats/lost.py), until it
    # is back; and, once written back after a loss, what to announce when clients come back.
    held: Held | None = None
    announcing: Held | None = None
    announcement: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, settings: Settings, broker: Broker | None = None) -> Runtime:
        """Everything from the settings; `broker` shares one broker's state between runtimes
        (as Redis does between processes, e.g. across a restart)."""
        engine = create_engine(settings.database_url)
        sessionmaker = create_sessionmaker(engine)
        broker = broker or create_broker(settings)
        lines = LineDirectory(sessionmaker)
        keyring = KeyRing(parse_keks(settings.keks.get_secret_value()))
        transcript = Transcript(broker, EncryptedCodec(broker, keyring))
        counters = ChatCounters()
        router = Router(broker, lines, settings, counters)
        # Routing keeps a counsellor's last place free for their booked chat (app/bookings).
        holds = BookingHolds(sessionmaker, settings)
        router.reservations = holds.reserved
        held_rows = HeldRows(broker, sessionmaker, interval=settings.sweep_seconds)
        held_rows.keeps = statistics_kept(lines)
        chats = ChatService(
            broker=broker,
            lines=lines,
            transcript=transcript,
            router=router,
            held_rows=held_rows,
            settings=settings,
            counters=counters,
            blocks=Blocks(broker),
        )
        mailbox = Mailbox(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            broker=broker,
            lines=lines,
            held_rows=held_rows,
            keyring=keyring,
        )
        return cls(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            broker=broker,
            lines=lines,
            transcript=transcript,
            router=router,
            queue_watch=QueueWatch(broker, lines, router, settings),
            held_rows=held_rows,
            chats=chats,
            rate_limiter=RateLimiter(broker, ClientKeys(broker, keyring), settings.trusted_proxies),
            openings=Openings(sessionmaker),
            counters=counters,
            continuity=ContinuityChats(chats, sessionmaker, settings, holds, mailbox.shredded),
            readiness=Readiness(engine, broker),
            mailbox=mailbox,
        )

    async def start(self) -> None:
        self.broker.on_availability(self._broker_availability)
        self.broker.on_lost(self._broker_lost)
        await self.broker.start()
        await self.lines.reload()
        await self.lines.follow(self.broker)
        for job in (
            self.router.run(),
            self.queue_watch.run(),
            self.held_rows.run(),
            run_deadlines(self),
            run_sweeps(self),
            run_heartbeats(self),
            run_duty(self),
            run_closed_lines(self),
            self.mailbox.run_vacuums(),
        ):
            self.tasks.append(asyncio.create_task(job))

    def _broker_availability(self, available: bool) -> None:
        """The broker was lost: every client is told to reconnect, and resumes once it is back.

        Events published while Redis was away are lost; resuming replays the transcript. If
        Redis lost its data meanwhile, `_broker_lost` writes back what the clients had.
        """
        if available:
            self.held = None
            if self.announcing is not None:
                self.announcement = asyncio.get_running_loop().create_task(
                    announce(self.broker, self.announcing)
                )
                self.announcing = None
            return
        self.held = Held.of(self.connections)
        sockets: list[ClientSocket] = [
            *self.connections.visitors.values(),
            *self.connections.staff.values(),
        ]
        for socket in sockets:
            socket.out.close(UNAVAILABLE_CLOSE)

    async def _broker_lost(self) -> None:
        held = self.held or Held()
        logger.warning(
            "chats of this process's clients were lost with Redis's data",
            extra={"chats": len(held.chats), "counsellors": len(held.staff)},
        )
        await write_back(self.broker, self.transcript, held)
        self.announcing = held

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()
        if not self.broker.outlives_process:
            # The in-process broker dies with the process: what it holds is written now,
            # before its hour ends (on Redis it waits for the hour, for whichever process).
            try:
                await self.held_rows.flush_all()
            except Exception:
                logger.exception("could not write the held rows")
        await self.broker.close()
        await self.engine.dispose()
