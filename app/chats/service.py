"""The chat core's services, one responsibility each, built together on one core.

| part | module | what |
|---|---|---|
| `lifecycle` | lifecycle.py | start, resume, a visitor's drop, the end of a chat, quick exit |
| `messages` | messages.py | messages both ways, typing, notes and other staff entries |
| `offers` | offers.py | offers, accept, decline, transfer, return to the queue |
| `staffing` | staffing.py | a counsellor's status, sign-in, connections, removal |
| `deadlines` | deadlines.py | grace periods, leases, shredding and forgetting, sweeps |
| `wrapups` | wrapups.py | the wrap-up owed at a chat's end |
| `care` | care.py | "in danger", risk levels and their alerts, the pause after an acute chat |
| `taking` | taking.py | a counsellor taking the next chat from the queue |
| `interpreters` | interpreters.py | interpreters asked for, joining and leaving a chat |
"""

from __future__ import annotations

from app.abuse.blocks import Blocks
from app.broker.base import Broker
from app.chats.care import Care
from app.chats.core import ChatCore
from app.chats.deadlines import Deadlines
from app.chats.interpreters import Interpreters
from app.chats.lifecycle import Lifecycle
from app.chats.messages import Messages
from app.chats.offers import Offers
from app.chats.staffing import Staffing
from app.chats.taking import Taking
from app.chats.transcript import Transcript
from app.chats.wrapups import Wrapups
from app.held.service import HeldRows
from app.lines.directory import LineDirectory
from app.routing.service import Router
from app.settings import Settings
from app.stats.counters import ChatCounters


class ChatService:
    def __init__(
        self,
        *,
        broker: Broker,
        lines: LineDirectory,
        transcript: Transcript,
        router: Router,
        held_rows: HeldRows,
        settings: Settings,
        counters: ChatCounters | None = None,
        blocks: Blocks,
    ) -> None:
        self.core = ChatCore(
            broker=broker,
            lines=lines,
            transcript=transcript,
            router=router,
            held_rows=held_rows,
            settings=settings,
            counters=counters or ChatCounters(),
            blocks=blocks,
        )
        self.broker = broker
        self.lines = lines
        self.transcript = transcript
        self.router = router
        self.counters = self.core.counters
        self.interpreters = Interpreters(self.core)
        self.offers = Offers(self.core, self.interpreters)
        self.care = Care(self.core)
        self.lifecycle = Lifecycle(self.core, self.offers, self.care, self.interpreters)
        self.messages = Messages(self.core)
        self.staffing = Staffing(self.core, self.offers)
        self.wrapups = Wrapups(self.core)
        self.taking = Taking(self.core, self.offers)
        self.deadlines = Deadlines(
            self.core, self.lifecycle, self.offers, self.staffing, self.interpreters, self.care
        )
        router.auto_accept = self.offers.auto_accept
        router.visitor_gone = self.offers.visitor_gone
