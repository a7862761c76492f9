"""Counsellors as the chat core sees them: status, sign-in, connections and removal.

A counsellor whose last connection drops keeps their chats through a grace period (offers
move on at once); one who is deactivated loses them to the queue now, and an interpreter who
is deactivated passes on the requests offered to them and leaves the chats they are in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.broker.base import Transition
from app.broker.records import ChatRecord, ChatState, Presence, StaffStatus
from app.chats.channels import Deadline, deadline_key, staff_channel
from app.chats.core import ChatCore, ChatPart
from app.staff.service import StaffContext

if TYPE_CHECKING:
    from app.chats.offers import Offers


def presence_of(
    staff: StaffContext,
    duty: dict[str, float],
    status: StaffStatus,
    existing: Presence | None = None,
) -> Presence:
    """A signed-in counsellor as routing sees them: their profile, duty (line -> until) and
    status; `existing` (their presence so far) keeps when they were last offered a chat."""
    return Presence(
        staff_id=staff.id,
        alias=staff.alias,
        status=status,
        capacity=staff.capacity,
        qualification=staff.qualification.value if staff.qualification else None,
        languages=list(staff.languages),
        peer=staff.peer,
        supervisor=staff.supervisor,
        duty=duty,
        last_offer_at=existing.last_offer_at if existing else 0.0,
        missed_offers=existing.missed_offers if existing else 0,
        paused_until=existing.paused_until if existing else 0.0,
    )


class Staffing(ChatPart):
    def __init__(self, core: ChatCore, offers: Offers) -> None:
        super().__init__(core)
        self.offers = offers

    async def counsellor_chats(self, staff_id: str) -> list[ChatRecord]:
        """Chats offered to or active with the counsellor, and those awaiting their wrap-up."""
        return await self.broker.get_chats(await self.broker.staff_chat_ids(staff_id))

    async def set_status(self, staff: StaffContext, status: StaffStatus) -> None:
        presence = await self.broker.update_presence(
            staff.id, {"status": status, "missed_offers": 0}
        )
        await self.broker.publish(
            staff_channel(staff.id), {"type": "status", "status": status.value}
        )
        for line in presence.duty if presence else ():
            await self.core.queue_changed(line)

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
            await self.core.queue_changed(line)

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
                await self.offers.release_offer(record.id, staff_id, missed=False)
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

    async def end_sessions(self, staff_id: str, session_digest: str | None) -> None:
        """Close the staff member's WebSockets in every process (one session's, or all)."""
        await self.broker.publish(
            staff_channel(staff_id), {"type": "session.ended", "session": session_digest}
        )

    async def staff_changed(self, staff_id: str) -> None:
        """Their profile changed: open WebSockets reload it."""
        await self.broker.publish(staff_channel(staff_id), {"type": "staff.changed"})

    async def remove_counsellor(self, staff_id: str, actor_id: str) -> None:
        """Deactivated (by `actor_id`): connections close, offers (an interpreter's requests
        too) move on, chats go back to the queue and an interpreter leaves theirs now."""
        await self.end_sessions(staff_id, None)
        await self.broker.remove_presence(staff_id)
        for record in await self.broker.get_chats(await self.broker.staff_chat_ids(staff_id)):
            if record.state is ChatState.offered and record.offered_to == staff_id:
                await self.offers.release_offer(record.id, staff_id, missed=False)
            elif record.state is ChatState.active and record.counsellor_id == staff_id:
                await self.offers.return_to_queue(record.id, staff_id, force=True)
            elif record.interpreter_asked == staff_id:
                # As if declined: the next interpreter is asked, not after the request lapses.
                await self.offers.interpreters.decline(staff_id, record.id)
            elif record.interpreter_id == staff_id:
                await self.offers.interpreters.deactivated(record, actor_id)
