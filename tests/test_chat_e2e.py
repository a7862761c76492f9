"""End to end on the embedded default: a visitor and counsellors over real WebSockets."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from app.kit.db import unit_of_work
from app.models import ChatStatistic, Wrapup
from tests.support.clients import open_staff, open_visitor
from tests.support.seed import PASSWORD, add_counsellor, add_line
from tests.support.server import RunningServer


async def test_a_whole_chat_from_start_to_wrapup(server: RunningServer) -> None:
    rt = server.runtime
    await add_line(rt)
    await add_counsellor(rt, "anna", alias="Anna")
    anna = await open_staff(server, "anna", PASSWORD)

    visitor = await open_visitor(server)
    started = await visitor.start("support", "sv")
    assert "token" in started and started["language"] == "sv"
    position = await visitor.expect("queue.position")
    assert position["position"] == 1

    offer = await anna.expect("offer")
    assert offer["chat_id"] == visitor.chat_id
    opened = await anna.accept(visitor.chat_id)
    assert opened["state"] == "active"

    joined = await visitor.expect("counsellor.joined")
    assert joined["name"] == "Anna"
    assert "staff_id" not in joined  # never an account id towards the visitor

    await visitor.say("hej, jag behöver prata")
    got = await anna.expect("message", sender="visitor")
    assert got["text"] == "hej, jag behöver prata"

    await anna.send({"type": "typing", "chat_id": visitor.chat_id, "typing": True})
    await visitor.expect("typing", sender="counsellor", typing=True)
    await anna.say(visitor.chat_id, "Jag finns här. Berätta.")
    reply = await visitor.expect("message", sender="counsellor")
    assert reply["text"] == "Jag finns här. Berätta." and reply["name"] == "Anna"

    await visitor.send({"type": "end"})
    ended = await visitor.expect("chat.ended")
    assert ended["by"] == "visitor"
    await anna.expect("chat.ended")
    wrapup = await anna.expect("wrapup.required", chat_id=visitor.chat_id)
    assert "violence" in wrapup["topics"]
    await anna.send(
        {
            "type": "wrapup",
            "chat_id": visitor.chat_id,
            "topics": ["violence"],
            "outcome": "support given",
        }
    )
    await anna.expect("wrapup.saved", chat_id=visitor.chat_id)

    # What remains: one statistics row and one wrap-up, with no content and no chat id.
    for _ in range(100):
        async with unit_of_work(rt.sessionmaker) as session:
            stats = (await session.execute(select(ChatStatistic))).scalars().all()
            wrapups = (await session.execute(select(Wrapup))).scalars().all()
        if stats:
            break
        await asyncio.sleep(0.05)
    assert len(stats) == 1 and stats[0].answered and stats[0].outcome == "answered"
    assert stats[0].hour.minute == 0 and stats[0].hour.second == 0
    assert [(w.topics, w.outcome) for w in wrapups] == [(["violence"], "support given")]
    # The broker no longer holds the chat.
    assert await rt.broker.get_chat(visitor.chat_id) is None
