"""Request bodies of the mailbox's HTTP API (the code only ever in a body, never a URL)."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.chats.frames import ContinuityCode
from app.kit.fields import CleanText
from app.lines.schemas import Language, LineKeyStr, WrapupTerm

# Refused above this at once; the line's own max_message_length is checked after.
MAX_TEXT = 10_000
MessageText = Annotated[str, StringConstraints(max_length=MAX_TEXT), CleanText()]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NewThread(_Body):
    line: LineKeyStr
    language: Language
    text: MessageText


class CodeOnly(_Body):
    code: ContinuityCode


class VisitorWrite(_Body):
    code: ContinuityCode
    text: MessageText


class Answer(_Body):
    """Text, or the id of a referral directory entry sent as a card (one of the two)."""

    text: MessageText | None = None
    card: uuid.UUID | None = None


class NoteIn(_Body):
    text: MessageText


class CloseIn(_Body):
    topics: Annotated[list[WrapupTerm], Field(max_length=100)] = Field(default_factory=list)
    outcome: Annotated[str, StringConstraints(max_length=64), CleanText()] = ""


class HandIn(_Body):
    staff_id: uuid.UUID
