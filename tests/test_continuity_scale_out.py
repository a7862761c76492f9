"""Continuity codes across two `lykta serve` processes on one Redis and one PostgreSQL: a code
taken through one process brings the visitor back through the other; the note reaches its
author wherever they are connected, never a colleague, and never Redis in clear."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.broker.redis import RedisBroker
from app.settings import Settings
from tests.conftest import REDIS_URL
from tests.support.clients import open_chat, open_staff, open_visitor
from tests.support.processes import processes, seeding
from tests.support.seed import PASSWORD, add_counsellor, add_line

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_a_code_from_one_process_brings_the_visitor_back_through_the_other(
    tmp_path: Path, scale_settings: Callable[..., Settings], redis_prefix: str
) -> None:
    settings = scale_settings()
    async with seeding(settings) as rt:
        await add_line(rt)
        await add_counsellor(rt, "anna", alias="Anna")
        await add_counsellor(rt, "sara", alias="Sara", supervisor=True)
    note = "canary-across-processes: ask about the move"
    async with processes(settings, tmp_path) as (a, b):
        anna = await open_staff(b, "anna", PASSWORD)
        visitor = await open_chat(a, anna)
        await visitor.expect("counsellor.joined", name="Anna")
        await anna.send({"type": "continuity.offer", "chat_id": visitor.chat_id, "note": note})
        assert "note" not in await visitor.expect("continuity.offered")
        await visitor.send({"type": "continuity.accept"})
        code = (await visitor.expect("continuity.code"))["code"]
        await anna.expect("continuity.accepted", chat_id=visitor.chat_id)
        await visitor.send({"type": "end"})
        await visitor.expect("chat.ended")
        await visitor.close()

        # Back through the other process; Anna now answers from process A.
        anna_on_a = await open_staff(a, "anna", PASSWORD)
        await anna.close()
        sara = await open_staff(a, "sara", PASSWORD, available=False)
        back = await open_visitor(b)
        await back.send({"type": "start", "line": "support", "language": "sv", "code": code})
        await back.expect("continuity.found", name="Anna")
        chat_id = (await back.expect("chat.started"))["chat_id"]
        offer = await anna_on_a.expect("offer", chat_id=chat_id)
        assert offer["continuity"] is True
        await anna_on_a.accept(chat_id)
        assert (await anna_on_a.expect("handover", chat_id=chat_id))["text"] == note
        await sara.send({"type": "observe", "chat_id": chat_id})
        await sara.expect("chat.observing", chat_id=chat_id)
        await back.say("hej igen")
        await sara.expect("message", chat_id=chat_id, text="hej igen")
        assert not sara.seen("handover")

        broker = RedisBroker(REDIS_URL, redis_prefix)
        await broker.start()
        try:
            held = await broker.dump()
            assert chat_id in held
            for secret in (note, code, code.replace(" ", "")):
                assert secret not in held and secret.encode().hex() not in held
            assert await broker.keys_without_ttl() == []
        finally:
            await broker.close()
