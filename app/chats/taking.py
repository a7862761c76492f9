"""Taking the next chat: a counsellor with a free place takes the first eligible chat of a
line's queue from their queue card, instead of waiting for an offer (Crisis Text Line's
"help another texter").

The claim is one compare-and-set transition in the broker, from a waiting state straight to
active, with the counsellor's capacity checked in the same step: two counsellors (in any
processes) pressing at once never get one chat, and one pressing twice never goes over
capacity. Whoever loses a race moves on to the next chat in the queue.
"""

from __future__ import annotations

from app.broker.base import Refusal, Transition
from app.broker.records import WAITING_STATES, ChatRecord, StaffStatus
from app.chats.core import ChatCore, ChatPart, err
from app.chats.offers import Offers, answered_by
from app.chats.protocol import ErrorCode, ProtocolError
from app.routing.policy import Candidate, on_duty, qualified, takes
from app.routing.service import ROUTE_PAGE, ROUTE_WINDOW
from app.staff.service import StaffContext

REF = "take"


class Taking(ChatPart):
    def __init__(self, core: ChatCore, offers: Offers) -> None:
        super().__init__(core)
        self.offers = offers

    async def take_next(self, staff: StaffContext, line_key: str) -> ChatRecord | ProtocolError:
        """Claim the line's first waiting chat this counsellor may answer, or say why not."""
        line = self.lines.get(line_key)
        if line is None:
            return err(ErrorCode.unknown_line, "there is no such line", REF)
        candidates = await self.router.candidates(line.key)
        me = next((c for c in candidates if c.staff_id == staff.id), None)
        now = self.broker.now()
        if me is None or not (on_duty(me.presence, line.key, now) and qualified(me.presence, line)):
            return err(ErrorCode.not_on_duty, "you are not on duty on this line", REF)
        if not line.chats_taken:
            return err(ErrorCode.not_taken_here, "this line offers its chats; none are taken", REF)
        if me.presence.status is not StaffStatus.available:
            return err(ErrorCode.not_allowed_now, "set yourself available to take a chat", REF)
        if me.load >= me.presence.capacity:
            return err(ErrorCode.over_capacity, "you are answering as many chats as you can", REF)
        queued = await self.broker.queue(line.key, ROUTE_WINDOW)
        for start in range(0, len(queued), ROUTE_PAGE):
            page = [chat_id for chat_id, _ in queued[start : start + ROUTE_PAGE]]
            for chat in await self.broker.get_chats(page):
                if not chat.visitor_connected or chat.state not in WAITING_STATES:
                    continue
                if not takes(me, chat, line, candidates, now):
                    continue
                taken = await self._claim(staff, me, chat)
                if isinstance(taken, ChatRecord):
                    await self.offers.joined(
                        taken, staff.id, staff.alias, now, answered=chat.answered_at is None
                    )
                    await self.core.queue_changed(taken.line)
                    return taken
                if taken is Refusal.capacity:
                    return err(
                        ErrorCode.over_capacity, "you are answering as many chats as you can", REF
                    )
                # Someone else took or was offered it meanwhile: the next one.
        return err(ErrorCode.nothing_to_take, "no chat you may answer is waiting", REF)

    async def _claim(
        self, staff: StaffContext, me: Candidate, chat: ChatRecord
    ) -> ChatRecord | Refusal:
        now = self.broker.now()
        changes = answered_by(staff.id, staff.alias, now, first=chat.answered_at is None)
        return await self.broker.transition(
            chat.id,
            Transition(
                expect=WAITING_STATES,
                changes=changes,
                dequeue=True,
                assign=(staff.id, me.presence.capacity),
            ),
        )
