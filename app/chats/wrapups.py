"""Wrap-ups: the counsellor's anonymous categorisation of a chat at its end.

A chat's counsellor owes its wrap-up from the moment it ends (listed by the broker in the same
step, so the form comes back after a reload) until they save it or the wrap-up window lapses.
The row in SQL holds the line, the hour the chat started, topics, an outcome and the chat's risk
level as the counsellor left it (it may be set during the wrap-up, docs/risk.md): nothing that
names the chat. It is held in the broker and written with its hour's batch (app/held/).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from app.broker.base import Refusal, Transition
from app.broker.records import ChatRecord, ChatState
from app.chats.channels import Deadline, deadline_key, staff_channel
from app.chats.core import ChatPart, err
from app.chats.protocol import ErrorCode, ProtocolError
from app.kit.clock import hour_bucket
from app.lines.directory import LineDirectory
from app.models import Wrapup
from app.staff.service import StaffContext

logger = logging.getLogger(__name__)

_ENDED = frozenset({ChatState.ended})


def wrapup_required(record: ChatRecord, lines: LineDirectory) -> dict[str, Any]:
    """What the console's wrap-up form needs (the `wrapup.required` frame)."""
    line = lines.get(record.line)
    return {
        "type": "wrapup.required",
        "chat_id": record.id,
        "line": record.line,
        "language": record.language,
        "topics": list(line.wrapup_topics) if line else [],
        "outcomes": list(line.wrapup_outcomes) if line else [],
        # The level may still be set until the wrap-up is saved (docs/risk.md).
        "risk": record.risk or "none",
    }


class Wrapups(ChatPart):
    async def wrapup(
        self, staff: StaffContext, chat_id: str, topics: list[str], outcome: str
    ) -> ProtocolError | None:
        """Record the counsellor's anonymous categorisation.

        The wrap-up is claimed in the broker first (it is saved once, however often it is
        sent), then its row is held with the hour's other rows (app/held/): from then on it
        counts as saved. If holding it fails the claim is given back, so the form can be
        sent again."""
        record = await self.broker.get_chat(chat_id)
        if record is None or record.wrapup_by != staff.id:
            return err(ErrorCode.not_in_chat, "no wrap-up is due from you for this chat", "wrapup")
        if record.state is not ChatState.ended:
            return err(ErrorCode.invalid_state, "end the chat before its wrap-up", "wrapup")
        line = self.lines.get(record.line)
        if line is None:
            return err(ErrorCode.invalid_wrapup, "the chat's line no longer exists", "wrapup")
        unknown = sorted(set(topics) - set(line.wrapup_topics))
        if unknown:
            return err(ErrorCode.invalid_wrapup, f"unknown topics: {', '.join(unknown)}", "wrapup")
        if line.wrapup_outcomes and outcome not in line.wrapup_outcomes:
            return err(ErrorCode.invalid_wrapup, f"unknown outcome {outcome!r}", "wrapup")
        result = await self.broker.transition(
            chat_id,
            Transition(expect=_ENDED, changes={"wrapup_by": None}),
        )
        if isinstance(result, Refusal) or record.wrapup_by is None:
            return err(ErrorCode.not_in_chat, "no wrap-up is due from you for this chat", "wrapup")
        row = Wrapup(
            line_key=record.line,
            hour=hour_bucket(record.created_at),
            topics=sorted(set(topics)),
            outcome=outcome,
            # As the claim found it: a level set after the claim is refused (app/chats/care.py).
            risk=result.risk or "none",
        )
        try:
            await self.held_rows.hold(row)
        except Exception:
            # Due again, unless the chat is gone meanwhile.
            with contextlib.suppress(Exception):
                await self.broker.transition(
                    chat_id, Transition(expect=_ENDED, changes={"wrapup_by": staff.id})
                )
            raise
        try:
            await self._saved(staff.id, result)
        except Exception:
            # Saved all the same (held): only letting the chat go or telling the console failed.
            logger.exception("follow-up of a saved wrap-up failed")
        return None

    async def _saved(self, staff_id: str, record: ChatRecord) -> None:
        chat_id = record.id
        await self.broker.settle_wrapup(staff_id, chat_id)
        if record.shred_at is None or record.shred_at <= self.broker.now():
            await self.transcript.forget(chat_id)
            await self.broker.delete_chat(chat_id)
            await self.broker.cancel(deadline_key(Deadline.forget, chat_id))
            await self.broker.cancel(deadline_key(Deadline.shred, chat_id))
        else:
            # The transcript is still kept: the record goes with it when the retention ends.
            await self.broker.schedule(deadline_key(Deadline.forget, chat_id), record.shred_at)
        await self.broker.publish(
            staff_channel(staff_id), {"type": "wrapup.saved", "chat_id": chat_id}
        )

    async def owed_wrapups(self, staff_id: str) -> list[dict[str, Any]]:
        """`wrapup.required` frames for every wrap-up the counsellor still owes, oldest first.

        The index may be a step behind (a save on another process, a chat forgotten): each
        entry is checked against the chat's record, which decides.
        """
        owed = await self.broker.owed_wrapups(staff_id)
        if not owed:
            return []
        frames = []
        for record in await self.broker.get_chats(owed):
            if record.state is ChatState.ended and record.wrapup_by == staff_id:
                frames.append(wrapup_required(record, self.lines))
        return frames
