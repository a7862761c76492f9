"""Sending a referral directory entry into a chat: a card in the visitor's language, sealed
in the transcript like any message (and shredded with it)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.chats.entries import Entry, EntryKind
from app.chats.protocol import ErrorCode, ProtocolError
from app.chats.service import ChatService
from app.directory.service import card, directory_service
from app.kit.db import unit_of_work
from app.staff.service import StaffContext


async def send_referral(
    chats: ChatService,
    sessionmaker: async_sessionmaker[AsyncSession],
    staff: StaffContext,
    chat_id: str,
    service_id: str,
) -> int | ProtocolError:
    record = await chats.messages.own_active_chat(staff, chat_id, "referral")
    if isinstance(record, ProtocolError):
        return record
    async with unit_of_work(sessionmaker) as session:
        service = await directory_service.find(session, uuid.UUID(service_id))
        if service is None:
            return ProtocolError(
                ErrorCode.unknown_service, "there is no such service in the directory", "referral"
            )
        line = chats.lines.get(record.line)
        shown = card(service, record.language, line.languages if line else ())
    now = chats.broker.now()
    entry = Entry(EntryKind.referral, now, name=staff.alias, card=shown, staff_id=staff.id)
    seq, status = await chats.messages.add_staff_entry(staff, chat_id, entry, record.last_seq)
    if status == "forbidden":
        return ProtocolError(ErrorCode.not_in_chat, "you are not in this chat", "referral")
    if status != "ok":
        return ProtocolError(ErrorCode.chat_ended, "the chat has ended", "referral")
    return seq
