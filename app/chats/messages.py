"""What is written in a chat: messages both ways, typing, notes and other staff entries.

Each message is planned without I/O (app/chats/plan.py) and appended in one step of the
broker, which publishes it to the chat's channel as it stores it.
"""

from __future__ import annotations

from app.broker.base import Quota
from app.broker.records import ChatRecord, ChatState
from app.chats import plan
from app.chats.channels import chat_channel
from app.chats.core import ChatPart, err
from app.chats.entries import Entry, EntryKind
from app.chats.protocol import ErrorCode, ProtocolError, check_text
from app.staff.service import StaffContext

NOTE_LIMIT = 4000


class Messages(ChatPart):
    async def visitor_messages(
        self,
        chat_id: str,
        line_key: str,
        burst: list[tuple[str, str | None]],
        *,
        last_seq: int,
        origin: str,
        quota: Quota | None = None,
    ) -> list[tuple[int, bool] | ProtocolError]:
        """Store and deliver a visitor's messages (text, client id), read together, in one
        step of the broker: for each, its number and whether it was a resend, or why not.
        `quota` is the client's message limit, counted by the broker with the append."""
        limit = self.core.message_limit(line_key)
        now = self.broker.now()
        planned = [plan.visitor_message(limit, text, cid, now, origin) for text, cid in burst]
        stored = [p for p in planned if isinstance(p, plan.Planned)]
        added = iter(await self.transcript.add(chat_id, stored, last_seq=last_seq, quota=quota))
        return [
            plan.message_added(next(added)) if isinstance(p, plan.Planned) else p for p in planned
        ]

    async def staff_message(
        self,
        staff: StaffContext,
        chat_id: str,
        text: str,
        client_id: str | None,
        *,
        last_seq: int,
        origin: str,
        line_key: str | None = None,
    ) -> tuple[int, bool] | ProtocolError:
        """A counsellor's message. `line_key`: the chat's line when the connection follows the
        chat; without it the chat's record is read first, a broker round trip more."""
        exists = line_key is not None
        if line_key is None:
            record = await self.broker.get_chat(chat_id)
            exists = record is not None
            line_key = record.line if record else None
        planned = plan.staff_message(
            self.core.message_limit(line_key),
            staff.id,
            staff.alias,
            text,
            client_id,
            self.broker.now(),
            origin,
        )
        if isinstance(planned, ProtocolError):
            return planned
        (added,) = await self.transcript.add(
            chat_id, [planned], last_seq=last_seq, counsellor=staff.id
        )
        if added[1] == "ended" and not exists:
            return err(ErrorCode.not_in_chat, "you are not in this chat", "message")
        return plan.message_added(added)

    async def typing(self, chat_id: str, sender: str, typing: bool, origin: str) -> None:
        await self.broker.publish(
            chat_channel(chat_id),
            {
                "type": "typing",
                "chat_id": chat_id,
                "sender": sender,
                "typing": typing,
                "origin": origin,
            },
        )

    async def own_active_chat(
        self, staff: StaffContext, chat_id: str, ref: str
    ) -> ChatRecord | ProtocolError:
        """The chat, if it is this counsellor's and active; else the error answering `ref`."""
        record = await self.broker.get_chat(chat_id)
        if record is None or record.counsellor_id != staff.id:
            return err(ErrorCode.not_in_chat, "you are not in this chat", ref)
        if record.state is not ChatState.active:
            return err(ErrorCode.invalid_state, f"the chat is {record.state.value}", ref)
        return record

    async def add_staff_entry(
        self, staff: StaffContext, chat_id: str, entry: Entry, last_seq: int
    ) -> plan.Added:
        """Append a counsellor's entry in their active chat (compare-and-set after `last_seq`)
        and announce it: (its number, the broker's answer)."""
        return await self.transcript.add_one(chat_id, entry, last_seq=last_seq, counsellor=staff.id)

    async def note(self, staff: StaffContext, chat_id: str, text: str) -> int | ProtocolError:
        """A note for colleagues (a handover); never shown to the visitor."""
        problem = check_text(text, NOTE_LIMIT)
        if problem is not None:
            return ProtocolError(problem.code, problem.message, "note")
        record = await self.broker.get_chat(chat_id)
        if record is None:
            return err(ErrorCode.not_in_chat, "you are not in this chat", "note")
        now = self.broker.now()
        entry = Entry(EntryKind.note, now, name=staff.alias, text=text, staff_id=staff.id)
        seq, status = await self.add_staff_entry(staff, chat_id, entry, record.last_seq)
        if status != "ok":
            code = ErrorCode.chat_ended if status == "ended" else ErrorCode.not_in_chat
            return err(code, "you cannot add a note to this chat", "note")
        return seq

    async def can_review(self, staff: StaffContext, chat_id: str) -> bool:
        """An ended chat of this counsellor whose transcript is still kept (line retention)."""
        record = await self.broker.get_chat(chat_id)
        return (
            record is not None
            and record.state is ChatState.ended
            and record.counsellor_id == staff.id
            and record.shred_at is not None
            and record.shred_at > self.broker.now()
        )
